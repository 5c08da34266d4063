"""The replacement plan from inventory.toml, as `lifecycle` points for dashboards and reports.

Observed facts (what a machine says it is) are `hardware` points from agents, SNMP and SSH;
the plan (when it was bought, how long it should last, what it costs to replace) comes
from the inventory and the lifecycle policy, so it is its own measurement: the two never
overwrite each other, and `due_year` can be a tag to sum costs per year.
"""

from __future__ import annotations

import datetime as dt

from agent.points import Point
from collector.config import Hardware, Inventory

DAYS_PER_YEAR = 365.2425


def plan_fields(inventory: Inventory, hardware: Hardware, today: dt.date) -> tuple[dict[str, float | str], int | None]:
    """Fields of one lifecycle point and its due year (None when the purchase date is unknown)."""
    policy = inventory.lifecycle.kinds.get(hardware.kind)
    lifetime = hardware.lifetime_years or (policy.lifetime_years if policy else None)
    cost = hardware.cost_nok if hardware.cost_nok is not None else (policy.replacement_cost_nok if policy else None)
    fields: dict[str, float | str] = {}
    if hardware.model:
        fields["model"] = hardware.model
    if lifetime is not None:
        fields["lifetime_years"] = float(lifetime)
    if cost is not None:
        fields["replacement_cost_nok"] = float(cost)
    due_year = None
    if hardware.purchased is not None:
        age = (today - hardware.purchased).days / DAYS_PER_YEAR
        fields["purchased"] = hardware.purchased.isoformat()
        fields["age_years"] = round(age, 2)
        if lifetime is not None:
            due_year = hardware.purchased.year + int(round(lifetime))
            fields["due_calendar_year"] = float(due_year)
            fields["remaining_years"] = round(lifetime - age, 2)
    return fields, due_year


def lifecycle_points(inventory: Inventory, time_ns: int, today: dt.date | None = None) -> list[Point]:
    today = today or dt.date.today()
    points = []
    entries = [("device", d.id, d.site, d.hardware) for d in inventory.device]
    entries += [("host", a.id, a.site, a.hardware) for a in inventory.agent if a.hardware is not None]
    for key, ident, site, hardware in entries:
        assert hardware is not None
        fields, due_year = plan_fields(inventory, hardware, today)
        if not fields:
            continue
        tags = {"site": site, key: ident, "kind": hardware.kind, "due_year": str(due_year) if due_year else "unknown"}
        if hardware.department:
            tags["department"] = hardware.department
        points.append(Point("lifecycle", tags, fields, time_ns))
    return points
