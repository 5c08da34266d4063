"""How each store answers the status page's history (collector/history.py asks, this reads).

- `InfluxHistory`: InfluxDB does the folding: one InfluxQL statement per chart family, grouped by
  `time(bucket)` and the series' tags, so what comes back is the buckets, not the points.
- `LocalHistory`: the collector's local store (the durable queue). Each batch is decoded once and
  folded into grids (collector/history_grids.py) that are kept between renders; a later render
  reads only the batches stored since (batch ids only grow, and a late point of an agent's backlog
  arrives in a new batch, so it lands in its old bucket too).
- `SampleHistory`: any other store (VictoriaMetrics): the range's points read whole and folded.

All three give the same buckets for the same points (tests/test_status_history.py draws the same
night from both stores). Where InfluxQL cannot say exactly what the grids compute, the statements
below say what they assume.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from agent.probes import PROBES
from collector.diagnose.analysis import is_round
from collector.history_grids import (
    DAY_S, DAY_TRAFFIC, DEVICE_GROUPS, HOUR_S, INTERFACE_GROUPS, LATENCY_VIEWS, TRAFFIC_BUCKET_S, TRAFFIC_S, UPLINK_WINDOWS, Interface,
    LatencyGrid, MeanGrid, RoundTimes, Target, TrafficWindow, bucket_starts, round_values,
)
from collector.rollups import RAW, stored_field
from collector.svg import LatencyBucket
from collector.timeseries import InfluxSource, LocalSource, Sample, SeriesSource, _ident, _literal, as_stored

NS = 1_000_000_000


@dataclass
class LatencyRead:
    """Every probe target's buckets over one view, and the medians of its last hour and the same hour yesterday."""

    starts: list[float]
    kinds: dict[Target, str]
    buckets: dict[Target, list[LatencyBucket]]
    hourly: dict[Target, tuple[float | None, float | None]]


@dataclass
class InterfaceRead:
    """One interface over the last day: bucket means (time: the bucket's middle)."""

    in_bps: list[tuple[float, float | None]]
    out_bps: list[tuple[float, float | None]]
    errors_ps: list[tuple[float, float | None]]  # in + out
    discards_ps: list[tuple[float, float | None]]  # in + out
    total_bps: float  # in + out summed over its samples: of an uplink's candidates the busiest is the line
    polled_speed_bps: float | None  # the newest speed_bps polled


class HistoryStore(Protocol):
    source: SeriesSource

    def latency(self, view: str, now_s: float) -> LatencyRead: ...

    def interfaces(self, devices: Collection[str], now_s: float, errors: bool = True,
                   window: TrafficWindow = DAY_TRAFFIC) -> dict[Interface, InterfaceRead]: ...

    def device_load(self, device: str, now_s: float) -> dict[str, list[tuple[float, float | None]]]: ...

    def availability_source(self, start_s: float, now_s: float) -> SeriesSource:
        """Where the strip reads its `availability` verdicts from start_s on."""
        ...


def _interface_key(devices: Collection[str] | None) -> Any:
    def key(sample: Sample) -> Interface | None:
        device = sample.tags.get("device")
        return (device, sample.tags.get("ifname", "")) if device and (devices is None or device in devices) else None
    return key


def _device_key(sample: Sample) -> str | None:
    return sample.tags.get("device") or None


def _grid_latency(grid: LatencyGrid, rounds: RoundTimes, starts: list[float], now_s: float) -> LatencyRead:
    keys = grid.keys_within(starts)
    hourly = rounds.medians(now_s)
    return LatencyRead(starts, {k: grid.kinds[k] for k in keys}, {k: grid.buckets(k, starts) for k in keys},
                       {k: v for k, v in hourly.items() if k in keys})


def _grid_interfaces(grid: MeanGrid, devices: Collection[str], starts: list[float], speed_field: str) -> dict[Interface, InterfaceRead]:
    out = {}
    for key in grid.keys():
        if key[0] not in devices:  # type: ignore[index]
            continue
        means = {group: grid.means(key, group, starts) for group in INTERFACE_GROUPS}
        if not any(v is not None for series in means.values() for _, v in series):
            continue
        out[key] = InterfaceRead(means["in_bps"], means["out_bps"], means["errors_ps"], means["discards_ps"],
                                 grid.total(key, ("in_bps", "out_bps"), starts), grid.newest(key, speed_field))
    return out  # type: ignore[return-value]


class SampleHistory:
    """Any store, through `SeriesSource.samples`: each read takes the range's points and folds them."""

    def __init__(self, source: SeriesSource):
        self.source = source

    def _read(self, measurement: str, start_s: float, now_s: float, tags: Mapping[str, str] | None = None) -> tuple[list[Sample], str]:
        resolution = self.source.resolution_for(int(start_s * NS), int(now_s * NS), int(now_s * NS))
        return self.source.samples(measurement, int(start_s * NS), int(now_s * NS), tags, resolution), resolution

    def latency(self, view: str, now_s: float) -> LatencyRead:
        span_s, bucket_s = LATENCY_VIEWS[view]
        starts = bucket_starts(now_s - span_s, now_s, bucket_s)
        # From the same hour yesterday on, so the comparison comes from the same read where it can.
        samples, resolution = self._read("probe", min(starts[0], now_s - DAY_S - HOUR_S), now_s)
        grid, rounds = LatencyGrid(bucket_s, resolution), RoundTimes()
        for s in samples:
            grid.add(s)
        if resolution != RAW:  # the comparison is of raw rounds
            samples = self.source.samples("probe", int((now_s - DAY_S - HOUR_S) * NS), int(now_s * NS))
        for s in samples:
            rounds.add(s)
        return _grid_latency(grid, rounds, starts, now_s)

    def interfaces(self, devices: Collection[str], now_s: float, errors: bool = True,
                   window: TrafficWindow = DAY_TRAFFIC) -> dict[Interface, InterfaceRead]:
        span_s, bucket_s = window
        starts = bucket_starts(now_s - span_s, now_s, bucket_s)
        tags = {"device": next(iter(devices))} if len(devices) == 1 else None
        samples, resolution = self._read("interface", starts[0], now_s, tags)
        speed = stored_field("interface", "speed_bps", "mean", resolution)
        grid = MeanGrid(bucket_s, _interface_key(devices), INTERFACE_GROUPS, (speed,))
        for s in samples:
            grid.add(s)
        return _grid_interfaces(grid, devices, starts, speed)

    def device_load(self, device: str, now_s: float) -> dict[str, list[tuple[float, float | None]]]:
        samples, _ = self._read("device", bucket_starts(now_s - TRAFFIC_S, now_s, TRAFFIC_BUCKET_S)[0], now_s, {"device": device})
        grid = MeanGrid(TRAFFIC_BUCKET_S, _device_key, DEVICE_GROUPS)
        for s in samples:
            grid.add(s)
        starts = bucket_starts(now_s - TRAFFIC_S, now_s, TRAFFIC_BUCKET_S)
        return {group: grid.means(device, group, starts) for group in DEVICE_GROUPS}

    def availability_source(self, start_s: float, now_s: float) -> SeriesSource:
        return self.source


class KeptSamples:
    """A SeriesSource over points kept in memory from `since_ns` on; a read reaching further back
    (or of another measurement) goes to the store."""

    def __init__(self, samples: Mapping[str, list[Sample]], since_ns: int, store: SeriesSource):
        self.kept = samples
        self.since_ns = since_ns
        self.store = store

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        return self.store.resolution_for(start_ns, end_ns, now_ns)

    def samples(self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW) -> list[Sample]:
        if resolution != RAW or start_ns < self.since_ns or measurement not in self.kept:
            return self.store.samples(measurement, start_ns, end_ns, tags, resolution)
        kept = self.kept[measurement]  # in time order
        first = bisect.bisect_left(kept, start_ns, key=lambda s: s.time_ns)
        last = bisect.bisect_left(kept, end_ns, key=lambda s: s.time_ns)
        wanted = dict(tags or {})
        return [s for s in kept[first:last] if all(s.tags.get(k) == v for k, v in wanted.items())] if wanted else kept[first:last]


class LocalHistory:
    """The local store, folded as it grows: `catch_up` decodes the batches stored since the last
    render (the first time, every batch of the range) into grids kept here, and forgets what left
    the range. One per store file, kept by `history.HistoryService`; thread-safe."""

    MEASUREMENTS = frozenset({"probe", "interface", "device", "availability"})
    # How far back the availability verdicts are kept for the strip: its day and the longest a verdict holds.
    STRIP_LEAD_S = HOUR_S

    def __init__(self, source: LocalSource):
        self.source = source
        self._lock = threading.Lock()
        self._reset(DAY_S + HOUR_S)

    def _reset(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s  # how far back of now the grids are complete
        self.last_id = 0
        self.latency_grids = {view: LatencyGrid(bucket_s) for view, (_, bucket_s) in LATENCY_VIEWS.items()}
        self.rounds = RoundTimes()
        self.interface_grids = {window: MeanGrid(window[1], _interface_key(None), INTERFACE_GROUPS, ("speed_bps",))
                                for window in (DAY_TRAFFIC, *UPLINK_WINDOWS.values())}
        self.device_grid = MeanGrid(TRAFFIC_BUCKET_S, _device_key, DEVICE_GROUPS)
        self.availability: list[Sample] = []
        self.pending: list[Sample] = []  # points stamped after the last render's now: folded once their time has come

    def catch_up(self, now_s: float, horizon_s: float = DAY_S + HOUR_S) -> None:
        """Fold in what was stored since the last call; `horizon_s`: how far back this caller needs
        (further than before: everything is read again from there)."""
        with self._lock:
            if horizon_s > self.horizon_s:
                self._reset(horizon_s)
            now_ns = int(now_s * NS)
            self.last_id, fresh = self.source.stored_after(self.last_id, int((now_s - self.horizon_s) * NS), self.MEASUREMENTS)
            waiting, self.pending = self.pending, []
            for measurement, samples in fresh.items():
                waiting += [(measurement, s) for s in samples if s.time_ns >= now_ns]
                self._fold(measurement, (s for s in samples if s.time_ns < now_ns))
            for measurement, s in waiting:
                if s.time_ns < now_ns:
                    self._fold(measurement, (s,))
                else:
                    self.pending.append((measurement, s))
            self._forget(now_s)

    def _fold(self, measurement: str, samples: Iterable[Sample]) -> None:
        if measurement == "probe":
            # The 7-day grid only once the range read reaches back that far (it is read again from there then).
            grids = [self.latency_grids[view] for view, (span_s, _) in LATENCY_VIEWS.items() if span_s < self.horizon_s]
            for s in samples:
                host, target = s.tags.get("host"), s.tags.get("target")
                if host and target and is_round(s):
                    kind = s.tags.get("kind", "")
                    values = round_values(s, kind, RAW)
                    for grid in grids:
                        grid.add_round((host, target), kind, s.time_ns, values)
                    self.rounds.add_round((host, target), s.time_ns, values[0])
        elif measurement == "interface":
            grids = list(self.interface_grids.values())
            for s in samples:
                for grid in grids:
                    grid.add(s)
        elif measurement == "device":
            for s in samples:
                self.device_grid.add(s)
        else:
            self.availability += [as_stored(s) for s in samples]

    def _forget(self, now_s: float) -> None:
        for view, (span_s, bucket_s) in LATENCY_VIEWS.items():
            self.latency_grids[view].forget_before(bucket_starts(now_s - span_s, now_s, bucket_s)[0])
        self.rounds.forget_before(now_s - DAY_S - HOUR_S)
        for (span_s, bucket_s), grid in self.interface_grids.items():
            grid.forget_before(bucket_starts(now_s - span_s, now_s, bucket_s)[0])
        self.device_grid.forget_before(bucket_starts(now_s - TRAFFIC_S, now_s, TRAFFIC_BUCKET_S)[0])
        self.availability.sort(key=lambda s: s.time_ns)
        keep_from = int((now_s - DAY_S - self.STRIP_LEAD_S) * NS)
        del self.availability[: next((i for i, s in enumerate(self.availability) if s.time_ns >= keep_from), len(self.availability))]

    def latency(self, view: str, now_s: float) -> LatencyRead:
        span_s, bucket_s = LATENCY_VIEWS[view]
        starts = bucket_starts(now_s - span_s, now_s, bucket_s)
        self.catch_up(now_s, max(DAY_S + HOUR_S, now_s - starts[0]))
        with self._lock:
            return _grid_latency(self.latency_grids[view], self.rounds, starts, now_s)

    def interfaces(self, devices: Collection[str], now_s: float, errors: bool = True,
                   window: TrafficWindow = DAY_TRAFFIC) -> dict[Interface, InterfaceRead]:
        self.catch_up(now_s)
        with self._lock:
            return _grid_interfaces(self.interface_grids[window], devices, bucket_starts(now_s - window[0], now_s, window[1]), "speed_bps")

    def device_load(self, device: str, now_s: float) -> dict[str, list[tuple[float, float | None]]]:
        self.catch_up(now_s)
        starts = bucket_starts(now_s - TRAFFIC_S, now_s, TRAFFIC_BUCKET_S)
        with self._lock:
            return {group: self.device_grid.means(device, group, starts) for group in DEVICE_GROUPS}

    def availability_source(self, start_s: float, now_s: float) -> SeriesSource:
        self.catch_up(now_s)
        with self._lock:
            kept = list(self.availability)
        return KeptSamples({"availability": kept}, int((now_s - DAY_S - self.STRIP_LEAD_S) * NS), self.source)


# Every kind's latency field: a statement asks for all of them, each series takes its kind's.
LATENCY_FIELDS = tuple(sorted({descriptor.latency_field for descriptor in PROBES.values()}))


class InfluxHistory:
    """InfluxDB folds: each chart family is one statement grouped by `time(bucket)` and its series'
    tags, on raw points or the rollup the range calls for (`resolution_for`)."""

    def __init__(self, source: InfluxSource):
        self.source = source

    def _resolution(self, start_s: float, now_s: float) -> str:
        return self.source.resolution_for(int(start_s * NS), int(now_s * NS), int(now_s * NS))

    def _where(self, start_s: float, now_s: float, *conditions: str) -> str:
        return " AND ".join([f"time >= {int(start_s * NS)}", f"time < {int(now_s * NS)}", *conditions])

    def latency(self, view: str, now_s: float) -> LatencyRead:
        span_s, bucket_s = LATENCY_VIEWS[view]
        starts = bucket_starts(now_s - span_s, now_s, bucket_s)
        resolution = self._resolution(starts[0], now_s)

        def stored(name: str, aggregate: Any) -> str:
            return _ident(stored_field("probe", name, aggregate, resolution))

        loss, up = stored("loss_pct", "mean"), stored("up", "mean")
        source = self.source.from_clause("probe", resolution)
        group = f'GROUP BY time({int(bucket_s)}s), "host", "target", "kind" fill(none)'
        where = self._where(starts[0], now_s, "\"hop\" = ''")  # round points only: traceroute's hop points carry the tag
        # A round's loss is its loss_pct, else 100 % less its share up: the rounds that have a
        # loss_pct are counted apart, so the rest's `up` is known (sums less these sums).
        with_loss = {(r["time"], r.get("host"), r.get("target"), r.get("kind")): r for r in self.source.select(
            f"SELECT SUM({up}) AS up_sum, COUNT({up}) AS up_n FROM {source} WHERE {where} AND {loss} >= 0 {group}")}
        kinds: dict[Target, str] = {}
        cells: dict[Target, dict[int, LatencyBucket]] = {}
        # One statement per kind, with its own latency field only (each aggregate is a pass over the points).
        for kind, descriptor in PROBES.items():
            latency = descriptor.latency_field
            columns = [f"MEDIAN({stored(latency, 'mean')}) AS m", f"MIN({stored(latency, 'min')}) AS lo_latency",
                       f"MAX({stored(latency, 'max')}) AS hi_latency", f"MIN({stored('rtt_min_ms', 'min')}) AS lo",
                       f"MAX({stored('rtt_max_ms', 'max')}) AS hi", f"SUM({loss}) AS loss_sum", f"COUNT({loss}) AS loss_n",
                       f"SUM({up}) AS up_sum", f"COUNT({up}) AS up_n"]
            rows = self.source.select(f"SELECT {', '.join(columns)} FROM {source} WHERE {where} AND \"kind\" = {_literal(kind)} {group}")
            for r in rows:
                key = (str(r.get("host") or ""), str(r.get("target") or ""))
                if not all(key):
                    continue
                t = r["time"] / NS
                # The band: lowest and highest echo, else the latency's own (an echo's min is at most its round's latency).
                low = min((v for v in (r.get("lo"), r.get("lo_latency")) if v is not None), default=None)
                high = max((v for v in (r.get("hi"), r.get("hi_latency")) if v is not None), default=None)
                kinds.setdefault(key, kind)
                cells.setdefault(key, {})[int(t // bucket_s)] = LatencyBucket(t, r.get("m"), low, high, _loss(r, with_loss.get((r["time"], *key, kind))))
        buckets = {key: [by_index.get(int(t // bucket_s), LatencyBucket(t, None, None, None, None)) for t in starts]
                   for key, by_index in cells.items()}
        return LatencyRead(starts, kinds, buckets, self._hourly(now_s))

    def _hourly(self, now_s: float) -> dict[Target, tuple[float | None, float | None]]:
        """The median of each target's raw rounds in the last hour and in the same hour yesterday."""
        medians = ", ".join(f"MEDIAN({_ident(name)}) AS m{i}" for i, name in enumerate(LATENCY_FIELDS))
        out: dict[Target, list[float | None]] = {}
        for slot, start_s in enumerate((now_s - HOUR_S, now_s - DAY_S - HOUR_S)):
            where = self._where(start_s, start_s + HOUR_S, "\"hop\" = ''")
            for r in self.source.select(f'SELECT {medians} FROM {self.source.from_clause("probe")} WHERE {where} GROUP BY "host", "target", "kind"'):
                descriptor = PROBES.get(str(r.get("kind") or ""))
                key = (str(r.get("host") or ""), str(r.get("target") or ""))
                if descriptor is not None and all(key) and (value := r.get(f"m{LATENCY_FIELDS.index(descriptor.latency_field)}")) is not None:
                    out.setdefault(key, [None, None])[slot] = float(value)
        return {key: (recent, earlier) for key, (recent, earlier) in out.items()}

    def interfaces(self, devices: Collection[str], now_s: float, errors: bool = True,
                   window: TrafficWindow = DAY_TRAFFIC) -> dict[Interface, InterfaceRead]:
        """Bucket means per interface (errors and discards only when asked: the overview shows none).
        Errors (discards) are the mean of in plus the mean of out: the mean of their sum where a
        device polls both, as it does. The busiest and the newest speed come from a second
        statement over the whole range (one row per interface)."""
        if not devices:
            return {}
        span_s, bucket_s = window
        start_s = now_s - span_s
        starts = bucket_starts(start_s, now_s, bucket_s)
        resolution = self._resolution(start_s, now_s)

        def stored(name: str) -> str:
            return _ident(stored_field("interface", name, "mean", resolution))

        groups = {g: f for g, f in INTERFACE_GROUPS.items() if errors or g in ("in_bps", "out_bps")}
        names = [name for fields in groups.values() for name in fields]
        source = self.source.from_clause("interface", resolution)
        where = self._where(starts[0], now_s, "(" + " OR ".join(f'"device" = {_literal(d)}' for d in sorted(devices)) + ")")
        rows = self.source.select(f"SELECT {', '.join(f'MEAN({stored(n)}) AS {_ident(n)}' for n in names)} FROM {source} WHERE {where} "
                                  f'GROUP BY time({int(bucket_s)}s), "device", "ifname" fill(none)')
        whole = {(str(r.get("device") or ""), str(r.get("ifname") or "")): r for r in self.source.select(
            f"SELECT SUM({stored('in_bps')}) AS in_sum, SUM({stored('out_bps')}) AS out_sum, LAST({stored('speed_bps')}) AS speed "
            f'FROM {source} WHERE {where} GROUP BY "device", "ifname"')}
        by_key: dict[Interface, dict[int, dict[str, Any]]] = {}
        for r in rows:
            by_key.setdefault((str(r.get("device") or ""), str(r.get("ifname") or "")), {})[int(r["time"] / NS // bucket_s)] = r
        out = {}
        for key, by_index in by_key.items():
            def means(group: str) -> list[tuple[float, float | None]]:
                series = []
                for t in starts:
                    row = by_index.get(int(t // bucket_s), {})
                    values = [v for f in groups.get(group, ()) if (v := row.get(f)) is not None]
                    series.append((t + bucket_s / 2, sum(values) if values else None))
                return series
            total = whole.get(key, {})
            out[key] = InterfaceRead(means("in_bps"), means("out_bps"), means("errors_ps"), means("discards_ps"),
                                     (total.get("in_sum") or 0.0) + (total.get("out_sum") or 0.0), total.get("speed"))
        return out

    def device_load(self, device: str, now_s: float) -> dict[str, list[tuple[float, float | None]]]:
        start_s = now_s - TRAFFIC_S
        starts = bucket_starts(start_s, now_s, TRAFFIC_BUCKET_S)
        resolution = self._resolution(start_s, now_s)
        columns = ", ".join(f"MEAN({_ident(stored_field('device', g, 'mean', resolution))}) AS {_ident(g)}" for g in DEVICE_GROUPS)
        where = self._where(starts[0], now_s, f'"device" = {_literal(device)}')
        rows = self.source.select(f"SELECT {columns} FROM {self.source.from_clause('device', resolution)} WHERE {where} "
                                  f"GROUP BY time({int(TRAFFIC_BUCKET_S)}s) fill(none)")
        by_index = {int(r["time"] / NS // TRAFFIC_BUCKET_S): r for r in rows}
        return {g: [(t + TRAFFIC_BUCKET_S / 2, by_index.get(int(t // TRAFFIC_BUCKET_S), {}).get(g)) for t in starts] for g in DEVICE_GROUPS}

    def availability_source(self, start_s: float, now_s: float) -> SeriesSource:
        return self.source


def _loss(row: Mapping[str, Any], with_loss: Mapping[str, Any] | None) -> float | None:
    """The bucket's mean loss over its rounds: loss_pct where a round has it, else 100 × (1 - up)."""
    loss_sum, loss_n = row.get("loss_sum") or 0.0, row.get("loss_n") or 0
    up_without = (row.get("up_sum") or 0.0) - ((with_loss or {}).get("up_sum") or 0.0)
    n_without = (row.get("up_n") or 0) - ((with_loss or {}).get("up_n") or 0)
    n = loss_n + n_without
    return (loss_sum + 100.0 * (n_without - up_without)) / n if n else None
