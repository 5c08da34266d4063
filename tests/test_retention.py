"""Retention policies, continuous queries, rollups and backfill on a real influxd (docs/storage.md).

The collector sets the database up once and a restart changes nothing; a changed duration is
applied; raw points expire by policy while their rollups stay; a continuous query's 5-minute
rollups equal what the raw points say; a backfill writes what the continuous query writes; the
1-hour rollups are within the error docs/storage.md states; events are kept whole.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.points import Point
from collector.app import create_app
from collector.appkeys import ROLLUPS, SERVICE
from collector.config import StorageSettings, load_inventory
from collector.influxql import query
from collector.localservers import InfluxdServer, free_port, start_influxd, wait_until, wait_until_async
from collector.retention import (
    BackfillState,
    Cadence,
    InfluxAdmin,
    RollupMaintainer,
    backfill,
    read_existing,
    retention_seconds,
    set_up,
    storage_plan,
)
from collector.rollups import rollup_fields
from agent.contract import MEASUREMENTS_SPEC
from inventories import InventoryBuilder
from serving import serving

REPO = Path(__file__).resolve().parents[1]
NS = 1_000_000_000
MIN5 = 300 * NS
HOUR = 3600 * NS
# InfluxDB's mean is a float sum over the bucket; ours is statistics.fmean: they agree to this.
TOLERANCE = 1e-9


def ask(server: InfluxdServer, database: str, statement: str) -> list[dict[str, Any]]:
    return query(server.url, database, statement, timeout_s=30)


def shown(server: InfluxdServer, database: str) -> tuple[list[Any], list[Any]]:
    """SHOW RETENTION POLICIES and this database's SHOW CONTINUOUS QUERIES, as InfluxDB answers."""
    policies = ask(server, database, f'SHOW RETENTION POLICIES ON "{database}"')
    queries = [row for row in ask(server, database, "SHOW CONTINUOUS QUERIES") if row.get("_measurement") == database]
    return policies, queries


def storage(server: InfluxdServer, database: str, **days: int) -> StorageSettings:
    return StorageSettings(kind="influxdb_v1", url=server.url, database=database, **days)


def write(server: InfluxdServer, database: str, lines: list[str], policy: str | None = None) -> None:
    import urllib.request

    rp = f"&rp={policy}" if policy else ""
    request = urllib.request.Request(f"{server.url}/write?db={database}&precision=ns{rp}", data=("\n".join(lines) + "\n").encode())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=10) as resp:
        assert resp.status == 204


def nearest_rank_p95(values: list[float]) -> float:
    """InfluxDB's percentile(): the value at rank floor(n * 0.95 + 0.5) of the sorted values."""
    ordered = sorted(values)
    return ordered[max(0, math.floor(len(ordered) * 0.95 + 0.5) - 1)]


def probe_lines(start_ns: int, count: int, step_ns: int, target: str, seed: int) -> tuple[list[str], list[tuple[int, float, float]]]:
    """Raw icmp probe points of one series: (time, rtt_ms, loss_pct) and their line protocol."""
    points = []
    for i in range(count):
        t = start_ns + i * step_ns
        rtt = round(5 + ((i * 7919 + seed * 104729) % 97) / 3.0, 3)  # spread out, no two buckets alike
        loss = float((i * 31 + seed) % 5 == 0) * 20.0
        points.append((t, rtt, loss))
    lines = [f"probe,site=radhus,host=pc1,kind=icmp,target={target} up=1,rtt_ms={rtt},loss_pct={loss},method=\"icmp\" {t}"
             for t, rtt, loss in points]
    return lines, points


def expected_buckets(points: list[tuple[int, float, float]], bucket_ns: int) -> dict[int, dict[str, float]]:
    """5-minute rollups computed here from the raw points, as docs/storage.md defines them."""
    buckets: dict[int, list[tuple[int, float, float]]] = {}
    for t, rtt, loss in points:
        buckets.setdefault(t - t % bucket_ns, []).append((t, rtt, loss))
    out = {}
    for start, members in buckets.items():
        rtts = [m[1] for m in members]
        losses = [m[2] for m in members]
        out[start] = {"rtt_ms": statistics.fmean(rtts), "rtt_ms_min": min(rtts), "rtt_ms_max": max(rtts), "rtt_ms_p95": nearest_rank_p95(rtts),
                      "loss_pct": statistics.fmean(losses), "loss_pct_p95": nearest_rank_p95(losses), "up": 1.0}
    return out


def rollup_rows(server: InfluxdServer, database: str, policy: str, target: str) -> dict[int, dict[str, Any]]:
    rows = ask(server, database, f"SELECT * FROM \"{database}\".\"{policy}\".\"probe\" WHERE \"target\" = '{target}'")
    return {row["time"]: row for row in rows}


def assert_matches(found: dict[int, dict[str, Any]], expected: dict[int, dict[str, float]]) -> None:
    assert set(found) == set(expected), (sorted(found), sorted(expected))
    for start, fields in expected.items():
        for name, value in fields.items():
            assert found[start][name] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), (start, name)


@pytest.fixture
def quick_influxd(tmp_path: Path):
    """An influxd of this test's own whose retention service drops expired shards every second."""
    server = start_influxd(tmp_path / "influxd", retention_check_s=1)
    try:
        yield server
    finally:
        server.stop()


def test_the_collector_sets_up_once_a_restart_changes_nothing_and_a_changed_duration_is_applied(influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    # An alert in the raw policy before the collector ever ran: kept whole in nettvakt_events too.
    before_ns = time.time_ns() - 3600 * NS
    write(server, database, [f'alert,rule=device_down,severity=critical,state=firing,subject=sw-a,site=radhus active=1,summary="sw-a svarer ikke" {before_ns}'])
    inv = InventoryBuilder(tmp_path).influxdb(server.url, database).agent("pc1")
    path = inv.write()

    async def start_once(expect_applied: int | None) -> dict[str, Any]:
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            maintainer = app[ROLLUPS]
            await wait_until_async(lambda: maintainer.stats.runs >= 1, 120, "the retention set-up to finish", interval_s=0.1)
            if expect_applied is not None:
                assert maintainer.stats.applied == expect_applied, maintainer.stats.last_applied
            # An alert the collector writes now reaches the events policy through the writer.
            now_ns = time.time_ns()
            await app[SERVICE].store_local("alerting", [Point("alert", {"rule": "config_change", "severity": "info", "state": "event",
                                                                       "subject": "fw-radhus"}, {"active": 0.0, "summary": "ny konfig"}, now_ns)])
            events = await wait_until_async(
                lambda: len(ask(server, database, f'SELECT * FROM "{database}"."nettvakt_events"."alert" WHERE time >= {before_ns}')) >= 2 and
                ask(server, database, f'SELECT * FROM "{database}"."nettvakt_events"."alert" WHERE time >= {before_ns}'),
                60, "both alerts in nettvakt_events", interval_s=0.2)
            async with http.get("/api/v1/health") as resp:
                health = await resp.json()
        assert {e["rule"] for e in events} >= {"device_down", "config_change"}
        assert any(e["summary"] == "sw-a svarer ikke" and e["subject"] == "sw-a" for e in events)  # fields and tags as they were
        return health

    first = asyncio.run(start_once(None))
    assert first["storage"]["rollups"]["applied"] >= 3 + 2 * 12, first["storage"]["rollups"]  # 3 policies, a CQ per measurement and resolution, the raw ALTER
    assert first["problems"] == [], first["problems"]
    policies, queries = shown(server, database)
    assert {p["name"]: (p["duration"], p["shardGroupDuration"]) for p in policies} == {
        "autogen": ("720h0m0s", "24h0m0s"), "nettvakt_5m": ("17520h0m0s", "672h0m0s"), "nettvakt_1h": ("87600h0m0s", "8736h0m0s"),
        "nettvakt_events": ("87600h0m0s", "8736h0m0s"), "nettvakt_meta": ("0s", "168h0m0s")}  # shard groups: 1 d, 4 w, 52 w, 52 w, 1 w
    # The dashboards' resolution rows: one per resolution, its time its retention (docs/storage.md).
    rows = {r["resolution"]: r for r in ask(server, database, f'SELECT * FROM "{database}"."nettvakt_meta"."rp_config"')}
    assert {k: (r["time"] // (86400 * NS), r["rp"], r["events_rp"], r["max_sfx"], r["p95_fn"]) for k, r in rows.items()} == {
        "raw": (30, "autogen", "autogen", "::field", "percentile"), "5m": (730, "nettvakt_5m", "nettvakt_events", "_max::field", "max"),
        "1h": (3650, "nettvakt_1h", "nettvakt_events", "_max::field", "max")}
    names = {q["name"] for q in queries}
    assert {"nettvakt_5m_probe", "nettvakt_1h_probe", "nettvakt_5m_interface", "nettvakt_1h_availability"} <= names
    assert not names & {"nettvakt_5m_alert", "nettvakt_5m_login"}  # events are not averaged

    # A second start: nothing to do, and nothing done.
    second = asyncio.run(start_once(0))
    assert second["storage"]["rollups"] == {**second["storage"]["rollups"], "applied": 0, "failures": 0}
    assert shown(server, database) == (policies, queries)
    check = subprocess.run([sys.executable, "-m", "agent.cli", "check", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 0 and ": OK (" in check.stdout, check.stderr

    # The inventory asks for other durations: check names each difference, the next start applies them.
    inv.storage("influxdb_v1", url=server.url, database=database, raw_retention_days=7, rollup_5m_retention_days=400).write()
    check = subprocess.run([sys.executable, "-m", "agent.cli", "check", "--json", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 1, check.stderr
    differences = json.loads(check.stdout)["storage"]["differences"]
    assert [(d["name"], d["found"], d["wanted"]) for d in differences if d["kind"] == "retention policy"] == [
        ("nettvakt_5m", "keeps points 730d in shard groups of 4w", "400d in shard groups of 4w"), ("autogen", "keeps points 30d", "1w")]
    # The dashboards' rows of raw and 5m move to their new retentions: the old point deleted, the new one written.
    assert [(d["name"], d["fix"][0]) for d in differences if d["kind"] == "resolution row"] == [
        ("nettvakt_meta.rp_config raw", "DELETE FROM \"rp_config\" WHERE \"resolution\" = 'raw'"),
        ("nettvakt_meta.rp_config 5m", "DELETE FROM \"rp_config\" WHERE \"resolution\" = '5m'")]
    asyncio.run(start_once(2 + 2 * 2))
    rows = ask(server, database, f'SELECT * FROM "{database}"."nettvakt_meta"."rp_config" GROUP BY "resolution"')
    assert sorted((r["resolution"], r["time"] // (86400 * NS)) for r in rows) == [("1h", 3650), ("5m", 400), ("raw", 7)]
    policies_after, queries_after = shown(server, database)
    assert {p["name"]: p["duration"] for p in policies_after}["nettvakt_5m"] == "9600h0m0s"
    assert {p["name"]: p["duration"] for p in policies_after}["autogen"] == "168h0m0s"
    assert queries_after == queries  # the queries do not depend on durations
    check = subprocess.run([sys.executable, "-m", "agent.cli", "check", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert check.returncode == 0, check.stderr


def test_an_old_policys_weekly_shard_groups_are_altered_for_new_groups_only_and_check_says_so(
        influx_db, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A database set up before nettvakt chose shard groups: its rollup and events policies have
    InfluxDB's 1 week. check names each with what the inventory asks; the set-up ALTERs them (the
    log says only new shard groups change); the group already there keeps its week, the next is 52 weeks."""
    server, database = influx_db
    admin = InfluxAdmin(storage(server, database), None)
    set_up(admin, storage(server, database), BackfillState(tmp_path / "backfill.json"))
    for policy in ("nettvakt_5m", "nettvakt_1h", "nettvakt_events"):  # as nettvakt made them before it chose shard groups
        admin.execute(f'ALTER RETENTION POLICY {policy} ON "{database}" SHARD DURATION 1w')
    now = time.time_ns()
    write(server, database, [f"probe,site=radhus,host=pc1,kind=icmp,target=gw rtt_ms=5 {now - now % HOUR - HOUR}"], policy="nettvakt_1h")
    path = InventoryBuilder(tmp_path).influxdb(server.url, database).agent("pc1").write()

    def check() -> tuple[int, list[dict[str, Any]], str]:
        done = subprocess.run([sys.executable, "-m", "agent.cli", "check", "--json", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
        text = subprocess.run([sys.executable, "-m", "agent.cli", "check", str(path)], capture_output=True, text=True, cwd=REPO, timeout=60)
        return done.returncode, [d for d in json.loads(done.stdout)["storage"]["differences"] if d["kind"] == "retention policy"], text.stderr

    code, policies, text = check()
    assert code == 1 and "3 difference(s) between InfluxDB and the inventory" in text, text
    assert [(d["name"], d["found"], d["wanted"], d["fix"]) for d in policies] == [
        ("nettvakt_5m", "keeps points 730d in shard groups of 1w", "730d in shard groups of 4w",
         [f'ALTER RETENTION POLICY "nettvakt_5m" ON "{database}" DURATION 730d SHARD DURATION 4w']),
        ("nettvakt_1h", "keeps points 3650d in shard groups of 1w", "3650d in shard groups of 52w",
         [f'ALTER RETENTION POLICY "nettvakt_1h" ON "{database}" DURATION 3650d SHARD DURATION 52w']),
        ("nettvakt_events", "keeps points 3650d in shard groups of 1w", "3650d in shard groups of 52w",
         [f'ALTER RETENTION POLICY "nettvakt_events" ON "{database}" DURATION 3650d SHARD DURATION 52w'])]
    note = "(InfluxDB applies a new shard group duration to the shard groups it makes from then on; the existing ones keep theirs (1w) until they expire)"
    assert (f"storage: retention policy nettvakt_1h: keeps points 3650d in shard groups of 1w; the inventory asks for 3650d in shard groups of 52w {note}"
            in text), text

    caplog.set_level("INFO", logger="nettvakt.retention")
    result = set_up(admin, storage(server, database), BackfillState(tmp_path / "backfill.json"))
    assert result.applied == [fix for d in policies for fix in d["fix"]]
    assert f"made as asked: retention policy nettvakt_events: keeps points 3650d in shard groups of 1w; the inventory asks for 3650d in shard groups of 52w {note}" in caplog.messages
    assert check()[:2] == (0, [])
    assert set_up(admin, storage(server, database), BackfillState(tmp_path / "backfill.json")).applied == []

    # The group written before keeps its week; a point outside it starts a group of 52 weeks.
    write(server, database, [f"probe,site=radhus,host=pc1,kind=icmp,target=gw rtt_ms=6 {now - now % HOUR - 3 * 7 * 24 * HOUR}"], policy="nettvakt_1h")

    def group_lengths() -> list[float]:
        rows = [r for r in ask(server, database, "SHOW SHARDS") if r.get("database") == database and r.get("retention_policy") == "nettvakt_1h"]
        return sorted((dt.datetime.fromisoformat(r["end_time"].replace("Z", "+00:00")) - dt.datetime.fromisoformat(r["start_time"].replace("Z", "+00:00"))).days
                      for r in rows)

    assert group_lengths() == [7, 364]
    assert len(ask(server, database, 'SELECT rtt_ms FROM "nettvakt_1h"."probe"')) == 2


def test_a_changed_query_is_replaced_and_a_stray_one_dropped(influx_db, tmp_path: Path) -> None:
    server, database = influx_db
    settings = storage(server, database)
    admin = InfluxAdmin(settings, None)
    set_up(admin, settings, BackfillState(tmp_path / "backfill.json"))
    # Someone edits a query by hand, and an old contract left one behind.
    admin.execute(f'DROP CONTINUOUS QUERY nettvakt_5m_host ON "{database}"')
    admin.execute(f'CREATE CONTINUOUS QUERY nettvakt_5m_host ON "{database}" BEGIN SELECT mean(cpu_pct) AS cpu_pct INTO "{database}".nettvakt_5m.host '
                  f'FROM "{database}".autogen.host GROUP BY time(5m), * END')
    admin.execute(f'CREATE CONTINUOUS QUERY nettvakt_5m_gone ON "{database}" BEGIN SELECT mean(x) AS x INTO "{database}".nettvakt_5m.gone '
                  f'FROM "{database}".autogen.gone GROUP BY time(5m), * END')
    result = set_up(admin, settings, BackfillState(tmp_path / "backfill.json"))
    assert result.applied == [
        f'DROP CONTINUOUS QUERY "nettvakt_5m_host" ON "{database}"', result.plan.query_named("nettvakt_5m_host").text,
        f'DROP CONTINUOUS QUERY "nettvakt_5m_gone" ON "{database}"',
    ]
    assert set_up(admin, settings, BackfillState(tmp_path / "backfill.json")).applied == []


def test_raw_points_expire_by_policy_while_their_backfilled_rollups_stay(quick_influxd: InfluxdServer, tmp_path: Path) -> None:
    """An existing database with hours of raw points gets its rollups first; then its raw policy is
    shortened to 1 h and InfluxDB's retention service drops the old raw points; the rollups stay
    and say what the raw points said."""
    server = quick_influxd
    database = "upgraded"
    InfluxAdmin(storage(server, database), None).execute(f'CREATE DATABASE "{database}" WITH SHARD DURATION 1h')
    now = time.time_ns()
    start = now - now % HOUR - 4 * HOUR  # four whole hours ago
    old_lines, old_points = probe_lines(start, 4 * 60 * 2, 30 * NS, "old", seed=1)  # every 30 s for 4 h, equal counts per bucket
    # A fifth hour whose 5-minute buckets hold different numbers of points: mean of means is off there.
    uneven = [(start - HOUR + i * 10 * NS, 10.0 + (i % 7), 0.0) for i in range(30)] + [(start - HOUR + 1800 * NS + i * 120 * NS, 50.0, 0.0) for i in range(15)]
    uneven_lines = [f"probe,site=radhus,host=pc1,kind=icmp,target=old up=1,rtt_ms={rtt},loss_pct={loss} {t}" for t, rtt, loss in uneven]
    write(server, database, old_lines + uneven_lines)
    raw_points = old_points + uneven

    settings = storage(server, database)
    admin = InfluxAdmin(settings, None)
    state = BackfillState(tmp_path / "backfill.json")
    kept = {"raw": 3600, "5m": 30 * 86400, "1h": 365 * 86400}
    result = set_up(admin, settings, state, kept_s=kept)
    assert result.backfill_statements > 0 and state.load(database) is None
    assert f'ALTER RETENTION POLICY "autogen" ON "{database}" DURATION 1h SHARD DURATION 1h' == result.applied[-1]

    wait_until(lambda: not ask(server, database, f"SELECT count(rtt_ms) FROM \"{database}\".\"autogen\".\"probe\" WHERE time < {now - 2 * HOUR}"),
               60, "InfluxDB's retention service to drop the raw points older than the policy")
    assert_matches(rollup_rows(server, database, "nettvakt_5m", "old"), expected_buckets(raw_points, MIN5))

    hours = rollup_rows(server, database, "nettvakt_1h", "old")
    assert set(hours) == {start + h * HOUR for h in range(-1, 4)}
    for hour_start, row in hours.items():
        members = [p for p in raw_points if hour_start <= p[0] < hour_start + HOUR]
        rtts = [p[1] for p in members]
        fives = [b for b in expected_buckets(members, MIN5).values()]
        assert row["rtt_ms_min"] == min(rtts) and row["rtt_ms_max"] == max(rtts)  # min of mins, max of maxes: exact
        # max of p95s: not below the hour's p95 (these buckets hold 10 or 30 points: no rank rounding), never above its max.
        assert nearest_rank_p95(rtts) <= row["rtt_ms_p95"] <= max(rtts)
        assert row["rtt_ms_p95"] == max(b["rtt_ms_p95"] for b in fives)
        # mean of means: exact when the 5-minute buckets hold as many points, else within their spread.
        assert row["rtt_ms"] == pytest.approx(statistics.fmean(b["rtt_ms"] for b in fives), rel=TOLERANCE)
        if hour_start >= start:
            assert row["rtt_ms"] == pytest.approx(statistics.fmean(rtts), rel=TOLERANCE)
        else:
            error = abs(row["rtt_ms"] - statistics.fmean(rtts))
            assert 0 < error <= max(b["rtt_ms"] for b in fives) - min(b["rtt_ms"] for b in fives)


def test_a_continuous_query_run_equals_the_raw_points_and_a_backfill_equals_the_query(quick_influxd: InfluxdServer, tmp_path: Path) -> None:
    server = quick_influxd
    now = time.time_ns()
    start = now - now % MIN5 - 9 * MIN5  # nine whole 5-minute buckets, all in the past
    lines_a, points_a = probe_lines(start, 9 * 20, 15 * NS, "gw", seed=2)
    lines_b, points_b = probe_lines(start + 7 * NS, 9 * 10, 30 * NS, "dns", seed=3)
    # Two databases with the same raw points: one rolls up by its continuous queries run every
    # second (RESAMPLE EVERY 1s FOR 1h); the other has the policies but no queries, only a backfill.
    fast = {"5m": Cadence(1, 3600), "1h": Cadence(1, 3600)}
    by_query = InfluxAdmin(storage(server, "by_query"), None)
    by_query.execute('CREATE DATABASE "by_query"')
    set_up(by_query, storage(server, "by_query"), BackfillState(tmp_path / "by_query.json"), cadence=fast)
    write(server, "by_query", lines_a + lines_b)
    by_backfill = InfluxAdmin(storage(server, "by_backfill"), None)
    by_backfill.execute('CREATE DATABASE "by_backfill"')
    write(server, "by_backfill", lines_a + lines_b)
    plan = storage_plan("by_backfill", "autogen", retention_seconds(storage(server, "by_backfill")))
    for policy in plan.policies[1:]:
        by_backfill.execute(policy.statement("by_backfill", exists=False))
    assert backfill(by_backfill, plan, start, now) > 0
    assert not read_existing(by_backfill).queries

    expected_a, expected_b = expected_buckets(points_a, MIN5), expected_buckets(points_b, MIN5)
    wait_until(lambda: len(rollup_rows(server, "by_query", "nettvakt_5m", "gw")) == 9 and len(rollup_rows(server, "by_query", "nettvakt_5m", "dns")) == 9,
               60, "the continuous query to write nine 5-minute buckets per target")
    assert_matches(rollup_rows(server, "by_query", "nettvakt_5m", "gw"), expected_a)
    assert_matches(rollup_rows(server, "by_query", "nettvakt_5m", "dns"), expected_b)
    # Every rollup field the contract gives the probe measurement, not only the ones computed above.
    row = next(iter(rollup_rows(server, "by_query", "nettvakt_5m", "gw").values()))
    assert {f.name for f in rollup_fields(MEASUREMENTS_SPEC["probe"]) if f.source in ("up", "rtt_ms", "loss_pct")} <= set(row)
    assert "method" not in row  # strings are not rolled up
    for target in ("gw", "dns"):
        assert rollup_rows(server, "by_backfill", "nettvakt_5m", target) == rollup_rows(server, "by_query", "nettvakt_5m", target)
    # A backfill run again over the same range changes nothing (the same points are overwritten).
    before = rollup_rows(server, "by_backfill", "nettvakt_1h", "gw")
    backfill(by_backfill, plan, start, now)
    assert rollup_rows(server, "by_backfill", "nettvakt_1h", "gw") == before


async def after_two_failures(app: Any, http: aiohttp.ClientSession) -> tuple[RollupMaintainer, dict[str, Any]]:
    """The collector's retention set-up once it has failed twice (so it retries), and /health then."""
    maintainer = app[ROLLUPS]
    await wait_until_async(lambda: maintainer.stats.failures >= 2, 30, "two failed set-ups", interval_s=0.05)
    async with http.get("/api/v1/health") as resp:
        return maintainer, await resp.json()


def test_a_refusal_by_influxdb_is_a_problem_in_health_naming_what_was_refused(influx_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server, database = influx_db
    path = InventoryBuilder(tmp_path).influxdb(server.url, database, retention_policy="kort").agent("pc1").write()
    monkeypatch.setattr(RollupMaintainer, "RETRY_INITIAL_S", 0.2)

    async def scenario() -> None:
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            maintainer, health = await after_two_failures(app, http)
            assert health["status"] == "degraded"
            assert [p for p in health["problems"] if p.startswith("retention policies and continuous queries are not as the inventory asks")] == [
                f"retention policies and continuous queries are not as the inventory asks ({health['storage']['rollups']['failures']} failed attempts; "
                f"rollups may be missing): storage.retention_policy 'kort' does not exist in database '{database}' -- statement: "
                f'SHOW RETENTION POLICIES ON "{database}"']
            # Made by hand, as the operator would: the next attempt sets the rest up.
            await asyncio.to_thread(InfluxAdmin(storage(server, database), None).execute, f'CREATE RETENTION POLICY kort ON "{database}" DURATION 1d REPLICATION 1')
            await wait_until_async(lambda: maintainer.stats.runs >= 1, 30, "the set-up to succeed", interval_s=0.05)
            async with http.get("/api/v1/health") as resp:
                assert (await resp.json())["problems"] == []
        policies, _ = shown(server, database)
        assert {p["name"]: p["duration"] for p in policies}["kort"] == "720h0m0s"  # the raw policy, as configured

    asyncio.run(asyncio.wait_for(scenario(), 120))


def test_influxdb_down_at_start_is_retried_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    inv = InventoryBuilder(tmp_path).influxdb(f"http://127.0.0.1:{port}", "nettvakt", timeout_s=1).agent("pc1")
    path = inv.write()
    monkeypatch.setattr(RollupMaintainer, "RETRY_INITIAL_S", 0.2)
    monkeypatch.setattr(RollupMaintainer, "RETRY_MAX_S", 0.5)

    async def scenario() -> None:
        app = create_app(load_inventory(path), alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base) as http:
            maintainer, health = await after_two_failures(app, http)
            # No answer at all: said in the storage part (the writer's own problem says InfluxDB is down).
            rollups = health["storage"]["rollups"]
            assert rollups["unreachable"] is True and f"127.0.0.1:{port}" in rollups["last_error"] and rollups["runs"] == 0
            assert not [p for p in health["problems"] if p.startswith("retention policies")], health["problems"]
            server = await asyncio.to_thread(start_influxd, tmp_path / "influxd", port=port)
            try:
                await asyncio.to_thread(InfluxAdmin(storage(server, "nettvakt"), None).execute, 'CREATE DATABASE "nettvakt"')
                await wait_until_async(lambda: maintainer.stats.runs >= 1, 60, "the set-up to succeed once InfluxDB is up", interval_s=0.05)
                async with http.get("/api/v1/health") as resp:
                    health = await resp.json()
                assert not [p for p in health["problems"] if p.startswith("retention policies")], health["problems"]
                assert "nettvakt_5m" in {p.name for p in read_existing(InfluxAdmin(storage(server, "nettvakt"), None)).policies.values()}
            finally:
                await asyncio.to_thread(server.stop)

    asyncio.run(asyncio.wait_for(scenario(), 120))
