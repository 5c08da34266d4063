"""The replacement plan from inventory.toml, as `lifecycle` points for dashboards and reports.

Observed facts (what a machine says it is) are `hardware` points from agents, SNMP and SSH;
the plan (when it was bought, how long it should last, what it costs to replace) comes
from the inventory and the lifecycle policy, so it is its own measurement: the two never
overwrite each other, and `due_year` can be a tag to sum costs per year.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from agent.points import Point
from collector.config import Hardware, Inventory
from collector.snmp.ups import replace_date_stale

DAYS_PER_YEAR = 365.2425
# A UPS battery's plan is this kind in [lifecycle.kinds]; without one, the lead-acid batteries of
# office UPSes are planned for 4 years (their makers say 3 to 5).
BATTERY_KIND = "ups-battery"
BATTERY_LIFETIME_YEARS = 4.0
# Where a battery's due date comes from, best first.
BatterySource = Literal["device_date", "device_replaced", "inventory", "purchased"]


@dataclass(frozen=True)
class BatteryPlan:
    replaced: dt.date | None  # when the battery in it now went in, as far as anyone knows
    due: dt.date | None
    lifetime_years: float
    cost_nok: float | None
    source: BatterySource | None  # None: no date anywhere


def _iso_date(value: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _after(day: dt.date, years: float) -> dt.date:
    return day + dt.timedelta(days=round(years * DAYS_PER_YEAR))


def has_battery(hardware: Hardware) -> bool:
    return hardware.kind == "ups" or hardware.battery is not None


def battery_plan(inventory: Inventory, hardware: Hardware, observed: Mapping[str, Any] | None = None) -> BatteryPlan:
    """The battery's due date: the date the UPS recommends, else its last replacement (as the UPS
    says, else the inventory's `battery.replaced`, else the UPS's purchase) plus the lifetime.

    `observed` are the fields of the UPS's latest `device` point (battery_replace_date,
    battery_last_replaced; docs/metrics.md)."""
    observed = observed or {}
    policy = inventory.lifecycle.kinds.get(BATTERY_KIND)
    battery = hardware.battery
    lifetime = (battery.lifetime_years if battery else None) or (policy.lifetime_years if policy else BATTERY_LIFETIME_YEARS)
    cost = battery.cost_nok if battery and battery.cost_nok is not None else (policy.replacement_cost_nok if policy else None)
    said_replaced = _iso_date(observed.get("battery_last_replaced"))
    said_due = _iso_date(observed.get("battery_replace_date"))
    if replace_date_stale(observed.get("battery_replace_date"), observed.get("battery_last_replaced")):
        said_due = None
    if said_due is not None:
        return BatteryPlan(said_replaced, said_due, lifetime, cost, "device_date")
    for replaced, source in ((said_replaced, "device_replaced"), (battery.replaced if battery else None, "inventory"),
                             (hardware.purchased, "purchased")):
        if replaced is not None:
            return BatteryPlan(replaced, _after(replaced, lifetime), lifetime, cost, source)  # type: ignore[arg-type]
    return BatteryPlan(None, None, lifetime, cost, None)


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
    for device in inventory.device:
        if has_battery(device.hardware):
            points.append(_battery_point(inventory, device.id, device.site, device.hardware, time_ns, today))
    return points


def _battery_point(inventory: Inventory, device: str, site: str, hardware: Hardware, time_ns: int, today: dt.date) -> Point:
    """The inventory's plan for a UPS battery (what the UPS itself says is in its `device` points)."""
    plan = battery_plan(inventory, hardware)
    fields: dict[str, float | str] = {"lifetime_years": float(plan.lifetime_years)}
    if plan.cost_nok is not None:
        fields["replacement_cost_nok"] = float(plan.cost_nok)
    if plan.replaced is not None and plan.due is not None:
        age = (today - plan.replaced).days / DAYS_PER_YEAR
        fields.update(purchased=plan.replaced.isoformat(), age_years=round(age, 2), due_calendar_year=float(plan.due.year),
                      remaining_years=round(plan.lifetime_years - age, 2))
    tags = {"site": site, "device": device, "kind": BATTERY_KIND, "due_year": str(plan.due.year) if plan.due else "unknown"}
    if hardware.department:
        tags["department"] = hardware.department
    return Point("lifecycle", tags, fields, time_ns)
