"""Late points folded into the rollups (InfluxDB 1.x, retention set up by the collector).

The continuous queries compute only recent buckets again (collector/retention.py `CADENCE`: the
5-minute ones reach 2 h back, the hourly ones 4 h), so a point that reaches InfluxDB later than that
(an agent's backlog after days offline) lands in the raw policy and never in its rollups: the year
view would show a hole exactly where the outage was.

The writer hands every batch it wrote to `LateRollups.note_written` before the batch leaves the
durable queue. The hours holding points older than `late_after_s` are kept in SQLite
(`data_dir/rollup-late.sqlite3`) until their rollups have been computed again by the backfill's own
statements (`retention.backfill`: whole buckets from the raw points, so running them again is
harmless). An hour is taken once no late point has come for it for `SETTLE_S` (a backlog arrives
batch by batch over minutes: an hour is computed once, when complete, not after every batch), and
consecutive hours go in one backfill. An hour is forgotten only once done and not noted again
meanwhile, so a collector stopped in between does it at its next start, and a crash between the
write and the note re-writes the batch (still queued) and notes it then.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.config import Inventory
from collector.influxql import InfluxQueryError, InfluxUnreachableError
from collector.lineprotocol import line_starts, line_time_ns
from collector.queue import QueuedBatch
from collector.retention import CADENCE, Cadence, InfluxAdmin, StoragePlan, backfill
from collector.rollups import NS, ROLLUPS, rolled_up_measurements
from collector.writer import RetryableWriteError

log = logging.getLogger("nettvakt.retention.late")

LATE_FILE = "rollup-late.sqlite3"
HOUR_NS = 3600 * NS
# When InfluxDB runs a continuous query is its own business (about on the bucket boundary) and
# the writer notes a batch a moment after writing it: a point this much younger than the queries'
# reach is taken as late too (computing an hour again costs little; missing one leaves a hole).
MARGIN_S = 300


def late_after_s(cadence: Mapping[str, Cadence] = CADENCE) -> int:
    """How old a point may be when written and still be folded into every rollup by the queries.

    A resolution's first run after its source is up to date (its own `every` after that) computes
    again the buckets that start within its `for`; a point's bucket starts up to a bucket before the
    point. The hourly buckets are made from the 5-minute ones, so they are up to date a 5-minute
    run later. With RESAMPLE EVERY 5m FOR 2h and EVERY 1h FOR 4h: 1 h 50 min, less MARGIN_S."""
    reach, source_delay_s = [], 0
    for resolution in ROLLUPS:  # in the order they are made from each other
        every = cadence[resolution.name]
        reach.append(every.for_s - every.every_s - source_delay_s - (resolution.bucket_s or 0))
        source_delay_s += every.every_s
    return min(reach) - MARGIN_S


SCHEMA = """
CREATE TABLE IF NOT EXISTS late_hour (
    database TEXT NOT NULL,
    hour_ns INTEGER NOT NULL,
    noted_ns INTEGER NOT NULL,
    PRIMARY KEY (database, hour_ns)
) WITHOUT ROWID;
"""


class LateHours:
    """The hours whose rollups are to be computed again, per database, each with when a late point
    was last noted for it. A connection per call (a note is rare: only batches holding late
    points), so the writer's last drain at shutdown can still note after the task has stopped."""

    def __init__(self, path: Path):
        self.path = path
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        db.execute("PRAGMA synchronous=FULL")  # noted before the batch leaves the queue: on disk by then
        return db

    def note(self, database: str, hours: Iterable[int], noted_ns: int) -> None:
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO late_hour (database, hour_ns, noted_ns) VALUES (?, ?, ?) "
                "ON CONFLICT(database, hour_ns) DO UPDATE SET noted_ns = MAX(noted_ns, excluded.noted_ns)",
                [(database, hour, noted_ns) for hour in hours],
            )

    def due(self, database: str, noted_before_ns: int) -> list[tuple[int, int]]:
        """(hour, noted) of the hours last noted before `noted_before_ns`, oldest hour first."""
        with closing(self._connect()) as db:
            return db.execute(
                "SELECT hour_ns, noted_ns FROM late_hour WHERE database = ? AND noted_ns < ? ORDER BY hour_ns",
                (database, noted_before_ns),
            ).fetchall()

    def done(self, database: str, rows: Iterable[tuple[int, int]]) -> None:
        """Forget these hours, unless a late point was noted for one since it was read (then it stays for another round)."""
        with closing(self._connect()) as db, db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("DELETE FROM late_hour WHERE database = ? AND hour_ns = ? AND noted_ns = ?",
                           [(database, hour, noted) for hour, noted in rows])

    def pending(self, database: str) -> int:
        with closing(self._connect()) as db:
            return db.execute("SELECT COUNT(*) FROM late_hour WHERE database = ?", (database,)).fetchone()[0]


def consecutive(rows: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Rows of (hour, noted) in hour order, cut where an hour is missing: one backfill each."""
    runs: list[list[tuple[int, int]]] = []
    for row in rows:
        if runs and row[0] == runs[-1][-1][0] + HOUR_NS:
            runs[-1].append(row)
        else:
            runs.append([row])
    return runs


@dataclass
class LateStats:
    noted_batches: int = 0  # batches written that held late points
    rolled_hours: int = 0  # hours whose rollups were computed again
    failures: int = 0
    unreachable: bool = False  # the last failure was no answer at all (the writer's problem says so already)
    last_error: str | None = None


class LateRollups:
    """Notes the hours of late points the writer wrote, and computes their rollups again."""

    SETTLE_S = 60.0  # no late point for an hour this long: its backlog is in, compute it
    POLL_S = 15.0
    RETRY_MAX_S = 600.0

    def __init__(self, inventory: Inventory, *, cadence: Mapping[str, Cadence] = CADENCE):
        assert inventory.storage.database is not None
        self.inventory = inventory
        self.database = inventory.storage.database
        self.late_after_ns = late_after_s(cadence) * NS
        self.hours = LateHours(inventory.data_dir() / LATE_FILE)
        self.measurements = frozenset(spec.name for spec in rolled_up_measurements())
        self.line_starts = line_starts(self.measurements)
        # The retention set-up's plan, once it has run (the rollup policies exist): nothing is computed before.
        self.plan: StoragePlan | None = None
        self.stats = LateStats()

    def late_hours(self, batches: Iterable[QueuedBatch], now_ns: int) -> set[int]:
        """The hours holding rolled-up points older than the queries reach."""
        cutoff = now_ns - self.late_after_ns
        # A batch with nothing that old is not looked at; of the others only each line's time and measurement are read.
        hours = set()
        for batch in batches:
            if batch.oldest_ns < cutoff:
                for line in batch.lines:
                    time_ns = line_time_ns(line)
                    if time_ns < cutoff and line.startswith(self.line_starts):
                        hours.add(time_ns - time_ns % HOUR_NS)
        return hours

    async def note_written(self, batches: list[QueuedBatch]) -> None:
        """The writer wrote these batches to the raw policy; on disk before they leave the queue."""
        now_ns = time.time_ns()
        hours = self.late_hours(batches, now_ns)
        if not hours:
            return
        try:
            await asyncio.to_thread(self.hours.note, self.database, sorted(hours), now_ns)
        except (sqlite3.Error, OSError) as exc:
            # Not noted, not acknowledged: the batch stays queued and is written (harmlessly) again.
            raise RetryableWriteError(f"late points' hours not noted in {self.hours.path}: {exc}") from exc
        self.stats.noted_batches += len(batches)

    def roll_up_due(self) -> int:
        """Compute the rollups of every hour settled since it was noted; returns the hours done (blocking)."""
        plan = self.plan
        assert plan is not None
        rows = self.hours.due(self.database, time.time_ns() - int(self.SETTLE_S * NS))
        if not rows:
            return 0
        admin = InfluxAdmin.of(self.inventory)
        for run in consecutive(rows):
            start_ns, end_ns = run[0][0], run[-1][0] + HOUR_NS
            log.info("late points from %s: rollups of %d hour(s) from %s computed again", self.database, len(run), _iso(start_ns))
            backfill(admin, plan, start_ns, end_ns)
            self.hours.done(self.database, run)
            self.stats.rolled_hours += len(run)
        return len(rows)

    async def run(self) -> None:
        """Every POLL_S once the set-up has run; on failure (InfluxDB down, a refusal) the hours stay and it waits longer."""
        wait_s = self.POLL_S
        while True:
            await asyncio.sleep(wait_s)
            if self.plan is None:
                continue
            try:
                await asyncio.to_thread(self.roll_up_due)
            except (InfluxQueryError, OSError, sqlite3.Error) as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                self.stats.unreachable = isinstance(exc, (InfluxUnreachableError, OSError)) or getattr(exc, "unreachable", False)
                wait_s = min(wait_s * 2, self.RETRY_MAX_S)
                log.error("rollups of late points not computed (%d hour(s) waiting; retrying in %.0f s): %s",
                          self.hours.pending(self.database), wait_s, exc)
                continue
            self.stats.last_error = None
            wait_s = self.POLL_S

    def health(self) -> dict[str, Any]:
        s = self.stats
        return {"pending_hours": self.hours.pending(self.database), "noted_batches": s.noted_batches, "rolled_hours": s.rolled_hours,
                "failures": s.failures, "last_error": s.last_error}

    def problems(self) -> list[str]:
        """A refusal is a problem of its own; an InfluxDB that does not answer is the writer's problem already."""
        if self.stats.last_error is None or self.stats.unreachable:
            return []
        return [f"rollups of late points are not computed ({self.hours.pending(self.database)} hour(s) waiting, "
                f"{self.stats.failures} failed attempts): {self.stats.last_error}"]


def _iso(time_ns: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(time_ns / NS))
