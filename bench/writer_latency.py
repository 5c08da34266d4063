"""The writer alone, draining a full queue into influxd behind a network delay, at each write concurrency.

    .venv/bin/python bench/writer_latency.py [--points 100000] [--delay-ms 0,20] [--concurrency 1,2,4,8] [--json]

The durable queue is filled before the clock starts with points shaped like agent reports
(bench/collector_throughput.py's report rounds, 1,000-point batches as agents send them), then the
collector's writer (collector/writer.py, batch_size 5,000) drains it into a fresh influxd. Between
them a proxy on loopback holds each write --delay-ms before passing it on, as a storage across a
network would (a regional collector writing to a storage elsewhere). Measured per delay and
`[storage] write_concurrency`: points/s drained (until the queue is empty; influxd has answered
every write), the CPU-seconds per million points of this process (the writer, the proxy and the
queue's threads), and the most writes the proxy held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from agent.points import Point  # noqa: E402
from collector.config import parse_inventory  # noqa: E402
from collector.localservers import free_port, start_influxd  # noqa: E402
from collector.queue import DurableQueue  # noqa: E402
from collector.writer import QueueWriter, make_sink  # noqa: E402
from collector_throughput import report_round  # noqa: E402

BATCH = 1000


def fill(queue: DurableQueue, points: int) -> int:
    """Agent-shaped points, 20 agents' report rounds a second apart, queued in 1,000-point batches."""
    rng = random.Random(21)
    t0 = time.time_ns() - 3600 * 10**9
    made: list[Point] = []
    round_no = 0
    while len(made) < points:
        for agent in range(20):
            made += [Point.from_json(p) for p in report_round(f"a{agent:02d}", t0 + round_no * 10**9, rng)]
        round_no += 1
    for seq, at in enumerate(range(0, points, BATCH), 1):
        queue.put("agent:bench", seq, made[at:at + BATCH])
    return points


async def delaying_proxy(target: str, delay_s: float, held: list[int]) -> tuple[web.AppRunner, str]:
    """Passes each request to `target` after `delay_s`; held[0] now held, held[1] the most at once."""
    client = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        held[0] += 1
        held[1] = max(held[1], held[0])
        try:
            body = await request.read()
            await asyncio.sleep(delay_s)
            async with client.post(f"{target}{request.path}", params=request.query, data=body,
                                   headers={"Content-Type": request.content_type}) as resp:
                return web.Response(status=resp.status, body=await resp.read())
        finally:
            held[0] -= 1

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/write", forward)

    async def close_client(_: web.Application) -> None:
        await client.close()

    app.on_cleanup.append(close_client)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def influx_query(url: str, statement: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/query", data=f"q={statement}".encode()), timeout=30).close()


async def drain(workdir: Path, influx_url: str, database: str, points: int, delay_s: float, concurrency: int) -> dict[str, Any]:
    queue = DurableQueue(workdir / f"queue-{database}.sqlite3")
    await asyncio.to_thread(fill, queue, points)
    held = [0, 0]
    runner, proxy = await delaying_proxy(influx_url, delay_s, held)
    inventory = parse_inventory({"storage": {"kind": "influxdb_v1", "url": proxy, "database": database}}, workdir / "inventory.toml")
    sink = make_sink(inventory)
    assert sink is not None
    writer = QueueWriter(queue, sink, batch_size=5000, write_concurrency=concurrency)
    try:
        cpu, start = time.process_time(), time.perf_counter()
        task = asyncio.create_task(writer.run())
        while (await asyncio.to_thread(queue.stats))["queue_points"]:
            await asyncio.sleep(0.01)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await sink.close()
        await runner.cleanup()
        queue.close()
    return {"points_per_s": round(points / wall), "cpu_s_per_million_points": round(cpu / points * 1e6, 2), "most_writes_held": held[1]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=100000)
    parser.add_argument("--delay-ms", default="0,20", help="comma-separated delays the proxy adds to each write")
    parser.add_argument("--concurrency", default="1,2,4,8", help="comma-separated [storage] write_concurrency to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        delays = [float(d) for d in args.delay_ms.split(",")]
        levels = [int(c) for c in args.concurrency.split(",")]
    except ValueError:
        parser.error("--delay-ms and --concurrency: numbers separated by commas")
    if any(c < 1 for c in levels) or any(d < 0 for d in delays):
        parser.error("--concurrency: 1 or more; --delay-ms: 0 or more")
    results: dict[str, Any] = {"points": args.points, "runs": {}}
    with tempfile.TemporaryDirectory(prefix="nettvakt-writer-") as tmp:
        influx = start_influxd(Path(tmp) / "influxd")
        try:
            for delay in delays:
                for level in levels:
                    database = f"d{int(delay)}c{level}"
                    influx_query(influx.url, f"CREATE DATABASE {database}")
                    run = asyncio.run(drain(Path(tmp), influx.url, database, args.points, delay / 1000, level))
                    results["runs"][f"delay_{delay:g}ms_c{level}"] = run
                    print(f"# delay {delay:g} ms, write_concurrency {level}: {run}", file=sys.stderr, flush=True)
        finally:
            influx.stop()
    print(json.dumps(results, indent=2) if args.json else "\n".join(f"{k:24} {v}" for k, v in results["runs"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
