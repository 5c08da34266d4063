"""The dashboards' rp_config rows where the collector makes the rollups on InfluxDB 1.x.

With `[storage] rollups = "collector"` on `influxdb_v1` (InfluxDB 2/3 through their v1 API, or a
collector user that may not create continuous queries) the collector creates no retention
policies: the storage's admin does (docs/storage.md). The dashboards still choose their
resolution by the rp_config rows in `nettvakt_meta`, and writing a point needs only write rights,
so the collector writes them itself: at its start and then hourly (someone may delete them), the
same rows and the same statements `nettvakt check` names (collector/retention.py). A row left
from another retention is deleted where the storage lets this user; where it does not, the
statement to run is shown in /health.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from collector.config import Inventory
from collector.influxql import InfluxQueryError, InfluxUnreachableError
from collector.retention import InfluxAdmin, read_existing, raw_policy_of, retention_seconds, row_differences, storage_plan
from collector.rollups import META_RETENTION_POLICY

log = logging.getLogger("nettvakt.rollups")


def rows_wanted_here(inventory: Inventory) -> bool:
    """The collector makes the rollups on InfluxDB 1.x's API: nobody else writes the rows."""
    storage = inventory.storage
    return storage.rollups_by == "collector" and storage.kind == "influxdb_v1"


@dataclass
class RowStats:
    runs: int = 0
    written: int = 0  # statements run (deletes and writes), since start
    failures: int = 0
    unreachable: bool = False
    last_error: str | None = None
    left: list[str] = field(default_factory=list)  # statements the storage refused, to be run by its admin


class ResolutionRowKeeper:
    RECHECK_S = 3600.0
    RETRY_S = 60.0

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self.stats = RowStats()

    def apply(self) -> None:
        """Write the rows that are missing or differ (blocking). Raises InfluxQueryError when
        InfluxDB cannot be read; a refused statement is kept in `stats.left`, not raised."""
        storage = self.inventory.storage
        admin = InfluxAdmin.of(self.inventory, timeout_s=storage.timeout_s)
        found = read_existing(admin, queries=False)
        meta = found.policies.get(META_RETENTION_POLICY)
        if meta is None or meta.duration_s != 0:  # the rows' times are their retentions: decades in the past
            what = "does not exist" if meta is None else "does not keep points forever"
            raise InfluxQueryError(f"retention policy {META_RETENTION_POLICY!r} {what} in database {admin.database!r}: with rollups = "
                                   f"'collector' the storage's admin makes it (DURATION INF; docs/storage.md)")
        plan = storage_plan(admin.database, raw_policy_of(storage, found), retention_seconds(storage))
        left = []
        for diff in row_differences(plan, found):
            try:
                for statement in diff.fix:
                    admin.execute(statement)
                    self.stats.written += 1
                log.info("made as asked: %s", diff.text())
            except InfluxQueryError as exc:
                if getattr(exc, "unreachable", False):
                    raise
                left += diff.fix
                log.error("%s; not made: %s (the storage's admin can run: %s)", diff.text(), exc, "; ".join(diff.fix))
        self.stats.left = left

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.apply)
            except Exception as exc:  # InfluxDB's refusals and answers it could not read alike: shown, tried again
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                self.stats.left = []
                self.stats.unreachable = isinstance(exc, (InfluxUnreachableError, OSError)) or getattr(exc, "unreachable", False)
                log.error("the dashboards' resolution rows not checked (tried again in %.0f s): %s", self.RETRY_S, exc,
                          exc_info=not isinstance(exc, (InfluxQueryError, OSError)))
                await asyncio.sleep(self.RETRY_S)
                continue
            self.stats.runs += 1
            self.stats.last_error = None
            await asyncio.sleep(self.RECHECK_S)

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"runs": s.runs, "written": s.written, "failures": s.failures, "last_error": s.last_error, "left": list(s.left)}

    def problems(self) -> list[str]:
        s = self.stats
        if s.last_error is not None and not s.unreachable:
            return [f"the dashboards' resolution rows (rp_config) are not checked ({s.failures} failed attempts): {s.last_error}"]
        if s.left:
            return [f"the dashboards' resolution rows (rp_config) are not as the inventory asks; the storage refused, its admin can run: {'; '.join(s.left)}"]
        return []
