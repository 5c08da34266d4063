"""Rule kinds as one table: name -> how to read a value per subject from the points we already have.

A kind only extracts values; the engine owns thresholds, `for` durations, hysteresis,
flapping and dependencies, the same for every kind (as blackbox_exporter's handler does
for its probers). Config validation checks `kind in RULE_KINDS`; there is no second list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from agent.contract import probe_latency_ms
from agent.points import Point
from collector import texts

Direction = Literal["above", "below"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one subject, read from one point."""

    subject: str
    site: str
    value: float


@dataclass(frozen=True, slots=True)
class RuleContext:
    """What evaluators may know about the inventory beyond the point itself."""

    # (device, ifname) pairs marked important (snmp.important_interfaces).
    important_interfaces: frozenset[tuple[str, str]] = frozenset()


Evaluator = Callable[[Point, RuleContext], list[Sample]]


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
