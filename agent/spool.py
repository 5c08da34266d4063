"""Store and forward: every measurement is committed to a local SQLite spool before it is sent.

When the link or the collector is down the spool grows; when it comes back the backlog is
sent oldest first. A batch keeps its sequence number until the collector acknowledges it,
so a resend after a lost answer is recognised by the collector and stored once.
The spool is bounded by its size on disk (and, as a backstop, by a point count): past the
bound the oldest points not yet promised to the collector are dropped and counted, and the
count is reported to the collector in the agent's `host` points (`spool_dropped_points`).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from pathlib import Path

from agent.points import Point
from agent.report import Batch, EncodedBatch, encode_batch

log = logging.getLogger("nettvakt.agent.spool")

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
# Once over the bound, drop down to this share of it, so a full spool does not run a delete
# for every new point.
_LOW_WATER = 0.98

SCHEMA = """
CREATE TABLE IF NOT EXISTS point (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, max_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


def point_json(point: Point) -> str:
    """A point as the spool keeps it and the sender posts it: compact JSON, UTF-8 as is."""
    return json.dumps(point.to_json(), ensure_ascii=False, separators=(",", ":"))


class Spool:
    def __init__(self, path: Path, agent_id: str, max_points: int = 2_000_000, max_bytes: int = DEFAULT_MAX_BYTES):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.agent_id = agent_id
        self.max_points = max_points
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        # The write-ahead log sits beside the bound: truncate it after checkpoints so it stays a few MB.
        self._db.execute("PRAGMA journal_size_limit=4194304")
        # A page cache of 512 KiB instead of SQLite's 2 MB: the spool is written once and read
        # once in id order, so a bigger cache only held about 1.5 MB more during a backlog, no faster.
        self._db.execute("PRAGMA cache_size=-512")
        self._dropping = False  # log once per episode of drops, not for every point
        self._db.executescript(SCHEMA)
        # A new spool (fresh install, deleted file) starts its sequence at the current time in µs,
        # so its numbers never repeat ones the collector has already seen from this agent id.
        self._db.execute(
            "INSERT OR IGNORE INTO meta (name, value) VALUES ('next_seq', ?)", (time.time_ns() // 1000,)
        )
        self._db.execute("INSERT OR IGNORE INTO meta (name, value) VALUES ('dropped_points', 0)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, points: list[Point]) -> None:
        if not points:
            return
        rows = [(point_json(p),) for p in points]
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO point (body) VALUES (?)", rows)
            self._enforce_bound()

    def _used_bytes(self) -> int:
        """Bytes of the database file in use (pages not on the free list): what the bound limits.

        Deleted rows free pages that later inserts reuse, so the file stops growing at the bound.
        """
        page_size = self._db.execute("PRAGMA page_size").fetchone()[0]
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        return (pages - free) * page_size

    def _drop_oldest(self, n: int) -> int:
        # Never drop points already promised to the collector under an unacknowledged seq.
        floor = self._db.execute("SELECT COALESCE(MAX(max_id), 0) FROM outbox").fetchone()[0]
        dropped = self._db.execute(
            "DELETE FROM point WHERE id IN (SELECT id FROM point WHERE id > ? ORDER BY id LIMIT ?)", (floor, n)
        ).rowcount
        self._db.execute("UPDATE meta SET value = value + ? WHERE name = 'dropped_points'", (dropped,))
        return dropped

    def _enforce_bound(self) -> None:
        count = self._db.execute("SELECT COUNT(*) FROM point").fetchone()[0]
        if count > self.max_points:
            count -= self._drop_oldest(count - self.max_points)
        used = self._used_bytes()
        if used <= self.max_bytes:
            return
        target = self.max_bytes * _LOW_WATER
        dropped_total = 0
        # Points are about the same size, so the share of bytes to free is the share of points
        # to drop; a few rounds correct for page slack.
        for _ in range(8):
            if used <= target or count <= 0:
                break
            n = max(1, math.ceil(count * (used - target) / used))
            dropped = self._drop_oldest(n)
            if dropped == 0:  # everything left is promised to the collector
                break
            dropped_total += dropped
            count -= dropped
            used = self._used_bytes()
        if dropped_total and not self._dropping:
            self._dropping = True
            log.warning(
                "spool over its bound of %.0f MB: dropping the oldest points (%d so far, counted in "
                "spool_dropped_points) until the collector takes the backlog",
                self.max_bytes / 1024**2, dropped_total,
            )

    def next_batch(self, max_points: int) -> Batch | None:
        """The batch to send now: the unacknowledged one if any (same seq, same points), else a new one."""
        claimed = self._claim(max_points)
        if claimed is None:
            return None
        seq, bodies = claimed
        return Batch(self.agent_id, seq, [Point.from_json(json.loads(b)) for b in bodies])

    def next_encoded(self, max_points: int) -> EncodedBatch | None:
        """The same batch as `next_batch`, as the request body, straight from the stored JSON."""
        claimed = self._claim(max_points)
        if claimed is None:
            return None
        return encode_batch(self.agent_id, *claimed)

    def _claim(self, max_points: int) -> tuple[int, list[str]] | None:
        """(seq, stored JSON of its points) of the batch to send now; a new batch gets its seq here."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT seq, max_id FROM outbox ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                last = self._db.execute(
                    "SELECT MAX(id) FROM (SELECT id FROM point ORDER BY id LIMIT ?)", (max_points,)
                ).fetchone()[0]
                if last is None:
                    return None
                seq = self._db.execute("SELECT value FROM meta WHERE name = 'next_seq'").fetchone()[0]
                self._db.execute("UPDATE meta SET value = value + 1 WHERE name = 'next_seq'")
                self._db.execute("INSERT INTO outbox (seq, max_id) VALUES (?, ?)", (seq, last))
                row = (seq, last)
            seq, max_id = row
            bodies = [b for (b,) in self._db.execute("SELECT body FROM point WHERE id <= ? ORDER BY id", (max_id,))]
        return seq, bodies

    def ack(self, seq: int) -> None:
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT max_id FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return
            self._db.execute("DELETE FROM point WHERE id <= ?", (row[0],))
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._dropping = False

    def split_pending(self) -> None:
        """The collector said the pending batch is too large: forget its seq so it is re-cut smaller.

        Safe because the collector refused it (413) and so never stored it under that seq.
        """
        with self._lock, self._db:
            self._db.execute("DELETE FROM outbox")

    def discard_pending(self) -> int:
        """The collector refused the pending batch as invalid (400): drop it, count it, go on."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT seq, max_id FROM outbox ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return 0
            dropped = self._db.execute("DELETE FROM point WHERE id <= ?", (row[1],)).rowcount
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
            self._db.execute("UPDATE meta SET value = value + ? WHERE name = 'dropped_points'", (dropped,))
            return dropped

    def used_bytes(self) -> int:
        with self._lock:
            return self._used_bytes()

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM point").fetchone()[0]

    def dropped(self) -> int:
        with self._lock:
            return self._db.execute("SELECT value FROM meta WHERE name = 'dropped_points'").fetchone()[0]
