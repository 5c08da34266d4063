"""Late points folded into the rollups on a real influxd (collector/laterollups.py, docs/storage.md).

An agent back after two days offline sends its backlog through the collector's ingest; the
continuous queries reach only 2 h (5-minute) and 4 h (hourly) back, so the collector notes the
hours of what it wrote late and computes their rollups again: nettvakt_5m and nettvakt_1h then say
what the raw points say (1e-9). The hours are kept on disk: a collector stopped before it got to
them computes them at its next start.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from collector.app import create_app
from collector.appkeys import LATE_ROLLUPS, QUEUE, ROLLUPS
from collector.config import load_inventory
from collector.laterollups import HOUR_NS, LateRollups, late_after_s
from collector.localservers import InfluxdServer, wait_until_async
from inventories import InventoryBuilder
from serving import serving
from test_retention import MIN5, NS, assert_matches, expected_buckets, nearest_rank_p95, probe_lines, rollup_rows

BATCH_POINTS = 1000


def backlog(target: str, seed: int, now_ns: int) -> list[tuple[int, float, float]]:
    """(time, rtt_ms, loss_pct) of one probe series every 60 s for two days, ending 3 h ago (older
    than the queries reach), on whole 5-minute buckets: five points in each."""
    end = now_ns - 3 * HOUR_NS
    end -= end % MIN5
    _, points = probe_lines(end - 2 * 86400 * NS, 2 * 1440, 60 * NS, target, seed)
    return points


async def send(http: aiohttp.ClientSession, token: str, series: dict[str, list[tuple[int, float, float]]], first_seq: int) -> None:
    """Probe series (by target) as an agent sends its backlog: oldest first, in batches, each answered 200 before the next."""
    points = sorted((t, target, rtt, loss) for target, rows in series.items() for t, rtt, loss in rows)
    for n, at in enumerate(range(0, len(points), BATCH_POINTS)):
        body = {"agent": "pc1", "seq": first_seq + n, "points": [
            {"measurement": "probe", "tags": {"kind": "icmp", "target": target}, "fields": {"up": 1.0, "rtt_ms": rtt, "loss_pct": loss}, "time": t}
            for t, target, rtt, loss in points[at:at + BATCH_POINTS]]}
        async with http.post("/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()


def expected_hours(points: list[tuple[int, float, float]]) -> dict[int, dict[str, float]]:
    """The hourly rollups as the raw points say them: every 5-minute bucket holds five points, so the
    mean of the 5-minute means is the hour's mean; min and max exact; p95 the largest 5-minute p95."""
    out = {}
    for hour in sorted({t - t % HOUR_NS for t, _, _ in points}):
        members = [p for p in points if hour <= p[0] < hour + HOUR_NS]
        rtts = [p[1] for p in members]
        fives = expected_buckets(members, MIN5).values()
        p95 = max(b["rtt_ms_p95"] for b in fives)
        assert nearest_rank_p95(rtts) <= p95 <= max(rtts)  # docs/storage.md: an upper bound of the hour's p95
        out[hour] = {"rtt_ms": statistics.fmean(rtts), "rtt_ms_min": min(rtts), "rtt_ms_max": max(rtts), "rtt_ms_p95": p95,
                     "loss_pct": statistics.fmean(p[2] for p in members)}
    return out


def rolled_up(server: InfluxdServer, database: str, target: str, points: list[tuple[int, float, float]]) -> bool:
    """Both rollups hold every bucket of the backlog (the check of their values follows)."""
    return (len(rollup_rows(server, database, "nettvakt_5m", target)) == len(expected_buckets(points, MIN5))
            and len(rollup_rows(server, database, "nettvakt_1h", target)) == len({t - t % HOUR_NS for t, _, _ in points}))


def assert_as_raw(server: InfluxdServer, database: str, target: str, points: list[tuple[int, float, float]]) -> None:
    assert_matches(rollup_rows(server, database, "nettvakt_5m", target), expected_buckets(points, MIN5))
    assert_matches(rollup_rows(server, database, "nettvakt_1h", target), expected_hours(points))


async def started(app: Any) -> None:
    await wait_until_async(lambda: app[ROLLUPS].stats.runs >= 1, 120, "the retention set-up to finish", interval_s=0.1)


def test_the_threshold_is_what_the_continuous_queries_reach_less_a_margin() -> None:
    # RESAMPLE EVERY 5m FOR 2h: a point's bucket starts up to 5 min before it, the next run up to 5 min
    # after the write: 1 h 50 min; the hourly run reaches as far. Less 5 minutes for InfluxDB's timing.
    assert late_after_s() == 3600 + 45 * 60


def test_a_late_backlog_is_rolled_up_as_the_raw_points_say_also_across_a_restart(
    influx_db: tuple[InfluxdServer, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, database = influx_db
    inv = InventoryBuilder(tmp_path).influxdb(server.url, database).agent("pc1")
    path = inv.write()
    token = inv.tokens["pc1"]
    monkeypatch.setattr(LateRollups, "POLL_S", 0.2)
    now = time.time_ns()
    first, second = backlog("late1", 1, now), backlog("late2", 2, now)
    # Ten minutes old, in the backlog's last batch: the queries' own, no hour noted for it.
    recent = [(now - 600 * NS, 4.0, 0.0)]

    async def live() -> dict[str, Any]:
        monkeypatch.setattr(LateRollups, "SETTLE_S", 0.5)
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            await started(app)
            await send(http, token, {"late1": first}, 1)
            await wait_until_async(lambda: rolled_up(server, database, "late1", first), 120, "the late backlog's rollups", interval_s=0.2)
            await wait_until_async(lambda: app[LATE_ROLLUPS].hours.pending(database) == 0, 60, "no hour left to roll up", interval_s=0.1)
            async with http.get("/api/v1/health") as resp:
                return await resp.json()

    health = asyncio.run(live())
    assert_as_raw(server, database, "late1", first)
    late = health["storage"]["late_rollups"]
    # 48 or 49 hours: two days of points touch one hour more unless they end on a whole hour.
    assert late["rolled_hours"] >= len({t - t % HOUR_NS for t, _, _ in first}) and late["pending_hours"] == 0 and late["last_error"] is None, late
    assert health["problems"] == [], health["problems"]

    async def stopped_before_rolling_up() -> None:
        monkeypatch.setattr(LateRollups, "SETTLE_S", 10.0**6)  # never within this run
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            await started(app)
            await send(http, token, {"late2": second, "gw": recent}, 100)
            hours = {t - t % HOUR_NS for t, _, _ in second}
            # Written and off the queue, its hours (and only the backlog's: not the recent point's) on disk.
            await wait_until_async(lambda: app[QUEUE].stats()["queue_points"] == 0 and app[LATE_ROLLUPS].hours.pending(database) == len(hours),
                                   60, "the backlog written and its hours noted", interval_s=0.1)
            assert [h for h, _ in app[LATE_ROLLUPS].hours.due(database, time.time_ns() + NS)] == sorted(hours)
        assert rollup_rows(server, database, "nettvakt_5m", "late2") == {}  # the queries never reach it

    asyncio.run(stopped_before_rolling_up())

    async def restarted() -> None:
        monkeypatch.setattr(LateRollups, "SETTLE_S", 0.5)
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1):
            await started(app)
            await wait_until_async(lambda: app[LATE_ROLLUPS].hours.pending(database) == 0, 120, "the noted hours rolled up after the restart", interval_s=0.1)

    asyncio.run(restarted())
    assert_as_raw(server, database, "late2", second)
