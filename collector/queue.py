"""Durable ingest queue: SQLite in WAL mode.

A batch is acknowledged to its sender only after its transaction is committed here
(synchronous=FULL), so a collector killed right after answering 2xx has lost nothing.
Batches are idempotent on (source, seq): a resend is acknowledged and not stored twice.
The queue is bounded on disk: past the bound the oldest batches are dropped, and every
dropped point is counted (never silent).

Each batch is one row holding its points already encoded, one line of line protocol each (a JSON
array): the writer sends them as they are and, when the storage refuses one, still knows every
line to find it. A point the encoder cannot write is set aside (`rejected`) when its batch is
stored. Whoever needs the points again reads them back from the lines: the local store
(`QueuedBatch.points`), the collector's rollups and late hours only what they need of each line
(collector/lineprotocol.py `split_line`, `number_columns`). A queue file of the format before this one (points
as JSON) is converted when it is opened, in one transaction: nothing queued is lost.
Once drained the file gives its space back (incremental vacuum, a bounded write-ahead log).

With `storage.kind = "local"` the queue is the store itself (nothing empties it): the status
page and the reports read it (collector/timeseries.py `LocalSource`). It then keeps points for
`raw_retention_days` as well as within its size (`expire`, run hourly by the collector), so the
history it holds is bounded in time and in bytes, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import orjson

from agent.points import Point
from collector.lineprotocol import LineProtocolError, encode_point, parse_line

log = logging.getLogger("nettvakt.queue")

# PRAGMA user_version of this format; 0 is the format before it (a `points` JSON column).
FORMAT = 2

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    n_points INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    oldest_ns INTEGER NOT NULL,
    lines TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    PRIMARY KEY (source, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejected (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rejected_ns INTEGER NOT NULL,
    source TEXT NOT NULL,
    line TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counter (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS seen_floor (
    source TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
) WITHOUT ROWID;
"""

# The newest sequence numbers remembered per source. An agent has one batch in flight at a time
# and numbers them upwards (agent/spool.py), so a resend is always of its newest batches; a
# thousand covers every resend with room to spare. Older ones are forgotten, and a number at or
# below what was forgotten (the floor) is taken as a resend: acknowledged, not stored again.
SEEN_PER_SOURCE = 1000
# What one remembered (source, seq) costs on disk, for the queue's bound (SQLite row and index).
SEEN_ROW_BYTES = 64


# Free pages past this are given back to the file system once the queue is (nearly) drained; the
# write-ahead log is cut back to this size after a checkpoint.
GIVE_BACK_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class QueuedBatch:
    id: int
    source: str
    seq: int
    lines: list[str]  # one line of line protocol per point, as the writer sends them
    oldest_ns: int  # the oldest point's time

    @cached_property
    def points(self) -> list[Point]:
        """The points again, read back from their lines (only where they are needed)."""
        return [parse_line(line) for line in self.lines]

    @classmethod
    def of_points(cls, id: int, source: str, seq: int, points: list[Point]) -> "QueuedBatch":
        """A batch as the queue gives it, of points that encode (tests and benchmarks of the writer's hooks)."""
        batch = cls(id, source, seq, [encode_point(p) for p in points], min((p.time_ns for p in points), default=0))
        batch.__dict__["points"] = points
        return batch


Unwritable = tuple[str, str]
"""(the point as JSON, why line protocol cannot say it) of a point set aside when it was stored."""


def encode_lines(points: list[Point], made: list[str | None] | None = None) -> tuple[list[str], list[Point], list[Unwritable]]:
    """The lines of the points the encoder can write, those points, and the rest with why. `made`:
    lines already made where ingest checked a point (collector/ingest.py), None for the rest."""
    lines: list[str] = []
    kept: list[Point] = []
    unwritable: list[Unwritable] = []
    for point, line in zip(points, made or [None] * len(points)):
        try:
            lines.append(line or encode_point(point))
            kept.append(point)
        except LineProtocolError as exc:
            unwritable.append((json.dumps(point.to_json(), default=repr)[:2000], f"line protocol: {exc}"))
    return lines, kept, unwritable


def made_lines(points: list[Point], made: list[str | None] | None = None) -> list[str | None]:
    """Each point's line, `made` where given and encoded here where not; None where line protocol
    cannot say the point (`encode_lines` sets it aside, with why, when the batch is stored). What
    an ingest worker hands the collector, so that storing the batch encodes nothing."""
    lines: list[str | None] = []
    for point, line in zip(points, made or [None] * len(points)):
        if line is None:
            try:
                line = encode_point(point)
            except LineProtocolError:
                pass
        lines.append(line)
    return lines


class DurableQueue:
    """Thread-safe; callers on the event loop run its methods in a thread (they fsync)."""

    def __init__(self, path: Path, max_bytes: int = 2 * 1024**3, seen_per_source: int = SEEN_PER_SOURCE):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        new_file = self._db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        if new_file:  # only before the first table: an existing file keeps its mode (VACUUM would rewrite it whole)
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(f"PRAGMA journal_size_limit={GIVE_BACK_BYTES}")
        self._page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        if not new_file and self._db.execute("PRAGMA user_version").fetchone()[0] < FORMAT:
            self._migrate()
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version={FORMAT}")
        self.seen_per_source = seen_per_source
        self._pending_bytes = self._db.execute("SELECT COALESCE(SUM(n_bytes), 0) FROM batch").fetchone()[0]
        self._seen_rows = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        self._floors: dict[str, int] = dict(self._db.execute("SELECT source, seq FROM seen_floor").fetchall())
        # When data was last dropped or refused, in this process: /health reports recent trouble.
        self.last_drop_ns = 0
        self.last_reject_ns = 0

    def _migrate(self) -> None:
        """A queue of the format before (each batch's points as JSON) becomes this one in one transaction:
        every batch keeps its id, source, seq and time, its points become lines, and a point line protocol
        cannot say is set aside as the writer did it. Killed halfway, the old file is as it was."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(batch)")}
        if "points" not in columns:
            return  # no batch table yet (a file with other tables only), or already converted
        moved = aside = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("ALTER TABLE batch RENAME TO batch_old")
            for statement in SCHEMA.split(";"):  # not executescript: it would commit the transaction
                if statement.strip():
                    self._db.execute(statement)
            highest = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batch_old'").fetchone()
            rows = self._db.execute("SELECT id, source, seq, received_ns, points FROM batch_old ORDER BY id").fetchall()
            for bid, source, seq, received_ns, payload in rows:
                points = [Point(p["measurement"], p["tags"], p["fields"], p["time"]) for p in json.loads(payload)]
                lines, kept, unwritable = encode_lines(points)
                for text, reason in unwritable:
                    self._set_aside(source, text, reason)
                aside += len(unwritable)
                if lines:
                    self._insert(bid, source, seq, received_ns, lines, min(p.time_ns for p in kept))
                    moved += len(lines)
            self._db.execute("DROP TABLE batch_old")
            self._db.execute("DELETE FROM sqlite_sequence WHERE name = 'batch_old'")
            if highest is not None:  # ids are never given out twice, also across the conversion
                self._db.execute("INSERT OR REPLACE INTO sqlite_sequence (name, seq) VALUES ('batch', ?)", (highest[0],))
            self._db.execute(f"PRAGMA user_version={FORMAT}")
        log.info("queue %s converted to format %d: %d queued point(s) kept, %d set aside (line protocol cannot say them)",
                 self.path, FORMAT, moved, aside)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _insert(self, bid: int | None, source: str, seq: int, received_ns: int, lines: list[str], oldest_ns: int) -> tuple[int, int]:
        """(its id, its size) of the batch inserted."""
        payload = orjson.dumps(lines).decode()
        cursor = self._db.execute(
            "INSERT INTO batch (id, source, seq, received_ns, n_points, n_bytes, oldest_ns, lines) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (bid, source, seq, received_ns, len(lines), len(payload), oldest_ns, payload),
        )
        return cursor.lastrowid or 0, len(payload)

    def put(self, source: str, seq: int, points: list[Point], lines: list[str | None] | None = None) -> bool:
        """Commit a batch; False when (source, seq) was already accepted (a resend). `lines`: as encode_lines takes them."""
        return self.put_many([(source, seq, points, lines)])[0]

    def put_many(self, batches: list[tuple[str, int, list[Point], list[str | None] | None]]) -> list[bool]:
        """Commit batches in one transaction (one fsync for all: `GroupCommit`); for each, False
        when it was already accepted (a resend, also of one before it in the same call)."""
        encoded = []
        for source, seq, points, made in batches:
            lines, kept, unwritable = encode_lines(points, made)
            encoded.append((source, seq, lines, unwritable, min((p.time_ns for p in kept), default=0)))
        now = time.time_ns()
        with self._lock:
            before = (self._pending_bytes, self._seen_rows, dict(self._floors))
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    stored = [self._put_one(now, *batch) for batch in encoded]
                    self._enforce_bound()
            except BaseException:
                self._pending_bytes, self._seen_rows, self._floors = before  # rolled back: as before the call
                raise
        return stored

    def _put_one(self, now: int, source: str, seq: int, lines: list[str], unwritable: list[Unwritable], oldest_ns: int) -> bool:
        if seq <= self._floors.get(source, -1):
            return False  # older than every number still remembered: a resend of a forgotten batch
        try:
            self._db.execute("INSERT INTO seen (source, seq, received_ns) VALUES (?, ?, ?)", (source, seq, now))
        except sqlite3.IntegrityError:
            return False
        self._seen_rows += 1
        if lines:
            self._pending_bytes += self._insert(None, source, seq, now, lines, oldest_ns)[1]
        for text, reason in unwritable:
            log.error("a point from %s cannot be written as line protocol, moved aside: %s -- %s", source, reason, text)
            self._set_aside(source, text, reason)
        if seq % 100 == 0 or self._seen_rows * SEEN_ROW_BYTES > self.max_bytes // 10:
            self._forget_old_seqs(source)
        return True

    def _forget_old_seqs(self, source: str) -> None:
        """Keep the newest seen_per_source numbers of `source`; raise its floor to the newest one forgotten."""
        row = self._db.execute(
            "SELECT seq FROM seen WHERE source = ? ORDER BY seq DESC LIMIT 1 OFFSET ?", (source, self.seen_per_source)
        ).fetchone()
        if row is None:
            return
        floor = row[0]
        self._seen_rows -= self._db.execute("DELETE FROM seen WHERE source = ? AND seq <= ?", (source, floor)).rowcount
        self._db.execute(
            "INSERT INTO seen_floor (source, seq) VALUES (?, ?) ON CONFLICT(source) DO UPDATE SET seq = MAX(seq, excluded.seq)",
            (source, floor),
        )
        self._floors[source] = max(floor, self._floors.get(source, -1))

    def put_local(self, source: str, points: list[Point]) -> None:
        """Points the collector made itself (SNMP, availability): no de-duplication needed."""
        if not points:
            return
        with self._lock:
            seq = self._bump("local_seq", 1)
        self.put(source, seq, points)

    def _enforce_bound(self) -> None:
        # Called inside the write transaction. Drop oldest first: recent data matters most on call.
        # The de-duplication memory counts too (bounded per source); it may take at most half.
        budget = max(self.max_bytes - self._seen_rows * SEEN_ROW_BYTES, self.max_bytes // 2)
        while self._pending_bytes > budget:
            row = self._db.execute("SELECT id, n_points, n_bytes FROM batch ORDER BY id LIMIT 1").fetchone()
            if row is None:
                break
            self._db.execute("DELETE FROM batch WHERE id = ?", (row[0],))
            self._pending_bytes -= row[2]
            self._add("dropped_points", row[1])
            self._add("dropped_batches", 1)
            self.last_drop_ns = time.time_ns()

    def _add(self, name: str, delta: int) -> int:
        self._db.execute(
            "INSERT INTO counter (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = value + ?",
            (name, delta, delta),
        )
        return self._db.execute("SELECT value FROM counter WHERE name = ?", (name,)).fetchone()[0]

    def _bump(self, name: str, delta: int) -> int:
        with self._db:
            return self._add(name, delta)

    def peek(self, max_points: int, after_id: int = 0) -> list[QueuedBatch]:
        """Oldest batches, in order, up to about max_points (at least one batch); `after_id`: only
        those after it (the writer's batches in flight are not taken again)."""
        out: list[QueuedBatch] = []
        total = 0
        with self._lock:
            cursor = self._db.execute("SELECT id, source, seq, n_points, oldest_ns, lines FROM batch WHERE id > ? ORDER BY id", (after_id,))
            for bid, source, seq, n_points, oldest_ns, payload in cursor:
                if out and total + n_points > max_points:
                    break
                out.append(QueuedBatch(bid, source, seq, orjson.loads(payload), oldest_ns))
                total += n_points
            cursor.close()
        return out

    def points_after(self, after_id: int) -> int:
        """How many points wait in the batches after `after_id` (their lines not read)."""
        with self._lock:
            return int(self._db.execute("SELECT COALESCE(SUM(n_points), 0) FROM batch WHERE id > ?", (after_id,)).fetchone()[0])

    def ack(self, batch_ids: list[int], written_points: int) -> None:
        if not batch_ids:
            return
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                marks = ",".join("?" * len(batch_ids))
                freed = self._db.execute(f"SELECT COALESCE(SUM(n_bytes), 0) FROM batch WHERE id IN ({marks})", batch_ids).fetchone()[0]
                self._db.execute(f"DELETE FROM batch WHERE id IN ({marks})", batch_ids)
                self._pending_bytes -= freed
                self._add("written_points", written_points)
            self._give_back()

    def _give_back(self) -> None:
        """Once (nearly) drained, free pages past GIVE_BACK_BYTES go back to the file system and the
        write-ahead log is emptied; while a backlog is waiting, new batches reuse the free pages.
        A file made before incremental vacuum (format 0) keeps its size."""
        if self._pending_bytes > GIVE_BACK_BYTES:
            return
        page_size = self._page_size
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0] * page_size
        if free > GIVE_BACK_BYTES:
            # executescript: execute() would step the pragma once, freeing one page.
            self._db.executescript(f"PRAGMA incremental_vacuum({(free - GIVE_BACK_BYTES // 2) // page_size}); PRAGMA wal_checkpoint(TRUNCATE);")

    def highest_batch_id(self) -> int:
        """The largest batch id this queue ever gave out (AUTOINCREMENT: ids are never reused, also after
        a delete); 0 for a new queue. The rollup engine tells a new queue file from the one it folded from."""
        with self._lock:
            row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'batch'").fetchone()
        return int(row[0]) if row else 0

    def expire(self, received_before_ns: int) -> int:
        """Delete the batches received before `received_before_ns` (the local store's time bound);
        returns how many points went. Counted as `expired_points`, apart from points dropped by
        the size bound: they were kept as long as asked, not lost."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            # ids grow with arrival: the batches to go are those up to the newest one received before the bound.
            last = self._db.execute("SELECT MAX(id) FROM batch WHERE received_ns < ?", (received_before_ns,)).fetchone()[0]
            if last is None:
                return 0
            points, size = self._db.execute("SELECT COALESCE(SUM(n_points), 0), COALESCE(SUM(n_bytes), 0) FROM batch WHERE id <= ?", (last,)).fetchone()
            self._db.execute("DELETE FROM batch WHERE id <= ?", (last,))
            self._pending_bytes -= size
            self._add("expired_points", points)
        return int(points)

    def reject(self, source: str, line: str, reason: str) -> None:
        """Move a point the database refused aside, with why, so it never blocks the others."""
        with self._lock, self._db:
            self._set_aside(source, line, reason)

    def _set_aside(self, source: str, line: str, reason: str) -> None:
        self._db.execute("INSERT INTO rejected (rejected_ns, source, line, reason) VALUES (?, ?, ?, ?)", (time.time_ns(), source, line, reason))
        self._add("rejected_points", 1)
        self.last_reject_ns = time.time_ns()

    def stats(self) -> dict[str, float]:
        with self._lock:
            depth_batches, depth_points = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(n_points), 0) FROM batch"
            ).fetchone()
            counters = dict(self._db.execute("SELECT name, value FROM counter").fetchall())
            # ids grow with arrival, so the first batch is the oldest one waiting.
            oldest = self._db.execute("SELECT received_ns FROM batch ORDER BY id LIMIT 1").fetchone()
        age_s = round(max(0, time.time_ns() - oldest[0]) / 1e9, 3) if oldest else 0.0
        return {
            "queue_batches": depth_batches,
            "queue_points": depth_points,
            "queue_bytes": self._pending_bytes,
            "queue_age_s": age_s,
            "written_points": counters.get("written_points", 0),
            "dropped_points": counters.get("dropped_points", 0),
            "rejected_points": counters.get("rejected_points", 0),
            "expired_points": counters.get("expired_points", 0),
            "seen_batches": self._seen_rows,
        }

    def rejected(self, limit: int = 100) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT rejected_ns, source, line, reason FROM rejected ORDER BY id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [dict(zip(("rejected_ns", "source", "line", "reason"), row)) for row in rows]


class GroupCommit:
    """Batches that arrive while a commit is on disk are committed together in the next one: one
    transaction and one fsync for all of them instead of one each. Each caller is answered only
    once its own batch is committed, as with `DurableQueue.put`."""

    def __init__(self, queue: DurableQueue):
        self.queue = queue
        self._waiting: list[tuple[tuple[str, int, list[Point], list[str | None] | None], asyncio.Future[bool]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def put(self, source: str, seq: int, points: list[Point], lines: list[str | None] | None = None) -> bool:
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append(((source, seq, points, lines), future))
        if self._committing is None:
            self._committing = asyncio.get_running_loop().create_task(self._commit_waiting(), name="queue-commit")
        return await future

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    stored = await asyncio.to_thread(self.queue.put_many, [batch for batch, _ in group])
                except asyncio.CancelledError:  # shutting down: nobody is answered (the agents resend; a resend is known)
                    for _, future in group + self._waiting:
                        future.cancel()
                    raise
                except Exception as exc:  # every request of the failed transaction gets its error, answered as a lone put's would be (the agents resend)
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), was_stored in zip(group, stored):
                    if not future.done():  # else its request was given up: committed all the same, a resend is known
                        future.set_result(was_stored)
        finally:
            self._committing = None
