"""`nettvakt report capacity`: is each site's line big enough, and until when.

Per site, its uplink line: the site's `uplink` device and, of its interfaces, the one diagnose
takes for the line (`collector.diagnose.analysis.is_uplink_line`: the `snmp.important_interfaces`
when named, else all but loopback and null; the busiest of them). Over the last `months`
complete calendar months in the inventory's time zone (`[alerting] timezone`):

- **p95 per month**, in and out: the 95th percentile (nearest rank) of the month's
  `in_util_pct` / `out_util_pct` readings; **peak**: the highest reading. From raw points (one
  per SNMP poll) where the store has no rollups; else from the hourly rollup (`read_site_line`):
  the peak exact from `_max`, the p95 over the month's hours (`HOURLY_P95_FROM`, docs/reports.md).
- **too little data**: a month whose readings fall in fewer than `MIN_COVERED_HOURS` distinct
  hours gets no numbers, and says so.
- **trend**: the least-squares line through the months' p95s (x = month number, months without
  numbers left out), in percentage points per month; at least `MIN_TREND_MONTHS` months.
- **crossing**: the first month whose trend value reaches `LIMIT_PCT`, never before the
  current month; *already* when the latest month's p95 is at or above it; *never* when the
  trend falls or is flat (under `FLAT_PP_PER_MONTH`).
- **latency under load**: per hour, the line's use (the mean over the hour of the higher of
  in and out, `line_util_pct`) and the site's round-trip time (diagnose's `path_rtt_ms`: icmp
  rounds of the site's agents, each path's median, the mean over paths). Busy hours are the
  month's hours with both at or above the 90th percentile of use, quiet hours those at or below
  its median; the report gives the median round-trip time of each, with at least
  `MIN_LOAD_HOURS` of both.

From InfluxDB the same numbers are folded by InfluxDB where they can be (a year of 70 sites is
600 000 hourly rows of the lines alone): the line's choice from each candidate's highest reading
(`busiest_line`), each month's p95 and peak (`monthly_use`), the hourly round-trip time
(`hourly_round_trip_ms`); only the line's hourly use and speed are read, two sites at a time.
tests/test_reports_fast.py holds each to the point-by-point path.
"""

from __future__ import annotations

import bisect
import datetime as dt
import math
import statistics
import time
import zoneinfo
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from agent.probes import PROBES
from collector import texts
from collector.config import Device, Inventory
from collector.diagnose.analysis import is_round, is_uplink_line, line_util_pct, num, path_rtt_ms, percentile
from collector.diagnose.data import SiteContext, site_context
from collector.reports import i18n
from collector.reports.render import BAR_COLOUR, Chart, Column, Document, LineSeries, Row, Table
from collector.rollups import HOURLY, RAW, SUFFIX, stored_field
from collector.timeseries import InfluxSource, Sample, SeriesSource, _ident, _literal, any_of

LIMIT_PCT = 80.0  # a line whose p95 passes this needs more capacity
MIN_COVERED_HOURS = 7 * 24  # a month's numbers rest on readings in at least a week's worth of hours
MIN_TREND_MONTHS = 3
FLAT_PP_PER_MONTH = 0.05  # a slope below this (0.6 points a year) is flat: never
BUSY_QUANTILE = 0.9
QUIET_QUANTILE = 0.5
MIN_LOAD_HOURS = 3
# Which of several candidate interfaces is the line: the busiest in the last week of the period.
LINE_LOOKBACK_S = 7 * 86400.0
READS_IN_FLIGHT = 2  # sites read from InfluxDB at once
# The chart draws the trend on this many months past the last one (the digest's horizon).
CHART_AHEAD_MONTHS = 12
OUT_COLOUR = "#2e8b57"

HOUR_NS = 3600 * 1_000_000_000
# Probe kinds whose latency is a round trip over the line (icmp), from their descriptors.
ROUND_TRIP_KINDS = tuple(name for name, kind in PROBES.items() if kind.path_latency == "round_trip")

Direction = Literal["in", "out"]
DIRECTIONS: tuple[Direction, ...] = ("in", "out")
Problem = Literal["no_uplink", "not_polled", "no_data"]


def add_months(month: dt.date, n: int) -> dt.date:
    """The first day of the month `n` months after `month`'s (n may be negative)."""
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def month_start_ns(month: dt.date, zone: zoneinfo.ZoneInfo) -> int:
    return int(dt.datetime.combine(month, dt.time(0), zone).timestamp()) * 1_000_000_000


def report_months(today: dt.date, count: int) -> list[dt.date]:
    """The `count` complete calendar months before `today`'s, oldest first."""
    current = today.replace(day=1)
    return [add_months(current, n) for n in range(-count, 0)]


# How a month's p95 is read from the hourly rollup (docs/reports.md, tests/test_reports_rollups.py):
# "1h_p95" takes the 95th percentile of the hours' `_p95` (each the largest 5-minute p95 of its hour),
# "1h_mean" that of the hours' means. The mean smooths what happens within an hour, so the p95 of
# hourly means lies below the p95 of the readings; the hours' p95 lies above it (a bad 5-minute
# bucket sets its hour's). The test measures both on the same polls and holds the chosen one closer.
HOURLY_P95_FROM = "1h_p95"
P95_SUFFIX = {"1h_p95": "_p95", "1h_mean": ""}


@dataclass
class MonthFold:
    """A month's p95 and peak per direction, as `_month_use` takes them from the month's samples."""

    p95_pct: dict[Direction, float | None]
    peak_pct: dict[Direction, float | None]


@dataclass
class SiteLine:
    """What was read for one site's line."""

    ifname: str | None
    interface: list[Sample]  # the line's `interface` points, oldest first
    rounds: list[Sample]  # the site's round-trip probe rounds (no traceroute hops)
    # The field of a reading's peak is the value's own name plus this: raw points have one value
    # per poll (""); in the 1h rollup the hour's highest is `<field>_max`.
    peak_suffix: str = ""
    # What the monthly p95 is taken over: the readings ("raw") or hours (HOURLY_P95_FROM).
    basis: str = "raw"
    # The site's round-trip time per hour (hour number: time // HOUR_NS) as `path_rtt_ms` makes it
    # from `rounds`, where InfluxDB made it (`hourly_round_trip_ms`); None: make it from `rounds`.
    rtt_by_hour: dict[int, float] | None = None
    # Per month of the period, its p95 and peak per direction as InfluxDB folded them
    # (`monthly_use`); None: folded from `interface`, which then holds every field they need.
    month_folds: list[MonthFold] | None = None

    @property
    def p95_suffix(self) -> str:
        return P95_SUFFIX.get(self.basis, "")


def read_site_line(source: SeriesSource, ctx: SiteContext, start_ns: int, end_ns: int, now_ns: int | None = None,
                   same_uplink: dict[tuple[str, ...], Any] | None = None, month_starts_ns: Sequence[int] | None = None) -> SiteLine:
    """Every point the report reads for one site, through the SeriesSource (SourceError propagates).

    The months are read from the hourly rollup (retention policy `nettvakt_1h`) whenever the store
    keeps rollups for the range (`source.resolution_for` says other than raw: with InfluxDB 1.x a
    month is always longer than raw's two days), else from raw points (the local store, or a
    database whose rollups were never set up). From the hourly rollup `in_util_pct` is the hour's
    mean, the peak the highest `in_util_pct_max` (`peak_suffix` "_max": exact), the p95 per month
    is taken over hours (HOURLY_P95_FROM), and `rtt_ms` is the path's hourly mean, the hour's
    round-trip time unchanged in meaning. The line's choice (its last week) reads the resolution
    the source names for that week. `same_uplink`: what was read for another site with the same
    uplink device over the same period (its line and the line's points), reused, and added to.
    `month_starts_ns`: the months' bounds (each start, then the end); with them InfluxDB folds each
    month's p95 and peak (`monthly_use`) and only the hourly use and speed are read.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    months_resolution = RAW if source.resolution_for(start_ns, end_ns, now_ns) == RAW else HOURLY
    uplink = ctx.uplink
    assert uplink is not None and uplink.snmp is not None  # the caller says why not otherwise
    named = uplink.snmp.important_interfaces
    ifname = named[0] if len(named) == 1 else None

    def read(measurement: str, lo: int, tags: dict[str, str], resolution: str, fields: list[str]) -> list[Sample]:
        # From InfluxDB only the fields the report uses: an interface's rollup row has 34.
        if isinstance(source, InfluxSource):
            return source.samples(measurement, lo, end_ns, tags, resolution, fields=list(dict.fromkeys(fields)))
        return source.samples(measurement, lo, end_ns, tags, resolution)

    if ifname is None:  # several candidates, or none named: the busiest of them recently
        lookback_ns = max(start_ns, end_ns - int(LINE_LOOKBACK_S * 1e9))
        lookback_resolution = source.resolution_for(lookback_ns, end_ns, now_ns)
        if isinstance(source, InfluxSource):
            ifname = (same_uplink or {}).get(("line", uplink.id)) or busiest_line(source, uplink, lookback_ns, end_ns, lookback_resolution)
        else:
            recent = [s for tags in ([{"device": uplink.id, "ifname": n} for n in named] or [{"device": uplink.id}])
                      for s in source.samples("interface", lookback_ns, end_ns, tags, lookback_resolution)]
            use: dict[str, list[float]] = defaultdict(list)
            for s in recent:
                if is_uplink_line(uplink, name := s.tags.get("ifname", "")) and (u := line_util_pct(s)) is not None:
                    use[name].append(u)
            ifname = max(use, key=lambda n: percentile(use[n], 0.95)) if use else None
    p95_suffix, peak_suffix = ("", "") if months_resolution == RAW else (P95_SUFFIX[HOURLY_P95_FROM], SUFFIX["max"])
    fold_here = not (isinstance(source, InfluxSource) and month_starts_ns)
    used = [stored_field("interface", f, "mean", months_resolution) for f in (*UTIL_FIELDS, "speed_bps")]
    if fold_here:
        used += [f + suffix for f in UTIL_FIELDS for suffix in (p95_suffix, peak_suffix)]
    interface = (same_uplink or {}).get(("interface", uplink.id, str(ifname))) if ifname else []
    folds = (same_uplink or {}).get(("months", uplink.id, str(ifname)))
    if interface is None:
        interface = read("interface", start_ns, {"device": uplink.id, "ifname": str(ifname)}, months_resolution, used)
        if not fold_here:
            assert isinstance(source, InfluxSource) and month_starts_ns
            folds = monthly_use(source, {"device": uplink.id, "ifname": str(ifname)}, month_starts_ns, months_resolution, p95_suffix, peak_suffix)
    if same_uplink is not None and ifname:
        same_uplink.update({("line", uplink.id): ifname, ("interface", uplink.id, ifname): interface, ("months", uplink.id, ifname): folds})
    if isinstance(source, InfluxSource):
        rounds, rtt_by_hour = [], hourly_round_trip_ms(source, ctx.site.id, start_ns, end_ns, months_resolution)
    else:
        rounds, rtt_by_hour = [s for kind in ROUND_TRIP_KINDS for s in source.samples("probe", start_ns, end_ns, {"site": ctx.site.id, "kind": kind},
                                                                                 months_resolution) if is_round(s)], None
    if months_resolution == RAW:
        return SiteLine(ifname, interface, sorted(rounds, key=lambda s: s.time_ns), rtt_by_hour=rtt_by_hour, month_folds=folds)
    return SiteLine(ifname, interface, sorted(rounds, key=lambda s: s.time_ns), peak_suffix=peak_suffix, basis=HOURLY_P95_FROM,
                    rtt_by_hour=rtt_by_hour, month_folds=folds)


def monthly_use(source: InfluxSource, line: dict[str, str], month_starts_ns: Sequence[int], resolution: str,
                p95_suffix: str, peak_suffix: str) -> list[MonthFold]:
    """Per month (between consecutive `month_starts_ns`), the line's p95 and peak per direction as
    `_month_use` takes them from the month's samples, folded by InfluxDB: the peak is `MAX` of the
    peak field; the p95 is `percentile` (nearest rank) of the p95 field at the rank it takes, index
    round(0.95 (n - 1)) of n readings: InfluxDB's PERCENTILE(f, P) takes index floor(n P / 100 + 0.5) - 1,
    so P = 100 (index + 1) / n. Two requests: counts and peaks, then the percentiles."""
    src, series = source.from_clause("interface", resolution), " AND ".join(f"{_ident(k)} = {_literal(v)}" for k, v in sorted(line.items()))
    months = list(zip(month_starts_ns, month_starts_ns[1:]))
    where = [f"time >= {int(lo)} AND time < {int(hi)} AND {series}" for lo, hi in months]
    p95_of = {d: _ident(f"{d}_util_pct{p95_suffix}") for d in DIRECTIONS}
    peak_of = {d: _ident(f"{d}_util_pct{peak_suffix}") for d in DIRECTIONS}
    columns = ", ".join(f"COUNT({p95_of[d]}) AS n_{d}, MAX({peak_of[d]}) AS peak_{d}" for d in DIRECTIONS)
    counted = source.select_each([f"SELECT {columns} FROM {src} WHERE {w}" for w in where])
    folds = [MonthFold(dict.fromkeys(DIRECTIONS), {d: (rows[0].get(f"peak_{d}") if rows else None) for d in DIRECTIONS}) for rows in counted]
    wanted = [(i, d, int(rows[0].get(f"n_{d}") or 0)) for i, rows in enumerate(counted) if rows for d in DIRECTIONS if rows[0].get(f"n_{d}")]
    ranks = {(i, d): 100.0 * (min(n - 1, max(0, round(0.95 * (n - 1)))) + 1) / n for i, d, n in wanted}
    answers = source.select_each([f"SELECT PERCENTILE({p95_of[d]}, {ranks[(i, d)]!r}) AS p95 FROM {src} WHERE {where[i]}" for i, d, _ in wanted])
    for (i, d, _), rows in zip(wanted, answers):
        folds[i].p95_pct[d] = rows[0].get("p95") if rows else None
    return [MonthFold({d: None if v is None else float(v) for d, v in f.p95_pct.items()}, {d: None if v is None else float(v) for d, v in f.peak_pct.items()})
            for f in folds]


def hourly_round_trip_ms(source: InfluxSource, site: str, start_ns: int, end_ns: int, resolution: str) -> dict[int, float]:
    """The site's round-trip time per hour as `path_rtt_ms` makes it (per path, host and target, the
    median of the hour's rounds; the mean over paths), made by InfluxDB: one row an hour, not every
    round (a year of hourly rows of each path). Round points only (no traceroute `hop`)."""
    period = f"time >= {int(start_ns)} AND time < {int(end_ns)}"
    rounds = ", ".join(
        f"(SELECT {_ident(stored_field('probe', PROBES[kind].latency_field, 'mean', resolution))} AS latency "
        f"FROM {source.from_clause('probe', resolution)} WHERE {period} AND \"site\" = {_literal(site)} AND \"kind\" = {_literal(kind)} "
        f"AND \"hop\" = '' GROUP BY \"host\", \"target\")" for kind in ROUND_TRIP_KINDS)
    rows = source.select(f"SELECT MEAN(path) AS rtt FROM (SELECT MEDIAN(latency) AS path FROM {rounds} WHERE {period} "
                         f"GROUP BY time(1h), \"host\", \"target\") WHERE {period} GROUP BY time(1h) fill(none)")
    return {int(r["time"]) // HOUR_NS: float(r["rtt"]) for r in rows if r.get("rtt") is not None}


UTIL_FIELDS = ("in_util_pct", "out_util_pct")


def busiest_line(source: InfluxSource, uplink: Device, lookback_ns: int, end_ns: int, resolution: str) -> str | None:
    """Of the uplink's candidate interfaces, the one whose `line_util_pct` has the highest p95 over
    [lookback_ns, end_ns), as `read_site_line` chooses from every candidate's samples, without reading
    every candidate: InfluxDB gives each one's highest reading (of in and out: at least its p95), and
    candidates are read, highest first, only while that could still beat the best p95 read. Equal
    p95s: the candidate read first there (its first reading earlier; then the order its points came in:
    `important_interfaces`' order, else by name, as InfluxDB lists the series)."""
    named = uplink.snmp.important_interfaces if uplink.snmp is not None else []
    util = [stored_field("interface", f, "mean", resolution) for f in UTIL_FIELDS]
    tag_sets = [{"device": uplink.id, "ifname": n} for n in named] or [{"device": uplink.id}]
    highest: dict[str, float] = {}
    for row in source.select(f"SELECT MAX({_ident(util[0])}) AS top_in, MAX({_ident(util[1])}) AS top_out FROM "
                             f"{source.from_clause('interface', resolution)} WHERE time >= {int(lookback_ns)} AND time < {int(end_ns)} "
                             f"AND {any_of(tag_sets)} GROUP BY \"ifname\""):
        name, tops = str(row.get("ifname") or ""), [v for v in (row.get("top_in"), row.get("top_out")) if v is not None]
        if tops and is_uplink_line(uplink, name):
            highest[name] = max(float(v) for v in tops)
    position = {n: i for i, n in enumerate(named or sorted(highest))}
    measured: dict[str, tuple[float, int]] = {}  # p95, time of the first reading
    for name in sorted(highest, key=lambda n: (-highest[n], position[n])):
        if measured and highest[name] < max(p95 for p95, _ in measured.values()):
            break
        readings = [(s.time_ns, u) for s in source.samples("interface", lookback_ns, end_ns, {"device": uplink.id, "ifname": name}, resolution,
                                                           fields=util) if (u := line_util_pct(s)) is not None]
        if readings:
            measured[name] = (percentile([u for _, u in readings], 0.95), readings[0][0])
    return min(measured, key=lambda n: (-measured[n][0], measured[n][1], position[n])) if measured else None


@dataclass
class MonthUse:
    month: dt.date
    covered_hours: int
    p95_pct: dict[Direction, float | None]
    peak_pct: dict[Direction, float | None]
    latency_busy_ms: float | None = None
    latency_quiet_ms: float | None = None
    busy_hours: int = 0
    quiet_hours: int = 0

    @property
    def enough(self) -> bool:
        return self.covered_hours >= MIN_COVERED_HOURS

    def to_json(self) -> dict[str, Any]:
        return {
            "month": self.month.strftime("%Y-%m"), "covered_hours": self.covered_hours, "enough_data": self.enough,
            **{f"{d}_p95_pct": self.p95_pct[d] for d in DIRECTIONS}, **{f"{d}_peak_pct": self.peak_pct[d] for d in DIRECTIONS},
            "latency_busy_ms": self.latency_busy_ms, "latency_quiet_ms": self.latency_quiet_ms,
            "busy_hours": self.busy_hours, "quiet_hours": self.quiet_hours,
        }


@dataclass
class Trend:
    """A direction's least-squares line over the monthly p95s and where it reaches the limit."""

    slope_pp_per_month: float | None  # None: too few months with numbers
    intercept_pct: float | None  # the line's value at the first month of the period
    crossing: Literal["already", "month", "never", "no_data"]
    crossing_month: dt.date | None = None

    def value_at(self, index: int) -> float | None:
        if self.slope_pp_per_month is None or self.intercept_pct is None:
            return None
        return self.intercept_pct + self.slope_pp_per_month * index

    def to_json(self) -> dict[str, Any]:
        return {
            "slope_pp_per_month": self.slope_pp_per_month, "intercept_pct": self.intercept_pct,
            "crossing": self.crossing_month.strftime("%Y-%m") if self.crossing == "month" and self.crossing_month else self.crossing,
        }


CROSSING_ORDER = ("already", "month", "never", "no_data")
BASIS_TEXT = {
    "raw": "95th percentile (nearest rank) of the month's utilisation readings",
    "1h_p95": "95th percentile (nearest rank) of the month's hourly p95s (hourly rollup: each hour's largest 5-minute p95)",
    "1h_mean": "95th percentile (nearest rank) of the month's hourly mean utilisation (hourly rollup)",
}


@dataclass
class SiteCapacity:
    site: str
    site_name: str
    device: str | None
    ifname: str | None
    speed_bps: float | None
    months: list[MonthUse]
    trends: dict[Direction, Trend]
    problem: Problem | None = None

    @property
    def first_crossing(self) -> tuple[Direction, Trend] | None:
        """The direction that reaches the limit first (already, then the earliest month), or None without a trend."""
        ranked = sorted(self.trends.items(), key=lambda item: (CROSSING_ORDER.index(item[1].crossing), item[1].crossing_month or dt.date.max))
        return ranked[0] if ranked and ranked[0][1].crossing != "no_data" else None

    @property
    def latest(self) -> MonthUse | None:
        """The latest month with numbers."""
        return next((m for m in reversed(self.months) if m.enough), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site, "site_name": self.site_name, "device": self.device, "ifname": self.ifname,
            "speed_bps": self.speed_bps, "problem": self.problem,
            "trend": {d: t.to_json() for d, t in self.trends.items()},
            "months": [m.to_json() for m in self.months],
        }


@dataclass
class CapacityReport:
    organisation: str
    months: list[dt.date]
    sites: list[SiteCapacity]
    timezone: str
    limit_pct: float = LIMIT_PCT
    # What the numbers rest on: "raw" (the readings), or the hourly rollup with the p95 taken over the
    # hours' p95s ("1h_p95") or means ("1h_mean"): read_site_line, HOURLY_P95_FROM.
    basis: str = "raw"

    @property
    def current_month(self) -> dt.date:
        return add_months(self.months[-1], 1)

    def crossing_within(self, months: int) -> list[SiteCapacity]:
        """Sites whose line is over the limit already or reaches it within `months` from the current month, soonest first."""
        last = add_months(self.current_month, months - 1)
        found = [(first[1].crossing_month or dt.date.min, site) for site in self.sites if (first := site.first_crossing)
                 and (first[1].crossing == "already" or (first[1].crossing == "month" and (first[1].crossing_month or last) <= last))]
        return [site for _, site in sorted(found, key=lambda pair: pair[0])]

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "capacity", "organisation": self.organisation, "timezone": self.timezone,
            "months": [m.strftime("%Y-%m") for m in self.months], "limit_pct": self.limit_pct, "basis": self.basis,
            "definitions": {
                "p95": BASIS_TEXT.get(self.basis, self.basis), "min_covered_hours": MIN_COVERED_HOURS,
                "trend": "least squares over the monthly p95s, percentage points per month", "min_trend_months": MIN_TREND_MONTHS,
                "flat_pp_per_month": FLAT_PP_PER_MONTH, "busy_quantile": BUSY_QUANTILE, "quiet_quantile": QUIET_QUANTILE,
                "min_load_hours": MIN_LOAD_HOURS,
            },
            "sites": [s.to_json() for s in self.sites],
        }


def _month_use(month: dt.date, samples: list[Sample], rtt_by_hour: dict[int, float], peak_suffix: str, p95_suffix: str = "",
               fold: MonthFold | None = None) -> MonthUse:
    """`fold`: the month's p95 and peak as InfluxDB folded them (else from `samples`' fields)."""
    hours: dict[int, list[float]] = defaultdict(list)
    for s in samples:
        if (u := line_util_pct(s)) is not None:
            hours[s.time_ns // HOUR_NS].append(u)
    use = MonthUse(month, len(hours), dict.fromkeys(DIRECTIONS), dict.fromkeys(DIRECTIONS))
    if not use.enough:
        return use
    for d in DIRECTIONS:
        if fold is not None:
            use.p95_pct[d], use.peak_pct[d] = fold.p95_pct[d], fold.peak_pct[d]
            continue
        values = [v for s in samples if (v := num(s, f"{d}_util_pct{p95_suffix}")) is not None]
        peaks = [v for s in samples if (v := num(s, f"{d}_util_pct{peak_suffix}")) is not None]
        use.p95_pct[d] = percentile(values, 0.95) if values else None
        use.peak_pct[d] = max(peaks) if peaks else None
    hour_use = {h: statistics.fmean(v) for h, v in hours.items() if h in rtt_by_hour}
    if hour_use:
        busy_from, quiet_to = percentile(list(hour_use.values()), BUSY_QUANTILE), percentile(list(hour_use.values()), QUIET_QUANTILE)
        busy = [rtt_by_hour[h] for h, u in hour_use.items() if u >= busy_from]
        quiet = [rtt_by_hour[h] for h, u in hour_use.items() if u <= quiet_to]
        use.busy_hours, use.quiet_hours = len(busy), len(quiet)
        if len(busy) >= MIN_LOAD_HOURS and len(quiet) >= MIN_LOAD_HOURS:
            use.latency_busy_ms, use.latency_quiet_ms = statistics.median(busy), statistics.median(quiet)
    return use


def trend_of(values: Sequence[float | None], first_month: dt.date, limit: float = LIMIT_PCT) -> Trend:
    """The least-squares line through the months' values (x = month number from `first_month`, None left
    out) and the month it reaches `limit`: never before the month after the last value's."""
    known = [(float(i), v) for i, v in enumerate(values) if v is not None]
    fit = statistics.linear_regression([i for i, _ in known], [v for _, v in known]) if len(known) >= MIN_TREND_MONTHS else None
    slope, intercept = (fit.slope, fit.intercept) if fit else (None, None)
    if known and known[-1][1] >= limit:
        return Trend(slope, intercept, "already")
    if fit is None:
        return Trend(None, None, "no_data")
    if fit.slope < FLAT_PP_PER_MONTH:
        return Trend(fit.slope, fit.intercept, "never")
    index = max(math.ceil((limit - fit.intercept) / fit.slope), len(values))
    return Trend(fit.slope, fit.intercept, "month", add_months(first_month, index))


def build_capacity_report(inventory: Inventory, months: list[dt.date], lines: dict[str, SiteLine | Problem]) -> CapacityReport:
    """`lines`: per site id, what `read_site_line` read, or why there was nothing to read."""
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    bounds = [month_start_ns(m, zone) for m in months] + [month_start_ns(add_months(months[-1], 1), zone)]
    sites = []
    bases: set[str] = set()
    for site_id, line in lines.items():
        ctx = site_context(inventory, site_id)
        device = ctx.uplink.id if ctx.uplink else None
        no_trend = {d: Trend(None, None, "no_data") for d in DIRECTIONS}
        if isinstance(line, str) or not line.interface:
            problem: Problem = line if isinstance(line, str) else "no_data"
            sites.append(SiteCapacity(site_id, ctx.site.name, device, None if isinstance(line, str) else line.ifname, None, [], no_trend, problem))
            continue
        per_month: list[list[Sample]] = [[] for _ in months]
        for s in line.interface:
            i = bisect.bisect_right(bounds, s.time_ns) - 1
            if 0 <= i < len(months):
                per_month[i].append(s)
        rtt = line.rtt_by_hour if line.rtt_by_hour is not None else path_rtt_ms(line.rounds, lambda t: t // HOUR_NS)
        folds = line.month_folds or [None] * len(months)
        uses = [_month_use(m, samples, rtt, line.peak_suffix, line.p95_suffix, fold) for m, samples, fold in zip(months, per_month, folds)]
        bases.add(line.basis)
        trends = {d: trend_of([u.p95_pct[d] for u in uses], months[0]) for d in DIRECTIONS}
        speeds = [v for s in line.interface if (v := num(s, "speed_bps")) is not None]
        sites.append(SiteCapacity(site_id, ctx.site.name, device, line.ifname, speeds[-1] if speeds else None, uses, trends))
    # One read resolution for every site (one range, one store); "raw" when no line had data.
    return CapacityReport(inventory.organisation, months, sites, inventory.alerting.timezone, basis=min(bases) if bases else "raw")


def read_capacity(inventory: Inventory, source: SeriesSource, months: list[dt.date], site_ids: Sequence[str]) -> dict[str, SiteLine | Problem]:
    """Per site, its line as read from `source` (SourceError propagates), or why it has none."""
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    month_starts = [month_start_ns(m, zone) for m in months] + [month_start_ns(add_months(months[-1], 1), zone)]
    start_ns, end_ns = month_starts[0], month_starts[-1]
    now_ns = time.time_ns()

    def line_of(site_id: str, same_uplink: dict[tuple[str, ...], Any] | None = None) -> SiteLine | Problem:
        ctx = site_context(inventory, site_id)
        if ctx.uplink is None:
            return "no_uplink"
        if ctx.uplink.snmp is None:
            return "not_polled"
        return read_site_line(source, ctx, start_ns, end_ns, now_ns, same_uplink, month_starts)

    if not isinstance(source, InfluxSource):
        return {site_id: line_of(site_id) for site_id in site_ids}
    # Sites sharing an uplink device share its line: read once, by one worker. Two workers: InfluxDB
    # answers one while this process decodes the other's rows.
    by_uplink: dict[str, list[str]] = {}
    for site_id in site_ids:
        uplink = site_context(inventory, site_id).uplink
        by_uplink.setdefault(uplink.id if uplink is not None else f"site:{site_id}", []).append(site_id)

    def lines_of(sites: list[str]) -> dict[str, SiteLine | Problem]:
        same_uplink: dict[tuple[str, ...], Any] = {}
        return {site_id: line_of(site_id, same_uplink) for site_id in sites}

    out: dict[str, SiteLine | Problem] = {}
    with ThreadPoolExecutor(READS_IN_FLIGHT) as pool:
        for lines in pool.map(lines_of, by_uplink.values()):
            out.update(lines)
    return {site_id: out[site_id] for site_id in site_ids}


# ---------------------------------------------------------------------------------- document
def crossing_text(trend: Trend, lang: str) -> str:
    """'mars 2027', 'aldri', 'allerede over', 'for lite data': when a direction's p95 reaches the limit."""
    w = texts.of(lang).capacity_report
    if trend.crossing == "month" and trend.crossing_month is not None:
        return i18n.month(trend.crossing_month, lang)
    return w[f"c_{trend.crossing}"]


def _short_month(month: dt.date, lang: str) -> str:
    return f"{texts.of(lang).months[month.month - 1][:3]} {month.year}"


def _chart(site: SiteCapacity, report: CapacityReport, lang: str) -> Chart:
    w = texts.of(lang).capacity_report
    ahead = [add_months(report.months[-1], n) for n in range(1, CHART_AHEAD_MONTHS + 1)]
    labels = [_short_month(m, lang) for m in report.months + ahead]
    pad: list[float | None] = [None] * len(ahead)
    lines = []
    for d, colour in (("in", BAR_COLOUR), ("out", OUT_COLOUR)):
        lines.append(LineSeries(w[f"chart_{d}"], [m.p95_pct[d] for m in site.months] + pad, colour))
        trend = site.trends[d]
        if trend.slope_pp_per_month is not None:  # dashed in the direction's colour, on into the months ahead
            lines.append(LineSeries(w[f"chart_trend_{d}"], [trend.value_at(i) for i in range(len(labels))], colour, dashed=True))
    return Chart(
        title=w["chart"].format(site=site.site_name, line=f"{site.device}/{site.ifname}"), categories=labels, series=[],
        ylabel="%", money=False, lines=lines, limit=report.limit_pct,
        limit_label=w["chart_limit"].format(limit=i18n.number(report.limit_pct, lang)), ymax=100.0,
    )


def capacity_document(report: CapacityReport, lang: str) -> Document:
    w = texts.of(lang).capacity_report
    limit = i18n.number(report.limit_pct, lang)
    pct = lambda v: i18n.number(v, lang, 1)  # noqa: E731
    summary = []
    soon = report.crossing_within(CHART_AHEAD_MONTHS)
    if soon:
        summary.append(w["s_soon"].format(limit=limit, n=len(soon), sites=", ".join(
            f"{s.site_name} ({crossing_text(s.first_crossing[1], lang)})" for s in soon)))  # type: ignore[index]
    else:
        summary.append(w["s_none_soon"].format(limit=limit))
    for site in report.sites:
        latest, first = site.latest, site.first_crossing
        if site.problem is not None or latest is None:
            summary.append(w["s_site_problem"].format(site=site.site_name, problem=w[f"p_{site.problem or 'too_little'}"]))
            continue
        summary.append(w["s_site"].format(
            site=site.site_name, month=i18n.month(latest.month, lang), p95_in=pct(latest.p95_pct["in"]), p95_out=pct(latest.p95_pct["out"]),
            crossing=crossing_text(first[1], lang) if first else w["c_no_data"], direction=w[f"d_{first[0]}"] if first else "",
        ))

    overview_rows = []
    for site in report.sites:
        latest, first = site.latest, site.first_crossing
        overview_rows.append(Row([
            site.site_name, f"{site.device}/{site.ifname}" if site.ifname else (site.device or ""), site.speed_bps / 1e6 if site.speed_bps else None,
            latest.p95_pct["in"] if latest else None, latest.p95_pct["out"] if latest else None,
            site.trends["in"].slope_pp_per_month, site.trends["out"].slope_pp_per_month,
            crossing_text(site.trends["in"], lang), crossing_text(site.trends["out"], lang),
            latest.latency_busy_ms if latest else None, latest.latency_quiet_ms if latest else None,
            w[f"p_{site.problem}"] if site.problem else ("" if latest else w["p_too_little"]),
        ], strong=site in soon))
    overview = Table(
        title=w["overview"],
        columns=[
            Column(w["site"]), Column(w["line"]), Column(w["speed"], "mbps"), Column(w["p95_in"], "pct"), Column(w["p95_out"], "pct"),
            Column(w["trend_in"], "pct"), Column(w["trend_out"], "pct"), Column(w["cross_in"]), Column(w["cross_out"]),
            Column(w["lat_busy"], "ms"), Column(w["lat_quiet"], "ms"), Column(w["note"]),
        ],
        rows=overview_rows,
        note=w["overview_note"].format(limit=limit),
        empty_text=w["none"],
    )
    month_rows = []
    for site in report.sites:
        for m in site.months:
            note = "" if m.enough else w["too_little"].format(hours=m.covered_hours, needed=MIN_COVERED_HOURS)
            if m.enough and m.latency_busy_ms is None:
                note = w["no_latency"]
            month_rows.append(Row([
                m.month, m.p95_pct["in"], m.p95_pct["out"], m.peak_pct["in"], m.peak_pct["out"], m.covered_hours,
                m.latency_busy_ms, m.latency_quiet_ms, note,
            ], group=site.site, strong=any((m.p95_pct[d] or 0.0) >= report.limit_pct for d in DIRECTIONS)))
    monthly = Table(
        title=w["monthly"],
        columns=[
            Column(w["month"], "month"), Column(w["p95_in"], "pct"), Column(w["p95_out"], "pct"), Column(w["peak_in"], "pct"),
            Column(w["peak_out"], "pct"), Column(w["hours"], "int"), Column(w["lat_busy"], "ms"), Column(w["lat_quiet"], "ms"),
            Column(w["note"]),
        ],
        rows=month_rows,
        group_title=w["site"],
        group_labels={s.site: f"{s.site_name} \u2013 {s.device}/{s.ifname}" if s.ifname else s.site_name for s in report.sites},
        empty_text=w["none"],
    )
    charts = [_chart(s, report, lang) for s in report.sites if s.problem is None and any(m.enough for m in s.months)]
    notes = [
        w["n_p95"].format(hours=MIN_COVERED_HOURS),
        w["n_trend"].format(limit=limit, months=MIN_TREND_MONTHS, flat=i18n.number(FLAT_PP_PER_MONTH, lang, 2)),
        w["n_latency"].format(busy=round(BUSY_QUANTILE * 100), quiet=round(QUIET_QUANTILE * 100), hours=MIN_LOAD_HOURS),
        w["n_line"],
        w["n_basis"] if report.basis == "raw" else w[f"n_basis_{report.basis}"],
        w["n_timezone"].format(zone=report.timezone),
    ]
    return Document(
        lang=lang,
        title=w["title"],
        subtitle=w["subtitle"].format(
            org=report.organisation, first=i18n.month(report.months[0], lang), last=i18n.month(report.months[-1], lang),
            n=len(report.months),
        ),
        summary=summary,
        blocks=[overview, *charts, monthly],
        notes=notes,
    )
