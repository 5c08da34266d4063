"""The icmp probe: an echo burst to a host, its round-trip times, jitter and loss.

Raw ICMP as root, the unprivileged ICMP socket where net.ipv4.ping_group_range allows it, else
TCP connects to ports 80 and 22 (a refusal is an answer too). `ping` is also what
`nettvakt discover` sweeps with; the echo packets and `rtt_stats` serve traceroute as well.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import struct
import time
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from agent.probes.checks import ProbeConfigError, check_host, check_interval_ms, positive_int
from agent.probes.kind import Fields, ProbeFailed, ProbeKind, burst_budget_s
from agent.probes.net import failure_reason, resolve
from agent.schema import FieldSpec

log = logging.getLogger("nettvakt.agent.probes")

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


def open_icmp_socket(family: int, method: str) -> socket.socket:
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
) -> Fields:
    """Echo burst to `host` with the first method this process may use; raises ProbeFailed when nothing answers."""
    global _fallback_logged
    t0 = time.perf_counter()
    family, sockaddr = (await resolve(host, None, socket.SOCK_DGRAM))[0]  # any type works for an address
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
            sock = open_icmp_socket(family, method)
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
    fields: Fields = {**rtt_stats(rtts), "method": method}
    if fields["received"] == 0:
        raise ProbeFailed(failure_reason(error) if error is not None else "no reply", fields)
    return fields


async def probe_icmp(target: str, params: Mapping[str, Any], timeout_s: float) -> Fields:
    return await ping(
        target,
        count=params.get("count", ICMP_COUNT),
        interval_ms=float(params.get("interval_ms", ICMP_INTERVAL_MS)),
        size=params.get("size", ICMP_SIZE),
        timeout_s=timeout_s,
    )


def _check_count(value: Any, where: str) -> None:
    positive_int(value, where, 1000)


def _check_size(value: Any, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not ICMP_COOKIE_LEN <= value <= 65000:
        raise ProbeConfigError(f"{where}: expected an integer from {ICMP_COOKIE_LEN} to 65000 (payload bytes), got {value!r}")


def _budget_s(params: Mapping[str, Any], timeout_s: float) -> float:
    return burst_budget_s(params.get("count", ICMP_COUNT), params.get("interval_ms", ICMP_INTERVAL_MS), timeout_s)


# What an echo burst yields; traceroute writes the same for each hop.
ECHO_STATS = (
    FieldSpec("rtt_ms", "ms", "median round-trip time of the burst (icmp; traceroute: per hop, and on the round point to the destination)"),
    FieldSpec("rtt_min_ms", "ms", "fastest echo (icmp, traceroute hops)"),
    FieldSpec("rtt_max_ms", "ms", "slowest echo (icmp, traceroute hops)"),
    FieldSpec("rtt_p95_ms", "ms", "95th percentile of the burst (icmp, traceroute hops)"),
    FieldSpec("jitter_ms", "ms", "mean absolute difference of consecutive RTTs (icmp, traceroute hops)"),
    FieldSpec("loss_pct", "%", "lost echoes (icmp, traceroute)"),
    FieldSpec("sent", "count", "echoes sent (icmp, traceroute hops)"),
    FieldSpec("received", "count", "echoes answered (icmp, traceroute hops)"),
)

KIND = ProbeKind(
    name="icmp",
    run=probe_icmp,
    check_target=check_host,
    latency_field="rtt_ms",
    counts_loss=True,
    path_latency="round_trip",
    fields=(
        *ECHO_STATS,
        FieldSpec("method", "string", "icmp: `icmp` (raw), `icmp_dgram` (unprivileged) or `tcp` (fallback)"),
    ),
    help="echo burst to a host: round-trip time, jitter and loss (TCP connects to 80/22 where no ICMP socket is allowed)",
    params=MappingProxyType({"count": _check_count, "interval_ms": check_interval_ms, "size": _check_size}),
    budget_s=_budget_s,
)
