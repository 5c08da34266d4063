"""Real login sessions on this machine, for the tests that watch agents record them: `ssh -tt` to a
private sshd on loopback holding a shell (its utmp entry is what psutil.users() reads).

sshd (UsePAM no) writes the session's utmp entry itself when it allocates a terminal. This
machine boots without /run/utmp (no systemd-tmpfiles or init script makes it in this container),
and then sshd records nothing (it logs `syslogin_perform_logout: logout() returned an error`);
`ensure_utmp` creates the file as a normal boot does.
"""

from __future__ import annotations

import grp
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from collector.localservers import SshdServer, wait_until

UTMP = Path("/run/utmp")


def ensure_utmp() -> Path:
    """/run/utmp as a boot makes it (root:utmp 0664, empty), when this machine has none."""
    if not UTMP.exists():
        try:
            UTMP.touch(mode=0o664, exist_ok=True)
            os.chown(UTMP, 0, grp.getgrnam("utmp").gr_gid)
        except (OSError, KeyError) as exc:
            pytest.fail(f"cannot create {UTMP} for sshd to record sessions in: {exc} (run as root, or boot normally)", pytrace=False)
    return UTMP


class ShellSession:
    """`ssh -tt root@127.0.0.1` to the private sshd, holding a shell that waits for a line."""

    def __init__(self, sshd: SshdServer, key: Path):
        self.sshd = sshd
        self._before = {u.pid for u in psutil.users()}
        self.proc = subprocess.Popen(
            ["ssh", "-tt", "-i", str(key), "-p", str(sshd.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
             "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "root@127.0.0.1", "read line"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
        )
        # Ours among whatever else is logged in here: the new utmp entry whose process descends from our sshd.
        self.entry = wait_until(self._mine, 20, "the ssh session's utmp entry in psutil.users()")

    def _mine(self) -> Any:
        if self.proc.poll() is not None:
            raise AssertionError(f"ssh exited {self.proc.returncode}: {self.proc.stderr.read().decode() if self.proc.stderr else ''}")
        master = self.sshd.process.pid
        for entry in psutil.users():
            if entry.pid in self._before:
                continue
            try:
                if entry.pid and master in {p.pid for p in psutil.Process(entry.pid).parents()}:
                    return entry
            except psutil.NoSuchProcess:
                continue
        return None

    def close(self) -> None:
        """Log out: the shell reads its line and exits, ssh disconnects, sshd marks the entry dead."""
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"bye\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(5)
        wait_until(lambda: all(u.pid != self.entry.pid for u in psutil.users()), 15, "the session gone from utmp")
