"""Collector throughput: many concurrent agents through the collector into influxd, next to influxd's own ceiling.

    .venv/bin/python bench/collector_throughput.py [--agents 20] [--points 200000] [--json]

One influxd and one collector process (`nettvakt collector run`) on loopback, in the same run:

1. influxd's ceiling: the same kind of points written straight to its /write in batches
   of 5,000 (two writers at once), points/s;
2. the collector at full speed: --agents agents post batches of --batch points, each agent one
   request at a time as the real agent does; points/s acknowledged (durably queued), and
   points/s end to end (until influxd holds them all);
3. latency at half of influxd's ceiling (the aim), and at half of the collector's own
   end-to-end rate from (2): the agents paced to that rate for --paced-s seconds; p50/p99
   of the ingest answer time, and how long the writer needed after the last answer;
4. where the collector's time goes, per 1,000 points, measured in this process on the same
   code: JSON decoding, the contract check of every point (as ingest does it), the durable queue's commit, line protocol.

The load generator, the collector and influxd share this machine's cores, so (2) is a lower
bound of what the collector could do alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from agent.points import Point  # noqa: E402
from agent.report import parse_batch  # noqa: E402
from collector.influxql import query  # noqa: E402
from collector.ingest import TimeWindow, agent_point  # noqa: E402
from collector.lineprotocol import encode_point  # noqa: E402
from collector.queue import DurableQueue  # noqa: E402
from collector.service import token_hash  # noqa: E402
from collector.localservers import free_port, start_influxd, wait_until  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def make_points(host: str, n: int, t0: int, measurement: str = "host") -> list[dict]:
    return [
        {"measurement": measurement, "tags": {"host": host, "site": "radhus"},
         "fields": {"cpu_pct": float(k % 100), "mem_used_pct": 42.5, "load1": 0.25}, "time": t0 + k}
        for k in range(n)
    ]


def create_db(url: str, name: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=f"q=CREATE DATABASE {name}".encode()), timeout=10).close()


def count(url: str, db: str) -> int:
    rows = query(url, db, "SELECT count(cpu_pct) FROM host")
    return int(rows[0]["count"]) if rows else 0


async def direct_ceiling(url: str, db: str, total: int, batch: int = 5000, writers: int = 2) -> float:
    t0 = time.time_ns() - 7200 * 10**9
    bodies = []
    for b in range(total // batch):
        lines = [encode_point(Point.from_json(p)) for p in make_points(f"d{b % 20}", batch, t0 + b * batch)]
        bodies.append(("\n".join(lines) + "\n").encode())
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def writer(http: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with http.post(f"{url}/write", params={"db": db, "precision": "ns"}, data=body) as resp:
                assert resp.status == 204, await resp.text()

    async with aiohttp.ClientSession() as http:
        start = time.perf_counter()
        await asyncio.gather(*(writer(http) for _ in range(writers)))
        elapsed = time.perf_counter() - start
    return len(bodies) * batch / elapsed


def write_inventory(path: Path, influx_url: str, db: str, agents: int) -> None:
    text = f"""
[collector]
data_dir = "{path.parent / 'collector-data'}"
agent_requests_per_s = 100000
agent_request_burst = 100000

[storage]
kind = "influxdb_v1"
url = "{influx_url}"
database = "{db}"
batch_size = 5000
flush_interval_s = 0.2

[[site]]
id = "radhus"
name = "Rådhuset"
"""
    for i in range(agents):
        text += f'\n[[agent]]\nid = "a{i:02d}"\nname = "a{i:02d}"\nsite = "radhus"\ntoken_sha256 = "{token_hash(f"bench-token-{i}")}"\n'
    path.write_text(text, encoding="utf-8")


async def agent_load(base: str, agents: int, batches: int, batch: int, t0: int, seq0: int,
                     rate_per_agent: float | None = None) -> list[float]:
    """Each agent posts its batches one at a time; returns every request's latency (s)."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        headers = {"Authorization": f"Bearer bench-token-{i}", "Content-Type": "application/json"}
        bodies = [
            json.dumps({"agent": f"a{i:02d}", "seq": seq0 + b, "points": make_points(f"a{i:02d}", batch, t0 + b * batch)}).encode()
            for b in range(batches)
        ]
        async with aiohttp.ClientSession(headers=headers) as http:
            next_at = time.perf_counter()
            for body in bodies:
                if rate_per_agent:
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += batch / rate_per_agent
                start = time.perf_counter()
                async with http.post(f"{base}/api/v1/ingest", data=body) as resp:
                    assert resp.status == 200, await resp.text()
                    await resp.read()
                latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one(i) for i in range(agents)))
    return latencies


def breakdown(workdir: Path, n: int = 20000) -> dict[str, float]:
    """Microseconds per point for each stage of the ingest and write path, in this process."""
    raw = json.dumps({"agent": "a00", "seq": 1, "points": make_points("a00", n, time.time_ns())}).encode()
    out: dict[str, float] = {}
    start = time.perf_counter()
    data = json.loads(raw)
    out["json_decode_us"] = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    # As the collector's ingest does: the contract check of every point, stamped with the agent's site and host.
    window, now = TimeWindow(max_ahead_s=300, max_age_s=90 * 86400), time.time_ns()
    batch = parse_batch(data, n, lambda point, i: agent_point(point, i, "a00", "radhus", now, window))
    out["validate_us"] = (time.perf_counter() - start) / n * 1e6
    queue = DurableQueue(workdir / "breakdown.sqlite3")
    try:
        start = time.perf_counter()
        for k in range(20):
            queue.put("agent:a00", k, batch.points[k * (n // 20):(k + 1) * (n // 20)])
        out["queue_commit_us"] = (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        batches = queue.peek(n)
        out["queue_read_us"] = (time.perf_counter() - start) / n * 1e6
    finally:
        queue.close()
    start = time.perf_counter()
    "\n".join(encode_point(p) for b in batches for p in b.points)
    out["line_protocol_us"] = (time.perf_counter() - start) / n * 1e6
    return {k: round(v, 2) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--points", type=int, default=200000, help="points per full-speed run")
    parser.add_argument("--batch", type=int, default=1000, help="points per agent batch")
    parser.add_argument("--paced-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results: dict[str, object] = {"agents": args.agents, "batch": args.batch, "points": args.points}
    with tempfile.TemporaryDirectory(prefix="nettvakt-bench-") as tmp:
        workdir = Path(tmp)
        influx = start_influxd(workdir / "influxd")
        collector = None
        try:
            for db in ("direct", "via"):
                create_db(influx.url, db)
            ceiling = asyncio.run(direct_ceiling(influx.url, "direct", args.points))
            results["influxd_direct_points_per_s"] = round(ceiling)

            port = free_port()
            base = f"http://127.0.0.1:{port}"
            inventory = workdir / "inventory.toml"
            write_inventory(inventory, influx.url, "via", args.agents)
            collector = subprocess.Popen(
                [sys.executable, "-m", "agent.cli", "collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"],
                cwd=ROOT, stdout=(workdir / "collector.log").open("wb"), stderr=subprocess.STDOUT,
            )
            wait_until(lambda: urllib.request.urlopen(f"{base}/api/v1/health", timeout=2).status == 200, 30, "collector")

            per_agent = args.points // (args.agents * args.batch)
            total = per_agent * args.agents * args.batch
            t0 = time.time_ns() - 3600 * 10**9
            start = time.perf_counter()
            asyncio.run(agent_load(base, args.agents, per_agent, args.batch, t0, 1))
            acked_s = time.perf_counter() - start
            wait_until(lambda: count(influx.url, "via") >= total, 300, "all points in influxd")
            e2e_s = time.perf_counter() - start
            results["collector_ingest_points_per_s"] = round(total / acked_s)
            results["collector_end_to_end_points_per_s"] = round(total / e2e_s)
            results["end_to_end_share_of_ceiling"] = round(total / e2e_s / ceiling, 3)

            # Half of influxd's ceiling (the aim), then half of the collector's own end-to-end
            # rate (its latency when not saturated), spread over the agents, --paced-s seconds each.
            expected = total
            seq0, t_next = 10**6, t0 + 10**12
            for label, rate in (("half_ceiling", ceiling / 2), ("half_collector", total / e2e_s / 2)):
                batches = max(1, int(rate * args.paced_s / (args.agents * args.batch)))
                start = time.perf_counter()
                lat = asyncio.run(agent_load(base, args.agents, batches, args.batch, t_next, seq0, rate_per_agent=rate / args.agents))
                sent_s = time.perf_counter() - start
                expected += batches * args.agents * args.batch
                wait_until(lambda: count(influx.url, "via") >= expected, 300, "paced points in influxd")
                lag_s = time.perf_counter() - start - sent_s
                lat.sort()
                results[f"{label}_target_points_per_s"] = round(rate)
                results[f"{label}_achieved_points_per_s"] = round(batches * args.agents * args.batch / sent_s)
                results[f"{label}_latency_p50_ms"] = round(statistics.median(lat) * 1000, 1)
                results[f"{label}_latency_p99_ms"] = round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000, 1)
                results[f"{label}_writer_lag_after_last_ack_s"] = round(lag_s, 2)
                seq0 += 10**6
                t_next += 10**12
        finally:
            if collector is not None:
                collector.terminate()
                collector.wait(30)
            influx.stop()
        results["per_point_us"] = breakdown(workdir)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            print(f"{key:40} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
