"""VictoriaMetrics as nettvakt's storage (`[storage] kind = "victoriametrics"`): its one retention.

The writer writes line protocol to VictoriaMetrics' InfluxDB endpoint (`/write?db=<database>`):
a point `m,tag=v f=1.5` becomes the sample `m_f{tag="v", db="<database>"}`; string fields are
not kept usefully (VictoriaMetrics stores every field as a number). The collector writes the
rollups with `db` set to `<database>_5m` and `<database>_1h` (collector.rollups.victoriametrics_db),
so a rollup series is the raw series with another `db`.

Single-node VictoriaMetrics keeps everything for one `-retentionPeriod`: raw points as long as
the rollups. `retention_s` reads it from `/flags`; `retention_notes` says what that means against
`[storage]` (the collector logs it at start, `nettvakt check` shows it).

The reports and diagnose read it through collector.timeseries.VictoriaMetricsSource.
"""

from __future__ import annotations

import re

from collector.config import Inventory
from collector.influxql import InfluxQueryError, http_get
from collector.rollups import DAY_S, RESOLUTIONS, RetentionSettings

# VictoriaMetrics' own default and units for -retentionPeriod: a bare number is months of 31 days.
DEFAULT_RETENTION = "1"
_RETENTION_UNITS_S = {"h": 3600, "d": DAY_S, "w": 7 * DAY_S, "y": 365 * DAY_S, "": 31 * DAY_S}
_RETENTION = re.compile(r"^(\d+(?:\.\d+)?)([hdwy]?)$")


class VictoriaMetricsError(RuntimeError):
    """VictoriaMetrics could not be asked, or answered what it should not; the message names the URL."""


def parse_retention(text: str) -> int:
    """`-retentionPeriod` (`1` months, `90d`, `2y`, ...) as seconds; ValueError naming it otherwise."""
    match = _RETENTION.match(text.strip().strip('"'))
    if match is None:
        raise ValueError(f"-retentionPeriod={text!r}: not a number of months or a number with h, d, w or y")
    return round(float(match.group(1)) * _RETENTION_UNITS_S[match.group(2)])


def retention_s(url: str, timeout_s: float = 10.0, username: str | None = None, password: str | None = None) -> int:
    """How long VictoriaMetrics at `url` keeps points: its `-retentionPeriod` as `/flags` shows it
    (only flags set on its command line are shown; otherwise it is the default, one month)."""
    try:
        text = http_get(url, "/flags", None, username, password, timeout_s).decode("utf-8", "replace")
    except InfluxQueryError as exc:
        raise VictoriaMetricsError(f"VictoriaMetrics at {url}: {exc}") from exc
    found = re.search(r"^-retentionPeriod=(.*)$", text, re.MULTILINE)
    try:
        return parse_retention(found.group(1) if found else DEFAULT_RETENTION)
    except ValueError as exc:
        raise VictoriaMetricsError(f"VictoriaMetrics at {url}: {exc}") from exc


def inventory_retention_s(inventory: Inventory) -> int:
    """`retention_s` of the inventory's VictoriaMetrics, with its credentials."""
    storage = inventory.storage
    password = inventory.secret(storage.password) if storage.password else None
    return retention_s(storage.url or "", storage.timeout_s, storage.username, password)


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
