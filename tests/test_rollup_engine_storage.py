"""The collector's own rollups against real storage: what it writes to VictoriaMetrics (and to an
InfluxDB 1.x without continuous queries) equals what InfluxDB's continuous queries make of the same
raw points, within 1e-9 (float sums; VictoriaMetrics keeps about 15 significant digits), row for row.

The raw points of a few series shaped like the contract (probes with a p95, host load, additive
availability seconds, a printer's cumulative page count, strings beside them) go through the real
durable queue and writer in the order they arrive, with the engine's clock at their arrival: most a
second after they were measured, one target's quarter-hour as a backlog 75 to 90 minutes late
(folded: within the two hours), one point 2 h 30 min late (after its bucket was written: counted,
not folded). Half-way, the collector "crashes" after the rollup state was committed but before the
queue let go of the batch, and starts again from its files: the batch is written again and not
folded twice. influxd gets the same raw points (but the one too late) through the collector's sink,
and its own set-up (policies, continuous queries, the backfill of what it holds) makes its rollups.
Both are read back through the reports' readers (collector/timeseries.py, collector/victoriametrics.py).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiohttp

from agent.cli import main
from agent.points import Point
from collector.app import create_app
from collector.appkeys import RESOLUTION_ROWS, ROLLUP_ENGINE, SERVICE
from collector.config import StorageSettings, load_inventory, parse_inventory
from collector.lineprotocol import encode_points
from collector.localservers import wait_until, wait_until_async
from collector.queue import DurableQueue
from collector.retention import BackfillState, InfluxAdmin, set_up
from collector.rollup_engine import LATE_S, PLANS, STATE_FILE, RollupEngine, destinations
from collector.timeseries import InfluxSource, Sample, VictoriaMetricsSource
from collector.writer import QueueWriter, make_sink
from inventories import InventoryBuilder
from serving import serving
from test_retention import ask

NS = 1_000_000_000
MIN5 = 300 * NS
HOUR = 3600 * NS
TOLERANCE = 1e-9
MEASUREMENTS = ("probe", "host", "availability", "device")


@dataclass(frozen=True)
class Arrival:
    at_ns: int  # when the collector gets it
    point: Point


def estate(t0: int, hours: int) -> tuple[list[Arrival], Point]:
    """The points of `hours` from t0, each with its arrival, and the one that arrives too late."""
    arrivals: list[Arrival] = []
    end = t0 + hours * HOUR
    for n, target in enumerate(("gw", "nrk.no")):
        for i, t in enumerate(range(t0, end, 30 * NS)):
            rtt = 4.0 + n * 20 + ((i * 7919 + n * 104729) % 97) / 3.0
            fields: dict[str, Any] = {"up": float(i % 50 != 3), "rtt_ms": rtt, "loss_pct": 20.0 * ((i * 31 + n) % 6 == 0), "method": "icmp"}
            point = Point("probe", {"site": "radhus", "host": "pc1", "kind": "icmp", "target": target}, fields, t)
            backlog = target == "gw" and t0 + 60 * 60 * NS <= t < t0 + 75 * 60 * NS  # an agent's store and forward
            arrivals.append(Arrival(t0 + 150 * 60 * NS if backlog else t + NS, point))
    for i, t in enumerate(range(t0, end, 15 * NS)):
        fields = {"cpu_pct": (i * 13) % 101 * 0.97, "mem_used_pct": 40 + (i % 17) / 7, "load1": (i % 9) / 4, "spool_dropped_points": float(i // 100)}
        arrivals.append(Arrival(t + NS, Point("host", {"site": "radhus", "host": "pc1"}, fields, t)))
    for i, t in enumerate(range(t0, end, 5 * NS)):
        up = float(not 400 <= i < 460)
        fields = {"up": up, "up_s": 5.0 * up, "judged_s": 5.0 if i % 11 else 0.0, "silent_s": float(i % 7)}
        arrivals.append(Arrival(t + NS, Point("availability", {"site": "radhus", "kind": "target", "target": "gw"}, fields, t)))
    for i, t in enumerate(range(t0, end, 60 * NS)):
        fields = {"up": 1.0, "pages_total": 10_000.0 + 3 * i if i < 100 else 3.0 * (i - 100), "reason": "ok", "cpu_pct": float(i % 5)}
        arrivals.append(Arrival(t + NS, Point("device", {"site": "radhus", "device": "printer-1"}, fields, t)))
    too_late = Point("probe", {"site": "radhus", "host": "pc1", "kind": "icmp", "target": "nrk.no"}, {"up": 0.0, "rtt_ms": 999.0}, t0 + 10 * 60 * NS + 7 * NS)
    arrivals.append(Arrival(t0 + 160 * 60 * NS, too_late))
    arrivals.sort(key=lambda a: a.at_ns)
    return arrivals, too_late


class Crash(Exception):
    """The collector killed between the rollup state's commit and the queue's ack."""


async def run_collector(storage: dict[str, Any], arrivals: list[Arrival], data: Path, crash_at_ns: int, end_ns: int) -> dict[str, Any]:
    """Feed the arrivals through queue, writer and engine, a minute at a time, closing buckets as
    the collector does; "crash" once at crash_at_ns and start again from the same files. Returns
    the engine's health at the end."""
    inventory = parse_inventory({"storage": storage}, data / "inventory.toml")
    clock_ns = [arrivals[0].at_ns]

    def start() -> tuple[DurableQueue, Any, QueueWriter, RollupEngine]:
        queue = DurableQueue(data / "queue.sqlite3")
        sink = make_sink(inventory)
        writer = QueueWriter(queue, sink, batch_size=500)
        writer.rollups = RollupEngine(data / STATE_FILE, sink, destinations(inventory.storage),
                                      queue_highest_id=queue.highest_batch_id(), clock=lambda: clock_ns[0])
        return queue, sink, writer, writer.rollups

    queue, sink, writer, engine = start()
    seq, crashed, at = 0, False, 0
    minute = 60 * NS
    while at < len(arrivals) or clock_ns[0] < end_ns:
        clock_ns[0] += minute
        batch = []
        while at < len(arrivals) and arrivals[at].at_ns <= clock_ns[0]:
            batch.append(arrivals[at].point)
            at += 1
        if batch:
            seq += 1
            queue.put("agent:pc1", seq, batch)
        if not crashed and clock_ns[0] >= crash_at_ns:
            crashed = True
            ack = queue.ack

            def killed(ids: list[int], written: int) -> None:
                raise Crash()

            queue.ack = killed  # type: ignore[method-assign]
            with pytest.raises(Crash):
                await writer.drain_once()
            queue.ack = ack  # type: ignore[method-assign]
            engine.close()
            await sink.close()
            queue.close()
            queue, sink, writer, engine = start()
            assert engine.health()["open_buckets"]["5m"] > 0, "the open buckets came back from the state file"
        while await writer.drain_once():
            pass
        await engine.close_due()
    health = engine.health()
    engine.close()
    await sink.close()
    queue.close()
    return health


def by_key(samples: list[Sample]) -> dict[tuple[Any, ...], dict[str, float | str]]:
    rows: dict[tuple[Any, ...], dict[str, float | str]] = {}
    for s in samples:
        key = (tuple(sorted(s.tags.items())), s.time_ns)
        assert key not in rows, f"two rows for {key}"
        rows[key] = s.fields
    return rows


def assert_same_rows(found: list[Sample], wanted: list[Sample], what: str) -> None:
    got, expected = by_key(found), by_key(wanted)
    assert got.keys() == expected.keys(), (what, sorted(got.keys() ^ expected.keys())[:5])
    for key, fields in expected.items():
        assert got[key].keys() == fields.keys(), (what, key, sorted(got[key].keys() ^ fields.keys()))
        for name, value in fields.items():
            assert got[key][name] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), (what, key, name)


def continuous_query_rollups(server: Any, database: str, tmp: Path, points: list[Point]) -> InfluxSource:
    """influxd's own rollups of `points`: raw through the collector's sink, then its set-up (policies,
    continuous queries, and the backfill of every raw point already stored)."""
    inventory = parse_inventory({"storage": {"kind": "influxdb_v1", "url": server.url, "database": database}}, tmp / "inventory.toml")

    async def write_raw() -> None:
        sink = make_sink(inventory)
        assert sink is not None
        try:
            for at in range(0, len(points), 5000):
                await sink.write(encode_points(points[at:at + 5000]))
        finally:
            await sink.close()

    asyncio.run(write_raw())
    storage = StorageSettings(kind="influxdb_v1", url=server.url, database=database)
    result = set_up(InfluxAdmin(storage, None), storage, BackfillState(tmp / "backfill.json"))
    assert result.backfill_statements > 0
    return InfluxSource(server.url, database, retention=storage)


def test_rollups_on_victoria_metrics_equal_influxdbs_continuous_queries(victoria_metrics, influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    now = time.time_ns()
    t0 = now - now % HOUR - 6 * HOUR
    arrivals, too_late = estate(t0, 3)
    vm_db = f"t_{uuid.uuid4().hex[:10]}"  # the session's VictoriaMetrics is shared: this test's own label db
    storage = {"kind": "victoriametrics", "url": victoria_metrics.url, "database": vm_db}
    health = asyncio.run(run_collector(storage, arrivals, tmp_path / "collector", t0 + 100 * 60 * NS, t0 + 3 * HOUR + LATE_S * NS + MIN5))
    assert health["late_points"] == 1, "the point 2 h 30 min late reached a bucket already written"
    assert health["open_buckets"] == {"5m": 0, "1h": 0}
    assert health["rows_written"]["5m"] > 0  # since the restart

    influx = continuous_query_rollups(server, database, tmp_path, [a.point for a in arrivals if a.point is not too_late])
    vm = VictoriaMetricsSource(victoria_metrics.url, vm_db, StorageSettings(**storage))
    start, end = t0 - HOUR, t0 + 4 * HOUR

    def flushed(measurement: str, resolution: str, count: int) -> list[Sample]:
        def ready() -> list[Sample] | None:
            urllib.request.urlopen(f"{victoria_metrics.url}/internal/force_flush", timeout=5).read()
            rows = vm.samples(measurement, start, end, resolution=resolution)
            return rows if len(rows) >= count else None

        return wait_until(ready, 30, f"{count} {resolution} rows of {measurement} in VictoriaMetrics")

    for measurement in MEASUREMENTS:
        for resolution, per_series in (("5m", 36), ("1h", 3)):
            wanted = influx.samples(measurement, start, end, resolution=resolution)
            assert len(wanted) == per_series * len({tuple(sorted(s.tags.items())) for s in wanted}), (measurement, resolution)
            assert_same_rows(flushed(measurement, resolution, len(wanted)), wanted, f"{measurement} {resolution}")
    # Raw points are there too, as the reports read them, under the label db of the raw points.
    raw = vm.samples("probe", t0, t0 + HOUR, {"target": "gw"})
    assert len(raw) == 120 and all(set(s.fields) == {"up", "rtt_ms", "loss_pct"} for s in raw)


def test_influxdb_without_continuous_queries_gets_the_same_rollups_from_the_collector(
    influx_db: tuple, another_influx_db: tuple, tmp_path: Path
) -> None:
    """`rollups = "collector"` on InfluxDB 1.x (as through InfluxDB 2/3's v1 API, or where the
    collector's user may not create continuous queries): the rollups go to the policies of their
    name, which the storage's admin made, and the readers find them there as they find the queries'."""
    (influxd, by_queries), (_, by_collector) = influx_db, another_influx_db
    now = time.time_ns()
    t0 = now - now % HOUR - 6 * HOUR
    arrivals, too_late = estate(t0, 2)
    for policy in ("nettvakt_5m", "nettvakt_1h", "nettvakt_events"):
        ask(influxd, by_collector, f'CREATE RETENTION POLICY "{policy}" ON "{by_collector}" DURATION 3650d REPLICATION 1')
    storage = {"kind": "influxdb_v1", "url": influxd.url, "database": by_collector, "rollups": "collector"}
    health = asyncio.run(run_collector(storage, arrivals, tmp_path / "collector", t0 + 70 * 60 * NS, t0 + 2 * HOUR + LATE_S * NS + MIN5))
    assert health["late_points"] == 1
    assert not [q for q in ask(influxd, by_collector, "SHOW CONTINUOUS QUERIES") if q.get("_measurement") == by_collector]
    influx = continuous_query_rollups(influxd, by_queries, tmp_path, [a.point for a in arrivals if a.point is not too_late])
    collector = InfluxSource(influxd.url, by_collector, retention=StorageSettings(**storage))
    start, end = t0 - HOUR, t0 + 3 * HOUR
    assert collector.resolution_for(start, t0 + 30 * 86400 * NS, t0 + 30 * 86400 * NS) == "5m"
    for measurement in MEASUREMENTS:
        for resolution in ("5m", "1h"):
            wanted = influx.samples(measurement, start, end, resolution=resolution)
            assert wanted, (measurement, resolution)
            assert_same_rows(collector.samples(measurement, start, end, resolution=resolution), wanted, f"{measurement} {resolution}")


def test_check_compares_victoria_metrics_retention_with_the_inventory(victoria_metrics, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The fixture's VictoriaMetrics keeps its default month: too short for ten years of hourly
    rollups (exit 1, the flag that fixes it), enough for an inventory asking 30 days of each."""
    def check(**days: int) -> tuple[int, dict[str, Any]]:
        path = InventoryBuilder(tmp_path).storage("victoriametrics", url=victoria_metrics.url, database="nettvakt", **days).write()
        rc = main(["check", str(path), "--json"])
        return rc, json.loads(capsys.readouterr().out)

    rc, out = check()
    assert rc == 1 and not out["ok"]
    [difference] = out["storage"]["differences"]
    assert difference["found"] == "31 days" and difference["fix"] == ["-retentionPeriod=3650d"]
    assert "raw points are kept as long as the rollups" in out["storage"]["note"]
    rc, out = check(raw_retention_days=30, rollup_5m_retention_days=30, rollup_1h_retention_days=30)
    assert rc == 0 and out["ok"] and out["storage"]["differences"] == []


def test_the_collector_makes_rollups_on_victoria_metrics_and_keeps_them_over_a_restart(victoria_metrics, tmp_path: Path) -> None:
    """The running collector: the engine is on the writer, /health says who makes the rollups, and
    what was written before a stop is in the state the next start reads."""
    vm_db = f"t_{uuid.uuid4().hex[:10]}"
    path = InventoryBuilder(tmp_path).storage("victoriametrics", url=victoria_metrics.url, database=vm_db).agent("pc1").write()
    inventory = load_inventory(path)
    t = time.time_ns() - 10 * 60 * NS
    points = [Point("host", {"site": "radhus", "host": "pc1"}, {"cpu_pct": float(i)}, t + i * 15 * NS) for i in range(8)]

    async def scenario() -> dict[str, Any]:
        app = create_app(inventory, alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            engine = app[ROLLUP_ENGINE]
            await app[SERVICE].store_local("test", points)
            await wait_until_async(lambda: engine.stats.folded_points >= len(points), 30, "the points folded", interval_s=0.05)
            async with http.get("/api/v1/health") as resp:
                return await resp.json()

    health = asyncio.run(asyncio.wait_for(scenario(), 60))
    assert health["storage"]["rollups"]["by"] == "collector" and health["storage"]["rollups"]["open_buckets"]["5m"] >= 1
    assert not [p for p in health["problems"] if "rollups" in p], health["problems"]

    async def reopened() -> list[list[Any]]:
        sink = make_sink(inventory)
        engine = RollupEngine(inventory.data_dir() / STATE_FILE, sink, destinations(inventory.storage), queue_highest_id=10**9)
        try:
            layout = PLANS["host"].raw
            return [(bucket.count(layout, "cpu_pct"), bucket.value(layout, "cpu_pct", "sum"))
                    for (measurement, _, _), bucket in engine.open["5m"].items() if measurement == "host"]
        finally:
            engine.close()
            await sink.close()

    cpu = asyncio.run(reopened())
    assert sum(count for count, _ in cpu) == len(points) and sum(total for _, total in cpu) == sum(range(8))


def test_the_collector_writes_the_dashboards_resolution_rows_where_it_makes_the_rollups(
    another_influx_db: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`rollups = "collector"` on InfluxDB 1.x: no retention set-up runs, yet the dashboards pick
    their resolution by the rp_config rows; the collector writes them (only a write is needed) and
    `nettvakt check` compares them, also after a retention changed (the old row deleted)."""
    influxd, database = another_influx_db
    builder = InventoryBuilder(tmp_path).influxdb(influxd.url, database, rollups="collector").agent("pc1")

    def started_once(**retention: int) -> dict[str, Any]:
        builder.influxdb(influxd.url, database, rollups="collector", **retention)
        inventory = load_inventory(builder.write())

        async def scenario() -> dict[str, Any]:
            app = create_app(inventory, alerting=None)
            async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
                await wait_until_async(lambda: app[RESOLUTION_ROWS].stats.runs + app[RESOLUTION_ROWS].stats.failures >= 1, 30,
                                       "the rows checked", interval_s=0.05)
                async with http.get("/api/v1/health") as resp:
                    return await resp.json()

        return asyncio.run(asyncio.wait_for(scenario(), 60))

    def checked() -> dict[str, Any]:
        assert main(["check", str(tmp_path / "inventory.toml"), "--json"]) in (0, 1)
        return json.loads(capsys.readouterr().out)["storage"]

    # Without the policy the rows live in: named, with who makes it.
    health = started_once()
    assert any("nettvakt_meta" in p and "admin makes it" in p for p in health["problems"]), health["problems"]
    for policy, kept in (("nettvakt_5m", "730d"), ("nettvakt_1h", "3650d"), ("nettvakt_events", "3650d"), ("nettvakt_meta", "INF")):
        ask(influxd, database, f'CREATE RETENTION POLICY "{policy}" ON "{database}" DURATION {kept} REPLICATION 1')
    assert [d["name"] for d in checked()["differences"] if d["kind"] == "resolution row"] == [
        "nettvakt_meta.rp_config raw", "nettvakt_meta.rp_config 5m", "nettvakt_meta.rp_config 1h"]

    health = started_once()
    assert health["storage"]["resolution_rows"]["written"] == 3 and not health["problems"], health
    assert not [d for d in checked()["differences"] if d["kind"] == "resolution row"]
    rows = {r["resolution"]: r for r in ask(influxd, database, 'SELECT * FROM "nettvakt_meta"."rp_config" GROUP BY "resolution"')}
    assert rows["raw"]["rp"] == "autogen" and rows["5m"]["rp"] == "nettvakt_5m" and rows["1h"]["events_rp"] == "nettvakt_events"
    # What the dashboards read: a 60-day range starts beyond the raw 30 days, within the 5-minute rollups' 2 years.
    source = InfluxSource(influxd.url, database, retention=load_inventory(tmp_path / "inventory.toml").storage)
    now = time.time_ns()
    assert source.resolution_for(now - 60 * 86400 * NS, now, now) == "5m"

    # Raw points kept 7 days instead of 30: the raw row moves; the one at 30 days is gone.
    health = started_once(raw_retention_days=7)
    assert health["storage"]["resolution_rows"]["written"] == 2 and not health["problems"], health  # a delete and a write
    times = [r["time"] for r in ask(influxd, database, """SELECT * FROM "nettvakt_meta"."rp_config" WHERE "resolution" = 'raw'""")]
    assert times == [7 * 86400 * NS]
    assert not [d for d in checked()["differences"] if d["kind"] == "resolution row"]
