"""Rule kinds as one table: name -> how to read a value per subject from the points we already have.

A kind only extracts values; the engine owns thresholds, `for` durations, hysteresis,
flapping and dependencies, the same for every kind (as blackbox_exporter's handler does
for its probers). Config validation checks `kind in RULE_KINDS`; there is no second list.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from agent.contract import probe_latency_ms
from agent.points import Point
from collector import texts
from collector.reports import i18n
from collector.snmp.printer import WARNING_CONDITIONS
from collector.snmp.ups import replace_date_stale

Direction = Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one subject, read from one point."""

    subject: str
    site: str
    value: float
    # What else the point said that people need in the message (the kind's `describe` words it).
    facts: Mapping[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What evaluators may know about the inventory beyond the point itself."""

    # (device, ifname) pairs marked important (snmp.important_interfaces).
    important_interfaces: frozenset[tuple[str, str]] = frozenset()


Evaluator = Callable[[Point, RuleContext], list[Sample]]
# A sample's facts in words of one language: the {detail} of the summary.
Describer = Callable[[Mapping[str, float | str], str], str]


@dataclass(frozen=True, slots=True)
class RuleKind:
    # The measurement it reads: observe() only offers a point to the kinds that read it.
    measurement: str
    evaluate: Evaluator
    # "above": bad when value >= threshold, clear when value < clear. "below": mirrored.
    direction: Direction
    threshold: float
    clear: float | None  # None: the same as threshold (0/1 states need no hysteresis)
    # Summary per language (the catalog's rule_summaries); {subject}, {value}, {threshold} and {site_name} are filled in.
    text: Mapping[str, str] = field(default_factory=dict)
    # Values are cumulative counters: the engine compares the increase between observations.
    delta: bool = False
    describe: Describer | None = None


def _num(point: Point, name: str) -> float | None:
    value = point.fields.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _field(measurement: str, name: str, subject: Callable[[Point], str | None], kind: str | None = None) -> Evaluator:
    """Evaluator reading one numeric field of one measurement (optionally one availability kind)."""

    def evaluate(point: Point, ctx: RuleContext) -> list[Sample]:
        if point.measurement != measurement or (kind is not None and point.tags.get("kind") != kind):
            return []
        value = _num(point, name)
        who = subject(point)
        if value is None or not who:
            return []
        return [Sample(who, point.tags.get("site", ""), value)]

    return evaluate


def _tag(name: str) -> Callable[[Point], str | None]:
    return lambda p: p.tags.get(name)


def _target(point: Point) -> str | None:
    # The same target seen from two agents is two subjects: one agent's path may be the problem.
    # A traceroute's hop points are about the hops, not the target: its round point speaks for it.
    target, host = point.tags.get("target"), point.tags.get("host")
    return f"{target}@{host}" if target and host and "hop" not in point.tags else None


def _probe_latency(point: Point, ctx: RuleContext) -> list[Sample]:
    if point.measurement != "probe":
        return []
    value, who = probe_latency_ms(point.tags.get("kind"), point.fields), _target(point)
    if value is None or not who:
        return []
    return [Sample(who, point.tags.get("site", ""), value)]


def _disk(point: Point) -> str | None:
    host, mount = point.tags.get("host"), point.tags.get("mount")
    return f"{host}:{mount}" if host and mount else None


def _interface_down(point: Point, ctx: RuleContext) -> list[Sample]:
    if point.measurement != "interface":
        return []
    device, ifname = point.tags.get("device", ""), point.tags.get("ifname", "")
    oper = _num(point, "oper_up")
    # Only interfaces that matter page someone; one shut down on purpose (admin down) is not an outage.
    if oper is None or (device, ifname) not in ctx.important_interfaces or _num(point, "admin_up") == 0.0:
        return []
    return [Sample(f"{device}/{ifname}", point.tags.get("site", ""), oper)]


def _interface_max(names: tuple[str, str]) -> Evaluator:
    def evaluate(point: Point, ctx: RuleContext) -> list[Sample]:
        if point.measurement != "interface":
            return []
        values = [v for v in (_num(point, n) for n in names) if v is not None]
        if not values:
            return []
        subject = f"{point.tags.get('device', '')}/{point.tags.get('ifname', '')}"
        return [Sample(subject, point.tags.get("site", ""), max(values))]

    return evaluate


def _vpn_down(point: Point, ctx: RuleContext) -> list[Sample]:
    if point.measurement != "device":
        return []
    up, total = _num(point, "vpn_tunnels_up"), _num(point, "vpn_tunnels_total")
    if up is None or total is None:
        return []
    # Tunnels missing, so "at least one down" is >= 1 with the default threshold.
    return [Sample(point.tags.get("device", ""), point.tags.get("site", ""), total - up)]


def _device(point: Point) -> str | None:
    return point.tags.get("device")


def _supply(point: Point) -> str | None:
    device, supply = point.tags.get("device"), point.tags.get("supply")
    return f"{device}/{supply}" if device and supply else None


def _printer_stopped(point: Point, ctx: RuleContext) -> list[Sample]:
    """How many conditions keep the printer from printing (jam, no paper, door open, ...).

    The warnings among the error bits (low toner, low paper, output nearly full, maintenance
    due) are left out: a low supply is printer_supply_low's, with its own level and threshold."""
    if point.measurement != "device" or _num(point, "printer_error") is None or not (who := _device(point)):
        return []
    said = point.fields.get("printer_errors")
    names = [n.strip() for n in said.split(",") if n.strip()] if isinstance(said, str) else []
    stopping = [n for n in names if n not in WARNING_CONDITIONS]
    return [Sample(who, point.tags.get("site", ""), float(len(stopping)), {"conditions": ", ".join(stopping)})]


def _describe_printer(facts: Mapping[str, float | str], lang: str) -> str:
    words = texts.of(lang).rule_details
    names = [n for n in str(facts.get("conditions", "")).split(", ") if n]
    return ", ".join(words.get(f"printer_{n}", n) for n in names)


def _ups_facts(point: Point) -> dict[str, float | str]:
    keep = ("ups_seconds_on_battery", "ups_minutes_left", "ups_charge_pct", "battery_replace_date", "battery_last_replaced", "battery_replace_needed")
    return {k: v for k in keep if isinstance(v := point.fields.get(k), (int, float, str)) and not isinstance(v, bool)}


def _ups_on_battery(point: Point, ctx: RuleContext) -> list[Sample]:
    if point.measurement != "device" or (value := _num(point, "ups_on_battery")) is None or not (who := _device(point)):
        return []
    return [Sample(who, point.tags.get("site", ""), value, _ups_facts(point))]


def _ups_battery_low(point: Point, ctx: RuleContext) -> list[Sample]:
    """Minutes of runtime left; 0 when the UPS itself says its battery is low or depleted.

    Minutes rather than charge: what matters is how long the machines behind it keep running,
    and a worn battery at 100 % charge may hold them for only a few minutes."""
    if point.measurement != "device" or not (who := _device(point)):
        return []
    minutes, low = _num(point, "ups_minutes_left"), _num(point, "ups_battery_low")
    if low == 1.0:
        minutes = 0.0
    if minutes is None:
        return []
    return [Sample(who, point.tags.get("site", ""), minutes, _ups_facts(point))]


def _ups_battery_replace(point: Point, ctx: RuleContext) -> list[Sample]:
    """1 when the UPS says its battery needs replacing, or the date it recommends has come."""
    if point.measurement != "device" or not (who := _device(point)):
        return []
    needed, due = _num(point, "battery_replace_needed"), point.fields.get("battery_replace_date")
    if needed is None and not isinstance(due, str):
        return []
    day = dt.datetime.fromtimestamp(point.time_ns / 1e9, dt.timezone.utc).date().isoformat()
    replaced = point.fields.get("battery_last_replaced")
    # ISO dates compare as text; a date the poller could not read is never written (docs/metrics.md).
    stale = replace_date_stale(due, replaced)
    value = 1.0 if needed == 1.0 or (isinstance(due, str) and due <= day and not stale) else 0.0
    return [Sample(who, point.tags.get("site", ""), value, _ups_facts(point))]


def _describe_ups(facts: Mapping[str, float | str], lang: str) -> str:
    words = texts.of(lang).rule_details
    parts = []
    seconds, minutes, charge = (facts.get(k) for k in ("ups_seconds_on_battery", "ups_minutes_left", "ups_charge_pct"))
    if isinstance(seconds, float) and seconds > 0:
        parts.append(words["ups_for"].format(minutes=seconds / 60))
    if isinstance(minutes, float):
        parts.append(words["ups_minutes_left"].format(minutes=minutes))
    if isinstance(charge, float):
        parts.append(words["ups_charge"].format(pct=charge))
    return ", ".join(parts)


def _describe_battery(facts: Mapping[str, float | str], lang: str) -> str:
    words = texts.of(lang).rule_details
    parts = []
    if facts.get("battery_replace_needed") == 1.0:
        parts.append(words["ups_replace_indicator"])
    stale = replace_date_stale(facts.get("battery_replace_date"), facts.get("battery_last_replaced"))
    for key, word in (("battery_replace_date", "ups_replace_date"), ("battery_last_replaced", "ups_last_replaced")):
        if isinstance(value := facts.get(key), str) and not (stale and key == "battery_replace_date"):
            try:
                parts.append(words[word].format(date=i18n.date(dt.date.fromisoformat(value), lang)))
            except ValueError:
                parts.append(words[word].format(date=value))
    return ", ".join(parts)


def _summary(kind: str) -> Mapping[str, str]:
    """The summary of rule kind `kind` in each language, from collector/texts."""
    return texts.in_each_language(lambda catalog: catalog.rule_summaries[kind])


RULE_KINDS: Mapping[str, RuleKind] = MappingProxyType({
    "agent_silent": RuleKind(
        "availability", _field("availability", "up", _tag("host"), kind="agent"), "below", 0.5, None,
        _summary("agent_silent"),
    ),
    "agent_never_reported": RuleKind(
        # No `up` before the first report: nobody calls it down; after `threshold` seconds of waiting
        # (default an hour) someone should look at the machine or its token.
        "availability", _field("availability", "waiting_s", _tag("host"), kind="agent"), "above", 3600.0, None,
        _summary("agent_never_reported"),
    ),
    "device_down": RuleKind(
        "availability", _field("availability", "up", _tag("device"), kind="device"), "below", 0.5, None,
        _summary("device_down"),
    ),
    "target_unreachable": RuleKind(
        "probe", _field("probe", "up", _target), "below", 0.5, None,
        _summary("target_unreachable"),
    ),
    "probe_latency": RuleKind(
        "probe", _probe_latency, "above", 200.0, 150.0,
        _summary("probe_latency"),
    ),
    "probe_loss": RuleKind(
        "probe", _field("probe", "loss_pct", _target), "above", 20.0, 5.0,
        _summary("probe_loss"),
    ),
    "interface_down": RuleKind(
        "interface", _interface_down, "below", 0.5, None,
        _summary("interface_down"),
    ),
    "interface_util": RuleKind(
        "interface", _interface_max(("in_util_pct", "out_util_pct")), "above", 90.0, 75.0,
        _summary("interface_util"),
    ),
    "interface_errors": RuleKind(
        "interface", _interface_max(("in_errors_ps", "out_errors_ps")), "above", 10.0, 1.0,
        _summary("interface_errors"),
    ),
    "host_cpu": RuleKind(
        "host", _field("host", "cpu_pct", _tag("host")), "above", 95.0, 80.0,
        _summary("host_cpu"),
    ),
    "host_mem": RuleKind(
        "host", _field("host", "mem_used_pct", _tag("host")), "above", 95.0, 85.0,
        _summary("host_mem"),
    ),
    "host_disk": RuleKind(
        "host_disk", _field("host_disk", "used_pct", _disk), "above", 90.0, 85.0,
        _summary("host_disk"),
    ),
    "vpn_tunnel_down": RuleKind(
        "device", _vpn_down, "above", 1.0, None,
        _summary("vpn_tunnel_down"),
    ),
    "collector_dropping": RuleKind(
        "collector", _field("collector", "dropped_points", _tag("collector")), "above", 1.0, None,
        _summary("collector_dropping"),
        delta=True,
    ),
    "printer_supply_low": RuleKind(
        "printer_supply", _field("printer_supply", "left_pct", _supply), "below", 10.0, 20.0,
        _summary("printer_supply_low"),
    ),
    "printer_error": RuleKind(
        "device", _printer_stopped, "above", 1.0, None,
        _summary("printer_error"), describe=_describe_printer,
    ),
    "ups_on_battery": RuleKind(
        "device", _ups_on_battery, "above", 1.0, None,
        _summary("ups_on_battery"), describe=_describe_ups,
    ),
    "ups_battery_low": RuleKind(
        "device", _ups_battery_low, "below", 10.0, 15.0,
        _summary("ups_battery_low"), describe=_describe_ups,
    ),
    "ups_battery_replace": RuleKind(
        "device", _ups_battery_replace, "above", 1.0, None,
        _summary("ups_battery_replace"), describe=_describe_battery,
    ),
    # For InfluxDB storage: with `storage.kind = "local"` the queue is the store and only grows.
    "collector_backlog": RuleKind(
        "collector", _field("collector", "queue_age_s", _tag("collector")), "above", 600.0, 60.0,
        _summary("collector_backlog"),
    ),
})

# The site alert is built by the engine from the uplink and members, not from one point,
# but it is configured like any rule (severity, for_s, summary).
SITE_RULE = "site_unreachable"
# One-off events (no state to resolve) that routes, windows and silences may name like rules.
EVENT_RULES = ("config_change", "ssh_host_key_changed", "lifecycle_digest", "inventory_reload_failed", "shared_account_login")
SITE_TEXT = _summary(SITE_RULE)
