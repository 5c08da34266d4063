"""Probes against real peers on loopback: ICMP to 127.0.0.1/::1, TCP listeners, aiohttp (HTTP and HTTPS
with a certificate made here), a small UDP DNS responder. ICMP loss and the unprivileged ICMP socket
are shown in a network namespace of our own (unshare --net), so no packet leaves this host.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.points import Point
from agent.probes import (
    PROBES,
    ProbeConfigError,
    ProbeSpec,
    build_echo_request,
    cert_not_after,
    icmp_checksum,
    parse_echo_reply,
    ping,
    rtt_stats,
    run_probe,
)
from collector.tls import make_self_signed
from serving import serving

ROOT = Path(__file__).resolve().parents[1]
TAGS = {"site": "radhus", "host": "test-pc"}


def probe(kind: str, target: str, timeout_s: float = 5.0, **params: Any) -> Point:
    spec = ProbeSpec.from_json({"kind": kind, "target": target, "name": "t", "timeout_s": timeout_s, "params": params}, "probe")
    point = asyncio.run(run_probe(spec, TAGS))
    point.validate()  # every probe point fits the measurement contract
    assert point.measurement == "probe" and point.tags == {**TAGS, "kind": kind, "target": "t"}
    assert point.fields["duration_ms"] >= 0
    return point


def free_port() -> int:
    """A port nothing listens on: bound once to learn a free number, then closed."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- ProbeSpec validation: one bad input per rule, each with its exact message ----------------
GOOD = {"kind": "icmp", "target": "10.0.0.1", "name": "gw"}

BAD_SPECS = [
    ([], "probes[2]: expected an object, got list"),
    ({**GOOD, "color": "red"}, "probes[2].color: unknown key (known: kind, target, name, interval_s, timeout_s, params)"),
    ({"target": "x", "name": "gw"}, "probes[2].kind: required (dns, http, icmp, tcp, traceroute)"),
    ({**GOOD, "kind": "smtp"}, "probes[2].kind: unknown probe kind 'smtp'; known: dns, http, icmp, tcp, traceroute"),
    ({**GOOD, "target": " "}, "probes[2].target: expected a non-empty string"),
    ({**GOOD, "target": "10.0.0.1 10.0.0.2"}, "probes[2].target: expected a host name or IP address, got '10.0.0.1 10.0.0.2'"),
    ({**GOOD, "kind": "tcp", "target": "10.0.0.1"}, "probes[2].target: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got '10.0.0.1'"),
    ({**GOOD, "kind": "tcp", "target": "10.0.0.1:70000"}, "probes[2].target: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got '10.0.0.1:70000'"),
    ({**GOOD, "kind": "http", "target": "ftp://x/"}, "probes[2].target: expected an http:// or https:// URL, got 'ftp://x/'"),
    ({**GOOD, "kind": "dns", "target": "a..b", "params": {"resolver": "10.0.0.53"}}, "probes[2].target: expected a DNS name, got 'a..b'"),
    ({**GOOD, "name": "Rådhus GW"}, "probes[2].name: expected a slug (a-z, 0-9 and '-', at most 64 characters), got 'Rådhus GW'"),
    ({**GOOD, "interval_s": 0}, "probes[2].interval_s: expected a positive number of seconds, got 0"),
    ({**GOOD, "timeout_s": "5"}, "probes[2].timeout_s: expected a positive number of seconds, got '5'"),
    ({**GOOD, "params": [1]}, "probes[2].params: expected an object, got list"),
    ({**GOOD, "params": {"cnt": 5}}, "probes[2].params.cnt: unknown key for icmp probes (known: count, interval_ms, size)"),
    ({**GOOD, "kind": "tcp", "target": "h:22", "params": {"count": 5}}, "probes[2].params.count: unknown key for tcp probes (known: none)"),
    ({**GOOD, "params": {"count": 0}}, "probes[2].params.count: expected a positive integer, got 0"),
    ({**GOOD, "params": {"count": True}}, "probes[2].params.count: expected a positive integer, got True"),
    ({**GOOD, "params": {"count": 5000}}, "probes[2].params.count: at most 1000, got 5000"),
    ({**GOOD, "params": {"interval_ms": -1}}, "probes[2].params.interval_ms: expected a positive number of milliseconds, got -1"),
    ({**GOOD, "params": {"size": 4}}, "probes[2].params.size: expected an integer from 8 to 65000 (payload bytes), got 4"),
    ({**GOOD, "kind": "http", "target": "http://x/", "params": {"method": "DELETE"}}, "probes[2].params.method: expected one of GET, HEAD, OPTIONS, POST, got 'DELETE'"),
    ({**GOOD, "kind": "http", "target": "http://x/", "params": {"expect_status": [200, 700]}}, "probes[2].params.expect_status: expected an HTTP status (100-599) or a list of them, got [200, 700]"),
    ({**GOOD, "kind": "http", "target": "http://x/", "params": {"verify_tls": "no"}}, "probes[2].params.verify_tls: expected true or false, got 'no'"),
    ({**GOOD, "kind": "http", "target": "http://x/", "params": {"ca_file": ""}}, "probes[2].params.ca_file: expected a file path, got ''"),
    ({**GOOD, "kind": "http", "target": "https://x/", "params": {"verify_tls": False, "ca_file": "/ca.pem"}}, "probes[2].params.ca_file: has no effect with verify_tls = false; remove one"),
    ({**GOOD, "kind": "dns", "target": "x.no"}, "probes[2].params.resolver: required for dns probes (e.g. \"10.0.0.53\" or \"127.0.0.1:5353\")"),
    ({**GOOD, "kind": "dns", "target": "x.no", "params": {"resolver": "dns.google"}}, "probes[2].params.resolver: expected an IP address with an optional port (e.g. \"10.0.0.53\", \"127.0.0.1:5353\", \"[::1]:53\"), got 'dns.google'"),
    ({**GOOD, "kind": "dns", "target": "x.no", "params": {"resolver": "10.0.0.53", "record": "MX"}}, "probes[2].params.record: expected \"A\" or \"AAAA\", got 'MX'"),
]


@pytest.mark.parametrize(("data", "message"), BAD_SPECS, ids=[m.split(":")[0] + f"-{i}" for i, (_, m) in enumerate(BAD_SPECS)])
def test_probe_spec_rejects_with_exact_message(data: Any, message: str) -> None:
    with pytest.raises(ProbeConfigError) as info:
        ProbeSpec.from_json(data, "probes[2]")
    assert str(info.value) == message


def test_probe_spec_defaults_round_trip_and_kinds_come_from_the_table() -> None:
    spec = ProbeSpec.from_json(GOOD, "p")
    assert (spec.interval_s, spec.timeout_s, dict(spec.params)) == (30.0, 5.0, {})
    full = {
        "kind": "dns", "target": "intranett.karlsoy.kommune.no", "name": "dns-radhus", "interval_s": 60,
        "timeout_s": 2.5, "params": {"resolver": "[::1]:5353", "record": "AAAA"},
    }
    spec = ProbeSpec.from_json(full, "p")
    assert spec.to_json() == {**full, "interval_s": 60.0}
    assert ProbeSpec.from_json(spec.to_json(), "p") == spec
    hash(spec)  # frozen and hashable although params is a mapping
    with pytest.raises(TypeError):
        spec.params["record"] = "A"  # type: ignore[index]
    assert isinstance(ProbeConfigError("x"), ValueError)  # RemoteConfig.from_json catches ValueError
    for kind in PROBES:
        target = {"tcp": "h:1", "http": "http://h/", "dns": "h.no"}.get(kind, "h")
        params = {"resolver": "10.0.0.53"} if kind == "dns" else {}
        assert ProbeSpec.from_json({"kind": kind, "target": target, "name": "x", "params": params}, "p").kind == kind


# --- icmp ------------------------------------------------------------------------------------
def test_rtt_statistics_with_loss_and_jitter() -> None:
    stats = rtt_stats([10.0, None, 12.0, 11.0, None, 30.0])
    assert stats == {
        "sent": 6.0, "received": 4.0, "loss_pct": 33.333,
        "rtt_ms": 11.5, "rtt_min_ms": 10.0, "rtt_max_ms": 30.0, "rtt_p95_ms": 30.0,
        # consecutive received RTTs in send order: |12-10|, |11-12|, |30-11|
        "jitter_ms": round((2 + 1 + 19) / 3, 3),
    }
    assert rtt_stats([None, None, None]) == {"sent": 3.0, "received": 0.0, "loss_pct": 100.0}
    assert rtt_stats([4.0]) == {"sent": 1.0, "received": 1.0, "loss_pct": 0.0, "rtt_ms": 4.0, "rtt_min_ms": 4.0, "rtt_max_ms": 4.0, "rtt_p95_ms": 4.0}
    twenty = rtt_stats([float(i) for i in range(1, 21)])
    assert twenty["rtt_p95_ms"] == 19.0 and twenty["rtt_ms"] == 10.5 and twenty["jitter_ms"] == 1.0


def test_icmp_packet_checksum_and_reply_parsing() -> None:
    packet = build_echo_request(socket.AF_INET, 0x1234, 7, b"abcdefgh")
    assert icmp_checksum(packet) == 0  # a correct checksum sums the packet to zero
    # ping(8)'s first echo to 127.0.0.1 (id 0x0001, seq 1, no payload) has checksum 0xf7fd.
    assert build_echo_request(socket.AF_INET, 1, 1, b"")[2:4] == b"\xf7\xfd"
    reply = b"\x00" + packet[1:]
    ip_header = bytes([0x45]) + bytes(19)
    assert parse_echo_reply(socket.AF_INET, ip_header + reply) == (0x1234, 7, b"abcdefgh")  # raw: IP header first
    assert parse_echo_reply(socket.AF_INET, reply) == (0x1234, 7, b"abcdefgh")  # dgram: ICMP only
    assert parse_echo_reply(socket.AF_INET, packet) is None  # our own request, seen by a raw socket
    assert parse_echo_reply(socket.AF_INET6, bytes([129, 0, 0, 0, 0, 5, 0, 9])) == (5, 9, b"")


@pytest.mark.parametrize("target", ["127.0.0.1", "::1", "localhost"])
def test_icmp_echo_to_loopback(target: str) -> None:
    point = probe("icmp", target, count=5, interval_ms=20)
    f = point.fields
    assert f["up"] == 1.0 and "reason" not in f
    assert (f["sent"], f["received"], f["loss_pct"]) == (5.0, 5.0, 0.0)
    assert f["method"] == "icmp"  # the tests run as root: a raw socket
    assert 0 < f["rtt_min_ms"] <= f["rtt_ms"] <= f["rtt_p95_ms"] <= f["rtt_max_ms"] < 100
    assert f["jitter_ms"] >= 0
    assert f["duration_ms"] >= 4 * 20  # the burst is spaced interval_ms apart
    assert all(isinstance(v, float) for k, v in f.items() if k != "method")


def test_concurrent_icmp_bursts_only_count_their_own_replies() -> None:
    # Every raw ICMP socket sees every echo reply of the host: id, seq and cookie keep them apart.
    async def main() -> list[Point]:
        specs = [ProbeSpec("icmp", "127.0.0.1", f"p{i}", params={"count": 10, "interval_ms": 5}) for i in range(6)]
        return await asyncio.gather(*(run_probe(s, TAGS) for s in specs))

    for point in asyncio.run(main()):
        assert point.fields["sent"] == 10.0 and point.fields["received"] == 10.0, point.fields


def test_icmp_tcp_fallback_counts_a_refused_connect_as_an_answer() -> None:
    # Ports 80/22 on loopback: a listener or a RST, both prove the host is there.
    fields = asyncio.run(ping("127.0.0.1", count=3, interval_ms=10, timeout_s=2, methods=("tcp",)))
    assert fields["method"] == "tcp" and fields["received"] == 3.0 and fields["loss_pct"] == 0.0


def in_own_netns(setup: str, code: str) -> dict[str, Any]:
    """Run `code` (Python, prints JSON) in a fresh network namespace after the shell `setup`."""
    script = f'{setup}\nexec "$0" -c "$1"'
    result = subprocess.run(
        ["unshare", "--net", "sh", "-ec", script, sys.executable, code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


PING_IN_NETNS = """
import asyncio, json
from agent.probes import ProbeSpec, ping, run_probe
async def main():
    out = {{}}
    for target in ("127.0.0.1", "::1"):
        out[target] = {call}
    return out
print(json.dumps(asyncio.run(main())))
"""


def test_icmp_unprivileged_datagram_socket() -> None:
    # ping_group_range is per network namespace: allow every group in ours only.
    setup = "ip link set lo up\nsysctl -q -w net.ipv4.ping_group_range='0 2147483647'"
    call = "await ping(target, count=4, interval_ms=10, timeout_s=2, methods=('icmp_dgram',))"
    out = in_own_netns(setup, PING_IN_NETNS.format(call=call))
    for target, fields in out.items():
        assert fields["method"] == "icmp_dgram", target
        assert fields["received"] == 4.0 and fields["loss_pct"] == 0.0, (target, fields)


def test_icmp_total_loss_is_a_down_point_with_the_burst_counts() -> None:
    # A namespace whose firewall drops every echo: nothing answers, nothing leaves the host.
    setup = (
        "ip link set lo up\n"
        "nft add table inet nvdrop\n"
        "nft add chain inet nvdrop in '{ type filter hook input priority 0; }'\n"
        "nft add rule inet nvdrop in meta l4proto '{ icmp, ipv6-icmp }' drop"
    )
    code = PING_IN_NETNS.format(call="(await run_probe(ProbeSpec('icmp', target, 'gw', timeout_s=0.3, params={'count': 3, 'interval_ms': 20}), {})).fields")
    out = in_own_netns(setup, code)
    for target, fields in out.items():
        assert fields["up"] == 0.0 and fields["reason"] == "no reply", (target, fields)
        assert (fields["sent"], fields["received"], fields["loss_pct"]) == (3.0, 0.0, 100.0)
        assert fields["method"] == "icmp"
        assert not any(k.startswith("rtt") or k == "jitter_ms" for k in fields)
        assert 300 <= fields["duration_ms"] < 1500  # 2 intervals + the timeout after the last echo


def test_icmp_unreachable_network_is_data() -> None:
    # lo is down in a fresh namespace: sending fails, the point says why.
    code = PING_IN_NETNS.format(call="(await run_probe(ProbeSpec('icmp', target, 'gw', timeout_s=0.2, params={'count': 2, 'interval_ms': 10}), {})).fields")
    out = in_own_netns(":", code)
    # Without lo there is no route to 127.0.0.1, and ::1 is not even assigned.
    expected = {"127.0.0.1": "network unreachable", "::1": "cannot assign requested address"}
    for target, fields in out.items():
        assert fields["up"] == 0.0 and fields["reason"] == expected[target], (target, fields)
        assert fields["sent"] == 2.0 and fields["received"] == 0.0


# --- tcp ------------------------------------------------------------------------------------
def test_tcp_connect_to_a_listener_and_to_a_closed_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        up = probe("tcp", f"127.0.0.1:{port}")
    assert up.fields["up"] == 1.0 and 0 <= up.fields["connect_ms"] < 1000
    down = probe("tcp", f"127.0.0.1:{free_port()}")
    assert down.fields["up"] == 0.0 and down.fields["reason"] == "connection refused"
    assert "connect_ms" not in down.fields


def test_tcp_ipv6_and_unresolvable_name() -> None:
    with socket.socket(socket.AF_INET6) as listener:
        listener.bind(("::1", 0))
        listener.listen()
        up = probe("tcp", f"[::1]:{listener.getsockname()[1]}")
    assert up.fields["up"] == 1.0
    down = probe("tcp", "no-such-host.invalid:80")
    assert down.fields == {"up": 0.0, "reason": "name not resolved", "duration_ms": down.fields["duration_ms"]}


# --- http -----------------------------------------------------------------------------------
@asynccontextmanager
async def web_server(ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="hei fra rådhuset\n" * 100)

    async def unavailable(request: web.Request) -> web.Response:
        return web.Response(status=503, text="vedlikehold")

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response(text="late")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    app = web.Application()
    app.router.add_routes([web.get("/ok", ok), web.get("/down", unavailable), web.get("/slow", slow), web.get("/moved", moved)])
    async with serving(app, shutdown_timeout=0.1, ssl_context=ssl_context) as url:
        yield urlsplit(url).port


def run_against_server(specs: Callable[[int], list[ProbeSpec]], ssl_context: ssl.SSLContext | None = None) -> list[Point]:
    async def main() -> list[Point]:
        async with web_server(ssl_context) as port:
            points = [await run_probe(spec, TAGS) for spec in specs(port)]
        for point in points:
            point.validate()
        return points

    return asyncio.run(main())


def http_spec(url: str, timeout_s: float = 5.0, **params: Any) -> ProbeSpec:
    return ProbeSpec.from_json({"kind": "http", "target": url, "name": "web", "timeout_s": timeout_s, "params": params}, "p")


def test_http_ok_error_status_redirect_and_timeout() -> None:
    ok, down, down_expected, moved, slow = run_against_server(
        lambda port: [
            http_spec(f"http://127.0.0.1:{port}/ok"),
            http_spec(f"http://127.0.0.1:{port}/down"),
            http_spec(f"http://127.0.0.1:{port}/down", expect_status=[503]),
            http_spec(f"http://127.0.0.1:{port}/moved"),
            http_spec(f"http://127.0.0.1:{port}/slow", timeout_s=0.3),
        ]
    )
    f = ok.fields
    assert f["up"] == 1.0 and f["status_code"] == 200.0
    assert f["bytes"] == float(len(("hei fra rådhuset\n" * 100).encode()))
    assert 0 < f["ttfb_ms"] <= f["total_ms"] <= f["duration_ms"]
    assert "cert_days_left" not in f
    assert down.fields["up"] == 0.0 and down.fields["reason"] == "status 503" and down.fields["status_code"] == 503.0
    assert down.fields["bytes"] == float(len("vedlikehold"))
    assert down_expected.fields["up"] == 1.0
    assert moved.fields["up"] == 1.0 and moved.fields["status_code"] == 302.0  # 3xx is an answer; not followed
    assert slow.fields["up"] == 0.0 and slow.fields["reason"] == "timeout"
    assert 300 <= slow.fields["duration_ms"] < 2000


def test_runner_timeout_against_a_listener_that_never_answers() -> None:
    async def main() -> Point:
        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accept and say nothing until the client leaves
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            t0 = time.perf_counter()
            point = await run_probe(http_spec(f"http://127.0.0.1:{port}/", timeout_s=0.25), TAGS)
            assert time.perf_counter() - t0 < 1.5
        return point

    point = asyncio.run(main())
    assert point.fields == {"up": 0.0, "reason": "timeout", "duration_ms": point.fields["duration_ms"]}
    assert point.fields["duration_ms"] >= 250


def make_cert(tmp_path: Path, days: int) -> tuple[Path, Path, x509.Certificate]:
    """A self-signed certificate for localhost and 127.0.0.1 valid for `days`, made as `nettvakt collector tls` makes one."""
    cert_file, key_file = tmp_path / f"cert{days}.pem", tmp_path / f"key{days}.pem"
    make_self_signed(cert_file, key_file, ["localhost", "127.0.0.1"], days=days)
    return cert_file, key_file, x509.load_pem_x509_certificate(cert_file.read_bytes())


@pytest.mark.parametrize("days", [30, 365 * 40])  # UTCTime, and GeneralizedTime after 2049
def test_cert_not_after_from_der(tmp_path: Path, days: int) -> None:
    _, _, cert = make_cert(tmp_path, days)
    assert cert_not_after(cert.public_bytes(serialization.Encoding.DER)) == cert.not_valid_after_utc


def test_https_with_own_ca_file_and_certificate_lifetime(tmp_path: Path) -> None:
    cert_file, key_file, _ = make_cert(tmp_path, 30)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert_file, key_file)
    trusted, untrusted, unverified, missing_ca = run_against_server(
        lambda port: [
            http_spec(f"https://127.0.0.1:{port}/ok", ca_file=str(cert_file)),
            http_spec(f"https://127.0.0.1:{port}/ok"),
            http_spec(f"https://localhost:{port}/ok", verify_tls=False),
            http_spec(f"https://127.0.0.1:{port}/ok", ca_file=str(tmp_path / "missing.pem")),
        ],
        server_ctx,
    )
    f = trusted.fields
    assert f["up"] == 1.0 and f["status_code"] == 200.0
    assert 29.99 < f["cert_days_left"] <= 30.0
    # Verification is on by default: the self-signed certificate is refused without its ca_file.
    assert untrusted.fields["up"] == 0.0
    assert untrusted.fields["reason"] == "tls: certificate verify failed: self-signed certificate"
    assert unverified.fields["up"] == 1.0 and 29.99 < unverified.fields["cert_days_left"] <= 30.0
    assert missing_ca.fields["up"] == 0.0 and missing_ca.fields["reason"] == "ca_file unusable: no such file or directory"


def test_https_ca_file_replaced_on_disk_is_used_by_the_next_probe(tmp_path: Path) -> None:
    # Probes share one TLS context per ca_file; a renewed certificate written over the file must count.
    first_dir, second_dir = tmp_path / "a", tmp_path / "b"
    first_dir.mkdir()
    second_dir.mkdir()
    cert_a, key_a, _ = make_cert(first_dir, 30)
    cert_b, key_b, _ = make_cert(second_dir, 90)
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(cert_a.read_bytes())
    server_a = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_a.load_cert_chain(cert_a, key_a)
    server_b = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_b.load_cert_chain(cert_b, key_b)
    spec = lambda port: [http_spec(f"https://127.0.0.1:{port}/ok", ca_file=str(ca_file))]  # noqa: E731
    [before] = run_against_server(spec, server_a)
    [refused] = run_against_server(spec, server_b)  # the server got the new certificate first
    ca_file.write_bytes(cert_b.read_bytes() + b"\n")  # then the file on the agent's machine
    [after] = run_against_server(spec, server_b)
    assert before.fields["up"] == 1.0 and 29.99 < before.fields["cert_days_left"] <= 30.0
    assert refused.fields["up"] == 0.0 and "certificate verify failed" in str(refused.fields["reason"])
    assert after.fields["up"] == 1.0 and 89.99 < after.fields["cert_days_left"] <= 90.0


# --- dns ------------------------------------------------------------------------------------
KNOWN = "intranett.karlsoy.kommune.no"


class DnsResponder(asyncio.DatagramProtocol):
    """Answers A for KNOWN (two records, with name compression), NODATA for its AAAA, NXDOMAIN else.

    For 'slow.' names it stays silent; for 'spoof.' names it first sends a reply with a wrong id.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        qid, flags = struct.unpack("!HH", data[:4])
        pos, labels = 12, []
        while data[pos]:
            labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
            pos += 1 + data[pos]
        qtype, _ = struct.unpack("!HH", data[pos + 1 : pos + 5])
        question = data[12 : pos + 5]
        name = ".".join(labels).lower()
        if name.startswith("slow."):
            return
        answers = b""
        if name.removeprefix("spoof.") == KNOWN:
            rcode, count = 0, 0
            if qtype == 1:
                count = 2
                for ip in ("10.20.0.5", "10.20.0.6"):
                    answers += struct.pack("!HHHIH", 0xC00C, 1, 1, 300, 4) + socket.inet_aton(ip)
        else:
            rcode, count = 3, 0
        if name.startswith("spoof."):
            self.transport.sendto(struct.pack("!HHHHHH", qid ^ 0xFFFF, 0x8180, 1, 0, 0, 0) + question, addr)
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode | (flags & 0x0100), 1, count, 0, 0)
        self.transport.sendto(header + question + answers, addr)


def test_dns_against_a_real_udp_responder() -> None:
    async def main() -> list[Point]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(DnsResponder, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        resolver = f"127.0.0.1:{port}"

        def spec(name: str, **params: Any) -> ProbeSpec:
            return ProbeSpec.from_json(
                {"kind": "dns", "target": name, "name": "dns", "timeout_s": 0.3, "params": {"resolver": resolver, **params}}, "p"
            )

        try:
            return [
                await run_probe(s, TAGS)
                for s in (
                    spec(KNOWN),
                    spec(KNOWN.upper() + "."),
                    spec("nope.karlsoy.kommune.no"),
                    spec(KNOWN, record="AAAA"),
                    spec("slow." + KNOWN),
                    spec("spoof." + KNOWN),
                )
            ]
        finally:
            transport.close()

    found, upper, missing, nodata, silent, spoofed = asyncio.run(main())
    for point in (found, upper, missing, nodata, silent, spoofed):
        point.validate()
    assert found.fields["up"] == 1.0 and found.fields["answers"] == 2.0 and found.fields["rcode"] == 0.0
    assert 0 <= found.fields["resolve_ms"] <= found.fields["duration_ms"]
    assert upper.fields["up"] == 1.0 and upper.fields["answers"] == 2.0
    assert missing.fields["up"] == 0.0 and missing.fields["reason"] == "nxdomain" and missing.fields["rcode"] == 3.0
    assert nodata.fields["up"] == 0.0 and nodata.fields["reason"] == "no answer" and nodata.fields["answers"] == 0.0
    assert silent.fields["up"] == 0.0 and silent.fields["reason"] == "timeout"
    assert spoofed.fields["up"] == 1.0 and spoofed.fields["answers"] == 2.0  # the wrong-id reply was ignored


def test_dns_to_a_port_without_resolver_is_refused() -> None:
    point = probe("dns", KNOWN, timeout_s=1, resolver=f"127.0.0.1:{free_port()}")
    assert point.fields["up"] == 0.0 and point.fields["reason"] == "connection refused"
