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

How each store is read is collector/history_stores.py: InfluxDB folds the points into the
charts' buckets itself (InfluxQL grouped by time and series), the local store's batches are each
decoded once and folded into buckets kept between renders (collector/history_grids.py). Results
are kept for a while too (`HistoryService`): the charts for as long as the page waits between
refreshes (30 s by default, at most a minute), availability for 5 minutes (the 7 and 30 days
from one read).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.config import Device, Inventory
from collector.diagnose.analysis import is_uplink_line
from collector.history_grids import DAY_S, DAY_TRAFFIC, LATENCY_VIEWS, UPLINK_WINDOWS
from collector.history_stores import HistoryStore, InfluxHistory, InterfaceRead, LocalHistory, SampleHistory
from collector.reports.availability import Availability, Outage, Span, build_availability_report, read_availability
from collector.rollups import RAW
from collector.svg import LatencyBucket
from collector.timeseries import InfluxSource, LocalSource, Sample, SeriesSource, SourceError, open_source

DEFAULT_VIEW = "24h"
STRIP_S = DAY_S
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
    """One interface over [start_s, end_s): bucket means (time: the bucket's middle) and its capacity."""

    device: str
    ifname: str
    start_s: float
    end_s: float
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

class WidestRead:
    """A SeriesSource that reads each (measurement, tags, resolution) once for the widest range
    asked and answers narrower ranges inside it from memory: the 30-day availability, then the
    7-day from the same points (ask the widest first)."""

    def __init__(self, source: SeriesSource):
        self.source = source
        self._kept: dict[tuple[str, tuple[tuple[str, str], ...], str], tuple[int, int, list[Sample]]] = {}

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        return self.source.resolution_for(start_ns, end_ns, now_ns)

    def samples(self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW) -> list[Sample]:
        key = (measurement, tuple(sorted((tags or {}).items())), resolution)
        kept = self._kept.get(key)
        if kept is not None and kept[0] <= start_ns and end_ns <= kept[1]:
            samples = kept[2]  # in time order
            return samples[bisect.bisect_left(samples, start_ns, key=lambda s: s.time_ns): bisect.bisect_left(samples, end_ns, key=lambda s: s.time_ns)]
        samples = self.source.samples(measurement, start_ns, end_ns, tags, resolution)
        self._kept[key] = (start_ns, end_ns, samples)
        return samples


def store_for(source: SeriesSource) -> HistoryStore:
    """How the page reads `source`: InfluxQL that folds, else each range's points folded here (the
    local store keeps its folding between renders only through `HistoryService`)."""
    return InfluxHistory(source) if isinstance(source, InfluxSource) else SampleHistory(source)


class HistoryReader:
    """The reads behind one page, against one store (no caching: HistoryService keeps results)."""

    def __init__(self, inventory: Inventory, store: HistoryStore):
        self.inventory = inventory
        self.store = store
        self._availability: WidestRead | None = None

    def _availability_source(self, now_s: float) -> WidestRead:
        """The verdicts, read once per reader for the widest range asked (ask the longest first)."""
        if self._availability is None:
            self._availability = WidestRead(self.store.availability_source(now_s - STRIP_S, now_s))
        return self._availability

    @property
    def source(self) -> SeriesSource:
        return self.store.source

    # Sites -----------------------------------------------------------------------------------
    def site_strips(self, now_s: float) -> tuple[float, dict[str, tuple[list[StripSpan], list[Outage]]]]:
        """Every site's strip over the last STRIP_S, and its outages there."""
        start_ns, end_ns = int((now_s - STRIP_S) * 1e9), int(now_s * 1e9)
        data = read_availability(self._availability_source(now_s), self.inventory, start_ns, end_ns, end_ns)
        report = build_availability_report(self.inventory, data, start_ns, end_ns)
        services: dict[str, list[list[Span]]] = defaultdict(list)
        for service in report.services:
            services[service.site].append(service.spans)
        return now_s, {site.id: (strip_of(site, services[site.id], now_s - STRIP_S, now_s), site.outages) for site in report.sites}

    def site_availability(self, days: Iterable[int], now_s: float) -> dict[int, dict[str, float | None]]:
        """Per number of days, every site's availability over that many days to now (read once, for the longest)."""
        source = self._availability_source(now_s)
        out = {}
        for n in sorted(days, reverse=True):
            start_ns, end_ns = int((now_s - n * DAY_S) * 1e9), int(now_s * 1e9)
            report = build_availability_report(self.inventory, read_availability(source, self.inventory, start_ns, end_ns, end_ns), start_ns, end_ns)
            out[n] = {site.id: site.pct for site in report.sites}
        return out

    def uplinks(self, now_s: float, view: str = DEFAULT_VIEW) -> dict[str, Traffic | None]:
        """Every site's line over the latency view's uplink window (the last day, or the last hour
        by the minute): None where the site names no SNMP-polled uplink or it has no interface points."""
        window = UPLINK_WINDOWS.get(view, DAY_TRAFFIC)
        devices = {d.id: d for d in self.inventory.device if d.snmp is not None}
        uplinks = {site.id: devices[site.uplink] for site in self.inventory.site if site.uplink in devices}
        read = self.store.interfaces({d.id for d in uplinks.values()}, now_s, errors=False, window=window) if uplinks else {}
        out: dict[str, Traffic | None] = {site.id: None for site in self.inventory.site}
        for site_id, device in uplinks.items():
            lines = {ifname: r for (dev, ifname), r in read.items() if dev == device.id and is_uplink_line(device, ifname)}
            if not lines:
                continue
            named = device.snmp.important_interfaces if device.snmp is not None else []
            ifname = named[0] if len(named) == 1 and named[0] in lines else max(lines, key=lambda n: lines[n].total_bps)
            out[site_id] = traffic_of(device, ifname, lines[ifname], now_s - window[0], now_s)
        return out

    # Probe targets ---------------------------------------------------------------------------
    def targets(self, view: str, now_s: float) -> TargetsView:
        """(agent, target) -> its latency over the view, with the change against yesterday."""
        read = self.store.latency(view, now_s)
        histories = {}
        for key, buckets in read.buckets.items():
            history = TargetHistory(key[0], key[1], read.kinds[key], buckets)
            history.last_hour_ms, history.same_hour_yesterday_ms = read.hourly.get(key, (None, None))
            histories[key] = history
        return TargetsView(view, read.starts[0], now_s, LATENCY_VIEWS[view][1], histories)

    # Devices ---------------------------------------------------------------------------------
    def device(self, device: Device, now_s: float) -> DeviceHistory:
        load = self.store.device_load(device.id, now_s)
        interfaces = {ifname: r for (dev, ifname), r in self.store.interfaces({device.id}, now_s).items() if dev == device.id}
        important = device.snmp.important_interfaces if device.snmp is not None else []
        order = sorted(interfaces, key=lambda n: (n not in important, important.index(n) if n in important else 0, n))
        return DeviceHistory(device.id, now_s - DAY_S, now_s, load["cpu_pct"], load["mem_used_pct"],
                             [traffic_of(device, name, interfaces[name], now_s - DAY_S, now_s) for name in order])


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


def traffic_of(device: Device, ifname: str, read: InterfaceRead, start_s: float, end_s: float) -> Traffic:
    """One interface's chart: its bucket means against its capacity (`interface_speed_bps`, else the polled speed)."""
    configured = device.snmp.interface_speed_bps.get(ifname) if device.snmp is not None else None
    return Traffic(device.id, ifname, start_s, end_s, configured or read.polled_speed_bps or None, read.in_bps, read.out_bps,
                   read.errors_ps, read.discards_ps)


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
    `[storage]` is followed at the next read; results are kept per inventory object. The local
    store's folding (`history_stores.LocalHistory`) is kept per store file, so a refresh reads
    only the batches stored since. `clock`: what the TTLs are measured on."""

    def __init__(self, source_for: Callable[[Inventory], SeriesSource] | None = None, clock: Callable[[], float] = time.monotonic):
        self._source_for = source_for or page_source
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[Any, threading.Lock] = {}
        self._values: dict[Any, tuple[float, Any]] = {}
        self._local: dict[Path, LocalHistory] = {}

    def _kept(self, key: Any, ttl_s: float, compute: Callable[[], T]) -> T:
        with self._lock:
            lock = self._keys.setdefault(key, threading.Lock())
        with lock:
            kept = self._values.get(key)
            if kept is not None and self._clock() - kept[0] < ttl_s:
                return kept[1]  # type: ignore[no-any-return]
            value = compute()
            self._values[key] = (self._clock(), value)
            return value

    def reader(self, inventory: Inventory) -> HistoryReader:
        source = self._source_for(inventory)
        if isinstance(source, LocalSource):
            with self._lock:
                store = self._local.setdefault(source.path.resolve(), LocalHistory(source))
            return HistoryReader(inventory, store)
        return HistoryReader(inventory, store_for(source))

    def fold_local_store(self, inventory: Inventory, now_s: float) -> bool:
        """Decode and fold the local store's range once (the collector does it in the background as
        it starts), so the first page view reads only the batches stored since. False when the
        inventory's store is not the local one (InfluxDB folds at every read)."""
        store = self.reader(inventory).store
        if not isinstance(store, LocalHistory):
            return False
        store.catch_up(now_s)
        return True

    @staticmethod
    def charts_ttl_s(inventory: Inventory) -> float:
        return min(CHARTS_TTL_S, inventory.collector.status_refresh_s)

    def sites(self, inventory: Inventory, now_s: float, view: str = DEFAULT_VIEW) -> dict[str, SiteHistory]:
        """Every site's strip, outages, availability and uplink (over the view's uplink window).
        SourceError when the store cannot be read."""
        ttl = self.charts_ttl_s(inventory)
        reader = self.reader(inventory)  # one: the strip takes its verdicts from the 30 days' read where both are due
        availability = self._kept((id(inventory), "availability"), AVAILABILITY_TTL_S,
                                  lambda: reader.site_availability(AVAILABILITY_DAYS, now_s))
        end_s, strips = self._kept((id(inventory), "strips"), ttl, lambda: reader.site_strips(now_s))
        window = UPLINK_WINDOWS.get(view, DAY_TRAFFIC)
        uplinks = self._kept((id(inventory), "uplinks", window), ttl, lambda: reader.uplinks(now_s, view))
        out = {}
        for site in inventory.site:
            strip, outages = strips.get(site.id, ([], []))
            out[site.id] = SiteHistory(site.id, end_s - STRIP_S, end_s, strip, outages,
                                       {d: availability[d].get(site.id) for d in AVAILABILITY_DAYS}, uplinks.get(site.id))
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
