"""Drains the durable queue into InfluxDB, in order, losing nothing and writing nothing twice.

Up to `[storage] write_concurrency` writes are in flight at once, each of the next batches of the
queue in order; a batch leaves the queue once its write and every write before it were taken
(`QueueWriter`). Transient failures (5xx, timeouts, connection errors) are retried with capped
exponential backoff, keeping the batch at the head of the queue. The queue holds each point as its line
(a point the line-protocol encoder refuses was moved aside when it was queued), so a write is
the lines of the oldest batches joined. A 4xx means bad points: the lines are
bisected until each refused line stands alone, that line is moved aside with the reason
and logged, and the good points behind it go on. InfluxDB overwrites a point with the same
series and timestamp, so re-sending the good half of a bisected batch is harmless.

Event points (`alert`, `login`: collector/rollups.py) that InfluxDB took are written a second time
into the events retention policy, kept as long as the longest rollups, once the retention set-up
(collector/retention.py) has made it; the batch leaves the queue only when both writes are done.

Where the collector makes the rollups itself (storage without continuous queries), the points the
storage took are handed to `rollups` (collector/rollup_engine.py) before the batch leaves the queue.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from itertools import chain
from typing import Awaitable, Callable, Mapping, Protocol

import aiohttp

from collector.config import WRITE_CONCURRENCY, Inventory, StorageSettings
from collector.lineprotocol import line_starts
from collector.queue import DurableQueue, QueuedBatch

log = logging.getLogger(__name__)


class RetryableWriteError(Exception):
    """The database could not take the write now; try again later."""


class BadPointsError(Exception):
    """The database refused the write because of its content (HTTP 4xx)."""


class RollupFolder(Protocol):
    """Told what the storage took, before its batches leave the queue (collector/rollup_engine.py)."""

    async def fold(self, written: Written) -> None: ...


class Sink(Protocol):
    async def write(self, body: bytes, retention_policy: str | None = None, where: Mapping[str, str] | None = None) -> None: ...
    async def close(self) -> None: ...


def _ssl_context(settings: StorageSettings) -> ssl.SSLContext | bool:
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return True if settings.verify_tls else False


class InfluxHttpSink:
    """InfluxDB write API over HTTP: v1 (/write, db+rp, user/password; VictoriaMetrics' too) or v2 (/api/v2/write, org/bucket/token)."""

    def __init__(self, settings: StorageSettings, inventory: Inventory):
        assert settings.url is not None
        base = settings.url.rstrip("/")
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        params: dict[str, str] = {"precision": "ns"}
        auth = None
        if settings.kind in ("influxdb_v1", "victoriametrics"):
            self.url = f"{base}/write"
            params["db"] = settings.database or ""
            if settings.retention_policy:
                params["rp"] = settings.retention_policy
            if settings.username:
                password = inventory.secret(settings.password) if settings.password else ""
                auth = aiohttp.BasicAuth(settings.username, password)
        else:
            self.url = f"{base}/api/v2/write"
            params["org"] = settings.org or ""
            params["bucket"] = settings.bucket or ""
            headers["Authorization"] = f"Token {inventory.secret(settings.token or '')}"
        self.params = params
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            timeout=aiohttp.ClientTimeout(total=settings.timeout_s),
            connector=aiohttp.TCPConnector(ssl=_ssl_context(settings)),
        )

    async def write(self, body: bytes, retention_policy: str | None = None, where: Mapping[str, str] | None = None) -> None:
        """Write line protocol; `retention_policy` (v1 only) instead of the configured one; `where`:
        query parameters in place of the configured ones of the same names (where rollups go)."""
        params = self.params if retention_policy is None else {**self.params, "rp": retention_policy}
        if where:
            params = {**params, **where}
        try:
            async with self._session.post(self.url, params=params, data=body) as resp:
                text = await resp.text()
                if resp.status < 300:
                    return
                if 400 <= resp.status < 500 and resp.status not in (408, 429):
                    raise BadPointsError(f"HTTP {resp.status}: {text.strip()[:500]}")
                raise RetryableWriteError(f"HTTP {resp.status}: {text.strip()[:200]}")
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise RetryableWriteError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


def make_sink(inventory: Inventory) -> Sink | None:
    """None for `local` storage: points stay in the durable queue until InfluxDB is configured."""
    if inventory.storage.kind == "local":
        return None
    return InfluxHttpSink(inventory.storage, inventory)


@dataclass(frozen=True)
class EventCopy:
    """Event measurements (collector/rollups.py) are also written whole into this retention policy,
    kept as long as the longest rollups; set by the retention set-up once the policy exists."""

    retention_policy: str
    measurements: frozenset[str]

    @property
    def line_starts(self) -> tuple[str, ...]:
        return line_starts(self.measurements)


@dataclass
class WriterStats:
    write_errors: int = 0
    retries: int = 0
    last_error: str | None = None
    backoff_s: float = 0.0
    batches_written: int = 0
    extra: dict[str, int] = field(default_factory=dict)


Line = tuple[QueuedBatch, int]
"""A point in the head of the queue: its batch, and its index there."""


@dataclass(frozen=True)
class Written:
    """What the storage took of the batches written: every line but the refused ones."""

    batches: list[QueuedBatch]
    refused: frozenset[tuple[int, int]] = frozenset()  # (batch id, index) of each line refused

    def lines(self) -> list[str]:
        if not self.refused:
            return list(chain.from_iterable(b.lines for b in self.batches))
        return [line for b in self.batches for line in self.lines_of(b)]

    def lines_of(self, batch: QueuedBatch) -> list[str]:
        """The lines of one of the batches that the storage took."""
        if not self.refused:
            return batch.lines
        return [line for i, line in enumerate(batch.lines) if (batch.id, i) not in self.refused]

    @classmethod
    def joined(cls, parts: list["Written"]) -> "Written":
        return cls([b for w in parts for b in w.batches], frozenset().union(*(w.refused for w in parts)))

    def __len__(self) -> int:
        return sum(len(b.lines) for b in self.batches) - len(self.refused)


def _body(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass(eq=False)
class _Taken:
    """Batches taken from the head of the queue for one write, until they leave it."""

    batches: list[QueuedBatch]
    sending: asyncio.Task[Written] | None = None  # its write, while in flight
    written: Written | None = None  # what the storage took, once it answered

    @property
    def points(self) -> int:
        return sum(len(b.lines) for b in self.batches)


def _groups(batches: list[QueuedBatch], batch_size: int) -> list[list[QueuedBatch]]:
    """Consecutive batches cut into writes of about batch_size points (at least one batch each)."""
    groups: list[list[QueuedBatch]] = []
    total = 0
    for batch in batches:
        if groups and total + len(batch.lines) <= batch_size:
            groups[-1].append(batch)
            total += len(batch.lines)
        else:
            groups.append([batch])
            total = len(batch.lines)
    return groups


class QueueWriter:
    """Keeps up to `write_concurrency` writes of about `batch_size` points in flight, taken from
    the queue in order. What they wrote leaves the queue in the same order, as the written groups
    at its head complete (`_release`): folded into the rollups and noted (one commit each for all
    of them), then acknowledged in one transaction. A write that fails stops the taking of new
    batches; the others are let finish, and after the backoff the failed ones are sent again
    first. A crash at any moment resends at most the groups taken and not yet released."""

    def __init__(
        self,
        queue: DurableQueue,
        sink: Sink,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 60.0,
        write_concurrency: int = WRITE_CONCURRENCY,
    ):
        self.queue = queue
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.write_concurrency = write_concurrency
        self.stats = WriterStats()
        self._wake = asyncio.Event()
        # Taken from the queue and not yet released, in queue order; the last batch id taken.
        self._taken: list[_Taken] = []
        self._taken_through = 0
        self.event_copy: EventCopy | None = None
        # Collector-side rollups (storage without continuous queries): told every point written.
        self.rollups: RollupFolder | None = None
        # Told when the events policy refused a copy (dropped since it was set up): set it up again.
        self.on_copy_refused: Callable[[str], None] | None = None
        # Told of the batches just written, before they leave the queue: notes the hours of points
        # too late for the continuous queries, to be rolled up again (collector/laterollups.py).
        self.note_late: Callable[[list[QueuedBatch]], Awaitable[None]] | None = None

    def wake(self) -> None:
        self._wake.set()

    @property
    def in_flight(self) -> int:
        return sum(1 for t in self._taken if t.sending is not None)

    async def run(self) -> None:
        backoff = self.backoff_initial_s
        while True:
            try:
                drained = await self._pump()
            except RetryableWriteError as exc:
                self.stats.write_errors += 1
                self.stats.retries += 1
                self.stats.last_error = str(exc)
                self.stats.backoff_s = backoff
                log.warning("InfluxDB write failed, retrying in %.1f s: %s", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.backoff_max_s)
                continue
            backoff = self.backoff_initial_s
            self.stats.backoff_s = 0.0
            if not drained:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self.flush_interval_s)
                except asyncio.TimeoutError:
                    pass

    async def _pump(self) -> int:
        """Keep the writes in flight while the queue has batches; returns the points released once
        there is nothing more to take. A failed write is raised once every write in flight has
        finished (what they wrote is released when the groups before it are)."""
        moved = 0
        try:
            while True:
                self._wake.clear()  # before looking: a batch stored after the look wakes the wait below
                await self._take()
                sending = [t.sending for t in self._taken if t.sending is not None]
                if not sending:
                    return moved + await self._release()
                # Until a write finishes or, while there is room for another, a batch is stored.
                stored = asyncio.ensure_future(self._wake.wait()) if len(self._taken) < self.write_concurrency else None
                await asyncio.wait(sending + ([stored] if stored else []), return_when=asyncio.FIRST_COMPLETED)
                if stored is not None:
                    stored.cancel()
                failure = self._settle()
                moved += await self._release()
                if failure is not None:
                    raise failure
        except asyncio.CancelledError:
            await self._cancel_sending()
            raise
        except BaseException:
            await self._finish_sending()
            raise

    async def drain_once(self) -> int:
        """Write the head of the queue (up to write_concurrency writes at once) and release what
        was written; returns the number of points taken off it. A failed write is raised after
        the others finished and the written groups before it were released."""
        try:
            await self._take()
            failure = await self._finish_sending()
        except asyncio.CancelledError:
            await self._cancel_sending()
            raise
        moved = await self._release()
        if failure is not None:
            raise failure
        return moved

    async def _take(self) -> None:
        """Start writes up to write_concurrency groups taken: first those whose write failed, in
        order, then new batches from the queue after the last one taken (all there are when no
        write is in flight, else only full writes)."""
        for taken in self._taken:
            if taken.sending is None and taken.written is None:
                taken.sending = asyncio.create_task(self._send(taken.batches), name="storage-write")
        room = self.write_concurrency - len(self._taken)
        if room <= 0:
            return
        # While writes are in flight another waits for a full batch_size: fewer, larger writes.
        full_only = self.in_flight > 0
        if full_only and await asyncio.to_thread(self.queue.points_after, self._taken_through) < self.batch_size:
            return
        batches = await asyncio.to_thread(self.queue.peek, room * self.batch_size, self._taken_through)
        groups = _groups(batches, self.batch_size)[:room]
        if full_only and groups and sum(len(b.lines) for b in groups[-1]) < self.batch_size:
            groups.pop()
        for group in groups:
            self._taken.append(_Taken(group, asyncio.create_task(self._send(group), name="storage-write")))
            self._taken_through = group[-1].id

    async def _send(self, batches: list[QueuedBatch]) -> Written:
        written = await self._write_batches(batches)
        await self._copy_events(written)
        return written

    def _settle(self) -> RetryableWriteError | None:
        """Take the answers of the writes that finished; the first failure, whose group is sent again."""
        failure = None
        for taken in self._taken:
            task = taken.sending
            if task is None or not task.done():
                continue
            taken.sending = None
            try:
                taken.written = task.result()
            except RetryableWriteError as exc:
                failure = failure or exc
        return failure

    async def _finish_sending(self) -> RetryableWriteError | None:
        """Wait for every write in flight (taking nothing new); the first failure."""
        sending = [t.sending for t in self._taken if t.sending is not None]
        if sending:
            await asyncio.wait(sending)
        return self._settle()

    async def _cancel_sending(self) -> None:
        """Stop the writes in flight (shutting down); what one finished before is kept, the rest is
        sent again, also those the storage may have taken (a replay: docs/storage.md)."""
        sending = [t.sending for t in self._taken if t.sending is not None]
        for task in sending:
            task.cancel()
        await asyncio.gather(*sending, return_exceptions=True)
        for taken in self._taken:
            task = taken.sending
            if task is not None:
                taken.sending = None
                if not task.cancelled() and task.exception() is None:
                    taken.written = task.result()

    async def _release(self) -> int:
        """Let the written groups at the head of the taken ones leave the queue, in order: folded
        into the rollups and their late hours noted, for all of them at once (one commit each),
        then acknowledged in one transaction; returns the points that left."""
        done: list[_Taken] = []
        for taken in self._taken:
            if taken.written is None:
                break
            done.append(taken)
        if not done:
            return 0
        written = Written.joined([t.written for t in done if t.written is not None])
        batches = written.batches
        if self.rollups is not None:  # folded (and its state committed) before the batches leave the queue
            await self.rollups.fold(written)
        if self.note_late is not None:
            await self.note_late(batches)
        await asyncio.to_thread(self.queue.ack, [b.id for b in batches], len(written))
        del self._taken[:len(done)]
        self.stats.batches_written += len(batches)
        return sum(t.points for t in done)

    async def _write_batches(self, batches: list[QueuedBatch]) -> Written:
        """Write every line of the batches; returns what the storage took. All at once first: a
        refusal is rare, and only then is each line looked at on its own."""
        try:
            await self.sink.write(_body(list(chain.from_iterable(b.lines for b in batches))))
            return Written(batches, frozenset())
        except BadPointsError:
            lines = [(batch, index) for batch in batches for index in range(len(batch.lines))]
            taken = {(batch.id, index) for batch, index in await self._write_lines(lines)}
            return Written(batches, frozenset((batch.id, index) for batch, index in lines) - taken)

    async def _write_lines(self, lines: list[Line]) -> list[Line]:
        """Write the lines; returns those InfluxDB took (the refused ones are moved aside)."""
        try:
            await self.sink.write(_body([batch.lines[index] for batch, index in lines]))
            return lines
        except BadPointsError as exc:
            if len(lines) == 1:
                batch, index = lines[0]
                log.error("InfluxDB refused a point from %s, moved aside: %s -- %s", batch.source, exc, batch.lines[index])
                await asyncio.to_thread(self.queue.reject, batch.source, batch.lines[index], str(exc))
                return []
            mid = len(lines) // 2
            return await self._write_lines(lines[:mid]) + await self._write_lines(lines[mid:])

    async def _copy_events(self, written: Written) -> None:
        """Write the event points InfluxDB took into the events policy too, before the batch leaves
        the queue. A refusal there is not bad data (the same points were just taken): the policy is
        gone, so the batch waits (retried) while the retention set-up is asked to make it again."""
        copy = self.event_copy
        if copy is None:
            return
        starts = copy.line_starts
        events = [line for line in written.lines() if line.startswith(starts)]
        if not events:
            return
        try:
            await self.sink.write(_body(events), retention_policy=copy.retention_policy)
        except BadPointsError as exc:
            if self.on_copy_refused is not None:
                self.on_copy_refused(str(exc))
            raise RetryableWriteError(f"copy of {len(events)} event point(s) into {copy.retention_policy} refused: {exc}") from exc
