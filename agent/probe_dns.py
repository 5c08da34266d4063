"""The dns probe: one query over UDP straight to the resolver in the spec, timed.

Its own module, imported on the first dns probe (agent.probes `PROBES`): most agents run none,
and leaving it out keeps them smaller (docs/benchmarks.md, "Agent footprint"). The spec's rules
(resolver, record) stay in agent.probes, which validates every kind.
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from typing import Any, Callable

from agent.points import FieldValue
from agent.probes import DNS_TYPES, ProbeFailed, ProbeSpec, _ms, parse_resolver

DNS_RCODES = {1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp", 5: "refused"}


def encode_qname(name: str) -> bytes:
    """QNAME wire form: length-prefixed labels, IDNA-encoded, ending with the root label."""
    name = name.rstrip(".")
    if not name or len(name) > 253:
        raise ValueError(f"bad DNS name {name!r}")
    out = b""
    for label in name.split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) <= 63 or any(c <= 32 or c == 127 for c in raw):
            raise ValueError(f"bad DNS label {label!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def build_dns_query(qid: int, name: str, qtype: int) -> bytes:
    # Header: id, flags = RD (recursion desired), 1 question, no answers/authority/additional.
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + encode_qname(name) + struct.pack("!HH", qtype, 1)  # QCLASS IN


def _skip_name(msg: bytes, pos: int) -> tuple[bytes, int]:
    """Read a (possibly compressed) name: (lower-case dotted form, position after it)."""
    labels: list[bytes] = []
    end = None
    for _ in range(128):  # bound the pointer chase: a hostile answer must not loop us
        length = msg[pos]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = pos + 2
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        if length == 0:
            return b".".join(labels).lower(), end if end is not None else pos + 1
        labels.append(msg[pos + 1 : pos + 1 + length])
        pos += 1 + length
    raise ValueError("DNS name compression loop")


def parse_dns_response(msg: bytes, qid: int, qname: bytes, qtype: int) -> tuple[int, int] | None:
    """(rcode, answers of qtype) for the response to our query; None if it is not that response."""
    try:
        rid, flags, qdcount, ancount, _, _ = struct.unpack("!HHHHHH", msg[:12])
        if rid != qid or not flags & 0x8000 or qdcount != 1:
            return None
        name, pos = _skip_name(msg, 12)
        rtype, rclass = struct.unpack("!HH", msg[pos : pos + 4])
        if name != qname or rtype != qtype or rclass != 1:
            return None
        pos += 4
        answers = 0
        for _ in range(ancount):
            _, pos = _skip_name(msg, pos)
            atype, _, _, rdlength = struct.unpack("!HHIH", msg[pos : pos + 10])
            pos += 10 + rdlength
            if pos > len(msg):
                break
            answers += atype == qtype  # CNAMEs on the way are not answers
        return flags & 0x000F, answers
    except (struct.error, IndexError, ValueError):
        return None


class _DnsClient(asyncio.DatagramProtocol):
    def __init__(self, accept: Callable[[bytes], tuple[int, int] | None]):
        self.accept = accept
        self.answer: asyncio.Future[tuple[int, int, float]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        parsed = self.accept(data)
        if parsed is not None and not self.answer.done():
            self.answer.set_result((*parsed, time.perf_counter()))

    def error_received(self, exc: Exception) -> None:  # e.g. ICMP port unreachable
        if not self.answer.done():
            self.answer.set_exception(exc)


async def probe_dns(spec: ProbeSpec) -> dict[str, FieldValue]:
    host, port = parse_resolver(spec.params["resolver"])
    qtype = DNS_TYPES[spec.params.get("record", "A")]
    qid = secrets.randbits(16)
    query = build_dns_query(qid, spec.target, qtype)
    wire_name = _skip_name(query, 12)[0]
    loop = asyncio.get_running_loop()
    # A connected UDP socket: the kernel drops datagrams from anyone but the resolver.
    transport, client = await loop.create_datagram_endpoint(
        lambda: _DnsClient(lambda msg: parse_dns_response(msg, qid, wire_name, qtype)), remote_addr=(host, port)
    )
    try:
        t0 = time.perf_counter()
        transport.sendto(query)
        rcode, answers, at = await client.answer
    finally:
        transport.close()
    fields: dict[str, FieldValue] = {"resolve_ms": _ms(at - t0), "answers": float(answers), "rcode": float(rcode)}
    if rcode != 0:
        raise ProbeFailed(DNS_RCODES.get(rcode, f"rcode {rcode}"), fields)
    if answers == 0:
        raise ProbeFailed("no answer", fields)
    return fields

