"""The tcp probe: the time of a TCP handshake with host:port."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Mapping

from agent.probes.checks import check_host_port, split_host_port
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


KIND = ProbeKind(
    name="tcp",
    run=probe_tcp,
    check_target=check_host_port,
    latency_field="connect_ms",
    target_host=lambda target: split_host_port(target)[0],
    counts_loss=True,
    path_latency="handshake",
    fields=(FieldSpec("connect_ms", "ms", "tcp: handshake time"),),
    help="TCP connect to host:port: the handshake time",
)
