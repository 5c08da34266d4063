"""The replacement plan from the shipped inventory."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from collector.config import load_inventory
from collector.lifecycle import lifecycle_points

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
