"""InfluxDB line protocol: the only place that knows it.

Escaping rules (InfluxDB docs, "Line protocol"): measurement escapes comma and space;
tag keys/values and field keys escape comma, equals sign and space; string field values
are double-quoted and escape backslash and double quote. Control characters
(newlines) are refused in tags and keys by Point.validate; inside a quoted string
field a newline is legal and InfluxDB stores it as-is.
Numeric fields are always written as floats (see docs/metrics.md: a field never changes type).
"""

from __future__ import annotations

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
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(float(value))
    if isinstance(value, str):
        return _field_string(value)
    raise TypeError(f"unsupported field value {value!r}")


def encode_point(point: Point) -> str:
    parts = [point.measurement.translate(_MEASUREMENT_ESCAPES)]
    for key in sorted(point.tags):
        value = point.tags[key]
        if value == "":
            continue  # InfluxDB rejects empty tag values; an absent tag means the same.
        parts.append(f"{_escape_key(key)}={_escape_key(value)}")
    head = ",".join(parts)
    fields = ",".join(f"{_escape_key(k)}={_field_value(v)}" for k, v in point.fields.items())
    return f"{head} {fields} {point.time_ns}"


def encode_points(points: list[Point]) -> bytes:
    return ("\n".join(encode_point(p) for p in points) + "\n").encode("utf-8")
