"""A queue file of the format before (each batch's points as JSON) and a collector upgraded over it:
every queued point lands once in a real influxd, the de-duplication memory and batch ids carry on.

The old file is made here with the old schema, frozen below, and rows exactly as the old
`DurableQueue.put` wrote them (compact JSON of `Point.to_json()`), not with old code.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

from agent.points import Point
from collector.app import QUEUE, create_app
from collector.influxql import query
from collector.localservers import wait_until
from collector.queue import FORMAT, DurableQueue
from collector.timeseries import LocalSource
from inventories import InventoryBuilder
from serving import serving

# collector/queue.py's SCHEMA before the queue kept lines (format 0: PRAGMA user_version unset).
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    n_points INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    points TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (source, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rejected_ns INTEGER NOT NULL,
    source TEXT NOT NULL,
    line TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_floor (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
"""
TOKEN = "migration-token-0123456789"


def old_put(db: sqlite3.Connection, source: str, seq: int, points: list[Point]) -> None:
    """A batch as the old put stored it."""
    payload = json.dumps([p.to_json() for p in points], ensure_ascii=False, separators=(",", ":"))
    now = time.time_ns()
    with db:
        db.execute("INSERT INTO seen (source, seq, received_ns) VALUES (?, ?, ?)", (source, seq, now))
        db.execute("INSERT INTO batch (source, seq, received_ns, n_points, n_bytes, points) VALUES (?, ?, ?, ?, ?, ?)",
                   (source, seq, now, len(points), len(payload), payload))


def old_queue(path: Path, t0: int) -> dict[str, Any]:
    """An old queue holding agent and collector batches, with some batches written and acknowledged before."""
    path.parent.mkdir(parents=True)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(OLD_SCHEMA)
    for seq in range(1, 5):  # written and acknowledged by the old collector: ids 1-4 are gone
        old_put(db, "agent:pc1", seq, [Point("host", {"host": "pc1", "site": "radhus"}, {"cpu_pct": 1.0}, t0 - 10**9 + seq)])
    with db:
        db.execute("DELETE FROM batch")
        db.execute("INSERT INTO counter (name, value) VALUES ('written_points', 4)")
    queued = []
    for seq in range(5, 8):
        points = [Point("host", {"host": "pc1", "site": "radhus"}, {"cpu_pct": float(seq * 10 + k), "load1": 0.5}, t0 + seq * 100 + k)
                  for k in range(10)]
        old_put(db, "agent:pc1", seq, points)
        queued += points
    # The collector's own points: one line protocol cannot say (the old writer set such points aside).
    own = [Point("device", {"site": "radhus", "device": "fw1"}, {"up": 1.0, "sys_descr": 'FortiGate "60F"\nv7, æøå'}, t0 + 5000),
           Point("device", {"site": "radhus", "device": "fw1"}, {"cpu_pct": float("nan")}, t0 + 5001)]
    old_put(db, "collector", 1, own)
    db.close()
    return {"agent_points": queued, "device_point": own[0], "highest_id": 8}


def test_a_queue_of_the_old_format_is_converted_and_every_point_lands_once(influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    builder = InventoryBuilder(tmp_path).influxdb(server.url, database, flush_interval_s=0.1).agent("pc1", TOKEN)
    inventory = builder.parse()
    path = builder.data_dir / "queue.sqlite3"
    t0 = time.time_ns() - 600 * 10**9
    old = old_queue(path, t0)
    # Read before the collector converted it, the local store reads the old format.
    assert len(LocalSource(path).samples("host", t0, t0 + 10**12)) == 30

    async def scenario() -> dict[str, Any]:
        app = create_app(inventory)
        async with serving(app) as base, aiohttp.ClientSession(base, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            # A batch the old collector acknowledged is still known: its resend is not stored again.
            resend = {"agent": "pc1", "seq": 6, "points": [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 99.0}, "time": t0 + 9000}]}
            async with http.post("/api/v1/ingest", json=resend) as resp:
                assert resp.status == 200 and (await resp.json())["duplicate"] is True
            fresh = {"agent": "pc1", "seq": 8, "points": [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 80.0}, "time": t0 + 9001}]}
            async with http.post("/api/v1/ingest", json=fresh) as resp:
                assert resp.status == 200 and (await resp.json())["accepted"] == 1
            queue = app[QUEUE]
            await asyncio.to_thread(wait_until, lambda: queue.stats()["queue_points"] == 0, 30, "the converted queue drained")
            return {"stats": queue.stats(), "rejected": queue.rejected(), "highest_id": queue.highest_batch_id()}

    after = asyncio.run(scenario())
    rows = query(server.url, database, f"SELECT cpu_pct, load1 FROM host WHERE time >= {t0}")
    expected = [(p.time_ns, p.fields["cpu_pct"], 0.5) for p in old["agent_points"]] + [(t0 + 9001, 80.0, None)]
    assert [(r["time"], r["cpu_pct"], r["load1"]) for r in rows] == expected  # each once, none from the resend
    [device] = query(server.url, database, "SELECT sys_descr, up FROM device")
    assert device["sys_descr"] == old["device_point"].fields["sys_descr"] and device["up"] == 1.0
    # The point line protocol cannot say is set aside with why, not lost silently.
    [aside] = after["rejected"]
    assert aside["source"] == "collector" and aside["reason"].startswith("line protocol:") and "NaN" in aside["line"]
    stats = after["stats"]
    assert stats["written_points"] == 4 + 30 + 1 + 1 and stats["rejected_points"] == 1 and stats["dropped_points"] == 0
    # Batch ids go on past the old ones (the rollup engine tells a new queue file by them).
    assert after["highest_id"] == old["highest_id"] + 1
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT
        assert "points" not in {row[1] for row in db.execute("PRAGMA table_info(batch)")}
    finally:
        db.close()


def test_a_conversion_interrupted_leaves_the_old_file_as_it_was(tmp_path: Path, monkeypatch) -> None:
    """The conversion is one transaction: a failure halfway leaves every old batch in the old format."""
    import collector.queue as queue_module

    path = tmp_path / "data" / "queue.sqlite3"
    old = old_queue(path, time.time_ns())
    calls = {"n": 0}
    real = queue_module.encode_lines

    def failing(points: list[Point]) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk gone")
        return real(points)

    monkeypatch.setattr(queue_module, "encode_lines", failing)
    try:
        DurableQueue(path)
    except OSError:
        pass
    else:
        raise AssertionError("the conversion should have failed")
    monkeypatch.setattr(queue_module, "encode_lines", real)
    db = sqlite3.connect(path)
    try:
        assert db.execute("SELECT COUNT(*), SUM(n_points) FROM batch").fetchone() == (4, 32)
        assert "points" in {row[1] for row in db.execute("PRAGMA table_info(batch)")}
    finally:
        db.close()
    queue = DurableQueue(path)  # and the next start converts it whole
    try:
        batches = queue.peek(1000)
        assert sum(len(b.lines) for b in batches) == 31 and [b.points for b in batches][:3] == [
            [Point(p.measurement, p.tags, {k: float(v) for k, v in p.fields.items()}, p.time_ns) for p in old["agent_points"][i * 10:(i + 1) * 10]]
            for i in range(3)]
    finally:
        queue.close()
