"""What the status pages show of the past: read from the store, shaped for charts, kept briefly.

The read side of the status page (collector/status/), over either store through
`collector.timeseries.SeriesSource`: InfluxDB when `[storage]` names it, else the collector's
local store (the durable queue, which then keeps `raw_retention_days` of points: see
`collector.queue.DurableQueue.expire`). Ranges longer than raw's two days read the rollup the
store names (`resolution_for`: 5-minute buckets for the 7-day views on InfluxDB 1.x).

- A site's **state strip** over 24 hours: the availability report's site timeline (its site
  rule over the stored verdicts of uplink, agents and devices), split further: *degraded*
  while the site is up but one of its members or probe targets is down, *waiting* while nothing
  of it is known.
- A site's **availability** over 7 and 30 days: the availability report's percentage.
- The **uplink**: the site's `uplink` device's line interface (as `report capacity` picks it:
  the one important interface, else the busiest), mean in and out per bucket, against its
  capacity (`interface_speed_bps`, else the polled `speed_bps`).
- A **probe target** as one agent measures it: per bucket the median of the rounds' latency
  (the kind's latency field), the band from the lowest to the highest echo (`rtt_min_ms` /
  `rtt_max_ms` where the kind has them, else the latency's own min and max), and the loss (the
  rounds' `loss_pct`, else the share of failed rounds). On a rollup the median is taken over the
  5-minute means. The **change against yesterday** compares the median of the last hour with
  the median of the same hour a day earlier, from raw points.
- A **device**: its interfaces' traffic, errors and discards, its CPU and memory, bucket means.
- The **alert timeline**: every alert episode of the last 7 days from the alerting's own history
  file (written whatever the store; it keeps who acknowledged), by site.

Reading a day of an estate's probes is a large answer, so results are kept for a while
(`HistoryService`): the charts for as long as the page waits between refreshes (30 s by
default, at most a minute), availability for 5 minutes.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from agent.contract import probe_latency_ms
from agent.probes import PROBES
from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.config import Device, Inventory
from collector.diagnose.analysis import is_round, is_uplink_line, num
from collector.reports.availability import Availability, Outage, Span, build_availability_report, read_availability
from collector.rollups import RAW, stored_field
from collector.svg import LatencyBucket
from collector.timeseries import InfluxSource, Sample, SeriesSource, SourceError, open_source

DAY_S = 86400.0
HOUR_S = 3600.0
# The latency views: how far back, and how wide a bucket (points per chart: 144 and 168).
LATENCY_VIEWS: Mapping[str, tuple[float, float]] = {"24h": (DAY_S, 600.0), "7d": (7 * DAY_S, HOUR_S)}
DEFAULT_VIEW = "24h"
STRIP_S = DAY_S
TRAFFIC_BUCKET_S = 600.0
TIMELINE_S = 7 * DAY_S
AVAILABILITY_DAYS = (7, 30)
# How long results are kept before they are read again: charts at most this long, and no longer
# than the page's own refresh (`[collector] status_refresh_s`), so each refresh shows news.
CHARTS_TTL_S = 60.0
AVAILABILITY_TTL_S = 300.0
# A status page must answer when InfluxDB does not: reads give up after this long (the page then
# says the history cannot be read, and shows the live state).
READ_TIMEOUT_S = 10.0

# The states of the strip, as the page's style sheet names them.
UP, DEGRADED, DOWN, WAITING = "up", "degraded", "down", "waiting"


@dataclass(frozen=True, slots=True)
class StripSpan:
    start_s: float
    end_s: float
    state: str  # UP, DEGRADED, DOWN, WAITING


@dataclass
class Traffic:
    """One interface over a range: bucket means (time: the bucket's middle) and its capacity."""

    device: str
    ifname: str
    capacity_bps: float | None
    in_bps: list[tuple[float, float | None]]
    out_bps: list[tuple[float, float | None]]
    errors_ps: list[tuple[float, float | None]] = field(default_factory=list)  # in + out
    discards_ps: list[tuple[float, float | None]] = field(default_factory=list)  # in + out


@dataclass
class SiteHistory:
    site: str
    start_s: float  # the strip's and the uplink's range
    end_s: float
    strip: list[StripSpan]
    outages: list[Outage]  # of the whole site, in the strip's range
    availability_pct: dict[int, float | None]  # days -> percent (None: nothing known)
    uplink: Traffic | None


@dataclass
class TargetHistory:
    """One probe target as one agent measures it."""

    agent: str
    target: str
    kind: str
    buckets: list[LatencyBucket]
    last_hour_ms: float | None = None
    same_hour_yesterday_ms: float | None = None

    @property
    def change_ms(self) -> float | None:
        if self.last_hour_ms is None or self.same_hour_yesterday_ms is None:
            return None
        return self.last_hour_ms - self.same_hour_yesterday_ms


@dataclass
class TargetsView:
    """Every probe target's latency over one view (`LATENCY_VIEWS`), as read at `end_s`."""

    view: str
    start_s: float
    end_s: float
    bucket_s: float
    targets: dict[tuple[str, str], TargetHistory]


@dataclass(frozen=True)
class AlertEpisode:
    """One alert from firing to resolved (end None: still firing at the end of the range)."""

    rule: str
    subject: str
    site: str
    severity: str
    start_s: float
    end_s: float | None
    summary: str
    acked_by: str | None = None
    acked_at: float | None = None


@dataclass
class DeviceHistory:
    device: str
    start_s: float
    end_s: float
    cpu_pct: list[tuple[float, float | None]]
    mem_used_pct: list[tuple[float, float | None]]
    interfaces: list[Traffic]


# --- reading ---------------------------------------------------------------------------------------

def bucket_starts(start_s: float, end_s: float, bucket_s: float) -> list[float]:
    """Bucket starts aligned to multiples of bucket_s (as the rollups' are), covering [start_s, end_s)."""
    first = math.floor(start_s / bucket_s) * bucket_s
    return [first + i * bucket_s for i in range(int(math.ceil((end_s - first) / bucket_s)))]


def bucket_means(samples: Iterable[Sample], fields: tuple[str, ...], starts: list[float], bucket_s: float) -> list[tuple[float, float | None]]:
    """Per bucket (time: its middle), the mean over its samples of the sum of `fields` (a sample
    lacking all of them is left out); None for a bucket without any."""
    sums: dict[int, list[float]] = defaultdict(list)
    first = starts[0] if starts else 0.0
    for s in samples:
        values = [v for v in (num(s, f) for f in fields) if v is not None]
        if values:
            sums[int((s.time_ns / 1e9 - first) // bucket_s)].append(sum(values))
    return [(t + bucket_s / 2, statistics.fmean(sums[i]) if sums.get(i) else None) for i, t in enumerate(starts)]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


class HistoryReader:
    """The queries behind one page, against one store (no caching: HistoryCache does that)."""

    def __init__(self, inventory: Inventory, source: SeriesSource):
        self.inventory = inventory
        self.source = source

    def _read(self, measurement: str, start_s: float, end_s: float, now_s: float, tags: Mapping[str, str] | None = None) -> tuple[list[Sample], str]:
        start_ns, end_ns = int(start_s * 1e9), int(end_s * 1e9)
        resolution = self.source.resolution_for(start_ns, end_ns, int(now_s * 1e9))
        return self.source.samples(measurement, start_ns, end_ns, tags, resolution), resolution

    # Sites -----------------------------------------------------------------------------------
    def site_strips(self, now_s: float) -> tuple[float, dict[str, tuple[list[StripSpan], list[Outage]]]]:
        """Every site's strip over the last STRIP_S, and its outages there."""
        start_ns, end_ns = int((now_s - STRIP_S) * 1e9), int(now_s * 1e9)
        data = read_availability(self.source, self.inventory, start_ns, end_ns, end_ns)
        report = build_availability_report(self.inventory, data, start_ns, end_ns)
        services: dict[str, list[list[Span]]] = defaultdict(list)
        for service in report.services:
            services[service.site].append(service.spans)
        return now_s, {site.id: (strip_of(site, services[site.id], now_s - STRIP_S, now_s), site.outages) for site in report.sites}

    def site_availability(self, days: int, now_s: float) -> dict[str, float | None]:
        start_ns, end_ns = int((now_s - days * DAY_S) * 1e9), int(now_s * 1e9)
        report = build_availability_report(self.inventory, read_availability(self.source, self.inventory, start_ns, end_ns, end_ns), start_ns, end_ns)
        return {site.id: site.pct for site in report.sites}

    def uplink(self, site_id: str, now_s: float) -> Traffic | None:
        """The site's line over the last day; None when the site names no SNMP-polled uplink or it has no interface points."""
        site = next((s for s in self.inventory.site if s.id == site_id), None)
        device = next((d for d in self.inventory.device if site is not None and d.id == site.uplink), None)
        if device is None or device.snmp is None:
            return None
        start_s = now_s - DAY_S
        samples, resolution = self._read("interface", start_s, now_s, now_s, {"device": device.id})
        by_if: dict[str, list[Sample]] = defaultdict(list)
        for s in samples:
            if is_uplink_line(device, name := s.tags.get("ifname", "")):
                by_if[name].append(s)
        if not by_if:
            return None
        named = device.snmp.important_interfaces
        ifname = named[0] if len(named) == 1 and named[0] in by_if else max(
            by_if, key=lambda n: sum((num(s, "in_bps") or 0.0) + (num(s, "out_bps") or 0.0) for s in by_if[n]))
        return traffic_of(device, ifname, by_if[ifname], start_s, now_s, TRAFFIC_BUCKET_S, resolution)

    # Probe targets ---------------------------------------------------------------------------
    def targets(self, view: str, now_s: float, agents: Iterable[str] | None = None) -> TargetsView:
        """(agent, target) -> its latency over the view, with the change against yesterday."""
        span_s, bucket_s = LATENCY_VIEWS[view]
        wanted = set(agents) if agents is not None else None
        starts = bucket_starts(now_s - span_s, now_s, bucket_s)
        # From the same hour yesterday on, so the comparison comes from the same read where it can.
        samples, resolution = self._read("probe", min(starts[0], now_s - DAY_S - HOUR_S), now_s, now_s)
        histories = latency_histories(samples, resolution, starts, bucket_s, wanted)
        if resolution != RAW:  # the comparison is of raw rounds
            samples = self.source.samples("probe", int((now_s - DAY_S - HOUR_S) * 1e9), int(now_s * 1e9))
        for (agent, target), hourly in hour_medians(samples, now_s, wanted).items():
            history = histories.get((agent, target))
            if history is not None:
                history.last_hour_ms, history.same_hour_yesterday_ms = hourly
        return TargetsView(view, starts[0], now_s, bucket_s, histories)

    # Devices ---------------------------------------------------------------------------------
    def device(self, device: Device, now_s: float) -> DeviceHistory:
        start_s = now_s - DAY_S
        starts = bucket_starts(start_s, now_s, TRAFFIC_BUCKET_S)
        points, _ = self._read("device", start_s, now_s, now_s, {"device": device.id})
        interface, resolution = self._read("interface", start_s, now_s, now_s, {"device": device.id})
        by_if: dict[str, list[Sample]] = defaultdict(list)
        for s in interface:
            by_if[s.tags.get("ifname", "")].append(s)
        important = device.snmp.important_interfaces if device.snmp is not None else []
        order = sorted(by_if, key=lambda n: (n not in important, important.index(n) if n in important else 0, n))
        return DeviceHistory(
            device.id, start_s, now_s,
            bucket_means(points, ("cpu_pct",), starts, TRAFFIC_BUCKET_S),
            bucket_means(points, ("mem_used_pct",), starts, TRAFFIC_BUCKET_S),
            [traffic_of(device, name, by_if[name], start_s, now_s, TRAFFIC_BUCKET_S, resolution) for name in order],
        )


def strip_of(site: Availability, services: list[list[Span]], start_s: float, end_s: float) -> list[StripSpan]:
    """The site's timeline with degraded told from up: up while the site rule says up and none of
    its members (uplink, agents, devices) nor its probe targets is down."""
    parts = site.members + services
    cuts = sorted({start_s, end_s, *(s.start_s for spans in [site.spans, *parts] for s in spans if start_s < s.start_s < end_s)})

    def state_at(spans: list[Span], t: float) -> str:
        return next((s.state for s in spans if s.start_s <= t < s.end_s), "unknown")

    out: list[StripSpan] = []
    for a, b in zip(cuts, cuts[1:]):
        whole = state_at(site.spans, a)
        if whole == "down":
            state = DOWN
        elif whole == "unknown":
            state = WAITING
        else:
            state = DEGRADED if any(state_at(p, a) == "down" for p in parts) else UP
        if out and out[-1].state == state:
            out[-1] = StripSpan(out[-1].start_s, b, state)
        else:
            out.append(StripSpan(a, b, state))
    return out


def traffic_of(device: Device, ifname: str, samples: list[Sample], start_s: float, end_s: float, bucket_s: float, resolution: str) -> Traffic:
    """One interface's bucket means; at a rollup resolution the mean fields keep their names."""
    starts = bucket_starts(start_s, end_s, bucket_s)
    configured = device.snmp.interface_speed_bps.get(ifname) if device.snmp is not None else None
    polled = next((v for s in reversed(samples) if (v := num(s, stored_field("interface", "speed_bps", "mean", resolution))) is not None), None)
    capacity = configured or polled or None
    return Traffic(
        device.id, ifname, capacity,
        bucket_means(samples, ("in_bps",), starts, bucket_s),
        bucket_means(samples, ("out_bps",), starts, bucket_s),
        bucket_means(samples, ("in_errors_ps", "out_errors_ps"), starts, bucket_s),
        bucket_means(samples, ("in_discards_ps", "out_discards_ps"), starts, bucket_s),
    )


def _round_values(sample: Sample, kind: str, resolution: str) -> tuple[float | None, float | None, float | None, float | None]:
    """(latency, low, high, loss %) of one round, or of one rollup bucket of rounds."""
    descriptor = PROBES.get(kind)
    if descriptor is None:
        return None, None, None, None
    latency_field = descriptor.latency_field
    if resolution == RAW:
        latency = probe_latency_ms(kind, sample.fields)
        low = num(sample, "rtt_min_ms") if num(sample, "rtt_min_ms") is not None else latency
        high = num(sample, "rtt_max_ms") if num(sample, "rtt_max_ms") is not None else latency
    else:
        latency = num(sample, stored_field("probe", latency_field, "mean", resolution))
        low_name, high_name = stored_field("probe", "rtt_min_ms", "min", resolution), stored_field("probe", "rtt_max_ms", "max", resolution)
        low = num(sample, low_name) if num(sample, low_name) is not None else num(sample, stored_field("probe", latency_field, "min", resolution))
        high = num(sample, high_name) if num(sample, high_name) is not None else num(sample, stored_field("probe", latency_field, "max", resolution))
    loss = num(sample, "loss_pct")
    if loss is None and (up := num(sample, "up")) is not None:
        loss = 100.0 * (1.0 - up)  # a failed round is a lost one (its mean on a rollup: the share failed)
    return latency, low, high, loss


def latency_histories(samples: Iterable[Sample], resolution: str, starts: list[float], bucket_s: float,
                      agents: set[str] | None = None) -> dict[tuple[str, str], TargetHistory]:
    collected: dict[tuple[str, str], tuple[str, dict[int, list[tuple[float | None, float | None, float | None, float | None]]]]] = {}
    first = starts[0]
    for s in samples:
        host, target, kind = s.tags.get("host"), s.tags.get("target"), s.tags.get("kind", "")
        if not host or not target or not is_round(s) or (agents is not None and host not in agents):
            continue
        index = int((s.time_ns / 1e9 - first) // bucket_s)
        if not 0 <= index < len(starts):
            continue
        entry = collected.setdefault((host, target), (kind, defaultdict(list)))
        entry[1][index].append(_round_values(s, kind, resolution))
    out: dict[tuple[str, str], TargetHistory] = {}
    for (host, target), (kind, by_bucket) in collected.items():
        buckets = []
        for i, t in enumerate(starts):
            rounds = by_bucket.get(i, [])
            latencies = [r[0] for r in rounds if r[0] is not None]
            lows = [r[1] for r in rounds if r[1] is not None]
            highs = [r[2] for r in rounds if r[2] is not None]
            losses = [r[3] for r in rounds if r[3] is not None]
            buckets.append(LatencyBucket(t, _median(latencies), min(lows, default=None), max(highs, default=None),
                                         statistics.fmean(losses) if losses else None))
        out[(host, target)] = TargetHistory(host, target, kind, buckets)
    return out


def hour_medians(samples: Iterable[Sample], now_s: float, agents: set[str] | None = None) -> dict[tuple[str, str], tuple[float | None, float | None]]:
    """(agent, target) -> (median latency of the last hour, of the same hour a day earlier), from raw rounds."""
    recent: dict[tuple[str, str], list[float]] = defaultdict(list)
    earlier: dict[tuple[str, str], list[float]] = defaultdict(list)
    for s in samples:
        host, target = s.tags.get("host"), s.tags.get("target")
        if not host or not target or not is_round(s) or (agents is not None and host not in agents):
            continue
        latency = probe_latency_ms(s.tags.get("kind"), s.fields)
        if latency is None:
            continue
        age = now_s - s.time_ns / 1e9
        if 0 <= age < HOUR_S:
            recent[(host, target)].append(latency)
        elif DAY_S <= age < DAY_S + HOUR_S:
            earlier[(host, target)].append(latency)
    return {key: (_median(recent.get(key, [])), _median(earlier.get(key, []))) for key in recent.keys() | earlier.keys()}


def alert_episodes(entries: Iterable[Mapping[str, Any]], start_s: float, end_s: float) -> list[AlertEpisode]:
    """Alert episodes overlapping [start_s, end_s) from the alerting's history lines, oldest first:
    firing to resolved, with who acknowledged it. One-off events (configuration changes) are no episodes."""
    open_: dict[tuple[str, str], dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    for e in sorted(entries, key=lambda e: float(e.get("time", 0))):
        key = (str(e.get("rule", "")), str(e.get("subject", "")))
        state, t = e.get("state"), float(e.get("time", 0))
        if state == "firing" and key not in open_:
            open_[key] = {"rule": key[0], "subject": key[1], "site": str(e.get("site") or ""), "severity": str(e.get("severity") or ""),
                          "start_s": t, "end_s": None, "summary": str(e.get("summary") or ""), "acked_by": None, "acked_at": None}
        elif state == "acknowledged" and key in open_ and open_[key]["acked_by"] is None:
            open_[key]["acked_by"], open_[key]["acked_at"] = str(e.get("by") or "?"), t
        elif state == "resolved" and key in open_:
            episode = open_.pop(key)
            episode["end_s"] = t
            done.append(episode)
    done += open_.values()
    return sorted((AlertEpisode(**d) for d in done if d["start_s"] < end_s and (d["end_s"] is None or d["end_s"] >= start_s)),
                  key=lambda a: a.start_s)


def read_alert_timeline(inventory: Inventory, now_s: float) -> list[AlertEpisode]:
    """The last TIMELINE_S of alert episodes, from the collector's alert history file (with acks).
    It starts a day earlier, so an episode that began before the range still has its start."""
    entries = AlertHistory(inventory.data_dir() / HISTORY_FILE).read(since=now_s - TIMELINE_S - DAY_S)
    return alert_episodes(entries, now_s - TIMELINE_S, now_s)


# --- keeping results for a while -------------------------------------------------------------------

T = TypeVar("T")


class HistoryService:
    """What the pages ask for, each result kept for its TTL; one reader computes a missing one
    while others asking for it wait. Blocking (it reads the store): call it in a thread.

    The store is opened per computation (`page_source`), so a reloaded inventory that changes
    `[storage]` is followed at the next read; results are kept per inventory object."""

    def __init__(self, source_for: Callable[[Inventory], SeriesSource] | None = None):
        self._source_for = source_for or page_source
        self._lock = threading.Lock()
        self._keys: dict[Any, threading.Lock] = {}
        self._values: dict[Any, tuple[float, Any]] = {}

    def _kept(self, key: Any, ttl_s: float, compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._keys.setdefault(key, threading.Lock())
        with lock:
            kept = self._values.get(key)
            if kept is not None and time.monotonic() - kept[0] < ttl_s:
                return kept[1]  # type: ignore[no-any-return]
            value = compute()
            self._values[key] = (time.monotonic(), value)
            return value

    def reader(self, inventory: Inventory) -> HistoryReader:
        return HistoryReader(inventory, self._source_for(inventory))

    @staticmethod
    def charts_ttl_s(inventory: Inventory) -> float:
        return min(CHARTS_TTL_S, inventory.collector.status_refresh_s)

    def sites(self, inventory: Inventory, now_s: float) -> dict[str, SiteHistory]:
        """Every site's strip, outages, availability and uplink. SourceError when the store cannot be read."""
        ttl = self.charts_ttl_s(inventory)
        end_s, strips = self._kept((id(inventory), "strips"), ttl, lambda: self.reader(inventory).site_strips(now_s))
        availability = {days: self._kept((id(inventory), "availability", days), AVAILABILITY_TTL_S,
                                         lambda days=days: self.reader(inventory).site_availability(days, now_s))  # type: ignore[misc]
                        for days in AVAILABILITY_DAYS}
        out = {}
        for site in inventory.site:
            strip, outages = strips.get(site.id, ([], []))
            uplink = self._kept((id(inventory), "uplink", site.id), ttl, lambda site=site: self.reader(inventory).uplink(site.id, now_s))  # type: ignore[misc]
            out[site.id] = SiteHistory(site.id, end_s - STRIP_S, end_s, strip, outages, {d: availability[d].get(site.id) for d in AVAILABILITY_DAYS}, uplink)
        return out

    def targets(self, inventory: Inventory, view: str, now_s: float) -> TargetsView:
        return self._kept((id(inventory), "targets", view), self.charts_ttl_s(inventory), lambda: self.reader(inventory).targets(view, now_s))

    def device(self, inventory: Inventory, device: Device, now_s: float) -> DeviceHistory:
        return self._kept((id(inventory), "device", device.id), self.charts_ttl_s(inventory), lambda: self.reader(inventory).device(device, now_s))

    def timeline(self, inventory: Inventory, now_s: float) -> list[AlertEpisode]:
        return self._kept((id(inventory), "timeline"), self.charts_ttl_s(inventory), lambda: read_alert_timeline(inventory, now_s))


def page_source(inventory: Inventory) -> SeriesSource:
    """The inventory's store, with reads that give up in READ_TIMEOUT_S (SourceError: the page says so)."""
    source = open_source(inventory)
    if isinstance(source, InfluxSource):
        source.timeout_s = READ_TIMEOUT_S
    return source
