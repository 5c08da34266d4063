"""Read stored points back, from InfluxDB or from the collector's own durable queue.

The read side of reports and `nettvakt diagnose`: one small interface (`SeriesSource.samples`)
over the two places points live. `storage.kind = "local"` keeps every point in the durable
queue (collector/queue.py), so `LocalSource` reads that SQLite file read-only; with InfluxDB
the writer empties the queue, so `InfluxSource` asks InfluxDB over the v1 /query API.

Resolutions (docs/storage.md): a reader asks the source which resolution suits its range
(`resolution_for`, which defers to `collector.rollups.resolution_for`, the one place that
decides) and reads at it (`samples(..., resolution=...)`). At a rollup resolution a sample's
fields are the rollup fields (`F` the bucket's mean, `F_min`, `F_max`, `F_p95`, a cumulative
field's maximum, an additive field's sum): the reader asks `collector.rollups.stored_field`
for the name. Events (`alert`, `login`) at a rollup resolution are read whole from the events
policy, which keeps them as long as the hourly rollups. The local store has no rollups: it
answers `raw` to every range (it is bounded by the queue's size anyway) and serves raw points.
"""

from __future__ import annotations

import json
import re
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Protocol

from agent.contract import MEASUREMENTS_SPEC, UNITS
from agent.points import Point
from collector.config import Inventory
from collector.influxql import InfluxQueryError, http_get, query, query_each
from collector.lineprotocol import line_starts, parse_line
from collector.rollups import (
    EVENTS_RETENTION_POLICY,
    NS,
    RAW,
    RESOLUTIONS,
    ROLLUPS,
    RetentionSettings,
    qualified_source,
    resolution_for,
    rollup_fields,
    victoriametrics_db,
)

# Reading a day of probe points is one large answer; the write timeout (storage.timeout_s) is
# sized for small batches, so reads get at least this long.
READ_TIMEOUT_S = 60.0

# Agents send backlog after an outage, so a point may reach the queue long after it was
# measured, never before (up to clock skew between agent and collector, which this covers).
CLOCK_SKEW_NS = 300 * 1_000_000_000


class SourceError(RuntimeError):
    """The store cannot be read; the message names the URL or path."""


class SourceConfigError(SourceError):
    """The store asked for is not configured (a configuration error, exit 2, not a failed read)."""


@dataclass(frozen=True, slots=True)
class Sample:
    time_ns: int
    tags: dict[str, str]
    fields: dict[str, float | str]


class SeriesSource(Protocol):
    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        """The resolution (`raw`, `5m`, `1h`) this store serves best for [start_ns, end_ns) as of now_ns."""
        ...

    def samples(
        self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW
    ) -> list[Sample]:
        """Points of `measurement` with start_ns <= time < end_ns whose tags equal `tags`, sorted by time;
        at a rollup resolution its buckets (time: the bucket's start), fields named as the rollup keeps them."""
        ...


def counter_increase(values: Iterable[float]) -> float:
    """How much a counter grew over readings in time order, across restarts.

    A reading below the one before it means the counter started again from zero (a printer's page
    count after a service reset, a device's after a firmware update): it grew by the new reading."""
    total, previous = 0.0, None
    for value in values:
        if previous is not None:
            total += value - previous if value >= previous else value
        previous = value
    return total


def _field_value(value: Any) -> float | str | None:
    # Storage keeps every number as a float (docs/metrics.md); booleans count as 0/1.
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return float(value)
    return str(value)


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def any_of(tag_sets: Iterable[Mapping[str, str]]) -> str:
    """An InfluxQL condition that holds for a series whose tags equal any one of `tag_sets`:
    `(("device" = 'a' AND "ifname" = 'x') OR ...)`. ValueError without a tag set, or with an empty one."""
    alternatives = [" AND ".join(f"{_ident(k)} = {_literal(v)}" for k, v in sorted(tags.items())) for tags in tag_sets]
    if not alternatives or not all(alternatives):
        raise ValueError(f"any_of: expected tag sets each naming a tag, got {alternatives!r}")
    return "(" + " OR ".join(f"({a})" for a in alternatives) + ")"


class InfluxSource:
    """InfluxQL over the v1 /query API (InfluxDB 1.x; 2.x/3.x through their DBRP mapping)."""

    def __init__(
        self,
        url: str,
        database: str,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout_s: float = READ_TIMEOUT_S,
        retention: RetentionSettings | None = None,
    ):
        """`retention`: the inventory's `[storage]` (how long each resolution is kept); without it the
        source knows of no rollups and reads raw points at every range."""
        self.url = url
        self.database = database
        self.retention_policy = retention_policy
        self.username = username
        self.password = password
        self.timeout_s = timeout_s
        self.retention = retention
        self._tag_keys: dict[str, frozenset[str]] = {}
        self._rollups_exist: bool | None = None

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        """`collector.rollups.resolution_for`'s answer; raw when the database has no rollup policies
        (the collector's set-up has not run there, or was refused: docs/storage.md), since then the
        raw points are all there is."""
        if self.retention is None:
            return RAW
        chosen = resolution_for(start_ns, end_ns, now_ns, self.retention).name
        return chosen if chosen == RAW or self._has_rollups() else RAW

    def _has_rollups(self) -> bool:
        if self._rollups_exist is None:
            rows = self._query(f"SHOW RETENTION POLICIES ON {_ident(self.database)}")
            names = {str(r.get("name")) for r in rows}
            self._rollups_exist = {r.retention_policy for r in ROLLUPS} | {EVENTS_RETENTION_POLICY} <= names
        return self._rollups_exist

    def _query(self, statement: str) -> list[dict[str, Any]]:
        try:
            return query(self.url, self.database, statement, self.username, self.password, self.timeout_s)
        except InfluxQueryError as exc:
            raise SourceError(f"InfluxDB at {self.url} (database {self.database!r}): {exc}") from exc

    def select(self, statement: str) -> list[dict[str, Any]]:
        """The rows of one InfluxQL statement (tags merged in, `time` in ns); SourceError when it fails."""
        return self._query(statement)

    def select_each(self, statements: list[str]) -> list[list[dict[str, Any]]]:
        """The rows of each of several statements, sent in one request; SourceError when one fails."""
        try:
            return query_each(self.url, self.database, statements, self.username, self.password, self.timeout_s)
        except InfluxQueryError as exc:
            raise SourceError(f"InfluxDB at {self.url} (database {self.database!r}): {exc}") from exc

    def select_side_by_side(self, requests: list[list[str]]) -> list[list[list[dict[str, Any]]]]:
        """`select_each` of each list of statements, the requests sent at once: InfluxDB runs a
        request's statements one after another on one core, requests side by side on more."""
        with ThreadPoolExecutor(max(1, len(requests))) as pool:
            return list(pool.map(self.select_each, requests))

    def from_clause(self, measurement: str, resolution: str = RAW) -> str:
        """What follows FROM to read `measurement` at `resolution` (its retention policy named where needed)."""
        return self._from(measurement, resolution)

    def _from(self, measurement: str, resolution: str = RAW) -> str:
        if resolution != RAW:
            return qualified_source(self.database, measurement, resolution)
        if self.retention_policy:
            return f"{_ident(self.retention_policy)}.{_ident(measurement)}"
        return _ident(measurement)

    def tag_keys(self, measurement: str) -> frozenset[str]:
        """Which columns of `measurement` are tags (a field and a tag may not share a name here)."""
        if measurement not in self._tag_keys:
            rows = self._query(f"SHOW TAG KEYS FROM {self._from(measurement)}")
            self._tag_keys[measurement] = frozenset(str(r["tagKey"]) for r in rows if "tagKey" in r)
        return self._tag_keys[measurement]

    def _rollup_tag_keys(self, measurement: str) -> frozenset[str] | None:
        """At a rollup resolution every column but the contract's fields and their rollup fields is a
        tag (the rollups keep every tag), so no SHOW TAG KEYS on a policy whose raw points may be gone."""
        spec = MEASUREMENTS_SPEC.get(measurement)
        return None if spec is None else frozenset(spec.tags)

    def samples(
        self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW,
        fields: Iterable[str] | None = None,
    ) -> list[Sample]:
        """As SeriesSource's; `fields`: only these (as stored at `resolution`), not every field of a
        wide measurement (an interface's rollup row has 34)."""
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution {resolution!r}: expected one of {', '.join(RESOLUTIONS)}")
        where = [f"time >= {int(start_ns)}", f"time < {int(end_ns)}"]
        where += [f"{_ident(k)} = {_literal(v)}" for k, v in sorted((tags or {}).items())]
        # GROUP BY * returns the tags per series, so the selected columns are only fields.
        columns = ", ".join(_ident(f) for f in fields) if fields is not None else "*"
        statement = f"SELECT {columns} FROM {self._from(measurement, resolution)} WHERE {' AND '.join(where)} GROUP BY *"
        keys = (self._rollup_tag_keys(measurement) if resolution != RAW else None) or self.tag_keys(measurement)
        out: list[Sample] = []
        for row in self._query(statement):
            sample_tags: dict[str, str] = {}
            fields: dict[str, float | str] = {}
            for key, value in row.items():
                if key in ("time", "_measurement"):
                    continue
                if key in keys:
                    if value not in (None, ""):
                        sample_tags[key] = str(value)
                    continue
                converted = _field_value(value)
                if converted is not None:
                    fields[key] = converted
            if fields:
                out.append(Sample(int(row["time"]), sample_tags, fields))
        out.sort(key=lambda s: s.time_ns)
        return out


class LocalSource:
    """The collector's durable queue (SQLite, table `batch`), opened read-only.

    It keeps no rollups: every range is read from raw points (`resolution_for` says `raw`), and a
    reader that asks for a rollup resolution anyway gets raw points too; the queue is bounded by
    its size, so a long range holds no more than it can."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"local store {self.path}: no such file (has the collector run with storage.kind = 'local'?)")

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True)
            db.execute("SELECT 1 FROM batch LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise SourceError(f"local store {self.path}: {exc}") from exc
        return db

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        return RAW

    def samples(
        self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW
    ) -> list[Sample]:
        wanted = dict(tags or {})
        db = self._connect()
        try:
            old_format = "points" in {row[1] for row in db.execute("PRAGMA table_info(batch)")}
            # A LIKE on how the measurement's points start skips most other batches unread.
            column, needle = ("points", '%"measurement":' + json.dumps(measurement, ensure_ascii=False) + "%") if old_format else ("lines", f'%"{measurement}%')
            cursor = db.execute(f"SELECT {column} FROM batch WHERE received_ns >= ? AND {column} LIKE ? ORDER BY id",
                                (int(start_ns) - CLOCK_SKEW_NS, needle))
            payloads = [row[0] for row in cursor]
        except sqlite3.Error as exc:
            raise SourceError(f"local store {self.path}: {exc}") from exc
        finally:
            db.close()
        out: list[Sample] = []
        starts = line_starts([measurement])
        try:
            for payload in payloads:
                if old_format:  # a queue the collector has not converted yet (collector/queue.py): points as JSON
                    points = [Point(p.get("measurement"), p.get("tags", {}), p.get("fields", {}), int(p["time"])) for p in json.loads(payload)]
                else:
                    points = [parse_line(line) for line in json.loads(payload) if line.startswith(starts)]
                for point in points:
                    if point.measurement != measurement or not start_ns <= point.time_ns < end_ns:
                        continue
                    point_tags = {str(k): str(v) for k, v in point.tags.items()}
                    if any(point_tags.get(k) != v for k, v in wanted.items()):
                        continue
                    fields = {k: v for k, v in ((k, _field_value(v)) for k, v in point.fields.items()) if v is not None}
                    out.append(Sample(point.time_ns, point_tags, fields))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:  # a damaged store: say so, never a traceback
            raise SourceError(f"local store {self.path}: a batch that is not what the collector writes: {exc!r}") from exc
        out.sort(key=lambda s: s.time_ns)
        return out

    def stored_after(self, after_id: int, received_since_ns: int, measurements: frozenset[str]) -> tuple[int, dict[str, list[Sample]]]:
        """Points of `measurements` (by measurement, in the order stored) in the batches stored after
        batch `after_id` and received since `received_since_ns` (less the clock skew), each batch
        read and decoded once; and the id of the newest batch read (`after_id` when there was none).
        Batch ids only grow, so a reader that keeps the id reads each batch once
        (collector/history_stores.py). Fields and tags are as the queue keeps them, unconverted (a
        day of points is a lot of dicts to copy): read numbers with `history_grids.finite`, or
        `as_stored` a sample to have it as `samples` gives it."""
        db = self._connect()
        try:
            old_format = "points" in {row[1] for row in db.execute("PRAGMA table_info(batch)")}
            rows = db.execute(f"SELECT id, {'points' if old_format else 'lines'} FROM batch WHERE id > ? AND received_ns >= ? ORDER BY id",
                              (int(after_id), int(received_since_ns) - CLOCK_SKEW_NS)).fetchall()
        except sqlite3.Error as exc:
            raise SourceError(f"local store {self.path}: {exc}") from exc
        finally:
            db.close()
        out: dict[str, list[Sample]] = {m: [] for m in measurements}
        starts = line_starts(measurements)
        try:
            for _, payload in rows:
                if old_format:  # a queue the collector has not converted yet (collector/queue.py): points as JSON
                    for raw in json.loads(payload):
                        kept = out.get(raw["measurement"])
                        if kept is not None:
                            kept.append(Sample(int(raw["time"]), raw.get("tags") or {}, raw["fields"]))
                    continue
                for line in json.loads(payload):
                    if line.startswith(starts):
                        point = parse_line(line)
                        kept = out.get(point.measurement)
                        if kept is not None:
                            kept.append(Sample(point.time_ns, point.tags, point.fields))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:  # a damaged store: say so, never a traceback
            raise SourceError(f"local store {self.path}: a batch that is not what the collector writes: {exc!r}") from exc
        return (rows[-1][0] if rows else after_id), out


def as_stored(sample: Sample) -> Sample:
    """A sample of `LocalSource.stored_after` as `samples` gives it: tags as strings, every number a float."""
    fields = {k: v for k, v in ((k, _field_value(v)) for k, v in sample.fields.items()) if v is not None}
    return Sample(sample.time_ns, {str(k): str(v) for k, v in sample.tags.items()}, fields)


def _label(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stored_names(measurement: str, resolution: str) -> tuple[str, ...]:
    """The fields of `measurement` VictoriaMetrics holds at `resolution`: the contract's numeric
    fields for raw points (and events, kept raw), the rollup fields for a rollup."""
    spec = MEASUREMENTS_SPEC[measurement]
    if resolution == RAW or spec.events:
        return tuple(f.name for f in spec.fields.values() if UNITS[f.unit].type == "float")
    return tuple(f.name for f in rollup_fields(spec))


class VictoriaMetricsSource:
    """VictoriaMetrics (`[storage] kind = "victoriametrics"`) over its `/api/v1/export`: a point
    `m,tag=v f=1.5` written to `/write?db=D` is the sample `m_f{tag="v", db="D"}`; the collector's
    rollups are the same series with `db` = `D_5m` / `D_1h` (collector.rollups.victoriametrics_db).
    Samples as InfluxSource gives them, one per series and time, fields by name; string fields are
    not there (VictoriaMetrics keeps numbers only)."""

    def __init__(self, url: str, database: str, retention: RetentionSettings | None, timeout_s: float = READ_TIMEOUT_S,
                 username: str | None = None, password: str | None = None):
        self.url = url.rstrip("/")
        self.database = database
        self.retention = retention
        self.timeout_s = timeout_s
        self.username = username
        self.password = password

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        """`collector.rollups.resolution_for`'s answer (the collector writes the rollups here)."""
        if self.retention is None:
            return RAW
        return resolution_for(start_ns, end_ns, now_ns, self.retention).name

    def selector(self, measurement: str, resolution: str, tags: Mapping[str, str] | None = None) -> str:
        """The series selector of `measurement`'s fields at `resolution` (MetricsQL, also what a
        Grafana panel over a Prometheus data source would use)."""
        names = stored_names(measurement, resolution)
        spec = MEASUREMENTS_SPEC[measurement]
        db = victoriametrics_db(self.database, RAW if spec.events else resolution)
        matchers = [f'__name__=~{_label(re.escape(measurement) + "_(" + "|".join(re.escape(n) for n in names) + ")")}', f"db={_label(db)}"]
        matchers += [f"{k}={_label(v)}" for k, v in sorted((tags or {}).items())]
        return "{" + ", ".join(matchers) + "}"

    def samples(
        self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW
    ) -> list[Sample]:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution {resolution!r}: expected one of {', '.join(RESOLUTIONS)}")
        if not stored_names(measurement, resolution):
            return []
        params = {"match[]": self.selector(measurement, resolution, tags), "start": f"{start_ns / NS:.3f}", "end": f"{end_ns / NS:.3f}"}
        try:
            body = http_get(self.url, "/api/v1/export", params, self.username, self.password, self.timeout_s)
        except InfluxQueryError as exc:
            raise SourceError(f"VictoriaMetrics at {self.url}: {exc}") from exc
        prefix = len(measurement) + 1
        rows: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, float | str]] = {}
        try:
            for line in body.splitlines():
                if not line.strip():
                    continue
                series: dict[str, Any] = json.loads(line)
                labels = series["metric"]
                name = str(labels["__name__"])[prefix:]
                sample_tags = tuple(sorted((str(k), str(v)) for k, v in labels.items() if k not in ("__name__", "db")))
                for ms, value in zip(series["timestamps"], series["values"]):
                    time_ns = int(ms) * 1_000_000
                    if start_ns <= time_ns < end_ns and value is not None:
                        # A sample written twice (a replay after a crash) is the same value: the last one stands.
                        rows.setdefault((sample_tags, time_ns), {})[name] = float(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise SourceError(f"VictoriaMetrics at {self.url}: an export line that is not what it writes: {exc!r}") from exc
        out = [Sample(time_ns, dict(sample_tags), fields) for (sample_tags, time_ns), fields in rows.items()]
        out.sort(key=lambda s: s.time_ns)
        return out


def open_source(inventory: Inventory, kind: Literal["auto", "influx", "local"] = "auto") -> SeriesSource:
    """The store the inventory's collector writes to; `auto` follows `storage.kind`."""
    storage = inventory.storage
    if kind == "auto":
        kind = "local" if storage.kind == "local" else "influx"
    if kind == "local":
        return LocalSource(inventory.data_dir() / "queue.sqlite3")
    if storage.kind == "local" or storage.url is None:
        raise SourceConfigError("storage.kind = 'local' in the inventory: no InfluxDB URL to read from (use --source local)")
    timeout = max(storage.timeout_s, READ_TIMEOUT_S)
    # Rollups are read where they exist: InfluxSource looks for their policies (InfluxDB 2/3: the
    # DBRP mappings of the collector's rollup buckets), VictoriaMetrics has them wherever the
    # collector makes them (docs/storage.md).
    password = inventory.secret(storage.password) if storage.password else None
    if storage.kind == "victoriametrics":
        return VictoriaMetricsSource(storage.url, str(storage.database), storage, timeout, storage.username, password)
    if storage.kind == "influxdb_v2":
        # The v1-compatible /query endpoint takes the token as the password; the bucket maps to a database.
        token = inventory.secret(storage.token) if storage.token else None
        return InfluxSource(storage.url, storage.database or str(storage.bucket), storage.retention_policy, "nettvakt", token, timeout, storage)
    return InfluxSource(storage.url, str(storage.database), storage.retention_policy, storage.username, password, timeout, storage)
