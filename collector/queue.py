"""Durable ingest queue: SQLite in WAL mode.

A batch is acknowledged to its sender only after its transaction is committed here
(synchronous=FULL), so a collector killed right after answering 2xx has lost nothing.
Batches are idempotent on (source, seq): a resend is acknowledged and not stored twice.
The queue is bounded on disk: past the bound the oldest batches are dropped, and every
dropped point is counted (never silent).

With `storage.kind = "local"` the queue is the store itself (nothing empties it): the status
page and the reports read it (collector/timeseries.py `LocalSource`). It then keeps points for
`raw_retention_days` as well as within its size (`expire`, run hourly by the collector), so the
history it holds is bounded in time and in bytes, whichever comes first.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.points import Point

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_ns INTEGER NOT NULL,
    n_points INTEGER NOT NULL,
    n_bytes INTEGER NOT NULL,
    points TEXT NOT NULL
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


@dataclass(frozen=True)
class QueuedBatch:
    id: int
    source: str
    seq: int
    points: list[Point]


class DurableQueue:
    """Thread-safe; callers on the event loop run its methods in a thread (they fsync)."""

    def __init__(self, path: Path, max_bytes: int = 2 * 1024**3, seen_per_source: int = SEEN_PER_SOURCE):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self.seen_per_source = seen_per_source
        self._pending_bytes = self._db.execute("SELECT COALESCE(SUM(n_bytes), 0) FROM batch").fetchone()[0]
        self._seen_rows = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]
        self._floors: dict[str, int] = dict(self._db.execute("SELECT source, seq FROM seen_floor").fetchall())
        # When data was last dropped or refused, in this process: /health reports recent trouble.
        self.last_drop_ns = 0
        self.last_reject_ns = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, source: str, seq: int, points: list[Point]) -> bool:
        """Commit a batch; False when (source, seq) was already accepted (a resend)."""
        payload = json.dumps([p.to_json() for p in points], ensure_ascii=False, separators=(",", ":"))
        if not payload.isascii():
            try:
                payload.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate (ingest refuses them; a device string may not): keep it escaped
                payload = json.dumps([p.to_json() for p in points], separators=(",", ":"))
        now = time.time_ns()
        with self._lock, self._db:
            if seq <= self._floors.get(source, -1):
                return False  # older than every number still remembered: a resend of a forgotten batch
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO seen (source, seq, received_ns) VALUES (?, ?, ?)", (source, seq, now))
            except sqlite3.IntegrityError:
                return False
            self._seen_rows += 1
            self._db.execute(
                "INSERT INTO batch (source, seq, received_ns, n_points, n_bytes, points) VALUES (?, ?, ?, ?, ?, ?)",
                (source, seq, now, len(points), len(payload), payload),
            )
            self._pending_bytes += len(payload)
            if seq % 100 == 0 or self._seen_rows * SEEN_ROW_BYTES > self.max_bytes // 10:
                self._forget_old_seqs(source)
            self._enforce_bound()
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

    def peek(self, max_points: int) -> list[QueuedBatch]:
        """Oldest batches, in order, up to about max_points (at least one batch)."""
        out: list[QueuedBatch] = []
        total = 0
        with self._lock:
            cursor = self._db.execute("SELECT id, source, seq, n_points, points FROM batch ORDER BY id")
            for bid, source, seq, n_points, payload in cursor:
                if out and total + n_points > max_points:
                    break
                # Validated before it was queued: rebuild without validating again (a third of the writer's time).
                out.append(
                    QueuedBatch(bid, source, seq, [Point(p["measurement"], p["tags"], p["fields"], p["time"]) for p in json.loads(payload)])
                )
                total += n_points
            cursor.close()
        return out

    def ack(self, batch_ids: list[int], written_points: int) -> None:
        if not batch_ids:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            marks = ",".join("?" * len(batch_ids))
            freed = self._db.execute(f"SELECT COALESCE(SUM(n_bytes), 0) FROM batch WHERE id IN ({marks})", batch_ids).fetchone()[0]
            self._db.execute(f"DELETE FROM batch WHERE id IN ({marks})", batch_ids)
            self._pending_bytes -= freed
            self._add("written_points", written_points)

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
            self._db.execute(
                "INSERT INTO rejected (rejected_ns, source, line, reason) VALUES (?, ?, ?, ?)",
                (time.time_ns(), source, line, reason),
            )
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
