"""Alert rule and maintenance window models: defaults, hysteresis sanity, templates, windows, cross-checks."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from pydantic import ValidationError

from collector.alerting.config import AlertingSettings, AlertRule, MaintenanceWindow, alerting_problems
from collector.alerting.rules import RULE_KINDS

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")


def error_of(model: type, **data: object) -> str:
    with pytest.raises(ValidationError) as info:
        model(**data)
    errors = info.value.errors()
    assert len(errors) == 1, errors
    return f"{'.'.join(str(p) for p in errors[0]['loc']) or '-'}: {errors[0]['msg']}"


def test_limits_default_per_kind_and_override() -> None:
    assert AlertRule(id="cpu", kind="host_cpu").limits() == (95.0, 80.0)
    assert AlertRule(id="cpu", kind="host_cpu", threshold=90).limits() == (90.0, 90.0)
    assert AlertRule(id="cpu", kind="host_cpu", threshold=90, clear=70).limits() == (90.0, 70.0)
    assert AlertRule(id="down", kind="device_down").limits() == (0.5, 0.5)


def test_bad_rules_name_the_problem() -> None:
    assert error_of(AlertRule, id="x", kind="disk_full").startswith(
        "kind: Value error, unknown rule kind 'disk_full' (known: agent_never_reported, agent_silent, collector_backlog,"
    )
    assert error_of(AlertRule, id="x", kind="host_cpu", threshold=90, clear=95) == (
        "-: Value error, clear (95.0) must not be above threshold (90.0): the alert could never clear"
    )
    assert error_of(AlertRule, id="x", kind="host_cpu", summary="{subject} at {valeu}") == (
        "summary: Value error, summary template uses unknown variable(s) valeu; known: affected, affected_machines, detail, rule, severity, "
        "since, site, site_name, subject, threshold, value"
    )
    assert error_of(AlertRule, id="x", kind="host_cpu", colour="red") == "colour: Extra inputs are not permitted"
    assert error_of(AlertRule, id="Vannvåg", kind="host_cpu").startswith("id: Value error, 'Vannvåg' is not an id")


def test_every_kind_has_texts_in_both_languages() -> None:
    for name, kind in RULE_KINDS.items():
        assert set(kind.text) == {"nb", "en"}, name


def test_weekly_window_crossing_midnight() -> None:
    window = MaintenanceWindow(id="natt", weekdays=["sat"], start_time=dt.time(23), end_time=dt.time(2))

    def at(*args: int) -> float:
        return dt.datetime(*args, tzinfo=OSLO).timestamp()

    assert window.active(at(2026, 11, 28, 23, 30))  # Saturday night
    assert window.active(at(2026, 11, 29, 1, 59))  # into Sunday
    assert not window.active(at(2026, 11, 29, 2, 0))
    assert not window.active(at(2026, 11, 27, 23, 30))  # Friday


def test_weekly_window_follows_summer_time() -> None:
    window = MaintenanceWindow(id="patch", weekdays=["sun"], start_time=dt.time(2), end_time=dt.time(6))
    # 03:00 local on a summer Sunday is 01:00 UTC; on a winter Sunday 02:00 UTC.
    assert window.active(dt.datetime(2026, 7, 5, 1, 0, tzinfo=dt.timezone.utc).timestamp())
    assert window.active(dt.datetime(2026, 11, 29, 2, 0, tzinfo=dt.timezone.utc).timestamp())
    assert not window.active(dt.datetime(2026, 11, 29, 5, 0, tzinfo=dt.timezone.utc).timestamp())


def test_one_off_window_local_and_offset_times() -> None:
    local = MaintenanceWindow(id="a", start=dt.datetime(2026, 12, 1, 8), end=dt.datetime(2026, 12, 1, 9))
    offset = MaintenanceWindow(id="b", start="2026-12-01T07:00:00Z", end="2026-12-01T08:00:00Z")  # type: ignore[arg-type]
    inside = dt.datetime(2026, 12, 1, 8, 30, tzinfo=OSLO).timestamp()
    assert local.active(inside) and offset.active(inside)
    assert not local.active(dt.datetime(2026, 12, 1, 9, 0, tzinfo=OSLO).timestamp())


def test_bad_windows() -> None:
    assert error_of(MaintenanceWindow, id="w", start=dt.datetime(2026, 1, 2), end=dt.datetime(2026, 1, 1)) == (
        "-: Value error, end must be after start"
    )
    assert error_of(MaintenanceWindow, id="w", weekdays=["sun"], start_time=dt.time(2)) == (
        "-: Value error, a weekly window needs weekdays, start_time and end_time"
    )
    assert error_of(MaintenanceWindow, id="w") == (
        "-: Value error, a window needs start and end, or weekdays with start_time and end_time"
    )
    assert error_of(MaintenanceWindow, id="w", weekdays=["søn"], start_time=dt.time(2), end_time=dt.time(3)).startswith(
        "weekdays.0: Input should be 'mon'"
    )
    assert error_of(MaintenanceWindow, id="w", weekdays=["sun"], start_time=dt.time(2), end_time=dt.time(3), timezone="Oslo") == (
        "timezone: Value error, unknown time zone 'Oslo' (use an IANA name such as 'Europe/Oslo')"
    )


def test_cross_checks_name_the_toml_path() -> None:
    rules = [
        AlertRule(id="cpu", kind="host_cpu", sites=["radhus", "finnes-ikke"], subjects=["radhus-srv", "ukjent-pc"]),
        AlertRule(id="cpu", kind="host_mem"),
        AlertRule(id="wan", kind="interface_down", subjects=["fw-radhus/wan1"]),
    ]
    windows = [MaintenanceWindow(id="w", weekdays=["sun"], start_time=dt.time(2), end_time=dt.time(6), rules=["cpu", "host_disk", "tull"])]
    assert alerting_problems(rules, windows, {"radhus"}, {"radhus-srv", "fw-radhus"}) == [
        "alert[0].sites[1]: no site with id 'finnes-ikke'",
        "alert[0].subjects[1]: no agent, device or probe with id 'ukjent-pc'",
        "alert[1].id: 'cpu' is already used by an earlier alert",
        "maintenance[0].rules[2]: no alert rule or rule kind 'tull'",
    ]


def test_settings_feed_the_engine() -> None:
    from collector.alerting.engine import AlertEngine
    from collector.config import parse_inventory

    settings = AlertingSettings(language="en", group_wait_s=0)
    engine = AlertEngine(parse_inventory({}), [], **settings.engine_options())  # type: ignore[arg-type]
    assert engine.group_wait_s == 0 and engine.language == "en"
    assert error_of(AlertingSettings, language="se") == "language: Input should be 'nb' or 'en'"
