"""What an agent may post: the measurement contract compiled into lookups, applied per point.

Every point of a batch is checked before anything is acknowledged; one bad point refuses
the batch with an error that names it (`points[3].fields.rtt_ms: ...`). An agent writes only
the measurements the contract lets agents write, only about itself (the collector sets its
`site` and `host`), only the contract's tags and fields with their stored types and ranges,
and only at times an agent's spool can hold and the collector's clock allows. Points the storage
cannot keep (older than InfluxDB's raw retention, `storage_reach`) are not a fault of the batch:
it is taken, they are not stored, and the answer counts them.
No per-point model is built: a dict lookup per tag and field, and a cache of tag values
already found good (agents send the same few hundred over and over).

`AgentPoints` checks a batch's points with the contract's lookups made once per batch and the
whole tag set of a series remembered once good (an agent sends the same few dozen series over
and over); anything it does not find plainly good (an error, an integer, a boolean, non-ASCII
text) it hands to `agent_point`, which decides and words the answer, so both take the same points
and give the same errors.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from typing import Any

from agent import registry
from agent.contract import AGENT_MEASUREMENTS, MAX_STRING_LEN, MAX_TAG_LEN, MEASUREMENTS_SPEC, UNITS
from agent.points import Point, PointError
from collector.config import CollectorSettings, StorageSettings
from collector.lineprotocol import checked_line, series_head

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_POINT_KEYS = frozenset({"measurement", "tags", "fields", "time"})
# The collector stamps these from the inventory; an agent may send its own, never another's.
_STAMPED = ("site", "host")
_GOOD_TAGS_MAX = 50_000
_MAX_FLOAT = sys.float_info.max


class IngestError(PointError):
    """A point the contract does not allow (HTTP 400); `where` names it, e.g. points[3].fields.rtt_ms."""

    status = 400

    def __init__(self, where: str, message: str):
        super().__init__(f"{where}: {message}")
        self.where = where


class ForbiddenPointError(IngestError):
    """A point this agent may not write at all: a collector measurement, another host's or site's tags (HTTP 403)."""

    status = 403


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Point times an agent may post, relative to the collector's clock."""

    max_ahead_s: float
    max_age_s: float


# The writer reaches InfluxDB a little after ingest (a queue, a retry): a point taken this much inside
# the raw retention is still inside it when written, unless InfluxDB has been away longer than that.
RETENTION_MARGIN_S = 3600.0


@dataclass(frozen=True, slots=True)
class StorageReach:
    """How old a point may be and still be stored, where the storage keeps less than an agent may
    post (`TimeWindow.max_age_s`): older ones are taken with their batch but not stored, and the
    answer says how many and why (docs/api.md)."""

    max_age_s: float
    reason: str

    def split(self, points: list[Point], now_ns: int) -> tuple[list[Point], int]:
        """(the points to store, how many are too old to)."""
        oldest_ns = now_ns - self.max_age_s * 1e9
        kept = [p for p in points if p.time_ns >= oldest_ns]
        # The batch's own list where all are kept: ingest's lines made beside it still match it.
        return (points, 0) if len(kept) == len(points) else (kept, len(points) - len(kept))


def storage_reach(collector: CollectorSettings, storage: StorageSettings) -> StorageReach | None:
    """On InfluxDB 1.x the collector shortens the raw policy to `raw_retention_days`
    (docs/storage.md), and InfluxDB refuses a point older than that after the agent was answered;
    None where the storage keeps whatever ingest takes."""
    if storage.kind != "influxdb_v1":
        return None
    max_age_s = storage.raw_retention_days * 86400.0 - RETENTION_MARGIN_S
    if max_age_s >= collector.max_point_age_days * 86400.0:
        return None
    return StorageReach(max_age_s, f"older than the raw retention of {storage.raw_retention_days} days (storage.raw_retention_days) "
                                   f"less {RETENTION_MARGIN_S / 3600:g} h: InfluxDB would refuse them")


@dataclass(frozen=True, slots=True)
class _Compiled:
    tags: dict[str, tuple[frozenset[str] | None, re.Pattern[str] | None]]  # agent-settable tag -> (vocabulary, shape)
    required: tuple[str, ...]  # tags besides site/host that every point needs
    floats: dict[str, tuple[float, float]]  # numeric field -> (low, high)
    strings: frozenset[str]
    allowed_fields: str  # for the error message


def _compile() -> dict[str, _Compiled]:
    out = {}
    for name in AGENT_MEASUREMENTS:
        spec = MEASUREMENTS_SPEC[name]
        tags = {
            t.name: (frozenset(t.values) if t.values else None, re.compile(t.pattern) if t.pattern else None)
            for t in spec.tags.values()
            if t.agent
        }
        floats = {}
        for f in spec.fields.values():
            unit = UNITS[f.unit]
            if unit.type == "float":
                # Unbounded ends are the largest float, so infinity (JSON's 1e999) is out of range too.
                floats[f.name] = (-_MAX_FLOAT if unit.low is None else unit.low, _MAX_FLOAT if unit.high is None else unit.high)
        out[name] = _Compiled(
            tags=tags,
            required=tuple(t.name for t in spec.tags.values() if t.required and t.agent and t.name not in _STAMPED),
            floats=floats,
            strings=frozenset(f.name for f in spec.fields.values() if UNITS[f.unit].type == "string"),
            allowed_fields=", ".join(spec.fields),
        )
    return out


_GOOD_TAGS: set[tuple[str, str, str]] = set()  # (measurement, key, value) already checked
_compiled: tuple[int, dict[str, _Compiled]] = (-1, {})  # (registry generation, lookups)


def _agent_specs() -> dict[str, _Compiled]:
    """The compiled lookups, made again when a registry changed (a probe kind registered by a test)."""
    global _compiled
    if _compiled[0] != registry.generation():
        _GOOD_TAGS.clear()  # a tag value good for a kind just removed is good no more
        _GOOD_SERIES.clear()
        _compiled = (registry.generation(), _compile())
    return _compiled[1]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_text(where: str, value: str) -> None:
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise IngestError(where, "not valid UTF-8 text (a lone surrogate such as \\ud800)") from None


def _check_tag(measurement: str, compiled: _Compiled, where: str, key: Any, value: Any) -> None:
    if type(key) is not str or key not in compiled.tags:
        allowed = ", ".join(compiled.tags)
        raise IngestError(f"{where}.tags", f"{_short(key)} is not a tag of {measurement!r} that an agent may set (allowed: {allowed})")
    vocabulary, shape = compiled.tags[key]
    where = f"{where}.tags.{key}"
    if type(value) is not str or not value or len(value) > MAX_TAG_LEN:
        raise IngestError(where, f"expected a non-empty string of at most {MAX_TAG_LEN} characters, got {_short(value)}")
    if _CONTROL_CHARS.search(value):
        raise IngestError(where, "control characters (newline, tab, ...) cannot be stored in a tag")
    if value.endswith("\\"):
        raise IngestError(where, "a tag value cannot end with a backslash (it would escape the separator in line protocol)")
    _check_text(where, value)
    if vocabulary is not None and value not in vocabulary:
        raise IngestError(where, f"{_short(value)} is not one of {', '.join(sorted(vocabulary))}")
    if shape is not None and not shape.fullmatch(value):
        raise IngestError(where, f"{_short(value)} does not have the form {shape.pattern}")


def agent_point(raw: Any, index: int, agent_id: str, site: str, now_ns: int, window: TimeWindow) -> Point:
    """The point an agent posted, checked against the contract and stamped with its site and host."""
    where = f"points[{index}]"
    if type(raw) is not dict:
        raise IngestError(where, f"expected an object, got {type(raw).__name__}")
    if not raw.keys() <= _POINT_KEYS:
        raise IngestError(where, f"unknown keys {sorted(map(str, set(raw) - _POINT_KEYS))}; a point has {', '.join(sorted(_POINT_KEYS))}")
    measurement = raw.get("measurement")
    compiled = _agent_specs().get(measurement) if type(measurement) is str else None
    if compiled is None:
        if type(measurement) is str and measurement in MEASUREMENTS_SPEC:
            raise ForbiddenPointError(f"{where}.measurement", f"{measurement!r} is written by the collector only; agents may write {', '.join(sorted(AGENT_MEASUREMENTS))}")
        raise IngestError(f"{where}.measurement", f"{_short(measurement)} is not an agent measurement of the contract ({', '.join(sorted(AGENT_MEASUREMENTS))})")

    ts = raw.get("time")
    if type(ts) is not int:
        raise IngestError(f"{where}.time", f"expected an integer (ns since the Unix epoch), got {_short(ts)}")
    if ts > now_ns + window.max_ahead_s * 1e9:
        raise IngestError(f"{where}.time", f"{ts} is more than {window.max_ahead_s:g} s ahead of the collector's clock ({now_ns}); check the agent's clock")
    if ts < now_ns - window.max_age_s * 1e9:
        raise IngestError(f"{where}.time", f"{ts} is older than {window.max_age_s / 86400:g} days, more than an agent's spool keeps")

    tags = raw.get("tags", {})
    if type(tags) is not dict:
        raise IngestError(f"{where}.tags", "expected an object")
    for key, value in tags.items():
        if type(value) is str and (measurement, key, value) in _GOOD_TAGS:
            continue
        _check_tag(measurement, compiled, where, key, value)
        if len(_GOOD_TAGS) >= _GOOD_TAGS_MAX:
            _GOOD_TAGS.clear()
        _GOOD_TAGS.add((measurement, key, value))
    for missing in compiled.required:
        if missing not in tags:
            raise IngestError(f"{where}.tags.{missing}", f"required on {measurement!r} points")
    host, claimed_site = tags.get("host"), tags.get("site")
    if host != agent_id or claimed_site != site:
        for key, claimed, own in (("host", host, agent_id), ("site", claimed_site, site)):
            if claimed is not None and claimed != own:
                raise ForbiddenPointError(f"{where}.tags.{key}", f"{claimed!r} is not this agent's {key} {own!r}")
        tags = {**tags, "site": site, "host": agent_id}

    fields = raw.get("fields")
    if type(fields) is not dict or not fields:
        raise IngestError(f"{where}.fields", "expected a non-empty object")
    converted: dict[str, Any] | None = None
    for key, value in fields.items():
        kind = type(value)
        bounds = compiled.floats.get(key)
        if bounds is not None:
            if kind is float:
                number = value
            elif kind is int or kind is bool:
                number = float(value) if kind is bool or abs(value) < 2**1023 else math.inf
                converted = converted or dict(fields)
                converted[key] = number
            else:
                raise IngestError(f"{where}.fields.{key}", f"expected a number, got {_short(value)}")
            if not bounds[0] <= number <= bounds[1]:  # NaN fails both
                low, high = bounds
                span = f"{low:g}..{high:g}" if high < _MAX_FLOAT else (f">= {low:g}" if low > -_MAX_FLOAT else "a finite number")
                raise IngestError(f"{where}.fields.{key}", f"{_short(value)} is out of range ({span})")
        elif key in compiled.strings:
            if kind is not str:
                raise IngestError(f"{where}.fields.{key}", f"expected a string, got {_short(value)}")
            if len(value) > MAX_STRING_LEN:
                raise IngestError(f"{where}.fields.{key}", f"string of {len(value)} characters, at most {MAX_STRING_LEN}")
            _check_text(f"{where}.fields.{key}", value)
        else:
            raise IngestError(f"{where}.fields", f"{_short(key)} is not a field of {measurement!r} (allowed: {compiled.allowed_fields})")
    return Point(measurement, tags, converted or fields, ts)


class AgentPoints:
    """`agent_point` for every point of one batch, with what it looks up made once (see above)."""

    __slots__ = ("agent_id", "site", "now_ns", "window", "specs", "oldest_ns", "newest_ns", "lines")

    def __init__(self, agent_id: str, site: str, now_ns: int, window: TimeWindow):
        self.agent_id, self.site, self.now_ns, self.window = agent_id, site, now_ns, window
        self.specs = _agent_specs()
        # Each point's line of line protocol, made here where the check has just held it to more than
        # the encoder asks; None where the queue's encoder is to make it (collector/queue.py).
        self.lines: list[str | None] = []
        # The same bounds as agent_point's, compared the same way (an int against a float).
        self.oldest_ns = now_ns - window.max_age_s * 1e9
        self.newest_ns = now_ns + window.max_ahead_s * 1e9

    def __call__(self, raw: Any, index: int) -> Point:
        if type(raw) is not dict or not raw.keys() <= _POINT_KEYS:
            return self._checked(raw, index)
        measurement, ts, tags, fields = raw.get("measurement"), raw.get("time"), raw.get("tags", _NO_TAGS), raw.get("fields")
        compiled = self.specs.get(measurement) if type(measurement) is str else None
        if (compiled is None or type(ts) is not int or not self.oldest_ns <= ts <= self.newest_ns or type(tags) is not dict
                or tags.get("host") != self.agent_id or tags.get("site") != self.site or type(fields) is not dict or not fields):
            return self._checked(raw, index)
        try:
            series = (measurement, *tags.items())
            head = _GOOD_SERIES.get(series)
        except TypeError:  # an unhashable tag value
            return self._checked(raw, index)
        if head is None:
            return self._checked(raw, index, series)
        floats, strings = compiled.floats, compiled.strings
        converted: dict[str, Any] | None = None
        for key, value in fields.items():
            bounds = floats.get(key)
            if bounds is not None:
                kind = type(value)
                if kind is float:
                    if not bounds[0] <= value <= bounds[1]:
                        return self._checked(raw, index)
                elif kind is int and -_BIG_INT < value < _BIG_INT and bounds[0] <= value <= bounds[1]:
                    converted = converted or dict(fields)
                    converted[key] = float(value)
                else:
                    return self._checked(raw, index)
            elif key not in strings or type(value) is not str or len(value) > MAX_STRING_LEN or not value.isascii():
                return self._checked(raw, index)
        fields = converted or fields
        self.lines.append(checked_line(head, fields, ts))
        return Point(measurement, tags, fields, ts)

    def _checked(self, raw: Any, index: int, series: tuple[Any, ...] | None = None) -> Point:
        """The full check (and its error); a series whose tags passed it is remembered with its line's head."""
        point = agent_point(raw, index, self.agent_id, self.site, self.now_ns, self.window)
        if series is not None:
            if len(_GOOD_SERIES) >= _GOOD_TAGS_MAX:
                _GOOD_SERIES.clear()
            _GOOD_SERIES[series] = series_head(point.measurement, point.tags)
        self.lines.append(None)
        return point


_NO_TAGS: dict[str, str] = {}
_BIG_INT = 2**53  # integers a float holds exactly: what agent_point converts the same way
# (measurement, *tag items) of tag sets agent_point took with this agent's own site and host -> the head of their lines.
_GOOD_SERIES: dict[tuple[Any, ...], str] = {}


__all__ = ["AgentPoints", "ForbiddenPointError", "IngestError", "StorageReach", "TimeWindow", "agent_point", "storage_reach"]
