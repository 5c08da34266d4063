"""`nettvakt report availability`: per site and per service, availability, every outage, mean time to repair.

Built from the collector's own `availability` verdicts (docs/metrics.md), read as step functions:

- A series (an agent, a device, a probe target as one agent measures it) is **up** or **down**
  from the time of the evidence of its verdict until the evidence of its next one: a stored
  point's time less its `silent_s` (an agent's last sign of life, a target's newest probe; a
  device's poll has none), never before the series' previous point. A point without `up` makes
  it **unknown** (a target whose probes stopped; an agent never heard from), and so does a
  silence of the stored points longer than a verdict holds (`collector.availability.holds_s`: the
  beat plus a minute; a device's poll interval when longer): the collector was not judging.
- A **site** is down while its uplink device is down, or while two or more of its other
  members (agents and devices) are known and none of them is up: the alert engine's site rule
  (`collector.alerting.engine.site_down`) on the stored verdicts. Unknown while nothing of it is known.
- A **service** is a probe target as one agent sees it (`gw` from `pc1`).
- An **outage** is a maximal stretch of down. Its end is the evidence of the first verdict up
  again; when knowledge ended first, it ends there and its end is marked unknown; one still
  going at the end of the period is open. Its duration is end minus start.
- **Availability** is the time up over the time known (up or down), in percent; time nobody
  knew is left out of both and shown on its own. **Mean time to repair** is the mean duration of
  the outages that were seen to end (not open, not ended in the unknown).

Sites are listed worst first (lowest availability, then the most time down); services too,
within their site. Times are in `[alerting] timezone`, labelled; JSON has ISO 8601 with offset.
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
import zoneinfo
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from collector import clock, texts
from collector.alerting.engine import Topology, site_down
from collector.availability import holds_s
from collector.config import Inventory
from collector.reports import i18n
from collector.reports.render import Column, Document, Row, Table
from collector.rollups import RAW, RESOLUTIONS, stored_field
from collector.timeseries import InfluxSource, Sample, SeriesSource, _ident, any_of

State = Literal["up", "down", "unknown"]


@dataclass
class RollupSeries:
    """What the report takes from one series' rollup buckets over the period: the sums of `up_s` and
    `judged_s`, and the buckets it was judged in (one holding judged time or a verdict), as runs of
    bucket numbers counted from the bucket holding the period's start, both ends included."""

    up_s: float = 0.0
    judged_s: float = 0.0
    judged: list[tuple[int, int]] = field(default_factory=list)

    def add(self, other: "RollupSeries") -> None:
        """Another stored series of the same thing (its tags changed: an agent moved to another site)."""
        self.up_s += other.up_s
        self.judged_s += other.judged_s
        self.judged = runs_of((), merge=self.judged + other.judged)


def runs_of(buckets: Iterable[int], merge: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Bucket numbers (and runs) as sorted, disjoint runs (first, last), adjacent ones joined."""
    spans = sorted([(b, b) for b in set(buckets)] + list(merge))
    out: list[tuple[int, int]] = []
    for lo, hi in spans:
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


@dataclass
class AvailabilityData:
    """What `read_availability` read: raw verdicts, or (over a long range) what the rollup's buckets
    of `availability` say of each series, and the alert history."""

    resolution: str  # "raw", "5m" or "1h" (collector.rollups)
    samples: list[Sample]  # `availability`: raw points, or one bucket per series and bucket (up_s, judged_s sums)
    alerts: list[Sample] = field(default_factory=list)  # `alert` events (rollup resolutions only)
    # Rollups: per series (kind, id), its sums and judged buckets as InfluxDB folded them (None: fold `samples`).
    series: dict[tuple[str, str], RollupSeries] | None = None


# An outage going on at the period's start began before it: its alert events are read from this far back.
ALERT_LEAD_S = 31 * 86400.0
DAY_NS = 86400 * 1_000_000_000


def read_availability(source: SeriesSource, inventory: Inventory, start_ns: int, end_ns: int, now_ns: int | None = None) -> AvailabilityData:
    """Every stored point the report needs. The one place the report reads.

    Where the source says raw for the range (`source.resolution_for`: short and recent, or a store
    without rollups): every `availability` point from one hold before the period (the state at its
    start) to its end. Beyond that (raw points may be gone: they expire after the raw retention)
    the rollup the source names (5m or 1h) of `availability`, each bucket's `sum(up_s)`,
    `sum(judged_s)` and `min(up)` per series, from the bucket holding the start (from InfluxDB
    folded by it: `fold_in_influx`); and the `alert` history, kept long in `nettvakt_events`, for
    the outages' start and end.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    lead_ns = int(longest_hold_s(inventory) * 1e9)
    resolution = source.resolution_for(start_ns - lead_ns, end_ns, now_ns)
    if resolution == RAW:
        return AvailabilityData(RAW, source.samples("availability", start_ns - lead_ns, end_ns))
    bucket_ns = int(RESOLUTIONS[resolution].bucket_s or 0) * 1_000_000_000
    alerts_since_ns = start_ns - int(ALERT_LEAD_S * 1e9)
    if isinstance(source, InfluxSource):
        with ThreadPoolExecutor(1) as pool:  # the alert history read while InfluxDB folds the buckets
            alerts = pool.submit(source.samples, "alert", alerts_since_ns, end_ns, None, resolution)
            folded = fold_in_influx(source, resolution, start_ns - start_ns % bucket_ns, end_ns)
            return AvailabilityData(resolution, [], alerts.result(), folded)
    alerts_read = source.samples("alert", alerts_since_ns, end_ns, None, resolution)
    rows = source.samples("availability", start_ns - start_ns % bucket_ns, end_ns, None, resolution)
    return AvailabilityData(resolution, rows, alerts_read)


def fold_rows(rows: Iterable[Sample], first_ns: int, resolution: str) -> dict[tuple[str, str], RollupSeries]:
    """Per series, its rollup buckets (from the one starting at `first_ns`) folded: the sums of the
    buckets that account judged time (`up_s` of a bucket without `judged_s` counts nothing), and the
    judged buckets (judged time above zero, or a verdict: a series' first point accounts none, its
    time is accounted by the next point, maybe in a later bucket)."""
    up_field = stored_field("availability", "up_s", "sum", resolution)
    judged_field = stored_field("availability", "judged_s", "sum", resolution)
    verdict_field = stored_field("availability", "up", "min", resolution)
    bucket_ns = int(RESOLUTIONS[resolution].bucket_s or 0) * 1_000_000_000
    sums: dict[tuple[str, str], RollupSeries] = {}
    judged: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        key = _key(row.tags)
        if key is None:
            continue
        folded = sums.setdefault(key, RollupSeries())
        row_judged, row_up = row.fields.get(judged_field), row.fields.get(up_field)
        if (isinstance(row_judged, float) and row_judged > 0) or isinstance(row.fields.get(verdict_field), float):
            judged.setdefault(key, []).append((row.time_ns - first_ns) // bucket_ns)
        if isinstance(row_judged, float):
            folded.judged_s += row_judged
            folded.up_s += row_up if isinstance(row_up, float) else 0.0
    for key, folded in sums.items():
        folded.judged = runs_of(judged.get(key, []))
    return sums


def fold_in_influx(source: InfluxSource, resolution: str, first_ns: int, end_ns: int) -> dict[tuple[str, str], RollupSeries]:
    """`fold_rows` of the rollup's buckets in [first_ns, end_ns), folded by InfluxDB: a year of hourly
    buckets of every series is millions of rows; what the report takes of them, a few numbers each.

    1. Per stored series, in one request: `sum(up_s)`, `sum(judged_s)`, how many buckets hold a
       verdict (`count` of the verdict's minimum), and the first and last bucket holding a verdict
       and holding judged time (`first`/`last`, cheap). The collector writes `up_s` and `judged_s`
       together on every point (collector/availability.py), so a bucket has both sums or neither
       and the sums are those of `fold_rows`. When the buckets with a verdict are one unbroken run
       and no bucket before or after it holds judged time, that run is the judged buckets.
    2. For the other series, the same count per day (`GROUP BY time(1d)`): a day with a verdict in
       each of its buckets was judged throughout;
    3. the buckets of their remaining days (within their first and last bucket holding judged time)
       are read, judged time and verdict, and judged as `fold_rows` judges them.
    The last two requests only where a series has a gap (the collector stopped, a target's probes
    stopped); tests/test_reports_fast.py holds the result to `fold_rows`'."""
    bucket_ns = int(RESOLUTIONS[resolution].bucket_s or 0) * 1_000_000_000
    src = source.from_clause("availability", resolution)
    up_s, judged_s = (_ident(stored_field("availability", f, "sum", resolution)) for f in ("up_s", "judged_s"))
    verdict = _ident(stored_field("availability", "up", "min", resolution))
    period = f"time >= {int(first_ns)} AND time < {int(end_ns)}"
    aliases = {"up", "judged", "verdicts", "first", "last", "judged_s", "verdict"}

    def key_of(row: dict[str, Any]) -> tuple[tuple[str, str], ...]:
        """The stored series of a row: its tags, every column but time and the values (GROUP BY *)."""
        return tuple(sorted((k, str(v or "")) for k, v in row.items() if k not in aliases and k not in ("time", "_measurement")))

    def bucket(time_ns: int) -> int:
        return (int(time_ns) - first_ns) // bucket_ns

    # Two requests side by side, of about equal work: each sum and count is a pass over every bucket
    # (about 2.5 s for a year of 430 series on this project's 2-core test machine), `first` and
    # `last` far less.
    (judgeds, counts), (ups, *edges) = source.select_side_by_side([
        [f"SELECT SUM({judged_s}) AS judged FROM {src} WHERE {period} GROUP BY *",
         f"SELECT COUNT({verdict}) AS verdicts FROM {src} WHERE {period} GROUP BY *"],
        [f"SELECT SUM({up_s}) AS up FROM {src} WHERE {period} GROUP BY *"]
        + [f"SELECT {edge}({field}) AS {edge.lower()} FROM {src} WHERE {period} GROUP BY *"
           for field in (verdict, judged_s) for edge in ("FIRST", "LAST")],
    ])
    first_verdict, last_verdict, first_judged, last_judged = ({key_of(r): bucket(r["time"]) for r in rows} for rows in edges)
    columns: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for row in (*judgeds, *ups, *counts):  # a series with no judged time still has its verdicts
        columns.setdefault(key_of(row), {}).update(row)
    stored: dict[tuple[tuple[str, str], ...], RollupSeries] = {}
    gaps: list[tuple[tuple[str, str], ...]] = []
    for key, row in columns.items():
        judged_time = row.get("judged")
        folded = stored[key] = RollupSeries(float(row.get("up") or 0.0) if judged_time is not None else 0.0, float(judged_time or 0.0))
        run = (first_verdict.get(key), last_verdict.get(key))
        if run[0] is not None and run[1] is not None and int(row.get("verdicts") or 0) == run[1] - run[0] + 1 \
                and (first_judged.get(key, run[0]), last_judged.get(key, run[1])) == (run[0], run[1]):
            folded.judged = [(run[0], run[1])]
        elif key in first_judged or run[0] is not None:
            gaps.append(key)
    if gaps:
        where_gaps = any_of(dict(key) for key in gaps)
        judged_runs: dict[tuple[tuple[str, str], ...], list[tuple[int, int]]] = {}
        whole_days: set[tuple[tuple[tuple[str, str], ...], int]] = set()
        for row in source.select(f"SELECT COUNT({verdict}) AS verdicts FROM {src} WHERE {period} AND {where_gaps} "
                                 f"GROUP BY time(1d), * fill(none)"):
            day_ns = int(row["time"])
            lo, hi = bucket(max(day_ns, first_ns)), bucket(min(day_ns + DAY_NS, end_ns) - 1)
            if int(row.get("verdicts") or 0) >= hi - lo + 1:
                whole_days.add((key_of(row), day_ns))
                judged_runs.setdefault(key_of(row), []).append((lo, hi))
        to_read: dict[int, list[tuple[tuple[str, str], ...]]] = {}
        for key in gaps:
            ends = [b for b in (first_judged.get(key), last_judged.get(key), first_verdict.get(key), last_verdict.get(key)) if b is not None]
            first_day = (first_ns + min(ends) * bucket_ns) // DAY_NS * DAY_NS
            for day_ns in range(first_day, first_ns + (max(ends) + 1) * bucket_ns, DAY_NS):
                if (key, day_ns) not in whole_days:
                    to_read.setdefault(day_ns, []).append(key)
        days = sorted(to_read)
        answers = source.select_each([
            f"SELECT {judged_s} AS judged_s, {verdict} AS verdict FROM {src} WHERE time >= {max(day_ns, first_ns)} "
            f"AND time < {min(day_ns + DAY_NS, end_ns)} AND {any_of(dict(key) for key in to_read[day_ns])} GROUP BY *" for day_ns in days])
        for rows in answers:
            for row in rows:
                judged_time = row.get("judged_s")
                if (judged_time is not None and float(judged_time) > 0) or row.get("verdict") is not None:
                    judged_runs.setdefault(key_of(row), []).append((bucket(row["time"]), bucket(row["time"])))
        for key, runs in judged_runs.items():
            if key in stored:
                stored[key].judged = runs_of((), merge=runs)
    out: dict[tuple[str, str], RollupSeries] = {}
    for tags, folded in stored.items():
        series = _key(dict(tags))
        if series is not None:
            if series in out:
                out[series].add(folded)
            else:
                out[series] = folded
    return out


def longest_hold_s(inventory: Inventory) -> float:
    polls = [d.snmp.interval_s for d in inventory.device if d.snmp is not None]
    return holds_s(inventory.collector.availability_beat_s, max(polls, default=0.0))


@dataclass(frozen=True)
class Span:
    start_s: float
    end_s: float
    state: State


@dataclass
class Outage:
    start_s: float
    end_s: float | None  # None: still going at the end of the period
    end_unknown: bool = False  # knowledge ended before a verdict up came

    def duration_s(self, period_end_s: float) -> float:
        return (self.end_s if self.end_s is not None else period_end_s) - self.start_s

    def to_json(self, zone: zoneinfo.ZoneInfo, period_end_s: float) -> dict[str, Any]:
        return {
            "start": clock.iso(self.start_s, zone), "end": None if self.end_s is None else clock.iso(self.end_s, zone),
            "open": self.end_s is None, "end_unknown": self.end_unknown, "duration_s": round(self.duration_s(period_end_s), 3),
        }


@dataclass
class Availability:
    """One site or one service over the period."""

    id: str
    name: str
    site: str
    spans: list[Span]
    agent: str | None = None  # services: the agent that probes it
    outages: list[Outage] = field(default_factory=list)
    # From the rollup's sums (a series over a long range): the seconds up, down and unknown, exact
    # where the timeline's placement of them within a bucket is not.
    totals: dict[State, float] | None = None
    # Sites: the timelines of its uplink and members the site rule was applied to (the status page
    # tells a site with a member down, degraded, from one wholly up).
    members: list[list[Span]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.outages = outages_of(self.spans)

    def seconds(self, state: State) -> float:
        if self.totals is not None:
            return self.totals[state]
        return sum(s.end_s - s.start_s for s in self.spans if s.state == state)

    @property
    def pct(self) -> float | None:
        known = self.seconds("up") + self.seconds("down")
        return None if known <= 0 else 100.0 * self.seconds("up") / known

    @property
    def mttr_s(self) -> float | None:
        repaired = [o.end_s - o.start_s for o in self.outages if o.end_s is not None and not o.end_unknown]
        return sum(repaired) / len(repaired) if repaired else None

    def order(self) -> tuple[Any, ...]:
        """Worst first: lowest availability, the most time down; nothing known last."""
        pct = self.pct
        return (pct is None, pct if pct is not None else 0.0, -self.seconds("down"), self.name)

    def to_json(self, zone: zoneinfo.ZoneInfo, period_end_s: float) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "site": self.site, **({"agent": self.agent} if self.agent else {}),
            "availability_pct": self.pct, "up_s": round(self.seconds("up"), 3), "down_s": round(self.seconds("down"), 3),
            "unknown_s": round(self.seconds("unknown"), 3), "mttr_s": self.mttr_s,
            "outages": [o.to_json(zone, period_end_s) for o in self.outages],
        }


def series_spans(samples: Iterable[Sample], start_s: float, end_s: float, hold_s: float) -> list[Span]:
    """One series' step function over [start_s, end_s): up, down and unknown, covering all of it."""
    spans: list[Span] = []
    cursor, state, holds_until = start_s, "unknown", -float("inf")

    def advance(to: float, next_state: State) -> None:
        nonlocal cursor, state
        # The current verdict holds up to `to`, or up to when it stops holding, then unknown.
        for until, what in ((min(to, holds_until), state), (to, "unknown")):
            until = min(max(until, start_s), end_s)
            if until > cursor:
                if spans and spans[-1].state == what and spans[-1].end_s == cursor:
                    spans[-1] = Span(spans[-1].start_s, until, what)
                else:
                    spans.append(Span(cursor, until, what))
                cursor = until
        state = next_state

    previous_t = -float("inf")
    for sample in samples:
        t = sample.time_ns / 1e9
        up = sample.fields.get("up")
        new: State = "unknown" if not isinstance(up, float) else "up" if up >= 0.5 else "down"
        silent = sample.fields.get("silent_s")
        evidence = t - silent if new != state and isinstance(silent, float) else t
        evidence = max(evidence, previous_t, cursor)
        advance(evidence, new)
        holds_until = t + hold_s
        previous_t = t
    advance(end_s, state)
    return spans


# Alert rule kinds whose history gives a series' outages over a long range: the series' kind, and its
# subject as the alert engine names it (the report's ids are the same: host, device, target@host).
OUTAGE_RULE_KINDS = {"agent_silent": "agent", "device_down": "device", "target_unreachable": "target"}


def alert_downs(alerts: Iterable[Sample], inventory: Inventory) -> dict[tuple[str, str], list[tuple[float, float | None]]]:
    """Per series (kind, id), its down intervals from the alert history, oldest first: from the
    rule's `pending` event (else `firing` less the rule's `for_s`) to its `resolved` one (None:
    still firing). A pending never followed by firing (the value recovered in time) is no outage."""
    rules = {r.id: (OUTAGE_RULE_KINDS[r.kind], r.for_s) for r in inventory.alert if r.kind in OUTAGE_RULE_KINDS}
    events: dict[tuple[str, str], list[tuple[float, str, float]]] = {}
    for a in alerts:
        rule, subject, state = a.tags.get("rule"), a.tags.get("subject"), a.tags.get("state")
        if rule in rules and subject and state in ("pending", "firing", "resolved"):
            kind, for_s = rules[rule]
            events.setdefault((kind, subject), []).append((a.time_ns / 1e9, state, for_s))
    out: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for key, changes in events.items():
        downs: list[tuple[float, float | None]] = []
        pending: float | None = None
        firing: float | None = None
        for t, state, for_s in sorted(changes):
            if state == "pending":
                pending = t if firing is None else pending
            elif state == "firing" and firing is None:
                firing = pending if pending is not None else t - for_s
            elif state == "resolved" and firing is not None:
                downs.append((firing, t))
                pending = firing = None
        if firing is not None:
            downs.append((firing, None))
        out[key] = downs
    return out


def rollup_series(folded: RollupSeries, downs: list[tuple[float, float | None]], start_s: float, end_s: float,
                  bucket_s: float) -> tuple[list[Span], dict[State, float]]:
    """One series over [start_s, end_s) from its folded rollup buckets and its alert history: its
    timeline (down while its alert says so, up in the rest of each bucket it was judged in, unknown
    in buckets without judgement) and its exact totals from the buckets' sums (`sum(up_s)` up,
    `sum(judged_s) - sum(up_s)` down, the rest of the period unknown). The timeline changes only at
    the ends of runs of judged buckets and of outages, so only those are cut."""
    up, judged = folded.up_s, folded.judged_s
    period = max(0.0, end_s - start_s)
    totals: dict[State, float] = {"up": up, "down": max(0.0, judged - up), "unknown": max(0.0, period - judged)}
    first = start_s - start_s % bucket_s
    cuts = {start_s, end_s}
    cuts.update(b for lo, hi in folded.judged for b in (first + lo * bucket_s, first + (hi + 1) * bucket_s) if start_s < b < end_s)
    intervals = [(a, end_s if b is None else b) for a, b in downs]
    cuts.update(t for a, b in intervals for t in (a, b) if start_s < t < end_s)
    run_starts = [lo for lo, _ in folded.judged]
    spans: list[Span] = []
    ordered = sorted(cuts)
    for a, b in zip(ordered, ordered[1:]):
        if any(lo <= a < hi for lo, hi in intervals):
            what: State = "down"
        else:
            bucket = int((a - first) // bucket_s)
            run = bisect.bisect_right(run_starts, bucket) - 1
            what = "up" if run >= 0 and bucket <= folded.judged[run][1] else "unknown"
        if spans and spans[-1].state == what:
            spans[-1] = Span(spans[-1].start_s, b, what)
        else:
            spans.append(Span(a, b, what))
    return spans, totals


def outages_of(spans: list[Span]) -> list[Outage]:
    out: list[Outage] = []
    for i, span in enumerate(spans):
        if span.state != "down":
            continue
        following = spans[i + 1] if i + 1 < len(spans) else None
        if following is None:
            out.append(Outage(span.start_s, None))
        else:
            out.append(Outage(span.start_s, span.end_s, end_unknown=following.state == "unknown"))
    return out


def site_spans(uplink: list[Span] | None, members: list[list[Span]], start_s: float, end_s: float) -> list[Span]:
    """The site rule applied at every change of its uplink's and members' states."""
    every = [uplink] if uplink is not None else []
    every += members
    cuts = sorted({start_s, end_s, *(s.start_s for spans in every for s in spans)})

    def at(spans: list[Span] | None, t: float) -> bool | None:
        for s in spans or ():
            if s.start_s <= t < s.end_s:
                return None if s.state == "unknown" else s.state == "up"
        return None

    spans: list[Span] = []
    for a, b in zip(cuts, cuts[1:]):
        down = site_down(at(uplink, a), [at(m, a) for m in members])
        what: State = "unknown" if down is None else "down" if down else "up"
        if spans and spans[-1].state == what:
            spans[-1] = Span(spans[-1].start_s, b, what)
        else:
            spans.append(Span(a, b, what))
    return spans


@dataclass
class AvailabilityReport:
    organisation: str
    start_s: float
    end_s: float
    sites: list[Availability]  # worst first
    services: list[Availability]  # by site (in the order of `sites`), worst first within it
    timezone: str
    site_filter: str | None = None
    resolution: str = RAW  # what it was read from: raw verdicts, or a rollup and the alert history

    def to_json(self) -> dict[str, Any]:
        zone = zoneinfo.ZoneInfo(self.timezone)
        return {
            "report": "availability", "organisation": self.organisation, "timezone": self.timezone, "resolution": self.resolution,
            "start": clock.iso(self.start_s, zone), "end": clock.iso(self.end_s, zone), "site": self.site_filter,
            "sites": [s.to_json(zone, self.end_s) for s in self.sites],
            "services": [s.to_json(zone, self.end_s) for s in self.services],
        }


def _key(tags: dict[str, str]) -> tuple[str, str] | None:
    """(kind, id) of a series: ('agent', host), ('device', device), ('target', 'name@host')."""
    kind = tags.get("kind")
    if kind == "agent" and tags.get("host"):
        return kind, tags["host"]
    if kind == "device" and tags.get("device"):
        return kind, tags["device"]
    if kind == "target" and tags.get("target") and tags.get("host"):
        return kind, f"{tags['target']}@{tags['host']}"
    return None


def build_availability_report(
    inventory: Inventory, data: AvailabilityData, start_ns: int, end_ns: int, site: str | None = None,
) -> AvailabilityReport:
    """`data`: what read_availability returned. Raw verdicts are read as step functions
    (`series_spans`); rollup buckets and the alert history as `rollup_series` says."""
    start_s, end_s = start_ns / 1e9, end_ns / 1e9
    beat_s = inventory.collector.availability_beat_s
    polls = {d.id: d.snmp.interval_s for d in inventory.device if d.snmp is not None}
    rolled_up = data.resolution != RAW
    by_series: dict[tuple[str, str], list[Sample]] = {}
    folded: dict[tuple[str, str], RollupSeries] = {}
    if not rolled_up:
        for sample in data.samples:
            key = _key(sample.tags)
            if key is not None:
                by_series.setdefault(key, []).append(sample)
    else:
        bucket_ns = int(RESOLUTIONS[data.resolution].bucket_s or 0) * 1_000_000_000
        folded = data.series if data.series is not None else fold_rows(data.samples, start_ns - start_ns % bucket_ns, data.resolution)
    downs = alert_downs(data.alerts, inventory) if rolled_up else {}
    bucket_s = float(RESOLUTIONS[data.resolution].bucket_s or 0)

    def series(kind: str, ident: str) -> tuple[list[Span], dict[State, float] | None]:
        if rolled_up:
            return rollup_series(folded.get((kind, ident), RollupSeries()), downs.get((kind, ident), []), start_s, end_s, bucket_s)
        hold = holds_s(beat_s, polls.get(ident, 0.0) if kind == "device" else 0.0)
        return series_spans(by_series.get((kind, ident), []), start_s, end_s, hold), None

    def spans(kind: str, ident: str) -> list[Span]:
        return series(kind, ident)[0]

    topology = Topology.from_inventory(inventory)
    sites = []
    services = []
    for info in topology.sites.values():
        if site is not None and info.id != site:
            continue
        members = [spans("agent", a) for a in info.agents] + [spans("device", d) for d in info.devices]
        uplink = spans("device", info.uplink) if info.uplink else None
        sites.append(Availability(info.id, info.name, info.id, site_spans(uplink, members, start_s, end_s),
                                  members=([uplink] if uplink is not None else []) + members))
        for agent in (a for a in inventory.agent if a.site == info.id):
            for probe in inventory.probes_for(agent):
                ident = f"{probe.name}@{agent.id}"
                timeline, totals = series("target", ident)
                services.append(Availability(ident, probe.name, info.id, timeline, agent=agent.id, totals=totals))
    sites.sort(key=Availability.order)
    rank = {s.id: i for i, s in enumerate(sites)}
    services.sort(key=lambda s: (rank[s.site], *s.order()))
    return AvailabilityReport(inventory.organisation, start_s, end_s, sites, services, inventory.alerting.timezone, site, data.resolution)


def availability_document(report: AvailabilityReport, lang: str) -> Document:
    w = texts.of(lang).availability_report
    zone = zoneinfo.ZoneInfo(report.timezone)
    at = lambda t: i18n.timestamp(dt.datetime.fromtimestamp(t, zone), lang)  # noqa: E731
    dur = lambda s: i18n.duration(s, w)  # noqa: E731
    site_names = {s.id: s.name for s in report.sites}

    def outage_end(o: Outage) -> str:
        if o.end_s is None:
            return w["open"]
        return w["end_unknown"].format(time=at(o.end_s)) if o.end_unknown else at(o.end_s)

    every = report.sites + report.services
    outages = sum(len(a.outages) for a in every)
    summary = [w["s_period"].format(start=at(report.start_s), end=at(report.end_s))]
    summary.append(w["s_counts"].format(sites=len(report.sites), services=len(report.services), outages=outages))
    worst = next((s for s in report.sites if s.pct is not None), None)
    if worst is not None and worst.outages:
        summary.append(w["s_worst"].format(site=worst.name, pct=i18n.number(worst.pct, lang, 2), down=dur(worst.seconds("down"))))
    unknown = [s for s in report.sites if s.seconds("unknown") > 0]
    if unknown:
        summary.append(w["s_unknown"].format(n=len(unknown)))

    def pct(a: Availability) -> float | None:
        return None if a.pct is None else round(a.pct, 3)

    site_table = Table(
        title=w["sites"],
        columns=[Column(w["site"]), Column(w["availability"], "pct2"), Column(w["outages"], "int"), Column(w["down"]),
                 Column(w["mttr"]), Column(w["unknown"])],
        rows=[Row([s.name, pct(s), len(s.outages), dur(s.seconds("down")), dur(s.mttr_s), dur(s.seconds("unknown"))],
                  strong=bool(s.outages)) for s in report.sites],
        empty_text=w["none"],
    )
    service_table = Table(
        title=w["services"],
        columns=[Column(w["service"]), Column(w["agent"]), Column(w["availability"], "pct2"), Column(w["outages"], "int"),
                 Column(w["down"]), Column(w["mttr"]), Column(w["unknown"])],
        rows=[Row([s.name, s.agent, pct(s), len(s.outages), dur(s.seconds("down")), dur(s.mttr_s), dur(s.seconds("unknown"))],
                  group=s.site, strong=bool(s.outages)) for s in report.services],
        group_title=w["site"], group_labels=site_names, empty_text=w["none"],
    )
    outage_rows = []
    for whole, group in ((True, report.sites), (False, report.services)):
        for a in group:
            what = w["whole_site"] if whole else w["service_of"].format(service=a.name, agent=a.agent)
            for o in a.outages:
                row = Row([what, at(o.start_s), outage_end(o), dur(o.duration_s(report.end_s))], group=a.site, strong=whole)
                outage_rows.append((a.site, o.start_s, row))
    rank = {s.id: i for i, s in enumerate(report.sites)}
    outage_rows.sort(key=lambda r: (rank.get(r[0], 0), r[1]))
    outage_table = Table(
        title=w["outage_list"],
        columns=[Column(w["what"]), Column(w["start"]), Column(w["end"]), Column(w["duration"])],
        rows=[r for _, _, r in outage_rows], group_title=w["site"], group_labels=site_names, empty_text=w["no_outages"],
    )
    return Document(
        lang=lang,
        title=w["title"],
        subtitle=w["subtitle"].format(org=report.organisation, start=at(report.start_s), end=at(report.end_s)),
        summary=summary,
        blocks=[site_table, service_table, outage_table],
        notes=[w["n_outage"], w["n_site"], w["n_unknown"], *([w["n_rollup"]] if report.resolution != RAW else [])],
        generated=dt.datetime.fromtimestamp(report.end_s, zone).date(),
    )
