"""The traceroute probe: one `probe` point for the round and one per hop (tag `hop`).

Path tests run the agent in a namespace lab site -- fw -- inet (two router hops to the
internet host) and need root; without it they fail with the reason, never skip.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
from typing import Any

import pytest

from agent.probes import ProbeConfigError, ProbeSpec, build_echo_request, run_probe, run_probe_points
from agent.probes.traceroute_hops import hop_tag, parse_trace_reply
from collector.lab import Lab

pytestmark = pytest.mark.lab

def trace_from(lab: Lab, node: str, target: str, *extra: str) -> tuple[int, list[dict[str, Any]]]:
    proc = lab.exec(
        node, [sys.executable, "-m", "agent.cli", "probe", "traceroute", target, "--json", "--timeout", "2", *extra],
        check=False, timeout=60,
    )
    points = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert points, proc.stderr
    return proc.returncode, points


def test_two_hops_from_a_site_to_the_internet(path_lab: Lab) -> None:
    target = path_lab.addr("inet")
    code, points = trace_from(path_lab, "site", target)
    assert code == 0
    summary, *hops = points
    assert summary["tags"]["kind"] == "traceroute" and "hop" not in summary["tags"]
    assert summary["fields"]["up"] == 1.0 and summary["fields"]["hops"] == 2.0
    assert summary["fields"]["hop_addr"] == target
    assert [h["tags"]["hop"] for h in hops] == ["01", "02"]
    assert [h["fields"]["hop_addr"] for h in hops] == [path_lab.addr("fw", "uplink"), target]
    for hop in hops:
        assert hop["time"] == summary["time"]
        assert hop["fields"]["sent"] == 3.0 and hop["fields"]["loss_pct"] == 0.0
        assert "up" not in hop["fields"]  # mean("up") of a target counts rounds, not hops
        assert 0 < hop["fields"]["rtt_min_ms"] <= hop["fields"]["rtt_ms"] <= hop["fields"]["rtt_max_ms"]


def test_the_slow_segment_shows_at_its_hop(path_lab: Lab) -> None:
    lab = path_lab
    target = lab.addr("inet")
    lab.shape("wan", 1000)
    bulk = lab.saturate("site", "inet", 20)
    try:
        code, points = trace_from(lab, "site", target, "--count", "5")
    finally:
        bulk.stop()
        lab.unshape("wan")
    assert code == 0
    first, second = (p["fields"] for p in points[1:])
    # The queue of the loaded 1 Mbit/s wan link delays hop 2 only; hop 1 (site -> fw) stays fast.
    assert second["rtt_ms"] > 30 and second["rtt_ms"] > 10 * first["rtt_ms"], (first, second)


def test_not_reached_within_max_hops_keeps_the_hops_seen(path_lab: Lab) -> None:
    code, points = trace_from(path_lab, "site", path_lab.addr("inet"), "--max-hops", "1")
    assert code == 1
    summary, hop = points
    assert summary["fields"]["up"] == 0.0 and summary["fields"]["reason"] == "not reached within 1 hops"
    assert hop["tags"]["hop"] == "01" and hop["fields"]["hop_addr"] == path_lab.addr("fw", "uplink")


def test_a_silent_hop_is_a_star_with_full_loss(path_lab: Lab) -> None:
    lab = path_lab
    # fw stops answering TTL expiry (as many ISP routers do); the target still answers.
    lab.exec("fw", ["nft", "-f", "-"], input=(
        "table ip nvtrace {\n chain out {\n  type filter hook output priority 0; policy accept;\n"
        "  icmp type time-exceeded drop\n }\n}\n"
    ))
    try:
        code, points = trace_from(lab, "site", lab.addr("inet"))
    finally:
        lab.exec("fw", ["nft", "delete", "table", "ip", "nvtrace"])
    assert code == 0
    hop1, hop2 = (p["fields"] for p in points[1:])
    assert hop1["hop_addr"] == "*" and hop1["loss_pct"] == 100.0 and "rtt_ms" not in hop1
    assert hop2["hop_addr"] == lab.addr("inet") and hop2["loss_pct"] == 0.0


def test_loopback_is_one_hop_and_run_probe_keeps_one_point() -> None:
    spec = ProbeSpec.from_json({"kind": "traceroute", "target": "127.0.0.1", "name": "lo", "params": {"count": 2}}, "probe")
    points = asyncio.run(run_probe_points(spec, {"host": "h"}))
    assert [p.tags.get("hop") for p in points] == [None, "01"]
    assert points[1].fields["hop_addr"] == "127.0.0.1" and points[1].fields["sent"] == 2.0
    single = asyncio.run(run_probe(spec, {"host": "h"}))
    assert single.fields["up"] == 1.0 and single.fields["hops"] == 1.0


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_hops": 65}, "probe.params.max_hops: at most 64"),
        ({"count": 11}, "probe.params.count: at most 10"),
        ({"size": 64}, "probe.params.size: unknown key for traceroute probes"),
    ],
)
def test_bad_traceroute_params(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ProbeConfigError, match=message):
        ProbeSpec.from_json({"kind": "traceroute", "target": "10.0.0.1", "name": "t", "params": params}, "probe")


def ip_header(src: str, dst: str, proto: int, payload_len: int) -> bytes:
    return struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + payload_len, 0, 0, 64, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )


def test_parse_time_exceeded_quoting_our_echo() -> None:
    echo = build_echo_request(socket.AF_INET, 0x1234, (2 << 8) | 5, b"cookie!!" + bytes(24))
    quoted = ip_header("10.77.1.1", "10.77.2.2", socket.IPPROTO_ICMP, len(echo)) + echo[:8]
    icmp = struct.pack("!BBHI", 11, 0, 0, 0) + quoted
    packet = ip_header("10.77.1.2", "10.77.1.1", socket.IPPROTO_ICMP, len(icmp)) + icmp
    reply = parse_trace_reply(packet)
    assert reply is not None and (reply.kind, reply.ident, reply.seq, reply.src) == (11, 0x1234, (2 << 8) | 5, "10.77.1.2")
    # A time-exceeded for someone's UDP traceroute is not ours.
    udp_quoted = ip_header("10.77.1.1", "10.77.2.2", socket.IPPROTO_UDP, 8) + bytes(8)
    icmp = struct.pack("!BBHI", 11, 0, 0, 0) + udp_quoted
    assert parse_trace_reply(ip_header("10.77.1.2", "10.77.1.1", 1, len(icmp)) + icmp) is None
    assert parse_trace_reply(packet[:30]) is None
    assert hop_tag(3) == "03" and hop_tag(30) == "30"
