"""VictoriaMetrics as nettvakt's storage (`[storage] kind = "victoriametrics"`): its one retention,
and reading points back.

The writer writes line protocol to VictoriaMetrics' InfluxDB endpoint (`/write?db=<database>`):
a point `m,tag=v f=1.5` becomes the sample `m_f{tag="v", db="<database>"}`; string fields are
not kept usefully (VictoriaMetrics stores every field as a number). The collector writes the
rollups with `db` set to `<database>_5m` and `<database>_1h` (collector.rollups.victoriametrics_db),
so a rollup series is the raw series with another `db`.

Single-node VictoriaMetrics keeps everything for one `-retentionPeriod`: raw points as long as
the rollups. `retention_s` reads it from `/flags`; `retention_notes` says what that means against
`[storage]` (the collector logs it at start, `nettvakt check` shows it).

`VictoriaMetricsSource` is the reports' and diagnose's `SeriesSource` over `/api/v1/export`: the
same samples, fields and tags the InfluxQL reader gives, at every resolution.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping

from agent.contract import MEASUREMENTS_SPEC, UNITS
from collector.rollups import DAY_S, NS, RAW, RESOLUTIONS, RetentionSettings, resolution_for, rollup_fields, victoriametrics_db
from collector.timeseries import READ_TIMEOUT_S, Sample, SourceError

# VictoriaMetrics' own default and units for -retentionPeriod: a bare number is months of 31 days.
DEFAULT_RETENTION = "1"
_RETENTION_UNITS_S = {"h": 3600, "d": DAY_S, "w": 7 * DAY_S, "y": 365 * DAY_S, "": 31 * DAY_S}
_RETENTION = re.compile(r"^(\d+(?:\.\d+)?)([hdwy]?)$")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class VictoriaMetricsError(SourceError):
    """VictoriaMetrics could not be asked, or answered what it should not; the message names the URL."""


def _get(url: str, timeout_s: float) -> bytes:
    opener = _NO_PROXY if urllib.parse.urlsplit(url).hostname in ("127.0.0.1", "::1", "localhost") else urllib.request.build_opener()
    try:
        with opener.open(url, timeout=timeout_s) as resp:
            return resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise VictoriaMetricsError(f"VictoriaMetrics at {url.split('?')[0]}: {exc}") from exc


def parse_retention(text: str) -> int:
    """`-retentionPeriod` (`1` months, `90d`, `2y`, ...) as seconds; ValueError naming it otherwise."""
    match = _RETENTION.match(text.strip().strip('"'))
    if match is None:
        raise ValueError(f"-retentionPeriod={text!r}: not a number of months or a number with h, d, w or y")
    return round(float(match.group(1)) * _RETENTION_UNITS_S[match.group(2)])


def retention_s(url: str, timeout_s: float = 10.0) -> int:
    """How long VictoriaMetrics at `url` keeps points: its `-retentionPeriod` as `/flags` shows it
    (only flags set on its command line are shown; otherwise it is the default, one month)."""
    text = _get(f"{url.rstrip('/')}/flags", timeout_s).decode("utf-8", "replace")
    found = re.search(r"^-retentionPeriod=(.*)$", text, re.MULTILINE)
    try:
        return parse_retention(found.group(1) if found else DEFAULT_RETENTION)
    except ValueError as exc:
        raise VictoriaMetricsError(f"VictoriaMetrics at {url}: {exc}") from exc


def retention_notes(storage: RetentionSettings, kept_s: int) -> tuple[list[str], list[str]]:
    """(differences, notes) of a VictoriaMetrics keeping points `kept_s` against `[storage]`: a
    difference when it drops rollups before `rollup_1h_retention_days`; always the note that raw
    points are kept as long as it keeps anything."""
    days = kept_s / DAY_S
    differences, notes = [], []
    longest = max(r.retention_days(storage) for r in RESOLUTIONS.values())
    if kept_s < longest * DAY_S:
        differences.append(
            f"VictoriaMetrics keeps points {days:g} days (-retentionPeriod), so the hourly rollups go before "
            f"rollup_1h_retention_days = {storage.rollup_1h_retention_days}: start it with -retentionPeriod={longest}d")
    notes.append(
        f"VictoriaMetrics has one retention for everything ({days:g} days): raw points are kept as long as the rollups, "
        f"not raw_retention_days = {storage.raw_retention_days} (a shorter raw retention needs a second VictoriaMetrics; docs/storage.md)")
    return differences, notes


# --- reading -------------------------------------------------------------------------------------
def _label(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def stored_names(measurement: str, resolution: str) -> tuple[str, ...]:
    """The fields of `measurement` VictoriaMetrics holds at `resolution`: the contract's numeric
    fields for raw points (and events, kept raw), the rollup fields for a rollup."""
    spec = MEASUREMENTS_SPEC[measurement]
    if resolution == RAW or spec.events:
        return tuple(f.name for f in spec.fields.values() if UNITS[f.unit].type == "float")
    return tuple(f.name for f in rollup_fields(spec))


class VictoriaMetricsSource:
    """Samples from VictoriaMetrics' `/api/v1/export`, one per series and time, fields by name."""

    def __init__(self, url: str, database: str, retention: RetentionSettings | None, timeout_s: float = READ_TIMEOUT_S):
        self.url = url.rstrip("/")
        self.database = database
        self.retention = retention
        self.timeout_s = timeout_s

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        """`collector.rollups.resolution_for`'s answer (the collector writes the rollups here)."""
        if self.retention is None:
            return RAW
        return resolution_for(start_ns, end_ns, now_ns, self.retention).name

    def selector(self, measurement: str, resolution: str, tags: Mapping[str, str] | None = None) -> str:
        """The series selector of `measurement`'s fields at `resolution` (MetricsQL, also what a
        Grafana panel over a Prometheus data source would use)."""
        names = stored_names(measurement, resolution)
        spec = MEASUREMENTS_SPEC[measurement]
        db = victoriametrics_db(self.database, RAW if spec.events else resolution)
        matchers = [f'__name__=~{_label(re.escape(measurement) + "_(" + "|".join(re.escape(n) for n in names) + ")")}', f"db={_label(db)}"]
        matchers += [f"{k}={_label(v)}" for k, v in sorted((tags or {}).items())]
        return "{" + ", ".join(matchers) + "}"

    def samples(
        self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = RAW
    ) -> list[Sample]:
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution {resolution!r}: expected one of {', '.join(RESOLUTIONS)}")
        if not stored_names(measurement, resolution):
            return []
        query = urllib.parse.urlencode({"match[]": self.selector(measurement, resolution, tags),
                                        "start": f"{start_ns / NS:.3f}", "end": f"{end_ns / NS:.3f}"})
        body = _get(f"{self.url}/api/v1/export?{query}", self.timeout_s)
        prefix = len(measurement) + 1
        rows: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, float | str]] = {}
        try:
            for line in body.splitlines():
                if not line.strip():
                    continue
                series: dict[str, Any] = json.loads(line)
                labels = series["metric"]
                name = str(labels["__name__"])[prefix:]
                sample_tags = tuple(sorted((str(k), str(v)) for k, v in labels.items() if k not in ("__name__", "db")))
                for ms, value in zip(series["timestamps"], series["values"]):
                    time_ns = int(ms) * 1_000_000
                    if start_ns <= time_ns < end_ns and value is not None:
                        # A sample written twice (a replay after a crash) is the same value: the last one stands.
                        rows.setdefault((sample_tags, time_ns), {})[name] = float(value)
        except (ValueError, KeyError, TypeError) as exc:
            raise VictoriaMetricsError(f"VictoriaMetrics at {self.url}: an export line that is not what it writes: {exc!r}") from exc
        out = [Sample(time_ns, dict(sample_tags), fields) for (sample_tags, time_ns), fields in rows.items()]
        out.sort(key=lambda s: s.time_ns)
        return out
