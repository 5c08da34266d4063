"""The spool's bound by size on disk, and what happens when the disk itself is full."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.points import Point
from agent.runner import Agent, AgentSettings
from agent.spool import Spool

MB = 1024 * 1024


def points(n: int, start: int = 0) -> list[Point]:
    return [Point("host", {"host": "pc1"}, {"cpu_pct": 1.0, "note": "x" * 200}, time_ns=1_000 + i) for i in range(start, start + n)]


def test_spool_stays_within_its_size_and_drops_the_oldest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "s.sqlite3"
    spool = Spool(path, "pc1", max_bytes=1 * MB)
    spool.add(points(10))
    promised = spool.next_batch(5)  # in flight: must survive the bound
    with caplog.at_level(logging.WARNING, logger="nettvakt.agent.spool"):
        for chunk in range(100):
            spool.add(points(100, 10 + chunk * 100))
    total = 10 + 100 * 100
    assert spool.used_bytes() <= 1 * MB
    assert path.stat().st_size <= 1 * MB + 64 * 1024  # freed pages are reused, the file stops growing
    assert spool.dropped() > 0 and spool.pending() + spool.dropped() == total
    # One warning for the whole episode, not one per point.
    assert len([r for r in caplog.records if "over its bound" in r.message]) == 1
    assert spool.next_batch(1000) == promised
    assert promised is not None
    spool.ack(promised.seq)
    rest = spool.next_batch(100_000)
    assert rest is not None
    times = [p.time_ns for p in rest.points]
    assert times == sorted(times) and times[-1] == 1_000 + total - 1  # the newest are kept
    assert times[0] > 1_000 + 10  # ... and the oldest unpromised ones went
    spool.close()


def test_bound_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    spool = Spool(path, "pc1", max_bytes=1 * MB)
    spool.add(points(6000))
    dropped = spool.dropped()
    spool.close()
    spool = Spool(path, "pc1", max_bytes=1 * MB)
    spool.add(points(1000, 6000))
    assert spool.used_bytes() <= 1 * MB and spool.dropped() > dropped
    spool.close()


def test_a_full_disk_loses_only_new_points_and_says_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    agent = Agent(AgentSettings(agent_id="pc1", collector_url="http://127.0.0.1:9", token="t", spool_path=tmp_path / "s.sqlite3"))
    asyncio.run(agent._store(points(5)))
    # SQLite's own "database or disk is full" error, from a page limit at the current size.
    pages = agent.spool._db.execute("PRAGMA page_count").fetchone()[0]
    agent.spool._db.execute(f"PRAGMA max_page_count = {pages}")
    with caplog.at_level(logging.WARNING, logger="nettvakt.agent"):
        asyncio.run(agent._store(points(500, 5)))
        asyncio.run(agent._store(points(500, 505)))
    errors = [r for r in caplog.records if "cannot write the spool" in r.message]
    assert len(errors) == 1 and "full" in errors[0].message
    assert agent.unspooled_points == 1000 and agent.spool.pending() == 5  # what was queued stays
    agent.spool._db.execute("PRAGMA max_page_count = 1073741823")
    with caplog.at_level(logging.WARNING, logger="nettvakt.agent"):
        asyncio.run(agent._store(points(1, 2000)))
    assert agent.spool.pending() == 6 and any("writable again" in r.message for r in caplog.records)
    agent.spool.close()
