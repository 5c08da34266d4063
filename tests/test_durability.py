"""Nothing lost, nothing written twice: 20 agents through an InfluxDB outage and a SIGKILL of the collector.

InfluxDB overwrites an identical point silently, so "exactly once" is proven by counting:
every agent point has its own timestamp, the senders know how many they made, and the
collector's own `written_points` counter must equal what InfluxDB holds in the end.
"""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from agent.points import Point
from agent.runner import Agent, AgentSettings
from collector.app import QUEUE, create_app
from collector.influxql import query
from collector.queue import DurableQueue
from collector.localservers import InfluxdServer, free_port, start_influxd, wait_until
from inventories import InventoryBuilder
from serving import serving

N_AGENTS = 20
OUTAGE_S = 60.0
DATABASE = "durability"


def agent_id(i: int) -> str:
    return f"pc{i:02d}"


def token(i: int) -> str:
    return f"durability-token-{i:02d}-0123456789"


def write_inventory(folder: Path, influx_url: str) -> Path:
    inv = InventoryBuilder(folder)
    # Retry InfluxDB at least every second, so the test sees the outage end promptly.
    inv.collector(data_dir="collector-data", write_backoff_max_s=1).influxdb(influx_url, DATABASE, flush_interval_s=0.2, timeout_s=3)
    for i in range(N_AGENTS):
        inv.agent(agent_id(i), token(i))
    return inv.write()


def create_database(server: InfluxdServer) -> None:
    request = urllib.request.Request(f"{server.url}/query", data=f"q=CREATE DATABASE {DATABASE}".encode())
    urllib.request.urlopen(request, timeout=10).close()


def influx_point_count(url: str, database: str = DATABASE) -> int:
    """Every point in the database, whatever measurement wrote it (one row per series and time)."""
    total = 0
    for row in query(url, database, "SHOW MEASUREMENTS"):
        total += len(query(url, database, f'SELECT * FROM "{row["name"]}"'))
    return total


class Senders:
    """20 agents: the real agent send loop (spool, seq, retries, backoff), fed deterministic points."""

    def __init__(self, base: str, workdir: Path):
        self.agents = [
            Agent(
                AgentSettings(
                    agent_id=agent_id(i),
                    collector_url=base,
                    token=token(i),
                    spool_path=workdir / f"spool-{i:02d}.sqlite3",
                    batch_points=200,
                    send_interval_s=0.2,
                    backoff_max_s=1.0,
                )
            )
            for i in range(N_AGENTS)
        ]
        self.made = [0] * N_AGENTS
        self.t0_ns = time.time_ns() - 3600 * 10**9  # an hour back: never on top of another point

    def add(self) -> None:
        """Five points per agent, each with its own timestamp."""
        for i, agent in enumerate(self.agents):
            points = []
            for _ in range(5):
                k = self.made[i]
                points.append(Point("host", {"host": agent_id(i), "site": "radhus"}, {"cpu_pct": float(k % 100)}, self.t0_ns + k * 1_000_000))
                self.made[i] += 1
            agent.spool.add(points)

    def pending(self) -> int:
        return sum(agent.spool.pending() for agent in self.agents)

    def close(self) -> None:
        for agent in self.agents:
            agent.spool.close()


def test_twenty_agents_through_influx_outage_and_collector_sigkill(nettvakt, tmp_path: Path) -> None:
    influx_dir = tmp_path / "influxd"
    influx = start_influxd(influx_dir)
    create_database(influx)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    inventory = write_inventory(tmp_path, influx.url)
    log = tmp_path / "collector.log"
    collector = nettvakt.start(["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"], log)
    senders = Senders(base, tmp_path)
    queued_at_kill = 0

    async def scenario() -> None:
        nonlocal collector, influx, queued_at_kill
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["status"], 30, "collector health")
        stop = asyncio.Event()

        async def produce() -> None:
            while not stop.is_set():
                await asyncio.to_thread(senders.add)
                await asyncio.sleep(0.25)

        # Each agent runs its own send loop with its own token, as agent.runner does.
        sessions = [
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {a.settings.token}"}, timeout=aiohttp.ClientTimeout(total=10))
            for a in senders.agents
        ]
        tasks = [asyncio.create_task(a._send_loop(s)) for a, s in zip(senders.agents, sessions)]
        producer = asyncio.create_task(produce())
        try:
            await asyncio.sleep(3)
            outage_start = time.monotonic()
            await asyncio.to_thread(influx.stop)
            await asyncio.sleep(OUTAGE_S / 2)
            # Mid-stream and mid-outage: acknowledged points wait in the queue, agents keep sending.
            queued_at_kill = (await asyncio.to_thread(nettvakt.health, base))["queue"]["queue_points"]
            collector.send_signal(signal.SIGKILL)
            await asyncio.to_thread(collector.wait, 10)
            await asyncio.sleep(1)
            collector = nettvakt.start(["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"], log)
            await asyncio.to_thread(wait_until, lambda: nettvakt.health(base)["status"], 30, "collector health after SIGKILL")
            await asyncio.sleep(max(0.0, OUTAGE_S - (time.monotonic() - outage_start)))
            influx = await asyncio.to_thread(start_influxd, influx_dir, port=influx.port)
            await asyncio.sleep(3)
            stop.set()
            await producer
            await asyncio.to_thread(wait_until, lambda: senders.pending() == 0, 60, "agent spools drained")
        finally:
            stop.set()
            for task in [producer, *tasks]:
                task.cancel()
            await asyncio.gather(producer, *tasks, return_exceptions=True)
            for session in sessions:
                await session.close()

    try:
        asyncio.run(scenario())
        made = sum(senders.made)
        assert queued_at_kill > 0, "the SIGKILL should hit a collector holding acknowledged, unwritten points"

        def agent_points() -> int:
            rows = query(influx.url, DATABASE, "SELECT count(cpu_pct) FROM host")
            return rows[0]["count"] if rows else 0

        wait_until(lambda: agent_points() == made, 60, f"all {made} agent points in InfluxDB")
        # Per agent too: every agent's own points, each exactly once.
        per_host = query(influx.url, DATABASE, "SELECT count(cpu_pct) FROM host GROUP BY host")
        assert {r["host"]: r["count"] for r in per_host} == {agent_id(i): senders.made[i] for i in range(N_AGENTS)}
        # A clean stop drains what is left; then the collector's count of writes must equal
        # InfluxDB's count of points: nothing was written twice (the kill hit during the outage,
        # when no write can be in flight between InfluxDB's answer and the queue's ack).
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(30) == 0, log.read_text()
        queue = DurableQueue(tmp_path / "collector-data" / "queue.sqlite3")
        try:
            stats = queue.stats()
        finally:
            queue.close()
        assert stats["queue_points"] == 0 and stats["dropped_points"] == 0 and stats["rejected_points"] == 0
        assert stats["written_points"] == influx_point_count(influx.url)
        assert stats["written_points"] > made  # the collector's own points went through too
    finally:
        senders.close()
        influx.stop()


def test_resent_batch_stored_once_and_bad_point_does_not_block_good_ones(influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    inventory = InventoryBuilder(tmp_path).influxdb(server.url, database, flush_interval_s=0.1).agent("pc1", token(1)).parse()
    t0 = time.time_ns() - 60 * 10**9

    def host_point(k: int, value: Any, **more: float) -> dict[str, Any]:
        return {"measurement": "host", "tags": {"host": "pc1"}, "fields": {"cpu_pct": value, **more}, "time": t0 + k}

    # Ingest refuses what the contract does not allow, but InfluxDB can still refuse a good point:
    # here a field an older writer stored as a string in the same shard (a type conflict).
    legacy = f"host,host=pc1,site=radhus spool_bytes=\"legacy\" {t0 - 1}\n".encode()
    with urllib.request.urlopen(urllib.request.Request(f"{server.url}/write?db={database}&precision=ns", data=legacy), timeout=10):
        pass

    async def scenario() -> None:
        app = create_app(inventory)
        headers = {"Authorization": f"Bearer {token(1)}"}
        async with serving(app) as base, aiohttp.ClientSession(base, headers=headers) as http:
            first = {"agent": "pc1", "seq": 1, "points": [host_point(k, float(k)) for k in range(10)]}
            for _ in range(3):  # the answer was "lost" twice: the agent resends the same seq
                async with http.post("/api/v1/ingest", json=first) as resp:
                    assert resp.status == 200
            mixed = [host_point(k, float(k)) for k in range(10, 15)] + [host_point(15, 15.0, spool_bytes=1.0)] + [host_point(k, float(k)) for k in range(16, 20)]
            async with http.post("/api/v1/ingest", json={"agent": "pc1", "seq": 2, "points": mixed}) as resp:
                assert resp.status == 200
            await asyncio.to_thread(
                wait_until, lambda: app[QUEUE].stats()["rejected_points"] == 1 and not app[QUEUE].stats()["queue_points"], 30, "queue drained"
            )
            rejected = app[QUEUE].rejected()
        assert len(rejected) == 1 and "spool_bytes=1.0" in rejected[0]["line"] and "conflict" in rejected[0]["reason"]

    asyncio.run(scenario())
    rows = query(server.url, database, "SELECT cpu_pct FROM host WHERE host = 'pc1' AND time >= %d" % t0)
    assert [r["time"] - t0 for r in rows] == [k for k in range(20) if k != 15]
    assert [r["cpu_pct"] for r in rows] == [float(k) for k in range(20) if k != 15]
