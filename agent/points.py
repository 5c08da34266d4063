"""The one point type that flows from every source (probes, host metrics, SNMP, SSH) to the sink.

Only the storage writer knows line protocol; everything else builds `Point`s.
Numeric fields are always floats in storage (see docs/metrics.md): ints are
accepted here and written as floats so a field never changes type in InfluxDB.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from agent.schema import DECLARED_MEASUREMENTS, MAX_STRING_LEN, MAX_TAG_LEN

FieldValue = Union[float, int, bool, str]

# The measurement contract (docs/metrics.md, agent/contract.py): the names, used by agent and collector alike.
# From agent/schema.py, beneath the contract: the probe package builds points, and the contract
# reads the probe package's kinds.
MEASUREMENTS: frozenset[str] = frozenset(DECLARED_MEASUREMENTS)

MAX_NAME_LEN = MAX_TAG_LEN
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
MAX_STRING_FIELD_LEN = MAX_STRING_LEN
# Line protocol writes numbers as floats: a JSON integer beyond this cannot be one.
MAX_FIELD_NUMBER = 1.7976931348623157e308
_POINT_KEYS = frozenset({"measurement", "tags", "fields", "time"})


class PointError(ValueError):
    """A point that does not fit the contract; the message names the offending part."""


def now_ns() -> int:
    return time.time_ns()


@dataclass(frozen=True, slots=True)
class Point:
    measurement: str
    tags: Mapping[str, str]
    fields: Mapping[str, FieldValue]
    time_ns: int = field(default_factory=now_ns)

    def to_json(self) -> dict[str, Any]:
        return {
            "measurement": self.measurement,
            "tags": dict(self.tags),
            "fields": dict(self.fields),
            "time": self.time_ns,
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "point") -> "Point":
        """Build and validate a point from its JSON form; errors name `where`."""
        if not isinstance(data, dict):
            raise PointError(f"{where}: expected an object, got {type(data).__name__}")
        if not data.keys() <= _POINT_KEYS:
            raise PointError(f"{where}: unknown keys {sorted(set(data) - _POINT_KEYS)}")
        measurement = data.get("measurement")
        tags = data.get("tags", {})
        fields = data.get("fields")
        ts = data.get("time")
        if not isinstance(ts, int) or isinstance(ts, bool) or ts <= 0:
            raise PointError(f"{where}.time: expected a positive integer (ns since epoch), got {ts!r}")
        point = cls(measurement=measurement, tags=tags, fields=fields, time_ns=ts)  # type: ignore[arg-type]
        point.validate(where)
        return point

    def validate(self, where: str = "point") -> None:
        if self.measurement not in MEASUREMENTS:
            raise PointError(
                f"{where}.measurement: {self.measurement!r} is not in the contract "
                f"({', '.join(sorted(MEASUREMENTS))})"
            )
        if type(self.tags) is not dict and not isinstance(self.tags, Mapping):
            raise PointError(f"{where}.tags: expected an object")
        for key, value in self.tags.items():
            if not isinstance(key, str) or not key or len(key) > MAX_NAME_LEN:
                raise PointError(f"{where}.tags: bad tag key {key!r}")
            if not isinstance(value, str) or not value or len(value) > MAX_NAME_LEN:
                raise PointError(f"{where}.tags.{key}: expected a non-empty string of at most {MAX_NAME_LEN} characters, got {value!r}")
            if _CONTROL_CHARS.search(key) or _CONTROL_CHARS.search(value):
                raise PointError(f"{where}.tags.{key}: control characters (newline, tab, ...) cannot be stored in a tag")
            if key.endswith("\\") or value.endswith("\\"):
                raise PointError(f"{where}.tags.{key}: a tag cannot end with a backslash in line protocol")
        if (type(self.fields) is not dict and not isinstance(self.fields, Mapping)) or not self.fields:
            raise PointError(f"{where}.fields: expected a non-empty object")
        for key, value in self.fields.items():
            if not isinstance(key, str) or not key or len(key) > MAX_NAME_LEN:
                raise PointError(f"{where}.fields: bad field key {key!r}")
            if type(value) is bool:
                continue
            if type(value) is float or (type(value) is not int and isinstance(value, float)):
                if not math.isfinite(value):
                    raise PointError(f"{where}.fields.{key}: NaN and infinity cannot be stored")
                continue
            if isinstance(value, int):
                if abs(value) > MAX_FIELD_NUMBER:
                    raise PointError(f"{where}.fields.{key}: {value} is too large to be stored as a number")
                continue
            if isinstance(value, str):
                if len(value) > MAX_STRING_FIELD_LEN:
                    raise PointError(f"{where}.fields.{key}: string longer than {MAX_STRING_FIELD_LEN}")
                continue
            raise PointError(f"{where}.fields.{key}: expected a number, boolean or string, got {type(value).__name__}")
