"""`nettvakt agent install-service`: run the agent at boot, restarted when it stops.

- Linux: a systemd unit (written to /etc/systemd/system, or --unit-dir), then
  `systemctl daemon-reload` and `systemctl enable --now`.
- Windows: a scheduled task that starts at boot as SYSTEM, registered with PowerShell's
  ScheduledTasks module. Not a Windows service: the Service Control Manager only starts
  programs that speak its protocol, which needs pywin32 or a wrapper exe, and the agent
  stays stdlib + psutil + aiohttp. Not `schtasks /Create` either: its tasks are stopped
  after 72 hours and cannot be told to restart on failure; the PowerShell settings can.

Nothing here holds the token: the service gets the token *reference* (file:PATH, or
env:NAME with the variable in /etc/nettvakt/agent.env on Linux).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

DEFAULT_NAME = "nettvakt-agent"
LINUX_UNIT_DIR = Path("/etc/systemd/system")
LINUX_SPOOL = "/var/lib/nettvakt/spool.sqlite3"
LINUX_ENV_FILE = "/etc/nettvakt/agent.env"
WINDOWS_SPOOL = r"C:\ProgramData\nettvakt\spool.sqlite3"

Runner = Callable[[Sequence[str]], int]


class InstallError(RuntimeError):
    """Installing failed; the message says which step and why."""


@dataclass(frozen=True)
class ServiceOptions:
    collector: str
    agent_id: str
    token_ref: str
    spool: str
    python: str
    ca_file: str | None = None
    name: str = DEFAULT_NAME

    def agent_argv(self) -> list[str]:
        argv = [
            self.python, "-m", "agent.cli", "agent", "run",
            "--collector", self.collector, "--agent-id", self.agent_id,
            "--token", self.token_ref, "--spool", self.spool,
        ]
        if self.ca_file:
            argv += ["--ca-file", self.ca_file]
        return argv


def _systemd_word(word: str) -> str:
    """One ExecStart word: quoted when needed; % and $ escaped, which systemd would expand."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and not any(c in word for c in " \t\"'\\;"):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_unit(opts: ServiceOptions) -> str:
    exec_start = " ".join(_systemd_word(w) for w in opts.agent_argv())
    return f"""[Unit]
Description=nettvakt agent: probes, host metrics and facts, forwarded to the collector
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart={exec_start}
# Holds NETTVAKT_AGENT_TOKEN when the token reference is env:NETTVAKT_AGENT_TOKEN (mode 0600).
EnvironmentFile=-{LINUX_ENV_FILE}
StateDirectory=nettvakt
Restart=always
RestartSec=5
# SIGTERM lets the agent finish its current spool write; it never loses acknowledged data.
KillSignal=SIGTERM
TimeoutStopSec=30

[Install]
WantedBy=multi-user.target
"""


def install_linux(opts: ServiceOptions, unit_dir: Path = LINUX_UNIT_DIR, enable: bool = True, run: Runner | None = None) -> list[list[str]]:
    """Write the unit; with `enable`, reload systemd and start it. Returns the commands run (or to run)."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    path = unit_dir / f"{opts.name}.service"
    tmp = path.with_suffix(".service.tmp")
    tmp.write_text(systemd_unit(opts), encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    commands = [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", f"{opts.name}.service"]]
    if enable:
        _run_all(commands, run or _subprocess_runner)
    return commands


def _ps_quote(text: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded; ' is doubled."""
    return "'" + text.replace("'", "''") + "'"


def windows_script(opts: ServiceOptions) -> str:
    argv = opts.agent_argv()
    # Task Scheduler hands the argument string to the program as one command line, which the
    # C runtime splits by the CommandLineToArgvW rules that list2cmdline writes for.
    arguments = subprocess.list2cmdline(argv[1:])
    workdir = str(PureWindowsPath(opts.spool).parent)
    lines = [
        "$ErrorActionPreference = 'Stop'",
        f"New-Item -ItemType Directory -Force -Path {_ps_quote(workdir)} | Out-Null",
        f"$action = New-ScheduledTaskAction -Execute {_ps_quote(argv[0])} -Argument {_ps_quote(arguments)} -WorkingDirectory {_ps_quote(workdir)}",
        "$trigger = New-ScheduledTaskTrigger -AtStartup",
        # No time limit (the default stops a task after 72 h); restart a minute after a failure.
        "$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 999 "
        "-RestartInterval (New-TimeSpan -Minutes 1) -StartWhenAvailable -AllowStartIfOnBatteries "
        "-DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew",
        "$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest",
        f"Register-ScheduledTask -TaskName {_ps_quote(opts.name)} -Action $action -Trigger $trigger "
        "-Settings $settings -Principal $principal -Force | Out-Null",
        f"Start-ScheduledTask -TaskName {_ps_quote(opts.name)}",
    ]
    return "\n".join(lines)


def windows_commands(opts: ServiceOptions) -> list[list[str]]:
    return [["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", windows_script(opts)]]


def install_windows(opts: ServiceOptions, enable: bool = True, run: Runner | None = None) -> list[list[str]]:
    commands = windows_commands(opts)
    if enable:
        _run_all(commands, run or _subprocess_runner)
    return commands


def default_spool(platform: str = sys.platform) -> str:
    return WINDOWS_SPOOL if platform == "win32" else LINUX_SPOOL


def _subprocess_runner(argv: Sequence[str]) -> int:
    try:
        return subprocess.run(list(argv), check=False, timeout=120).returncode
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InstallError(f"{argv[0]}: {exc}") from exc


def _run_all(commands: list[list[str]], run: Runner) -> None:
    for argv in commands:
        code = run(argv)
        if code != 0:
            raise InstallError(f"`{' '.join(argv[:3])} ...` exited {code}")
