"""Retention policies and continuous queries on InfluxDB 1.x, as the inventory asks for them.

What is wanted is made from collector/rollups.py and `[storage]` (`storage_plan`); what exists is
read with SHOW (`read_existing`); `differences` names each one with the statements that fix it.
The collector applies them at its start and then hourly (`RollupMaintainer`), `nettvakt check`
lists them. Nothing that already is as asked is touched, so a restart changes nothing.

Order matters when a database is first set up: the rollup policies and continuous queries come
first, then a backfill rolls up every raw point already stored (an upgrade keeps its history as
rollups), and only then is the raw policy shortened to `raw_retention_days`, which drops older
raw points. A backfill that was cut short (the collector stopped) is finished at the next start
before the raw policy is touched: its progress is kept in the collector's data folder.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Literal, Mapping

from collector.config import Inventory, StorageSettings
from agent.points import Point
from collector.influxql import InfluxQueryError, InfluxUnreachableError, query, write_lines
from collector.lineprotocol import encode_point
from collector.rollups import (
    DAY_S,
    EVENTS_LONGEST_SHARD_GROUP_S,
    EVENTS_RETENTION_KEY,
    EVENTS_RETENTION_POLICY,
    META_RETENTION_POLICY,
    NS,
    RAW,
    RESOLUTIONS,
    ROLLUPS,
    RP_CONFIG,
    WEEK_S,
    Resolution,
    ResolutionRow,
    continuous_query_name,
    event_measurements,
    influxql_duration,
    quote_ident,
    rolled_up_measurements,
    resolution_rows,
    rollup_select,
)

log = logging.getLogger("nettvakt.retention")


@dataclass(frozen=True, slots=True)
class Cadence:
    """RESAMPLE EVERY/FOR of a continuous query: how often it runs, how far back each run reaches."""

    every_s: int
    for_s: int


# Each run of the 5-minute queries recomputes the last 2 hours, so points that reach InfluxDB up
# to about 2 hours late (an agent's store-and-forward backlog after a short outage) are folded
# into their buckets; a 1-hour query reaches 4 hours back, past the last recomputation of the
# 5-minute buckets it reads. Cost: each 5-minute run reads 2 h of raw points (24 times what a
# run without RESAMPLE FOR would), each hourly run 4 h of 5-minute buckets (docs/storage.md).
CADENCE: Mapping[str, Cadence] = MappingProxyType({"5m": Cadence(300, 2 * 3600), "1h": Cadence(3600, 4 * 3600)})


def influxdb_shard_duration_s(duration_s: int) -> int:
    """InfluxDB's own choice of shard group length for a policy this long: what the raw and meta
    policies get with every CREATE and ALTER, so a shortened raw policy's shard groups fit in it
    (InfluxDB refuses a policy shorter than them)."""
    if duration_s == 0:  # kept forever
        return WEEK_S
    if duration_s < 2 * DAY_S:
        return 3600
    if duration_s <= 180 * DAY_S:
        return DAY_S
    return WEEK_S


# The shard group lengths nettvakt chooses from for a rollup or events policy (docs/storage.md,
# "Shard groups"), and the share of a policy's retention one may be at most: a shard group is
# dropped whole once all of it has expired, so points are kept up to a tenth longer than asked.
SHARD_GROUP_STEPS_S = (3600, DAY_S, WEEK_S, 4 * WEEK_S, 52 * WEEK_S)
SHARD_GROUP_MAX_SHARE = 10


def shard_group_s(duration_s: int, longest_s: int) -> int:
    """nettvakt's shard group length for a rollup or events policy kept `duration_s` (0: forever):
    the longest step up to `longest_s` and a tenth of the retention (an hour for the shortest)."""
    fitting = [s for s in SHARD_GROUP_STEPS_S if s <= longest_s and (duration_s == 0 or s * SHARD_GROUP_MAX_SHARE <= duration_s)]
    return max(fitting, default=SHARD_GROUP_STEPS_S[0])


@dataclass(frozen=True, slots=True)
class PolicyWanted:
    name: str
    duration_s: int  # 0: kept forever
    raw: bool = False  # the raw policy: ALTERed, never created, and only after any backfill
    # nettvakt's shard group length (compared with what exists); None: InfluxDB's own for the
    # duration, set only with a changed duration (the raw and meta policies: left as they are)
    shard_s: int | None = None

    @property
    def shard_group_s(self) -> int:
        return self.shard_s if self.shard_s is not None else influxdb_shard_duration_s(self.duration_s)

    def statement(self, database: str, exists: bool) -> str:
        verb = "ALTER" if exists else "CREATE"
        replication = "" if exists else " REPLICATION 1"
        duration = "INF" if self.duration_s == 0 else influxql_duration(self.duration_s)
        return (f"{verb} RETENTION POLICY {quote_ident(self.name)} ON {quote_ident(database)} "
                f"DURATION {duration}{replication} SHARD DURATION {influxql_duration(self.shard_group_s)}")


@dataclass(frozen=True, slots=True)
class QueryWanted:
    name: str
    resolution: str
    measurement: str
    select: str  # the SELECT ... INTO ... GROUP BY time(..), * it runs
    text: str  # the whole CREATE CONTINUOUS QUERY statement


@dataclass(frozen=True, slots=True)
class StoragePlan:
    """Everything the inventory asks of one database: policies (raw first), continuous queries, and
    the rp_config rows the dashboards pick their resolution by (collector/rollups.py)."""

    database: str
    raw_policy: str
    policies: tuple[PolicyWanted, ...]
    queries: tuple[QueryWanted, ...]
    rows: tuple[ResolutionRow, ...] = ()

    def query_named(self, name: str) -> QueryWanted:
        return next(q for q in self.queries if q.name == name)


def retention_seconds(storage: StorageSettings) -> dict[str, int]:
    """Seconds each resolution is kept, by resolution name, from `[storage]`'s whole days."""
    return {r.name: r.retention_days(storage) * DAY_S for r in RESOLUTIONS.values()}


def storage_plan(
    database: str, raw_policy: str, kept_s: Mapping[str, int], cadence: Mapping[str, Cadence] = CADENCE
) -> StoragePlan:
    """The policies and queries wanted, for retentions in seconds by resolution (`retention_seconds`;
    tests pass hours, which the inventory's whole days cannot say)."""
    policies = [PolicyWanted(raw_policy, kept_s[RAW], raw=True)]
    policies += [PolicyWanted(r.retention_policy or "", kept_s[r.name], shard_s=None if r.longest_shard_group_s is None
                              else shard_group_s(kept_s[r.name], r.longest_shard_group_s)) for r in ROLLUPS]
    events_kept_s = kept_s[next(r for r in RESOLUTIONS.values() if r.retention_key == EVENTS_RETENTION_KEY).name]
    policies.append(PolicyWanted(EVENTS_RETENTION_POLICY, events_kept_s, shard_s=shard_group_s(events_kept_s, EVENTS_LONGEST_SHARD_GROUP_S)))
    policies.append(PolicyWanted(META_RETENTION_POLICY, 0))
    queries = []
    for resolution in ROLLUPS:
        every = cadence[resolution.name]
        for spec in rolled_up_measurements():
            name = continuous_query_name(resolution, spec.name)
            select = rollup_select(spec, resolution, database, raw_policy)
            text = (f"CREATE CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(database)} "
                    f"RESAMPLE EVERY {influxql_duration(every.every_s)} FOR {influxql_duration(every.for_s)} BEGIN {select} END")
            queries.append(QueryWanted(name, resolution.name, spec.name, select, text))
    return StoragePlan(database, raw_policy, tuple(policies), tuple(queries), resolution_rows(raw_policy, kept_s))


# --- what exists ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PolicyFound:
    name: str
    duration_s: int  # 0: kept forever
    shard_s: int
    default: bool


@dataclass(frozen=True, slots=True)
class StorageFound:
    policies: Mapping[str, PolicyFound]
    queries: Mapping[str, str]  # name -> the CREATE statement as InfluxDB shows it
    rows: Mapping[str, tuple[dict[str, Any], ...]] = field(default_factory=dict)  # rp_config points by resolution (time and fields)

    @property
    def default_policy(self) -> str | None:
        return next((p.name for p in self.policies.values() if p.default), None)


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|µs|us|ns)")
_GO_UNITS_S = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


def parse_go_duration(text: str) -> int:
    """`720h0m0s` (how SHOW RETENTION POLICIES writes durations) as whole seconds."""
    return round(sum(float(n) * _GO_UNITS_S[unit] for n, unit in _GO_DURATION.findall(text)))


class InfluxAdmin:
    """The statements of this module against one database, with the storage's credentials (blocking)."""

    def __init__(self, storage: StorageSettings, password: str | None, timeout_s: float = 60.0):
        assert storage.url is not None and storage.database is not None
        self.url = storage.url
        self.database = storage.database
        self.username = storage.username
        self.password = password
        self.timeout_s = timeout_s

    @classmethod
    def of(cls, inventory: Inventory, timeout_s: float = 60.0) -> "InfluxAdmin":
        storage = inventory.storage
        return cls(storage, inventory.secret(storage.password) if storage.password else None, timeout_s)

    def show(self, statement: str) -> list[dict[str, Any]]:
        return query(self.url, self.database, statement, self.username, self.password, self.timeout_s)

    def execute(self, statement: str) -> list[dict[str, Any]]:
        """Run a statement that changes something; StatementError names it with InfluxDB's answer.

        `INSERT INTO <policy> <line>` writes one point as the `influx` shell does (InfluxQL has no
        INSERT of its own): the rp_config rows' fix is runnable by hand and here alike.
        """
        try:
            if statement.startswith(_INSERT):
                policy, _, line = statement[len(_INSERT):].partition(" ")
                write_lines(self.url, self.database, policy, line.encode() + b"\n", self.username, self.password, self.timeout_s)
                return []
            return query(self.url, self.database, statement, self.username, self.password, self.timeout_s, post=True)
        except InfluxQueryError as exc:
            raise StatementError(statement, str(exc), unreachable=isinstance(exc, InfluxUnreachableError)) from exc


_INSERT = "INSERT INTO "


class StatementError(InfluxQueryError):
    """InfluxDB refused a statement (or could not be reached for it): both are in the message."""

    def __init__(self, statement: str, error: str, *, unreachable: bool = False):
        self.statement = statement
        self.error = error
        self.unreachable = unreachable
        super().__init__(f"{error} -- statement: {statement[:300]}{'...' if len(statement) > 300 else ''}")


def read_existing(admin: InfluxAdmin, *, queries: bool = True) -> StorageFound:
    """What the database has. `queries=False` where the collector makes the rollups itself: it asks
    nothing of continuous queries, which a user without admin rights may not list."""
    policies = {
        row["name"]: PolicyFound(row["name"], parse_go_duration(row["duration"]), parse_go_duration(row["shardGroupDuration"]), bool(row["default"]))
        for row in admin.show(f"SHOW RETENTION POLICIES ON {quote_ident(admin.database)}")
    }
    found_queries = {row["name"]: row["query"] for row in admin.show("SHOW CONTINUOUS QUERIES")
                     if row.get("_measurement") == admin.database} if queries else {}
    rows: dict[str, tuple[dict[str, Any], ...]] = {}
    if META_RETENTION_POLICY in policies:
        for row in admin.show(f"SELECT * FROM {quote_ident(META_RETENTION_POLICY)}.{quote_ident(RP_CONFIG)} GROUP BY {quote_ident('resolution')}"):
            values = {k: v for k, v in row.items() if k not in ("resolution", "_measurement") and v is not None}
            rows[row.get("resolution") or ""] = (*rows.get(row.get("resolution") or "", ()), values)
    return StorageFound(policies, found_queries, MappingProxyType(rows))


def raw_policy_of(storage: StorageSettings, found: StorageFound) -> str:
    """The policy raw points are written to: storage.retention_policy, else the database's default."""
    name = storage.retention_policy or found.default_policy
    if name is None:
        raise StatementError(f"SHOW RETENTION POLICIES ON {quote_ident(storage.database or '')}",
                             "the database has no default retention policy and storage.retention_policy names none")
    if name not in found.policies:
        raise StatementError(f"SHOW RETENTION POLICIES ON {quote_ident(storage.database or '')}",
                             f"storage.retention_policy {name!r} does not exist in database {storage.database!r}")
    return name


# --- what differs --------------------------------------------------------------------------------
_QUOTED_IDENT = re.compile(r'"((?:[^"\\]|\\.)*)"')


def normalised_statement(text: str) -> str:
    """A CREATE CONTINUOUS QUERY as compared: InfluxDB quotes only identifiers that need it (and
    keywords), so quotes around plain identifiers and runs of white space do not count."""
    unquoted = _QUOTED_IDENT.sub(lambda m: m.group(1) if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", m.group(1)) else m.group(0), text)
    return " ".join(unquoted.split())


def _kept(duration_s: int) -> str:
    return "forever" if duration_s == 0 else influxql_duration(duration_s)


def _policy_text(policy: PolicyFound | PolicyWanted, wanted: PolicyWanted, prefix: str = "") -> str:
    """How long a policy keeps points, and its shard groups where nettvakt chooses them."""
    shards = f" in shard groups of {influxql_duration(policy.shard_s)}" if wanted.shard_s is not None and policy.shard_s is not None else ""
    return f"{prefix}{_kept(policy.duration_s)}{shards}"


_NEW_SHARDS_ONLY = ("InfluxDB applies a new shard group duration to the shard groups it makes from then on; "
                    "the existing ones keep theirs ({}) until they expire")


def row_point(row: ResolutionRow) -> Point:
    return Point(RP_CONFIG, {"resolution": row.resolution}, row.fields(), row.time_ns)


def _row_as_found(row: ResolutionRow) -> dict[str, Any]:
    return {"time": row.time_ns, **row.fields()}


def _same_row(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return found.keys() == wanted.keys() and all(
        found[k] == v if isinstance(v, str) else isinstance(found[k], (int, float)) and float(found[k]) == float(v) for k, v in wanted.items())


@dataclass(frozen=True, slots=True)
class Difference:
    kind: Literal["retention policy", "continuous query", "resolution row"]
    name: str
    found: str
    wanted: str
    fix: tuple[str, ...]  # the statements that make it as wanted
    raw: bool = False  # the raw policy: shortening it drops raw points
    note: str = ""  # what the fix does not change

    def text(self) -> str:
        found = self.found if len(self.found) <= 200 else self.found[:200] + "...)"
        return f"{self.kind} {self.name}: {found}; the inventory asks for {self.wanted}" + (f" ({self.note})" if self.note else "")


def differences(plan: StoragePlan, found: StorageFound) -> list[Difference]:
    """Each policy and continuous query that is not as the plan says, in the order to fix them:
    rollup and events policies, then queries, the raw policy last."""
    policies, raw = [], []
    for wanted in plan.policies:
        have = found.policies.get(wanted.name)
        other_shard = have is not None and wanted.shard_s is not None and have.shard_s != wanted.shard_s
        if have is not None and have.duration_s == wanted.duration_s and not other_shard:
            continue
        diff = Difference("retention policy", wanted.name, "missing" if have is None else _policy_text(have, wanted, "keeps points "),
                          _policy_text(wanted, wanted), (wanted.statement(plan.database, have is not None),), wanted.raw,
                          note=_NEW_SHARDS_ONLY.format(influxql_duration(have.shard_s)) if other_shard and have is not None else "")
        (raw if wanted.raw else policies).append(diff)
    queries = []
    wanted_names = {q.name for q in plan.queries}
    for wanted in plan.queries:
        have_text = found.queries.get(wanted.name)
        if have_text is not None and normalised_statement(have_text) == normalised_statement(wanted.text):
            continue
        drop = (f"DROP CONTINUOUS QUERY {quote_ident(wanted.name)} ON {quote_ident(plan.database)}",) if have_text is not None else ()
        queries.append(Difference(
            "continuous query", wanted.name, "missing" if have_text is None else f"differs (InfluxDB has: {have_text})",
            "the one made from the contract and [storage]", (*drop, wanted.text),
        ))
    ours = tuple(r.retention_policy for r in ROLLUPS)
    for name in sorted(found.queries):
        if name.startswith(tuple(f"{p}_" for p in ours)) and name not in wanted_names:
            queries.append(Difference("continuous query", name, "not made from the contract any more", "none",
                                      (f"DROP CONTINUOUS QUERY {quote_ident(name)} ON {quote_ident(plan.database)}",)))
    return policies + queries + row_differences(plan, found) + raw


def row_differences(plan: StoragePlan, found: StorageFound) -> list[Difference]:
    """Each rp_config row that is not exactly the one point wanted for its resolution (a changed
    retention moves the point in time: the old one is deleted, or the dashboards would find it)."""
    diffs = []
    for row in plan.rows:
        wanted = _row_as_found(row)
        have = found.rows.get(row.resolution, ())
        if len(have) == 1 and _same_row(have[0], wanted):
            continue
        found_text = "missing" if not have else f"differs (InfluxDB has: {', '.join(json.dumps(h, sort_keys=True) for h in have)})"
        delete = (f"DELETE FROM {quote_ident(RP_CONFIG)} WHERE {quote_ident('resolution')} = '{row.resolution}'",) if have else ()
        diffs.append(Difference("resolution row", f"{META_RETENTION_POLICY}.{RP_CONFIG} {row.resolution}", found_text, json.dumps(wanted, sort_keys=True),
                                (*delete, f"{_INSERT}{META_RETENTION_POLICY} {encode_point(row_point(row))}")))
    return diffs


def storage_differences(inventory: Inventory) -> list[Difference]:
    """What InfluxDB has that differs from what the inventory asks (`nettvakt check`); raises
    InfluxQueryError when InfluxDB cannot be asked."""
    admin = InfluxAdmin.of(inventory, timeout_s=inventory.storage.timeout_s)
    found = read_existing(admin, queries=inventory.storage.rollups_by != "collector")
    plan = storage_plan(admin.database, raw_policy_of(inventory.storage, found), retention_seconds(inventory.storage))
    return differences(plan, found)


# --- backfill ------------------------------------------------------------------------------------
def _bucket_floor(time_ns: int, bucket_s: int) -> int:
    return time_ns - time_ns % (bucket_s * NS)


def backfill(
    admin: InfluxAdmin, plan: StoragePlan, start_ns: int, end_ns: int, *, chunk_s: int = DAY_S,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run every rollup's SELECT ... INTO over [start_ns, end_ns), widened to whole hours, a chunk at a
    time (5-minute buckets of a chunk, then its hours from them), and copy the event measurements
    whole into the events policy. Returns the statements run; `progress` gets each chunk's end.

    What a continuous query would have written for those buckets: the same SELECT, so the same
    points (InfluxDB overwrites a point of the same series and time, so running it twice is harmless).
    """
    widest = max(r.bucket_s or 0 for r in ROLLUPS)
    start = _bucket_floor(start_ns, widest)
    end = _bucket_floor(end_ns + widest * NS - 1, widest)
    chunk_ns = max(chunk_s, widest) * NS
    chunk_ns -= chunk_ns % (widest * NS)
    statements = 0
    for chunk_start in range(start, end, chunk_ns):
        chunk_end = min(chunk_start + chunk_ns, end)
        where = f"WHERE time >= {chunk_start} AND time < {chunk_end}"
        for resolution in ROLLUPS:
            for wanted in plan.queries:
                if wanted.resolution == resolution.name:
                    select, _, group = wanted.select.rpartition(" GROUP BY ")
                    admin.execute(f"{select} {where} GROUP BY {group}")
                    statements += 1
        statements += copy_events(admin, plan, where)
        if progress is not None:
            progress(chunk_end)
    return statements


def copy_events(admin: InfluxAdmin, plan: StoragePlan, where: str) -> int:
    """Copy the event measurements' raw points matching `where`, fields and tags as they are, into
    the events policy; returns the statements run."""
    db = quote_ident(plan.database)
    specs = event_measurements()
    for spec in specs:
        name = quote_ident(spec.name)
        admin.execute(f"SELECT * INTO {db}.{quote_ident(EVENTS_RETENTION_POLICY)}.{name} FROM {db}.{quote_ident(plan.raw_policy)}.{name} {where} GROUP BY *")
    return len(specs)


def oldest_shard_start_ns(admin: InfluxAdmin, policy: str) -> int | None:
    """Start of the oldest shard of `policy`: no raw point is older (SHOW SHARDS; cheap, unlike a query)."""
    starts = [row["start_time"] for row in admin.show("SHOW SHARDS")
              if row.get("database") == admin.database and row.get("retention_policy") == policy]
    if not starts:
        return None
    # start_time is RFC 3339 (2024-05-06T00:00:00Z) in InfluxDB 1.x, whatever epoch= asks for.
    def ns(value: Any) -> int:
        if isinstance(value, (int, float)):
            return int(value)
        return int(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()) * NS

    return min(ns(s) for s in starts)


# --- applying ------------------------------------------------------------------------------------
BACKFILL_FILE = "rollup-backfill.json"


@dataclass
class SetupResult:
    plan: StoragePlan
    applied: list[str]  # statements run to make it as the inventory asks (not the backfill's)
    backfill_statements: int = 0


class BackfillState:
    """A backfill still to finish, kept in the data folder: {database, start_ns, end_ns, done_ns}."""

    def __init__(self, path: Path):
        self.path = path

    def load(self, database: str) -> dict[str, int] | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        return data if data.get("database") == database else None

    def save(self, database: str, start_ns: int, end_ns: int, done_ns: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"database": database, "start_ns": start_ns, "end_ns": end_ns, "done_ns": done_ns}), encoding="utf-8")
        os.replace(tmp, self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def set_up(
    admin: InfluxAdmin, storage: StorageSettings, state: BackfillState, *,
    kept_s: Mapping[str, int] | None = None, cadence: Mapping[str, Cadence] = CADENCE,
    now_ns: Callable[[], int] = time.time_ns, on_backfill: Callable[[int, int, int], None] | None = None,
) -> SetupResult:
    """Make the database as the inventory asks; what already is, is left alone.

    The first time (the 5-minute policy did not exist) every raw point already stored is rolled up
    before the raw policy is shortened. Raises StatementError naming the statement InfluxDB refused.
    """
    found = read_existing(admin)
    raw_policy = raw_policy_of(storage, found)
    plan = storage_plan(admin.database, raw_policy, kept_s or retention_seconds(storage), cadence)
    result = SetupResult(plan, [])
    diffs = differences(plan, found)
    first_time = RESOLUTIONS["5m"].retention_policy not in found.policies
    if first_time and state.load(admin.database) is None:
        oldest = oldest_shard_start_ns(admin, raw_policy)
        if oldest is not None:
            state.save(admin.database, oldest, now_ns(), oldest)
    for diff in diffs:
        if diff.raw:
            continue
        for statement in diff.fix:
            admin.execute(statement)
            result.applied.append(statement)
        log.info("made as asked: %s", diff.text())
    pending = state.load(admin.database)
    if pending is not None:
        start_ns, end_ns = pending["start_ns"], pending["end_ns"]
        log.info("rolling up the raw points already stored, %s to %s (before the raw policy is shortened)",
                 _iso(pending["done_ns"]), _iso(end_ns))

        def saved(done_ns: int) -> None:
            state.save(admin.database, start_ns, end_ns, done_ns)
            if on_backfill is not None:
                on_backfill(start_ns, end_ns, done_ns)

        result.backfill_statements = backfill(admin, plan, pending["done_ns"], end_ns, progress=saved)
        state.clear()
        log.info("backfill done: %d statements", result.backfill_statements)
    for diff in diffs:
        if diff.raw:
            for statement in diff.fix:
                admin.execute(statement)
                result.applied.append(statement)
            log.warning("made as asked: raw %s; InfluxDB drops the raw points older than that", diff.text())
    return result


def _iso(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / NS, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


# --- in the collector ----------------------------------------------------------------------------
@dataclass
class MaintainerStats:
    runs: int = 0  # set-ups finished without error
    failures: int = 0
    unreachable: bool = False  # the last failure was no answer at all (the writer's problem says so already)
    applied: int = 0  # statements run to change policies or queries, since start
    last_applied: list[str] = field(default_factory=list)
    last_error: str | None = None
    backfill: dict[str, int] | None = None  # {start_ns, end_ns, done_ns} while one runs


class RollupMaintainer:
    """Sets the database up at the collector's start, then checks it hourly (someone may drop a
    query); failures (InfluxDB down, no admin rights) are logged with the statement and InfluxDB's
    answer, shown in /health, and retried with backoff. Once the events policy exists the writer
    copies event points into it too (`on_ready`)."""

    RECHECK_S = 3600.0
    RETRY_INITIAL_S = 10.0
    RETRY_MAX_S = 600.0

    def __init__(self, inventory: Inventory, on_ready: Callable[[StoragePlan], None], *, kept_s: Mapping[str, int] | None = None,
                 cadence: Mapping[str, Cadence] = CADENCE):
        self.inventory = inventory
        self.on_ready = on_ready
        self.kept_s = kept_s
        self.cadence = cadence
        self.stats = MaintainerStats()
        self.state = BackfillState(inventory.data_dir() / BACKFILL_FILE)
        self._wake = asyncio.Event()
        self._events_caught_up = False

    def wake(self) -> None:
        """Check and set up now rather than at the next hourly round (the writer found a policy gone)."""
        self._wake.set()

    def _set_up(self) -> SetupResult:
        def progress(start_ns: int, end_ns: int, done_ns: int) -> None:
            self.stats.backfill = {"start_ns": start_ns, "end_ns": end_ns, "done_ns": done_ns}

        return set_up(InfluxAdmin.of(self.inventory), self.inventory.storage, self.state, kept_s=self.kept_s,
                      cadence=self.cadence, on_backfill=progress)

    def _catch_up_events(self, plan: StoragePlan) -> None:
        """Events written before the writer's copy was on (the queue drains from the start) are
        copied from what the raw policy still holds; from then on the writer copies each one."""
        now = time.time_ns()
        copy_events(InfluxAdmin.of(self.inventory), plan, f"WHERE time >= {now - plan.policies[0].duration_s * NS} AND time <= {now}")

    async def run(self) -> None:
        retry_s = self.RETRY_INITIAL_S
        while True:
            try:
                result = await asyncio.to_thread(self._set_up)
            except (InfluxQueryError, OSError, ValueError) as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                self.stats.unreachable = isinstance(exc, (InfluxUnreachableError, OSError)) or getattr(exc, "unreachable", False)
                log.error("retention policies and continuous queries not set up (retrying in %.0f s): %s", retry_s, exc)
                await asyncio.sleep(retry_s)
                retry_s = min(retry_s * 2, self.RETRY_MAX_S)
                continue
            retry_s = self.RETRY_INITIAL_S
            self.stats.runs += 1
            self.stats.applied += len(result.applied)
            self.stats.last_applied = result.applied
            self.stats.last_error = None
            self.stats.backfill = None
            if not result.applied:
                log.info("retention policies and continuous queries are as the inventory asks: nothing changed")
            self.on_ready(result.plan)
            if not self._events_caught_up:
                try:
                    await asyncio.to_thread(self._catch_up_events, result.plan)
                    self._events_caught_up = True
                except InfluxQueryError as exc:
                    log.error("events not copied into %s (tried again at the next round): %s", EVENTS_RETENTION_POLICY, exc)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.RECHECK_S)
            except asyncio.TimeoutError:
                pass

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"runs": s.runs, "failures": s.failures, "applied": s.applied, "last_error": s.last_error,
                "unreachable": s.unreachable, "backfill": s.backfill}

    def problems(self) -> list[str]:
        """A refusal by InfluxDB (no admin rights, a policy that is not there) is a problem of its own;
        an InfluxDB that does not answer is the writer's problem already, told once."""
        if self.stats.last_error is None or self.stats.unreachable:
            return []
        return [f"retention policies and continuous queries are not as the inventory asks ({self.stats.failures} failed attempts; "
                f"rollups may be missing): {self.stats.last_error}"]
