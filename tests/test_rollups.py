"""The resolutions and rollup fields as data (collector/rollups.py): names from the contract, the
resolution a reader gets for a range, the generated part of docs/storage.md. On a real influxd:
tests/test_retention.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.contract import MEASUREMENTS_SPEC
from collector.config import StorageSettings
from collector.retention import influxdb_shard_duration_s, normalised_statement, parse_go_duration, shard_group_s, storage_plan
from collector.rollups import (
    DAY_S,
    NS,
    RESOLUTIONS,
    event_measurements,
    influxql_duration,
    qualified_source,
    render_storage_doc,
    resolution_for,
    rolled_up_measurements,
    rollup_errors,
    rollup_fields,
    rollup_select,
    stored_field,
)

ROOT = Path(__file__).resolve().parents[1]


def names(measurement: str) -> list[str]:
    return [f.name for f in rollup_fields(MEASUREMENTS_SPEC[measurement])]


def test_rollup_fields_are_made_from_the_contract() -> None:
    assert rollup_errors() == []
    probe = names("probe")
    assert probe[:7] == ["up", "up_min", "up_max", "duration_ms", "duration_ms_min", "duration_ms_max", "duration_ms_p95"]
    assert {"rtt_ms", "rtt_ms_min", "rtt_ms_max", "rtt_ms_p95", "loss_pct_p95"} <= set(probe)
    assert "reason" not in probe and "method" not in probe and "hop_addr" not in probe  # strings
    assert "sent_p95" not in probe  # a count: no p95
    assert {"in_util_pct_p95", "out_util_pct_p95", "in_bps", "in_bps_max"} <= set(names("interface"))
    assert "load1_p95" not in names("host") and "cpu_pct_p95" in names("host")
    # Cumulative fields: their maximum, under their own name, and nothing else.
    assert [n for n in names("device") if n.startswith("pages_total")] == ["pages_total"]
    assert [f.aggregate for f in rollup_fields(MEASUREMENTS_SPEC["collector"]) if f.source == "written_points"] == ["max"]
    assert [n for n in names("host") if n.startswith("spool_dropped_points")] == ["spool_dropped_points"]
    # Additive fields (availability's seconds judged up / judged): their sum, so sum(up_s)/sum(judged_s) stays exact.
    availability = {f.name: f.aggregate for f in rollup_fields(MEASUREMENTS_SPEC["availability"])}
    assert (availability["up_s"], availability["judged_s"]) == ("sum", "sum") and "up_s_max" not in availability
    assert stored_field("availability", "up_s", "sum", "1h") == "up_s"
    # Events are kept whole, never rolled up; everything else is.
    assert {m.name for m in event_measurements()} == {"alert", "login"}
    assert names("alert") == [] and names("login") == []
    assert {m.name for m in rolled_up_measurements()} == set(MEASUREMENTS_SPEC) - {"alert", "login"}


def test_a_reader_finds_each_aggregate_under_its_stored_name() -> None:
    assert stored_field("probe", "rtt_ms", "mean", "raw") == "rtt_ms"
    assert stored_field("probe", "rtt_ms", "mean", "5m") == "rtt_ms"
    assert stored_field("probe", "rtt_ms", "p95", "1h") == "rtt_ms_p95"
    assert stored_field("interface", "in_util_pct", "max", "5m") == "in_util_pct_max"
    assert stored_field("device", "pages_total", "max", "1h") == "pages_total"
    with pytest.raises(KeyError, match="keep no p95"):
        stored_field("interface", "in_bps", "p95", "5m")
    assert qualified_source("nettvakt", "probe", "raw") == '"nettvakt".."probe"'
    assert qualified_source("nettvakt", "probe", "raw", "autogen") == '"nettvakt"."autogen"."probe"'
    assert qualified_source("nettvakt", "probe", "5m") == '"nettvakt"."nettvakt_5m"."probe"'
    assert qualified_source("nettvakt", "alert", "1h") == '"nettvakt"."nettvakt_events"."alert"'


def test_the_hourly_rollup_reads_the_five_minute_one() -> None:
    spec = MEASUREMENTS_SPEC["interface"]
    five = rollup_select(spec, RESOLUTIONS["5m"], "nettvakt", "autogen")
    hour = rollup_select(spec, RESOLUTIONS["1h"], "nettvakt", "autogen")
    assert five.startswith('SELECT mean("in_bps") AS "in_bps", min("in_bps") AS "in_bps_min", max("in_bps") AS "in_bps_max"')
    assert 'percentile("in_util_pct", 95) AS "in_util_pct_p95"' in five
    assert five.endswith('INTO "nettvakt"."nettvakt_5m"."interface" FROM "nettvakt"."autogen"."interface" GROUP BY time(5m), *')
    assert 'mean("in_bps") AS "in_bps", min("in_bps_min") AS "in_bps_min", max("in_bps_max") AS "in_bps_max"' in hour
    assert 'max("in_util_pct_p95") AS "in_util_pct_p95"' in hour
    assert hour.endswith('INTO "nettvakt"."nettvakt_1h"."interface" FROM "nettvakt"."nettvakt_5m"."interface" GROUP BY time(1h), *')


def storage(**days: int) -> StorageSettings:
    return StorageSettings(kind="influxdb_v1", url="http://127.0.0.1:1", database="d", **days)


@pytest.mark.parametrize(("start_days_ago", "length_days", "expected"), [
    (1, 1, "raw"),  # the last day
    (2, 2, "raw"),  # two days, within raw retention
    (3, 3, "5m"),  # longer than two days
    (31, 1, "5m"),  # short, but raw points of then are gone
    (30, 30, "5m"),
    (60, 60, "5m"),
    (61, 61, "1h"),
    (365, 1, "1h"),  # short, but older than the 5-minute retention (the test's 200 days)
    (365, 365, "1h"),
])
def test_resolution_for_a_range(start_days_ago: float, length_days: float, expected: str) -> None:
    now = 1_800_000_000 * NS
    start = now - int(start_days_ago * DAY_S * NS)
    chosen = resolution_for(start, start + int(length_days * DAY_S * NS), now, storage(rollup_5m_retention_days=200))
    assert chosen.name == expected


def test_resolution_for_follows_the_configured_retention() -> None:
    now = 1_800_000_000 * NS
    day = DAY_S * NS
    assert resolution_for(now - 10 * day, now - 9 * day, now, storage(raw_retention_days=7)).name == "5m"
    assert resolution_for(now - 10 * day, now - 9 * day, now, storage(raw_retention_days=14)).name == "raw"


def test_durations_as_influxdb_writes_and_shows_them() -> None:
    assert [influxql_duration(s) for s in (300, 3600, 7200, 86400, 7 * 86400, 730 * 86400, 1.5)] == ["5m", "1h", "2h", "1d", "1w", "730d", "1500ms"]
    assert parse_go_duration("720h0m0s") == 30 * 86400 and parse_go_duration("0s") == 0 and parse_go_duration("1h30m0s") == 5400
    assert [influxdb_shard_duration_s(d * 86400) for d in (1, 30, 730)] == [3600, 86400, 7 * 86400]


def test_shard_groups_are_nettvakts_own_for_the_rollups_and_influxdbs_for_the_raw_policy() -> None:
    week = 7 * 86400
    policies = storage_plan("db", "autogen", {"raw": 30 * 86400, "5m": 730 * 86400, "1h": 3650 * 86400}).policies
    assert [(p.name, p.shard_s, p.shard_group_s) for p in policies] == [
        ("autogen", None, 86400), ("nettvakt_5m", 4 * week, 4 * week), ("nettvakt_1h", 52 * week, 52 * week),
        ("nettvakt_events", 52 * week, 52 * week), ("nettvakt_meta", None, week)]
    # At most a tenth of the retention (a group is dropped whole), never past the policy's longest.
    assert [shard_group_s(d * 86400, 52 * week) for d in (1, 9, 10, 69, 70, 364, 3639, 3640, 0)] == [
        3600, 3600, 86400, 86400, week, 4 * week, 4 * week, 52 * week, 52 * week]
    assert shard_group_s(3650 * 86400, 4 * week) == 4 * week


def test_a_query_compares_equal_to_how_influxdb_shows_it() -> None:
    plan = storage_plan("my-db", "autogen", {"raw": 30 * 86400, "5m": 730 * 86400, "1h": 3650 * 86400})
    wanted = plan.query_named("nettvakt_5m_host_disk").text
    assert wanted.startswith('CREATE CONTINUOUS QUERY "nettvakt_5m_host_disk" ON "my-db" RESAMPLE EVERY 5m FOR 2h BEGIN SELECT mean("used_pct")')
    shown = ('CREATE CONTINUOUS QUERY nettvakt_5m_host_disk ON "my-db" RESAMPLE EVERY 5m FOR 2h BEGIN SELECT mean(used_pct) AS used_pct, '
             + wanted.split("AS \"used_pct\", ", 1)[1].replace('"', "").replace("my-db", '"my-db"'))
    assert normalised_statement(shown) == normalised_statement(wanted)
    assert normalised_statement(shown.replace("FOR 2h", "FOR 3h")) != normalised_statement(wanted)


def test_docs_storage_md_lists_the_rollup_fields_as_they_are_made() -> None:
    text = (ROOT / "docs" / "storage.md").read_text(encoding="utf-8")
    assert render_storage_doc(text) == text, "run: python -m collector.rollups --write docs/storage.md"
