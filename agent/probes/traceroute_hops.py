"""The traceroute probe's measuring code: per-hop address, RTT and loss, one point per hop.

ICMP echo requests with TTL 1, 2, ...: router n answers TTL n with time-exceeded, the target
answers with an echo reply. Echo rather than UDP because firewalls at the sites let ping
through far more often than traceroute's high UDP ports. Needs a raw socket (root): the
unprivileged ping socket does not deliver other hosts' time-exceeded messages.

Imported on the first traceroute probe (agent/probes/traceroute.py: its descriptor, limits and checks).
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Mapping

from agent.probes.icmp import ICMP_COOKIE_LEN, build_echo_request, open_icmp_socket, rtt_stats
from agent.probes.kind import ExtraPoints, Fields, ProbeFailed, ProbeResult
from agent.probes.net import resolve
from agent.probes.traceroute import TRACE_COUNT, TRACE_INTERVAL_MS, TRACE_MAX_HOPS

TRACE_NO_REPLY = "*"  # hop_addr of a hop that never answered, as traceroute prints it
_ICMP_ECHO_REPLY, _ICMP_UNREACHABLE, _ICMP_TIME_EXCEEDED = 0, 3, 11


@dataclass(frozen=True)
class TraceReply:
    kind: int  # ICMP type: 0 echo reply (the target), 11 time exceeded (a router), 3 unreachable
    ident: int
    seq: int
    src: str


def parse_trace_reply(data: bytes) -> TraceReply | None:
    """An IPv4 raw-socket packet as a reply to one of our echoes, else None.

    Time-exceeded and unreachable messages quote the original IP header and the first 8 bytes
    of our echo request, which carry its id and seq (RFC 792).
    """
    if len(data) < 28 or data[0] >> 4 != 4:
        return None
    src = socket.inet_ntoa(data[12:16])
    icmp = data[(data[0] & 0x0F) * 4 :]
    if len(icmp) < 8:
        return None
    kind, code = icmp[0], icmp[1]
    if kind == _ICMP_ECHO_REPLY and code == 0:
        ident, seq = struct.unpack("!HH", icmp[4:8])
        return TraceReply(kind, ident, seq, src)
    if kind in (_ICMP_TIME_EXCEEDED, _ICMP_UNREACHABLE):
        inner = icmp[8:]
        if len(inner) < 20 or inner[0] >> 4 != 4 or inner[9] != socket.IPPROTO_ICMP:
            return None
        quoted = inner[(inner[0] & 0x0F) * 4 :]
        if len(quoted) < 8 or quoted[0] != 8:
            return None
        ident, seq = struct.unpack("!HH", quoted[4:8])
        return TraceReply(kind, ident, seq, src)
    return None


def hop_tag(ttl: int) -> str:
    """"01".."64": zero-padded so tag values sort in path order."""
    return f"{ttl:02d}"


async def traceroute(
    host: str, count: int = TRACE_COUNT, max_hops: int = TRACE_MAX_HOPS,
    interval_ms: float = TRACE_INTERVAL_MS, timeout_s: float = 5.0,
) -> ProbeResult:
    """Per-hop address, RTT and loss to `host`; raises ProbeFailed (with the hops seen) when it is not reached."""
    family, sockaddr = (await resolve(host, None, socket.SOCK_DGRAM))[0]
    if family != socket.AF_INET:
        raise ProbeFailed("traceroute: IPv4 targets only")
    try:
        sock = open_icmp_socket(socket.AF_INET, "icmp")
    except PermissionError as exc:
        raise ProbeFailed("traceroute needs a raw ICMP socket (run the agent as root or Administrator)") from exc
    loop = asyncio.get_running_loop()
    ident = secrets.randbits(16)
    payload = secrets.token_bytes(ICMP_COOKIE_LEN) + bytes(24)
    sent_at: dict[tuple[int, int], float] = {}  # (round, ttl) -> send time
    answers: dict[tuple[int, int], tuple[float, TraceReply]] = {}
    dest_ttl: int | None = None  # lowest TTL that reached the target
    complete = asyncio.Event()

    def expected_in() -> bool:
        if dest_ttl is None:
            return False
        return all((r, t) in answers for (r, t) in sent_at if t <= dest_ttl)

    async def receive() -> None:
        nonlocal dest_ttl
        while True:
            try:
                data, _ = await loop.sock_recvfrom(sock, 65535)
            except OSError:
                continue
            at = time.perf_counter()
            reply = parse_trace_reply(data)
            # A raw socket sees all ICMP of the host: only replies to our id count.
            if reply is None or reply.ident != ident:
                continue
            key = (reply.seq >> 8, reply.seq & 0xFF)
            if key not in sent_at or key in answers:
                continue
            answers[key] = (at, reply)
            if reply.kind != _ICMP_TIME_EXCEEDED and (dest_ttl is None or key[1] < dest_ttl):
                dest_ttl = key[1]  # the target (echo reply) or the end of the road (unreachable)
            if expected_in():
                complete.set()

    receiver = asyncio.create_task(receive())
    try:
        for rnd in range(count):
            if rnd:
                await asyncio.sleep(interval_ms / 1000.0)
            # Later rounds skip TTLs beyond the target once it is known: they would only ping it again.
            for ttl in range(1, (dest_ttl or max_hops) + 1):
                seq = (rnd << 8) | ttl
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
                packet = build_echo_request(socket.AF_INET, ident, seq, payload)
                sent_at[(rnd, ttl)] = time.perf_counter()
                try:
                    sock.sendto(packet, sockaddr)
                except OSError:  # a full send buffer or no route: this probe never left
                    del sent_at[(rnd, ttl)]
        # Earlier rounds may have completed the event before the last round was sent.
        complete.clear()
        if not expected_in():
            try:
                async with asyncio.timeout(timeout_s):
                    await complete.wait()
            except TimeoutError:
                pass
    finally:
        receiver.cancel()
        await asyncio.gather(receiver, return_exceptions=True)
        sock.close()

    answered_ttls = [t for (_, t) in answers]
    last = dest_ttl or (max(answered_ttls) if answered_ttls else 0)
    hops: ExtraPoints = []
    for ttl in range(1, last + 1):
        rtts: list[float | None] = []
        sources: list[str] = []
        for rnd in range(count):
            if (rnd, ttl) not in sent_at:
                continue
            if (rnd, ttl) in answers:
                at, reply = answers[(rnd, ttl)]
                rtts.append((at - sent_at[(rnd, ttl)]) * 1000.0)
                sources.append(reply.src)
            else:
                rtts.append(None)
        stats = rtt_stats(rtts)
        stats.pop("jitter_ms", None)
        stats.pop("rtt_p95_ms", None)  # of three samples a p95 is just the max
        addr = max(set(sources), key=sources.count) if sources else TRACE_NO_REPLY
        hops.append(({"hop": hop_tag(ttl)}, {"hop_addr": addr, **stats}))
    if dest_ttl is None:
        reason = "no reply" if not hops else f"not reached within {max_hops} hops"
        raise ProbeFailed(reason, {"hops": float(len(hops))}, hops)
    dest = hops[-1][1]
    fields: Fields = {"hops": float(dest_ttl), "hop_addr": dest["hop_addr"], "loss_pct": dest["loss_pct"]}
    if "rtt_ms" in dest:
        fields["rtt_ms"] = dest["rtt_ms"]
    if answers[min(k for k in answers if k[1] == dest_ttl)][1].kind == _ICMP_UNREACHABLE:
        raise ProbeFailed("unreachable", fields, hops)
    return ProbeResult(fields, hops)


async def probe_traceroute(target: str, params: Mapping[str, Any], timeout_s: float) -> ProbeResult:
    return await traceroute(
        target,
        count=params.get("count", TRACE_COUNT),
        max_hops=params.get("max_hops", TRACE_MAX_HOPS),
        interval_ms=float(params.get("interval_ms", TRACE_INTERVAL_MS)),
        timeout_s=timeout_s,
    )
