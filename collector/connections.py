"""The collector's listening socket: at most so many connections per client address.

aiohttp closes a connection that sends no complete request head within its keep-alive
timeout (also right after connect), and the handlers bound how long a body may take; what
neither does is stop one address from holding hundreds of connections open. This wraps
each connection's protocol: past the bound, a new connection from that address is closed at
once, so a compromised PC can slow itself down but never crowd out the other agents.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable

log = logging.getLogger("nettvakt.collector")

# How often the same address's refusals are logged.
_REFUSAL_LOG_S = 60.0


class ConnectionGuard:
    def __init__(self, per_client: int):
        self.per_client = per_client
        self.open: Counter[str] = Counter()
        self.refused = 0
        self._logged: dict[str, float] = {}

    def take(self, client: str) -> bool:
        if self.open[client] >= self.per_client:
            self.refused += 1
            now = time.monotonic()
            if now - self._logged.get(client, -_REFUSAL_LOG_S) >= _REFUSAL_LOG_S:
                self._logged[client] = now
                log.warning("%s already holds %d connections, the most one address may; new ones are closed", client, self.per_client)
            return False
        self.open[client] += 1
        return True

    def release(self, client: str) -> None:
        self.open[client] -= 1
        if self.open[client] <= 0:
            del self.open[client]

    def stats(self) -> dict[str, int]:
        """For /health: connections open now, from how many addresses, and how many were refused since start."""
        return {"open": sum(self.open.values()), "clients": len(self.open), "refused": self.refused, "per_client": self.per_client}

    def factory(self, inner: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _GuardedProtocol(self, inner())


class _GuardedProtocol(asyncio.Protocol):
    """Passes everything to the wrapped protocol (aiohttp's request handler) once admitted."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol):
        self.guard = guard
        self.inner = inner
        self.client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if peer else "?"
        if not self.guard.take(client):
            transport.abort()
            return
        self.client = client
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is None:
            return  # refused: the inner protocol never saw the connection
        self.guard.release(self.client)
        self.client = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.client is not None else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()



async def listen(
    factory: Callable[[], asyncio.Protocol], host: str, port: int, guard: ConnectionGuard, ssl_context: ssl.SSLContext | None = None,
    *, reuse_port: bool = False,
) -> asyncio.Server:
    """`reuse_port`: beside the collector's other ingest workers on the same port (collector/workers.py)."""
    return await asyncio.get_running_loop().create_server(guard.factory(factory), host, port, ssl=ssl_context, reuse_port=reuse_port or None)


__all__ = ["ConnectionGuard", "listen"]

