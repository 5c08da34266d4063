"""`report availability` from the 5-minute rollup and the alert history on a real influxd: the same
answer as from the raw verdicts within stated bounds, and the same answer once InfluxDB's own
retention service has dropped the raw points.

Three hours of a town hall and an outstation, a day and more ago, judged as the collector judges
(CollectorService.evaluate_liveness every 5 s, the SNMP availability point every minute, stored
through its AvailabilityRecorder), with the real AlertEngine observing every judgement and every
probe round and evaluated at each tick. What the collector would queue (the verdicts it keeps and
the engine's `alert` points) goes through the collector's sink into influxd; the rollups are made
by collector/retention.py (set-up, backfill). Then the raw policy is shortened to an hour and
InfluxDB's retention service (every second here) drops the raw points.

The retention service drops a whole shard group once its end is older than the policy; ALTERing a
policy's shard duration changes only groups made afterwards. While the points were written here the
raw policy kept them 47 hours, for which the set-up (`influxdb_shard_duration_s`) makes 1-hour groups, so every
group of the scenario ended over an hour before the shortened policy is checked. Kept 10 years (as
tests/test_reports_rollups.py sets it up), the raw policy has 7-day groups, and the group holding the
last week has not ended: the service may not drop it however short the policy, which is why that test
drops the raw shards itself. (Both influxd's are the same: `start_influxd(retention_check_s=1)`.)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from agent.points import Point
from collector.alerting.engine import AlertEngine
from collector.config import StorageSettings, load_inventory
from collector.localservers import InfluxdServer, wait_until
from collector.pollers import availability_point
from collector.queue import DurableQueue
from collector.reports.availability import AvailabilityReport, build_availability_report, read_availability
from collector.retention import InfluxAdmin, backfill
from collector.service import CollectorService, TargetState
from collector.timeseries import open_source
from inventories import InventoryBuilder
from test_reports_hardware import write_through_collector_sink
from test_reports_rollups import EXACT, LONG, SHORT, raw_source, set_up_rollups
from test_retention import ask, quick_influxd  # noqa: F401 - quick_influxd: the fixture (retention checked every second)

NS = 1_000_000_000
TICK_S = 5.0  # the alert engine's evaluation step here (the collector's judging interval)
HEARTBEAT_S = 10.0
MINUTE = 60
SCENARIO_S = 3 * 3600
BEAT_S = 300.0
DOWN_AFTER = 3
FOR_S = 60.0  # every outage rule's for_s: the alert's pending event is the outage's start
POLL_S = 60.0
# While the scenario is written: raw points kept 47 h (1-hour shard groups: `influxdb_shard_duration_s`), the rollups as long as ever.
KEPT = {**LONG, "raw": 47 * 3600}

# Bounds of the alert history against the raw timeline (docs/storage.md "The reports and diagnose").
# An agent: the raw timeline starts the outage at its last heartbeat (the evidence, `silent_s` back);
# the verdict comes at the first tick after DOWN_AFTER heartbeats of silence and the alert's
# pending at that tick: later by more than DOWN_AFTER * HEARTBEAT_S, by at most that and a tick. Its
# end: the first heartbeat again (raw) against the tick that judged it (alert): at most a tick.
AGENT_START_S = (DOWN_AFTER * HEARTBEAT_S, DOWN_AFTER * HEARTBEAT_S + TICK_S)
# A target: the raw timeline starts at the failed probe round the verdict rests on (its `silent_s`
# back); the engine sees that round itself and goes pending at the next tick: within a tick, both ends.
TARGET_S = (0.0, TICK_S)
# A device: its poll is the verdict and has no silent_s; the engine is evaluated at the poll's tick.
DEVICE_S = (0.0, 0.0)


def scenario_inventory(folder: Path, url: str, database: str) -> Path:
    """Rådhuset: pc1 and pc2 probing the gateway; Vannvåg: its uplink switch. An outage rule for each kind."""
    every = {"heartbeat_s": HEARTBEAT_S, "down_after_intervals": DOWN_AFTER}
    return (
        InventoryBuilder(folder)
        .influxdb(url, database, raw_retention_days=1)  # the period (over a day ago) is read from the rollups
        .collector(availability_beat_s=BEAT_S)
        .site("radhus", "Rådhuset")
        .site("vannvag", "Vannvåg", uplink="sw-vannvag")
        .agent("pc1", site="radhus", **every)
        .agent("pc2", site="radhus", **every)
        .device("sw-vannvag", site="vannvag")
        .probe("gw", "icmp", "10.0.0.1", sites=["radhus"], interval_s=30)
        .alert("agent-silent", "agent_silent", for_s=FOR_S)
        .alert("device-down", "device_down", for_s=FOR_S)
        .alert("gw-unreachable", "target_unreachable", for_s=FOR_S)
        .write()
    )


def alive(agent: str, s: int) -> bool:
    """pc1 silent from 30 to 50 min and 100 to 130 min (across the hour); pc2 for 45 s at 80 min and
    from 110 to 125 min: Rådhuset is down while both are."""
    if agent == "pc1":
        return not (30 * MINUTE <= s < 50 * MINUTE or 100 * MINUTE <= s < 130 * MINUTE)
    return not (80 * MINUTE <= s < 80 * MINUTE + 45 or 110 * MINUTE <= s < 125 * MINUTE)


def judge(path: Path, folder: Path, start_ns: int) -> list[Point]:
    """Every point the collector would queue over the scenario: the verdicts its recorder keeps and
    the alert engine's `alert` points. pc1's probes of gw fail from 65 to 72 min; the outstation
    switch does not answer from 20 to 23 min and from 150 to 157 min."""
    inventory = load_inventory(path)
    queue = DurableQueue(folder / "queue.sqlite3")
    try:
        service = CollectorService(inventory, queue)
        engine = AlertEngine(inventory, list(inventory.alert))
        service.subscribers.append(lambda source, points: engine.observe(points))
        device = inventory.device[0]

        async def run() -> None:
            for step in range(SCENARIO_S // int(TICK_S) + 1):
                s = step * int(TICK_S)
                now = start_ns + s * NS
                rounds = []
                for agent in ("pc1", "pc2"):
                    if alive(agent, s) and s % int(HEARTBEAT_S) == 0:
                        service.agents[agent].last_heartbeat_ns = now
                    if alive(agent, s) and s % 30 == 0:
                        up = not (agent == "pc1" and 65 * MINUTE <= s < 72 * MINUTE)
                        service.targets[(agent, "gw")] = TargetState(now, up)
                        rounds.append(Point("probe", {"site": "radhus", "host": agent, "kind": "icmp", "target": "gw"},
                                            {"up": 1.0 if up else 0.0, "loss_pct": 0.0 if up else 100.0}, now))
                engine.observe(rounds)  # the agents' probe rounds, as the ingest tells the engine
                points = service.evaluate_liveness(now)
                if s % int(POLL_S) == 0:
                    polled = 0.0 if 20 * MINUTE <= s < 23 * MINUTE or 150 * MINUTE <= s < 157 * MINUTE else 1.0
                    points.append(availability_point(device, [Point("device", {}, {"up": polled}, now)], now))
                await service.store_local("collector", points)
                engine.evaluate(now / NS)
                await service.store_local("alerting", engine.take_points())

        asyncio.run(run())
        return [p for batch in queue.peek(10**6) for p in batch.points]
    finally:
        queue.close()


def outages(report: AvailabilityReport) -> dict[str, list[tuple[float, float | None]]]:
    return {a.id: [(o.start_s, o.end_s) for o in a.outages] for a in report.sites + report.services}


def test_availability_from_the_rollup_and_alert_history_matches_the_raw_report_and_outlives_the_raw_points(
    quick_influxd: InfluxdServer, tmp_path: Path  # noqa: F811
) -> None:
    server, database = quick_influxd, "availability_rollups"
    InfluxAdmin(StorageSettings(kind="influxdb_v1", url=server.url, database=database), None).execute(f'CREATE DATABASE "{database}"')
    admin, _ = set_up_rollups(server, database, tmp_path, KEPT)
    now_ns = time.time_ns()
    start_ns = (now_ns // (3600 * NS) - 30) * 3600 * NS  # on the hour, 30 hours ago
    end_ns = start_ns + SCENARIO_S * NS
    path = scenario_inventory(tmp_path, server.url, database)
    queued = judge(path, tmp_path, start_ns)
    assert {p.tags["rule"] for p in queued if p.measurement == "alert"} >= {"agent-silent", "device-down", "gw-unreachable"}
    asyncio.run(write_through_collector_sink(path, queued))
    plan = set_up_rollups(server, database, tmp_path, KEPT)[1].plan
    backfill(admin, plan, start_ns - 3600 * NS, time.time_ns())
    inventory = load_inventory(path)
    rollups = open_source(inventory)  # as the command opens it: raw kept a day, so a rollup here

    raw_data = read_availability(raw_source(server, database), inventory, start_ns, end_ns)
    raw = build_availability_report(inventory, raw_data, start_ns, end_ns)
    rolled_data = read_availability(rollups, inventory, start_ns, end_ns)
    rolled = build_availability_report(inventory, rolled_data, start_ns, end_ns)
    assert (raw.resolution, rolled.resolution) == ("raw", "5m")

    # Percentages of services: exactly the stored verdicts' sum(up_s) / sum(judged_s).
    by_id = {a.id: a for a in rolled.services}
    for want in raw.services:
        points = [s for s in raw_data.samples if s.tags.get("kind") == "target" and f"{s.tags['target']}@{s.tags['host']}" == want.id
                  and start_ns <= s.time_ns < end_ns]
        up, judged = sum(s.fields.get("up_s", 0.0) for s in points), sum(s.fields.get("judged_s", 0.0) for s in points)
        got = by_id[want.id]
        assert got.pct == pytest.approx(100 * up / judged, abs=EXACT), want.id
        # The raw timeline counts the verdicts after a series' last stored point (at most a beat),
        # and places a change at its evidence (a tick earlier at most) rather than at the judgement.
        assert abs(got.pct - want.pct) <= 100 * (BEAT_S + TICK_S * len(want.outages) * 2) / judged, (want.id, want.pct, got.pct)

    # Outages: each one, its start and end within the bound of its kind (the sites' timelines rest
    # on their members' alert histories: vannvag's on its uplink's), and so the MTTR.
    bounds = {"vannvag": (DEVICE_S, DEVICE_S), "radhus": (AGENT_START_S, (0.0, TICK_S)), "gw@pc1": (TARGET_S, TARGET_S), "gw@pc2": (TARGET_S, TARGET_S)}
    measured: dict[str, list[tuple[float, float]]] = {}
    want_outages, got_outages = outages(raw), outages(rolled)
    for ident, ((start_low, start_high), (end_low, end_high)) in bounds.items():
        want_list, got_list = want_outages[ident], got_outages[ident]
        assert len(got_list) == len(want_list), (ident, want_list, got_list)
        for (w_start, w_end), (g_start, g_end) in zip(want_list, got_list):
            assert w_end is not None and g_end is not None
            measured.setdefault(ident, []).append((round(g_start - w_start, 3), round(g_end - w_end, 3)))
            assert start_low <= g_start - w_start <= start_high, (ident, w_start, g_start)
            assert end_low <= g_end - w_end <= end_high, (ident, w_end, g_end)
    print("\noutage (start, end), alert history - raw timeline, s:", measured)
    assert len(want_outages["vannvag"]) == 2 and len(want_outages["gw@pc1"]) == 1 and len(want_outages["radhus"]) == 1
    for want in raw.sites + raw.services:
        got = next(a for a in rolled.sites + rolled.services if a.id == want.id)
        if want.mttr_s is None:
            assert got.mttr_s is None, want.id
            continue
        # A repair's duration is its end less its start: off by the end's bound less the start's.
        (start_low, start_high), (end_low, end_high) = bounds[want.id]
        assert end_low - start_high <= got.mttr_s - want.mttr_s <= end_high - start_low, (want.id, want.mttr_s, got.mttr_s)
    # Sites: their timelines from the members' rollup timelines; vannvag's down time is its uplink's alerts'.
    for want in raw.sites:
        got = next(a for a in rolled.sites if a.id == want.id)
        (start_low, start_high), (end_low, end_high) = bounds[want.id]
        assert start_low - end_high <= want.seconds("down") - got.seconds("down") <= (start_high - end_low) * len(want.outages), want.id
        # Every 5-minute bucket holds a stored verdict of each member (the beat is 5 minutes): nothing more is unknown.
        assert got.seconds("unknown") == want.seconds("unknown"), want.id
    print("availability %, rollup - raw:", {a.id: round(next(b for b in rolled.sites + rolled.services if b.id == a.id).pct - a.pct, 4)
                                          for a in raw.sites + raw.services})

    # The raw policy shortened to an hour: InfluxDB's retention service drops the scenario's raw shard groups.
    set_up_rollups(server, database, tmp_path, SHORT)
    wait_until(lambda: not ask(server, database, f'SELECT count(*) FROM "{database}"."autogen"."availability"'),
               60, "InfluxDB's retention service to drop the raw availability points")
    assert not raw_source(server, database).samples("alert", start_ns - 3600 * NS, end_ns)
    again = build_availability_report(inventory, read_availability(open_source(inventory), inventory, start_ns, end_ns), start_ns, end_ns)
    assert again.to_json() == rolled.to_json()
