"""The alert engine: fed the collector's own points, it decides what people are told.

`observe(points)` keeps the newest value per (rule, subject); `evaluate(now)` steps every
alert's state machine (inactive → pending → firing → resolved), folds what sits behind an
unreachable site into one site alert, applies maintenance windows and silences, routes to
channels and groups what fires together. It never reads InfluxDB, so alerts still go out
when storage is down. Time is a plain Unix-seconds float passed in, so tests drive a fake clock.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zoneinfo
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.points import MAX_NAME_LEN, Point
from collector import clock, texts
from collector.alerting.acks import AckStore, ack_json
from collector.alerting.config import AlertRule, MaintenanceWindow
# Re-exported: the service and the tests import Notification and AlertEvent from the engine.
from collector.alerting.notification import SEVERITY_RANK, AlertEvent, EventKind, Notification  # noqa: F401
from collector.alerting.rules import RULE_KINDS, SITE_RULE, SITE_TEXT, RuleContext, RuleKind
from collector.alerting.silences import SilenceStore
from collector.config import Inventory, Route
from collector.reports import i18n

log = logging.getLogger("nettvakt.alerting")

OVERDUE_GRACE_S = 10.0
# A UPS heard on battery this long before its site went quiet explains the outage: office UPSes
# run for minutes to an hour on battery, and the UPS itself goes quiet with the site.
POWER_CUT_LOOKBACK_S = 3600.0


@dataclass(frozen=True, slots=True)
class SiteInfo:
    id: str
    name: str
    uplink: str | None
    agents: tuple[str, ...]
    devices: tuple[str, ...]  # without the uplink

    @property
    def members(self) -> tuple[str, ...]:
        return self.agents + self.devices


@dataclass(frozen=True, slots=True)
class Topology:
    """What the engine needs from the inventory, resolved once."""

    sites: dict[str, SiteInfo]
    names: dict[str, str]  # agent/device id → display name
    routes: tuple[Route, ...]
    context: RuleContext
    intervals: dict[str, float] = field(default_factory=dict)  # agent id → report interval (s)

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> "Topology":
        sites = {}
        for site in inventory.site:
            sites[site.id] = SiteInfo(
                id=site.id,
                name=site.name,
                uplink=site.uplink,
                agents=tuple(a.id for a in inventory.agent if a.site == site.id),
                devices=tuple(d.id for d in inventory.device if d.site == site.id and d.id != site.uplink),
            )
        important = {
            (d.id, ifname) for d in inventory.device if d.snmp is not None for ifname in d.snmp.important_interfaces
        }
        names = {a.id: a.name for a in inventory.agent} | {d.id: d.name for d in inventory.device}
        # Until the collector's availability points say otherwise (`expected_s`), agents keep heartbeats.
        intervals = {a.id: a.heartbeat_s for a in inventory.agent}
        return cls(sites, names, tuple(inventory.route), RuleContext(frozenset(important)), intervals)


@dataclass(slots=True)
class _Observation:
    site: str
    value: float
    time: float
    raw: float | None = None  # last counter reading, for delta kinds
    facts: Mapping[str, float | str] = field(default_factory=dict)  # the kind's evidence (Sample.facts)


@dataclass(slots=True)
class _UpsState:
    """What a UPS last said about its power, for telling a power cut from a network fault."""

    site: str
    on_battery: bool
    since: float  # when it went on battery (its upsSecondsOnBattery before the first poll that saw it)
    minutes_then: float | None  # runtime left at the first poll on battery
    minutes_left: float | None  # runtime left at the latest poll
    seen: float


@dataclass(slots=True)
class _Alert:
    rule: AlertRule
    kind: RuleKind | None  # None for the site alert
    site: str
    subject: str
    state: Literal["inactive", "pending", "firing"] = "inactive"
    since: float = 0.0
    value: float = math.nan
    changes: deque[float] = field(default_factory=deque)
    flapping: bool = False
    flap_said: bool = False
    notified: bool = False  # people were told it fires (or flaps) and not yet that it ended
    last_sent: dict[str, float] = field(default_factory=dict)
    affected: tuple[str, ...] = ()
    summary: str = ""
    seen: float = 0.0  # time of the newest observation
    facts: Mapping[str, float | str] = field(default_factory=dict)  # evidence behind the value (Sample.facts)

    @property
    def key(self) -> tuple[str, str]:
        return (self.rule.id, self.subject)

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule.id, "kind": self.rule.kind, "severity": self.rule.severity,
            "site": self.site, "subject": self.subject, "state": self.state, "since": self.since,
            "value": None if math.isnan(self.value) else self.value, "changes": list(self.changes),
            "flapping": self.flapping, "flap_said": self.flap_said, "notified": self.notified,
            "last_sent": self.last_sent, "affected": list(self.affected), "summary": self.summary, "seen": self.seen,
            "facts": dict(self.facts),
        }


@dataclass(slots=True)
class _Group:
    first: float
    events: list[AlertEvent]
    wait: float  # the longest group wait of the rules in it


def site_down(uplink: bool | None, members: Sequence[bool | None]) -> bool | None:
    """The site rule on what is known of its machines (None: unknown): down when its uplink is
    down, or when two or more of its other members are known and none of them is up (one silent
    machine is that machine's alert); None when nothing is known. `nettvakt report availability`
    applies it to the stored verdicts; the engine adds its early fold (_overdue) on live ones."""
    if uplink is False:
        return True
    known = [m for m in members if m is not None]
    if len(known) >= 2 and not any(known):
        return True
    if uplink is None and not known:
        return None
    return False


DEFAULT_SITE_RULE = AlertRule(id="site-unreachable", kind=SITE_RULE, severity="critical")


class AlertEngine:
    def __init__(
        self,
        inventory: Inventory,
        rules: Sequence[AlertRule],
        maintenance: Sequence[MaintenanceWindow] = (),
        *,
        silences: SilenceStore | None = None,
        acks: AckStore | None = None,
        group_wait_s: float = 10.0,
        recovery_grace_s: float = 120.0,
        stale_s: float = 900.0,
        language: str = "nb",
        timezone: str = "Europe/Oslo",
    ) -> None:
        self.topology = Topology.from_inventory(inventory)
        self.rules = [r for r in rules if r.kind != SITE_RULE]
        self.site_rule = next((r for r in rules if r.kind == SITE_RULE), DEFAULT_SITE_RULE)
        # No rules at all (the service runs for configuration-change messages only): no site alerts either.
        self.judge_sites = bool(rules)
        self._rule_by_id = {r.id: r for r in self.rules}
        # Batches reach 20 000 points: offer each point only to the rules that read its measurement.
        self._by_measurement: dict[str, list[AlertRule]] = {}
        for rule in self.rules:
            self._by_measurement.setdefault(RULE_KINDS[rule.kind].measurement, []).append(rule)
        self.maintenance = list(maintenance)
        self.silences = silences if silences is not None else SilenceStore()
        self.acks = acks if acks is not None else AckStore()
        self.group_wait_s = group_wait_s
        # After a site comes back its machines need a report round to turn up again; their
        # alerts stay folded meanwhile so the "back" message is the only one.
        self.recovery_grace_s = recovery_grace_s
        self.stale_s = stale_s
        self.words = texts.of(language).alert
        self.details = texts.of(language).rule_details
        self.language = language
        self.zone = zoneinfo.ZoneInfo(timezone)
        self._obs: dict[tuple[str, str], _Observation] = {}
        self._ups: dict[str, _UpsState] = {}  # device -> its latest power state
        self._up: dict[str, tuple[bool, float]] = {}  # agent/device id → (up, time)
        self._silent: dict[str, tuple[float, float]] = {}  # agent id → (silent_s, time)
        self._expected: dict[str, float] = {}  # agent id → the gap between signs of life it is held to
        self._alerts: dict[tuple[str, str], _Alert] = {}
        self._recovering: dict[str, float] = {}  # site → folded until
        self._groups: dict[str, _Group] = {}
        self._points: list[Point] = []

    # ------------------------------------------------------------------ input
    def observe(self, points: Iterable[Point]) -> None:
        """Take the points the collector produced or received; cheap, no I/O."""
        ctx = self.topology.context
        for point in points:
            t = point.time_ns / 1e9
            if point.measurement == "availability" and point.tags.get("kind") in ("agent", "device"):
                ident = point.tags.get("host") if point.tags.get("kind") == "agent" else point.tags.get("device")
                up = point.fields.get("up")
                if ident and isinstance(up, (int, float)):
                    seen = self._up.get(ident)
                    if seen is None or seen[1] <= t:
                        self._up[ident] = (up >= 0.5, t)
                        silent = point.fields.get("silent_s")
                        if isinstance(silent, (int, float)):
                            self._silent[ident] = (float(silent), t)
                        expected = point.fields.get("expected_s")
                        if isinstance(expected, (int, float)) and expected > 0:
                            self._expected[ident] = float(expected)
            if point.measurement == "device" and "ups_on_battery" in point.fields:
                self._observe_ups(point, t)
            for rule in self._by_measurement.get(point.measurement, ()):
                kind = RULE_KINDS[rule.kind]
                for sample in kind.evaluate(point, ctx):
                    if (rule.sites and sample.site not in rule.sites) or (rule.subjects and sample.subject not in rule.subjects):
                        continue
                    key = (rule.id, sample.subject)
                    old = self._obs.get(key)
                    if old is not None and old.time > t:
                        continue  # backlog from a spool: history, not the present
                    if kind.delta:
                        raw = sample.value
                        # A counter that went backwards restarted; count from there.
                        value = 0.0 if old is None or old.raw is None or raw < old.raw else raw - old.raw
                        self._obs[key] = _Observation(sample.site, value, t, raw, sample.facts)
                    else:
                        self._obs[key] = _Observation(sample.site, sample.value, t, facts=sample.facts)

    def _observe_ups(self, point: Point, t: float) -> None:
        device, on = point.tags.get("device"), point.fields.get("ups_on_battery")
        if not device or isinstance(on, bool) or not isinstance(on, (int, float)):
            return
        old = self._ups.get(device)
        if old is not None and old.seen > t:
            return  # backlog: history, not the present
        minutes = point.fields.get("ups_minutes_left")
        minutes = float(minutes) if isinstance(minutes, (int, float)) and not isinstance(minutes, bool) else None
        if on < 0.5:
            self._ups[device] = _UpsState(point.tags.get("site", ""), False, t, None, minutes, t)
        elif old is not None and old.on_battery:
            old.minutes_left, old.seen = minutes, t
        else:
            seconds = point.fields.get("ups_seconds_on_battery")
            since = t - float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0 else t
            self._ups[device] = _UpsState(point.tags.get("site", ""), True, since, minutes, minutes, t)

    def _power_cut(self, site: str, quiet_since: float) -> tuple[str, _UpsState] | None:
        """The site's UPS that was on battery when the site went quiet, if any: then the outage is
        the power, not the network (its battery ran out, or it took the network with it)."""
        on_battery = [(d, u) for d, u in self._ups.items()
                      if u.site == site and u.on_battery and u.seen >= quiet_since - POWER_CUT_LOOKBACK_S]
        return max(on_battery, key=lambda du: du[1].seen) if on_battery else None

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, now: float) -> list[Notification]:
        """Step every alert to `now`; return the messages due now (after group wait)."""
        for site in self.topology.sites.values() if self.judge_sites else ():
            bad = self._site_down(site, now)
            key = (self.site_rule.id, site.id)
            if bad is not None:
                self._step_site(site, bad, now)
                if key in self._alerts:
                    self._alerts[key].seen = now
                continue
            alert = self._alerts.get(key)
            if alert is not None and alert.state != "inactive" and now - alert.seen > self.stale_s:
                # Nothing known of the site for a long while (its machines left the inventory): end it.
                self._end_quietly(alert, now)
            # Else nothing is known yet (just after a restart): unknown is not "back", so no resolved
            # message goes out before the site's machines and uplink have been judged again.
        for key, obs in list(self._obs.items()):
            rule = self._rule_by_id[key[0]]
            stale = now - obs.time > self.stale_s
            if stale:
                # A subject nobody reports on any more cannot stay "firing" forever.
                del self._obs[key]
            alert = self._alerts.get(key)
            if alert is None:
                if stale:
                    continue
                alert = self._alerts[key] = _Alert(rule, RULE_KINDS[rule.kind], obs.site, key[1])
            alert.value = obs.value
            alert.facts = obs.facts
            alert.seen = obs.time
            if stale:
                self._end_quietly(alert, now)
            else:
                self._step(alert, self._is_bad(alert, obs.value), now)
        for key, alert in self._alerts.items():
            # Raised before a restart and never reported on since (subject gone from the inventory).
            if alert.kind is not None and key not in self._obs and alert.state != "inactive" and now - alert.seen > self.stale_s:
                self._end_quietly(alert, now)
        for key, alert in list(self._alerts.items()):
            self._decide(alert, now)
            if alert.state == "inactive" and not alert.notified and not alert.flapping and (
                not alert.changes or now - alert.changes[-1] > alert.rule.flap_window_s
            ) and (alert.kind is None or key not in self._obs):
                del self._alerts[key]
        return self._flush(now)

    # ------------------------------------------------------------------ restart
    def snapshot(self) -> dict[str, Any]:
        """What must survive a restart: who was told what, so no firing storm and no lost resolved."""
        return {
            "version": 1,
            "alerts": [a.to_json() for a in self._alerts.values() if a.state != "inactive" or a.notified or a.changes],
            "recovering": dict(self._recovering),
        }

    def restore(self, data: dict[str, Any], now: float) -> int:
        """Take back a snapshot; alerts of rules no longer configured are dropped. Returns how many came back."""
        if data.get("version") != 1:
            log.warning("alert state: unknown snapshot version %r; starting clean", data.get("version"))
            return 0
        restored = 0
        for item in data.get("alerts", []):
            rule = self.site_rule if item["rule"] == self.site_rule.id else self._rule_by_id.get(item["rule"])
            if rule is None:
                continue
            kind = None if rule.kind == SITE_RULE else RULE_KINDS[rule.kind]
            alert = _Alert(rule, kind, item["site"], item["subject"])
            alert.state = item["state"]
            alert.since = float(item["since"])
            alert.value = math.nan if item.get("value") is None else float(item["value"])
            alert.changes = deque(float(t) for t in item.get("changes", []))
            alert.flapping = bool(item.get("flapping"))
            alert.flap_said = bool(item.get("flap_said"))
            alert.notified = bool(item.get("notified"))
            alert.last_sent = {str(k): float(v) for k, v in item.get("last_sent", {}).items()}
            alert.affected = tuple(item.get("affected", ()))
            alert.summary = str(item.get("summary", ""))
            facts = item.get("facts")
            alert.facts = {str(k): v for k, v in facts.items() if isinstance(v, (int, float, str))} if isinstance(facts, dict) else {}
            # Its subject gets a fresh stale_s from now to report again before it counts as gone.
            alert.seen = now
            self._alerts[alert.key] = alert
            restored += 1
        self._recovering = {str(k): float(v) for k, v in data.get("recovering", {}).items()}
        return restored

    def take_points(self) -> list[Point]:
        """`alert` points for every state change since the last call (docs/metrics.md)."""
        points, self._points = self._points, []
        return points

    def firing(self, now: float) -> list[dict[str, Any]]:
        """What fires now, for `nettvakt alerts` and the health page; `muted` says why nobody is told."""
        return [
            {"rule": a.rule.id, "kind": a.rule.kind, "severity": a.rule.severity, "site": a.site, "subject": a.subject,
             "since": a.since, "flapping": a.flapping, "summary": a.summary, "muted": self._muted(a, now),
             **ack_json(self.acks.get(a.rule.id, a.subject, a.since))}
            for a in self._alerts.values() if a.state == "firing" or a.flapping
        ]

    # ------------------------------------------------------------------ sites
    def _site_down(self, site: SiteInfo, now: float) -> bool | None:
        """True when the uplink or every member is down; None when nothing is known."""
        def fresh(ident: str) -> bool | None:
            seen = self._up.get(ident)
            return None if seen is None or now - seen[1] > self.stale_s else seen[0]

        uplink = fresh(site.uplink) if site.uplink else None
        states = [(i, fresh(i)) for i in site.members]
        verdict = site_down(uplink, [m for _, m in states])
        if verdict is not False:
            return verdict
        known = [(i, m) for i, m in states if m is not None]
        # Machines cut off together are judged silent up to one report interval apart. When one
        # is down and every other one has missed a report too (_overdue), it is the site: fold
        # now rather than let the first machine's alert go out alone.
        if len(known) >= 2 and not all(m for _, m in known) and all(not m or self._overdue(i, now) for i, m in known):
            return True
        return False

    def _overdue(self, ident: str, now: float) -> bool:
        """An agent that has missed a report: silent for its interval plus a grace.

        The grace (half an interval, at least OVERDUE_GRACE_S) covers the agent's send cadence and
        the collector's liveness step, so a healthy agent on short intervals is never "overdue".
        """
        seen = self._silent.get(ident)
        interval = self._expected.get(ident, self.topology.intervals.get(ident))
        if seen is None or interval is None:
            return False
        return seen[0] + (now - seen[1]) > interval + max(interval / 2, OVERDUE_GRACE_S)

    def _step_site(self, site: SiteInfo, bad: bool, now: float) -> None:
        key = (self.site_rule.id, site.id)
        alert = self._alerts.get(key)
        if alert is None:
            if not bad:
                return
            alert = self._alerts[key] = _Alert(self.site_rule, None, site.id, site.id)
        alert.affected = tuple(self.topology.names.get(m, m) for m in site.members)
        was_firing = alert.state == "firing"
        self._step(alert, bad, now)
        if was_firing and alert.state == "inactive":
            self._recovering[site.id] = now + self.recovery_grace_s

    def _site_folding(self, site: str, now: float) -> bool:
        alert = self._alerts.get((self.site_rule.id, site))
        if alert is not None and alert.state in ("pending", "firing"):
            return True
        return now < self._recovering.get(site, -math.inf)

    # ------------------------------------------------------------------ state machine
    def _is_bad(self, alert: _Alert, value: float) -> bool:
        assert alert.kind is not None
        threshold, clear = alert.rule.limits()
        above = alert.kind.direction == "above"
        if alert.state != "firing":
            # Pending needs the threshold crossed all through `for_s`, as in Prometheus.
            return value >= threshold if above else value <= threshold
        # Once firing, only crossing the clear line ends it: a value hovering at the threshold stays put.
        return not (value < clear if above else value > clear)

    def _step(self, alert: _Alert, bad: bool, now: float) -> None:
        rule = alert.rule
        if alert.state == "inactive" and bad:
            alert.since = now
            if rule.for_s > 0:
                alert.state = "pending"
                self._record(alert, "pending", now)
            else:
                self._change(alert, "firing", now)
        elif alert.state == "pending":
            if not bad:
                alert.state = "inactive"
            elif now - alert.since >= rule.for_s:
                self._change(alert, "firing", now)
        elif alert.state == "firing" and not bad:
            self._change(alert, "inactive", now)
        window = rule.flap_window_s
        while alert.changes and now - alert.changes[0] > window:
            alert.changes.popleft()
        if not alert.flapping and len(alert.changes) >= rule.flap_changes:
            alert.flapping = True
            log.info("alert %s %s is flapping", rule.id, alert.subject)
        elif alert.flapping and (not alert.changes or now - alert.changes[-1] >= window):
            alert.flapping = False
            alert.flap_said = False
            # Settled: say once where it settled (firing anew, or resolved).
            if alert.state == "firing":
                alert.notified = False
            log.info("alert %s %s settled (%s)", rule.id, alert.subject, alert.state)

    def _end_quietly(self, alert: _Alert, now: float) -> None:
        """No news for stale_s: the alert ends in history, but nobody is told "resolved" on no evidence.

        (An agent gone silent has its own alert; its disk is not fixed because we stopped hearing of it.)
        """
        if alert.state == "firing":
            self._change(alert, "inactive", now)
        alert.state = "inactive"
        alert.notified = False
        alert.flapping = False
        alert.last_sent.clear()

    def _change(self, alert: _Alert, state: Literal["firing", "inactive"], now: float) -> None:
        alert.state = state
        alert.changes.append(now)
        self._record(alert, "firing" if state == "firing" else "resolved", now)

    def _record(self, alert: _Alert, state: str, now: float) -> None:
        alert.summary = self._summary(alert)
        summary = alert.summary
        if state == "resolved" and alert.kind is None:
            summary = self.words["back_text"].format(site_name=self._site_name(alert.site))
        # subject is a tag: alerts of one rule for several machines at the same instant are
        # separate series, not one point overwriting the others. Subjects are inventory ids
        # or device-enumerated names (bounded), cut to the tag length limit.
        tags = {"rule": alert.rule.id, "severity": alert.rule.severity, "state": state, "subject": _tag_value(alert.subject)}
        if alert.site:  # the collector's own alerts belong to no site; an empty tag is not allowed
            tags["site"] = alert.site
        self._points.append(
            Point(
                "alert",
                tags,
                {
                    "active": 1.0 if state == "firing" else 0.0,
                    "summary": summary,
                    "affected": float(len(alert.affected)),
                },
                int(now * 1e9),
            )
        )

    # ------------------------------------------------------------------ noise control
    def _muted(self, alert: _Alert, now: float) -> str | None:
        rule = alert.rule
        for window in self.maintenance:
            if window.matches(alert.site, rule.id, alert.subject) or window.matches(alert.site, rule.kind, alert.subject):
                if window.active(now):
                    return f"maintenance:{window.id}"
        silence = self.silences.muting(now, alert.site, rule.id, rule.kind, alert.subject)
        if silence is not None:
            return f"silence:{silence.id}"
        if alert.kind is not None and self._site_folding(alert.site, now):
            return "site"
        return None

    def notice_channels(self) -> set[str]:
        """The channels of routes that take notices about nettvakt itself (`system_notices = true`)."""
        return {channel for route in self.topology.routes if route.system_notices for channel in route.channels}

    def route(self, site: str, severity: str, rule: str, kind: str | None = None, *, named_only: bool = False) -> dict[str, float]:
        """channel → repeat interval, over every route that matches (site, severity, rule id or kind).

        `named_only`: only routes that name the rule (the monthly digest is not for on-call routes).
        """
        found: dict[str, float] = {}
        for route in self.topology.routes:
            if named_only and not route.rules:
                continue
            if route.sites and site not in route.sites:
                continue
            if route.severities and severity not in route.severities:
                continue
            if route.rules and rule not in route.rules and (kind is None or kind not in route.rules):
                continue
            for channel in route.channels:
                found[channel] = min(found.get(channel, math.inf), route.repeat_interval_s)
        return found

    def _routes(self, alert: _Alert) -> dict[str, float]:
        return self.route(alert.site, alert.rule.severity, alert.rule.id, alert.rule.kind)

    def _decide(self, alert: _Alert, now: float) -> None:
        muted = self._muted(alert, now)
        if alert.flapping:
            if not alert.flap_said and muted is None:
                alert.flap_said = True
                alert.notified = True
                self._enqueue(alert, "flapping", now)
            return
        if alert.state == "firing":
            if muted is not None:
                return
            routes = self._routes(alert)
            if not alert.notified:
                alert.notified = True
                self._enqueue(alert, "firing", now, routes)
            else:
                due = {c: r for c, r in routes.items() if now - alert.last_sent.get(c, now) >= r}
                # Someone on it (nettvakt ack): no repeats. Asked only when one is due, not every round.
                if due and self.acks.get(alert.rule.id, alert.subject, alert.since) is None:
                    self._enqueue(alert, "repeat", now, due)
        elif alert.notified:
            alert.notified = False
            self.acks.remove(alert.rule.id, alert.subject)  # the ack ends with the episode it was about
            # People told of a problem are told it ended, unless they asked for quiet.
            if muted is None or muted == "site":
                # To the channels that were told it fired (routes may have changed since, by a reload).
                told = {c: r for c, r in self._routes(alert).items() if c in alert.last_sent}
                self._enqueue(alert, "resolved", now, told or None)
            alert.last_sent.clear()

    def _enqueue(self, alert: _Alert, event: EventKind, now: float, routes: dict[str, float] | None = None) -> None:
        routes = self._routes(alert) if routes is None else routes
        if not routes:
            log.info("alert %s %s (%s) matches no route", alert.rule.id, alert.subject, event)
            return
        summary = alert.summary or self._summary(alert)
        if event == "flapping":
            summary = self.words["flap_text"].format(summary=summary)
        elif event == "resolved" and alert.kind is None:
            summary = self.words["back_text"].format(site_name=self._site_name(alert.site))
        item = AlertEvent(
            event, alert.rule.id, alert.rule.kind, alert.rule.severity, alert.site, alert.subject, summary,
            alert.since, alert.affected, self._uplink_down(alert) if event != "resolved" else "",
        )
        for channel in routes:
            alert.last_sent[channel] = now
            wait = self.group_wait_s if alert.rule.group_wait_s is None else alert.rule.group_wait_s
            group = self._groups.setdefault(channel, _Group(now, [], wait))
            group.events.append(item)
            group.wait = max(group.wait, wait)

    def _uplink_down(self, alert: _Alert) -> str:
        """For a site alert: the name of its uplink device when that is what is down."""
        site = self.topology.sites.get(alert.site) if alert.kind is None else None
        if site is None or site.uplink is None or self._up.get(site.uplink, (True, 0.0))[0]:
            return ""
        return self.topology.names.get(site.uplink, site.uplink)

    def _flush(self, now: float) -> list[Notification]:
        out = []
        for channel, group in list(self._groups.items()):
            if now - group.first < group.wait:
                continue
            del self._groups[channel]
            events = self._settle(group.events, now)
            if events:
                out.append(self._render(channel, events, now))
        return out

    def _settle(self, events: list[AlertEvent], now: float) -> list[AlertEvent]:
        """Drop what no longer needs saying: fired and resolved within the wait, or folded meanwhile."""
        firing = {e.key for e in events if e.event == "firing"}
        resolved = {e.key for e in events if e.event == "resolved"}
        both = firing & resolved
        kept = []
        for e in events:
            if e.key in both:
                continue
            alert = self._alerts.get(e.key)
            if e.event in ("firing", "repeat") and alert is not None and alert.kind is not None and self._site_folding(e.site, now):
                # Its site went down during the group wait: the site alert speaks for it.
                alert.notified = False
                continue
            kept.append(e)
        return kept

    # ------------------------------------------------------------------ text
    def _site_name(self, site: str) -> str:
        info = self.topology.sites.get(site)
        return info.name if info else site

    def _clock(self, t: float) -> str:
        return clock.local(t, self.zone, "%H:%M")

    def _power_cut_words(self, device: str, ups: _UpsState) -> str:
        """'UPS Vannvåg gikk på batteri 08:02 med 21 min igjen; sist hørt 08:19 med 4 min igjen'."""
        d = self.details
        # The zone is said once, by the site text's {since}.
        hhmm = lambda t: clock.local(t, self.zone, "%H:%M", label=False)  # noqa: E731
        said = d["power_went"].format(ups=self.topology.names.get(device, device), time=hhmm(ups.since))
        if ups.minutes_then is not None:
            said += d["power_minutes"].format(minutes=ups.minutes_then)
        if ups.seen > ups.since:
            said += d["power_last_heard"].format(time=hhmm(ups.seen))
            if ups.minutes_left is not None:
                said += d["power_minutes"].format(minutes=ups.minutes_left)
        return said

    def _summary(self, alert: _Alert) -> str:
        threshold = alert.rule.limits()[0] if alert.kind is not None else math.nan
        name = self.topology.names.get(alert.subject, alert.subject)
        values = {
            "subject": name, "site": alert.site, "site_name": self._site_name(alert.site), "value": alert.value,
            "threshold": threshold, "rule": alert.rule.id, "severity": alert.rule.severity,
            "since": self._clock(alert.since), "affected": len(alert.affected),
            "affected_machines": i18n.count(len(alert.affected), "machine", self.language),
            "detail": alert.kind.describe(alert.facts, self.language) if alert.kind is not None and alert.kind.describe else "",
        }
        cut = self._power_cut(alert.site, alert.since) if alert.kind is None else None
        if alert.kind is None:
            alert.facts = {}  # a site alert's facts are its cause in this episode, if any
        if cut is not None:
            values["detail"] = self._power_cut_words(*cut)
            alert.facts = {"cause": "power_cut", "ups": cut[0], "on_battery_since": cut[1].since, "last_heard": cut[1].seen,
                           **({"minutes_left_then": cut[1].minutes_then} if cut[1].minutes_then is not None else {}),
                           **({"minutes_left_last": cut[1].minutes_left} if cut[1].minutes_left is not None else {})}
        if alert.rule.summary is not None:
            template = alert.rule.summary
        elif cut is not None:
            template = self.details["site_power_cut"]
        elif alert.kind is None:
            template = SITE_TEXT[self.language]
        else:
            template = alert.kind.text[self.language]
        try:
            return template.format(**values)
        except (ValueError, TypeError) as exc:  # e.g. a numeric format on a missing value
            log.warning("alert %s: summary template failed (%s)", alert.rule.id, exc)
            return f"{alert.rule.id}: {name}"

    def _render(self, channel: str, events: list[AlertEvent], now: float) -> Notification:
        w = self.words
        events.sort(key=lambda e: (e.event == "resolved", -SEVERITY_RANK[e.severity], e.site, e.subject))
        if len(events) == 1:
            e = events[0]
            title = f"[{w[e.event]}] {e.summary}"
        else:
            n_resolved = sum(e.event == "resolved" for e in events)
            title = "[nettvakt] " + w["many"].format(n=len(events), firing=len(events) - n_resolved, resolved=n_resolved)
        lines = []
        for e in events:
            lines.append(f"{w[e.event]:<14} {w[e.severity]:<9} {e.summary}")
            if e.uplink:
                lines.append(f"{'':<25}{w['uplink']}: {e.uplink}")
            if e.affected and e.event != "resolved":
                lines.append(f"{'':<25}{w['affected']}: {', '.join(e.affected)}")
        return Notification(channel, title, "\n".join(lines) + "\n", tuple(events), now)


def _tag_value(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else " " for c in text).strip().rstrip("\\") or "-"
    return cleaned[:MAX_NAME_LEN]
