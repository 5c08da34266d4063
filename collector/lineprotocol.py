"""InfluxDB line protocol: the only place that knows it.

Escaping rules (InfluxDB docs, "Line protocol"): measurement escapes comma and space;
tag keys/values and field keys escape comma, equals sign and space; string field values
are double-quoted and escape backslash and double quote. Control characters
(newlines) are refused in tags and keys by Point.validate; inside a quoted string
field a newline is legal and InfluxDB stores it as-is.
Numeric fields are always written as floats (see docs/metrics.md: a field never changes type).
"""

from __future__ import annotations

from collections.abc import Mapping

from agent.points import Point

_MEASUREMENT_ESCAPES = str.maketrans({",": r"\,", " ": r"\ "})
_KEY_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})


def _escape_key(text: str) -> str:
    # Tags ending in a backslash are refused by Point.validate: it would escape the separator.
    return text.translate(_KEY_ESCAPES)


def _field_string(value: str) -> str:
    # InfluxDB 1.x unescapes only \" and \\ inside string fields; a raw newline inside the
    # quotes is accepted and stored as-is, so newlines survive a round trip unchanged.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _field_value(value: object) -> str:
    if type(value) is float:
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, str):
        return _field_string(value)
    raise TypeError(f"unsupported field value {value!r}")


def _head(measurement: str, tags: Mapping[str, str]) -> str:
    parts = [measurement.translate(_MEASUREMENT_ESCAPES)]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB rejects empty tag values; an absent tag means the same.
        parts.append(f"{_escape_key(key)}={_escape_key(value)}")
    return ",".join(parts)


# The measurement-and-tags part of a line and escaped field keys, by what they are made of: a
# collector sees the same few thousand series over and over, and building them was most of the
# encoding time. Bounded; emptied when full.
_HEADS: dict[tuple[object, ...], str] = {}
_FIELD_KEYS: dict[str, str] = {}
_CACHE_MAX = 50_000


def encode_point(point: Point) -> str:
    key = (point.measurement, *point.tags.items())
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= _CACHE_MAX:
            _HEADS.clear()
        head = _HEADS[key] = _head(point.measurement, point.tags)
    fields = []
    for name, value in point.fields.items():
        escaped = _FIELD_KEYS.get(name)
        if escaped is None:
            if len(_FIELD_KEYS) >= _CACHE_MAX:
                _FIELD_KEYS.clear()
            escaped = _FIELD_KEYS[name] = _escape_key(name)
        fields.append(f"{escaped}={_field_value(value)}")
    return f"{head} {','.join(fields)} {point.time_ns}"


def encode_points(points: list[Point]) -> bytes:
    return ("\n".join(encode_point(p) for p in points) + "\n").encode("utf-8")
