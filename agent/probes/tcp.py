"""The tcp probe: the time of a TCP handshake with host:port."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Mapping

from agent.probes.checks import ProbeConfigError, split_host_port
from agent.probes.kind import Fields, ProbeFailed, ProbeKind
from agent.probes.net import failure_reason, ms, resolve
from agent.schema import FieldSpec


async def probe_tcp(target: str, params: Mapping[str, Any], timeout_s: float) -> Fields:
    host, port = split_host_port(target)
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, sockaddr in await resolve(host, port, socket.SOCK_STREAM):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            t0 = time.perf_counter()  # after resolution: connect_ms is the handshake only
            await loop.sock_connect(sock, sockaddr)
            return {"connect_ms": ms(time.perf_counter() - t0)}
        except OSError as exc:
            error = exc
        finally:
            sock.close()
    assert error is not None
    raise ProbeFailed(failure_reason(error))


def _check_target(target: str, where: str) -> None:
    try:
        host, port = split_host_port(target)
    except ValueError:
        host, port = "", None
    if not host or port is None or any(c.isspace() for c in host):
        raise ProbeConfigError(f"{where}: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got {target!r}")


KIND = ProbeKind(
    name="tcp",
    run=probe_tcp,
    check_target=_check_target,
    latency_field="connect_ms",
    fields=(FieldSpec("connect_ms", "ms", "tcp: handshake time"),),
    help="TCP connect to host:port: the handshake time",
)
