"""`nettvakt agent install-service`: the systemd unit (checked by systemd-analyze) and the exact
Windows commands it would run."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.cli import main
from agent.install import InstallError, ServiceOptions, install_linux, install_windows, systemd_unit, windows_commands

OPTS = ServiceOptions(
    collector="https://nettvakt.karlsoy.local:8650",
    agent_id="plo-pc",
    token_ref="file:/etc/nettvakt/token",
    spool="/var/lib/nettvakt/spool.sqlite3",
    python=sys.executable,  # systemd-analyze checks that ExecStart's program exists
)


def verify_unit(path: Path) -> None:
    """systemd's own parser; it runs without systemd as init."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze not installed (Debian package systemd)", pytrace=False)
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_linux_unit_is_written_and_valid(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    commands = install_linux(OPTS, tmp_path, run=lambda argv: ran.append(list(argv)) or 0)
    unit = tmp_path / "nettvakt-agent.service"
    assert ran == commands == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "nettvakt-agent.service"]]
    text = unit.read_text()
    assert (
        f"ExecStart={sys.executable} -m agent.cli agent run --collector https://nettvakt.karlsoy.local:8650 "
        "--agent-id plo-pc --token file:/etc/nettvakt/token --spool /var/lib/nettvakt/spool.sqlite3\n"
    ) in text
    assert "Restart=always" in text and "WantedBy=multi-user.target" in text
    assert oct(unit.stat().st_mode & 0o777) == "0o644"
    verify_unit(unit)


def test_awkward_paths_are_quoted_for_systemd(tmp_path: Path) -> None:
    opts = ServiceOptions(**{**OPTS.__dict__, "spool": "/srv/nett vakt/100%/$spool.sqlite3", "ca_file": "/etc/ca \"x\".pem"})
    text = systemd_unit(opts)
    assert '--spool "/srv/nett vakt/100%%/$$spool.sqlite3" --ca-file "/etc/ca \\"x\\".pem"' in text
    install_linux(opts, tmp_path, enable=False)
    verify_unit(tmp_path / "nettvakt-agent.service")


def test_a_failing_systemctl_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="systemctl daemon-reload"):
        install_linux(OPTS, tmp_path, run=lambda argv: 1)


WINDOWS_OPTS = ServiceOptions(
    collector="https://nettvakt.karlsoy.local:8650",
    agent_id="sak-pc-07",
    token_ref=r"file:C:\ProgramData\nettvakt\token.txt",
    spool=r"C:\ProgramData\nettvakt\spool.sqlite3",
    python=r"C:\Program Files\Python311\python.exe",
    ca_file=r"C:\ProgramData\nettvakt\Karlsøy CA.pem",
)

WINDOWS_SCRIPT = "\n".join([
    "$ErrorActionPreference = 'Stop'",
    r"New-Item -ItemType Directory -Force -Path 'C:\ProgramData\nettvakt' | Out-Null",
    r"$action = New-ScheduledTaskAction -Execute 'C:\Program Files\Python311\python.exe' -Argument '-m agent.cli agent run "
    r"--collector https://nettvakt.karlsoy.local:8650 --agent-id sak-pc-07 --token file:C:\ProgramData\nettvakt\token.txt "
    r"""--spool C:\ProgramData\nettvakt\spool.sqlite3 --ca-file "C:\ProgramData\nettvakt\Karlsøy CA.pem"' """
    r"-WorkingDirectory 'C:\ProgramData\nettvakt'",
    "$trigger = New-ScheduledTaskTrigger -AtStartup",
    "$settings = New-ScheduledTaskSettingsSet -ExecutionTimeLimit ([TimeSpan]::Zero) -RestartCount 999 "
    "-RestartInterval (New-TimeSpan -Minutes 1) -StartWhenAvailable -AllowStartIfOnBatteries "
    "-DontStopIfGoingOnBatteries -MultipleInstances IgnoreNew",
    "$principal = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest",
    "Register-ScheduledTask -TaskName 'nettvakt-agent' -Action $action -Trigger $trigger "
    "-Settings $settings -Principal $principal -Force | Out-Null",
    "Start-ScheduledTask -TaskName 'nettvakt-agent'",
])


def test_windows_commands_are_exactly_these() -> None:
    assert windows_commands(WINDOWS_OPTS) == [
        ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", WINDOWS_SCRIPT]
    ]


def test_windows_install_runs_them_and_reports_failure() -> None:
    ran: list[Sequence[str]] = []
    install_windows(WINDOWS_OPTS, run=lambda argv: ran.append(argv) or 0)
    assert ran == windows_commands(WINDOWS_OPTS)
    with pytest.raises(InstallError, match="powershell.exe -NoProfile -NonInteractive"):
        install_windows(WINDOWS_OPTS, run=lambda argv: 1)
    # A quote in a name cannot break out of PowerShell's single-quoted strings.
    script = windows_commands(ServiceOptions(**{**WINDOWS_OPTS.__dict__, "name": "it's"}))[0][-1]
    assert "-TaskName 'it''s'" in script


def test_cli_writes_the_unit_without_starting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([
        "agent", "install-service", "--collector", "https://c.example:8650", "--agent-id", "plo-pc",
        "--token", "file:/etc/nettvakt/token", "--spool", "relative/spool.sqlite3",
        "--unit-dir", str(tmp_path), "--no-start",
    ])
    assert code == 0
    out = capsys.readouterr().out
    assert "systemctl enable --now nettvakt-agent.service" in out
    text = (tmp_path / "nettvakt-agent.service").read_text()
    assert f"--spool {Path('relative/spool.sqlite3').absolute()}" in text and sys.executable in text
    verify_unit(tmp_path / "nettvakt-agent.service")


def test_cli_refuses_a_literal_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["agent", "install-service", "--collector", "https://c:1", "--token", "s3cret", "--unit-dir", str(tmp_path), "--no-start"])
    assert code == 2 and "never the token" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())
