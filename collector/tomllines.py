"""Where in a TOML file each key and table is: line numbers for error messages.

Python's tomllib parses values but gives no positions, so this reads the same text once more,
line by line, and records for every TOML path (`("device", 7, "snmp", "profile")`) the line
it is written on. It follows what decides a path: `[table]` and `[[array.of.tables]]`
headers (with their running index), `key = value` and dotted keys, inline tables, and values
that run over several lines (arrays, multi-line strings), whose lines are skipped. Keys
inside an inline table or a multi-line array are placed on the line of the key that holds them.
tomllib has already accepted the text; this is never the parser of record.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

Path = tuple[object, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(text: str) -> list[str] | None:
    """`a."b.c".d` -> ['a', 'b.c', 'd']; None when it is not a key."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return None
        if text[i] in "\"'":
            quote = text[i]
            end = text.find(quote, i + 1)
            while quote == '"' and end > 0 and text[end - 1] == "\\":
                end = text.find(quote, end + 1)
            if end < 0:
                return None
            parts.append(text[i + 1:end])
            i = end + 1
        else:
            match = _BARE.match(text, i)
            if not match:
                return None
            parts.append(match.group())
            i = match.end()
        while i < n and text[i] in " \t":
            i += 1
        if i < n:
            if text[i] != ".":
                return None
            i += 1
    return parts or None


def _key_and_value(line: str) -> tuple[list[str], str] | None:
    """Split `key = value` at the first '=' outside quotes."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == "=":
            key = _split_key(line[:i])
            return (key, line[i + 1:]) if key else None
        elif ch == "#":
            return None
    return None


def _value_state(value: str, depth: int, in_string: str) -> tuple[int, str]:
    """Bracket depth and open multi-line string after reading `value` (strings and comments skipped)."""
    i, n = 0, len(value)
    while i < n:
        if in_string:
            end = value.find(in_string, i)
            if end < 0:
                return depth, in_string
            i = end + 3
            in_string = ""
            continue
        ch = value[i]
        if value.startswith('"""', i) or value.startswith("'''", i):
            in_string = value[i:i + 3]
            i += 3
        elif ch in "\"'":
            end = value.find(ch, i + 1)
            while ch == '"' and end > 0 and value[end - 1] == "\\":
                end = value.find(ch, end + 1)
            i = n if end < 0 else end + 1
        elif ch == "#":
            return depth, in_string
        else:
            depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
            i += 1
    return depth, in_string


def _inline_keys(value: str, base: Path, line: int, lines: dict[Path, int]) -> None:
    """Keys of an inline table (one level is enough for error messages: `hardware = { kind = ... }`)."""
    body = value.strip()
    if not (body.startswith("{") and "}" in body):
        return
    for item in body[1:body.rfind("}")].split(","):
        pair = _key_and_value(item)
        if pair:
            lines.setdefault((*base, *pair[0]), line)


def key_lines(text: str) -> dict[Path, int]:
    """Every path the text writes, to its 1-based line (first occurrence)."""
    lines: dict[Path, int] = {}
    counters: dict[Path, int] = {}  # array-of-tables path (with parent indexes) -> last index
    table: Path = ()
    depth, in_string = 0, ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if depth > 0 or in_string:  # inside a value that runs over several lines
            depth, in_string = _value_state(raw, depth, in_string)
            continue
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[["):
            names = _split_key(line[2:line.find("]]")]) if "]]" in line else None
            if names:
                parent = _resolve(tuple(names[:-1]), counters)
                path = (*parent, names[-1])
                index = counters.get(path, -1) + 1
                counters[path] = index
                table = (*path, index)
                lines.setdefault(path, number)
                lines[table] = number
            continue
        if line.startswith("["):
            names = _split_key(line[1:line.find("]")]) if "]" in line else None
            if names:
                table = _resolve(tuple(names), counters)
                lines.setdefault(table, number)
            continue
        pair = _key_and_value(line)
        if pair is None:
            continue
        key, value = pair
        path = (*table, *key)
        for k in range(len(table) + 1, len(path) + 1):
            lines.setdefault(path[:k], number)
        _inline_keys(value, path, number, lines)
        depth, in_string = _value_state(value, 0, "")
    return lines


def _resolve(names: tuple[str, ...], counters: dict[Path, int]) -> Path:
    """A header's names with the current index of each array of tables they pass through."""
    path: Path = ()
    for name in names:
        path = (*path, name)
        if path in counters:
            path = (*path, counters[path])
    return path


def line_of(lines: dict[Path, int], loc: Sequence[object]) -> int | None:
    """The line of `loc`, else of the nearest enclosing path the file writes (a missing key: its table)."""
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


__all__ = ["key_lines", "line_of"]
