"""Facts from CLI output: model, serial, firmware, uptime, as `hardware` and `device` points.

Pure functions over text. Each platform's parsers live in a module of their own
(facts_fortios, facts_ios, facts_procurve, facts_linux) and its descriptor in
collector.ssh.platforms lists them as `FactsRecipe`s; this module holds what they share.
Where ntc-templates has a TextFSM template for a command, it does the parsing and our code
only picks and converts fields.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.points import FieldValue, Point, now_ns

# Seconds per unit as devices print durations ("2 years, 31 weeks, 6 days, 9 hours, 55 minutes").
# A year is 365 days, as NAPALM counts it, so our uptime equals its `get_facts` uptime.
_UNIT_S = {"year": 31536000, "week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
_DURATION_PART = re.compile(r"(\d+)\s+(year|week|day|hour|minute|second)s?\b")


class FactsError(ValueError):
    """Output that does not look like the command's output at all."""


@dataclass
class Facts:
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    # Every chassis serial of a stack or VSF, first = the one `serial` names.
    serials: list[str] = field(default_factory=list)
    sw_rev: str | None = None  # the OS/firmware release, e.g. "7.0.7", "15.0(2)SE4", "K.15.06.0017"
    firmware: str | None = None  # the full version line as the device prints it
    fw_rev: str | None = None  # boot ROM / BIOS revision
    hostname: str | None = None
    uptime_s: float | None = None
    ha_state: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    bios_date: str | None = None
    hw_rev: str | None = None
    cpu_model: str | None = None
    cpu_threads: float | None = None
    mem_total_bytes: float | None = None
    # What the device did not tell (e.g. a Linux server without DMI data): reported, not guessed.
    missing: list[str] = field(default_factory=list)

    def merge(self, other: "Facts") -> "Facts":
        """Fill what this one lacks from `other` (e.g. show version first, then show inventory)."""
        for name in self.__dataclass_fields__:
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))
        return self


def duration_s(text: str) -> float | None:
    """'1 year, 22 weeks, 6 days, 9 hours, 38 minutes' -> seconds; None without any unit."""
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return float(sum(int(n) * _UNIT_S[unit] for n, unit in parts))


def textfsm_parse(platform: str, command: str, text: str) -> list[dict[str, object]]:
    """Rows from the ntc-templates template for (platform, command)."""
    from ntc_templates.parse import parse_output  # imported late: loading the index takes a moment
    from textfsm import TextFSMError

    try:
        return parse_output(platform=platform, command=command, data=text)
    except TextFSMError as exc:
        # The templates reject lines they do not know (an error message, or a field a newer
        # release added); say which.
        raise FactsError(f"{platform} `{command}` template rejected the output: {exc}") from None


def text_value(value: object) -> str | None:
    """A parsed field as stripped text; None when it is empty."""
    text = str(value).strip() if value is not None else ""
    return text or None


# --- commands and how to read them ------------------------------------------------------
@dataclass(frozen=True)
class FactsRecipe:
    command: str
    parse: Callable[[str], Facts]
    # A failing optional command (an old IOS without `show inventory`) does not fail the facts.
    required: bool = True


def facts_from_outputs(recipes: Sequence[FactsRecipe], outputs: Mapping[str, str]) -> Facts:
    """Combine the outputs of a platform's facts `recipes` (command -> text) into one Facts."""
    facts = Facts()
    for recipe in recipes:
        text = outputs.get(recipe.command)
        if text is None:
            if recipe.required:
                raise FactsError(f"no output for {recipe.command!r}")
            continue
        try:
            facts.merge(recipe.parse(text))
        except FactsError:
            if recipe.required:
                raise
    return facts


def facts_points(facts: Facts, *, device: str, site: str, kind: str = "network", time_ns: int | None = None) -> list[Point]:
    """`hardware` (tags site, device, kind) and `device` (tags site, device) points, per docs/metrics.md."""
    ts = time_ns if time_ns is not None else now_ns()
    hw: dict[str, FieldValue] = {}
    for name in (
        "model", "serial", "vendor", "sw_rev", "fw_rev", "hw_rev", "os_name", "os_version", "bios_date",
        "cpu_model", "cpu_threads", "mem_total_bytes",
    ):
        value = getattr(facts, name)
        if value:
            hw[name] = value
    if len(facts.serials) > 1:
        hw["serials"] = ",".join(facts.serials)
    dev: dict[str, FieldValue] = {}
    if facts.firmware:
        dev["firmware"] = facts.firmware
    if facts.uptime_s is not None:
        dev["uptime_s"] = facts.uptime_s
    if facts.ha_state:
        dev["ha_state"] = facts.ha_state
    points = []
    if hw:
        points.append(Point("hardware", {"site": site, "device": device, "kind": kind}, hw, ts))
    if dev:
        points.append(Point("device", {"site": site, "device": device}, dev, ts))
    return points
