"""The status page's first render and its refresh, from the local store and from a real influxd.

    .venv/bin/python bench/status_page.py [--hours 26] [--repeat 3] [--store both|local|influx] [--profile] [--json]

The shipped inventory.toml (7 sites, 8 agents measuring 24 probe targets, 10 devices), copied
with its storage pointed at a temp folder (the local store) or at an influxd this script starts
on loopback with its data in a temp folder: no collector runs and nothing is sent to the
inventory's own addresses. The same history is written both ways: --hours of what the collector
stores for that estate, as it arrives (one batch a minute per agent and per polled device, the
availability verdicts at every beat; each local batch stamped with the minute it arrived):

- each agent's probe rounds at each target's interval (with its kind's latency field, the icmp
  spread and loss), its `host`, `host_disk` and `host_net` points every `interval_s`;
- each SNMP device's `device` point and four interfaces every `interval_s` (the uplinks' line
  among them);
- the `availability` verdicts of every agent, target and device every `availability_beat_s`.

Measured, in this process, each `--repeat` times: the overview's **first render** (a new
`HistoryService`: every read from the store, then the HTML), and a **refresh** a minute later
(one more minute of batches written, the same `HistoryService` with its charts' time to live
passed), as the collector's page handler does them (`sections.gather`, then the renderer). The
machine's other load is not controlled: the figures are medians, with the slowest.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import statistics
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.points import Point  # noqa: E402
from collector.config import Inventory, parse_inventory  # noqa: E402
from collector.history import HistoryService  # noqa: E402
from collector.lineprotocol import encode_points  # noqa: E402
from collector.localservers import start_influxd  # noqa: E402
from collector.queue import DurableQueue  # noqa: E402
from collector.service import CollectorService  # noqa: E402
from collector.status import overview, sections  # noqa: E402
from collector.writer import make_sink  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
MINUTE = 60
INTERFACES = 4
LATENCY_FIELDS = {"icmp": "rtt_ms", "tcp": "connect_ms", "http": "ttfb_ms", "dns": "resolve_ms"}


def example_inventory(folder: Path, storage: dict[str, Any]) -> Inventory:
    data = tomllib.loads((ROOT / "inventory.toml").read_text(encoding="utf-8"))
    data["storage"] = storage
    data["collector"] = {"data_dir": str(folder / "data")}
    return parse_inventory(data, ROOT / "inventory.toml")


def probe_fields(kind: str, n: int, vannvag: bool) -> dict[str, float]:
    rtt = 8.0 + (n * 7919 % 13) + (40.0 if vannvag and n % 50 < 3 else 0.0)
    fields = {"up": 1.0, LATENCY_FIELDS[kind]: rtt}
    if kind == "icmp":
        fields.update(rtt_min_ms=rtt * 0.8, rtt_max_ms=rtt * 1.6, loss_pct=float(n % 97 == 0) * 10, sent=10.0, received=10.0 - (n % 97 == 0))
    return fields


def minute_batches(inventory: Inventory, minute_start_s: int) -> Iterator[tuple[str, list[Point]]]:
    """What reaches the collector in one minute, per source."""
    beat = int(inventory.collector.availability_beat_s)
    t0 = minute_start_s
    for agent in inventory.agent:
        points: list[Point] = []
        host = {"site": agent.site, "host": agent.id}
        for probe in inventory.probes_for(agent):
            step = int(probe.interval_s)
            for t in range(t0 + (-t0) % step, t0 + MINUTE, step):
                points.append(Point("probe", {**host, "kind": probe.kind, "target": probe.name},
                                    probe_fields(probe.kind, t // step, agent.site == "vannvag"), t * NS))
        step = int(agent.interval_s)
        for t in range(t0 + (-t0) % step, t0 + MINUTE, step):
            points.append(Point("host", host, {"cpu_pct": float(t % 37), "mem_used_pct": 55.0, "load1": 0.4, "uptime_s": float(t % 86400),
                                               "spool_pending_points": 0.0}, t * NS))
            points.append(Point("host_disk", {**host, "mount": "C:"}, {"used_pct": 61.0, "free_bytes": 4e10}, t * NS))
            points.append(Point("host_net", {**host, "nic": "eth0"}, {"in_bps": float(t % 997) * 1e3, "out_bps": 2e4}, t * NS))
        yield f"agent:{agent.id}", points
    uplinks = {s.uplink for s in inventory.site}
    for device in inventory.device:
        if device.snmp is None:
            continue
        step = int(device.snmp.interval_s)
        points = []
        names = (device.snmp.important_interfaces or list(device.snmp.interface_speed_bps) or ["1"])[:1]
        names += [f"ge-0/{i}" for i in range(INTERFACES - len(names))]
        for t in range(t0 + (-t0) % step, t0 + MINUTE, step):
            tags = {"site": device.site, "device": device.id}
            points.append(Point("device", tags, {"up": 1.0, "cpu_pct": float(t % 23), "mem_used_pct": 40.0, "uptime_s": float(t)}, t * NS))
            for k, ifname in enumerate(names):
                line = k == 0 and device.id in uplinks
                points.append(Point("interface", {**tags, "ifname": ifname}, {
                    "in_bps": (300_000.0 + (t * 104729 % 500_000)) if line else 1000.0 * k, "out_bps": 90_000.0 + (t * 7 % 50_000),
                    "in_errors_ps": 0.0, "out_errors_ps": 0.0, "in_discards_ps": 0.0, "out_discards_ps": 0.0, "oper_up": 1.0,
                    "speed_bps": 1e8}, t * NS))
        if points:
            yield f"device:{device.id}", points
    verdicts: list[Point] = []
    for t in range(t0 + (-t0) % beat, t0 + MINUTE, beat):
        since = {"up": 1.0, "up_s": float(beat), "judged_s": float(beat)}
        for agent in inventory.agent:
            verdicts.append(Point("availability", {"site": agent.site, "kind": "agent", "host": agent.id}, since, t * NS))
            for probe in inventory.probes_for(agent):
                verdicts.append(Point("availability", {"site": agent.site, "kind": "target", "host": agent.id, "target": probe.name}, since, t * NS))
        for device in inventory.device:
            verdicts.append(Point("availability", {"site": device.site, "kind": "device", "device": device.id}, since, t * NS))
    if verdicts:
        yield "availability", verdicts


def fill_local(inventory: Inventory, minutes: list[int]) -> int:
    """The batches into the durable queue, each stamped with the minute it arrived in; points written."""
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3", max_bytes=16 * 1024**3)
    queue._db.execute("PRAGMA synchronous=OFF")  # filling a bench's store, not keeping a promise to an agent
    written = 0
    try:
        seqs: dict[str, int] = {}
        for minute in minutes:
            for source, points in minute_batches(inventory, minute):
                seqs[source] = seqs.get(source, 0) + 1
                queue.put(source, seqs[source], points)
                queue._db.execute("UPDATE batch SET received_ns = ? WHERE id = last_insert_rowid()", ((minute + MINUTE) * NS,))
                written += len(points)
    finally:
        queue.close()
    return written


def fill_influx(inventory: Inventory, minutes: list[int]) -> int:
    async def write() -> int:
        sink = make_sink(inventory)
        assert sink is not None
        written = 0
        try:
            chunk: list[Point] = []
            for minute in minutes:
                for _, points in minute_batches(inventory, minute):
                    chunk += points
                if len(chunk) >= 5000 or minute == minutes[-1]:
                    await sink.write(encode_points(chunk))
                    written += len(chunk)
                    chunk = []
        finally:
            await sink.close()
        return written
    return asyncio.run(write())


def render(history: HistoryService, inventory: Inventory, queue_path: Path, now_s: float) -> str:
    queue = DurableQueue(queue_path)  # the collector's live state; the history is in the store
    try:
        page_history = sections.gather(history, inventory, "24h", now_s)
        if page_history.error is not None:
            raise RuntimeError(page_history.error)
        return overview.render_status(CollectorService(inventory, queue), int(now_s * NS), {}, None, page_history, "24h")
    finally:
        queue.close()


def timed(results: dict[str, list[float]], name: str, call: Any, *args: Any) -> Any:
    started, cpu = time.perf_counter(), time.process_time()
    value = call(*args)
    results.setdefault(name, []).append(time.perf_counter() - started)
    results.setdefault(name + "_cpu", []).append(time.process_time() - cpu)
    return value


def measure(name: str, inventory: Inventory, workdir: Path, now_s: int, fill: Any, repeat: int, profile: bool) -> dict[str, Any]:
    """Per run: a cold render (nothing read yet); then, as a collector does it, the store folded at
    start, the first page view a minute later and a refresh a minute after that."""
    live_queue = workdir / f"live-{name}.sqlite3"
    results: dict[str, list[float]] = {}
    profiled = ""
    t = now_s
    for run in range(repeat):
        clock = [0.0]  # the charts' time to live is measured on this: a minute later it has passed
        if profile and run == 0:
            profiler = cProfile.Profile()
            profiler.runcall(render, HistoryService(clock=lambda: clock[0]), inventory, live_queue, float(t))
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(35)
            profiled = out.getvalue()
        html = timed(results, "cold", render, HistoryService(clock=lambda: clock[0]), inventory, live_queue, float(t))
        history = HistoryService(clock=lambda: clock[0])
        timed(results, "fold_at_start", history.fold_local_store, inventory, float(t))
        for step in ("first_view", "refresh"):
            fill(inventory, [t])  # the next minute's batches arrive
            t += MINUTE
            clock[0] += MINUTE
            timed(results, step, render, history, inventory, live_queue, float(t))
    return {"store": name, **results, "html_bytes": len(html.encode()), "profile": profiled}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=26.0, help="history written before now (default 26: a day and yesterday's hour)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=("both", "local", "influx"), default="both")
    parser.add_argument("--profile", action="store_true", help="print where the first render's time goes (cProfile)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    now_s = int(time.time()) // MINUTE * MINUTE
    minutes = list(range(now_s - int(args.hours * 3600), now_s, MINUTE))
    results = []

    def filled_and_measured(name: str, inventory: Inventory, fill: Any) -> None:
        started = time.perf_counter()
        points = fill(inventory, minutes)
        print(f"{name}: {points} points in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        results.append(measure(name, inventory, workdir, now_s, fill, args.repeat, args.profile))
        if not args.json:
            show(results[-1])

    with tempfile.TemporaryDirectory(prefix="nettvakt-bench-status-") as tmp:
        workdir = Path(tmp)
        if args.store in ("both", "local"):
            filled_and_measured("local", example_inventory(workdir / "local", {"kind": "local"}), fill_local)
        if args.store in ("both", "influx"):
            server = start_influxd(workdir / "influxd")
            try:
                urllib.request.urlopen(urllib.request.Request(f"{server.url}/query", data=b"q=CREATE DATABASE bench"), timeout=10).close()
                filled_and_measured("influx", example_inventory(workdir / "influx", {"kind": "influxdb_v1", "url": server.url, "database": "bench"}),
                                    fill_influx)
            finally:
                server.stop()
    if args.json:
        print(json.dumps(results, indent=2))


def show(r: dict[str, Any]) -> None:
    parts = []
    for step in ("cold", "fold_at_start", "first_view", "refresh"):
        if step == "fold_at_start" and r["store"] != "local":
            continue
        walls, cpus = r[step], r[step + "_cpu"]
        parts.append(f"{step} {statistics.median(walls):.2f} s ({max(walls):.2f} slowest; CPU here {statistics.median(cpus):.2f} s)")
    print(f"{r['store']:>6}: " + ", ".join(parts) + f"; {r['html_bytes']} bytes of HTML", flush=True)
    if r["profile"]:
        print(r["profile"], flush=True)


if __name__ == "__main__":
    main()
