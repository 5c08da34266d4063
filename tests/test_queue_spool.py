"""The collector's durable queue and the agent's spool: idempotency, order, bounds, restarts."""

from __future__ import annotations

import json
from pathlib import Path

from agent.points import Point
from agent.spool import Spool
from collector.lineprotocol import number_columns, parse_head, split_line
from collector.queue import DurableQueue


def pts(n: int, start: int = 1) -> list[Point]:
    return [Point("host", {"host": "h"}, {"cpu_pct": float(i)}, i) for i in range(start, start + n)]


def test_queue_is_idempotent_and_ordered(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.sqlite3")
    assert q.put("agent:a", 1, pts(3)) is True
    assert q.put("agent:a", 1, pts(3)) is False  # resend: acknowledged, not stored twice
    assert q.put("agent:b", 1, pts(2, 10)) is True
    batches = q.peek(100)
    assert [(b.source, b.seq, len(b.points)) for b in batches] == [("agent:a", 1, 3), ("agent:b", 1, 2)]
    q.ack([batches[0].id], 3)
    assert q.stats()["queue_points"] == 2 and q.stats()["written_points"] == 3
    q.close()
    # Survives a restart, and still remembers what it has seen.
    q = DurableQueue(tmp_path / "q.sqlite3")
    assert [b.seq for b in q.peek(100)] == [1]
    assert q.put("agent:a", 1, pts(3)) is False
    q.close()


def test_queue_bound_drops_oldest_and_counts(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.sqlite3", max_bytes=600)
    for seq in range(1, 11):
        q.put("agent:a", seq, pts(3, seq * 10))
    stats = q.stats()
    assert stats["queue_bytes"] <= 600
    assert stats["dropped_points"] > 0
    remaining = [b.seq for b in q.peek(1000)]
    assert remaining == sorted(remaining) and remaining[-1] == 10  # newest kept
    assert stats["dropped_points"] + stats["queue_points"] == 30
    q.close()


def test_queue_rejected_points_are_kept_aside(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q.sqlite3")
    q.reject("agent:a", "host,host=h x=1 1", "HTTP 400: field type conflict")
    assert q.stats()["rejected_points"] == 1
    assert q.rejected()[0]["reason"] == "HTTP 400: field type conflict"
    q.close()


def test_spool_resends_same_seq_until_acked(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", "pc1")
    spool.add(pts(5))
    first = spool.next_batch(3)
    assert first is not None and len(first.points) == 3
    spool.add(pts(2, 100))
    again = spool.next_batch(3)
    assert again == first  # lost answer: the same seq and the same points go again
    spool.ack(first.seq)
    second = spool.next_batch(100)
    assert second is not None and second.seq == first.seq + 1 and len(second.points) == 4
    spool.ack(second.seq)
    assert spool.next_batch(100) is None and spool.pending() == 0
    spool.close()


def test_spool_sends_its_stored_json_as_the_same_document(tmp_path: Path) -> None:
    # The sender posts the stored JSON without decoding it: the body must be what Batch.to_json() says.
    spool = Spool(tmp_path / "s.sqlite3", "pc1")
    tricky = Point("probe", {"host": 'PLO pc, 2. etg "x=1"\\Vannvåg', "target": "sak"}, {"rtt_ms": 1.5, "error": 'a\nb "c", \\ æøå'}, 7)
    spool.add([tricky, *pts(3)])
    encoded = spool.next_encoded(10)
    batch = spool.next_batch(10)
    assert encoded is not None and batch is not None
    assert (encoded.seq, encoded.points) == (batch.seq, 4)
    assert json.loads(encoded.body) == batch.to_json()
    spool.close()


def test_spool_survives_restart_and_new_spool_never_reuses_seq(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", "pc1")
    spool.add(pts(2))
    batch = spool.next_batch(10)
    spool.close()
    spool = Spool(tmp_path / "s.sqlite3", "pc1")
    assert spool.next_batch(10) == batch
    spool.close()
    fresh = Spool(tmp_path / "other.sqlite3", "pc1")
    fresh.add(pts(1))
    assert batch is not None
    new = fresh.next_batch(10)
    assert new is not None and new.seq > batch.seq  # a reinstalled agent starts above old numbers
    fresh.close()


def test_spool_bound_drops_oldest_unpromised(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s.sqlite3", "pc1", max_points=5)
    spool.add(pts(3))
    promised = spool.next_batch(2)
    spool.add(pts(6, 10))
    assert spool.pending() == 5
    assert spool.dropped() == 4
    assert spool.next_batch(100) == promised  # the unacknowledged batch is intact
    spool.close()


def test_dedup_memory_stays_bounded_through_100000_batches_and_still_catches_resends() -> None:
    """Every batch leaves its (source, seq) behind for de-duplication; that memory is bounded per
    source and counted in the queue's disk bound, and the newest numbers (all an agent can resend) stay."""
    import tempfile

    from collector.queue import SEEN_ROW_BYTES

    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:  # tmpfs: 100,000 synchronous commits in seconds
        path = Path(folder) / "queue.sqlite3"
        queue = DurableQueue(path, max_bytes=4 * 1024 * 1024, seen_per_source=1000)
        try:
            # About 100 bytes queued a batch: the 4 MB bound is reached by the 40,000th.
            point = [Point("host", {"host": "a"}, {"cpu_pct": 1.0, "mem_used_pct": 2.0, "load1": 0.5, "load5": 0.25, "load15": 0.125}, 1)]
            seq0 = 1_764_000_000_000_000  # agents start at the time in µs
            sizes = []
            for k in range(100_000):
                source = f"agent:pc{k % 10}"
                assert queue.put(source, seq0 + k // 10, point)
                if k % 20_000 == 19_999:
                    sizes.append(path.stat().st_size)
            stats = queue.stats()
            # At most the newest 1,000 (plus the hundred between prunings) per source are remembered.
            assert stats["seen_batches"] <= 10 * 1100, stats
            assert stats["queue_bytes"] + stats["seen_batches"] * SEEN_ROW_BYTES <= 4 * 1024 * 1024
            assert stats["dropped_points"] > 0  # the bound held by dropping the oldest points, as it says
            assert max(sizes) < 12 * 1024 * 1024 and sizes[-1] <= sizes[2] * 1.05, sizes  # the file stops growing
            # The newest batch of each agent, resent, is still recognised; so is one long forgotten.
            last = seq0 + 99_999 // 10
            assert not queue.put("agent:pc3", last, point)
            assert not queue.put("agent:pc3", seq0 + 5, point)
            assert queue.put("agent:pc3", last + 1, point)  # and the next one is new
        finally:
            queue.close()
        # The floor survives a restart.
        queue = DurableQueue(path, max_bytes=4 * 1024 * 1024)
        try:
            assert not queue.put("agent:pc3", seq0 + 5, point)
        finally:
            queue.close()


def test_what_is_read_back_from_the_lines_is_the_points_queued(tmp_path: Path) -> None:
    """The queue keeps lines only; the local store reads each back whole (`points`), the rollups
    only a line's head, its numbers and its time (`split_line`, `number_columns`): the same points
    either way, as they were queued (numbers as floats, empty tags absent), also after a restart."""
    points = [
        Point("device", {"site": "radhus", "device": "fw1", "extra": ""}, {"up": True, "uptime_s": 86400, "firmware": 'v7 "x", a=b\nc\\'}, 5),
        Point("interface", {"site": "radhus", "device": "fw1", "ifname": "port 1,a=b\\x"}, {"in_bps": 1.5e9, "oper_up": 1}, 6),
        Point("host", {"site": "radhus", "host": "pc1"}, {"cpu_pct": float("nan")}, 7),  # line protocol cannot say it
    ]
    q = DurableQueue(tmp_path / "q.sqlite3")
    q.put_local("collector", points)
    q.close()
    q = DurableQueue(tmp_path / "q.sqlite3")
    [batch] = q.peek(100)
    q.close()
    expected = [
        ("device", [("device", "fw1"), ("site", "radhus")], {"up": 1.0, "uptime_s": 86400.0, "firmware": 'v7 "x", a=b\nc\\'}, 5),
        ("interface", [("device", "fw1"), ("ifname", "port 1,a=b\\x"), ("site", "radhus")], {"in_bps": 1.5e9, "oper_up": 1.0}, 6),
    ]
    assert [(p.measurement, sorted(p.tags.items()), dict(p.fields), p.time_ns) for p in batch.points] == expected
    folded = []
    for line in batch.lines:
        head, fields, time_ns = split_line(line)
        measurement, tags = parse_head(head)
        folded.append((measurement, sorted(tags.items()), {k: v[0] for k, v in number_columns([fields], ANY_NAME).items()}, time_ns))
    assert folded == [(m, tags, {k: v for k, v in fields.items() if not isinstance(v, str)}, t) for m, tags, fields, t in expected]
    assert batch.oldest_ns == 5


class _AnyName:
    def __contains__(self, name: object) -> bool:
        return True


ANY_NAME = _AnyName()


def test_number_columns_of_many_lines_are_each_fields_values_in_order() -> None:
    """Lines of one series with the same fields are split all at once; any other mix line by line: the same columns."""
    same = ['up=1.0,method="icmp, \\"dgram\\"",rtt_ms=4.5', 'up=0.0,method="",rtt_ms=9.25', 'up=1.0,method="x\ny=2",rtt_ms=1e-05']
    assert number_columns(same, ANY_NAME) == {"up": [1.0, 0.0, 1.0], "rtt_ms": [4.5, 9.25, 1e-05]}
    assert number_columns(same, {"rtt_ms", "method"}) == {"rtt_ms": [4.5, 9.25, 1e-05]}
    mixed = ['rtt_ms=4.5,up=1.0', 'up=0.0', 'reason="down"', 'up=1.0,rtt_ms=2.0,loss_pct=50.0']
    assert number_columns(mixed, ANY_NAME) == {"rtt_ms": [4.5, 2.0], "up": [1.0, 0.0, 1.0], "loss_pct": [50.0]}
    # A field that is a string in one line and a number in another (not by the contract): its numbers only.
    assert number_columns(['up=1.0,state="x"', 'up=0.0,state=2.0'], ANY_NAME) == {"up": [1.0, 0.0], "state": [2.0]}


def test_a_drained_queue_gives_its_space_back() -> None:
    """A backlog grows the file; once written it shrinks back to a few megabytes (free pages kept
    for the next batches, the write-ahead log emptied), whatever the backlog was."""
    import tempfile

    from collector.queue import GIVE_BACK_BYTES

    def size(folder: str) -> int:
        return sum(p.stat().st_size for p in Path(folder).glob("queue.sqlite3*"))

    fields = {f"f{k:02d}": 1234.5678 + k for k in range(12)}
    with tempfile.TemporaryDirectory(dir="/dev/shm") as folder:
        queue = DurableQueue(Path(folder) / "queue.sqlite3")
        try:
            for seq in range(300):
                queue.put("agent:a", seq, [Point("host", {"host": "a", "site": "s"}, fields, seq * 1000 + k) for k in range(1000)])
            full = size(folder)
            while batches := queue.peek(5000):
                queue.ack([b.id for b in batches], sum(len(b.lines) for b in batches))
            drained = size(folder)
            assert queue.stats()["written_points"] == 300_000
        finally:
            queue.close()
    assert full > 6 * GIVE_BACK_BYTES and drained <= 2 * GIVE_BACK_BYTES, (full, drained)


def test_batches_committed_together_are_each_stored_once(tmp_path: Path) -> None:
    """GroupCommit: twenty agents' batches at once, one of them sent twice in the same moment and
    one a resend of a batch already stored: each stored once, each sender told which it was."""
    import asyncio

    from collector.queue import GroupCommit

    queue = DurableQueue(tmp_path / "q.sqlite3")
    queue.put("agent:a00", 1, pts(2, 1000))

    async def scenario() -> list[bool]:
        commits = GroupCommit(queue)
        posts = [commits.put(f"agent:a{i:02d}", 2 if i == 0 else 1, pts(3, 10 * i)) for i in range(20)]
        posts += [commits.put("agent:a05", 1, pts(3, 50)), commits.put("agent:a00", 1, pts(2, 1000))]
        return await asyncio.gather(*posts)

    answers = asyncio.run(scenario())
    assert answers == [True] * 20 + [False, False]
    batches = queue.peek(1000)
    assert sorted((b.source, b.seq) for b in batches) == sorted([("agent:a00", 1), ("agent:a00", 2)] + [(f"agent:a{i:02d}", 1) for i in range(1, 20)])
    assert queue.stats()["queue_points"] == 2 + 20 * 3
    queue.close()
