"""The collector's own rollups (collector/rollup_engine.py) at the unit level: when a bucket closes,
what its row holds, what a restart keeps, and that a replay or a refused write counts nothing twice.

The sink here only records what it is given (the unit level); tests/test_rollup_engine_storage.py
holds the same engine against real VictoriaMetrics and influxd.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
from pathlib import Path

import pytest

from agent.points import Point
from collector.queue import QueuedBatch
from collector.rollup_engine import LATE_S, PLANS, Bucket, Layout, RollupEngine, influx_percentile
from collector.writer import BadPointsError, Written
from test_retention import nearest_rank_p95

NS = 1_000_000_000
MIN5 = 300 * NS
HOUR = 3600 * NS
T0 = 1_800_000_000 * NS - (1_800_000_000 * NS) % HOUR  # an hour's start
WHERE = {"5m": {"db": "t_5m"}, "1h": {"db": "t_1h"}}
TAGS = {"site": "radhus", "host": "pc1", "kind": "icmp", "target": "gw"}


class RecordingSink:
    """Keeps each body written and where to; refuses while `refuse` is set."""

    def __init__(self) -> None:
        self.rows: dict[str, list[str]] = {"t_5m": [], "t_1h": []}
        self.refuse: str | None = None

    async def write(self, body: bytes, retention_policy: str | None = None, where: dict[str, str] | None = None) -> None:
        if self.refuse is not None:
            raise BadPointsError(self.refuse)
        assert where is not None
        self.rows[where["db"]] += body.decode().splitlines()

    async def close(self) -> None:
        pass


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def engine(tmp_path: Path, sink: RecordingSink, clock: Clock, highest_id: int = 0) -> RollupEngine:
    return RollupEngine(tmp_path / "rollups.sqlite3", sink, WHERE, queue_highest_id=highest_id, clock=clock)


def probe(t: int, rtt: float, **extra: float | str) -> Point:
    return Point("probe", TAGS, {"up": 1.0, "rtt_ms": rtt, "method": "icmp", **extra}, t)


def fields_of(line: str) -> tuple[str, dict[str, float], int]:
    head, fields, time_ns = line.split(" ")
    return head, {k: float(v) for k, v in (kv.split("=") for kv in fields.split(","))}, int(time_ns)


def test_influx_percentile_is_nearest_rank_as_influxql() -> None:
    for n in (1, 2, 3, 10, 19, 20, 21, 30, 97):
        values = [float((i * 37) % n) + i / 1000 for i in range(n)]
        assert influx_percentile(values, 95) == nearest_rank_p95(values)
    assert influx_percentile([], 95) is None


def test_a_bucket_closes_two_hours_after_its_end_and_its_hour_with_its_last_bucket(tmp_path: Path) -> None:
    sink, clock = RecordingSink(), Clock(T0)
    rollups = engine(tmp_path, sink, clock)
    # Every 30 s for an hour: ten points a 5-minute bucket; rtt rises, pages only grow, uptime is a bytes-free count.
    points = [probe(T0 + i * 30 * NS, 10.0 + i % 13, loss_pct=float(i % 7 == 0) * 20) for i in range(120)]
    points.append(Point("device", {"site": "radhus", "device": "printer-1"}, {"pages_total": 1000.0, "reason": "ok"}, T0 + 10 * NS))
    points.append(Point("device", {"site": "radhus", "device": "printer-1"}, {"pages_total": 1012.0}, T0 + 250 * NS))
    points.append(Point("alert", {"rule": "r", "subject": "s"}, {"active": 1.0}, T0))  # an event: never rolled up
    asyncio.run(rollups.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, points)])))

    async def close_at(now_ns: int) -> int:
        clock.now_ns = now_ns
        return await rollups.close_due()

    first_end = T0 + MIN5
    assert asyncio.run(close_at(first_end + LATE_S * NS - 1)) == 0, "a bucket is open until two hours after its end"
    assert asyncio.run(close_at(first_end + LATE_S * NS)) == 2  # the first 5-minute buckets of probe and device
    head, row, time_ns = fields_of(sink.rows["t_5m"][0])
    rtts = [10.0 + i % 13 for i in range(10)]
    assert time_ns == T0 and head == "probe,host=pc1,kind=icmp,site=radhus,target=gw"
    assert row == pytest.approx({"up": 1.0, "up_min": 1.0, "up_max": 1.0, "rtt_ms": statistics.fmean(rtts), "rtt_ms_min": min(rtts),
                                 "rtt_ms_max": max(rtts), "rtt_ms_p95": nearest_rank_p95(rtts), "loss_pct": 4.0, "loss_pct_min": 0.0,
                                 "loss_pct_max": 20.0, "loss_pct_p95": 20.0}, rel=1e-12)
    assert fields_of(sink.rows["t_5m"][1])[1] == {"pages_total": 1012.0}, "a cumulative field is its maximum, strings are not kept"
    assert sink.rows["t_1h"] == [], "the hour waits for its last 5-minute bucket"

    last_end = T0 + HOUR
    assert asyncio.run(close_at(last_end + LATE_S * NS)) == 11 + 2  # the hour's other 11 buckets, and two hours
    hour = {fields_of(line)[0].split(",")[0]: fields_of(line)[1] for line in sink.rows["t_1h"]}
    fives = [fields_of(line)[1] for line in sink.rows["t_5m"] if line.startswith("probe")]
    assert len(fives) == 12
    assert hour["probe"]["rtt_ms"] == pytest.approx(statistics.fmean(f["rtt_ms"] for f in fives), rel=1e-12)
    assert hour["probe"]["rtt_ms_p95"] == max(f["rtt_ms_p95"] for f in fives)
    assert hour["probe"]["rtt_ms_min"] == 10.0 and hour["probe"]["rtt_ms_max"] == 22.0
    assert hour["device"] == {"pages_total": 1012.0}
    assert rollups.health()["open_buckets"] == {"5m": 0, "1h": 0}

    # A point for a bucket already written is late: counted, not folded (its bucket would be written twice).
    late = [probe(T0 + 5 * NS, 99.0)]
    asyncio.run(rollups.fold(Written([QueuedBatch.of_points(2, "agent:pc1", 2, late)])))
    assert rollups.health()["late_points"] == 1 and rollups.health()["open_buckets"]["5m"] == 0
    rollups.close()


def test_additive_fields_are_summed_and_an_hour_of_them_too(tmp_path: Path) -> None:
    sink, clock = RecordingSink(), Clock(T0)
    rollups = engine(tmp_path, sink, clock)
    tags = {"site": "radhus", "kind": "target", "target": "gw"}
    points = [Point("availability", tags, {"up": 1.0, "up_s": 5.0 if i % 4 else 0.0, "judged_s": 5.0}, T0 + i * 5 * NS) for i in range(720)]
    asyncio.run(rollups.fold(Written([QueuedBatch.of_points(7, "collector", 7, points)])))
    clock.now_ns = T0 + HOUR + LATE_S * NS
    assert asyncio.run(rollups.close_due()) == 13
    hour = fields_of(sink.rows["t_1h"][0])[1]
    assert hour["up_s"] == 2700.0 and hour["judged_s"] == 3600.0
    assert all(fields_of(line)[1]["judged_s"] == 300.0 for line in sink.rows["t_5m"])
    rollups.close()


def test_state_survives_a_restart_and_a_replayed_batch_is_not_folded_twice(tmp_path: Path) -> None:
    sink, clock = RecordingSink(), Clock(T0)
    first = engine(tmp_path, sink, clock)
    batch_1 = [probe(T0 + i * 10 * NS, float(i)) for i in range(15)]
    batch_2 = [probe(T0 + (15 + i) * 10 * NS, float(15 + i)) for i in range(15)]
    asyncio.run(first.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, batch_1)])))
    first.close()  # a crash after the fold was committed, before the queue let go of the batch

    second = engine(tmp_path, sink, clock, highest_id=1)
    assert second.health()["open_buckets"]["5m"] == 1
    # The writer drains the queue again from batch 1: it is written again, but folded only once.
    asyncio.run(second.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, batch_1), QueuedBatch.of_points(2, "agent:pc1", 2, batch_2)])))
    asyncio.run(second.fold(Written([QueuedBatch.of_points(2, "agent:pc1", 2, batch_2)])))
    clock.now_ns = T0 + MIN5 + LATE_S * NS
    assert asyncio.run(second.close_due()) == 1
    row = fields_of(sink.rows["t_5m"][0])[1]
    assert row["rtt_ms"] == statistics.fmean(range(30)) and row["rtt_ms_max"] == 29.0
    assert second.health()["folded_points"] == 15
    second.close()

    # A new queue file numbers its batches from 1 again: they are folded, not taken for replays.
    third = engine(tmp_path, sink, clock, highest_id=0)
    assert third.folded_through == 0
    fresh = [probe(T0 + HOUR * 3, 5.0)]
    asyncio.run(third.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, fresh)])))
    assert third.health()["open_buckets"]["5m"] == 1
    third.close()


def test_a_refused_write_changes_nothing_and_the_rows_are_written_at_the_next_round(tmp_path: Path) -> None:
    sink, clock = RecordingSink(), Clock(T0)
    rollups = engine(tmp_path, sink, clock)
    points = [probe(T0 + i * 30 * NS, float(i)) for i in range(10)]
    asyncio.run(rollups.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, points)])))
    clock.now_ns = T0 + HOUR + LATE_S * NS
    sink.refuse = "HTTP 404: retention policy not found: nettvakt_5m"
    with pytest.raises(BadPointsError):
        asyncio.run(rollups.close_due())
    assert rollups.health()["open_buckets"] == {"5m": 1, "1h": 0} and rollups.closed_before_ns == 0
    reopened = engine(tmp_path, sink, clock, highest_id=1)
    assert reopened.health()["open_buckets"] == {"5m": 1, "1h": 0}, "nothing left the state on disk either"
    rollups.close()
    sink.refuse = None
    assert asyncio.run(reopened.close_due()) == 2
    assert len(sink.rows["t_5m"]) == 1 and len(sink.rows["t_1h"]) == 1
    reopened.close()


def test_a_bucket_saved_under_another_contract_is_read_by_field_name() -> None:
    """The state outlives a collector upgrade: a field the contract added starts empty, one it
    dropped is left out, the others keep their numbers and kept values."""
    before = Layout.of(("rtt_ms", "old_ms", "up"), ("rtt_ms", "old_ms"))
    after = Layout.of(("up", "rtt_ms", "new_ms"), ("rtt_ms", "new_ms"))
    bucket = Bucket(before)
    for value in (3.0, 1.0, 2.0):
        bucket.add(before, "rtt_ms", value)
        bucket.add(before, "old_ms", value * 10)
    bucket.add(before, "up", 1.0)
    same = Bucket.unpack(before, *bucket.pack(before))
    assert same.stats == bucket.stats and same.values == bucket.values
    moved = Bucket.unpack(after, *bucket.pack(before))
    assert moved.value(after, "rtt_ms", "mean") == 2.0 and moved.value(after, "rtt_ms", "p95") == 3.0
    assert moved.value(after, "up", "max") == 1.0 and moved.value(after, "new_ms", "mean") is None


def test_a_bucket_is_saved_with_the_fields_it_holds_and_read_back_whole() -> None:
    layout = PLANS["probe"].raw
    bucket = Bucket(layout)
    bucket.add_values(layout, "rtt_ms", [3.0, 1.0, 2.0])
    bucket.add_values(layout, "up", [1.0, 0.0, 1.0])
    signature, blob = bucket.pack(layout)
    assert signature == "up,rtt_ms|rtt_ms" and len(blob) == 2 * 4 * 8 + 4 + 3 * 8
    back = Bucket.unpack(layout, signature, blob)
    assert back.stats == bucket.stats and back.values == bucket.values


def test_a_state_file_of_the_first_schema_is_converted_and_keeps_its_buckets(tmp_path: Path) -> None:
    """The buckets were first kept in a WITHOUT ROWID table (several times slower to save into):
    opened, the file gets the table with rowids, every open bucket and the marks kept."""
    sink, clock = RecordingSink(), Clock(T0)
    points = [probe(T0 + i * 30 * NS, float(i)) for i in range(20)]
    first = engine(tmp_path, sink, clock)
    first.close()
    with sqlite3.connect(tmp_path / "rollups.sqlite3") as db:  # as the first schema made it
        db.execute("DROP TABLE bucket")
        db.execute("CREATE TABLE bucket (resolution TEXT NOT NULL, measurement TEXT NOT NULL, tags TEXT NOT NULL, start_ns INTEGER NOT NULL, "
                   "layout TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (resolution, measurement, tags, start_ns)) WITHOUT ROWID")
    db.close()
    old = engine(tmp_path, sink, clock)
    asyncio.run(old.fold(Written([QueuedBatch.of_points(1, "agent:pc1", 1, points)])))
    old.close()
    with sqlite3.connect(tmp_path / "rollups.sqlite3") as db:  # the first schema again, holding the buckets just folded
        rows = db.execute("SELECT resolution, measurement, tags, start_ns, layout, state FROM bucket").fetchall()
        db.execute("DROP TABLE bucket")
        db.execute("CREATE TABLE bucket (resolution TEXT NOT NULL, measurement TEXT NOT NULL, tags TEXT NOT NULL, start_ns INTEGER NOT NULL, "
                   "layout TEXT NOT NULL, state BLOB NOT NULL, PRIMARY KEY (resolution, measurement, tags, start_ns)) WITHOUT ROWID")
        db.executemany("INSERT INTO bucket VALUES (?, ?, ?, ?, ?, ?)", rows)
    db.close()
    assert len(rows) == 2

    converted = engine(tmp_path, sink, clock, highest_id=1)
    assert converted.folded_through == 1 and converted.health()["open_buckets"]["5m"] == 2
    with sqlite3.connect(tmp_path / "rollups.sqlite3") as db:
        table = db.execute("SELECT sql FROM sqlite_master WHERE name = 'bucket'").fetchone()[0]
    db.close()
    assert "WITHOUT ROWID" not in table
    clock.now_ns = T0 + 2 * MIN5 + LATE_S * NS
    assert asyncio.run(converted.close_due()) == 2
    rtts = sorted(fields_of(line)[1]["rtt_ms"] for line in sink.rows["t_5m"])
    assert rtts == [statistics.fmean(range(10)), statistics.fmean(range(10, 20))]
    converted.close()
