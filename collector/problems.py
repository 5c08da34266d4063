"""Configuration problems a person can act on: file and line, the entry's id, the key, what to write.

    inventory.toml:187: device 'sw-skole': host: '10.20.60.256' is not an IP address or host name

A problem is found as a TOML path and a message (by pydantic, or by the checks that span
tables); this module turns pydantic's wording into plain advice ("did you mean", dates and
durations as they are written), and places each problem on its line (collector/tomllines.py)
under the id of the entry it belongs to.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from collector.tomllines import key_lines, line_of

Loc = tuple[object, ...]
_PATH = re.compile(r"^((?:[a-z_][a-z0-9_]*)(?:\[\d+\]|\.[A-Za-z_][A-Za-z0-9_-]*)*): (.*)$", re.S)
_PART = re.compile(r"\[(\d+)\]|\.?([A-Za-z_][A-Za-z0-9_-]*)")


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    line: int | None = None
    subject: str | None = None  # "device 'sw-skole'": the entry of a [[table]] the problem is in

    def text(self) -> str:
        """Without the file: `device 'sw-skole': host: ...` (or `storage.kind: ...` outside [[tables]])."""
        rest = format_loc(self.loc[2:] if self.subject else self.loc)
        if self.subject:
            return f"{self.subject}: {rest}: {self.message}" if self.loc[2:] else f"{self.subject}: {self.message}"
        return f"{rest}: {self.message}" if self.loc else self.message

    def render(self, path: str) -> str:
        return f"{path}:{self.line}: {self.text()}" if self.line else f"{path}: {self.text()}"


def format_loc(loc: Loc) -> str:
    """('device', 3, 'snmp', 'version') -> 'device[3].snmp.version'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def parse_loc(text: str) -> Loc:
    """'route[0].channels[1]' -> ('route', 0, 'channels', 1)."""
    return tuple(int(index) if index else name for index, name in _PART.findall(text))


def from_text(text: str) -> Problem:
    """A problem written as 'path: message' (the checks that span tables write them so)."""
    match = _PATH.match(text)
    if not match:
        return Problem((), text)
    return Problem(parse_loc(match.group(1)), match.group(2))


def did_you_mean(value: object, choices: typing.Iterable[str]) -> str:
    """'; did you mean 'x'?' for a near miss among choices, else ''."""
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_references(path: str, values: typing.Iterable[str], known: typing.Collection[str], what: str) -> list[str]:
    """"path[j]: no `what` 'x'; did you mean 'y'?" for each value of a list that names nothing in `known`."""
    return [f"{path}[{j}]: no {what} {value!r}{did_you_mean(value, known)}" for j, value in enumerate(values) if value not in known]


# --- pydantic's errors, in words --------------------------------------------------------------
def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class a loc points into (for the keys it allows), following lists and optionals."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        current = _unwrap(current.model_fields[part].annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin in (list, tuple, typing.Annotated):
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else args[0]
        else:
            return annotation


def describe(error: dict[str, Any], root: type[BaseModel]) -> Problem:
    """One pydantic error as a Problem with a message a person can act on."""
    # "[key]": pydantic's mark for a table's key (`[collectors.NAME]`) that is itself wrong; the key is the place.
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and (p.startswith("function-") or p == "[key]")))
    kind, msg, given = error["type"], error["msg"], error.get("input")
    key = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        owner = _model_at(root, loc[:-1])
        allowed = sorted(owner.model_fields) if owner is not None else []
        msg = "unknown key" + did_you_mean(key, allowed)
    elif kind == "missing":
        msg = "required key is missing"
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    elif kind.startswith(("date_", "datetime_")):
        msg = f"expected a date, written as a TOML date without quotes: {key} = 2020-08-14; got {given!r}"
    elif kind.startswith("time_"):
        msg = f"expected a time of day, written as a TOML time without quotes: {key} = 08:00:00; got {given!r}"
    elif kind in ("float_parsing", "float_type", "int_parsing", "int_type") and isinstance(key, str) and key.endswith("_s"):
        msg = f"expected a number of seconds (e.g. 300 for five minutes), got {given!r}"
    elif kind in ("float_parsing", "int_parsing"):
        msg = f"expected a number, got {given!r}"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = next(iter(error.get("ctx", {}).values()), "")
        words = {"greater_than": "greater than", "greater_than_equal": "at least", "less_than": "less than", "less_than_equal": "at most"}[kind]
        msg = f"must be {words} {bound}, got {given!r}"
    elif kind == "list_type":
        msg = f"expected a list such as [\"a\", \"b\"], got {given!r}"
    elif kind in ("string_type", "bool_type", "dict_type"):
        msg = {"string_type": "expected a string (in quotes)", "bool_type": "expected true or false", "dict_type": "expected a table"}[kind] + f", got {given!r}"
    elif kind == "literal_error":
        expected = error.get("ctx", {}).get("expected", "")
        msg = f"{given!r} is not one of {expected}" + did_you_mean(given, re.findall(r"'([^']*)'", expected))
    return Problem(loc, msg)


# --- placing problems in the file -------------------------------------------------------------
def placed(problems: list[Problem], data: dict[str, Any], text: str | None) -> list[Problem]:
    """Each problem with its line and the id of its entry, in line order (every problem at once)."""
    lines = key_lines(text) if text is not None else {}
    out = []
    for problem in problems:
        subject = None
        loc = problem.loc
        if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
            entries = data.get(loc[0])
            entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
            ident = entry.get("id", entry.get("name")) if isinstance(entry, dict) else None
            subject = f"{loc[0]} {ident!r}" if isinstance(ident, str) else f"{loc[0]} #{loc[1] + 1}"
        out.append(Problem(loc, problem.message, line_of(lines, loc) if lines else None, subject))
    return sorted(out, key=lambda p: (p.line or 0))


__all__ = ["Problem", "describe", "did_you_mean", "format_loc", "from_text", "parse_loc", "placed"]
