"""AgentPoints (a batch's points checked with lookups made once, tag sets remembered, lines made as
it goes) takes exactly what agent_point takes, refuses what it refuses with the same error, and
makes the lines encode_point makes."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from collector.ingest import AgentPoints, IngestError, TimeWindow, agent_point
from collector.lineprotocol import encode_point

WINDOW = TimeWindow(max_ahead_s=300, max_age_s=90 * 86400)
NOW = time.time_ns()
OWN = {"site": "radhus", "host": "pc1"}


def good_points() -> list[dict[str, Any]]:
    t = NOW - 10**9
    return [
        {"measurement": "probe", "tags": {**OWN, "kind": "icmp", "target": "gw"}, "time": t, "fields": {
            "up": 1.0, "rtt_ms": 1.5, "loss_pct": 0.0, "sent": 10, "received": 10, "method": "icmp_dgram", "duration_ms": 2001.5}},
        {"measurement": "probe", "tags": {**OWN, "kind": "http", "target": "web"}, "time": t + 1, "fields": {
            "up": 0.0, "reason": 'status 503 "x" \\ y', "status_code": 503, "duration_ms": 12.0}},
        {"measurement": "probe", "tags": {**OWN, "kind": "traceroute", "target": "gw", "hop": "01"}, "time": t + 2, "fields": {"rtt_ms": 1e-7, "hop_addr": "*"}},
        {"measurement": "host", "tags": dict(OWN), "time": t + 3, "fields": {"cpu_pct": 12, "mem_total_bytes": 17179869184, "load1": True}},
        {"measurement": "host_disk", "tags": {**OWN, "mount": "C:"}, "time": t + 4, "fields": {"used_pct": 50.0, "free_bytes": 2**60}},
        {"measurement": "host_net", "tags": {**OWN, "nic": "Ethernet 2 (æøå)"}, "time": t + 5, "fields": {"in_bps": 1.5e9}},
        {"measurement": "host_net", "tags": {"nic": "eth0"}, "time": t + 6, "fields": {"in_bps": 1.0}},  # site and host stamped
        {"measurement": "service", "tags": {**OWN, "service": "sshd", "kind": "listen"}, "time": t + 7, "fields": {"up": 1.0, "listen": "tcp:0.0.0.0:22 æ"}},
        {"measurement": "login", "tags": {**OWN, "user": "kari", "kind": "remote", "event": "start", "terminal": "pts/0"}, "time": t + 8,
         "fields": {"from_host": "10.0.0.1", "start_time_s": 1.7e9}},
    ]


def test_the_same_points_and_the_lines_encode_point_makes() -> None:
    raws = good_points() * 3  # the second and third time through, the tag sets are remembered
    checked = AgentPoints("pc1", "radhus", NOW, WINDOW)
    points = [checked(copy.deepcopy(raw), i) for i, raw in enumerate(raws)]
    reference = [agent_point(copy.deepcopy(raw), i, "pc1", "radhus", NOW, WINDOW) for i, raw in enumerate(raws)]
    assert points == reference
    assert len(checked.lines) == len(points)
    made = [(line, point) for line, point in zip(checked.lines, points) if line is not None]
    # The plain way, once their tag sets are known: five of the nine, twice (a boolean, an integer past
    # 2**53, non-ASCII text and a point without its site and host go the full way every time).
    assert len(made) == 10
    for line, point in made:
        assert line == encode_point(point)


def bad_points() -> list[dict[str, Any]]:
    good = good_points()[0]
    return [
        {**good, "fields": {**good["fields"], "rtt_ms": -1.0}},
        {**good, "fields": {**good["fields"], "rtt_ms": float("nan")}},
        {**good, "fields": {**good["fields"], "rtt_ms": 10**400}},
        {**good, "fields": {**good["fields"], "rtt_ms": "fast"}},
        {**good, "fields": {**good["fields"], "method": 5.0}},
        {**good, "fields": {**good["fields"], "method": "x" * 4097}},
        {**good, "fields": {**good["fields"], "bitcoin": 1.0}},
        {**good, "fields": {}},
        {**good, "tags": {**good["tags"], "host": "pc2"}},
        {**good, "tags": {**good["tags"], "site": "hansnes"}},
        {**good, "tags": {**good["tags"], "kind": "smtp"}},
        {**good, "tags": {**good["tags"], "target": ["gw"]}},
        {**good, "time": NOW + 10**12},
        {**good, "time": float(NOW)},
        {**good, "measurement": "interface"},
        {**good, "extra": 1},
        [good],
    ]


@pytest.mark.parametrize("index", range(len(bad_points())))
def test_the_same_errors(index: int) -> None:
    raw = bad_points()[index]
    checked = AgentPoints("pc1", "radhus", NOW, WINDOW)
    checked(copy.deepcopy(good_points()[0]), 0)  # its tag set is remembered as good first
    with pytest.raises(IngestError) as reference:
        agent_point(copy.deepcopy(raw), 3, "pc1", "radhus", NOW, WINDOW)
    with pytest.raises(IngestError) as ours:
        checked(copy.deepcopy(raw), 3)
    assert (type(ours.value), str(ours.value), ours.value.where) == (type(reference.value), str(reference.value), reference.value.where)
