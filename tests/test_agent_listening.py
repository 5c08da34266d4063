"""Listening services: which program listens on which ports, as `service` points with kind=listen."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections import namedtuple
from typing import Any

import psutil
import pytest

from agent import listening
from agent.listening import collect_listening

Addr = namedtuple("Addr", "ip port")
Conn = namedtuple("Conn", "fd family type laddr raddr status pid")

# A process that renames itself (Linux /proc/self/comm), listens on TCP v4 and v6 and binds a
# low UDP port, prints its ports and waits: a real program in the real socket table.
SERVER = r"""
import socket, sys
open("/proc/self/comm", "w").write("nvlisten-test")
t4 = socket.socket(); t4.bind(("127.0.0.1", 0)); t4.listen()
t6 = socket.socket(socket.AF_INET6); t6.bind(("::1", 0)); t6.listen()
for port in range(21000, 32000):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", port)); break
    except OSError:
        u.close()
print(t4.getsockname()[1], t6.getsockname()[1], u.getsockname()[1], flush=True)
sys.stdin.read()
"""


def test_a_real_listening_process_is_reported() -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        tcp4, tcp6, udp = map(int, proc.stdout.readline().split())
        points = collect_listening({"host": "h"})
    finally:
        proc.stdin.close()
        proc.wait(10)
    mine = [p for p in points if p.tags["service"] == "nvlisten-test"]
    assert len(mine) == 1
    point = mine[0]
    assert point.tags == {"host": "h", "service": "nvlisten-test", "kind": "listen"}
    tcp = sorted([(tcp4, f"tcp:127.0.0.1:{tcp4}"), (tcp6, f"tcp:[::1]:{tcp6}")])  # by protocol, then port
    assert point.fields["listen"] == " ".join([e for _, e in tcp] + [f"udp:127.0.0.1:{udp}"])
    assert point.fields["ports"] == ",".join(str(p) for p in sorted({tcp4, tcp6, udp}))
    assert point.fields["sockets"] == 3.0 and point.fields["processes"] == 1.0 and point.fields["up"] == 1.0
    for p in points:
        p.validate()


def fake(conns: list[Conn], names: dict[int, str]) -> list[Any]:
    return collect_listening({"host": "h"}, connections=lambda: conns, process_name=lambda pid: names[pid])


def test_only_services_count_and_programs_are_folded() -> None:
    conns = [
        Conn(3, socket.AF_INET, socket.SOCK_STREAM, Addr("0.0.0.0", 22), (), psutil.CONN_LISTEN, 100),
        Conn(4, socket.AF_INET6, socket.SOCK_STREAM, Addr("::", 22), (), psutil.CONN_LISTEN, 100),
        Conn(5, socket.AF_INET, socket.SOCK_STREAM, Addr("0.0.0.0", 443), (), psutil.CONN_LISTEN, 200),
        Conn(5, socket.AF_INET, socket.SOCK_STREAM, Addr("0.0.0.0", 80), (), psutil.CONN_LISTEN, 201),  # second worker
        Conn(6, socket.AF_INET, socket.SOCK_STREAM, Addr("10.0.0.5", 22), Addr("10.0.0.9", 5000), psutil.CONN_ESTABLISHED, 100),
        Conn(7, socket.AF_INET, socket.SOCK_DGRAM, Addr("0.0.0.0", 53), (), psutil.CONN_NONE, 300),
        Conn(8, socket.AF_INET, socket.SOCK_DGRAM, Addr("0.0.0.0", 51234), (), psutil.CONN_NONE, 300),  # a client port
        Conn(9, socket.AF_INET, socket.SOCK_DGRAM, Addr("10.0.0.5", 123), Addr("10.0.0.1", 123), psutil.CONN_NONE, 301),
        Conn(-1, socket.AF_INET, socket.SOCK_STREAM, Addr("0.0.0.0", 3389), (), psutil.CONN_LISTEN, None),
    ]
    points = fake(conns, {100: "sshd", 200: "nginx", 201: "nginx", 300: "named", 301: "ntpd"})
    by_name = {p.tags["service"]: p.fields for p in points}
    assert set(by_name) == {"sshd", "nginx", "named", "unknown"}  # ntpd's socket is connected: a client
    assert by_name["sshd"]["listen"] == "tcp:0.0.0.0:22 tcp:[::]:22" and by_name["sshd"]["ports"] == "22"
    assert by_name["nginx"] == {"up": 1.0, "listen": "tcp:0.0.0.0:80 tcp:0.0.0.0:443", "ports": "80,443", "sockets": 2.0, "processes": 2.0}
    assert by_name["named"]["listen"] == "udp:0.0.0.0:53"
    assert by_name["unknown"]["processes"] == 0.0 and by_name["unknown"]["ports"] == "3389"


def test_unreadable_socket_table_is_logged_once(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listening, "_warned_denied", False)

    def denied() -> list[Conn]:
        raise psutil.AccessDenied()

    with caplog.at_level(logging.WARNING, logger="nettvakt.agent.listening"):
        assert collect_listening({}, connections=denied) == []
        assert collect_listening({}, connections=denied) == []
    assert len(caplog.records) == 1 and "elevated rights" in caplog.records[0].message
