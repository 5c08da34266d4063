"""`availability` stored on change and once per beat gives the overview the same answers as one point per judgement.

One scenario (two hours of a town hall with two agents probing the gateway, an outstation
switch) is judged by the collector's own CollectorService.evaluate_liveness every 5 s and
its SNMP availability point every 60 s. Everything judged goes to one database, as before
issue 19 (`before`); what store_local queues goes to another (`after`). Both are written by
the collector's own sink into real influxd, and the overview's availability queries as they
were run on `before`, as they are now on `after`.
"""

from __future__ import annotations

import asyncio
import math
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from agent.points import Point
from collector.config import load_inventory
from collector.influxql import query
from collector.lineprotocol import encode_points
from collector.pollers import availability_point
from collector.queue import DurableQueue
from collector.service import CollectorService, TargetState
from collector.writer import make_sink
from dashboards import check, generate
from inventories import InventoryBuilder

STEP_S = 5
MINUTE = 60
HOUR_S = 2 * 3600
BEAT_S = 300.0

# The overview's queries before issue 19, on one point per judgement.
OLD_SITE_TABLE = 'SELECT mean("up") * 100 AS "availability %" FROM "availability" WHERE $timeFilter AND "site" =~ /^$site$/ GROUP BY "site"'
OLD_TIMELINE = 'SELECT min("up") FROM "availability" WHERE $timeFilter AND "site" =~ /^$site$/ GROUP BY time($__interval), "site", "host", "device" fill(null)'


def overview_query(title: str) -> str:
    panel = next(p for p in generate.overview().to_json()["panels"] if p["title"] == title)
    return panel["targets"][0]["query"]


def administer(url: str, statement: str) -> None:
    """CREATE/DROP DATABASE: influxd takes those only as POST."""
    request = urllib.request.Request(f"{url}/query", urllib.parse.urlencode({"q": statement}).encode(), method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        response.read()


def scenario_inventory(folder: Path, url: str, database: str) -> Path:
    return (
        InventoryBuilder(folder)
        .influxdb(url, database)
        .collector(availability_beat_s=BEAT_S)
        .site("radhus", "Rådhuset")
        .site("vannvag", "Vannvåg")
        .agent("pc1", site="radhus")
        .agent("pc2", site="radhus")
        .device("sw-vannvag", site="vannvag")
        .probe("gw", "icmp", "10.0.0.1", sites=["radhus"], interval_s=30)
        .write()
    )


def judge(service: CollectorService, start_ns: int) -> tuple[list[Point], list[Point]]:
    """(everything judged, what store_local queued) over the scenario.

    pc1 is silent from 30 to 50 min; pc2 for 45 s at 80 min (down for about 15 s of it); pc1's
    probes of gw fail from 65 to 70 min; the outstation switch does not answer from 20 to 23 min.
    """
    device = service.inventory.device[0]
    told: list[Point] = []
    service.subscribers.append(lambda source, points: told.extend(points))

    def alive(agent: str, s: float) -> bool:
        if agent == "pc1":
            return not 30 * MINUTE <= s < 50 * MINUTE
        return not 80 * MINUTE <= s < 80 * MINUTE + 45

    async def run() -> None:
        for step in range(HOUR_S // STEP_S + 1):
            s = step * STEP_S
            now = start_ns + s * 10**9
            for agent in ("pc1", "pc2"):
                if alive(agent, s) and s % 10 == 0:
                    service.agents[agent].last_heartbeat_ns = now
                if alive(agent, s) and s % 30 == 0:
                    up = not (agent == "pc1" and 65 * MINUTE <= s < 70 * MINUTE)
                    service.targets[(agent, "gw")] = TargetState(now, up)
            points = service.evaluate_liveness(now)
            if s % MINUTE == 0:
                polled = 0.0 if 20 * MINUTE <= s < 23 * MINUTE else 1.0
                points.append(availability_point(device, [Point("device", {}, {"up": polled}, now)], now))
            await service.store_local("collector", points)

    asyncio.run(run())
    queued = [p for batch in service.queue.peek(10**6) for p in batch.points]
    return told, queued


async def write(path: Path, points: list[Point]) -> None:
    sink = make_sink(load_inventory(path))
    assert sink is not None
    try:
        for n in range(0, len(points), 5000):
            await sink.write(encode_points(points[n: n + 5000]))
    finally:
        await sink.close()


@pytest.fixture(scope="module")
def recorded(influxd: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("availability")
    start_ns = (1_790_000_000 // 3600) * 3600 * 10**9  # on the hour, so time buckets line up with the scenario
    databases = {"before": "availability_before", "after": "availability_after"}
    paths = {}
    for name, database in databases.items():
        administer(influxd.url, f'CREATE DATABASE "{database}"')
        (folder / name).mkdir()
        paths[name] = scenario_inventory(folder / name, influxd.url, database)
    inventory = load_inventory(paths["after"])
    queue = DurableQueue(folder / "queue.sqlite3")
    try:
        told, queued = judge(CollectorService(inventory, queue), start_ns)
    finally:
        queue.close()
    # Before issue 19 every judgement was stored, and a target whose probes stopped got no point.
    before = [p for p in told if p.measurement == "availability" and ("up" in p.fields or "waiting_s" in p.fields)]
    asyncio.run(write(paths["before"], before))
    asyncio.run(write(paths["after"], queued))
    yield {"url": influxd.url, "db": databases, "start_ns": start_ns, "told": told, "queued": queued}
    for database in databases.values():
        administer(influxd.url, f'DROP DATABASE "{database}"')


def run(recorded: dict[str, Any], which: str, statement: str, start_s: float, end_s: float, interval: str = "1m") -> list[dict[str, Any]]:
    start_ns = recorded["start_ns"]
    time_filter = f"time >= {start_ns + int(start_s * 1e9)} AND time <= {start_ns + int(end_s * 1e9)}"
    # These databases are written through the sink, without the collector's retention set-up: raw points only.
    text = check.substitute(statement, {**check.raw_resolution_values(), "site": ["radhus", "vannvag"]}, time_filter, interval)
    return query(recorded["url"], recorded["db"][which], text)


def test_storage_takes_changes_and_the_beat_and_the_engine_still_gets_every_judgement(recorded: dict[str, Any]) -> None:
    told = [p for p in recorded["told"] if p.measurement == "availability"]
    queued = recorded["queued"]
    # Every 5 s for two agents and their two targets (but pc1's for the 20 min nobody knew it), every minute for the switch.
    assert len(told) >= 4 * HOUR_S // STEP_S - 20 * MINUTE // STEP_S + HOUR_S // MINUTE
    series = {tuple(sorted(p.tags.items())) for p in queued}
    assert len(series) == 5
    # The beat: a point per series every 5 minutes, plus the changes (pc1 down/up, its target
    # unknown/known and down/up, pc2 down/up, the switch down/up): about 50 times fewer.
    changes = 2 + 2 + 2 + 2 + 2
    assert len(queued) <= len(series) * (HOUR_S / BEAT_S + 1) + 2 * changes, len(queued)
    assert len(told) / len(queued) > 40
    for key in series:
        points = [p for p in queued if tuple(sorted(p.tags.items())) == key]
        gaps = [b.time_ns - a.time_ns for a, b in zip(points, points[1:]) if "up" in a.fields]
        assert max(gaps) <= BEAT_S * 1e9, key  # never longer than the beat while known ...
    # ... except the target of the silent agent: one point without `up` when its probes stopped, none until they resumed.
    gw = [p for p in queued if p.tags.get("target") == "gw" and p.tags["host"] == "pc1"]
    unknown = [p for p in gw if "up" not in p.fields]
    assert len(unknown) == 1 and 30 * MINUTE < (unknown[0].time_ns - recorded["start_ns"]) / 1e9 <= 32 * MINUTE
    resumed = next(p for p in gw if p.time_ns > unknown[0].time_ns)
    assert 50 * MINUTE <= (resumed.time_ns - recorded["start_ns"]) / 1e9 <= 51 * MINUTE


def test_site_availability_is_the_same(recorded: dict[str, Any]) -> None:
    new = overview_query("Sites: availability in the period (worst first)")
    old_rows = {r["site"]: r["availability %"] for r in run(recorded, "before", OLD_SITE_TABLE, 0, HOUR_S)}
    new_rows = {r["site"]: r["availability %"] for r in run(recorded, "after", new, 0, HOUR_S)}
    assert set(old_rows) == set(new_rows) == {"radhus", "vannvag"}
    # The judged time the stored points account for is the 5 s samples they stand for: the same
    # fraction, but for the verdicts after each series' last stored point, at most a beat of up
    # in 2 h: 100 * (1 - 0.945) * 300 / 7200 = 0.23 percentage points at most.
    for site in old_rows:
        assert math.isclose(old_rows[site], new_rows[site], abs_tol=0.25), (site, old_rows[site], new_rows[site])
    assert 3 / 120 * 100 == pytest.approx(100 - new_rows["vannvag"], abs=0.05)


@pytest.mark.parametrize("title", ["Agents down now", "Devices down now"])
def test_down_now_is_the_same_at_every_minute(recorded: dict[str, Any], title: str) -> None:
    statement = overview_query(title)
    differences = []
    for end_min in range(10, HOUR_S // MINUTE + 1):
        # The overview's default range is 24 h: any range of at least a beat holds a point of every series.
        end_s = end_min * MINUTE
        old = run(recorded, "before", statement, end_s - BEAT_S - 60, end_s)
        new = run(recorded, "after", statement, end_s - BEAT_S - 60, end_s)
        if old != new:
            differences.append((end_min, old, new))
    assert not differences


def down_buckets(rows: list[dict[str, Any]], start_ns: int, bucket_s: int) -> dict[tuple[str, ...], set[int]]:
    """What a state timeline draws down: per (site, host, device) row, the buckets whose least
    verdict of any of its series (an agent's own and its probe targets') is down."""
    out: dict[tuple[str, ...], set[int]] = {}
    for row in rows:
        key = tuple(row.get(t) or "" for t in ("site", "host", "device"))
        out.setdefault(key, set())
        if row["min"] == 0.0:
            out[key].add((row["time"] - start_ns) // (bucket_s * 10**9))
    return out


def test_timeline_shows_the_same_outages(recorded: dict[str, Any]) -> None:
    # The panel's least interval: a bucket of two beats always holds a stored verdict of a series
    # that is down, so the stored changes and beats give each bucket the least verdict judged in it.
    bucket_s = 10 * MINUTE
    start_ns = recorded["start_ns"]
    old = down_buckets(run(recorded, "before", OLD_TIMELINE, 0, HOUR_S - 1, "10m"), start_ns, bucket_s)
    new = down_buckets(run(recorded, "after", overview_query("Outages per agent, device and probe target (only those down in the period)"),
                           0, HOUR_S - 1, "10m"), start_ns, bucket_s)
    # Only the rows down at some time are drawn now, in the buckets they were drawn down before.
    assert new == {row: buckets for row, buckets in old.items() if buckets}
    # The outages themselves: pc1 30-50 min (down from its third missed heartbeat) and its probes of gw 65-70 min
    # (the row of an agent is its own and its targets'), pc2's 15 s at 80 min, the switch 20-23 min.
    assert new == {("radhus", "pc1", ""): {3, 4, 6}, ("radhus", "pc2", ""): {8}, ("vannvag", "", "sw-vannvag"): {2}}
