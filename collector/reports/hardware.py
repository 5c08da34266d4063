"""`nettvakt report hardware`: what the machine park costs to renew, year by year.

The plan comes from the inventory (`collector.lifecycle.plan_fields`: lifetime per kind or per
item, due year, replacement cost). Where the inventory has no purchase date, the age is taken
from what the machine said about itself (`agent.hwfacts.machine_age`: BIOS date, else OS
install date) and the due year is marked as an estimate; where neither exists the age is
unknown, and the report says why. Memory and disk come from the agents' `hardware`, `host`
and `host_disk` points and are compared with `RESOURCE_MINIMUMS`.

The forecast counts each item in its due year (items already past due in the first budget
year) and again one lifetime later if that falls within the five years, at today's cost.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent.hwfacts import machine_age
from collector import texts
from collector.config import Hardware, Inventory
from collector.lifecycle import BATTERY_KIND, BatterySource, battery_plan, has_battery, plan_fields
from collector.timeseries import Sample, counter_increase
from collector.lifecycle import DAYS_PER_YEAR
from collector.reports import i18n
from collector.reports.render import ALERT_COLOUR, BAR_COLOUR, BarSeries, Chart, Column, Document, Row, Table

FORECAST_YEARS = 5
GIB = 1024**3
GB = 1000**3
DAYS_PER_MONTH = 30.44
# Pages per month are said from at least a day of page counts (scaled to a month), never from less.
MIN_PAGE_SPAN_S = 86400.0


@dataclass(frozen=True)
class Minimums:
    """What a machine of a kind needs today to run current Windows and office software."""

    mem_gib: float
    disk_gb: float


# Data, not code: a kind without an entry is not checked (switches have no disk to speak of).
RESOURCE_MINIMUMS: dict[str, Minimums] = {
    "pc": Minimums(mem_gib=8, disk_gb=128),
    "laptop": Minimums(mem_gib=8, disk_gb=128),
    "server": Minimums(mem_gib=16, disk_gb=240),
}

AgeSource = Literal["purchased", "bios_date", "os_installed"]
# Why an age is unknown; the words are the catalog's hardware_report (collector/texts).
UnknownReason = Literal["no_facts_agent", "no_facts_device", "virtual", "no_dates", "facts_unavailable"]
Status = Literal["past_due", "due", "later", "unknown"]


@dataclass(frozen=True)
class Observed:
    """What the agent (or SNMP/SSH) reported about one machine: the latest of each."""

    facts: Mapping[str, Any] = field(default_factory=dict)  # fields of the latest `hardware` point
    mem_total_bytes: float | None = None  # from `host` when facts lack it
    disk_total_bytes: float | None = None  # the largest file system (`host_disk`)
    device: Mapping[str, Any] = field(default_factory=dict)  # the latest of each `device` field (printers, UPSes)
    pages_per_month: float | None = None  # printers: page counter increase over the window, per 30.44 days


@dataclass
class HardwareItem:
    # A UPS's battery is an item of its own ("battery", id "<device>/battery"): its own due date and cost.
    table: Literal["device", "agent", "battery"]
    id: str
    name: str
    site: str
    site_name: str
    department: str | None
    kind: str
    model: str | None
    purchased: dt.date | None
    age_years: float | None
    age_source: AgeSource | None
    unknown_reason: UnknownReason | None
    lifetime_years: float | None
    due_year: int | None
    due_estimated: bool
    cost_nok: float | None
    mem_gib: float | None
    disk_gb: float | None
    low: list[str]  # "mem", "disk": below RESOURCE_MINIMUMS
    status: Status
    # Years of the forecast window in which this item is bought (past due: the first year).
    replaced_in: list[int] = field(default_factory=list)
    due_date: dt.date | None = None  # batteries: the day, where the UPS or the plan gives one
    battery_source: BatterySource | None = None
    pages_per_month: float | None = None  # printers
    pages_total: float | None = None  # printers: the counter as last read

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table, "id": self.id, "name": self.name, "site": self.site, "site_name": self.site_name, "department": self.department,
            "kind": self.kind, "model": self.model,
            "purchased": self.purchased.isoformat() if self.purchased else None,
            "age_years": self.age_years, "age_source": self.age_source, "unknown_reason": self.unknown_reason,
            "lifetime_years": self.lifetime_years, "due_year": self.due_year, "due_estimated": self.due_estimated,
            "replacement_cost_nok": self.cost_nok, "mem_gib": self.mem_gib, "disk_gb": self.disk_gb,
            "low_resources": self.low, "status": self.status, "replaced_in": self.replaced_in,
            "due_date": self.due_date.isoformat() if self.due_date else None, "battery_source": self.battery_source,
            "pages_per_month": self.pages_per_month, "pages_total": self.pages_total,
        }


@dataclass
class ForecastYear:
    year: int
    units: int = 0
    cost_nok: float = 0.0
    past_due_units: int = 0
    past_due_cost_nok: float = 0.0
    kinds: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "year": self.year, "units": self.units, "cost_nok": self.cost_nok,
            "past_due_units": self.past_due_units, "past_due_cost_nok": self.past_due_cost_nok,
            "kinds": dict(sorted(self.kinds.items())),
        }


@dataclass
class HardwareReport:
    organisation: str
    generated: dt.date
    first_year: int
    currency: str
    items: list[HardwareItem]
    forecast: list[ForecastYear]
    minimums: Mapping[str, Minimums]
    # Why observed facts could not be read (None: read, or not asked for).
    facts_error: str | None = None

    @property
    def past_due(self) -> list[HardwareItem]:
        return sorted((i for i in self.items if i.status == "past_due"), key=lambda i: (i.due_year or 0, i.site, i.id))

    @property
    def unknown(self) -> list[HardwareItem]:
        return [i for i in self.items if i.status == "unknown"]

    @property
    def low_resources(self) -> list[HardwareItem]:
        return [i for i in self.items if i.low]

    @property
    def printers(self) -> list[HardwareItem]:
        return [i for i in self.items if i.table == "device" and i.kind == "printer"]

    @property
    def batteries(self) -> list[HardwareItem]:
        return sorted((i for i in self.items if i.table == "battery"), key=lambda i: (i.due_date or dt.date.max, i.id))

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "hardware",
            "organisation": self.organisation,
            "generated": self.generated.isoformat(),
            "first_year": self.first_year,
            "currency": self.currency,
            "grouping": ["site", "department", "kind"],
            "past_due": [i.id for i in self.past_due],
            "forecast": [f.to_json() for f in self.forecast],
            "forecast_total_nok": sum(f.cost_nok for f in self.forecast),
            "items": [i.to_json() for i in self.items],
            "minimums": {k: {"mem_gib": m.mem_gib, "disk_gb": m.disk_gb} for k, m in self.minimums.items()},
            "facts_error": self.facts_error,
        }


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


# Which fact each of machine_age's observed sources rests on.
_SOURCE_FACT: dict[AgeSource, str] = {"bios_date": "manufactured_estimate", "os_installed": "os_installed"}


def _estimated_purchase(facts: Mapping[str, Any], today: dt.date) -> tuple[dt.date | None, AgeSource | None]:
    """The date `machine_age` bases its answer on, when it is a firmware or OS date."""
    source = machine_age(facts, None, today).get("age_source")
    for candidate, key in _SOURCE_FACT.items():
        if source == candidate:
            return dt.date.fromisoformat(str(facts[key])), candidate
    return None, None


def _entries(inventory: Inventory) -> Iterable[tuple[Literal["device", "agent"], str, str, str, Hardware]]:
    for d in inventory.device:
        yield "device", d.id, d.name, d.site, d.hardware
    for a in inventory.agent:
        if a.hardware is not None:
            yield "agent", a.id, a.name, a.site, a.hardware


def _schedule(forecast: Mapping[int, ForecastYear], first_year: int, kind: str, due_year: int | None,
              bought_year: int | None, cost: float | None) -> tuple[Status, list[int]]:
    """The item's status, and the years of the window it is bought in (counted into `forecast`)."""
    replaced_in: list[int] = []
    if due_year is None:
        return "unknown", replaced_in
    status: Status = "past_due" if due_year < first_year else "due" if due_year in forecast else "later"
    # One lifetime after each purchase, again within the window (at today's cost).
    cycle = max(1, due_year - bought_year) if bought_year else FORECAST_YEARS
    year = max(due_year, first_year)
    while year in forecast:
        replaced_in.append(year)
        year += cycle
    for n, year in enumerate(replaced_in):
        f = forecast[year]
        f.units += 1
        f.cost_nok += float(cost or 0.0)
        f.kinds[kind] += 1
        if n == 0 and status == "past_due":
            f.past_due_units += 1
            f.past_due_cost_nok += float(cost or 0.0)
    return status, replaced_in


def _battery_item(inventory: Inventory, device: str, name: str, site: str, site_name: str, hardware: Hardware,
                  seen: Observed | None, today: dt.date, forecast: Mapping[int, ForecastYear], first_year: int) -> HardwareItem:
    """The battery of UPS `device` as an item of the plan, dated by the UPS where it says (battery_plan)."""
    plan = battery_plan(inventory, hardware, seen.device if seen else None)
    due_year = plan.due.year if plan.due else None
    # A cycle of the battery's own lifetime, from the year it went in (or, dated by the UPS, from its due date).
    bought = plan.replaced.year if plan.replaced else (due_year - round(plan.lifetime_years) if due_year else None)
    status, replaced_in = _schedule(forecast, first_year, BATTERY_KIND, due_year, bought, plan.cost_nok)
    age = round((today - plan.replaced).days / DAYS_PER_YEAR, 2) if plan.replaced else None
    return HardwareItem(
        table="battery", id=f"{device}/battery", name=name, site=site, site_name=site_name,
        department=hardware.department, kind=BATTERY_KIND, model=None, purchased=plan.replaced, age_years=age,
        age_source=None, unknown_reason=None if plan.source else "no_dates", lifetime_years=plan.lifetime_years,
        due_year=due_year, due_estimated=plan.source == "purchased", cost_nok=plan.cost_nok, mem_gib=None, disk_gb=None,
        low=[], status=status, replaced_in=replaced_in, due_date=plan.due, battery_source=plan.source,
    )


def build_hardware_report(
    inventory: Inventory,
    first_year: int,
    today: dt.date,
    observed: Mapping[tuple[str, str], Observed] | None = None,
    minimums: Mapping[str, Minimums] = RESOURCE_MINIMUMS,
    facts_error: str | None = None,
) -> HardwareReport:
    """The report's model. `observed` is keyed by ("device"|"agent", id)."""
    observed = observed or {}
    sites = {s.id: s.name for s in inventory.site}
    window = range(first_year, first_year + FORECAST_YEARS)
    forecast = {y: ForecastYear(y) for y in window}
    items: list[HardwareItem] = []
    for table, ident, name, site, hardware in _entries(inventory):
        seen = observed.get((table, ident))
        facts = seen.facts if seen else {}
        purchased = hardware.purchased
        source: AgeSource | None = None
        reason: UnknownReason | None = None
        estimated = False
        if purchased is not None:
            source = "purchased"
        elif facts:
            purchased, source = _estimated_purchase(facts, today)
            estimated = purchased is not None
            if purchased is None:
                reason = "virtual" if facts.get("virtual") == 1.0 else "no_dates"
        elif facts_error is not None:
            reason = "facts_unavailable"
        else:
            reason = "no_facts_agent" if table == "agent" else "no_facts_device"
        plan_hw = hardware.model_copy(update={"purchased": purchased}) if estimated else hardware
        fields, due_year = plan_fields(inventory, plan_hw, today)
        cost, lifetime, age = (_float(fields.get(k)) for k in ("replacement_cost_nok", "lifetime_years", "age_years"))

        mem = _float(facts.get("mem_total_bytes")) or (seen.mem_total_bytes if seen else None)
        disk = seen.disk_total_bytes if seen else None
        need = minimums.get(hardware.kind)
        low = []
        if need is not None and mem is not None and mem / GIB < need.mem_gib:
            low.append("mem")
        if need is not None and disk is not None and disk / GB < need.disk_gb:
            low.append("disk")

        status, replaced_in = _schedule(forecast, first_year, hardware.kind, due_year, purchased.year if purchased else None, cost)

        items.append(HardwareItem(
            table=table, id=ident, name=name, site=site, site_name=sites.get(site, site),
            department=hardware.department, kind=hardware.kind,
            model=hardware.model or (str(facts["model"]) if facts.get("model") else None),
            purchased=purchased, age_years=age, age_source=source, unknown_reason=reason,
            lifetime_years=lifetime, due_year=due_year, due_estimated=estimated,
            cost_nok=cost, mem_gib=round(mem / GIB, 1) if mem is not None else None,
            disk_gb=round(disk / GB) if disk is not None else None,
            low=low, status=status, replaced_in=replaced_in,
            pages_per_month=seen.pages_per_month if seen else None,
            pages_total=_float(seen.device.get("pages_total")) if seen else None,
        ))
        if table == "device" and has_battery(hardware):
            items.append(_battery_item(inventory, ident, name, site, sites.get(site, site), hardware, seen, today, forecast, first_year))
    site_order = {s.id: n for n, s in enumerate(inventory.site)}
    items.sort(key=lambda i: (site_order.get(i.site, len(site_order)), i.site, i.department or "", i.kind, i.id))
    return HardwareReport(
        organisation=inventory.organisation, generated=today, first_year=first_year,
        currency=inventory.lifecycle.currency, items=items, forecast=[forecast[y] for y in window],
        minimums=minimums, facts_error=facts_error,
    )


# ------------------------------------------------------------------------------- sources
def observed_from_points(
    hardware: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]],
    host: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]] = (),
    host_disk: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]] = (),
    device: Iterable[Sample] = (),
) -> dict[tuple[str, str], Observed]:
    """Observed facts per machine from (tags, fields) of points in time order (the last wins);
    `device` are the `device` samples of printers and UPSes (their page counts and battery dates)."""
    facts: dict[tuple[str, str], dict[str, Any]] = {}
    mem: dict[tuple[str, str], float] = {}
    disks: dict[tuple[str, str], dict[str, float]] = {}

    def key(tags: Mapping[str, str]) -> tuple[str, str] | None:
        if tags.get("host"):
            return "agent", tags["host"]
        if tags.get("device"):
            return "device", tags["device"]
        return None

    for tags, fields in hardware:
        if (k := key(tags)) is not None:
            facts.setdefault(k, {}).update(fields)
    for tags, fields in host:
        if (k := key(tags)) is not None and isinstance(fields.get("mem_total_bytes"), (int, float)):
            mem[k] = float(fields["mem_total_bytes"])
    for tags, fields in host_disk:
        if (k := key(tags)) is not None and isinstance(fields.get("total_bytes"), (int, float)):
            disks.setdefault(k, {})[tags.get("mount", "")] = float(fields["total_bytes"])
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    pages: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for sample in device:
        if (k := key(sample.tags)) is not None:
            latest.setdefault(k, {}).update(sample.fields)
            if isinstance(count := sample.fields.get("pages_total"), float):
                pages.setdefault(k, []).append((sample.time_ns, count))
    out = {}
    for k in set(facts) | set(mem) | set(disks) | set(latest):
        sizes = disks.get(k)
        out[k] = Observed(facts=facts.get(k, {}), mem_total_bytes=mem.get(k), disk_total_bytes=max(sizes.values()) if sizes else None,
                          device=latest.get(k, {}), pages_per_month=pages_per_month(pages.get(k, [])))
    return out


def pages_per_month(counts: list[tuple[int, float]]) -> float | None:
    """Pages a month from (time_ns, page counter) readings in time order, across counter resets;
    None from less than a day of readings."""
    if len(counts) < 2 or (span_s := (counts[-1][0] - counts[0][0]) / 1e9) < MIN_PAGE_SPAN_S:
        return None
    return round(counter_increase(c for _, c in counts) * DAYS_PER_MONTH * 86400.0 / span_s)


def _names(items: Iterable[HardwareItem], limit: int = 8) -> str:
    ids = [i.id for i in items]
    return ", ".join(ids[:limit]) + (f" (+{len(ids) - limit})" if len(ids) > limit else "")


def _remark(item: HardwareItem, report: HardwareReport, lang: str) -> str:
    w = texts.of(lang).hardware_report
    parts = []
    if item.unknown_reason:
        parts.append(w[f"r_{item.unknown_reason}"])
    if item.due_estimated:
        parts.append(w["estimated"])
    need = report.minimums.get(item.kind)
    for what in item.low:
        assert need is not None
        parts.append(w[f"low_{what}"].format(need=i18n.number(need.mem_gib if what == "mem" else need.disk_gb, lang)))
    return "; ".join(parts)


def hardware_document(report: HardwareReport, lang: str) -> Document:
    w = texts.of(lang).hardware_report
    cur = report.currency
    first, last = report.first_year, report.first_year + FORECAST_YEARS - 1
    fmt_money = lambda v: i18n.money(v, lang, cur)  # noqa: E731
    kinds = Counter(i.kind for i in report.items)
    summary = [w["s_items"].format(n=len(report.items), kinds=", ".join(i18n.kind_count(n, k, lang) for k, n in sorted(kinds.items())))]
    past_due = report.past_due
    if past_due:
        summary.append(w["s_past_due"].format(
            n=len(past_due), first=first, cost=fmt_money(sum(i.cost_nok or 0 for i in past_due)), names=_names(past_due)
        ))
    else:
        summary.append(w["s_none_past_due"].format(first=first))
    peak = max(report.forecast, key=lambda f: f.cost_nok)
    summary.append(w["s_forecast"].format(
        first=first, last=last, units=sum(f.units for f in report.forecast),
        cost=fmt_money(sum(f.cost_nok for f in report.forecast)), peak_year=peak.year, peak_cost=fmt_money(peak.cost_nok),
    ))
    if report.unknown:
        summary.append(w["s_unknown"].format(n=len(report.unknown), names=_names(report.unknown)))
    if report.low_resources:
        summary.append(w["s_low"].format(n=len(report.low_resources), names=_names(report.low_resources)))

    def source(item: HardwareItem) -> str:
        return w[f"src_{item.age_source or 'none'}"]

    past_due_table = Table(
        title=f"{w['past_due']} ({w['due'].lower()} < {first})",
        columns=[
            Column(w["site"]), Column(w["id"]), Column(w["name"]), Column(w["kind"]), Column(w["model"]),
            Column(w["purchased"], "date"), Column(w["age"], "years"), Column(w["source"]),
            Column(w["due"], "year"), Column(w["cost"], "money"),
        ],
        rows=[
            Row([i.site_name, i.id, i.name, i18n.kind_name(i.kind, lang), i.model, i.purchased, i.age_years, source(i), i.due_year, i.cost_nok], strong=True)
            for i in past_due
        ],
        empty_text=w["none"],
    )
    chart = Chart(
        title=f"{w['chart']} {first}\u2013{last}",
        categories=[str(f.year) for f in report.forecast],
        series=[
            BarSeries(w["chart_planned"], [f.cost_nok - f.past_due_cost_nok for f in report.forecast], BAR_COLOUR),
            BarSeries(w["chart_due"], [f.past_due_cost_nok for f in report.forecast], ALERT_COLOUR),
        ],
        ylabel=w["chart_y"] if cur == "NOK" else cur,
    )
    forecast_table = Table(
        title=f"{w['forecast']} {first}\u2013{last}",
        columns=[
            Column(w["year"], "year"), Column(w["units"], "int"), Column(w["cost"], "money"),
            Column(w["of_past_due"], "int"), Column(w["kinds"]),
        ],
        rows=[
            Row([f.year, f.units, f.cost_nok, f.past_due_units,
                 ", ".join(i18n.kind_count(n, k, lang) for k, n in sorted(f.kinds.items()))], strong=bool(f.past_due_units))
            for f in report.forecast
        ],
    )
    def group_of(item: HardwareItem) -> str:
        return f"{item.site_name} / {item.department}" if item.department else item.site_name

    group_labels = {}
    for group in dict.fromkeys(group_of(i) for i in report.items):
        members = [i for i in report.items if group_of(i) == group]
        group_labels[group] = w["group"].format(site=group, units=i18n.count(len(members), "unit", lang), cost=fmt_money(sum(i.cost_nok or 0 for i in members)))
    all_table = Table(
        title=w["all"],
        columns=[
            Column(w["id"]), Column(w["name"]), Column(w["kind"]), Column(w["model"]), Column(w["purchased"], "date"),
            Column(w["age"], "years"), Column(w["source"]), Column(w["lifetime"], "years"), Column(w["due"], "year"),
            Column(w["cost"], "money"), Column(w["status"]), Column(w["remark"]),
        ],
        rows=[
            Row(
                [i.id, i.name, i18n.kind_name(i.kind, lang), i.model, i.purchased, i.age_years, source(i),
                 i.lifetime_years, i.due_year, i.cost_nok, w[f"st_{i.status}"], _remark(i, report, lang)],
                group=group_of(i), strong=i.status == "past_due",
            )
            for i in report.items
        ],
        group_title=w["site_department"],
        group_labels=group_labels,
    )
    blocks: list[Table | Chart] = [past_due_table, chart, forecast_table, all_table]
    if report.batteries:
        blocks.append(Table(
            title=w["batteries"],
            columns=[
                Column(w["site"]), Column(w["ups"]), Column(w["name"]), Column(w["replaced"], "date"),
                Column(w["lifetime"], "years"), Column(w["due_date"], "date"), Column(w["battery_source"]),
                Column(w["cost"], "money"), Column(w["status"]),
            ],
            rows=[
                Row([i.site_name, i.id.removesuffix("/battery"), i.name, i.purchased, i.lifetime_years, i.due_date,
                     w[f"bs_{i.battery_source or 'none'}"], i.cost_nok, w[f"st_{i.status}"]], strong=i.status == "past_due")
                for i in report.batteries
            ],
            note=w["n_battery"],
        ))
    if report.printers:
        blocks.append(Table(
            title=w["printers"],
            columns=[
                Column(w["site"]), Column(w["id"]), Column(w["name"]), Column(w["model"]), Column(w["age"], "years"),
                Column(w["pages_month"], "int"), Column(w["pages_total"], "int"), Column(w["due"], "year"), Column(w["status"]),
            ],
            rows=[
                Row([i.site_name, i.id, i.name, i.model, i.age_years, i.pages_per_month, i.pages_total, i.due_year, w[f"st_{i.status}"]],
                    strong=i.status == "past_due")
                for i in sorted(report.printers, key=lambda i: -(i.pages_per_month or 0))
            ],
            note=w["n_pages"],
        ))
    low = report.low_resources
    minimums_text = "; ".join(
        f"{i18n.kind_name(k, lang)} {i18n.number(m.mem_gib, lang)} GiB / {i18n.number(m.disk_gb, lang)} GB"
        for k, m in report.minimums.items()
    )
    blocks.append(Table(
        title=w["low"],
        columns=[Column(w["site"]), Column(w["id"]), Column(w["kind"]), Column(w["mem"], "gib"), Column(w["disk"], "gb"), Column(w["remark"])],
        rows=[Row([i.site_name, i.id, i18n.kind_name(i.kind, lang), i.mem_gib, i.disk_gb, _remark(i, report, lang)]) for i in low],
        empty_text=w["none"],
        note=w["n_minimums"].format(minimums=minimums_text),
    ))
    notes = [w["n_grouping"], w["n_forecast"], w["n_age"], w["n_currency"].format(currency=cur)]
    if report.facts_error:
        notes.append(w["n_facts_error"].format(error=report.facts_error))
    return Document(
        lang=lang,
        title=w["title"],
        subtitle=w["subtitle"].format(org=report.organisation, date=i18n.date(report.generated, lang), first=first, last=last),
        summary=summary,
        blocks=blocks,
        notes=notes,
        generated=report.generated,
        currency=cur,
    )
