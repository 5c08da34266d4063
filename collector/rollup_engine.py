"""Rollups the collector computes itself, for storage without continuous queries (docs/storage.md).

VictoriaMetrics, InfluxDB 2/3, and an InfluxDB 1.x whose user may not create continuous queries
(`[storage] rollups = "collector"`) get the same 5-minute and hourly rollups as InfluxDB 1.x's
continuous queries make: the fields, their names and aggregates from collector/rollups.py, every
tag kept, buckets aligned on the epoch, the p95 as InfluxQL's percentile() (nearest rank), the
hour made from its twelve 5-minute buckets as OF_ROLLUPS says.

- The writer hands `fold` the lines the storage took (refused points never count), before the
  batches leave the durable queue, all the batches released together at once; of each line only
  the series, the time and the numbers of the rolled-up fields are read, a series' lines at once.
- A 5-minute bucket stays open for LATE_S after its end (the continuous queries' RESAMPLE FOR: two
  hours), so a point up to that late is folded into it; then `close_due` writes it and folds it
  into its hour, which is written when its last 5-minute bucket is. A point whose bucket has been
  closed is late: it is in the raw points, not in the rollups, and counted (`late_points`).
- Durable: every open bucket (count, sum, min, max, or the values of a p95 field) is in SQLite
  (data_dir/rollups.sqlite3, synchronous=FULL), committed before the queue lets go of the
  batches; the committed state names the last batch folded (the batches released together are a
  run from the queue's head), so a batch written again after a crash is not folded twice. A
  bucket leaves the state only after the storage took its row.
- Each bucket is written once, when it closes: VictoriaMetrics keeps every sample written, also
  two at the same time, so a row rewritten as points arrive would count twice there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sqlite3
import time
from array import array
from dataclasses import dataclass, field
from itertools import compress
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

from agent.points import Point
from collector.config import Inventory, StorageSettings
from collector.lineprotocol import aligned_number_columns, encode_point, number_columns, parse_head, split_line
from collector.retention import CADENCE
from collector.rollups import (
    FIVE_MINUTES,
    HOURLY,
    NS,
    OF_ROLLUPS,
    RESOLUTIONS,
    ROLLUPS,
    RollupField,
    rolled_up_measurements,
    rollup_fields,
    victoriametrics_db,
)
from collector.victoriametrics import VictoriaMetricsError, inventory_retention_s, retention_notes
from collector.writer import BadPointsError, RetryableWriteError, Sink, Written

log = logging.getLogger("nettvakt.rollups")

# A bucket is open this long after its end: as far back as the continuous queries recompute.
LATE_S = CADENCE[FIVE_MINUTES].for_s
FIVE_MINUTE_NS = (RESOLUTIONS[FIVE_MINUTES].bucket_s or 0) * NS
HOUR_NS = (RESOLUTIONS[HOURLY].bucket_s or 0) * NS
# Closed buckets are looked for this often, and written this many lines a request.
CLOSE_EVERY_S = 30.0
# ... while the writer is caught up: the oldest batch in the queue waited at most this long.
CAUGHT_UP_S = 60.0
WRITE_LINES = 5000
# Tag sets as points carry them, remembered with their series (sorted, none empty): emptied when full.
SERIES_CACHE = 50_000
STATE_FILE = "rollups.sqlite3"

# A table with rowids and a unique key: a bucket's state is hundreds of bytes, which SQLite stores
# several times slower in a WITHOUT ROWID table (its key is the row); a state file of that first
# schema is converted when opened (`_convert`).
SCHEMA = """
CREATE TABLE IF NOT EXISTS bucket (
    resolution TEXT NOT NULL,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    layout TEXT NOT NULL,
    state BLOB NOT NULL,
    UNIQUE (resolution, measurement, tags, start_ns)
);
CREATE TABLE IF NOT EXISTS mark (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

Tags = tuple[tuple[str, str], ...]
BucketKey = tuple[str, Tags, int]  # measurement, tags (sorted, none empty), start
STATS = 4  # per field of a bucket: count, sum, min, max
_EMPTY = (0.0, 0.0, math.inf, -math.inf)


@dataclass(frozen=True, slots=True)
class Layout:
    """What a bucket of one measurement and resolution folds, in order: raw fields (5-minute) or
    5-minute rollup fields (hourly); `kept`: the ones whose values are kept, for a p95."""

    names: tuple[str, ...]
    kept: tuple[str, ...]
    slot: Mapping[str, int]  # name -> its index in names
    kept_slot: Mapping[str, int]  # name -> its index in kept
    template: array  # the stats of an empty bucket
    kept_index: tuple[int, ...]  # each kept field's index in names
    signature: str  # stored beside each bucket: a state written under another contract is read by name
    # The layouts of some of its fields, by their indices in names, made once: a bucket is saved
    # with the fields it holds only.
    parts: dict[tuple[int, ...], "Part"] = field(default_factory=dict, compare=False)

    @classmethod
    def of(cls, names: tuple[str, ...], kept: tuple[str, ...]) -> "Layout":
        return cls(names, kept, MappingProxyType({n: i for i, n in enumerate(names)}),
                   MappingProxyType({n: i for i, n in enumerate(kept)}), array("d", _EMPTY * len(names)),
                   tuple(names.index(n) for n in kept), ",".join(names) + "|" + ",".join(kept))

    @classmethod
    def of_signature(cls, signature: str) -> "Layout":
        found = _SIGNED.get(signature)
        if found is None:
            names, _, kept = signature.partition("|")
            found = _SIGNED[signature] = cls.of(tuple(names.split(",")) if names else (), tuple(kept.split(",")) if kept else ())
        return found

    def part(self, used: tuple[int, ...]) -> "Part":
        """The fields at these indices of names: their layout, and how to take their stats and kept values from a bucket."""
        found = self.parts.get(used)
        if found is None:
            names = tuple(self.names[i] for i in used)
            layout = Layout.of(names, tuple(n for n in self.kept if n in names))
            found = self.parts[used] = Part(layout, itemgetter(*(STATS * i + k for i in used for k in range(STATS))),
                                            tuple(self.kept_slot[n] for n in layout.kept))
        return found


@dataclass(frozen=True, slots=True)
class Part:
    """Some fields of a layout, as a bucket holding only those is saved."""

    layout: Layout
    take_stats: Callable[[array], tuple[float, ...]]  # their stats, in order, from a bucket's
    kept_at: tuple[int, ...]  # the indices of their kept values in the bucket's


# Layouts read from the state file, by signature (a few per measurement).
_SIGNED: dict[str, Layout] = {}


class Bucket:
    """One open bucket, compact (a few hundred bytes, not a Python float per number): the stats
    of each field of its layout in one array of doubles, and the values of each kept field. A kept
    field's stats are made from its values when asked (`value`): folding only appends them."""

    __slots__ = ("stats", "values")

    def __init__(self, layout: Layout):
        self.stats = layout.template[:]
        # A kept field's values, made on its first value: most buckets hold a few of the layout's fields.
        self.values: list[array | None] = [None] * len(layout.kept)

    def add(self, layout: Layout, name: str, value: float) -> None:
        self.add_values(layout, name, [value])

    def add_values(self, layout: Layout, name: str, values: list[float]) -> None:
        """Fold `values` of field `name` in, in their order (sum() from the bucket's sum adds them
        one by one, as InfluxDB does)."""
        kept = layout.kept_slot.get(name)
        if kept is not None:
            held = self.values[kept]
            if held is None:
                self.values[kept] = array("d", values)
            else:
                held.extend(values)
            return
        stats, at = self.stats, STATS * layout.slot[name]
        stats[at] += len(values)
        stats[at + 1] = sum(values, stats[at + 1])
        low, high = min(values), max(values)
        if low < stats[at + 2]:
            stats[at + 2] = low
        if high > stats[at + 3]:
            stats[at + 3] = high

    def count(self, layout: Layout, name: str) -> int:
        """How many values of `name` were folded in."""
        kept = layout.kept_slot.get(name)
        if kept is not None:
            return len(self.values[kept] or ())
        return int(self.stats[STATS * layout.slot[name]])

    def value(self, layout: Layout, name: str, aggregate: str) -> float | None:
        """`aggregate` of the values of `name` folded in; None when none were."""
        kept = layout.kept_slot.get(name)
        if kept is not None:
            held = self.values[kept]
            if not held:
                return None
            if aggregate == "mean":
                return sum(held) / len(held)
            if aggregate == "sum":
                return sum(held)
            if aggregate == "min":
                return min(held)
            if aggregate == "max":
                return max(held)
            return influx_percentile(list(held), 95)
        at = STATS * layout.slot[name]
        count = self.stats[at]
        if count == 0:
            return None
        if aggregate == "mean":
            return self.stats[at + 1] / count
        if aggregate == "sum":
            return self.stats[at + 1]
        if aggregate == "min":
            return self.stats[at + 2]
        if aggregate == "max":
            return self.stats[at + 3]
        return influx_percentile(list(self.values[layout.kept_slot[name]] or ()), 95)

    def copy(self) -> "Bucket":
        twin = Bucket.__new__(Bucket)
        twin.stats = self.stats[:]
        twin.values = [None if v is None else array("d", v) for v in self.values]
        return twin

    def pack(self, layout: Layout) -> tuple[str, bytes]:
        """The signature and the bytes of the fields it holds (most buckets hold a few of their
        layout's fields): the stats of each, then how many values each kept one has, then those."""
        stats = self.stats
        present = stats[0::STATS]  # the fields counted, and the kept ones holding values
        for at, values in zip(layout.kept_index, self.values):
            if values:
                present[at] = 1.0
        used = tuple(compress(range(len(layout.names)), present))
        if len(used) == len(layout.names):
            signature, held, values = layout.signature, stats.tobytes(), self.values
        else:
            part = layout.part(used)
            signature, held, values = part.layout.signature, array("d", part.take_stats(stats)).tobytes(), [self.values[i] for i in part.kept_at]
        return signature, held + array("I", [len(v) if v else 0 for v in values]).tobytes() + b"".join(v.tobytes() for v in values if v)

    @classmethod
    def unpack(cls, layout: Layout, signature: str, blob: bytes) -> "Bucket":
        """A bucket saved under `signature`; fields the layout no longer has are left out."""
        old = Layout.of_signature(signature)
        width = STATS * len(old.names) * 8
        stats = array("d")
        stats.frombytes(blob[:width])
        counts = array("I")
        counts.frombytes(blob[width:width + 4 * len(old.kept)])
        at, values = width + 4 * len(old.kept), []
        for count in counts:
            one = array("d")
            one.frombytes(blob[at:at + 8 * count])
            values.append(one if count else None)
            at += 8 * count
        if old == layout or old.signature == layout.signature:
            bucket = cls.__new__(cls)
            bucket.stats, bucket.values = stats, values
            return bucket
        bucket = cls(layout)
        for name, i in old.slot.items():
            if name in layout.slot:
                j = STATS * layout.slot[name]
                bucket.stats[j:j + STATS] = stats[STATS * i:STATS * i + STATS]
                if name in layout.kept_slot and name in old.kept_slot:
                    bucket.values[layout.kept_slot[name]] = values[old.kept_slot[name]]
        return bucket


@dataclass(frozen=True, slots=True)
class MeasurementPlan:
    fields: tuple[RollupField, ...]  # the 5-minute rollup's fields (collector/rollups.py)
    raw: Layout  # a 5-minute bucket: the raw fields it folds
    hour: Layout  # an hour: the 5-minute rollup fields it folds

    @classmethod
    def of(cls, fields: tuple[RollupField, ...]) -> "MeasurementPlan":
        sources = tuple(dict.fromkeys(f.source for f in fields))
        kept = tuple(dict.fromkeys(f.source for f in fields if f.aggregate == "p95"))
        return cls(fields, Layout.of(sources, kept), Layout.of(tuple(f.name for f in fields), ()))

    def layout(self, resolution: str) -> Layout:
        return self.raw if resolution == FIVE_MINUTES else self.hour


PLANS: Mapping[str, MeasurementPlan] = MappingProxyType({spec.name: MeasurementPlan.of(rollup_fields(spec)) for spec in rolled_up_measurements()})


def influx_percentile(values: list[float], percentile: float) -> float | None:
    """InfluxQL's percentile(): the value at rank floor(n * p / 100 + 0.5) of the sorted values
    (written as InfluxDB 1.x computes it, so the float rounding is the same); None when that rank
    is outside them."""
    rank = math.floor(len(values) * percentile / 100.0 + 0.5) - 1
    if rank < 0 or rank >= len(values):
        return None
    return sorted(values)[rank]


def five_minute_fields(plan: MeasurementPlan, bucket: Bucket) -> dict[str, float]:
    """The row of a 5-minute bucket: each rollup field of a raw field the bucket holds."""
    row = {}
    for f in plan.fields:
        if (value := bucket.value(plan.raw, f.source, f.aggregate)) is not None:
            row[f.name] = value
    return row


def hour_fields(plan: MeasurementPlan, hour: Bucket) -> dict[str, float]:
    """The row of an hour from its 5-minute rows: each field as OF_ROLLUPS says (mean of the means, ...)."""
    row = {}
    for f in plan.fields:
        if (value := hour.value(plan.hour, f.name, OF_ROLLUPS[f.aggregate])) is not None:
            row[f.name] = value
    return row


def _by_start(starts: list[int], fields: list[str]) -> dict[int, list[str]]:
    """Lines' fields by the start of their bucket, each bucket's in their order."""
    out: dict[int, list[str]] = {}
    for start, text in zip(starts, fields):
        out.setdefault(start, []).append(text)
    return out


def tags_key(tags: Mapping[str, str]) -> Tags:
    # An empty tag value is not written (collector/lineprotocol.py): the same series as without it.
    return tuple(sorted((k, v) for k, v in tags.items() if v != ""))


def destinations(storage: StorageSettings) -> Mapping[str, Mapping[str, str]]:
    """The write API's query parameters that send each rollup resolution where its readers look:
    the retention policy of its name on the v1 API (`nettvakt_5m`, through InfluxDB 2/3's DBRP
    mapping to a bucket), the bucket of that name on the v2 API, the label `db` on VictoriaMetrics."""
    if storage.kind == "victoriametrics":
        return {r.name: {"db": victoriametrics_db(storage.database or "", r.name)} for r in ROLLUPS}
    if storage.kind == "influxdb_v2":
        return {r.name: {"bucket": r.retention_policy or ""} for r in ROLLUPS}
    return {r.name: {"rp": r.retention_policy or ""} for r in ROLLUPS}


def startup_notes(inventory: Inventory) -> list[str]:
    """What the collector cannot make as [storage] asks where it makes the rollups itself, said at
    its start (blocking: asks VictoriaMetrics for its retention)."""
    storage = inventory.storage
    if storage.kind == "victoriametrics":
        try:
            differences, notes = retention_notes(storage, inventory_retention_s(inventory))
        except VictoriaMetricsError as exc:
            return [f"its retention not read (nettvakt check reads it again): {exc}"]
        return differences + notes
    places = ", ".join(f"{k}={v}" for where in destinations(storage).values() for k, v in where.items())
    return [f"storage kind {storage.kind!r}: the collector writes the rollups to {places} and does not create them or set how "
            "long they are kept (docs/storage.md)"]


@dataclass
class EngineStats:
    folded_points: int = 0  # since start
    late_points: int = 0  # ever (kept in the state): their buckets had been written
    rows_written: dict[str, int] = field(default_factory=lambda: {r.name: 0 for r in ROLLUPS})  # since start
    last_error: str | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class _Closing:
    """What one round of closing writes and leaves behind, computed before anything changes."""

    mark_ns: int
    rows: dict[str, list[Point]]  # by resolution
    closed_5m: list[BucketKey]
    hours: dict[BucketKey, Bucket]  # hours still open, as they are after this round
    closed_1h: list[BucketKey]


class RollupEngine:
    """The open buckets of every series, in memory and in SQLite. `fold` and `close_due` are called
    on the event loop (the writer's drain, the closing loop); SQLite work runs in a thread."""

    def __init__(self, path: Path, sink: Sink, where: Mapping[str, Mapping[str, str]], *, queue_highest_id: int,
                 clock: Callable[[], int] = time.time_ns, late_s: int = LATE_S):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.sink = sink
        self.where = where
        self.clock = clock
        self.late_ns = late_s * NS
        self.stats = EngineStats()
        self._lock = asyncio.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._convert()
        self._db.executescript(SCHEMA)
        self._load()
        if queue_highest_id < self.folded_through:
            # A new queue file numbers its batches from 1 again: they were never folded.
            log.warning("the durable queue is newer than the rollup state (its last batch %d, folded through %d): "
                        "folding its batches from the first", queue_highest_id, self.folded_through)
            self.folded_through = 0
            with self._db:
                self._set_marks({"folded_through": 0})

    # --- state ------------------------------------------------------------------------------------
    def _convert(self) -> None:
        """A state file whose buckets are in a WITHOUT ROWID table (the first schema) gets the table
        of SCHEMA, every bucket copied, in one transaction: killed halfway, the file is as it was."""
        row = self._db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'bucket'").fetchone()
        if row is None or "WITHOUT ROWID" not in row[0].upper():
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE bucket RENAME TO bucket_before")
            self._db.execute(SCHEMA.split(";")[0])
            moved = self._db.execute("INSERT INTO bucket (resolution, measurement, tags, start_ns, layout, state) "
                                     "SELECT resolution, measurement, tags, start_ns, layout, state FROM bucket_before").rowcount
            self._db.execute("DROP TABLE bucket_before")
        log.info("rollup state %s converted to its table with rowids: %d open bucket(s) kept", self.path, moved)

    def _load(self) -> None:
        marks = dict(self._db.execute("SELECT name, value FROM mark").fetchall())
        self.folded_through = int(marks.get("folded_through", 0))  # the last batch id folded
        self.closed_before_ns = int(marks.get("closed_before_ns", 0))  # every 5-minute bucket before it is written
        self.stats.late_points = int(marks.get("late_points", 0))
        self.open: dict[str, dict[BucketKey, Bucket]] = {FIVE_MINUTES: {}, HOURLY: {}}
        self._tags: dict[Tags, Tags] = {}  # one tuple per series, shared by its buckets
        self._series: dict[str, tuple[str, Tags]] = {}  # a line's head -> its measurement and series
        self._tags_text: dict[Tags, str] = {}
        rows = self._db.execute("SELECT resolution, measurement, tags, start_ns, layout, state FROM bucket").fetchall()
        for resolution, measurement, tags, start_ns, signature, state in rows:
            plan = PLANS.get(measurement)
            if plan is None:  # the contract no longer rolls it up
                continue
            series = tuple(tuple(pair) for pair in json.loads(tags))
            key = (measurement, self._tags.setdefault(series, series), start_ns)
            self.open[resolution][key] = Bucket.unpack(plan.layout(resolution), signature, state)

    def _set_marks(self, marks: Mapping[str, int]) -> None:
        self._db.executemany("INSERT INTO mark (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                             list(marks.items()))

    def _save_buckets(self, resolution: str, buckets: Iterable[tuple[BucketKey, Bucket]]) -> None:
        self._db.executemany(
            "INSERT INTO bucket (resolution, measurement, tags, start_ns, layout, state) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(resolution, measurement, tags, start_ns) DO UPDATE SET layout = excluded.layout, state = excluded.state",
            [(resolution, m, self._tags_json(tags), start, *bucket.pack(PLANS[m].layout(resolution)))
             for (m, tags, start), bucket in buckets],
        )

    def _tags_json(self, tags: Tags) -> str:
        """How a series' tags are stored (json.dumps of the tuple), made once per series."""
        text = self._tags_text.get(tags)
        if text is None:
            if len(self._tags_text) >= SERIES_CACHE:
                self._tags_text.clear()
            text = self._tags_text[tags] = json.dumps(tags)
        return text

    def _delete_buckets(self, resolution: str, keys: Iterable[BucketKey]) -> None:
        self._db.executemany("DELETE FROM bucket WHERE resolution = ? AND measurement = ? AND tags = ? AND start_ns = ?",
                             [(resolution, m, self._tags_json(tags), start) for m, tags, start in keys])

    def close(self) -> None:
        self._db.close()

    # --- folding ---------------------------------------------------------------------------------
    async def fold(self, written: Written) -> None:
        """Fold what the storage took of the written batches (their lines but the refused ones)
        into their open buckets and commit once for all of them; a batch folded before (written
        again after a crash) is not folded again. Raises RetryableWriteError when the state cannot
        be saved: the batches stay in the queue."""
        if not written.batches:
            return
        async with self._lock:
            await asyncio.to_thread(self._fold, written)

    def _fold(self, written: Written) -> None:
        highest = max(b.id for b in written.batches)
        if highest <= self.folded_through:
            return
        # Each series' lines first (read no further than their head and time), then the numbers of
        # all of them at once, then each run of them in one 5-minute bucket folded field by field,
        # in the order they came.
        by_series: dict[str, tuple[list[int], list[str]]] = {}
        for batch in written.batches:
            if batch.id <= self.folded_through:
                continue
            for line in written.lines_of(batch):
                head, fields, time_ns = split_line(line)
                series = by_series.get(head)
                if series is None:
                    by_series[head] = ([time_ns - time_ns % FIVE_MINUTE_NS], [fields])
                else:
                    series[0].append(time_ns - time_ns % FIVE_MINUTE_NS)
                    series[1].append(fields)
        touched: dict[BucketKey, Bucket] = {}
        late = folded = 0
        for head, (starts, fields) in by_series.items():
            measurement, series = self._series_of(head)
            plan = PLANS.get(measurement)
            if plan is None:
                continue
            layout = plan.raw
            columns = aligned_number_columns(fields, layout.slot)
            if columns is None:  # lines of other fields, or in another order: bucket by bucket
                for start, some in _by_start(starts, fields).items():
                    run = number_columns(some, layout.slot)
                    added = self._fold_run(measurement, series, start, layout, run, max(map(len, run.values()), default=0), touched)
                    late += added if start < self.closed_before_ns else 0
                    folded += added if start >= self.closed_before_ns else 0
                continue
            if not columns:
                continue
            at = 0
            while at < len(starts):  # runs of lines in one bucket
                start, end = starts[at], at + 1
                while end < len(starts) and starts[end] == start:
                    end += 1
                run = {name: values[at:end] for name, values in columns.items()}
                added = self._fold_run(measurement, series, start, layout, run, end - at, touched)
                late += added if start < self.closed_before_ns else 0
                folded += added if start >= self.closed_before_ns else 0
                at = end
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._save_buckets(FIVE_MINUTES, touched.items())
                self._set_marks({"folded_through": highest, "late_points": self.stats.late_points + late})
        except sqlite3.Error as exc:
            self._load()  # what is on disk is the truth: the batches are folded again when retried
            raise RetryableWriteError(f"rollup state not saved in {self.path}: {exc}") from exc
        self.folded_through = highest
        self.stats.late_points += late
        self.stats.folded_points += folded
        if late:
            log.info("%d point(s) arrived after their 5-minute bucket was written: kept raw, not in the rollups", late)

    def _fold_run(self, measurement: str, series: Tags, start: int, layout: Layout, columns: Mapping[str, list[float]],
                  points: int, touched: dict[BucketKey, Bucket]) -> int:
        """Fold the columns of a run of `points` points into their bucket, unless it was written
        (then they are late); returns how many points had a number to fold."""
        if not columns:
            return 0
        if start < self.closed_before_ns:
            return points
        key = (measurement, series, start)
        bucket = self.open[FIVE_MINUTES].get(key)
        if bucket is None:
            bucket = self.open[FIVE_MINUTES][key] = Bucket(layout)
        for name, values in columns.items():
            bucket.add_values(layout, name, values)
        touched[key] = bucket
        return points

    def _series_of(self, head: str) -> tuple[str, Tags]:
        """The measurement and the series (its tags sorted, one tuple per series) of a line's head."""
        found = self._series.get(head)
        if found is None:
            if len(self._series) >= SERIES_CACHE:
                self._series.clear()
            measurement, tags = parse_head(head)
            series = tags_key(tags)
            found = self._series[head] = (measurement, self._tags.setdefault(series, series))
        return found

    # --- closing ----------------------------------------------------------------------------------
    def due_mark(self, now_ns: int) -> int:
        """Every 5-minute bucket that starts before this is closed at now_ns (it ended LATE_S ago)."""
        edge = now_ns - self.late_ns
        return edge - edge % FIVE_MINUTE_NS

    def _closing(self, mark_ns: int) -> _Closing:
        rows: dict[str, list[Point]] = {FIVE_MINUTES: [], HOURLY: []}
        closed_5m = [key for key in self.open[FIVE_MINUTES] if key[2] < mark_ns]
        hours: dict[BucketKey, Bucket] = {}
        for key in sorted(closed_5m, key=lambda k: k[2]):
            measurement, tags, start = key
            plan = PLANS.get(measurement)
            if plan is None:
                continue
            row = five_minute_fields(plan, self.open[FIVE_MINUTES][key])
            if not row:
                continue
            rows[FIVE_MINUTES].append(Point(measurement, dict(tags), row, start))
            hour_key = (measurement, tags, start - start % HOUR_NS)
            if hour_key not in hours:  # a copy: nothing changes until the rows are written
                hour = self.open[HOURLY].get(hour_key)
                hours[hour_key] = hour.copy() if hour is not None else Bucket(plan.hour)
            for name, value in row.items():
                hours[hour_key].add(plan.hour, name, value)
        closed_1h = [key for key in {*self.open[HOURLY], *hours} if key[2] + HOUR_NS <= mark_ns]
        for key in sorted(closed_1h, key=lambda k: k[2]):
            hour = hours.get(key) or self.open[HOURLY][key]
            row = hour_fields(PLANS[key[0]], hour)
            if row:
                rows[HOURLY].append(Point(key[0], dict(key[1]), row, key[2]))
        return _Closing(mark_ns, rows, closed_5m, {k: v for k, v in hours.items() if k[2] + HOUR_NS > mark_ns}, closed_1h)

    async def close_due(self) -> int:
        """Write the buckets that are due (their end LATE_S ago) and forget them; returns the rows
        written. A write the storage refuses or cannot take now raises, and nothing changes: the
        same rows are written at the next round."""
        async with self._lock:
            mark = self.due_mark(self.clock())
            if mark <= self.closed_before_ns:
                return 0
            closing = self._closing(mark)
            for resolution, points in closing.rows.items():
                for at in range(0, len(points), WRITE_LINES):
                    body = "\n".join(encode_point(p) for p in points[at:at + WRITE_LINES]) + "\n"
                    await self.sink.write(body.encode("utf-8"), where=self.where[resolution])
            await asyncio.to_thread(self._commit_closing, closing)
            for resolution, points in closing.rows.items():
                self.stats.rows_written[resolution] += len(points)
            return sum(len(points) for points in closing.rows.values())

    def _commit_closing(self, closing: _Closing) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._delete_buckets(FIVE_MINUTES, closing.closed_5m)
            self._save_buckets(HOURLY, closing.hours.items())
            self._delete_buckets(HOURLY, closing.closed_1h)
            self._set_marks({"closed_before_ns": closing.mark_ns})
        for key in closing.closed_5m:
            del self.open[FIVE_MINUTES][key]
        self.open[HOURLY].update(closing.hours)
        for key in closing.closed_1h:
            self.open[HOURLY].pop(key, None)
        self.closed_before_ns = closing.mark_ns
        self._tags = {key[1]: key[1] for buckets in self.open.values() for key in buckets}  # series gone are forgotten

    async def run(self, caught_up: Callable[[], bool]) -> None:
        """Close what is due every CLOSE_EVERY_S while the writer is caught up (a backlog still in the
        queue would otherwise reach its buckets after they were written); failures are logged, shown
        in /health and tried again at the next round."""
        while True:
            await asyncio.sleep(CLOSE_EVERY_S)
            try:
                if not await asyncio.to_thread(caught_up):
                    continue
                await self.close_due()
            except (RetryableWriteError, BadPointsError, sqlite3.Error, OSError) as exc:
                self.stats.failures += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                log.error("rollups not written (tried again in %.0f s): %s", CLOSE_EVERY_S, exc)
                continue
            self.stats.last_error = None

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"by": "collector", "open_buckets": {r: len(b) for r, b in self.open.items()}, "folded_points": s.folded_points,
                "late_points": s.late_points, "rows_written": dict(s.rows_written), "closed_before_ns": self.closed_before_ns,
                "failures": s.failures, "last_error": s.last_error}

    def problems(self) -> list[str]:
        if self.stats.last_error is None:
            return []
        return [f"rollups are not being written ({self.stats.failures} failed rounds; they are kept and tried again): {self.stats.last_error}"]
