"""Resolutions and rollup fields: what is kept at which resolution, for how long, under which name.

The one source of truth for the storage's resolutions (docs/storage.md). The InfluxDB 1.x set-up
(collector/retention.py: retention policies, continuous queries, backfill), `nettvakt check`,
and every reader that chooses a resolution (`resolution_for`, `stored_field`, `qualified_source`)
read this module; nothing keeps a second list.

- `raw`: every point as written, in the database's raw retention policy (`storage.retention_policy`,
  else the database's default), kept `raw_retention_days`.
- `5m`: per 5-minute bucket and per series (every tag kept), made from the raw points, in the
  retention policy `nettvakt_5m`, kept `rollup_5m_retention_days`.
- `1h`: per hour, made from the 5-minute rollups, in `nettvakt_1h`, kept `rollup_1h_retention_days`.

Rollup fields come from the contract (agent/schema.py). For each numeric field F of a sampled
measurement: the mean under the same name F (so `mean("F")` reads alike on every resolution),
`F_min`, `F_max`, and `F_p95` when F is a latency (ms) or a share (%, % of capacity). A cumulative
field (the contract's `cumulative=True`: a running total such as `pages_total`) is kept as its
maximum under its own name and nothing else, since its mean over a bucket means nothing and its
maximum is the total at the bucket's end. An additive field (`additive=True`: the seconds an
`availability` series was judged up, or judged at all, since its previous point) is kept as its
sum, so ratios of sums over any range are exact from the rollups. String fields are not rolled up. A measurement of events
(the contract's `events=True`: `alert`, `login`) is not rolled up at all: its points are kept
whole in the retention policy `nettvakt_events`, as long as the hourly rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Mapping, Protocol

from agent.contract import MEASUREMENTS_SPEC, UNITS, MeasurementSpec, generated_doc_main, replace_block

DAY_S = 86400
WEEK_S = 7 * DAY_S
NS = 1_000_000_000


class RetentionSettings(Protocol):
    """What of `[storage]` the resolutions need (collector.config.StorageSettings has it)."""

    retention_policy: str | None
    raw_retention_days: int
    rollup_5m_retention_days: int
    rollup_1h_retention_days: int


@dataclass(frozen=True, slots=True)
class Resolution:
    name: str
    bucket_s: int | None  # None: raw points, no buckets
    retention_policy: str | None  # None: the raw policy, storage.retention_policy or the database's default
    made_from: str | None  # the resolution its buckets are computed from
    retention_key: str  # the [storage] key that says how many days it is kept
    # The longest shard group of its InfluxDB 1.x policy (collector/retention.py `shard_group_s`);
    # None (raw): InfluxDB's own choice for the retention, as the database's default policy has it.
    longest_shard_group_s: int | None = None

    def retention_days(self, storage: RetentionSettings) -> int:
        return int(getattr(storage, self.retention_key))


RAW, FIVE_MINUTES, HOURLY = "raw", "5m", "1h"

RESOLUTIONS: Mapping[str, Resolution] = MappingProxyType({r.name: r for r in (
    Resolution(RAW, None, None, None, "raw_retention_days"),
    # Dashboards read 5-minute rows for ranges under 30 days, reports up to 60: a month's read
    # spans two shard groups of 4 weeks. Hourly rows are read up to years: a year in one or two.
    Resolution(FIVE_MINUTES, 300, "nettvakt_5m", RAW, "rollup_5m_retention_days", 4 * WEEK_S),
    Resolution(HOURLY, 3600, "nettvakt_1h", FIVE_MINUTES, "rollup_1h_retention_days", 52 * WEEK_S),
)})
ROLLUPS: tuple[Resolution, ...] = tuple(r for r in RESOLUTIONS.values() if r.bucket_s is not None)

# Event measurements are kept whole here, as long as the longest rollups.
EVENTS_RETENTION_POLICY = "nettvakt_events"
EVENTS_RETENTION_KEY = "rollup_1h_retention_days"
EVENTS_LONGEST_SHARD_GROUP_S = 52 * WEEK_S  # read over the same ranges as the hourly rows

# Units whose p95 matters: latency, loss, load and utilisation (docs/storage.md).
P95_UNITS = frozenset({"ms", "%", "% of capacity"})

Aggregate = Literal["mean", "min", "max", "p95", "sum"]

# How a rollup of rollups is made: the 1h bucket of a 5-minute field. Mean of means (exact when
# every 5-minute bucket of the hour holds as many raw points, else off by at most the spread of
# the 5-minute means), min of mins and max of maxes (exact), max of p95s (an upper bound of the
# hour's p95: each 5-minute bucket has about 5 % of its points above its p95, so about 5 % of the
# hour's are above the largest of them; InfluxDB's rank rounding in buckets of few points can put
# it slightly below, docs/storage.md).
OF_ROLLUPS: Mapping[Aggregate, Literal["mean", "min", "max", "sum"]] = MappingProxyType(
    {"mean": "mean", "min": "min", "max": "max", "p95": "max", "sum": "sum"}
)


# The name of a rollup field is its source's name and this suffix (the mean keeps the name itself).
SUFFIX: Mapping[str, str] = MappingProxyType({"min": "_min", "max": "_max", "p95": "_p95"})


@dataclass(frozen=True, slots=True)
class RollupField:
    name: str  # as stored in the rollup
    source: str  # the contract's field it is made from
    aggregate: Aggregate  # of the raw points of a bucket


def is_rolled_up(spec: MeasurementSpec) -> bool:
    """A sampled measurement with at least one numeric field; events and string-only ones are not."""
    return not spec.events and bool(rollup_fields(spec))


def rollup_fields(spec: MeasurementSpec) -> tuple[RollupField, ...]:
    """The fields of this measurement's rollups, in contract order (empty for events)."""
    if spec.events:
        return ()
    fields: list[RollupField] = []
    for field in spec.fields.values():
        if UNITS[field.unit].type != "float":
            continue
        if field.cumulative:
            fields.append(RollupField(field.name, field.name, "max"))
            continue
        if field.additive:
            fields.append(RollupField(field.name, field.name, "sum"))
            continue
        fields += [
            RollupField(field.name, field.name, "mean"),
            RollupField(field.name + SUFFIX["min"], field.name, "min"),
            RollupField(field.name + SUFFIX["max"], field.name, "max"),
        ]
        if field.unit in P95_UNITS:
            fields.append(RollupField(field.name + SUFFIX["p95"], field.name, "p95"))
    return tuple(fields)


def rolled_up_measurements() -> tuple[MeasurementSpec, ...]:
    return tuple(spec for spec in MEASUREMENTS_SPEC.values() if is_rolled_up(spec))


def event_measurements() -> tuple[MeasurementSpec, ...]:
    return tuple(spec for spec in MEASUREMENTS_SPEC.values() if spec.events)


def rollup_errors() -> list[str]:
    """What would make the rollups ambiguous (a test keeps this empty): a rollup name that is also
    another field of the measurement, or one too long to be a contract key."""
    errors = []
    for spec in rolled_up_measurements():
        names = [f.name for f in rollup_fields(spec)]
        errors += [f"{spec.name}: rollup field {n!r} appears twice" for n in sorted({n for n in names if names.count(n) > 1})]
        errors += [
            f"{spec.name}: rollup field {f.name!r} of {f.source!r} is also a field of the contract"
            for f in rollup_fields(spec) if f.name != f.source and f.name in spec.fields
        ]
        errors += [f"{spec.name}: rollup field {n!r} is longer than 64 characters" for n in names if len(n) > 64]
    return errors


def stored_field(measurement: str, field: str, aggregate: Aggregate, resolution: str) -> str:
    """The field a reader asks for to get `aggregate` of `field` at `resolution`.

    On raw points it is the field itself (apply the aggregate in the query); on a rollup it is the
    rollup field kept for it: `mean("rtt_ms")`, `min("rtt_ms_min")`, `max("rtt_ms_max")`,
    `max("rtt_ms_p95")`. A cumulative field has only its maximum, an additive one only its sum,
    under its own name.
    Raises KeyError when the rollup keeps no such field.
    """
    if resolution == RAW:
        return field
    spec = MEASUREMENTS_SPEC[measurement]
    for kept in rollup_fields(spec):
        if kept.source == field and (kept.aggregate == aggregate or spec.fields[field].cumulative or spec.fields[field].additive):
            return kept.name
    raise KeyError(f"{measurement}.{field}: its rollups keep no {aggregate}")


# --- which resolution a reader takes --------------------------------------------------------------
# A range up to this long reads raw points while they are all still kept: 2 days of a 30 s probe
# are under 6000 points per series, about what a panel can show.
RAW_MAX_RANGE_S = 2 * DAY_S
# Up to this long reads 5-minute buckets (60 days: 17280 per series); longer ranges read hours.
FIVE_MINUTE_MAX_RANGE_S = 60 * DAY_S


def resolution_for(start_ns: int, end_ns: int, now_ns: int, storage: RetentionSettings) -> Resolution:
    """The resolution a reader should use for [start_ns, end_ns) as of now_ns.

    Raw while the range is at most RAW_MAX_RANGE_S and starts within the raw retention (never raw
    for a range that starts before it: those points are gone); 5-minute buckets while it is at most
    FIVE_MINUTE_MAX_RANGE_S and starts within their retention; hours beyond.
    """
    length_s = max(0, end_ns - start_ns) / NS
    age_s = max(0, now_ns - start_ns) / NS
    if length_s <= RAW_MAX_RANGE_S and age_s <= storage.raw_retention_days * DAY_S:
        return RESOLUTIONS[RAW]
    if length_s <= FIVE_MINUTE_MAX_RANGE_S and age_s <= storage.rollup_5m_retention_days * DAY_S:
        return RESOLUTIONS[FIVE_MINUTES]
    return RESOLUTIONS[HOURLY]


# --- which resolution a dashboard takes: the rp_config rows -------------------------------------
# Grafana (no plugins) picks a resolution with hidden template variables whose queries read these
# rows, kept forever in their own policy (a point at a finite policy's distant past would be
# dropped at once). One row per resolution, tagged `resolution`; its time is how long that
# resolution is kept (ns since the epoch: 30 days of raw points are the point at 1970-01-31), so
# `time >= now() - ${__from}ms` holds when the range starts within it. The first row, by time,
# whose retention holds the range's start and whose `max_ms` is at least the range's length is
# the one resolution_for would choose (LIMIT 1), since each rollup is kept at least as long as
# what it is made from; a tie of retentions is broken by a nanosecond per rank.
META_RETENTION_POLICY = "nettvakt_meta"
RP_CONFIG = "rp_config"
# The last resolution serves any length (ms; 30 000 years, within a float's exact integers).
ANY_LENGTH_MS = 10**15
# Read on raw points and kept on the rollups: the typed suffix of the field holding each aggregate.
# Never empty (an empty option is a Grafana corner best not to rely on): `::field` is InfluxQL's
# "the field of this name", so `max(rtt_ms${max_sfx})` is `max(rtt_ms::field)` on raw points and
# `max(rtt_ms_max::field)` on a rollup. A p95 is `${p95_fn}(F${p95_args})`: `percentile(F::field,
# 95)` on raw points, `max(F_p95::field)` (the largest of the buckets' p95s, an upper bound of the
# range's p95 as the hourly rollup's is: docs/storage.md) on a rollup; `max`, not `percentile(...,
# 100)`, which InfluxDB computes from every row rather than in the storage engine: half the time of
# a year of an interface panel (docs/benchmarks.md).
TYPE_HINT = "::field"
# The smallest GROUP BY time a panel should ask of each resolution (its panels' min interval).
MIN_INTERVAL: Mapping[str, str] = MappingProxyType({RAW: "1s", FIVE_MINUTES: "5m", HOURLY: "1h"})


@dataclass(frozen=True, slots=True)
class ResolutionRow:
    """One rp_config point: where `resolution` is read from and how its fields are named."""

    resolution: str
    rp: str  # the retention policy holding it (the raw one: where the writer writes)
    max_ms: int  # the longest range (ms) it serves
    min_sfx: str
    max_sfx: str
    p95_fn: str  # the function of a p95
    p95_args: str
    events_rp: str  # where the events (alert, login) of such a range are read
    min_interval: str  # no GROUP BY time finer than its buckets
    time_ns: int  # its retention, as a time since the epoch (see above)

    def fields(self) -> dict[str, str | float]:
        return {"rp": self.rp, "max_ms": float(self.max_ms), "min_sfx": self.min_sfx, "max_sfx": self.max_sfx,
                "p95_fn": self.p95_fn, "p95_args": self.p95_args, "events_rp": self.events_rp, "min_interval": self.min_interval}


def resolution_rows(raw_policy: str, kept_s: Mapping[str, int]) -> tuple[ResolutionRow, ...]:
    """The rp_config rows for a database whose raw points are in `raw_policy`, each resolution
    kept `kept_s[name]` seconds: the same choice as `resolution_for`, in a form InfluxQL can make."""
    longest = {RAW: RAW_MAX_RANGE_S * 1000, FIVE_MINUTES: FIVE_MINUTE_MAX_RANGE_S * 1000, HOURLY: ANY_LENGTH_MS}
    rows = []
    for rank, resolution in enumerate(RESOLUTIONS.values()):
        raw = resolution.name == RAW
        sfx = {a: TYPE_HINT if raw else s + TYPE_HINT for a, s in SUFFIX.items()}
        rows.append(ResolutionRow(
            resolution.name, raw_policy if raw else resolution.retention_policy or "", longest[resolution.name],
            sfx["min"], sfx["max"], "percentile" if raw else "max", f"{sfx['p95']}, 95" if raw else sfx["p95"],
            raw_policy if raw else EVENTS_RETENTION_POLICY,
            MIN_INTERVAL[resolution.name], kept_s[resolution.name] * NS + rank,
        ))
    return tuple(rows)


# --- InfluxQL -----------------------------------------------------------------------------------
def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def qualified_source(database: str, measurement: str, resolution: str, raw_policy: str | None = None) -> str:
    """`"db"."policy"."measurement"` holding `measurement` at `resolution`, for a FROM clause.

    Events are in the events policy at every resolution but raw. Raw points are in `raw_policy`,
    or the database's default policy when it is None (`"db".."m"`).
    """
    spec = MEASUREMENTS_SPEC[measurement]
    if resolution == RAW:
        policy = raw_policy
    elif spec.events:
        policy = EVENTS_RETENTION_POLICY
    else:
        policy = RESOLUTIONS[resolution].retention_policy
    middle = quote_ident(policy) if policy else ""
    return f"{quote_ident(database)}.{middle}.{quote_ident(measurement)}"


def victoriametrics_db(database: str, resolution: str) -> str:
    """The label `db` (VictoriaMetrics' name for `/write?db=`) of `resolution`'s points of `database`:
    VictoriaMetrics has no retention policies, so a rollup is told from the raw points by it:
    `nettvakt` for raw points (and events, kept whole there), `nettvakt_5m` and `nettvakt_1h`."""
    return database if resolution == RAW else f"{database}_{resolution}"


def influxql_duration(seconds: float) -> str:
    """A duration as InfluxQL writes it back (`5m`, `2h`, `1w`, `730d`): the largest unit that divides it."""
    ns = round(seconds * NS)
    if ns == 0:
        return "0s"
    for unit, size in (("w", 7 * DAY_S * NS), ("d", DAY_S * NS), ("h", 3600 * NS), ("m", 60 * NS), ("s", NS), ("ms", 1_000_000), ("u", 1000)):
        if ns % size == 0:
            return f"{ns // size}{unit}"
    return f"{ns}ns"


def _influxql_call(aggregate: str, field: str) -> str:
    if aggregate == "p95":
        return f"percentile({quote_ident(field)}, 95)"
    return f"{aggregate}({quote_ident(field)})"


def rollup_select(spec: MeasurementSpec, resolution: Resolution, database: str, raw_policy: str) -> str:
    """The SELECT ... INTO that makes `resolution`'s buckets of one measurement.

    The body of its continuous query and of a backfill (which adds a WHERE time range). Every tag
    is kept (GROUP BY *); a 1h bucket reads the 5-minute rollup, each field by OF_ROLLUPS.
    """
    assert resolution.bucket_s is not None and resolution.made_from is not None
    source = RESOLUTIONS[resolution.made_from]
    from_rollups = source.bucket_s is not None
    calls = []
    for field in rollup_fields(spec):
        if from_rollups:
            calls.append(f"{OF_ROLLUPS[field.aggregate]}({quote_ident(field.name)}) AS {quote_ident(field.name)}")
        else:
            calls.append(f"{_influxql_call(field.aggregate, field.source)} AS {quote_ident(field.name)}")
    into = qualified_source(database, spec.name, resolution.name)
    from_policy = raw_policy if source.name == RAW else source.retention_policy
    origin = f"{quote_ident(database)}.{quote_ident(from_policy or '')}.{quote_ident(spec.name)}"
    return f"SELECT {', '.join(calls)} INTO {into} FROM {origin} GROUP BY time({influxql_duration(resolution.bucket_s)}), *"


def continuous_query_name(resolution: Resolution, measurement: str) -> str:
    """`nettvakt_5m_probe`: the policy's name and the measurement's."""
    return f"{resolution.retention_policy}_{measurement}"


# --- docs/storage.md -----------------------------------------------------------------------------
def rollups_table() -> str:
    """Every rolled-up measurement with its rollup fields, as docs/storage.md lists them: each
    numeric field F is its mean as `F` and the suffixes shown (`F_min`, `F_max`, `F_p95`), or its
    maximum as `F` when cumulative."""
    lines = ["| measurement | fields of its rollups |", "|---|---|"]
    for spec in rolled_up_measurements():
        by_source: dict[str, list[str]] = {}
        for field in rollup_fields(spec):
            by_source.setdefault(field.source, []).append(field.name[len(field.source):])
        kept = []
        for source, suffixes in by_source.items():
            if spec.fields[source].cumulative:
                kept.append(f"`{source}` (max: cumulative)")
            elif spec.fields[source].additive:
                kept.append(f"`{source}` (sum: additive)")
            else:
                kept.append(f"`{source}` {' '.join(f'`{s}`' for s in suffixes if s)}")
        lines.append(f"| `{spec.name}` | {', '.join(kept)} |")
    lines += ["", f"Kept whole, never averaged (events), in `{EVENTS_RETENTION_POLICY}`: "
              + ", ".join(f"`{spec.name}`" for spec in event_measurements()) + "."]
    return "\n".join(lines)


def render_storage_doc(text: str) -> str:
    """docs/storage.md with its generated block made from the contract."""
    return replace_block(text, "rollups", rollups_table())


if __name__ == "__main__":
    import sys

    raise SystemExit(generated_doc_main(sys.argv[1:], "collector.rollups", render_storage_doc))


__all__ = [
    "ANY_LENGTH_MS", "MIN_INTERVAL", "META_RETENTION_POLICY", "RP_CONFIG", "SUFFIX", "TYPE_HINT", "ResolutionRow", "resolution_rows",
    "EVENTS_RETENTION_KEY", "EVENTS_RETENTION_POLICY", "FIVE_MINUTES", "FIVE_MINUTE_MAX_RANGE_S", "HOURLY", "OF_ROLLUPS",
    "P95_UNITS", "RAW", "RAW_MAX_RANGE_S", "RESOLUTIONS", "ROLLUPS", "Resolution", "RetentionSettings", "RollupField",
    "continuous_query_name", "event_measurements", "victoriametrics_db", "influxql_duration", "is_rolled_up", "qualified_source", "quote_ident", "render_storage_doc", "resolution_for", "rollups_table",
    "rolled_up_measurements", "rollup_errors", "rollup_fields", "rollup_select", "stored_field",
]
