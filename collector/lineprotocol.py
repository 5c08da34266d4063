"""InfluxDB line protocol: the only place that knows it, and the last line of defence.

Escaping rules (InfluxDB docs, "Line protocol"): measurement escapes comma and space;
tag keys/values and field keys escape comma, equals sign and space; string field values
are double-quoted and escape backslash and double quote. Inside a quoted string field a
newline is legal and InfluxDB stores it as-is.

The encoder writes only what it can write unambiguously, whatever was let through before
it: measurement names and keys are identifiers of the contract (`agent.contract.IDENTIFIER`,
nothing to escape, so a key can never swallow the `=` after it), tag values carry no control
characters and no trailing backslash, numbers are finite floats (integers and booleans too:
a field never changes type), strings are valid UTF-8 of bounded length, and times are within
InfluxDB's range. Anything else raises LineProtocolError and the writer sets the point aside.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Mapping
from types import MappingProxyType

from agent.contract import IDENTIFIER, RESERVED_KEYS
from agent.points import Point, PointError

_TAG_VALUE_ESCAPES = str.maketrans({",": r"\,", "=": r"\=", " ": r"\ "})
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")
# InfluxDB's own bounds: times in ns (its min and max valid timestamps), strings up to 64 KiB.
MIN_TIME_NS = -9223372036854775806
MAX_TIME_NS = 9223372036854775806
MAX_STRING_BYTES = 64 * 1024
MAX_TAG_VALUE_LEN = 1024


class LineProtocolError(PointError):
    """A point the encoder refuses to write, because line protocol could not say it unambiguously."""


def _key(text: object, what: str) -> str:
    if type(text) is not str or not IDENTIFIER.fullmatch(text) or text in RESERVED_KEYS:
        raise LineProtocolError(f"{what} {text!r:.80} is not an identifier of the contract ([a-z][a-z0-9_]*, not 'time')")
    return text


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise LineProtocolError(f"{what}: not valid UTF-8 (a lone surrogate)") from None


def _tag_value(key: str, value: object) -> str:
    if type(value) is not str or len(value) > MAX_TAG_VALUE_LEN:
        raise LineProtocolError(f"tag {key}: expected a string of at most {MAX_TAG_VALUE_LEN} characters, got {value!r:.80}")
    if _CONTROL_CHARS.search(value) or value.endswith("\\"):
        raise LineProtocolError(f"tag {key}: {value!r:.80} has control characters or a trailing backslash")
    _utf8(value, f"tag {key}")
    return value.translate(_TAG_VALUE_ESCAPES)


def _field_value(key: str, value: object) -> str:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            raise LineProtocolError(f"field {key}: {value!r} cannot be stored")
        return repr(value)
    if kind is bool:
        return "1.0" if value else "0.0"
    if kind is int:
        try:
            number = float(value)  # type: ignore[arg-type]
        except OverflowError:
            raise LineProtocolError(f"field {key}: an integer too large to be a float") from None
        return repr(number)
    if kind is str:
        if len(_utf8(value, f"field {key}")) > MAX_STRING_BYTES:  # type: ignore[arg-type]
            raise LineProtocolError(f"field {key}: a string over {MAX_STRING_BYTES} bytes")
        # InfluxDB 1.x unescapes only \" and \\ inside string fields; a raw newline inside the
        # quotes is accepted and stored as-is, so newlines survive a round trip unchanged.
        return _quoted(value)
    raise LineProtocolError(f"field {key}: unsupported value {value!r:.80}")


def _head(measurement: object, tags: Mapping[str, str]) -> str:
    parts = [_key(measurement, "measurement")]
    for key in sorted(tags):
        value = tags[key]
        if value == "":
            continue  # InfluxDB rejects empty tag values; an absent tag means the same.
        parts.append(f"{_key(key, 'tag key')}={_tag_value(key, value)}")
    return ",".join(parts)


# The measurement-and-tags part of a line and checked field keys, by what they are made of: a
# collector sees the same few thousand series over and over, and building them was most of the
# encoding time. Only what passed the checks is cached. Bounded; emptied when full.
_HEADS: dict[tuple[object, ...], str] = {}
_FIELD_KEYS: set[object] = set()
_CACHE_MAX = 50_000


def encode_point(point: Point) -> str:
    """One line; raises LineProtocolError for anything it cannot write unambiguously."""
    tags, fields = point.tags, point.fields
    if type(tags) is not dict and not isinstance(tags, Mapping) or type(fields) is not dict and not isinstance(fields, Mapping):
        raise LineProtocolError(f"{point.measurement!r:.40}: tags and fields must be objects")
    key = (point.measurement, *tags.items())
    try:
        head = _HEADS.get(key)
    except TypeError:  # an unhashable tag value: _head refuses it below
        head = None
    if head is None:
        head = _head(point.measurement, tags)
        if len(_HEADS) >= _CACHE_MAX:
            _HEADS.clear()
        _HEADS[key] = head
    if not fields:
        raise LineProtocolError(f"{point.measurement}: a point without fields")
    parts = []
    for name, value in fields.items():
        if name not in _FIELD_KEYS:
            _key(name, "field key")
            if len(_FIELD_KEYS) >= _CACHE_MAX:
                _FIELD_KEYS.clear()
            _FIELD_KEYS.add(name)
        if name in tags:  # InfluxQL's "name" would then mean the field, not the tag
            raise LineProtocolError(f"field {name!r} has the name of a tag of the same point")
        # The common case first: a finite float (x - x is 0.0 only when x is finite).
        if type(value) is float and value - value == 0.0:
            parts.append(f"{name}={value!r}")
        else:
            parts.append(f"{name}={_field_value(name, value)}")
    ts = point.time_ns
    if type(ts) is not int or not MIN_TIME_NS <= ts <= MAX_TIME_NS:
        raise LineProtocolError(f"time {ts!r:.40} is outside InfluxDB's range")
    return f"{head} {','.join(parts)} {ts}"


def series_head(measurement: str, tags: Mapping[str, str]) -> str:
    """The measurement-and-tags part of a line; LineProtocolError for anything it cannot write."""
    return _head(measurement, tags)


def checked_line(head: str, fields: Mapping[str, float | str], time_ns: int) -> str:
    """`encode_point` of a point ingest has checked against the contract, which holds it to more
    than the checks made here (collector/ingest.py): keys of the contract (identifiers, none named
    like a tag), finite floats, ASCII strings of at most MAX_STRING_LEN, a time in the ingest window."""
    return f"{head} {','.join([f'{k}={v!r}' if type(v) is float else f'{k}={_quoted(v)}' for k, v in fields.items()])} {time_ns}"


def _quoted(text: object) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_points(points: list[Point]) -> bytes:
    return ("\n".join(encode_point(p) for p in points) + "\n").encode("utf-8")


# --- reading back what encode_point wrote ---------------------------------------------------------
# The durable queue keeps each point as its line (collector/queue.py); what needs the point again
# (the collector's rollups, the local store) reads it here. Only lines this encoder wrote are
# read: keys are identifiers, tag values escape only `,`, `=` and space, string fields only `\`
# and `"`, every number is a float.
_TAG_UNESCAPES = {",": ",", "=": "=", " ": " "}
_PARSED_HEADS: dict[str, tuple[str, Mapping[str, str]]] = {}


def _split_head(line: str) -> int:
    """The index of the space that ends the measurement and tags."""
    space = line.find(" ")
    if "\\" not in line[:space]:
        return space
    i = 0
    while True:
        c = line[i]
        if c == "\\" and line[i + 1] in _TAG_UNESCAPES:
            i += 2
        elif c == " ":
            return i
        else:
            i += 1


def _parse_head(head: str) -> tuple[str, dict[str, str]]:
    if "\\" not in head:
        measurement, *pairs = head.split(",")
        return measurement, dict(pair.split("=", 1) for pair in pairs)
    parts: list[str] = []
    out: list[str] = []
    i = 0
    while i < len(head):  # split on unescaped commas, unescaping as it goes
        c = head[i]
        if c == "\\" and i + 1 < len(head) and head[i + 1] in _TAG_UNESCAPES:
            out.append(head[i + 1])
            i += 2
            continue
        if c == ",":
            parts.append("".join(out))
            out = []
        else:
            out.append(c)
        i += 1
    parts.append("".join(out))
    measurement, *pairs = parts
    return measurement, dict(pair.split("=", 1) for pair in pairs)  # keys are identifiers: the first `=` ends them


# A field: its key, then a quoted string (only `\\` and `\"` escaped in it) or a number.
_FIELD = re.compile(r'([a-z][a-z0-9_]*)=(?:"((?:[^"\\]|\\.)*)"|([^,]*))(?:,|$)', re.DOTALL)
_STRING_UNESCAPE = re.compile(r'\\(["\\])')


def _parse_fields(text: str) -> dict[str, float | str]:
    if '"' not in text:  # numbers only: k1=v1,k2=v2 -> [k1, v1, k2, v2], all in C
        parts = text.replace("=", ",").split(",")
        return dict(zip(parts[::2], map(float, parts[1::2])))
    fields: dict[str, float | str] = {}
    for key, string, number in _FIELD.findall(text):
        if number:
            fields[key] = float(number)
        else:
            fields[key] = _STRING_UNESCAPE.sub(r"\1", string) if "\\" in string else string
    return fields


def parse_line(line: str) -> Point:
    """The point `encode_point` wrote as `line` (numbers come back as floats, as stored)."""
    split = _split_head(line)
    head = line[:split]
    parsed = _PARSED_HEADS.get(head)
    if parsed is None:
        measurement, tags = _parse_head(head)
        parsed = (measurement, MappingProxyType(tags))  # shared by every point of the series: read-only
        if len(_PARSED_HEADS) >= _CACHE_MAX:
            _PARSED_HEADS.clear()
        _PARSED_HEADS[head] = parsed
    fields_text, _, ts = line[split + 1:].rpartition(" ")
    return Point(parsed[0], parsed[1], _parse_fields(fields_text), int(ts))



# --- reading many lines at once, for folding (collector/rollup_engine.py) --------------------------
# A string field's value: replaced by a word no number is before the numbers are split.
_STRING_VALUE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_A_NUMBER = "s"


def split_line(line: str) -> tuple[str, str, int]:
    """(the measurement and tags, the fields, the time) of a line `encode_point` wrote, the first
    two as they are written (read them with `parse_head` and `number_columns`)."""
    split = _split_head(line)
    at = line.rfind(" ")
    return line[:split], line[split + 1:at], int(line[at + 1:])


def line_time_ns(line: str) -> int:
    """The time of a line `encode_point` wrote, nothing else read."""
    return int(line[line.rfind(" ") + 1:])


def line_starts(measurements: Iterable[str]) -> tuple[str, ...]:
    """How the lines of these measurements start (`line.startswith`): the name, then its tags or its fields."""
    return tuple(m + separator for m in sorted(measurements) for separator in ", ")


def parse_head(head: str) -> tuple[str, Mapping[str, str]]:
    """The measurement and the tags (read-only, shared by every line of the series) of a line's head."""
    parsed = _PARSED_HEADS.get(head)
    if parsed is None:
        measurement, tags = _parse_head(head)
        parsed = (measurement, MappingProxyType(tags))
        if len(_PARSED_HEADS) >= _CACHE_MAX:
            _PARSED_HEADS.clear()
        _PARSED_HEADS[head] = parsed
    return parsed


def aligned_number_columns(fields: list[str], wanted: Container[str]) -> dict[str, list[float]] | None:
    """The `wanted` number fields of several lines' fields (`split_line`), each name with one value
    per line, in the order of the lines, split all at once (in C); None unless every line writes
    the same fields in the same order, the wanted ones numbers (as the lines of one series mostly do)."""
    joined = "\n".join(fields)
    if '"' in joined:
        joined = _STRING_VALUE.sub(_NOT_A_NUMBER, joined)
    first_end = joined.find("\n")
    width = (joined if first_end < 0 else joined[:first_end]).count("=")
    parts = joined.replace("\n", ",").replace("=", ",").split(",")
    if not width or len(parts) != 2 * width * len(fields):
        return None
    names = parts[0:2 * width:2]
    if parts[0::2] != names * len(fields):
        return None
    values = parts[1::2]
    try:
        return {name: list(map(float, values[at::width])) for at, name in enumerate(names) if name in wanted}
    except ValueError:  # a string where a number is wanted (not by the contract)
        return None


def number_columns(fields: list[str], wanted: Container[str]) -> dict[str, list[float]]:
    """The `wanted` number fields of several lines' fields, each name with its values in the order
    of the lines (a line without it adds none): all at once where they are aligned, else line by line."""
    columns = aligned_number_columns(fields, wanted)
    if columns is not None:
        return columns
    columns = {}
    for text in fields:
        for name, value in _parse_fields(text).items():
            if type(value) is float and name in wanted:
                columns.setdefault(name, []).append(value)
    return columns
