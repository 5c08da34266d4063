"""agent/services.py: a real process for the process-name backend, a stand-in `systemctl`
script on PATH for the systemd backend, and the real (unbooted) systemctl of this VM.

(tests/test_localservers.py is collector/localservers.py's test; this file is the agent's.)
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from agent import services
from agent.services import (
    NOT_FOUND,
    ServiceState,
    collect_services,
    default_backend,
    process_state,
    systemd_booted,
    systemd_state,
    windows_state,
)

TAGS = {"site": "karlsoy", "host": "srv-1"}


@pytest.fixture
def nvtestsvc(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A `sleep` copied to a distinctive name and running; killed and reaped afterwards."""
    exe = tmp_path / "nvtestsvc"
    shutil.copy("/bin/sleep", exe)
    proc = subprocess.Popen([str(exe), "30"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def by_service(points: list) -> dict[str, dict]:
    for p in points:
        p.validate()
        assert p.measurement == "service"
    return {p.tags["service"]: dict(p.fields) for p in points}


def test_process_fallback_sees_a_real_process_come_and_go(nvtestsvc: subprocess.Popen) -> None:
    [point] = collect_services(["nvtestsvc"], TAGS, backend=process_state)
    assert point.tags == {**TAGS, "service": "nvtestsvc"}
    assert point.fields == {"up": 1.0, "status": "running"}

    nvtestsvc.kill()
    nvtestsvc.wait(timeout=5)
    [point] = collect_services(["nvtestsvc"], TAGS, backend=process_state)
    assert point.fields == {"up": 0.0, "status": NOT_FOUND}


def test_zombie_is_not_running(tmp_path: Path) -> None:
    exe = tmp_path / "nvtestsvc"
    shutil.copy("/bin/true", exe)
    proc = subprocess.Popen([str(exe)])
    try:
        deadline = time.monotonic() + 5
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE:  # exited, not reaped
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert process_state("nvtestsvc") == ServiceState(False, NOT_FOUND)
    finally:
        proc.wait(timeout=5)


def test_default_backend_on_this_machine(nvtestsvc: subprocess.Popen) -> None:
    # This VM has systemctl installed but systemd is not init: the process backend is used.
    if not systemd_booted():
        assert default_backend() is process_state
    found = by_service(collect_services(["nvtestsvc", "nettvakt-no-such-service"], TAGS))
    assert found["nvtestsvc"]["up"] == 1.0
    assert found["nettvakt-no-such-service"] == {"up": 0.0, "status": NOT_FOUND}


def test_backend_errors_are_points_and_the_rest_carry_on() -> None:
    def backend(name: str) -> ServiceState:
        if name == "broken":
            raise RuntimeError("boom")
        return ServiceState(name == "dns", "running" if name == "dns" else "stopped")

    found = by_service(collect_services(["dns", "broken", "dhcp"], TAGS, backend=backend))
    assert found == {
        "dns": {"up": 1.0, "status": "running"},
        "broken": {"up": 0.0, "status": "error: boom"},
        "dhcp": {"up": 0.0, "status": "stopped"},
    }


FAKE_SYSTEMCTL = """#!/bin/sh
# Stand-in for systemctl: the unit name is the last argument.
for last; do :; done
case "$last" in
  nginx) printf 'LoadState=loaded\\nActiveState=active\\nSubState=running\\n' ;;
  cups) printf 'ActiveState=inactive\\nSubState=dead\\nLoadState=loaded\\n' ;;
  hang) exec sleep 30 ;;  # exec: the timeout kill must hit the sleeper itself
  nobus) echo 'Failed to connect to bus: Host is down' >&2; exit 1 ;;
  *) printf 'LoadState=not-found\\nActiveState=inactive\\nSubState=dead\\n' ;;
esac
"""


@pytest.fixture
def fake_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(FAKE_SYSTEMCTL)
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_systemd_backend(fake_systemctl: None, monkeypatch: pytest.MonkeyPatch, nvtestsvc: subprocess.Popen) -> None:
    monkeypatch.setattr(services, "SYSTEMCTL_TIMEOUT_S", 0.5)
    found = by_service(collect_services(["nginx", "cups", "nvtestsvc", "ghost", "nobus", "hang"], TAGS, backend=systemd_state))
    assert found == {
        "nginx": {"up": 1.0, "status": "active (running)"},
        "cups": {"up": 0.0, "status": "inactive (dead)"},
        # unknown to systemd, but running as a process: the fallback finds it
        "nvtestsvc": {"up": 1.0, "status": "running"},
        "ghost": {"up": 0.0, "status": NOT_FOUND},
        "nobus": {"up": 0.0, "status": "systemctl failed: Failed to connect to bus: Host is down"},
        "hang": {"up": 0.0, "status": "systemctl timeout"},
    }


def test_real_systemctl_answers_as_a_point() -> None:
    assert shutil.which("systemctl"), "systemctl missing (Debian package systemd; scripts/test.sh installs it)"
    state = systemd_state("nettvakt-no-such-unit")
    assert not state.up
    if not systemd_booted():  # containers and CI: systemctl exists but cannot reach systemd
        assert state.status.startswith("systemctl failed:"), state.status


def test_windows_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    class Svc:
        def __init__(self, status: str) -> None:
            self._status = status

        def status(self) -> str:
            return self._status

    def win_service_get(name: str) -> Svc:
        if name == "Spooler":
            return Svc("running")
        if name == "wuauserv":
            return Svc("stopped")
        raise psutil.NoSuchProcess(pid=0, name=name)

    monkeypatch.setattr(psutil, "win_service_get", win_service_get, raising=False)
    found = by_service(collect_services(["Spooler", "wuauserv", "Nope"], TAGS, backend=windows_state))
    assert found == {
        "Spooler": {"up": 1.0, "status": "running"},
        "wuauserv": {"up": 0.0, "status": "stopped"},
        "Nope": {"up": 0.0, "status": NOT_FOUND},
    }
