"""The monthly digest for managers: the renewal plan, last month's availability, the lines filling up.

Hardware past its lifetime is a budget matter, not a page: once a month (`[alerting]
digest_day` at `digest_time`, local time) the alert service sends this text as a one-off
event with rule `lifecycle_digest`, so routes decide who gets it (typically a route with
`rules = ["lifecycle_digest"]` to the managers' channel). The renewal numbers come from the same
model as `nettvakt report hardware` (one place for the renewal maths), the capacity part from
`nettvakt report capacity`'s. Availability and capacity are read from the store (InfluxDB or the
local store); when it cannot be read, the digest says so and the renewal plan goes out anyway.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections import defaultdict
from collections.abc import Callable

from agent.secrets import SecretError
from collector import texts
from collector.config import Inventory
from collector.diagnose.analysis import num
from collector.diagnose.data import site_context
from collector.reports import i18n
from collector.reports.availability import read_availability
from collector.reports.capacity import add_months, build_capacity_report, crossing_text, month_start_ns, read_capacity, report_months
from collector.reports.hardware import HardwareItem, build_hardware_report
from collector.rollups import RAW, stored_field
from collector.timeseries import Sample, SeriesSource, SourceError, open_source

DIGEST_RULE = "lifecycle_digest"
MAX_LISTED = 25  # past-due lines in the mail; the full list is in the report
CAPACITY_HORIZON_MONTHS = 12  # lines whose p95 passes the limit within this many months are named
# Availability: a verdict holds until the next one of its series, at most this long (the collector
# writes one every few seconds today; on change plus a steady beat once issue 19's item 5 lands).
MAX_VERDICT_HOLD_S = 3600.0
MIN_AVAILABILITY_COVERED_S = 86400.0  # less than a day of verdicts in the month: no number

def digest_month(now: float, zone: zoneinfo.ZoneInfo, day: int, at: dt.time, last_sent: str | None) -> str | None:
    """The month ("2026-12") whose digest is due at Unix time `now`, or None.

    Due from `day` at `at` local time until the month ends, once: a collector that was down
    at the moment sends it when it comes back, and a restart does not send it twice.
    """
    local = dt.datetime.fromtimestamp(now, zone)
    month = f"{local.year:04d}-{local.month:02d}"
    if month == last_sent:
        return None
    moment = dt.datetime.combine(local.date().replace(day=day), at, zone)
    return month if local >= moment else None


def previous_month(now: float, zone: zoneinfo.ZoneInfo) -> str:
    return add_months(dt.datetime.fromtimestamp(now, zone).date().replace(day=1), -1).strftime("%Y-%m")


def _time_up_s(verdicts: list[Sample], end_ns: int) -> tuple[float, float]:
    """(seconds up, seconds covered) of one series' verdicts in time order: each holds until the next, at most MAX_VERDICT_HOLD_S.

    A verdict without `up` (an agent never heard from: waiting) covers nothing."""
    up = covered = 0.0
    for verdict, following in zip(verdicts, [*verdicts[1:], None]):
        value = num(verdict, "up")
        if value is None:
            continue
        until = min(following.time_ns if following else end_ns, verdict.time_ns + int(MAX_VERDICT_HOLD_S * 1e9), end_ns)
        span = max(0, until - verdict.time_ns) / 1e9
        covered += span
        up += span * value
    return up, covered


def _rollup_up_s(buckets: list[Sample], resolution: str) -> tuple[float, float]:
    """(seconds up, seconds judged) of one series from its rollup buckets: the sums the collector kept (exact)."""
    up_field = stored_field("availability", "up_s", "sum", resolution)
    judged_field = stored_field("availability", "judged_s", "sum", resolution)
    return sum(num(b, up_field) or 0.0 for b in buckets), sum(num(b, judged_field) or 0.0 for b in buckets)


def availability_summary_lines(inventory: Inventory, source: SeriesSource, month: dt.date, lang: str) -> list[str]:
    """The digest's availability part for `month`: one line per site, worst first. Raises SourceError.

    Read through `nettvakt report availability`'s reader (`read_availability`: raw verdicts, or over
    a range the store keeps rolled up, the rollup's buckets), keeping the digest's own measure: the
    site's uplink device's verdicts (`kind=device`) where it names one polled over SNMP, else the
    mean over its agents' (`kind=agent`). Each series' share is time-weighted from raw verdicts
    (`_time_up_s`), or `sum(up_s) / sum(judged_s)` of its buckets (exact, `_rollup_up_s`).
    """
    t = texts.of(lang).digest
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    start_ns, end_ns = month_start_ns(month, zone), month_start_ns(add_months(month, 1), zone)
    data = read_availability(source, inventory, start_ns, end_ns)
    by_series: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for verdict in data.samples:
        if data.resolution != RAW or verdict.time_ns >= start_ns:  # raw: the month's own verdicts
            ident = verdict.tags.get("device") if verdict.tags.get("kind") == "device" else verdict.tags.get("host", "")
            by_series[(verdict.tags.get("kind", ""), ident or "")].append(verdict)

    def share(verdicts: list[Sample]) -> tuple[float, float]:
        return _time_up_s(verdicts, end_ns) if data.resolution == RAW else _rollup_up_s(verdicts, data.resolution)

    found: list[tuple[float, str]] = []
    missing: list[str] = []
    for site in inventory.site:
        uplink = site_context(inventory, site.id).uplink
        if uplink is not None and uplink.snmp is not None:
            series = [by_series.get(("device", uplink.id), [])]
        else:
            # The site's agents as the stored verdicts name them (an agent's site tag), as before.
            series = [v for (kind, _), v in by_series.items() if kind == "agent" and v and v[0].tags.get("site") == site.id]
        shares = [up / covered for up, covered in (share(v) for v in series) if covered >= MIN_AVAILABILITY_COVERED_S]
        if shares:
            found.append((100.0 * sum(shares) / len(shares), site.name))
        else:
            missing.append(site.name)
    lines = [t["availability"].format(month=i18n.month(month, lang))]
    lines += [t["availability_row"].format(site=name, pct=i18n.number(pct, lang, 2)) for pct, name in sorted(found)]
    lines += [t["availability_no_data"].format(site=name) for name in missing]
    return lines


def capacity_summary_lines(inventory: Inventory, source: SeriesSource, today: dt.date, lang: str) -> list[str]:
    """The digest's capacity part: the sites whose line's p95 passes the limit within a year, with the month. Raises SourceError."""
    t = texts.of(lang).digest
    months = report_months(today, CAPACITY_HORIZON_MONTHS)
    report = build_capacity_report(inventory, months, read_capacity(inventory, source, months, [s.id for s in inventory.site]))
    limit = i18n.number(report.limit_pct, lang)
    lines = [t["capacity"].format(limit=limit, n=CAPACITY_HORIZON_MONTHS)]
    for site in report.crossing_within(CAPACITY_HORIZON_MONTHS):
        first, latest = site.first_crossing, site.latest
        assert first is not None and latest is not None  # a crossing rests on months with numbers
        direction, trend = first
        lines.append(t["capacity_row"].format(
            site=site.site_name, line=f"{site.device}/{site.ifname}", crossing=crossing_text(trend, lang),
            direction=texts.of(lang).capacity_report[f"d_{direction}"], p95=i18n.number(latest.p95_pct[direction], lang, 1),
            month=i18n.month(latest.month, lang),
        ))
    if len(lines) == 1:
        lines.append(t["none"])
    return lines + ["", t["capacity_footer"]]


def observed_summaries(inventory: Inventory, today: dt.date, lang: str,
                       open_store: Callable[[Inventory], SeriesSource] = open_source) -> list[str]:
    """Availability last month and the lines filling up, each part as it could be read; what could not, said."""
    t = texts.of(lang).digest
    try:
        source = open_store(inventory)
    except (SourceError, SecretError) as exc:
        return [t["unreadable"].format(what=t["what_both"], error=exc)]
    lines: list[str] = []
    parts: list[tuple[str, Callable[[], list[str]]]] = [
        ("what_availability", lambda: availability_summary_lines(inventory, source, add_months(today.replace(day=1), -1), lang)),
        ("what_capacity", lambda: capacity_summary_lines(inventory, source, today, lang)),
    ]
    for what, part in parts:
        try:
            lines += [*part(), ""]
        except SourceError as exc:
            lines += [t["unreadable"].format(what=t[what], error=exc), ""]
    return lines[:-1]


def lifecycle_digest(inventory: Inventory, today: dt.date, lang: str,
                     open_store: Callable[[Inventory], SeriesSource] = open_source) -> tuple[str, str]:
    """(title, body) of the digest for `today`: the renewal plan, then what `observed_summaries` could read."""
    catalog = texts.of(lang)
    t = catalog.digest
    report = build_hardware_report(inventory, today.year, today)
    currency = report.currency

    def money(value: float) -> str:
        return i18n.money(value, lang, currency)

    past = report.past_due
    due_now = [i for i in report.items if i.status == "due" and i.due_year == today.year]
    title = t["title"].format(
        month=i18n.month(today, lang), past=i18n.count(len(past), "unit", lang),
        past_cost=money(sum(i.cost_nok or 0.0 for i in past)), due=len(due_now), year=today.year,
        due_cost=money(sum(i.cost_nok or 0.0 for i in due_now)),
    )

    def item_line(item: HardwareItem) -> str:
        return t["item"].format(
            name=item.name, kind=i18n.kind_name(item.kind, lang), site=item.site_name,
            purchased=i18n.date(item.purchased, lang) or "?", due_year=item.due_year, cost=money(item.cost_nok or 0.0),
            due_word=t["was_due"] if item.status == "past_due" else t["falls_due"],
        )

    lines = [t["past"]]
    lines += [item_line(i) for i in past[:MAX_LISTED]] or [t["none"]]
    if len(past) > MAX_LISTED:
        lines.append(t["more"].format(n=len(past) - MAX_LISTED))
    lines += ["", t["due"].format(year=today.year)]
    lines += [item_line(i) for i in due_now[:MAX_LISTED]] or [t["none"]]
    if len(due_now) > MAX_LISTED:
        lines.append(t["more"].format(n=len(due_now) - MAX_LISTED))
    lines += ["", t["forecast"]]
    lines += [t["row"].format(year=f.year, units=i18n.count(f.units, "unit", lang), cost=money(f.cost_nok)) for f in report.forecast]
    if report.unknown:
        lines += ["", t["unknown"].format(n=i18n.count(len(report.unknown), "unit", lang))]
    lines += ["", t["footer"], "", *observed_summaries(inventory, today, lang, open_store)]
    return title, "\n".join(lines) + "\n"
