"""Blackbox probes run by the agent: icmp, tcp, http, dns, traceroute.

Each prober is one async function `(spec) -> fields`, listed once in `PROBES`. A prober only
measures: `run_probe` owns the timeout, the timing (`duration_ms`) and up/down, and turns every
target problem into a `probe` point with `up=0` and a short `reason` (docs/metrics.md).

A prober whose round yields several points (traceroute: one per hop) returns a `ProbeResult`:
the fields of the round's own point plus extra points, each with its extra tags. The round's
point keeps the one-point contract (`up`, `duration_ms`, `reason`); `run_probe_points` returns
it first, followed by the extra points with the same time.

The dns and traceroute probers are in agent/probe_dns.py and agent/probe_traceroute.py, imported
on their first use (see `PROBES`); their spec rules are here with every other kind's.

Agent-side module: stdlib, psutil and aiohttp only (no pydantic, no collector).
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import errno
import importlib
import ipaddress
import logging
import math
import os
import re
import secrets
import socket
import ssl
import struct
import time
import urllib.parse
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Mapping, Sequence

import aiohttp

from agent.points import FieldValue, Point, now_ns

log = logging.getLogger("nettvakt.agent.probes")

# Same rule as the collector's inventory slugs (collector/config.py), re-stated here because the
# agent may not import the collector.
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
MAX_REASON_LEN = 120


class ProbeConfigError(ValueError):
    """A probe spec that does not validate; the message starts with the path of the bad key."""


class ProbeFailed(Exception):
    """Raised by a prober when the target did not answer as expected.

    `fields` are the partial measurements to keep (e.g. icmp sent/received/loss_pct=100).
    """

    def __init__(
        self,
        reason: str,
        fields: Mapping[str, FieldValue] | None = None,
        extra: Sequence[tuple[Mapping[str, str], Mapping[str, FieldValue]]] = (),
    ):
        super().__init__(reason)
        self.reason = reason
        self.fields: dict[str, FieldValue] = dict(fields or {})
        self.extra = list(extra)  # points measured before the failure (traceroute hops up to the gap)


@dataclass(frozen=True)
class ProbeResult:
    """What a multi-point prober returns: its round's fields and (extra tags, fields) per extra point."""

    fields: dict[str, FieldValue]
    extra: list[tuple[Mapping[str, str], Mapping[str, FieldValue]]] = field(default_factory=list)


# --- the spec -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    target: str
    name: str
    interval_s: float = 30.0
    timeout_s: float = 5.0
    # Read-only, and left out of the hash so a spec stays hashable like any frozen dataclass.
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @classmethod
    def from_json(cls, data: Any, where: str) -> "ProbeSpec":
        """Validate the JSON form (as sent by the collector); errors name `where` and the key."""
        if not isinstance(data, dict):
            raise ProbeConfigError(f"{where}: expected an object, got {type(data).__name__}")
        for key in data:
            if key not in _SPEC_KEYS:
                raise ProbeConfigError(f"{where}.{key}: unknown key (known: {', '.join(_SPEC_KEYS)})")
        if "kind" not in data:
            raise ProbeConfigError(f"{where}.kind: required ({', '.join(sorted(PROBES))})")
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in PROBES:
            raise ProbeConfigError(f"{where}.kind: unknown probe kind {kind!r}; known: {', '.join(sorted(PROBES))}")
        target = data.get("target")
        if not isinstance(target, str) or not target.strip():
            raise ProbeConfigError(f"{where}.target: expected a non-empty string")
        _TARGET_RULES[kind](target, f"{where}.target")
        name = data.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ProbeConfigError(
                f"{where}.name: expected a slug (a-z, 0-9 and '-', at most 64 characters), got {name!r}"
            )
        interval_s = _positive_number(data.get("interval_s", 30.0), f"{where}.interval_s", "seconds")
        timeout_s = _positive_number(data.get("timeout_s", 5.0), f"{where}.timeout_s", "seconds")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ProbeConfigError(f"{where}.params: expected an object, got {type(params).__name__}")
        rules = _PARAM_RULES.get(kind, {})
        for key, value in params.items():
            if key not in rules:
                known = ", ".join(rules) or "none"
                raise ProbeConfigError(f"{where}.params.{key}: unknown key for {kind} probes (known: {known})")
            rules[key](value, f"{where}.params.{key}")
        if kind == "dns" and "resolver" not in params:
            raise ProbeConfigError(
                f"{where}.params.resolver: required for dns probes (e.g. \"10.0.0.53\" or \"127.0.0.1:5353\")"
            )
        if kind == "http" and params.get("verify_tls") is False and "ca_file" in params:
            raise ProbeConfigError(f"{where}.params.ca_file: has no effect with verify_tls = false; remove one")
        return cls(
            kind=kind,
            target=target,
            name=name,
            interval_s=interval_s,
            timeout_s=timeout_s,
            params=MappingProxyType(dict(params)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "name": self.name,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "params": dict(self.params),
        }


_SPEC_KEYS = ("kind", "target", "name", "interval_s", "timeout_s", "params")


def _positive_number(value: Any, where: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProbeConfigError(f"{where}: expected a positive number of {unit}, got {value!r}")
    return float(value)


# --- target and parameter rules (per kind; the kinds themselves come only from PROBES) -------
def split_host_port(text: str) -> tuple[str, int | None]:
    """'host:port', '[v6]:port', 'host', 'v6' -> (host, port or None)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad bracketed address {text!r}")
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r}")
    return int(text)


def _check_icmp_target(target: str, where: str) -> None:
    if any(c.isspace() for c in target) or len(target) > 253:
        raise ProbeConfigError(f"{where}: expected a host name or IP address, got {target!r}")


def _check_tcp_target(target: str, where: str) -> None:
    try:
        host, port = split_host_port(target)
    except ValueError:
        host, port = "", None
    if not host or port is None or any(c.isspace() for c in host):
        raise ProbeConfigError(f"{where}: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got {target!r}")


def _check_http_target(target: str, where: str) -> None:
    try:
        url = urllib.parse.urlsplit(target)
        ok = url.scheme in ("http", "https") and bool(url.hostname)
        url.port  # raises ValueError on a bad port
    except ValueError:
        ok = False
    if not ok:
        raise ProbeConfigError(f"{where}: expected an http:// or https:// URL, got {target!r}")


def _check_dns_target(target: str, where: str) -> None:
    from agent.probe_dns import encode_qname  # only when a dns probe is configured (see PROBES)

    try:
        encode_qname(target)
    except ValueError:
        raise ProbeConfigError(f"{where}: expected a DNS name, got {target!r}") from None


def _positive_int(value: Any, where: str, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProbeConfigError(f"{where}: expected a positive integer, got {value!r}")
    if value > maximum:
        raise ProbeConfigError(f"{where}: at most {maximum}, got {value!r}")


def _check_count(value: Any, where: str) -> None:
    _positive_int(value, where, 1000)


def _check_interval_ms(value: Any, where: str) -> None:
    _positive_number(value, where, "milliseconds")


def _check_size(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not ICMP_COOKIE_LEN <= value <= 65000:
        raise ProbeConfigError(f"{where}: expected an integer from {ICMP_COOKIE_LEN} to 65000 (payload bytes), got {value!r}")


HTTP_METHODS = ("GET", "HEAD", "OPTIONS", "POST")


def _check_method(value: Any, where: str) -> None:
    if value not in HTTP_METHODS:
        raise ProbeConfigError(f"{where}: expected one of {', '.join(HTTP_METHODS)}, got {value!r}")


def _check_expect_status(value: Any, where: str) -> None:
    codes = value if isinstance(value, list) else [value]
    if not codes or any(isinstance(c, bool) or not isinstance(c, int) or not 100 <= c <= 599 for c in codes):
        raise ProbeConfigError(f"{where}: expected an HTTP status (100-599) or a list of them, got {value!r}")


def _check_bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise ProbeConfigError(f"{where}: expected true or false, got {value!r}")


def _check_path(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise ProbeConfigError(f"{where}: expected a file path, got {value!r}")


def parse_resolver(text: str) -> tuple[str, int]:
    """'10.0.0.53', '127.0.0.1:5353', '::1', '[::1]:53' -> (ip, port)."""
    host, port = split_host_port(text)
    ipaddress.ip_address(host)  # ValueError for names: a resolver must be an address
    return host, port or 53


def _check_resolver(value: Any, where: str) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError
        parse_resolver(value)
    except ValueError:
        raise ProbeConfigError(
            f"{where}: expected an IP address with an optional port (e.g. \"10.0.0.53\", \"127.0.0.1:5353\", \"[::1]:53\"), got {value!r}"
        ) from None


DNS_TYPES = {"A": 1, "AAAA": 28}


def _check_record(value: Any, where: str) -> None:
    if value not in DNS_TYPES:
        raise ProbeConfigError(f"{where}: expected \"A\" or \"AAAA\", got {value!r}")


# Traceroute's limits live here with the other rules (and probe_budget_s); the prober itself is
# agent/probe_traceroute.py.
TRACE_COUNT = 3
TRACE_MAX_COUNT = 10
TRACE_MAX_HOPS = 30
TRACE_HOPS_LIMIT = 64
TRACE_INTERVAL_MS = 50.0


def _check_trace_count(value: Any, where: str) -> None:
    _positive_int(value, where, TRACE_MAX_COUNT)


def _check_max_hops(value: Any, where: str) -> None:
    _positive_int(value, where, TRACE_HOPS_LIMIT)


_TARGET_RULES: Mapping[str, Callable[[str, str], None]] = {
    "icmp": _check_icmp_target,
    "tcp": _check_tcp_target,
    "http": _check_http_target,
    "dns": _check_dns_target,
    "traceroute": _check_icmp_target,
}

_PARAM_RULES: Mapping[str, Mapping[str, Callable[[Any, str], None]]] = {
    "icmp": {"count": _check_count, "interval_ms": _check_interval_ms, "size": _check_size},
    "http": {"method": _check_method, "expect_status": _check_expect_status, "verify_tls": _check_bool, "ca_file": _check_path},
    "dns": {"resolver": _check_resolver, "record": _check_record},
    "traceroute": {"count": _check_trace_count, "max_hops": _check_max_hops, "interval_ms": _check_interval_ms},
}


# --- the runner -----------------------------------------------------------------------------
# Bursts end themselves (last echo + timeout); the runner's limit is only a safety net and
# must not cut a lossy burst that waited out its own deadline on a busy machine: that would
# turn a round with some loss into a round with no counts at all.
BURST_GRACE_S = 1.0


def probe_budget_s(spec: ProbeSpec) -> float:
    """Time the runner allows a probe: the timeout, plus the burst itself (and a grace) for icmp and traceroute."""
    if spec.kind == "icmp":
        count = spec.params.get("count", ICMP_COUNT)
        interval_ms = spec.params.get("interval_ms", ICMP_INTERVAL_MS)
        return count * interval_ms / 1000.0 + spec.timeout_s + BURST_GRACE_S
    if spec.kind == "traceroute":
        count = spec.params.get("count", TRACE_COUNT)
        interval_ms = spec.params.get("interval_ms", TRACE_INTERVAL_MS)
        return count * interval_ms / 1000.0 + spec.timeout_s + BURST_GRACE_S
    return spec.timeout_s


async def run_probe_points(spec: ProbeSpec, tags: Mapping[str, str]) -> list[Point]:
    """Run one probe round: its `probe` point first, then any extra points of a multi-point prober.

    A target problem is a point with up=0, never an exception.
    """
    started_ns = now_ns()
    t0 = time.perf_counter()
    fields: dict[str, FieldValue]
    extra: list[tuple[Mapping[str, str], Mapping[str, FieldValue]]] = []
    try:
        async with asyncio.timeout(probe_budget_s(spec)):
            result = await PROBES[spec.kind](spec)
        if isinstance(result, ProbeResult):
            result, extra = result.fields, result.extra
        fields = {"up": 1.0, **result}
    except ProbeFailed as exc:
        fields = {**exc.fields, "up": 0.0, "reason": exc.reason[:MAX_REASON_LEN]}
        extra = exc.extra
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        fields = {"up": 0.0, "reason": failure_reason(exc)}
    fields["duration_ms"] = _ms(time.perf_counter() - t0)
    base = {**tags, "kind": spec.kind, "target": spec.name}
    points = [Point("probe", tags=base, fields=fields, time_ns=started_ns)]
    points += [Point("probe", tags={**base, **t}, fields=dict(f), time_ns=started_ns) for t, f in extra]
    return points


async def run_probe(spec: ProbeSpec, tags: Mapping[str, str]) -> Point:
    """Run one probe and return its round's `probe` point (extra points of multi-point probers are dropped)."""
    return (await run_probe_points(spec, tags))[0]


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
        return _short(f"tls: {exc.reason or exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return failure_reason(exc.os_error)
    if isinstance(exc, socket.gaierror):
        return "name not resolved"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    if isinstance(exc, OSError) and exc.strerror:
        return _short(exc.strerror.lower())
    return _short(str(exc) or type(exc).__name__)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text[: MAX_REASON_LEN - 3] + "..." if len(text) > MAX_REASON_LEN else text


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


async def _resolve(host: str, port: int | None, sock_type: int) -> list[tuple[int, tuple[Any, ...]]]:
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


# --- icmp -----------------------------------------------------------------------------------
ICMP_COUNT = 5
ICMP_INTERVAL_MS = 200.0
ICMP_SIZE = 56  # payload bytes, as ping's default
ICMP_COOKIE_LEN = 8  # random bytes at the start of our payload: a reply must carry them back
TCP_FALLBACK_PORTS = (80, 22)
_ECHO = {socket.AF_INET: (8, 0), socket.AF_INET6: (128, 129)}  # (request, reply) types
_fallback_logged = False


def icmp_checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_echo_request(family: int, ident: int, seq: int, payload: bytes) -> bytes:
    kind = _ECHO[family][0]
    header = struct.pack("!BBHHH", kind, 0, 0, ident, seq)
    # ICMPv6 checksums cover an IPv6 pseudo header: the kernel fills them in for ICMPv6 sockets.
    checksum = icmp_checksum(header + payload) if family == socket.AF_INET else 0
    return struct.pack("!BBHHH", kind, 0, checksum, ident, seq) + payload


def parse_echo_reply(family: int, data: bytes) -> tuple[int, int, bytes] | None:
    """(id, seq, payload) of an echo reply, None for anything else (our own requests, errors, ...)."""
    if family == socket.AF_INET and len(data) >= 20 and data[0] >> 4 == 4:
        data = data[(data[0] & 0x0F) * 4 :]  # raw IPv4 sockets (and macOS dgram ones) include the IP header
    if len(data) < 8:
        return None
    kind, code, _, ident, seq = struct.unpack("!BBHHH", data[:8])
    if kind != _ECHO[family][1] or code != 0:
        return None
    return ident, seq, data[8:]


def rtt_stats(rtts_ms: Sequence[float | None]) -> dict[str, float]:
    """Burst statistics; `None` is a lost echo. Jitter uses consecutive received RTTs in send order."""
    got = [r for r in rtts_ms if r is not None]
    sent = len(rtts_ms)
    fields = {
        "sent": float(sent),
        "received": float(len(got)),
        "loss_pct": round(100.0 * (sent - len(got)) / sent, 3) if sent else 100.0,
    }
    if got:
        ordered = sorted(got)
        # The median and mean by hand, as statistics.median/fmean compute them: importing
        # `statistics` pulls in decimal and fractions, about 0.6 MB of the agent's resident memory.
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
        fields["rtt_ms"] = round(median, 3)
        fields["rtt_min_ms"] = round(ordered[0], 3)
        fields["rtt_max_ms"] = round(ordered[-1], 3)
        fields["rtt_p95_ms"] = round(ordered[math.ceil(0.95 * len(ordered)) - 1], 3)  # nearest rank
    if len(got) >= 2:
        fields["jitter_ms"] = round(math.fsum(abs(b - a) for a, b in zip(got, got[1:])) / (len(got) - 1), 3)
    return fields


def _open_icmp_socket(family: int, method: str) -> socket.socket:
    proto = socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6
    kind = socket.SOCK_RAW if method == "icmp" else socket.SOCK_DGRAM
    sock = socket.socket(family, kind, proto)
    sock.setblocking(False)
    return sock


async def _icmp_burst(
    sock: socket.socket, method: str, family: int, sockaddr: tuple[Any, ...],
    count: int, interval_s: float, size: int, wait_s: float, deadline: float,
) -> tuple[list[float | None], OSError | None]:
    """Send `count` echoes spaced `interval_s`; RTTs in ms (None = lost) and the last socket error."""
    loop = asyncio.get_running_loop()
    ident = secrets.randbits(16)  # dgram sockets: the kernel replaces it and filters replies for us
    cookie = secrets.token_bytes(ICMP_COOKIE_LEN)
    payload = cookie + bytes(i & 0xFF for i in range(size - ICMP_COOKIE_LEN))
    sent_at: dict[int, float] = {}
    replies: dict[int, float] = {}
    all_in = asyncio.Event()
    last_error: OSError | None = None

    async def receive() -> None:
        nonlocal last_error
        while True:
            try:
                data, _ = await loop.sock_recvfrom(sock, 65535)
            except OSError as exc:  # ICMP errors queued on the socket (e.g. host unreachable)
                last_error = exc
                continue
            at = time.perf_counter()
            parsed = parse_echo_reply(family, data)
            if parsed is None:
                continue
            rid, seq, body = parsed
            # A raw socket sees every ICMP packet of the host: match id (raw only), seq and cookie.
            if (method == "icmp" and rid != ident) or not body.startswith(cookie):
                continue
            if seq in sent_at and seq not in replies:
                replies[seq] = at
                if len(replies) == count:
                    all_in.set()

    receiver = asyncio.create_task(receive())
    try:
        for seq in range(count):
            if seq:
                await asyncio.sleep(interval_s)
            packet = build_echo_request(family, ident, seq, payload)
            sent_at[seq] = time.perf_counter()
            try:
                await loop.sock_sendto(sock, packet, sockaddr)
            except OSError as exc:  # unreachable network: this echo is lost, the burst goes on
                last_error = exc
                del sent_at[seq]
        remaining = min(wait_s, deadline - time.perf_counter())
        if sent_at and remaining > 0:
            try:
                async with asyncio.timeout(remaining):
                    await all_in.wait()
            except TimeoutError:
                pass
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
    rtts: list[float | None] = []
    for seq in range(count):
        rtt = replies[seq] - sent_at[seq] if seq in replies else None
        rtts.append(rtt * 1000.0 if rtt is not None and rtt <= wait_s else None)
    return rtts, last_error


async def _tcp_echo(family: int, sockaddr: tuple[Any, ...], ports: Sequence[int]) -> float:
    """Time until the host answers a TCP connect on any of `ports`; a refusal (RST) is an answer too."""
    loop = asyncio.get_running_loop()
    t0 = time.perf_counter()

    async def one(port: int) -> float:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            try:
                await loop.sock_connect(sock, (sockaddr[0], port, *sockaddr[2:]))
            except ConnectionRefusedError:
                pass
            return time.perf_counter() - t0
        finally:
            sock.close()

    tasks = [asyncio.create_task(one(p)) for p in ports]
    try:
        pending = set(tasks)
        error: BaseException | None = None
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is None:
                    return task.result() * 1000.0
                error = task.exception()
        assert error is not None
        raise error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _tcp_burst(
    family: int, sockaddr: tuple[Any, ...], count: int, interval_s: float, wait_s: float, deadline: float,
    ports: Sequence[int] = TCP_FALLBACK_PORTS,
) -> tuple[list[float | None], OSError | None]:
    last_error: OSError | None = None

    async def echo(delay: float) -> float | None:
        nonlocal last_error
        await asyncio.sleep(delay)
        try:
            async with asyncio.timeout(max(0.0, min(wait_s, deadline - time.perf_counter()))):
                return await _tcp_echo(family, sockaddr, ports)
        except TimeoutError:
            return None
        except OSError as exc:
            last_error = exc
            return None

    rtts = await asyncio.gather(*(echo(i * interval_s) for i in range(count)))
    return list(rtts), last_error


async def ping(
    host: str, count: int = ICMP_COUNT, interval_ms: float = ICMP_INTERVAL_MS, size: int = ICMP_SIZE,
    timeout_s: float = 5.0, methods: Sequence[str] = ("icmp", "icmp_dgram", "tcp"),
) -> dict[str, FieldValue]:
    """Echo burst to `host` with the first method this process may use; raises ProbeFailed when nothing answers."""
    global _fallback_logged
    t0 = time.perf_counter()
    family, sockaddr = (await _resolve(host, None, socket.SOCK_DGRAM))[0]  # any type works for an address
    interval_s = interval_ms / 1000.0
    # The whole burst ends `timeout_s` after its last echo, inside the runner's budget.
    deadline = t0 + (count - 1) * interval_s + timeout_s
    for method in methods:
        if method == "tcp":
            if len(methods) > 1 and not _fallback_logged:
                _fallback_logged = True
                log.warning(
                    "no ICMP socket allowed (not root, and net.ipv4.ping_group_range excludes this group): "
                    "icmp probes time TCP connects to ports %s instead (method=tcp)",
                    "/".join(map(str, TCP_FALLBACK_PORTS)),
                )
            rtts, error = await _tcp_burst(family, sockaddr, count, interval_s, timeout_s, deadline)
            break
        try:
            sock = _open_icmp_socket(family, method)
        except OSError as exc:  # PermissionError (raw), EACCES (ping_group_range), unsupported
            log.debug("icmp method %s unavailable: %s", method, exc)
            continue
        try:
            rtts, error = await _icmp_burst(sock, method, family, sockaddr, count, interval_s, size, timeout_s, deadline)
        finally:
            sock.close()
        break
    else:
        raise ProbeFailed(f"no usable echo method among {', '.join(methods)}")
    fields: dict[str, FieldValue] = {**rtt_stats(rtts), "method": method}
    if fields["received"] == 0:
        raise ProbeFailed(failure_reason(error) if error is not None else "no reply", fields)
    return fields


async def probe_icmp(spec: ProbeSpec) -> dict[str, FieldValue]:
    p = spec.params
    return await ping(
        spec.target,
        count=p.get("count", ICMP_COUNT),
        interval_ms=float(p.get("interval_ms", ICMP_INTERVAL_MS)),
        size=p.get("size", ICMP_SIZE),
        timeout_s=spec.timeout_s,
    )


# --- tcp ------------------------------------------------------------------------------------
async def probe_tcp(spec: ProbeSpec) -> dict[str, FieldValue]:
    host, port = split_host_port(spec.target)
    loop = asyncio.get_running_loop()
    error: OSError | None = None
    for family, sockaddr in await _resolve(host, port, socket.SOCK_STREAM):
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            t0 = time.perf_counter()  # after resolution: connect_ms is the handshake only
            await loop.sock_connect(sock, sockaddr)
            return {"connect_ms": _ms(time.perf_counter() - t0)}
        except OSError as exc:
            error = exc
        finally:
            sock.close()
    assert error is not None
    raise ProbeFailed(failure_reason(error))


# --- http -----------------------------------------------------------------------------------
HTTP_MAX_BODY = 16 * 1024 * 1024  # read (and count) at most this much; a probe is not a download


# The DER certificate of the peer of the running http probe. The probe sets a fresh list; the
# handshake appends to it. aiohttp may release the connection (and with it the transport) as soon
# as a small body has arrived, so the certificate is taken at the handshake, through the
# documented `SSLContext.sslobject_class` hook, instead of from the response. A context variable,
# because the SSL contexts are shared by concurrent probes: the transport's callbacks run in a
# copy of the context of the task that opened the connection, the probe's own.
_PEER_CERTS: contextvars.ContextVar[list[bytes] | None] = contextvars.ContextVar("nettvakt_peer_certs", default=None)


class _CertRecordingSSLObject(ssl.SSLObject):
    def do_handshake(self) -> None:
        super().do_handshake()  # raises SSLWantReadError until the handshake is done
        certs = _PEER_CERTS.get()
        der = self.getpeercert(binary_form=True)
        if der and certs is not None:
            certs.append(der)


# Built once per (verify_tls, ca_file and its mtime and size), and again after SSL_CONTEXT_MAX_AGE_S
# so updated system CAs are used: each context holds the parsed CA bundle (about 2 MB for the
# system store), and building one per probe made an agent with https probes grow steadily.
SSL_CONTEXT_MAX_AGE_S = 3600.0
_SSL_CONTEXTS_MAX = 8
_ssl_contexts: dict[tuple[Any, ...], tuple[float, ssl.SSLContext]] = {}


def _ssl_context(params: Mapping[str, Any]) -> ssl.SSLContext:
    verify = bool(params.get("verify_tls", True))
    ca_file = params.get("ca_file") if verify else None
    stamp: tuple[int, int] | None = None
    if ca_file is not None:
        try:
            st = os.stat(ca_file)
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            pass  # not cached: _new_ssl_context raises the error the probe reports
    key = (verify, ca_file, stamp)
    now = time.monotonic()
    cached = _ssl_contexts.get(key)
    if cached is not None and now - cached[0] < SSL_CONTEXT_MAX_AGE_S:
        return cached[1]
    context = _new_ssl_context(verify, ca_file)
    if ca_file is None or stamp is not None:
        _ssl_contexts.pop(key, None)
        if len(_ssl_contexts) >= _SSL_CONTEXTS_MAX:
            del _ssl_contexts[next(iter(_ssl_contexts))]  # the oldest
        _ssl_contexts[key] = (now, context)
    return context


def _new_ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies peer and host name by default
    context.sslobject_class = _CertRecordingSSLObject
    if verify:
        try:
            if ca_file is not None:
                context.load_verify_locations(cafile=ca_file)
            else:
                context.load_default_certs()
        except (OSError, ssl.SSLError) as exc:
            raise ProbeFailed(f"ca_file unusable: {failure_reason(exc)}") from exc
    else:
        # Only when the spec says verify_tls = false (e.g. a printer's self-signed web UI).
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _der_item(der: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER item at `pos`."""
    tag, length = der[pos], der[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(der[pos : pos + n], "big")
        pos += n
    return tag, pos, pos + length


def cert_not_after(der: bytes) -> dt.datetime:
    """notAfter of an X.509 certificate in DER form (stdlib only; getpeercert() gives nothing unverified)."""
    _, start, _ = _der_item(der, 0)  # Certificate
    _, pos, _ = _der_item(der, start)  # TBSCertificate
    tag, _, end = _der_item(der, pos)
    if tag == 0xA0:  # [0] version, optional
        pos = end
    for _ in range(3):  # serialNumber, signature, issuer
        pos = _der_item(der, pos)[2]
    _, validity, _ = _der_item(der, pos)
    not_before_end = _der_item(der, validity)[2]
    tag, start, end = _der_item(der, not_before_end)
    text = der[start:end].decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSS: 50-99 are 19xx (RFC 5280)
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.timezone.utc)


def _expected(status: int, expect: Any) -> bool:
    if expect is None:
        return 200 <= status < 400
    return status in (expect if isinstance(expect, list) else [expect])


async def probe_http(spec: ProbeSpec) -> dict[str, FieldValue]:
    params = spec.params
    context = _ssl_context(params) if spec.target.lower().startswith("https:") else None
    connector = aiohttp.TCPConnector(ssl=context if context is not None else True, force_close=True, limit=1)
    fields: dict[str, FieldValue] = {}
    peer_certs: list[bytes] = []
    token = _PEER_CERTS.set(peer_certs)
    try:
        # trust_env=False: measure the target itself, not a proxy in between.
        async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
            t0 = time.perf_counter()
            # Redirects are not followed: a 3xx is the target's answer (expected by default).
            async with session.request(params.get("method", "GET"), spec.target, allow_redirects=False) as resp:
                fields["status_code"] = float(resp.status)
                fields["ttfb_ms"] = _ms(time.perf_counter() - t0)
                if peer_certs:
                    left = cert_not_after(peer_certs[-1]) - dt.datetime.now(dt.timezone.utc)
                    fields["cert_days_left"] = round(left.total_seconds() / 86400.0, 3)
                size = 0
                async for chunk in resp.content.iter_chunked(65536):
                    size += len(chunk)
                    if size >= HTTP_MAX_BODY:
                        break
                fields["total_ms"] = _ms(time.perf_counter() - t0)
                fields["bytes"] = float(size)
    except aiohttp.ClientConnectorCertificateError as exc:
        error = exc.certificate_error
        detail = getattr(error, "verify_message", None) or str(error)  # e.g. "self-signed certificate"
        raise ProbeFailed(_short(f"tls: certificate verify failed: {detail}")) from exc
    except aiohttp.ClientConnectorError as exc:
        raise ProbeFailed(failure_reason(exc.os_error), fields) from exc
    except aiohttp.ClientError as exc:
        raise ProbeFailed(_short(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__), fields) from exc
    finally:
        _PEER_CERTS.reset(token)
    status = int(fields["status_code"])
    if not _expected(status, params.get("expect_status")):
        raise ProbeFailed(f"status {status}", fields)
    return fields


# --- the one table --------------------------------------------------------------------------
ProbeFn = Callable[[ProbeSpec], Awaitable[dict[str, FieldValue] | ProbeResult]]

# dns and traceroute live in their own modules, imported on their first probe: most agents run
# neither, and their code would cost resident memory for nothing (docs/benchmarks.md).
_LAZY_MODULES = {"dns": "agent.probe_dns", "traceroute": "agent.probe_traceroute"}


def _lazy_prober(kind: str) -> ProbeFn:
    async def prober(spec: ProbeSpec) -> dict[str, FieldValue] | ProbeResult:
        module = importlib.import_module(_LAZY_MODULES[kind])
        return await getattr(module, f"probe_{kind}")(spec)

    prober.__name__ = prober.__qualname__ = f"probe_{kind}"
    return prober


PROBES: Mapping[str, ProbeFn] = MappingProxyType(
    {"icmp": probe_icmp, "tcp": probe_tcp, "http": probe_http, "dns": _lazy_prober("dns"), "traceroute": _lazy_prober("traceroute")}
)

# The names those modules had here before they moved, still importable from agent.probes.
_MOVED = {
    "agent.probe_dns": ("DNS_RCODES", "encode_qname", "build_dns_query", "parse_dns_response", "probe_dns"),
    "agent.probe_traceroute": ("TRACE_NO_REPLY", "TraceReply", "parse_trace_reply", "hop_tag", "traceroute", "probe_traceroute"),
}


def __getattr__(name: str) -> Any:  # PEP 562: imports the module only when one of its names is asked for
    for module, names in _MOVED.items():
        if name in names:
            return getattr(importlib.import_module(module), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
