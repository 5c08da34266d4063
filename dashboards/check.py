"""Checks a Grafana dashboard without a Grafana server: structure, and its queries as Grafana runs them.

Used by tests/test_dashboards.py (structure) and tests/lab/test_scenarios.py (every query
against real lab data).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

BUILTINS = {"timeFilter", "__interval", "__interval_ms", "__from", "__to", "__range"}
VARIABLE_RE = re.compile(r"\$\{?(\w+)")


def iter_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, query) for every panel target, variable and annotation."""
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']}", var["query"]
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["query"]
    for annotation in dashboard["annotations"]["list"]:
        yield f"annotation {annotation['name']}", annotation["query"]


def structural_problems(dashboard: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for key in ("uid", "title", "schemaVersion", "panels", "templating"):
        if key not in dashboard:
            problems.append(f"missing {key}")
    ids = [p.get("id") for p in dashboard.get("panels", [])]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids not unique: {ids}")
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard.get("panels", []):
        pos = panel.get("gridPos", {})
        x, y, w, h = (pos.get(k) for k in ("x", "y", "w", "h"))
        if None in (x, y, w, h) or x < 0 or w < 1 or x + w > 24 or h < 1 or y < 0:
            problems.append(f"panel {panel.get('id')}: gridPos {pos} outside the 24-column grid")
            continue
        for cx in range(x, x + w):
            for cy in range(y, y + h):
                if (cx, cy) in cells:
                    problems.append(f"panel {panel['id']} overlaps panel {cells[cx, cy]}")
                    break
                cells[cx, cy] = panel["id"]
            else:
                continue
            break
        if not panel.get("datasource"):
            problems.append(f"panel {panel.get('id')}: no data source")
        if not panel.get("targets") or not all(t.get("query") for t in panel["targets"]):
            problems.append(f"panel {panel.get('id')}: no query")
    defined = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    for where, query in iter_queries(dashboard):
        for name in VARIABLE_RE.findall(query):
            if name not in defined and name not in BUILTINS:
                problems.append(f"{where}: uses ${name}, which is not defined")
    return problems


def grafana_regex(values: list[str]) -> str:
    """A multi-value variable inside /^$var$/, formatted as Grafana does: (a|b) with regex escapes."""
    escaped = [re.sub(r"([\\/^$.|?*+()\[\]{}-])", r"\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A dashboard's time range as Grafana holds it: epoch milliseconds, `${__from}` and `${__to}`."""

    from_ms: int
    to_ms: int

    @classmethod
    def last(cls, seconds: float, now_ms: int | None = None) -> "TimeRange":
        """`now-<seconds>` to `now`."""
        end = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(end - int(seconds * 1000), end)

    @property
    def time_filter(self) -> str:
        """`$timeFilter` as Grafana's InfluxDB data source writes it for an absolute range."""
        return f"time >= {self.from_ms}ms and time <= {self.to_ms}ms"


Values = dict[str, list[str] | str]


def substitute(query: str, values: Values, time_filter: str, interval: str, span: TimeRange | None = None) -> str:
    """The query as Grafana sends it: `$timeFilter`, `$__interval`, `${__from}`/`${__to}` (and
    `$__from`/`$__to`: epoch ms), then each variable: a list (multi-value) as Grafana's regex
    `(a|b)`, a single value (a variable neither multi nor include-all) as it is."""
    query = query.replace("$timeFilter", time_filter).replace("$__interval", interval)
    if span is not None:
        for name, ms in (("__from", span.from_ms), ("__to", span.to_ms)):
            query = query.replace(f"${{{name}}}", str(ms)).replace(f"${name}", str(ms))
    elif re.search(r"\$\{?__(from|to)\b", query):
        raise ValueError(f"the query uses the time range's ${{__from}}/${{__to}}, and no range was given: {query}")
    for name, chosen in values.items():
        text = chosen if isinstance(chosen, str) else grafana_regex(chosen)
        query = query.replace(f"${{{name}}}", text).replace(f"${name}", text)
    return query


def raw_resolution_values(raw_policy: str = "autogen") -> Values:
    """The hidden resolution variables as the raw rp_config row sets them (collector/rollups.py),
    for a database the collector's retention set-up never ran on (no rp_config to read)."""
    from collector.rollups import RAW, RESOLUTIONS, resolution_rows

    (row,) = [r for r in resolution_rows(raw_policy, {name: 1 for name in RESOLUTIONS}) if r.resolution == RAW]
    return {"rp": row.rp, "raw_rp": raw_policy, "min_sfx": row.min_sfx, "max_sfx": row.max_sfx, "p95_fn": row.p95_fn, "p95_args": row.p95_args,
            "events_rp": row.events_rp, "min_interval": row.min_interval, "coarse_rp": row.rp}


def _option(row: dict[str, Any]) -> str:
    """A variable's option from one row, as Grafana's InfluxDB parser takes it: SHOW TAG VALUES'
    `value`, else the column after `time` (`SELECT "rp" FROM ...`)."""
    if "value" in row:
        return str(row["value"])
    return str(next(v for k, v in row.items() if k not in ("time", "_measurement")))


def resolve_variables(
    dashboard: dict[str, Any], run: Callable[[str], list[dict[str, Any]]], time_filter: str, span: TimeRange | None = None,
    opened: bool = False,
) -> Values:
    """Fill every query variable from its own query, in order (chained variables see earlier ones);
    the hidden resolution variables (docs/storage.md) from the rp_config rows for `span`.
    A variable whose query returns nothing is an error (Grafana would show "None").

    A multi-value variable takes every value its query finds; with `opened`, what Grafana selects
    when the dashboard opens (`opening_value`), and later variables see that."""
    values: Values = {}
    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        rows = run(substitute(var["query"], values, time_filter, "1m", span))
        found = sorted({_option(r) for r in rows})
        if not found:
            raise AssertionError(f"variable {var['name']}: query returned nothing: {var['query']}")
        if opened:
            values[var["name"]] = opening_value(var, found)
        else:
            values[var["name"]] = found if var.get("multi") or var.get("includeAll") else found[0]
    return values


def opening_value(var: dict[str, Any], options: list[str]) -> list[str] | str:
    """What Grafana selects for a query variable when the dashboard opens, given its sorted options:
    the stored values that are among them (All: the variable's allValue, else every option), and
    where none is, the first option, which is All where the variable has one (Grafana lists All first)."""
    stored = var.get("current", {}).get("value")
    stored = [stored] if isinstance(stored, str) else list(stored or [])
    every = var.get("allValue") or options
    if var.get("includeAll") and stored == ["$__all"]:
        return every
    chosen = [v for v in stored if v in options]
    if not chosen:
        if var.get("includeAll"):
            return every
        chosen = options[:1]
    return chosen if var.get("multi") else chosen[0]
