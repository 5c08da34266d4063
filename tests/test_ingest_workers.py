"""Ingest in more than one process (`[collector] ingest_workers`, collector/workers.py), as real
`nettvakt collector run` processes on loopback ports, with real influxd where points are counted.

1. With two workers a collector gives every request the answer (status and JSON body) it gives
   alone: good, resent, bad, forbidden, oversized batches, heartbeats, configuration, unknown
   paths; a reload reaches the workers (a new agent's token, a site moved to another collector: 421).
2. Agents sending at once, each batch sent twice at the same moment on two connections (so two
   workers may hold the same batch): every point lands in InfluxDB once, counted there and by the
   collector's written_points.
3. A worker killed with SIGKILL while real agents (spool, seq, retries) send: it is started again,
   the agents' resends land once, nothing acknowledged is lost.
4. The collector's main process killed with SIGKILL: its workers let go of the port and exit; the
   collector started again gets every acknowledged point to InfluxDB once. A worker whose main is
   gone answers 503 with JSON, never 500.
5. A port in use is refused at start; a running collector holds its port.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.points import Point
from agent.runner import Agent, AgentSettings
from collector.influxql import query
from collector.ingest_worker import CollectorLink, WorkerIngest, worker_app
from collector.localservers import free_port, wait_until
from collector.logins import UserNames
from collector.queue import DurableQueue
from inventories import InventoryBuilder
from serving import serving
from test_durability import influx_point_count

NOW_NS = time.time_ns()
WORKERS = 2


def start_collector(nettvakt: Any, path: Path, port: int, log: Path, *, name: str | None = None) -> tuple[Any, str]:
    """A collector process on `port`, once its /health answers (its workers listen by then)."""
    argv = ["collector", "run", "--inventory", str(path), "--listen", f"127.0.0.1:{port}"] + (["--name", name] if name else [])
    proc = nettvakt.start(argv, log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and nettvakt.health(url)["status"], 60, "collector health")
    except TimeoutError:
        raise AssertionError(f"the collector did not start: {log.read_text()[-3000:]}") from None
    return proc, url


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def host_points(host: str, first: int, count: int) -> list[dict[str, Any]]:
    """`count` host points of one agent, each at its own time (1 ms apart from an hour ago)."""
    t0 = NOW_NS - 3600 * 10**9
    return [{"measurement": "host", "tags": {"host": host}, "fields": {"cpu_pct": float(k % 100)}, "time": t0 + k * 1_000_000}
            for k in range(first, first + count)]


def counted(influx_url: str, database: str) -> int:
    rows = query(influx_url, database, "SELECT count(cpu_pct) FROM host")
    return int(rows[0]["count"]) if rows else 0


async def post(url: str, path: str, *, token: str | None = None, method: str = "POST", **body: Any) -> tuple[int, Any]:
    """One request on a connection of its own (with workers, any of them may take it): (status, JSON answer)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.request(method, url + path, headers=headers, **body) as resp:
            return resp.status, await resp.json(content_type=None)


# --- 1. the same answers ---------------------------------------------------------------------------
def region(folder: Path, ports: dict[str, int], workers: int, *, helse_at: str, newcomer: bool) -> InventoryBuilder:
    """Collector a (the one run) owning radhus and helse until helse moves to b (never run: only its
    url is told); pc1 at radhus, pc2 at helse, pc3 only once `newcomer`."""
    built = (InventoryBuilder(folder).collector(ingest_workers=workers, max_batch_points=50, max_batch_bytes=20_000)
             .site("radhus").site("helse", "Helse").site("skole", "Skole")
             .collectors("a", f"http://127.0.0.1:{ports['a']}", ["radhus", *(["helse"] if helse_at == "a" else [])], listen=f"127.0.0.1:{ports['a']}")
             .collectors("b", f"http://127.0.0.1:{ports['b']}", ["skole", *(["helse"] if helse_at == "b" else [])], listen=f"127.0.0.1:{ports['b']}")
             .agent("pc1").agent("pc2", site="helse"))
    if newcomer:
        built.agent("pc3")
    return built


def ingest(agent: str, seq: int, points: list[dict[str, Any]]) -> dict[str, Any]:
    return {"json": {"agent": agent, "seq": seq, "points": points}}


REQUESTS: list[tuple[str, str, str | None, dict[str, Any]]] = [
    # (what, path, the token's agent, request body)
    ("good", "/api/v1/ingest", "pc1", ingest("pc1", 1, host_points("pc1", 0, 3))),
    ("resent", "/api/v1/ingest", "pc1", ingest("pc1", 1, host_points("pc1", 0, 3))),
    ("another agent's", "/api/v1/ingest", "pc2", ingest("pc2", 1, host_points("pc2", 0, 2))),
    ("no token", "/api/v1/ingest", None, ingest("pc1", 2, host_points("pc1", 3, 1))),
    ("unknown token", "/api/v1/ingest", "nobody", ingest("pc1", 2, host_points("pc1", 3, 1))),
    ("batch of another agent", "/api/v1/ingest", "pc1", ingest("pc2", 2, host_points("pc2", 3, 1))),
    ("not JSON", "/api/v1/ingest", "pc1", {"data": b"{not json"}),
    ("a field of the wrong type", "/api/v1/ingest", "pc1",
     ingest("pc1", 2, [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": [1]}, "time": NOW_NS}])),
    ("a measurement agents may not write", "/api/v1/ingest", "pc1",
     ingest("pc1", 2, [{"measurement": "device", "tags": {"device": "sw"}, "fields": {"up": 1}, "time": NOW_NS}])),
    ("another host's point", "/api/v1/ingest", "pc1",
     ingest("pc1", 2, [{"measurement": "host", "tags": {"host": "pc2"}, "fields": {"cpu_pct": 1}, "time": NOW_NS}])),
    ("a point older than a spool keeps", "/api/v1/ingest", "pc1",
     ingest("pc1", 2, [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1}, "time": NOW_NS - 100 * 86400 * 10**9}])),
    ("more points than max_batch_points", "/api/v1/ingest", "pc1", ingest("pc1", 2, host_points("pc1", 3, 51))),
    ("a body over max_batch_bytes", "/api/v1/ingest", "pc1", {"data": b"[" + b" " * 30_000 + b"]"}),
    ("a heartbeat", "/api/v1/agents/pc1/heartbeat", "pc1", {"json": {"pending_points": 4}}),
    ("a bad heartbeat", "/api/v1/agents/pc1/heartbeat", "pc1", {"json": {"pending_points": -1}}),
    ("a heartbeat for another agent", "/api/v1/agents/pc2/heartbeat", "pc1", {"json": {}}),
    ("an unknown path", "/api/v1/nothing", "pc1", {"json": {}}),
]


def test_two_workers_answer_every_request_as_the_collector_alone_and_take_reloads(nettvakt, tmp_path: Path) -> None:
    b = free_port()  # the same collector b for both: a 421 names it
    ports = {w: {"a": free_port(), "b": b} for w in (0, WORKERS)}
    built = {w: region(tmp_path / f"w{w}", ports[w], w, helse_at="a", newcomer=False) for w in (0, WORKERS)}
    urls = {}
    for w, inv in built.items():
        inv.folder.mkdir()
        urls[w] = start_collector(nettvakt, inv.write(), ports[w]["a"], inv.folder / "collector.log", name="a")[1]
    tokens = built[0].tokens | {"nobody": "not-a-token"}

    async def answers(url: str) -> list[tuple[int, Any]]:
        return [await post(url, path, token=tokens[who] if who else None, **body) for _, path, who, body in REQUESTS]

    alone, with_workers = asyncio.run(answers(urls[0])), asyncio.run(answers(urls[WORKERS]))
    for (what, *_), one, two in zip(REQUESTS, alone, with_workers):
        assert two == one, what
    assert [status for status, _ in alone] == [200, 200, 200, 401, 401, 403, 400, 400, 403, 403, 400, 413, 413, 200, 400, 403, 404]
    assert alone[1][1]["duplicate"] is True and alone[0][1]["accepted"] == 3
    # The agent configuration, through a worker to main and back.
    assert asyncio.run(post(urls[WORKERS], "/api/v1/agents/pc1/config", token=tokens["pc1"], method="GET")) == \
        asyncio.run(post(urls[0], "/api/v1/agents/pc1/config", token=tokens["pc1"], method="GET"))
    health = nettvakt.health(urls[WORKERS])
    assert health["ingest"] == nettvakt.health(urls[0])["ingest"] == {"batches": 2, "points": 5, "duplicates": 1, "rate_limited": 0, "too_old": 0}
    assert health["agents"]["pc1"]["pending_points"] == 4  # the heartbeat reached main
    assert [w["connected"] for w in health["ingest_workers"]] == [True] * WORKERS and "ingest_workers" not in nettvakt.health(urls[0])

    # A reload: pc3 comes, helse (pc2) moves to collector b. Every worker takes it (each says so).
    for w, inv in built.items():
        region(inv.folder, ports[w], w, helse_at="b", newcomer=True).write()
    for w in built:
        wait_until(lambda w=w: nettvakt.health(urls[w])["inventory"]["reloads"] == 1, 30, f"collector with {w} workers reloaded")
    wait_until(lambda: all(x["inventory_current"] for x in nettvakt.health(urls[WORKERS])["ingest_workers"]), 30, "every worker on the new inventory")
    tokens["pc3"] = region(tmp_path, ports[0], 0, helse_at="b", newcomer=True).tokens["pc3"]
    after = [
        ("pc3", ingest("pc3", 1, host_points("pc3", 0, 2))),
        ("pc2", ingest("pc2", 2, host_points("pc2", 2, 2))),
    ]
    for _ in range(3):  # each on a new connection: whichever worker takes it, it runs the new inventory
        for who, body in after:
            one = asyncio.run(post(urls[0], "/api/v1/ingest", token=tokens[who], **body))
            two = asyncio.run(post(urls[WORKERS], "/api/v1/ingest", token=tokens[who], **body))
            assert two == one, who
            if who == "pc2":
                assert one[0] == 421 and one[1]["collector_url"] == f"http://127.0.0.1:{b}"
            else:
                assert one[0] == 200


# --- 2. many agents at once, every batch twice ----------------------------------------------------
def test_concurrent_agents_and_simultaneous_resends_land_exactly_once(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    agents, batches, size = 8, 12, 40
    built = InventoryBuilder(tmp_path).collector(ingest_workers=WORKERS).influxdb(server.url, database, flush_interval_s=0.2)
    for i in range(agents):
        built.agent(f"pc{i}")
    proc, url = start_collector(nettvakt, built.write(), free_port(), tmp_path / "collector.log")

    async def agent(i: int) -> list[dict[str, Any]]:
        host, answers = f"pc{i}", []
        for seq in range(1, batches + 1):
            body = ingest(host, seq, host_points(host, (seq - 1) * size, size))
            # The same batch on two connections at the same moment: two workers may both hold it.
            pair = await asyncio.gather(*(post(url, "/api/v1/ingest", token=built.tokens[host], **body) for _ in range(2)))
            answers += [answer for status, answer in pair if status == 200]
        return answers

    async def everyone() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(agent(i) for i in range(agents)))

    answers = [a for per_agent in asyncio.run(everyone()) for a in per_agent]
    assert len(answers) == 2 * agents * batches
    assert sum(a["accepted"] for a in answers) == agents * batches * size  # of each pair, one stored ...
    assert sum(a["duplicate"] for a in answers) == agents * batches  # ... and one known as a resend
    expected = agents * batches * size
    wait_until(lambda: counted(server.url, database) >= expected, 60, f"{expected} points in InfluxDB")
    assert counted(server.url, database) == expected
    health = nettvakt.health(url)
    assert health["ingest"]["batches"] == agents * batches and health["ingest"]["duplicates"] == agents * batches
    assert all(w["batches"] > 0 for w in health["ingest_workers"]), health["ingest_workers"]  # both workers took batches
    assert_written_once(nettvakt, proc, built, server.url, database)


def assert_written_once(nettvakt: Any, proc: Any, built: InventoryBuilder, influx_url: str, database: str) -> None:
    """InfluxDB keeps one of two identical points, so a point written twice would not show in its
    count: after a clean stop (the queue drained), the collector's count of points written equals
    InfluxDB's count of every point (the agents' and its own)."""
    nettvakt.stop(proc)
    queue = DurableQueue(built.data_dir / "queue.sqlite3")
    try:
        stats = queue.stats()
    finally:
        queue.close()
    assert stats["queue_points"] == stats["dropped_points"] == stats["rejected_points"] == 0
    assert stats["written_points"] == influx_point_count(influx_url, database)


# --- 3 and 4. processes killed while real agents send ---------------------------------------------
class Senders:
    """Real agents' send loops (spool, seq, retries), fed host points with a time each."""

    def __init__(self, built: InventoryBuilder, url: str, count: int):
        self.hosts = [f"pc{i}" for i in range(count)]
        self.agents = [Agent(AgentSettings(agent_id=host, collector_url=url, token=built.tokens[host], spool_path=built.folder / f"{host}.sqlite3",
                                           batch_points=40, send_interval_s=0.1, backoff_max_s=1.0)) for host in self.hosts]
        self.made = [0] * count

    def add(self, n: int = 10) -> None:
        for i, agent in enumerate(self.agents):
            agent.spool.add([Point(p["measurement"], {**p["tags"], "site": "radhus"}, p["fields"], p["time"])
                             for p in host_points(self.hosts[i], self.made[i], n)])
            self.made[i] += n

    def pending(self) -> int:
        return sum(agent.spool.pending() for agent in self.agents)

    async def run(self, scenario: Callable[[], Awaitable[None]]) -> None:
        """The agents send (and `add` is called every 0.1 s) while `scenario` runs; then until their spools are empty."""
        stop = asyncio.Event()

        async def produce() -> None:
            while not stop.is_set():
                await asyncio.to_thread(self.add)
                await asyncio.sleep(0.1)  # the agents' pace of measuring, not a wait for anything

        sessions = [aiohttp.ClientSession(headers={"Authorization": f"Bearer {a.settings.token}"}, timeout=aiohttp.ClientTimeout(total=10))
                    for a in self.agents]
        tasks = [asyncio.create_task(a._send_loop(s)) for a, s in zip(self.agents, sessions)]
        producer = asyncio.create_task(produce())
        try:
            await scenario()
            stop.set()
            await producer
            await asyncio.to_thread(wait_until, lambda: self.pending() == 0, 60, "agent spools drained")
        finally:
            stop.set()
            for task in (producer, *tasks):
                task.cancel()
            await asyncio.gather(producer, *tasks, return_exceptions=True)
            for session in sessions:
                await session.close()
            for agent in self.agents:
                agent.spool.close()


def test_a_worker_killed_mid_run_is_started_again_and_nothing_is_lost_or_doubled(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    built = InventoryBuilder(tmp_path).collector(ingest_workers=WORKERS).influxdb(server.url, database, flush_interval_s=0.2)
    for i in range(6):
        built.agent(f"pc{i}")
    proc, url = start_collector(nettvakt, built.write(), free_port(), tmp_path / "collector.log")
    senders = Senders(built, url, 6)

    async def kill_a_worker() -> None:
        # The busiest worker: each agent keeps its connection, and the kernel may have given them all to one.
        await asyncio.to_thread(wait_until, lambda: any(w["batches"] >= 3 for w in nettvakt.health(url)["ingest_workers"]), 30,
                                "batches through a worker")
        index, victim = max(enumerate(nettvakt.health(url)["ingest_workers"]), key=lambda w: w[1]["batches"])
        os.kill(victim["pid"], signal.SIGKILL)
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(url)["ingest_workers"][index]["restarts"] == 1
                                and nettvakt.health(url)["ingest_workers"][index]["connected"], 30, "the worker started again")
        again = nettvakt.health(url)
        assert again["ingest_workers"][index]["pid"] != victim["pid"] and not running(victim["pid"])
        assert again["status"] == "degraded" and any(f"ingest worker {index} ended (killed by SIGKILL)" in p for p in again["problems"])
        batches = again["ingest"]["batches"]
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(url)["ingest"]["batches"] >= batches + 12, 30, "agents sending after the kill")

    asyncio.run(senders.run(kill_a_worker))
    made = sum(senders.made)
    wait_until(lambda: counted(server.url, database) >= made, 60, f"{made} points in InfluxDB")
    assert counted(server.url, database) == made
    # Every point taken once: a resend of what main had committed before the kill was a duplicate.
    assert nettvakt.health(url)["ingest"]["points"] == made
    assert_written_once(nettvakt, proc, built, server.url, database)


def test_main_killed_its_workers_go_and_the_restarted_collector_loses_nothing(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    built = InventoryBuilder(tmp_path).collector(ingest_workers=WORKERS).influxdb(server.url, database, flush_interval_s=0.2)
    for i in range(4):
        built.agent(f"pc{i}")
    path, port, log = built.write(), free_port(), tmp_path / "collector.log"
    main, url = start_collector(nettvakt, path, port, log)
    senders = Senders(built, url, 4)
    acknowledged_before = 0

    async def kill_main() -> None:
        nonlocal main, acknowledged_before
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(url)["ingest"]["batches"] >= 10, 30, "batches taken")
        workers = [w["pid"] for w in nettvakt.health(url)["ingest_workers"]]
        main.send_signal(signal.SIGKILL)
        await asyncio.to_thread(main.wait, 10)
        # Main's connection gone, each worker answers what it holds 503 and exits: the port is free again.
        await asyncio.to_thread(wait_until, lambda: not any(running(pid) for pid in workers), 15, "the workers of the killed collector gone")
        acknowledged_before = sum(a.sent_batches for a in senders.agents)
        main, _ = await asyncio.to_thread(start_collector, nettvakt, path, port, log)
        await asyncio.to_thread(wait_until, lambda: nettvakt.health(url)["ingest"]["batches"] >= 10, 30, "batches after the restart")

    asyncio.run(senders.run(kill_main))
    assert acknowledged_before > 0
    made = sum(senders.made)
    wait_until(lambda: counted(server.url, database) >= made, 60, f"{made} points in InfluxDB")
    assert counted(server.url, database) == made
    per_host = {r["host"]: r["count"] for r in query(server.url, database, "SELECT count(cpu_pct) FROM host GROUP BY host")}
    assert per_host == dict(zip(senders.hosts, senders.made))
    assert "Traceback" not in log.read_text()


def test_a_port_in_use_is_refused_at_start_and_the_running_collector_holds_its_port(nettvakt, tmp_path: Path) -> None:
    path = InventoryBuilder(tmp_path).collector(ingest_workers=WORKERS).agent("pc1").write()
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        refused = nettvakt.start(["collector", "run", "--inventory", str(path), "--listen", f"127.0.0.1:{port}"], tmp_path / "refused.log")
        assert refused.wait(30) == 2
        assert f"cannot listen on 127.0.0.1:{port}: address already in use" in (tmp_path / "refused.log").read_text()
    finally:
        taken.close()
    proc, url = start_collector(nettvakt, path, port, tmp_path / "collector.log")
    # Another program cannot take the port while the collector runs, also between a worker's death and its restart.
    with pytest.raises(OSError):
        socket.create_server(("127.0.0.1", port))
    # Nor a second collector with workers (SO_REUSEPORT would let it share the port: two queues, resends stored twice).
    second = InventoryBuilder(tmp_path / "second").collector(ingest_workers=WORKERS).agent("pc1").write()
    shared = nettvakt.start(["collector", "run", "--inventory", str(second), "--listen", f"127.0.0.1:{port}"], tmp_path / "second.log")
    assert shared.wait(30) == 2
    assert f"cannot listen on 127.0.0.1:{port}: address already in use" in (tmp_path / "second.log").read_text()
    workers = [w["pid"] for w in nettvakt.health(url)["ingest_workers"]]
    nettvakt.stop(proc)
    assert proc.returncode == 0 and not any(running(pid) for pid in workers)
    assert not list((tmp_path / "data" / "ingest").glob("*.sock"))  # main's sockets gone with it


def test_a_worker_whose_collector_is_gone_answers_503_with_json(tmp_path: Path) -> None:
    """The worker's app, served for real, its link to main a socket whose other end has closed and
    main's HTTP socket missing: ingest and every passed-on request get 503 with JSON, never 500."""
    built = InventoryBuilder(tmp_path).agent("pc1")
    inventory = built.parse()

    async def scenario() -> None:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        theirs.close()  # main gone
        link = CollectorLink(reader, writer)
        await link.run(lambda *_: None)  # returns at once: the connection is closed
        app = worker_app(WorkerIngest(inventory, UserNames.from_inventory(inventory), link), str(tmp_path / "no-main.sock"))
        async with serving(app) as url:
            for path, body in (("/api/v1/ingest", ingest("pc1", 1, host_points("pc1", 0, 2))), ("/api/v1/agents/pc1/heartbeat", {"json": {}}),
                               ("/api/v1/health", {})):
                status, answer = await post(url, path, token=built.tokens["pc1"], method="GET" if path.endswith("health") else "POST", **body)
                assert status == 503 and "error" in answer and answer["retry_after_s"] == 1, (path, answer)
            # What the worker refuses itself needs no collector: a bad batch is still 400.
            status, answer = await post(url, "/api/v1/ingest", token=built.tokens["pc1"], data=b"{not json")
            assert status == 400 and "not valid JSON" in answer["error"]

    asyncio.run(scenario())
