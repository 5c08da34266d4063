"""The collector's own rollups (collector/rollup_engine.py): CPU per point and memory per series.

    .venv/bin/python bench/rollup_engine.py [--agents 50] [--hours 3] [--json]

The issue 19 estate by default: 50 agents × 6 probe targets every 30 s, each agent's host
metrics every 15 s, 10 devices × 24 interfaces every 60 s, and `availability` every 5 s per agent
and per target, in time order, folded in batches of 5,000 points as the writer hands them over
(each batch one SQLite commit, synchronous=FULL, on this machine's disk), with the engine's clock a
second behind the points and the closing round every 5 minutes of the simulated time. The sink
only counts the rows (the storage's own cost is not the engine's).

Measured: CPU per point folded (the commit included), CPU per closing round, the open buckets
and the memory they take once the window is full (two hours and five minutes of 5-minute buckets
and the open hours, measured with tracemalloc by loading the state file into a new engine), and
the state file's size.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.points import Point  # noqa: E402
from collector.queue import QueuedBatch  # noqa: E402
from collector.rollup_engine import LATE_S, STATE_FILE, RollupEngine  # noqa: E402
from collector.writer import Written  # noqa: E402

NS = 1_000_000_000
BATCH = 5000
WHERE = {"5m": {"rp": "nettvakt_5m"}, "1h": {"rp": "nettvakt_1h"}}


class CountingSink:
    def __init__(self) -> None:
        self.lines = 0

    async def write(self, body: bytes, retention_policy: str | None = None, where: Any = None) -> None:
        self.lines += body.count(b"\n")

    async def close(self) -> None:
        pass


def estate(agents: int, t0: int, seconds: int) -> tuple[Iterator[Point], int]:
    """The estate's points in time order, and how many series it has."""
    targets = [f"t{j}" for j in range(6)]
    interfaces = [(f"sw{d}", f"ge-{i}") for d in range(agents // 5) for i in range(24)]

    def points() -> Iterator[Point]:
        for second in range(0, seconds, 5):
            t = t0 + second * NS
            for a in range(agents):
                host = f"pc{a}"
                site = f"s{a % 10}"
                if second % 30 == 0:
                    for j, target in enumerate(targets):
                        rtt = 5.0 + (a * 7 + j * 13 + second) % 41
                        yield Point("probe", {"site": site, "host": host, "kind": "icmp", "target": target},
                                    {"up": 1.0, "rtt_ms": rtt, "rtt_min_ms": rtt - 1, "rtt_max_ms": rtt + 3, "rtt_p95_ms": rtt + 2,
                                     "jitter_ms": 0.4, "loss_pct": 0.0, "sent": 5.0, "received": 5.0, "method": "icmp"}, t)
                if second % 15 == 0:
                    yield Point("host", {"site": site, "host": host},
                                {"cpu_pct": float((a + second) % 100), "mem_used_pct": 55.5, "mem_total_bytes": 8e9, "mem_available_bytes": 3.5e9,
                                 "swap_used_pct": 1.0, "load1": 0.5, "load5": 0.4, "load15": 0.3, "uptime_s": float(second), "procs": 210.0}, t)
                yield Point("availability", {"site": site, "kind": "agent", "host": host},
                            {"up": 1.0, "up_s": 5.0, "judged_s": 5.0, "silent_s": 2.0, "expected_s": 30.0}, t)
                for target in targets:
                    yield Point("availability", {"site": site, "kind": "target", "host": host, "target": target},
                                {"up": 1.0, "up_s": 5.0, "judged_s": 5.0}, t)
            if second % 60 == 0:
                for device, interface in interfaces:
                    yield Point("interface", {"site": "s0", "device": device, "interface": interface},
                                {"in_bps": 1.5e6 + second, "out_bps": 2.5e5, "in_util_pct": 1.5, "out_util_pct": 0.25, "in_errors_ps": 0.0,
                                 "out_errors_ps": 0.0, "oper_up": 1.0, "admin_up": 1.0, "speed_bps": 1e8}, t)

    series = agents * 6 + agents + agents * 7 + len(interfaces)
    return points(), series


async def run(agents: int, hours: float, folder: Path) -> dict[str, Any]:
    t0 = 1_900_000_000 * NS  # on an hour: 1_900_000_000 % 3600 == 1600, so move to the next hour
    t0 += (3600 - 1600) * NS
    seconds = int(hours * 3600)
    clock = [t0]
    sink = CountingSink()
    engine = RollupEngine(folder / STATE_FILE, sink, WHERE, queue_highest_id=0, clock=lambda: clock[0])
    points, series = estate(agents, t0, seconds)
    fold_cpu = close_cpu = 0.0
    folded = rounds = batch_id = 0
    next_close = t0 + 300 * NS
    full_at = t0 + LATE_S * NS + 300 * NS
    at_full: dict[str, Any] = {}
    batch: list[Point] = []

    async def fold(batch: list[Point]) -> None:
        nonlocal fold_cpu, folded, batch_id
        batch_id += 1
        clock[0] = batch[-1].time_ns + NS
        started = time.process_time()
        await engine.fold(Written([QueuedBatch.of_points(batch_id, "bench", batch_id, batch)]))
        fold_cpu += time.process_time() - started
        folded += len(batch)

    async def close() -> None:
        nonlocal close_cpu, rounds
        started = time.process_time()
        await engine.close_due()
        close_cpu += time.process_time() - started
        rounds += 1

    wall = time.perf_counter()
    for point in points:
        if point.time_ns >= next_close:
            if batch:
                await fold(batch)
                batch = []
            clock[0] = next_close
            await close()
            if next_close >= full_at and not at_full:
                at_full = {"open_buckets": engine.health()["open_buckets"], "state_file_bytes": (folder / STATE_FILE).stat().st_size
                           + (folder / (STATE_FILE + "-wal")).stat().st_size}
            next_close += 300 * NS
        batch.append(point)
        if len(batch) >= BATCH:
            await fold(batch)
            batch = []
    if batch:
        await fold(batch)
    wall = time.perf_counter() - wall
    engine.close()

    # The memory of the state once the window is full: a new engine loads it (the state at the end).
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    loaded = RollupEngine(folder / STATE_FILE, sink, WHERE, queue_highest_id=batch_id)
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    open_now = loaded.health()["open_buckets"]
    loaded.close()
    return {
        "agents": agents, "series": series, "hours": hours, "points": folded, "points_per_s_of_estate": round(folded / seconds, 1),
        "fold_cpu_us_per_point": round(fold_cpu / folded * 1e6, 2), "close_cpu_ms_per_round": round(close_cpu / rounds * 1000, 1),
        "rows_written": sink.lines, "wall_s": round(wall, 1), "window_full": at_full, "open_buckets_at_end": open_now,
        "state_memory_bytes": memory, "state_memory_bytes_per_series": round(memory / series),
        "cpu_share_of_one_core": round(fold_cpu / folded * (folded / seconds), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="nettvakt-rollup-bench-") as tmp:
        result = asyncio.run(run(args.agents, args.hours, Path(tmp)))
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:32} {value}")


if __name__ == "__main__":
    main()
