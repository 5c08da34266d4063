"""More than one write in flight (`[storage] write_concurrency`): in order, nothing lost, nothing counted twice.

Against real servers: influxd, and the collector as a real process killed with SIGKILL while
several of its writes are in flight. InfluxDB overwrites a point written again (same series and
time), so a replay of what was in flight is absorbed and "every point once" is a count; the
collector's own rollups (`rollups = "collector"`) count a replay only if a batch were folded twice
or out of order, so their state must equal what the raw points in influxd make of each bucket.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from agent.points import Point
from collector.influxql import query
from collector.localservers import free_port, wait_until
from collector.queue import DurableQueue
from collector.rollup_engine import FIVE_MINUTE_NS, PLANS, STATE_FILE, RollupEngine
from collector.writer import QueueWriter, RetryableWriteError
from inventories import InventoryBuilder
from test_durability import N_AGENTS, Senders, agent_id, token

WRITE_CONCURRENCY = 4
BATCH_SIZE = 50  # small writes: many of them in flight at once
POINTS_PER_AGENT = 1500


class SlowFailingSink:
    """A storage that answers each write after `delay_s`, refusing for now (5xx) those holding `fail_marker`."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.fail_marker: str | None = None
        self.bodies: list[str] = []
        self.in_flight = self.most_in_flight = 0

    async def write(self, body: bytes, retention_policy: str | None = None, where: object = None) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            text = body.decode()
            if self.fail_marker is not None and self.fail_marker in text:
                raise RetryableWriteError("HTTP 503: not now")
            self.bodies.append(text)
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        pass


def test_writes_go_in_flight_together_and_leave_the_queue_in_order_after_a_failure(tmp_path: Path) -> None:
    """Four writes at once; the second fails for a while: the others finish, only what was written
    before it leaves the queue, it is sent again after the backoff, then everything leaves in order."""
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = time.time_ns()
    for seq in range(1, 13):
        queue.put("agent:pc1", seq, [Point("host", {"host": "pc1"}, {"cpu_pct": float(seq * 100 + i)}, t0 + seq * 1000 + i) for i in range(10)])
    sink = SlowFailingSink(0.05)
    sink.fail_marker = "cpu_pct=200.0 "  # in batch 2

    async def scenario() -> None:
        writer = QueueWriter(queue, sink, batch_size=20, backoff_initial_s=0.2, write_concurrency=WRITE_CONCURRENCY)
        task = asyncio.create_task(writer.run())
        try:
            await asyncio.wait_for(_until(lambda: writer.stats.write_errors >= 1), 10)
            # Batches 1-2 were one write, 3-4, 5-6, 7-8 the others: all sent at once, only the failed one waits.
            assert sink.most_in_flight == WRITE_CONCURRENCY
            await asyncio.wait_for(_until(lambda: writer.in_flight == 0), 10)
            assert queue.stats()["queue_batches"] == 12, "a write after the failed one leaves the queue only after it"
            assert len(sink.bodies) == 3 and writer.stats.batches_written == 0
            sink.fail_marker = None
            await asyncio.wait_for(_until(lambda: queue.stats()["queue_points"] == 0), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    lines = [line for body in sink.bodies for line in body.splitlines()]
    assert len(lines) == 120 and len(set(lines)) == 120, "every point written once: the writes that succeeded were not sent again"
    assert queue.stats()["written_points"] == 120
    queue.close()


def test_while_a_write_is_in_flight_another_starts_only_with_a_full_batch_size(tmp_path: Path) -> None:
    """Fewer, larger writes: what arrives while one is in flight waits until batch_size points are
    there (or the write in flight has finished), then goes at once, beside it."""
    queue = DurableQueue(tmp_path / "q.sqlite3")
    t0 = time.time_ns()

    def put(seq: int) -> None:
        queue.put("agent:pc1", seq, [Point("host", {"host": "pc1"}, {"cpu_pct": float(i)}, t0 + seq * 1000 + i) for i in range(10)])

    sink = SlowFailingSink(1.0)
    looked: list[int] = []  # what the writer found waiting each time it looked while a write was in flight
    points_after = queue.points_after

    def counted(after_id: int) -> int:
        looked.append(points_after(after_id))
        return looked[-1]

    queue.points_after = counted  # type: ignore[method-assign]

    async def scenario() -> None:
        writer = QueueWriter(queue, sink, batch_size=20, write_concurrency=WRITE_CONCURRENCY)
        task = asyncio.create_task(writer.run())
        try:
            put(1)
            writer.wake()
            await asyncio.wait_for(_until(lambda: writer.in_flight == 1), 10)  # alone: it goes as it is
            put(2)
            writer.wake()
            await asyncio.wait_for(_until(lambda: 10 in looked), 10)  # woken, it found half a write
            assert writer.in_flight == 1
            put(3)
            writer.wake()
            await asyncio.wait_for(_until(lambda: writer.in_flight == 2), 10)  # a full write: beside the first
            await asyncio.wait_for(_until(lambda: queue.stats()["queue_points"] == 0), 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert [len(body.splitlines()) for body in sink.bodies] == [10, 20] and sink.most_in_flight == 2
    queue.close()


async def _until(condition) -> None:  # type: ignore[no-untyped-def]
    while not condition():
        await asyncio.sleep(0.01)


@pytest.fixture
def rollup_database(influx_db):  # type: ignore[no-untyped-def]
    """A fresh database with the rollups' retention policies, made as the storage's admin would (rollups = "collector")."""
    server, database = influx_db
    for policy in ("nettvakt_5m", "nettvakt_1h", "nettvakt_events"):
        query(server.url, database, f'CREATE RETENTION POLICY "{policy}" ON "{database}" DURATION 0s REPLICATION 1', post=True)
    return server, database


def test_sigkill_with_writes_in_flight_every_point_once_and_rollups_equal_raw(nettvakt, rollup_database, tmp_path: Path) -> None:
    influx, database = rollup_database
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    inv = InventoryBuilder(tmp_path).collector(data_dir="collector-data").influxdb(
        influx.url, database, rollups="collector", write_concurrency=WRITE_CONCURRENCY, batch_size=BATCH_SIZE, flush_interval_s=0.2)
    for i in range(N_AGENTS):
        inv.agent(agent_id(i), token(i))
    inventory = inv.write()
    argv = ["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"]
    log = tmp_path / "collector.log"
    collector = nettvakt.start(argv, log)
    senders = Senders(base, tmp_path)
    for _ in range(POINTS_PER_AGENT // 5):  # a backlog in every agent's spool: the collector's queue fills faster than it drains
        senders.add()
    most_in_flight = 0

    async def scenario() -> None:
        nonlocal collector, most_in_flight
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["status"], 30, "collector health")
        sessions = [aiohttp.ClientSession(headers={"Authorization": f"Bearer {a.settings.token}"}, timeout=aiohttp.ClientTimeout(total=10))
                    for a in senders.agents]
        tasks = [asyncio.create_task(a._send_loop(s)) for a, s in zip(senders.agents, sessions)]
        try:
            # influxd frozen mid-stream: the writes taken hang in flight, as many as the writer may
            # have; the collector is killed with them, and influxd may still take them after.
            await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["queue"]["written_points"] > 0, 60, "a first write")
            os.kill(influx.process.pid, signal.SIGSTOP)
            try:
                def all_in_flight() -> bool:
                    nonlocal most_in_flight
                    most_in_flight = max(most_in_flight, nettvakt.health(base)["storage"]["writes_in_flight"])
                    return most_in_flight == WRITE_CONCURRENCY

                await asyncio.to_thread(wait_until, all_in_flight, 30, f"{WRITE_CONCURRENCY} writes in flight", interval_s=0.05)
                collector.send_signal(signal.SIGKILL)
                await asyncio.to_thread(collector.wait, 10)
            finally:
                os.kill(influx.process.pid, signal.SIGCONT)
            collector = nettvakt.start(argv, log)
            await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["status"], 30, "collector health after SIGKILL")
            await asyncio.to_thread(wait_until, lambda: senders.pending() == 0, 120, "agent spools drained")
            await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["queue"]["queue_points"] == 0, 60, "the collector's queue drained")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for session in sessions:
                await session.close()

    try:
        asyncio.run(scenario())
        assert most_in_flight == WRITE_CONCURRENCY, "the SIGKILL should hit a collector with every write it may have in flight"
        per_host = query(influx.url, database, f"SELECT count(cpu_pct) FROM host WHERE time >= {senders.t0_ns} GROUP BY host")
        assert {r["host"]: r["count"] for r in per_host} == {agent_id(i): senders.made[i] for i in range(N_AGENTS)}, "every point once"
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()
    finally:
        senders.close()

    # The rollup state as the collector left it (what it writes once the buckets close) against the raw points.
    raw = query(influx.url, database, f"SELECT count(cpu_pct), sum(cpu_pct), min(cpu_pct), max(cpu_pct) FROM host "
                                      f"WHERE time >= {senders.t0_ns} GROUP BY time(5m), host fill(none)")
    expected = {(r["host"], r["time"]): (r["count"], r["sum"], r["min"], r["max"]) for r in raw}
    # Read only: its buckets are not closed here, so nothing is written through its sink.
    engine = RollupEngine(tmp_path / "collector-data" / STATE_FILE, SlowFailingSink(0.0), {}, queue_highest_id=sys.maxsize)
    try:
        layout = PLANS["host"].raw
        folded = {(dict(tags)["host"], start): (bucket.count(layout, "cpu_pct"),
                                                *(bucket.value(layout, "cpu_pct", aggregate) for aggregate in ("sum", "min", "max")))
                  for (measurement, tags, start), bucket in engine.open["5m"].items()
                  if measurement == "host" and start >= senders.t0_ns - senders.t0_ns % FIVE_MINUTE_NS}
    finally:
        engine.close()
    assert folded.keys() == expected.keys()
    for key, (count, total, low, high) in expected.items():
        assert folded[key][0] == count, f"{key}: {folded[key][0]} points folded, {count} raw"
        assert folded[key][1] == pytest.approx(total, rel=1e-9) and folded[key][2:] == (low, high), key
