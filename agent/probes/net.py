"""What the probes and their runner share on the network side: name resolution, timing, failure reasons."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Any

import aiohttp

MAX_REASON_LEN = 120

_ERRNO_REASONS = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.ETIMEDOUT: "timeout",
}


def failure_reason(exc: BaseException) -> str:
    """A short, bounded reason string for an exception (a field value, never a tag)."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return short_reason(f"tls: {exc.reason or exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return failure_reason(exc.os_error)
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return short_reason(exc.strerror.lower())
    return short_reason(str(exc) or type(exc).__name__)


def short_reason(text: str) -> str:
    """`text` on one line, cut to MAX_REASON_LEN."""
    text = " ".join(text.split())
    return text[: MAX_REASON_LEN - 3] + "..." if len(text) > MAX_REASON_LEN else text


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


async def resolve(host: str, port: int | None, sock_type: int) -> list[tuple[int, tuple[Any, ...]]]:
    """(family, sockaddr) for a host, IPv4 first: IPv4 is what every site here routes."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port or 0, type=sock_type)
    seen: list[tuple[int, tuple[Any, ...]]] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in seen:
            seen.append((family, sockaddr))
    if not seen:
        raise socket.gaierror(socket.EAI_NONAME, "no IPv4 or IPv6 address")
    seen.sort(key=lambda item: item[0] != socket.AF_INET)
    return seen
