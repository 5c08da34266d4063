"""Shard groups for the rollups (issue 19): the overview's panels over a year of hourly rows in
InfluxDB's weekly shard groups against nettvakt's own (collector/retention.py `shard_group_s`).

    PYTHONPATH=. .venv/bin/python bench/shard_groups.py --data-dir /work/bench-data/history-dash [--runs 3] [--json FILE]

On the data folder bench/history_year.py --keep left (its influxd, as that bench starts it), two
new databases are set up by the collector's own `retention.set_up` and filled with the same copy of
what the overview dashboard reads from `after`: the newest raw day of `collector`, `availability`
and `probe`, every hourly `availability` row (a year) and every event. `weekly` then has its rollup
and events policies ALTERed to 1-week shard groups before the copy (InfluxDB's own choice for
policies kept over 6 months: what nettvakt made before), `chosen` keeps nettvakt's. Both are
written by the same SELECT ... INTO and fully compacted; then the overview's panels are measured
on both (and on `after` itself), range by range, the databases in turn, and their policies' disk.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from history_year import (  # noqa: E402
    AFTER,
    RANGES,
    _current_dashboards,
    _du,
    _uptime,
    log,
    measure_panels,
    run_statement,
    wait_for_compaction,
)

from collector.localservers import start_influxd  # noqa: E402
from collector.retention import BackfillState, InfluxAdmin, set_up  # noqa: E402
from collector.rollups import DAY_S, EVENTS_RETENTION_POLICY, NS, RESOLUTIONS, WEEK_S, influxql_duration, quote_ident  # noqa: E402
from collector.config import StorageSettings  # noqa: E402

WEEKLY, CHOSEN = "shards_weekly", "shards_chosen"
HOURLY_POLICY = RESOLUTIONS["1h"].retention_policy or ""
ROLLUP_POLICIES = (*(r.retention_policy or "" for r in RESOLUTIONS.values() if r.retention_policy), EVENTS_RETENTION_POLICY)
# What the overview reads: raw "now" values, the hourly availability, the events (docs/benchmarks.md).
RAW_MEASUREMENTS = ("collector", "availability", "probe")
EVENTS = ("alert", "login")
CHUNK_S = 30 * DAY_S  # one SELECT ... INTO per month of hourly rows


def settings(url: str, database: str) -> StorageSettings:
    return StorageSettings(kind="influxdb_v1", url=url, database=database, retention_policy="autogen")


def copy_into(url: str, database: str, end_s: int) -> dict[str, float]:
    """The overview's data from `after` into `database`, seconds per part."""
    timings = {}
    into = f"{quote_ident(database)}.{quote_ident('autogen')}.:MEASUREMENT"
    started = time.perf_counter()
    names = "|".join(RAW_MEASUREMENTS)
    run_statement(url, f'SELECT * INTO {into} FROM "{AFTER}"."autogen"./^({names})$/ GROUP BY *', AFTER)
    timings["raw"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    start_ns, end_ns = (end_s - 366 * DAY_S) * NS, end_s * NS
    for chunk in range(start_ns, end_ns, CHUNK_S * NS):
        run_statement(url, f'SELECT * INTO {quote_ident(database)}.{quote_ident(HOURLY_POLICY)}."availability" FROM "{AFTER}".'
                           f'{quote_ident(HOURLY_POLICY)}."availability" WHERE time >= {chunk} AND time < {min(chunk + CHUNK_S * NS, end_ns)} GROUP BY *', AFTER)
    timings["hourly_availability"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    for name in EVENTS:
        events = quote_ident(EVENTS_RETENTION_POLICY)
        run_statement(url, f'SELECT * INTO {quote_ident(database)}.{events}.{quote_ident(name)} FROM "{AFTER}".{events}.{quote_ident(name)} GROUP BY *', AFTER)
    timings["events"] = round(time.perf_counter() - started, 1)
    return timings


def prepare(url: str, database: str, work: Path) -> list[str]:
    """A database as the collector sets it up; `weekly`: its rollup policies then ALTERed to 1-week
    shard groups. Returns the statements run."""
    run_statement(url, f"CREATE DATABASE {quote_ident(database)}")
    admin = InfluxAdmin(settings(url, database), None, timeout_s=3600)
    applied = set_up(admin, settings(url, database), BackfillState(work / f"backfill-{database}.json")).applied
    if database == WEEKLY:
        for policy in ROLLUP_POLICIES:
            statement = f"ALTER RETENTION POLICY {quote_ident(policy)} ON {quote_ident(database)} SHARD DURATION {WEEK_S // DAY_S}d"
            admin.execute(statement)
            applied.append(statement)
    return applied


def shards(url: str) -> dict[str, dict[str, Any]]:
    """Shard count and shard group duration per database.policy."""
    out: dict[str, dict[str, Any]] = {}
    for row in run_statement(url, "SHOW SHARDS"):
        key = f"{row.get('database')}.{row.get('retention_policy')}"
        entry = out.setdefault(key, {"shards": 0, "durations": set()})
        entry["shards"] += 1
        start, end = (dt.datetime.fromisoformat(str(row[k]).replace("Z", "+00:00")) for k in ("start_time", "end_time"))
        entry["durations"].add(influxql_duration((end - start).total_seconds()))
    return {k: {"shards": v["shards"], "durations": sorted(v["durations"])} for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data/history-dash"), help="what bench/history_year.py --keep left")
    parser.add_argument("--runs", type=int, default=3, help="runs of each panel (best and median)")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    args = parser.parse_args(argv)
    work = args.data_dir.resolve()
    end_s = json.loads((work / "generated.json").read_text())["end_s"]
    results: dict[str, Any] = {"command": " ".join(sys.argv), "uptime_before": _uptime()}
    server = start_influxd(work / "influxd", compact_full_cold_s=30.0)
    try:
        existing = {row["name"] for row in run_statement(server.url, "SHOW DATABASES")}
        results["copied"] = {}
        for database in (WEEKLY, CHOSEN):
            if database in existing:  # a run before copied it: measured as it is
                continue
            results.setdefault("set_up", {})[database] = prepare(server.url, database, work)
            results["copied"][database] = copy_into(server.url, database, end_s)
            log(f"{database} copied: {results['copied'][database]}")
        results["compaction_wait_s"] = wait_for_compaction(server)
        results["shards"] = shards(server.url)
        results["disk"] = {f"{db}.{policy}": _du(server.data_dir / "data" / db / policy)
                           for db in (AFTER, WEEKLY, CHOSEN) for policy in ("autogen", *ROLLUP_POLICIES)
                           if (server.data_dir / "data" / db / policy).exists()}
        results["uptime_measuring"] = _uptime()
        overview = {"overview": _current_dashboards()["overview"]}
        panels: dict[str, dict[str, Any]] = {}
        for range_name, seconds in RANGES.items():  # the databases in turn per range: the machine's load moves alike
            for database in (WEEKLY, CHOSEN, AFTER):
                for key, figures in measure_panels(server.url, database, overview, end_s * 1000, args.runs, {range_name: seconds}).items():
                    panels.setdefault(database, {}).setdefault(key, {}).update(figures)
        results["panels"] = panels
        results["uptime_after"] = _uptime()
    finally:
        server.stop()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


def markdown(results: dict[str, Any]) -> str:
    """The overview's panels, median ms per range: weekly / chosen shard groups (and `after`)."""
    panels = results["panels"]
    lines = ["| panel | " + " | ".join(f"{r} weekly | {r} chosen" for r in RANGES) + " |", "|---|" + "---:|---:|" * len(RANGES)]
    for key in panels[WEEKLY]:
        cells = []
        for r in RANGES:
            for db in (WEEKLY, CHOSEN):
                f = panels[db][key].get(r, {})
                cells.append("error" if "error" in f else f"{f.get('median_ms', 0):.0f}" if f.get("median_ms", 0) >= 10 else f"{f.get('median_ms', 0):.1f}")
        lines.append(f"| {key.split(' | ', 1)[1]} | " + " | ".join(cells) + " |")
    lines += ["", "| database.policy | bytes | shards | shard group |", "|---|---:|---:|---|"]
    for name, size in results["disk"].items():
        s = results["shards"].get(name, {})
        lines.append(f"| {name} | {size:,} | {s.get('shards', '')} | {', '.join(s.get('durations', []))} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
