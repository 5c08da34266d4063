"""Which processes listen on which ports -> one `service` point per listening program.

The municipality wants a map of which applications run on which server. The socket table
(psutil.net_connections) names the listening TCP sockets and the bound UDP ports; each is
attributed to its process, and the sockets of one program (all its processes, both address
families) are folded into one point:

    tags   site, host, service = program name as the OS reports it, kind = "listen"
    fields up = 1.0, listen = "tcp:0.0.0.0:22 tcp:[::]:22", ports = "22",
           sockets = 2, processes = 1

`kind=listen` keeps these apart from the inventory's service checks (no `kind` tag), so a
dashboard can list "what listens here" next to "what should run here". A socket whose
process cannot be seen (another user's, without root) counts under service "unknown".

Blocking (walks /proc or the Windows socket table): the caller runs it in a thread.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import psutil

from agent.hostmetrics import tag_value
from agent.points import MAX_STRING_FIELD_LEN, Point

log = logging.getLogger("nettvakt.agent.listening")

UNKNOWN = "unknown"
# UDP sockets bound above this are mostly clients (resolvers, NTP) waiting for answers, not
# services; Linux hands out ephemeral ports from 32768 and Windows from 49152.
UDP_EPHEMERAL_START = 32768

Connections = Callable[[], Iterable[Any]]  # psutil sconn-like: family, type, laddr, raddr, status, pid
ProcessName = Callable[[int], str]

_warned_denied = False


def _psutil_connections() -> Iterable[Any]:
    return psutil.net_connections(kind="inet")


def _process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name() or UNKNOWN
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return UNKNOWN


def _endpoint(conn: Any) -> str | None:
    """"tcp:0.0.0.0:22" for a listening socket, None for anything that is not a service."""
    laddr = conn.laddr
    if not laddr:
        return None
    if conn.type == socket.SOCK_STREAM:
        if conn.status != psutil.CONN_LISTEN:
            return None
        proto = "tcp"
    elif conn.type == socket.SOCK_DGRAM:
        if conn.raddr or laddr.port >= UDP_EPHEMERAL_START:
            return None
        proto = "udp"
    else:
        return None
    ip = f"[{laddr.ip}]" if conn.family == socket.AF_INET6 else laddr.ip
    return f"{proto}:{ip}:{laddr.port}"


def collect_listening(
    tags: Mapping[str, str],
    connections: Connections = _psutil_connections,
    process_name: ProcessName = _process_name,
) -> list[Point]:
    """One `service` point (kind=listen) per program with a listening socket; [] if the table is unreadable."""
    global _warned_denied
    try:
        conns = list(connections())
    except psutil.AccessDenied:
        # macOS and some hardened hosts need root for the socket table: say so once.
        if not _warned_denied:
            _warned_denied = True
            log.warning("listening services: the socket table needs elevated rights here; not reported")
        return []
    except OSError as exc:
        log.warning("listening services: cannot read the socket table: %s", exc)
        return []
    names: dict[int, str] = {}
    by_program: dict[str, tuple[set[str], set[int], set[int]]] = {}
    for conn in conns:
        endpoint = _endpoint(conn)
        if endpoint is None:
            continue
        if conn.pid:
            if conn.pid not in names:
                names[conn.pid] = tag_value(process_name(conn.pid))
            name = names[conn.pid]
        else:
            name = UNKNOWN
        endpoints, ports, pids = by_program.setdefault(name, (set(), set(), set()))
        endpoints.add(endpoint)
        ports.add(conn.laddr.port)
        if conn.pid:
            pids.add(conn.pid)
    points = []
    for name in sorted(by_program):
        endpoints, ports, pids = by_program[name]
        ordered = sorted(endpoints, key=lambda e: (e.split(":", 1)[0], int(e.rsplit(":", 1)[1]), e))
        listen = " ".join(ordered)
        if len(listen) > MAX_STRING_FIELD_LEN:  # a program on thousands of ports: keep what fits
            listen = listen[: MAX_STRING_FIELD_LEN - 4].rsplit(" ", 1)[0] + " ..."
        port_text = ",".join(str(p) for p in sorted(ports))
        if len(port_text) > MAX_STRING_FIELD_LEN:
            port_text = port_text[: MAX_STRING_FIELD_LEN - 4].rsplit(",", 1)[0] + ",..."
        points.append(
            Point(
                measurement="service",
                tags={**tags, "service": name, "kind": "listen"},
                fields={
                    "up": 1.0,
                    "listen": listen,
                    "ports": port_text,
                    "sockets": float(len(endpoints)),
                    "processes": float(len(pids)),
                },
            )
        )
    return points
