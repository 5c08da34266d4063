"""Stored points folded into the status page's chart buckets, as they come (collector/history.py).

A grid takes samples one at a time in any order and keeps, per series and per bucket (buckets
aligned to multiples of their width, as `history.bucket_starts` and the rollups align them),
just what its chart needs: a latency bucket's round latencies (for the median), lowest and
highest echo and loss; a mean's sum and count. So a reader can feed it every point of a range at
once (a store read whole), or only what arrived since it last read (the local store's new
batches: `history_stores.LocalHistory`), and forget the buckets that left the range.
"""

from __future__ import annotations

import bisect
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from agent.contract import probe_latency_ms
from agent.probes import PROBES
from collector.diagnose.analysis import is_round, num
from collector.rollups import RAW, stored_field
from collector.svg import LatencyBucket
from collector.timeseries import Sample

DAY_S = 86400.0
HOUR_S = 3600.0
# The latency views: how far back, and how wide a bucket (points per chart: 60, 144 and 168). The
# last hour is for the first minutes after a start (the demo's): a minute's bucket holds a round
# of any probe at the default 30 s interval, so its line is whole.
LATENCY_VIEWS: Mapping[str, tuple[float, float]] = {"1h": (HOUR_S, 60.0), "24h": (DAY_S, 600.0), "7d": (7 * DAY_S, HOUR_S)}
# Traffic, CPU and memory: the last day in 10-minute buckets.
TRAFFIC_S = DAY_S
TRAFFIC_BUCKET_S = 600.0
TrafficWindow = tuple[float, float]  # (how far back, bucket)
DAY_TRAFFIC: TrafficWindow = (TRAFFIC_S, TRAFFIC_BUCKET_S)
# An uplink's chart follows the latency view where it has its own window: the last hour by the
# minute (a line full for a minute shows full); over 7 days it stays a day.
UPLINK_WINDOWS: Mapping[str, TrafficWindow] = {"1h": (HOUR_S, 60.0)}

Target = tuple[str, str]  # (agent, probe target)
Interface = tuple[str, str]  # (device, ifname)
# A sample's sums that make an interface's chart (errors and discards: in and out added).
INTERFACE_GROUPS: Mapping[str, tuple[str, ...]] = {
    "in_bps": ("in_bps",), "out_bps": ("out_bps",), "errors_ps": ("in_errors_ps", "out_errors_ps"),
    "discards_ps": ("in_discards_ps", "out_discards_ps"),
}
DEVICE_GROUPS: Mapping[str, tuple[str, ...]] = {"cpu_pct": ("cpu_pct",), "mem_used_pct": ("mem_used_pct",)}


def bucket_starts(start_s: float, end_s: float, bucket_s: float) -> list[float]:
    """Bucket starts aligned to multiples of bucket_s (as the rollups' are), covering [start_s, end_s)."""
    first = math.floor(start_s / bucket_s) * bucket_s
    return [first + i * bucket_s for i in range(int(math.ceil((end_s - first) / bucket_s)))]


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def finite(value: object) -> float | None:
    """A stored field's number as a sample of `SeriesSource.samples` has it, read as
    `diagnose.analysis.num` reads that (nothing infinite or NaN), quickly: the grids ask this of
    every field of a day of points."""
    if type(value) is float:
        return value if math.isfinite(value) else None
    if type(value) is int or type(value) is bool:  # as stored: a bool counts 0/1 (timeseries._field_value)
        return float(value)
    return None


RoundValues = tuple[float | None, float | None, float | None, float | None]


def round_values(sample: Sample, kind: str, resolution: str) -> RoundValues:
    """(latency, low, high, loss %) of one round, or of one rollup bucket of rounds."""
    descriptor = PROBES.get(kind)
    if descriptor is None:
        return None, None, None, None
    latency_field = descriptor.latency_field
    if resolution == RAW:
        fields = sample.fields
        latency = finite(fields.get(latency_field))
        low, high, loss = finite(fields.get("rtt_min_ms")), finite(fields.get("rtt_max_ms")), finite(fields.get("loss_pct"))
        if loss is None and (up := finite(fields.get("up"))) is not None:
            loss = 100.0 * (1.0 - up)  # a failed round is a lost one
        return latency, latency if low is None else low, latency if high is None else high, loss
    else:
        latency = num(sample, stored_field("probe", latency_field, "mean", resolution))
        low_name, high_name = stored_field("probe", "rtt_min_ms", "min", resolution), stored_field("probe", "rtt_max_ms", "max", resolution)
        low = num(sample, low_name) if num(sample, low_name) is not None else num(sample, stored_field("probe", latency_field, "min", resolution))
        high = num(sample, high_name) if num(sample, high_name) is not None else num(sample, stored_field("probe", latency_field, "max", resolution))
    loss = num(sample, "loss_pct")
    if loss is None and (up := num(sample, "up")) is not None:
        loss = 100.0 * (1.0 - up)  # a failed round is a lost one (its mean on a rollup: the share failed)
    return latency, low, high, loss


class LatencyCell:
    """The rounds of one target in one bucket."""

    __slots__ = ("latencies", "low", "high", "loss_sum", "loss_n")

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.low: float | None = None
        self.high: float | None = None
        self.loss_sum = 0.0
        self.loss_n = 0

    def add(self, latency: float | None, low: float | None, high: float | None, loss: float | None) -> None:
        if latency is not None:
            self.latencies.append(latency)
        if low is not None and (self.low is None or low < self.low):
            self.low = low
        if high is not None and (self.high is None or high > self.high):
            self.high = high
        if loss is not None:
            self.loss_sum += loss
            self.loss_n += 1

    def bucket(self, start_s: float) -> LatencyBucket:
        return LatencyBucket(start_s, _median(self.latencies), self.low, self.high, self.loss_sum / self.loss_n if self.loss_n else None)


class LatencyGrid:
    """Each probe target as each agent measures it: the median of its rounds' latency (the kind's
    latency field) per bucket, the band from the lowest to the highest echo (`rtt_min_ms` /
    `rtt_max_ms` where the kind has them, else the latency's own), and the loss (the rounds'
    `loss_pct`, else the share of failed rounds). On a rollup the median is of the bucket means."""

    def __init__(self, bucket_s: float, resolution: str = RAW):
        self.bucket_s = bucket_s
        self.resolution = resolution
        self.kinds: dict[Target, str] = {}
        self.cells: dict[Target, dict[int, LatencyCell]] = {}

    def add(self, sample: Sample) -> None:
        host, target = sample.tags.get("host"), sample.tags.get("target")
        if host and target and is_round(sample):
            kind = sample.tags.get("kind", "")
            self.add_round((host, target), kind, sample.time_ns, round_values(sample, kind, self.resolution))

    def add_round(self, key: Target, kind: str, time_ns: int, values: RoundValues) -> None:
        """One round (its values from `round_values` at this grid's resolution) of one target."""
        self.kinds.setdefault(key, kind)
        cells = self.cells.get(key)
        if cells is None:
            cells = self.cells[key] = {}
        index = int(time_ns / 1e9 // self.bucket_s)
        cell = cells.get(index)
        if cell is None:
            cell = cells[index] = LatencyCell()
        cell.add(*values)

    def buckets(self, key: Target, starts: list[float]) -> list[LatencyBucket]:
        cells = self.cells.get(key, {})
        out = []
        for t in starts:
            cell = cells.get(int(t // self.bucket_s))
            out.append(cell.bucket(t) if cell is not None else LatencyBucket(t, None, None, None, None))
        return out

    def keys_within(self, starts: list[float]) -> list[Target]:
        """The targets with a round in one of these buckets."""
        first, last = int(starts[0] // self.bucket_s), int(starts[-1] // self.bucket_s)
        return [key for key, cells in self.cells.items() if any(first <= i <= last for i in cells)]

    def forget_before(self, start_s: float) -> None:
        for key in _forget_cells(self.cells, int(start_s // self.bucket_s)):
            del self.kinds[key]


class RoundTimes:
    """The raw rounds' latency with their times, per target, for the change against yesterday:
    the median of the last hour against the median of the same hour a day earlier."""

    def __init__(self) -> None:
        self.rounds: dict[Target, list[tuple[float, float]]] = defaultdict(list)

    def add(self, sample: Sample) -> None:
        host, target = sample.tags.get("host"), sample.tags.get("target")
        if host and target and is_round(sample):
            self.add_round((host, target), sample.time_ns, probe_latency_ms(sample.tags.get("kind"), sample.fields))

    def add_round(self, key: Target, time_ns: int, latency: float | None) -> None:
        if latency is None:
            return
        rounds = self.rounds[key]
        entry = (time_ns / 1e9, latency)
        if not rounds or rounds[-1] <= entry:
            rounds.append(entry)  # rounds mostly come in time order
        else:
            bisect.insort(rounds, entry)

    def medians(self, now_s: float) -> dict[Target, tuple[float | None, float | None]]:
        """(agent, target) -> (median latency of [now - 1 h, now), of [now - 25 h, now - 24 h))."""
        out = {}
        for key, rounds in self.rounds.items():
            def within(a: float, b: float) -> list[float]:
                return [v for _, v in rounds[bisect.bisect_left(rounds, (a,)): bisect.bisect_left(rounds, (b,))]]
            recent, earlier = within(now_s - HOUR_S, now_s), within(now_s - DAY_S - HOUR_S, now_s - DAY_S)
            if recent or earlier:
                out[key] = (_median(recent), _median(earlier))
        return out

    def forget_before(self, start_s: float) -> None:
        for key in list(self.rounds):
            rounds = self.rounds[key]
            del rounds[: bisect.bisect_left(rounds, (start_s,))]
            if not rounds:
                del self.rounds[key]


class MeanGrid:
    """Per series (`key_of` a sample, None: not one of ours) and bucket, the mean over its samples
    of the sum of each group's fields (a sample lacking all of a group's fields is left out of that
    group's mean), and the newest value of each of `latest`'s fields."""

    def __init__(self, bucket_s: float, key_of: Callable[[Sample], Hashable | None], groups: Mapping[str, tuple[str, ...]],
                 latest: tuple[str, ...] = ()):
        self.bucket_s = bucket_s
        self.key_of = key_of
        self.groups = dict(groups)
        self._groups = tuple(groups.items())
        self.latest_fields = latest
        # key -> bucket index -> group -> [sum, count]
        self.cells: dict[Hashable, dict[int, dict[str, list[float]]]] = {}
        self.latest: dict[Hashable, dict[str, tuple[int, float]]] = {}

    def add(self, sample: Sample) -> None:
        key = self.key_of(sample)
        if key is None:
            return
        index = int(sample.time_ns / 1e9 // self.bucket_s)
        cells = self.cells.get(key)
        if cells is None:
            cells = self.cells[key] = {}
        cell = cells.get(index)
        if cell is None:
            cell = cells[index] = {}
        fields = sample.fields
        for group, names in self._groups:
            total, seen = 0.0, False
            for name in names:
                value = fields.get(name)
                if value is not None and (value := finite(value)) is not None:
                    total += value
                    seen = True
            if seen:
                acc = cell.get(group)
                if acc is None:
                    cell[group] = [total, 1]
                else:
                    acc[0] += total
                    acc[1] += 1
        for name in self.latest_fields:
            value = finite(fields.get(name))
            if value is not None:
                kept = self.latest.setdefault(key, {})
                if name not in kept or kept[name][0] <= sample.time_ns:
                    kept[name] = (sample.time_ns, value)

    def means(self, key: Hashable, group: str, starts: list[float]) -> list[tuple[float, float | None]]:
        """(bucket middle, mean) per bucket; None where the bucket has no sample."""
        cells = self.cells.get(key, {})
        out = []
        for t in starts:
            acc = cells.get(int(t // self.bucket_s), {}).get(group)
            out.append((t + self.bucket_s / 2, acc[0] / acc[1] if acc else None))
        return out

    def total(self, key: Hashable, groups: tuple[str, ...], starts: list[float]) -> float:
        """The sum of these groups' sums over the buckets from starts[0] to starts[-1]."""
        first, last = int(starts[0] // self.bucket_s), int(starts[-1] // self.bucket_s)
        return sum(acc[0] for i, cell in self.cells.get(key, {}).items() if first <= i <= last
                   for g, acc in cell.items() if g in groups)

    def keys(self) -> list[Hashable]:
        return list(self.cells)

    def newest(self, key: Hashable, name: str) -> float | None:
        kept = self.latest.get(key, {}).get(name)
        return kept[1] if kept is not None else None

    def forget_before(self, start_s: float) -> None:
        for key in _forget_cells(self.cells, int(start_s // self.bucket_s)):
            self.latest.pop(key, None)


def _forget_cells(cells_by_key: dict[Any, dict[int, Any]], first: int) -> list[Any]:
    """Drop the buckets before bucket number `first` from each key's cells; returns the keys left
    with none (removed too), for the grid to forget what else it keeps of them."""
    emptied = []
    for key in list(cells_by_key):
        cells = cells_by_key[key]
        for i in [i for i in cells if i < first]:
            del cells[i]
        if not cells:
            del cells_by_key[key]
            emptied.append(key)
    return emptied
