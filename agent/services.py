"""Is each service a server should run actually running? -> one `service` point per name.

Backends answer "what state is this service in" for one name; `collect_services` turns the
answers into points. A service that cannot be found or queried is a point with up=0 and a
status saying why, never a gap (STYLE.md: failures are data).

- Windows: the Service Control Manager via psutil.win_service_get.
- Linux with systemd as init: `systemctl show`; a name systemd does not know is looked up
  as a process, since small sites also run things started by a script or cron.
- Linux without systemd (containers, SysV/OpenRC hosts): a process with that name.

Blocking (subprocesses, process table walk): the caller runs it in a thread.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from agent.points import Point

log = logging.getLogger("nettvakt.agent.services")

SYSTEMCTL_TIMEOUT_S = 5.0
NOT_FOUND = "not found"


@dataclass(frozen=True, slots=True)
class ServiceState:
    up: bool
    status: str  # the OS's own words ("running", "active (running)", "stopped"), or why not known


# A backend answers for one service name. Injectable so tests can stand in for the OS.
ServiceBackend = Callable[[str], ServiceState]


def process_state(name: str) -> ServiceState:
    """Running when a live (non-zombie) process has this name, executable or argv[0] basename.

    Linux truncates the process name to 15 characters, so the executable and argv[0] are
    compared too; a zombie has exited and is not counted.
    """
    found = 0
    for proc in psutil.process_iter(["name", "exe", "cmdline", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        names = {info.get("name") or ""}
        if info.get("exe"):
            names.add(os.path.basename(info["exe"]))
        if info.get("cmdline"):
            names.add(os.path.basename(info["cmdline"][0]))
        if name in names:
            found += 1
    if found:
        return ServiceState(True, "running" if found == 1 else f"running ({found} processes)")
    return ServiceState(False, NOT_FOUND)


def systemd_booted() -> bool:
    """sd_booted(): systemd is init only when this directory exists. systemctl may be
    installed without it (containers), and then answers every query with an error."""
    return Path("/run/systemd/system").is_dir()


def systemd_state(name: str, fallback: ServiceBackend | None = process_state) -> ServiceState:
    """`systemctl show` for the unit; "active" is up. A unit systemd does not know goes to
    `fallback` (process name) before it is called not found."""
    try:
        done = subprocess.run(
            ["systemctl", "show", "--no-pager", "-p", "LoadState,ActiveState,SubState", "--", name],
            capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT_S, check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return ServiceState(False, "systemctl timeout")
    except OSError as exc:
        return ServiceState(False, f"systemctl failed: {exc.strerror or exc}")
    # Key=Value lines rather than --value: with --value the order of the values is the
    # unit's property order, not the order asked for.
    props = dict(line.partition("=")[::2] for line in done.stdout.splitlines() if "=" in line)
    active, sub, load = props.get("ActiveState", ""), props.get("SubState", ""), props.get("LoadState", "")
    if done.returncode != 0 or not active:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return ServiceState(False, f"systemctl failed: {reason}"[:200])
    if load == "not-found" and active != "active":
        return fallback(name) if fallback else ServiceState(False, NOT_FOUND)
    return ServiceState(active == "active", f"{active} ({sub})" if sub else active)


def windows_state(name: str) -> ServiceState:
    """The Windows service of that name (the short name, e.g. "Spooler", or display name)."""
    try:
        status = psutil.win_service_get(name).status()  # type: ignore[attr-defined]
    except psutil.NoSuchProcess:
        return ServiceState(False, NOT_FOUND)
    except psutil.AccessDenied:
        return ServiceState(False, "access denied")
    except OSError as exc:
        return ServiceState(False, f"error: {exc}"[:200])
    return ServiceState(status == "running", status)


def default_backend() -> ServiceBackend:
    if sys.platform == "win32":
        return windows_state
    if sys.platform.startswith("linux") and systemd_booted() and shutil.which("systemctl"):
        return systemd_state
    return process_state


def collect_services(
    names: Sequence[str],
    tags: Mapping[str, str],
    backend: ServiceBackend | None = None,
) -> list[Point]:
    """One `service` point per name (tags: the caller's plus `service`; fields `up`, `status`)."""
    query = backend or default_backend()
    points: list[Point] = []
    for name in names:
        try:
            state = query(name)
        except Exception as exc:  # one broken lookup must not hide the other services
            log.warning("service %s: backend failed: %s", name, exc)
            state = ServiceState(False, f"error: {exc}"[:200])
        points.append(
            Point(
                measurement="service",
                tags={**tags, "service": name},
                fields={"up": 1.0 if state.up else 0.0, "status": state.status},
            )
        )
    return points
