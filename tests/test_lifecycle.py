"""The replacement plan from the shipped inventory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from collector.config import load_inventory
from collector.lifecycle import battery_plan, lifecycle_points

ROOT = Path(__file__).resolve().parents[1]


def test_lifecycle_points_from_the_shipped_inventory() -> None:
    inventory = load_inventory(ROOT / "inventory.toml")
    points = lifecycle_points(inventory, 1, today=dt.date(2026, 11, 29))
    for point in points:
        point.validate()
    by_id = {p.tags.get("device") or p.tags.get("host"): p for p in points}
    assert len(by_id) == len(inventory.device) + len(inventory.agent)
    # The new firewall: own cost, the kind's lifetime (7 years), bought 2026-09-15.
    fw = by_id["fw-radhus"]
    assert fw.tags == {"site": "radhus", "device": "fw-radhus", "kind": "firewall", "due_year": "2033", "department": "IT"}
    assert fw.fields["replacement_cost_nok"] == 42000.0 and fw.fields["lifetime_years"] == 7.0
    assert fw.fields["age_years"] == 0.21 and fw.fields["remaining_years"] == 6.79
    # A 2015 PC at an outstation: the kind's default cost, overdue.
    ops = by_id["vannvag-ops"]
    assert ops.tags["due_year"] == "2020" and ops.fields["replacement_cost_nok"] == 11000.0
    assert ops.tags["department"] == "Teknisk drift"
    assert ops.fields["remaining_years"] < 0


def test_a_ups_battery_is_planned_on_its_own() -> None:
    inventory = load_inventory(ROOT / "inventory.toml")
    points = lifecycle_points(inventory, 1, today=dt.date(2026, 11, 29))
    (ups,) = [p for p in points if p.tags.get("device") == "ups-radhus" and p.tags["kind"] == "ups"]
    (battery,) = [p for p in points if p.tags.get("device") == "ups-radhus" and p.tags["kind"] == "ups-battery"]
    assert ups.tags["due_year"] == "2023"  # the UPS: bought 2017, 6 years
    # Its battery: replaced 2024-03-01 ([device.hardware.battery]), 4 years and 2500 kr from [lifecycle.kinds.ups-battery].
    assert battery.tags == {"site": "radhus", "device": "ups-radhus", "kind": "ups-battery", "due_year": "2028", "department": "IT"}
    assert battery.fields == {"lifetime_years": 4.0, "replacement_cost_nok": 2500.0, "purchased": "2024-03-01",
                              "age_years": 2.75, "due_calendar_year": 2028.0, "remaining_years": 1.25}


def test_battery_due_date_from_the_ups_first_then_the_inventory() -> None:
    inventory = load_inventory(ROOT / "inventory.toml")
    (ups,) = [d for d in inventory.device if d.id == "ups-radhus"]
    # An APC that says when (upsAdvBatteryRecommendedReplaceDate) is believed over any plan.
    plan = battery_plan(inventory, ups.hardware, {"battery_replace_date": "2022-01-10", "battery_last_replaced": "2019-01-10"})
    assert (plan.due, plan.replaced, plan.source) == (dt.date(2022, 1, 10), dt.date(2019, 1, 10), "device_date")
    # One that says only when it was last replaced: that plus the lifetime.
    plan = battery_plan(inventory, ups.hardware, {"battery_last_replaced": "2025-04-30"})
    assert (plan.due, plan.source) == (dt.date(2029, 4, 30), "device_replaced")
    # A recommended date older than the last replacement was never updated (the APC recording): stale.
    plan = battery_plan(inventory, ups.hardware, {"battery_replace_date": "2022-01-10", "battery_last_replaced": "2025-04-30"})
    assert (plan.due, plan.source) == (dt.date(2029, 4, 30), "device_replaced")
    # A date the UPS garbled is no date.
    plan = battery_plan(inventory, ups.hardware, {"battery_replace_date": "00/00/00"})
    assert (plan.due, plan.source) == (dt.date(2028, 3, 1), "inventory")
    # Nothing about the battery anywhere: from the UPS's purchase, and a 4-year default without a policy.
    bare = ups.hardware.model_copy(update={"battery": None})
    plain = inventory.model_copy(update={"lifecycle": inventory.lifecycle.model_copy(update={"kinds": {}})})
    plan = battery_plan(plain, bare)
    assert (plan.due, plan.source, plan.lifetime_years, plan.cost_nok) == (dt.date(2021, 11, 15), "purchased", 4.0, None)
