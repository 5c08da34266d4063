"""The InfluxDB writer against real servers: influxd (v1 API) and VictoriaMetrics (v2 write API)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

from agent.points import Point
from collector.config import parse_inventory
from collector.influxql import query
from collector.queue import DurableQueue
from collector.localservers import free_port, start_influxd
from collector.writer import QueueWriter, make_sink


def storage_inventory(tmp_path: Path, storage: dict) -> object:
    return parse_inventory({"storage": storage}, tmp_path / "inventory.toml")


def host_points(n: int, t0: int, field: str = "cpu_pct", value: object = None) -> list[Point]:
    return [Point("host", {"site": "radhus", "host": "pc1"}, {field: value if value is not None else float(i)}, t0 + i) for i in range(n)]


async def drain(writer: QueueWriter) -> None:
    while await writer.drain_once():
        pass


def test_v1_writes_in_order_and_moves_bad_points_aside(influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    inventory = storage_inventory(tmp_path, {"kind": "influxdb_v1", "url": server.url, "database": database})
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = time.time_ns()
    queue.put("agent:pc1", 1, host_points(5, t0))
    # cpu_pct is a float field now; a string in it is a type conflict InfluxDB refuses.
    queue.put("agent:pc1", 2, host_points(2, t0 + 100) + [Point("host", {"host": "pc1"}, {"cpu_pct": "high"}, t0 + 200)])
    queue.put("agent:pc1", 3, host_points(3, t0 + 300))

    async def scenario() -> None:
        sink = make_sink(inventory)
        writer = QueueWriter(queue, sink, batch_size=4)
        try:
            await drain(writer)
        finally:
            await sink.close()

    asyncio.run(scenario())
    rows = query(server.url, database, "SELECT cpu_pct FROM host")
    assert len(rows) == 10
    stats = queue.stats()
    assert stats["queue_points"] == 0 and stats["rejected_points"] == 1 and stats["written_points"] == 10
    rejected = queue.rejected()[0]
    assert '"high"' in rejected["line"] and rejected["reason"].startswith("HTTP 400")
    queue.close()


def test_points_the_encoder_refuses_are_set_aside_and_the_rest_written(influx_db, tmp_path: Path) -> None:
    """Whatever reached the queue, the writer writes only what line protocol says unambiguously."""
    server, database = influx_db
    inventory = storage_inventory(tmp_path, {"kind": "influxdb_v1", "url": server.url, "database": database})
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = time.time_ns()
    injection = 'x"\nprobe,host=pc-b up=1 1\nforged v=1 1'
    unwritable = [
        Point("host", {"host": "pc1"}, {"x\\": injection}, t0 + 10),  # the key that escaped its '='
        Point("host", {"host": "pc1"}, {"host": "pc-b"}, t0 + 11),  # a field shadowing a tag
        Point("host", {"host": "pc1"}, {"reason": "\ud800"}, t0 + 12),  # a lone surrogate (kept escaped in the queue)
        Point("host", {"host": "pc1"}, {"cpu_pct": float("nan")}, t0 + 13),
        Point("host", {"host": "pc1"}, {"cpu_pct": 1.0}, 10**30),
    ]
    queue.put_local("collector", host_points(3, t0) + unwritable + host_points(2, t0 + 100))

    async def scenario() -> None:
        sink = make_sink(inventory)
        try:
            await drain(QueueWriter(queue, sink))
        finally:
            await sink.close()

    asyncio.run(scenario())
    assert [r["name"] for r in query(server.url, database, "SHOW MEASUREMENTS")] == ["host"]
    assert len(query(server.url, database, "SELECT cpu_pct FROM host")) == 5
    assert [f["fieldKey"] for f in query(server.url, database, "SHOW FIELD KEYS FROM host")] == ["cpu_pct"]
    stats = queue.stats()
    assert stats["queue_points"] == 0 and stats["rejected_points"] == 5 and stats["written_points"] == 5
    assert all(r["reason"].startswith("line protocol:") for r in queue.rejected())
    queue.close()


def test_v1_outage_is_retried_and_written_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    inventory = storage_inventory(tmp_path, {"kind": "influxdb_v1", "url": f"http://127.0.0.1:{port}", "database": "outage", "timeout_s": 2})
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = time.time_ns()
    for seq in range(1, 6):
        queue.put("agent:pc1", seq, host_points(20, t0 + seq * 1000))
    server = None

    async def scenario() -> None:
        nonlocal server
        sink = make_sink(inventory)
        writer = QueueWriter(queue, sink, batch_size=30, backoff_initial_s=0.1, backoff_max_s=0.5)
        task = asyncio.create_task(writer.run())
        try:
            while writer.stats.write_errors < 3:  # InfluxDB is down: retried, nothing lost
                await asyncio.sleep(0.05)
            assert queue.stats()["queue_points"] == 100
            server = await asyncio.to_thread(start_influxd, tmp_path / "influxd", port=port)
            await asyncio.to_thread(
                urllib.request.urlopen, urllib.request.Request(f"{server.url}/query", data=b"q=CREATE DATABASE outage")
            )
            while queue.stats()["queue_points"]:
                await asyncio.sleep(0.1)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await sink.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
        assert server is not None
        rows = query(server.url, "outage", "SELECT count(cpu_pct) FROM host")
        assert rows[0]["count"] == 100
        assert queue.stats()["written_points"] == 100
    finally:
        if server is not None:
            server.stop()
        queue.close()


def test_v2_write_api_to_victoria_metrics(victoria_metrics, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NETTVAKT_TEST_V2_TOKEN", "not-checked-by-victoria-metrics")
    inventory = storage_inventory(
        tmp_path,
        {"kind": "influxdb_v2", "url": victoria_metrics.url, "org": "karlsoy", "bucket": "nettvakt", "token": "env:NETTVAKT_TEST_V2_TOKEN"},
    )
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = (time.time_ns() // 1_000_000) * 1_000_000  # VictoriaMetrics keeps milliseconds
    queue.put("agent:pc1", 1, [Point("probe", {"site": "vannvag", "host": "vannvag-ops", "kind": "icmp", "target": "gw"}, {"rtt_ms": 41.5, "up": 1.0}, t0)])

    async def scenario() -> None:
        sink = make_sink(inventory)
        try:
            await drain(QueueWriter(queue, sink))
        finally:
            await sink.close()

    asyncio.run(scenario())
    assert queue.stats()["written_points"] == 1
    # Its own series: the session's VictoriaMetrics holds other tests' probe points too.
    params = urllib.parse.urlencode({"match[]": '{__name__="probe_rtt_ms", host="vannvag-ops"}'})

    def exported() -> list[dict]:
        urllib.request.urlopen(f"{victoria_metrics.url}/internal/force_flush", timeout=5).read()
        with urllib.request.urlopen(f"{victoria_metrics.url}/api/v1/export?{params}", timeout=5) as resp:
            return [json.loads(line) for line in resp.read().decode().splitlines() if line]

    deadline = time.monotonic() + 15
    series = exported()
    while not series and time.monotonic() < deadline:
        time.sleep(0.3)
        series = exported()
    assert series, "VictoriaMetrics did not return the point written through /api/v2/write"
    assert series[0]["metric"]["target"] == "gw" and series[0]["metric"]["site"] == "vannvag"
    assert series[0]["values"] == [41.5] and series[0]["timestamps"] == [t0 // 1_000_000]
    queue.close()
