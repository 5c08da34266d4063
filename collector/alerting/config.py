"""Inventory models for alerting: `[alerting]` settings, `[[alert]]` rules, `[[maintenance]]` windows.

Built like collector/config.py (unknown keys rejected, errors name the TOML path); the
lead hooks `alert` and `maintenance` into `Inventory` and calls `alerting_problems`
from `Inventory.cross_check`.
"""

from __future__ import annotations

import datetime as dt
import string
import zoneinfo
from typing import Literal

from pydantic import Field, field_validator, model_validator

from collector.alerting.rules import EVENT_RULES, RULE_KINDS, SITE_RULE
from collector.models import Model, Slug
from collector.texts import DEFAULT_LANGUAGE, Lang
from collector.problems import did_you_mean, unknown_references


Severity = Literal["info", "warning", "critical"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Variables a summary template may use; an unknown one is a config error, not a runtime KeyError.
TEMPLATE_VARS = frozenset({"subject", "site", "site_name", "value", "threshold", "rule", "severity", "since", "affected", "affected_machines", "detail"})


def template_variables(template: str) -> set[str]:
    names = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name is not None:
            names.add(name.split(".")[0].split("[")[0])
    return names


def template_problem(template: str, known: frozenset[str]) -> str | None:
    """Why `template` cannot be filled from `known` variables (None: it can); for config validators."""
    try:
        unknown = template_variables(template) - known
    except ValueError as exc:
        return f"template {template!r}: {exc} (a literal brace is written {{{{ or }}}})"
    if unknown:
        return f"template uses unknown variable(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
    return None


class AlertingSettings(Model):
    """`[alerting]`: how the engine talks and waits; the defaults suit a small municipality."""

    language: Lang = DEFAULT_LANGUAGE
    timezone: str = "Europe/Oslo"
    # Alerts that fire within this long go out as one message.
    group_wait_s: float = Field(default=10.0, ge=0, le=3600)
    # After a site is back, its machines get this long to report before their own alerts speak.
    recovery_grace_s: float = Field(default=120.0, ge=0, le=86400)
    # No news of a subject for this long ends its alerts (in history, without a message).
    stale_s: float = Field(default=900.0, gt=0, le=7 * 86400)
    # The monthly lifecycle digest for managers (rule `lifecycle_digest`): day of the month
    # and local time it goes out; `digest_day = 0` turns it off.
    digest_day: int = Field(default=1, ge=0, le=28)
    digest_time: dt.time = dt.time(8, 0)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _known_zone(value)

    def engine_options(self) -> dict[str, object]:
        return self.model_dump(exclude={"digest_day", "digest_time"})


def _known_zone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(value, zoneinfo.available_timezones())
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as 'Europe/Oslo'){hint}") from None
    return value


class AlertRule(Model):
    id: Slug
    kind: str
    severity: Severity = "warning"
    # Defaults per kind come from RULE_KINDS; `clear` is the hysteresis line on the safe side.
    threshold: float | None = None
    clear: float | None = None
    for_s: float = Field(default=0.0, ge=0, le=86400)
    # Empty: every site / subject.
    sites: list[Slug] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    # This many state changes within flap_window_s hold the alert as flapping.
    flap_changes: int = Field(default=4, ge=2, le=100)
    flap_window_s: float = Field(default=600.0, gt=0, le=86400)
    # Overrides [alerting] group_wait_s for this rule's alerts: e.g. one probe interval for
    # target_unreachable, so every agent that lost the same target is in one message.
    group_wait_s: float | None = Field(default=None, ge=0, le=3600)
    summary: str | None = None

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value not in RULE_KINDS and value != SITE_RULE:
            known = sorted([*RULE_KINDS, SITE_RULE])
            raise ValueError(f"unknown rule kind {value!r} (known: {', '.join(known)}){did_you_mean(value, known)}")
        return value

    @field_validator("summary")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return value
        problem = template_problem(value, TEMPLATE_VARS)
        if problem is not None:
            raise ValueError(f"summary {problem}")
        return value

    @model_validator(mode="after")
    def _hysteresis(self) -> "AlertRule":
        kind = RULE_KINDS.get(self.kind)
        if kind is None or self.clear is None:
            return self
        line = self.threshold if self.threshold is not None else kind.threshold
        if kind.direction == "above" and self.clear > line:
            raise ValueError(f"clear ({self.clear}) must not be above threshold ({line}): the alert could never clear")
        if kind.direction == "below" and self.clear < line:
            raise ValueError(f"clear ({self.clear}) must not be below threshold ({line}): the alert could never clear")
        return self

    def limits(self) -> tuple[float, float]:
        """(threshold, clear) with the kind's defaults filled in."""
        kind = RULE_KINDS[self.kind]
        threshold = self.threshold if self.threshold is not None else kind.threshold
        if self.clear is not None:
            return threshold, self.clear
        if self.threshold is None and kind.clear is not None:
            return threshold, kind.clear
        return threshold, threshold


class MaintenanceWindow(Model):
    """One-off (`start`, `end`) or weekly (`weekdays`, `start_time`, `end_time` in `timezone`)."""

    id: Slug
    comment: str | None = None
    # Empty: every site / rule / subject.
    sites: list[Slug] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    subjects: list[str] = Field(default_factory=list)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    weekdays: list[Weekday] = Field(default_factory=list)
    start_time: dt.time | None = None
    end_time: dt.time | None = None
    timezone: str = "Europe/Oslo"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return _known_zone(value)

    @model_validator(mode="after")
    def _one_shape(self) -> "MaintenanceWindow":
        one_off = self.start is not None or self.end is not None
        weekly = bool(self.weekdays) or self.start_time is not None or self.end_time is not None
        if one_off and weekly:
            raise ValueError("a window is either one-off (start, end) or weekly (weekdays, start_time, end_time), not both")
        if one_off:
            if self.start is None or self.end is None:
                raise ValueError("a one-off window needs both start and end")
            if self._aware(self.end) <= self._aware(self.start):
                raise ValueError("end must be after start")
        elif weekly:
            if not self.weekdays or self.start_time is None or self.end_time is None:
                raise ValueError("a weekly window needs weekdays, start_time and end_time")
            if self.start_time == self.end_time:
                raise ValueError("start_time and end_time are equal: the window would be empty")
        else:
            raise ValueError("a window needs start and end, or weekdays with start_time and end_time")
        return self

    def _aware(self, value: dt.datetime) -> dt.datetime:
        # A TOML local date-time (no offset) means local time in `timezone`.
        return value if value.tzinfo is not None else value.replace(tzinfo=zoneinfo.ZoneInfo(self.timezone))

    def active(self, now: float) -> bool:
        """Whether Unix time `now` falls inside the window."""
        if self.start is not None and self.end is not None:
            return self._aware(self.start).timestamp() <= now < self._aware(self.end).timestamp()
        assert self.start_time is not None and self.end_time is not None
        zone = zoneinfo.ZoneInfo(self.timezone)
        local = dt.datetime.fromtimestamp(now, zone)
        # Check the window that began today and the one that began yesterday (it may cross midnight).
        for days_back in (0, 1):
            day = local.date() - dt.timedelta(days=days_back)
            if WEEKDAYS[day.weekday()] not in self.weekdays:
                continue
            begin = dt.datetime.combine(day, self.start_time, zone)
            end_day = day if self.end_time > self.start_time else day + dt.timedelta(days=1)
            end = dt.datetime.combine(end_day, self.end_time, zone)
            if begin.timestamp() <= now < end.timestamp():
                return True
        return False

    def matches(self, site: str, rule: str, subject: str) -> bool:
        return (
            (not self.sites or site in self.sites)
            and (not self.rules or rule in self.rules)
            and (not self.subjects or subject in self.subjects)
        )


def rule_names(rules: list[AlertRule]) -> set[str]:
    """What a route's or window's `rules` entry may name: a rule id or a rule kind."""
    return {r.id for r in rules} | set(RULE_KINDS) | {SITE_RULE} | set(EVENT_RULES)


def alerting_problems(
    rules: list[AlertRule],
    maintenance: list[MaintenanceWindow],
    site_ids: set[str],
    subject_ids: set[str],
) -> list[str]:
    """Cross-table problems for `Inventory.cross_check`, each with its TOML path.

    `subject_ids` are agent, device and probe ids; a subject such as `dev/ifname`,
    `host:/mount` or `target@host` is checked by its leading id.
    """
    problems: list[str] = []
    seen: dict[str, int] = {}
    known_rules = rule_names(rules)
    for i, rule in enumerate(rules):
        if rule.id in seen:
            problems.append(f"alert[{i}].id: {rule.id!r} is already used by an earlier alert")
        seen.setdefault(rule.id, i)
        problems += unknown_references(f"alert[{i}].sites", rule.sites, site_ids, "site with id")
        problems += unknown_references(f"alert[{i}].subjects", map(subject_id, rule.subjects), subject_ids, "agent, device or probe with id")
    seen = {}
    for i, window in enumerate(maintenance):
        if window.id in seen:
            problems.append(f"maintenance[{i}].id: {window.id!r} is already used by an earlier maintenance window")
        seen.setdefault(window.id, i)
        problems += unknown_references(f"maintenance[{i}].sites", window.sites, site_ids, "site with id")
        problems += unknown_references(f"maintenance[{i}].rules", window.rules, known_rules, "alert rule or rule kind")
        problems += unknown_references(f"maintenance[{i}].subjects", map(subject_id, window.subjects), subject_ids, "agent, device or probe with id")
    return problems


def subject_id(subject: str) -> str:
    for sep in ("/", ":", "@"):
        subject = subject.split(sep)[0]
    return subject
