"""The dns probe's measuring code: one query over UDP straight to the resolver, timed.

Imported on the first dns probe (agent/probes/dns.py, its descriptor and checks).
"""

from __future__ import annotations

import asyncio
import secrets
import struct
import time
from typing import Any, Callable, Mapping

from agent.probes.dns import DNS_TYPES, encode_qname, parse_resolver
from agent.probes.kind import Fields, ProbeFailed
from agent.probes.net import ms

DNS_RCODES = {1: "formerr", 2: "servfail", 3: "nxdomain", 4: "notimp", 5: "refused"}


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


async def probe_dns(target: str, params: Mapping[str, Any], timeout_s: float) -> Fields:
    host, port = parse_resolver(params["resolver"])
    qtype = DNS_TYPES[params.get("record", "A")]
    qid = secrets.randbits(16)
    query = build_dns_query(qid, target, qtype)
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
    fields: Fields = {"resolve_ms": ms(at - t0), "answers": float(answers), "rcode": float(rcode)}
    if rcode != 0:
        raise ProbeFailed(DNS_RCODES.get(rcode, f"rcode {rcode}"), fields)
    if answers == 0:
        raise ProbeFailed("no answer", fields)
    return fields

