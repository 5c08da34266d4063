"""The collector's HTTP API, served for real on a loopback port: ingest, agent config, health, bad input."""

from __future__ import annotations

import argparse
import json
import asyncio
import logging
import os
import signal
import stat
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.points import Point
from agent.runner import Agent, AgentSettings
from collector.app import collector_points, create_app, serve
from collector.appkeys import QUEUE, RELOADER, SERVICE, WRITER
from collector.cli import cmd_collector_tls
from collector.config import Inventory, load_inventory
from collector.queue import DurableQueue
from collector.service import is_agent_source, token_hash
from collector.influxql import query
from collector.localservers import free_port, wait_until, wait_until_async
from inventories import InventoryBuilder
from serving import serving

# Points are dated now: ingest refuses times from before an agent's spool could hold them.
NOW_NS = time.time_ns()
TOKEN = "token-for-pc1"
OTHER_TOKEN = "token-for-pc2"


def inventory(tmp_path: Path, storage: dict[str, Any] | None = None, **collector: Any) -> Inventory:
    """pc1 and pc2 (its sshd watched) at one site, an icmp probe for them; the local store unless `storage` says otherwise."""
    built = InventoryBuilder(tmp_path).collector(**collector)
    if storage is not None:
        built.storage(**storage)
    built.agent("pc1", TOKEN).agent("pc2", OTHER_TOKEN, services=["sshd"])
    return built.probe("gw", "icmp", "127.0.0.1", params={"count": 3}).parse()


def batch(seq: int, points: list[dict[str, Any]] | None = None, agent: str = "pc1") -> dict[str, Any]:
    return {
        "agent": agent,
        "seq": seq,
        "points": points
        if points is not None
        else [{"measurement": "host", "tags": {"host": "pc1"}, "fields": {"cpu_pct": 12.5}, "time": NOW_NS}],
    }


async def with_collector(tmp_path: Path, scenario, storage: dict[str, Any] | None = None, **collector: Any) -> None:
    app = create_app(inventory(tmp_path, storage, **collector))
    async with serving(app) as url, aiohttp.ClientSession(url) as http:
        await scenario(app, http)


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_ingest_accepts_dedupes_and_stamps(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(7), headers=auth()) as resp:
            assert resp.status == 200
            assert await resp.json() == {"seq": 7, "accepted": 1, "duplicate": False, "too_old": 0}
        async with http.post("/api/v1/ingest", json=batch(7), headers=auth()) as resp:
            assert resp.status == 200
            assert (await resp.json())["duplicate"] is True
        queued = app[QUEUE].peek(100)
        assert len(queued) == 1
        # the site the agent left out comes from the inventory
        assert dict(queued[0].points[0].tags) == {"host": "pc1", "site": "radhus"}

    asyncio.run(with_collector(tmp_path, scenario))


def test_every_committed_point_reaches_the_subscribers_one_way(tmp_path: Path) -> None:
    """An agent's batch and the collector's own points reach a subscriber alike, each with its
    source, once committed; a resend is not told again; the live device state is one of the
    subscribers (ingest refuses device points from agents, so only the collector's own reach it)."""
    told: list[tuple[str, list[str]]] = []

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        service = app[SERVICE]
        service.subscribers.append(lambda source, points: told.append((source, [p.measurement for p in points])))
        for _ in range(2):  # the second is a resend
            async with http.post("/api/v1/ingest", json=batch(3), headers=auth()) as resp:
                assert resp.status == 200
        await service.store_local("device:sw1", [Point("availability", {"site": "radhus", "device": "sw1", "kind": "device"}, {"up": 0.0}, NOW_NS)])
        ours = ("agent:pc1", "device:sw1")  # housekeeping and lifecycle points may come in between
        assert [t for t in told if t[0] in ours] == [("agent:pc1", ["host"]), ("device:sw1", ["availability"])]
        assert is_agent_source("agent:pc1") and not is_agent_source("device:sw1")
        assert service.devices["sw1"].up is False
        assert [b.source for b in app[QUEUE].peek(100) if b.source in ours] == list(ours)

    asyncio.run(with_collector(tmp_path, scenario))


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (batch(1), {}, 401, "missing bearer token (Authorization: Bearer <token>)"),
        (batch(1), auth("wrong"), 401, "unknown token"),
        (batch(1, agent="pc2"), auth(), 403, "token belongs to agent 'pc1', batch says 'pc2'"),
        (b"{not json", auth(), 400, None),
        (batch(1, [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": [1]}, "time": NOW_NS}]), auth(), 400,
         "points[0].fields.cpu_pct: expected a number, got [1]"),
        (batch(1, [{"measurement": "bogus", "tags": {}, "fields": {"x": 1}, "time": NOW_NS}]), auth(), 400, None),
        (batch(1, [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1}, "time": "yesterday"}]), auth(), 400,
         "points[0].time: expected an integer (ns since the Unix epoch), got 'yesterday'"),
        (batch(1, [{"measurement": "host_net", "tags": {"nic": "a\nb"}, "fields": {"in_bps": 1}, "time": NOW_NS}]), auth(), 400,
         "points[0].tags.nic: control characters (newline, tab, ...) cannot be stored in a tag"),
        ({"agent": "pc1", "seq": -1, "points": []}, auth(), 400, "seq: expected an integer in 0..9223372036854775807"),
        (batch(1, [{"measurement": "host", "tags": {"host": "pc1"}, "fields": {"cpu_pct": 1}, "time": NOW_NS},
                   {"measurement": "host", "tags": {"host": "pc2"}, "fields": {"cpu_pct": 1}, "time": NOW_NS}]), auth(), 403,
         "points[1].tags.host: 'pc2' is not this agent's host 'pc1'"),
        (batch(1, [{"measurement": "host", "tags": {"site": "skole"}, "fields": {"cpu_pct": 1}, "time": NOW_NS}]), auth(), 403,
         "points[0].tags.site: 'skole' is not this agent's site 'radhus'"),
        (batch(1, [{"measurement": "host", "tags": {}, "fields": {"load1": 10**400}, "time": NOW_NS}]), auth(), 400, None),
        (b'{"agent": "pc1", "seq": 1, "points": [{"measurement": "host", "fields": {"load1": NaN}, "time": %d}]}' % NOW_NS, auth(), 400,
         "points[0].fields.load1: nan is out of range (>= 0)"),
        # A pair found good before does not vouch for the same key with a bad value, nor a list.
        (batch(1, [{"measurement": "host_net", "tags": {"nic": "eth0"}, "fields": {"in_bps": 1}, "time": NOW_NS},
                   {"measurement": "host_net", "tags": {"nic": "eth0\t"}, "fields": {"in_bps": 1}, "time": NOW_NS}]), auth(), 400,
         "points[1].tags.nic: control characters (newline, tab, ...) cannot be stored in a tag"),
        (batch(1, [{"measurement": "host_net", "tags": {"nic": ["eth0"]}, "fields": {"in_bps": 1}, "time": NOW_NS}]), auth(), 400,
         "points[0].tags.nic: expected a non-empty string of at most 128 characters, got ['eth0']"),
        # More digits than Python's int parser takes: json.loads says ValueError, not JSONDecodeError.
        (b'{"agent": "pc1", "seq": 1, "points": [{"measurement": "host", "fields": {"load1": 1' + b"0" * 5000 + b'}, "time": 5}]}',
         auth(), 400, None),
    ],
    ids=["no-token", "wrong-token", "other-agent", "malformed-json", "field-type", "measurement", "time", "tag-newline", "seq", "other-host", "other-site",
         "huge-number", "nan", "tag-good-then-bad", "tag-list", "number-too-long"],
)
def test_bad_input_gets_clear_json_error_and_loses_nothing(tmp_path: Path, body: Any, headers: dict[str, str], status: int, message: str | None) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(1), headers=auth()) as resp:
            assert resp.status == 200
        kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with http.post("/api/v1/ingest", headers=headers, **kwargs) as resp:
            assert resp.status == status
            answer = await resp.json()
            assert "error" in answer
            if message is not None:
                assert answer["error"] == message
        assert app[QUEUE].stats()["queue_points"] == 1  # what was accepted before is still there

    asyncio.run(with_collector(tmp_path, scenario))


def test_oversized_batches_get_413(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", data=b"x" * 5000, headers=auth()) as resp:
            assert resp.status == 413
            assert (await resp.json())["max_bytes"] == 4000
        many = [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1}, "time": NOW_NS}] * 11
        async with http.post("/api/v1/ingest", json=batch(2, many), headers=auth()) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"] == "points: 11 points in one batch, at most 10"

    asyncio.run(with_collector(tmp_path, scenario, max_batch_bytes=4000, max_batch_points=10))


def test_agent_config_and_health(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.get("/api/v1/agents/pc1/config", headers=auth()) as resp:
            assert resp.status == 200
            config = await resp.json()
        assert config["site"] == "radhus"
        assert config["probes"] == [
            {"kind": "icmp", "target": "127.0.0.1", "name": "gw", "interval_s": 30.0, "timeout_s": 5.0, "params": {"count": 3}}
        ]
        assert "services" not in config and "hardware" not in config
        async with http.get("/api/v1/agents/pc2/config", headers=auth()) as resp:
            assert resp.status == 403
        async with http.get("/api/v1/agents/pc2/config", headers=auth(OTHER_TOKEN)) as resp:
            other = await resp.json()
        assert other["services"] == ["sshd"]
        async with http.get("/api/v1/health") as resp:
            health = await resp.json()
        assert health["status"] == "ok" and health["storage"]["kind"] == "local"
        assert set(health["agents"]) == {"pc1", "pc2"}

    asyncio.run(with_collector(tmp_path, scenario))


def test_late_backlog_does_not_flip_live_state_to_up(tmp_path: Path) -> None:
    """Agents and probe targets: the newest measurement time decides, not the arrival of old points."""
    now = time.time_ns()
    hour_ago = now - 3600 * 10**9

    def probe(up: float, t: int, **fields: Any) -> dict[str, Any]:
        return {"measurement": "probe", "tags": {"kind": "icmp", "target": "gw"}, "fields": {"up": up, **fields}, "time": t}

    def verdicts(app: web.Application, at: int) -> dict[tuple[str, str | None], float | None]:
        points = app[SERVICE].evaluate_liveness(at)
        return {(p.tags["host"], p.tags.get("target")): p.fields.get("up") for p in points if p.tags["host"] == "pc1"}

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        # An hour-old backlog arrives now: stored, but the agent is not live and the target unknown.
        async with http.post("/api/v1/ingest", json=batch(1, [probe(1.0, hour_ago, rtt_ms=4.0)]), headers=auth()) as resp:
            assert resp.status == 200
        assert verdicts(app, now) == {("pc1", None): 0.0}
        # A fresh report: the agent is up, and the target is down as that newest probe says.
        async with http.post("/api/v1/ingest", json=batch(2, [probe(0.0, now - 10**9, reason="timeout")]), headers=auth()) as resp:
            assert resp.status == 200
        assert verdicts(app, now) == {("pc1", None): 1.0, ("pc1", "gw"): 0.0}
        # Older backlog saying "up" arrives late: it changes nothing live.
        async with http.post("/api/v1/ingest", json=batch(3, [probe(1.0, now - 20 * 10**9, rtt_ms=3.0)]), headers=auth()) as resp:
            assert resp.status == 200
        assert verdicts(app, now) == {("pc1", None): 1.0, ("pc1", "gw"): 0.0}
        assert app[SERVICE].targets[("pc1", "gw")].reason == "timeout"
        # Silence past down_after_intervals (3 x 30 s; it sends no heartbeats): the agent is down, the target unknown.
        assert verdicts(app, now + 80 * 10**9) == {("pc1", None): 1.0, ("pc1", "gw"): 0.0}
        # The target's probes stopped: one point without `up` says its state is unknown from now, then none.
        assert verdicts(app, now + 100 * 10**9) == {("pc1", None): 0.0, ("pc1", "gw"): None}
        assert verdicts(app, now + 105 * 10**9) == {("pc1", None): 0.0}
        stored = [p for b in app[QUEUE].peek(100) for p in b.points]
        assert [p.fields["up"] for p in stored] == [1.0, 0.0, 1.0]  # every report kept, with its own time

    asyncio.run(with_collector(tmp_path, scenario))


def test_an_agent_without_heartbeats_is_held_to_its_report_interval(tmp_path: Path) -> None:
    """An agent from before heartbeats (during an upgrade) is not judged by a heartbeat it never sends."""

    def agent_point(app: web.Application, at: int) -> Point:
        return next(p for p in app[SERVICE].evaluate_liveness(at) if p.tags["host"] == "pc1" and "target" not in p.tags)

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        now = time.time_ns()
        point = {"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1.0}, "time": now}
        async with http.post("/api/v1/ingest", json=batch(1, [point]), headers=auth()) as resp:
            assert resp.status == 200
        # Reports every 30 s: 3 x 30 s, not 3 x the 10 s heartbeat it does not send.
        assert agent_point(app, now + 60 * 10**9).fields["up"] == 1.0
        assert agent_point(app, now + 60 * 10**9).fields["expected_s"] == 30.0
        assert agent_point(app, now + 95 * 10**9).fields["up"] == 0.0
        # Its first heartbeat: from now on the heartbeat's cadence.
        async with http.post("/api/v1/agents/pc1/heartbeat", headers=auth()) as resp:
            assert resp.status == 200
        beat = time.time_ns()
        assert agent_point(app, beat + 20 * 10**9).fields == {"up": 1.0, "silent_s": pytest.approx(20.0, abs=0.5), "expected_s": 10.0}
        assert agent_point(app, beat + 35 * 10**9).fields["up"] == 0.0

    asyncio.run(with_collector(tmp_path, scenario))


def test_heartbeats_keep_an_agent_live_by_the_collector_clock_and_tell_its_backlog(tmp_path: Path) -> None:
    hour_ago = time.time_ns() - 3600 * 10**9
    old = [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1.0}, "time": hour_ago}]

    def agent_up(app: web.Application, at: int) -> float:
        return next(p.fields["up"] for p in app[SERVICE].evaluate_liveness(at) if p.tags["host"] == "pc1" and "target" not in p.tags)

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.get("/api/v1/agents/pc1/config", headers=auth()) as resp:
            assert (await resp.json())["heartbeat_s"] == 10.0
        # Draining an hour-old backlog: the data alone does not make the agent live...
        async with http.post("/api/v1/ingest", json=batch(1, old), headers=auth()) as resp:
            assert resp.status == 200
        assert agent_up(app, time.time_ns()) == 0.0
        # ...its heartbeat, timed by the collector, does, and says what is still to come.
        async with http.post("/api/v1/agents/pc1/heartbeat", json={"pending_points": 4200}, headers=auth()) as resp:
            assert resp.status == 200
            assert await resp.json() == {"agent": "pc1", "heartbeat_s": 10.0}
        beat = time.time_ns()
        assert agent_up(app, beat) == 1.0
        assert agent_up(app, beat + 29 * 10**9) == 1.0  # within 3 heartbeats
        assert agent_up(app, beat + 31 * 10**9) == 0.0
        async with http.get("/api/v1/health") as resp:
            pc1 = (await resp.json())["agents"]["pc1"]
        assert pc1["pending_points"] == 4200 and 0 < beat - pc1["last_heartbeat_ns"] < 5 * 10**9, pc1
        async with http.get("/") as resp:
            assert "4200 punkter" in await resp.text()  # the backlog, in the inventory's language
        # An empty body is a plain "alive".
        async with http.post("/api/v1/agents/pc1/heartbeat", headers=auth()) as resp:
            assert resp.status == 200
        # Refused, each with its reason, and no sign of life recorded for them.
        before = app[SERVICE].agents["pc1"].last_heartbeat_ns
        for path, body, headers, status, error in [
            ("pc1", {"pending_points": 1}, {}, 401, "missing bearer token (Authorization: Bearer <token>)"),
            ("pc2", {"pending_points": 1}, auth(), 403, "token belongs to agent 'pc1', not 'pc2'"),
            ("pc1", {"pending_points": -1}, auth(), 400, "pending_points: expected an integer in 0..1000000000"),
            ("pc1", {"pending_points": 10**100}, auth(), 400, "pending_points: expected an integer in 0..1000000000"),
            ("pc1", {"pending": 1}, auth(), 400, "body: unknown keys ['pending']"),
            ("pc1", [1], auth(), 400, "body: expected an object, got list"),
        ]:
            async with http.post(f"/api/v1/agents/{path}/heartbeat", json=body, headers=headers) as resp:
                assert resp.status == status and (await resp.json())["error"] == error, (path, body, resp.status)
        for raw in (b"{not json", b'{"pending_points": 1' + b"0" * 5000 + b"}"):
            async with http.post("/api/v1/agents/pc1/heartbeat", data=raw, headers=auth()) as resp:
                assert resp.status == 400 and (await resp.json())["error"].startswith("body is not valid JSON")
        assert app[SERVICE].agents["pc1"].last_heartbeat_ns == before

    asyncio.run(with_collector(tmp_path, scenario))


DAY_NS = 86400 * 10**9


def host_at(time_ns: int, cpu_pct: float = 12.5) -> dict[str, Any]:
    return {"measurement": "host", "tags": {}, "fields": {"cpu_pct": cpu_pct}, "time": time_ns}


def test_points_older_than_the_raw_retention_are_taken_not_stored_and_said_so(
    influx_db: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """InfluxDB 1.x keeps raw points 30 days (the collector sets that): an older point within the 90
    days an agent may post is not stored, while its batch is, and the answer says how many and why;
    one older than 90 days is refused with its batch (400) as before. Nothing acknowledged is then
    refused by InfluxDB."""
    server, database = influx_db
    caplog.set_level(logging.INFO, logger="nettvakt.collector")
    now = time.time_ns()
    good = [host_at(now - 60 * 10**9), host_at(now - 29 * DAY_NS)]
    too_old = [host_at(now - 31 * DAY_NS), host_at(now - 60 * DAY_NS)]

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(1, [too_old[0], good[0], too_old[1], good[1]]), headers=auth()) as resp:
            assert resp.status == 200
            answer = await resp.json()
        assert {k: answer[k] for k in ("accepted", "duplicate", "too_old")} == {"accepted": 2, "duplicate": False, "too_old": 2}, answer
        assert answer["too_old_reason"] == ("older than the raw retention of 30 days (storage.raw_retention_days) less 1 h: "
                                            "InfluxDB would refuse them")
        # A batch of nothing but too-old points: taken, no point queued; and said once per agent in the log.
        async with http.post("/api/v1/ingest", json=batch(2, [host_at(now - 45 * DAY_NS)]), headers=auth()) as resp:
            assert resp.status == 200 and (await resp.json())["too_old"] == 1
        async with http.post("/api/v1/ingest", json=batch(3, [good[0], host_at(now - 95 * DAY_NS)]), headers=auth()) as resp:
            assert resp.status == 400 and (await resp.json())["where"] == "points[1].time"  # beyond any spool: a wrong clock
        await wait_until_async(lambda: app[QUEUE].stats()["queue_points"] == 0, 30, "the queue drained into InfluxDB")
        health = app[SERVICE].health()
        assert health["ingest"]["too_old"] == 3 and health["ingest"]["points"] == 2
        (point,) = collector_points(app, time.time_ns())
        assert point.fields["too_old_points"] == 3.0
        assert app[QUEUE].stats()["rejected_points"] == 0  # nothing acknowledged was refused by InfluxDB

    asyncio.run(with_collector(tmp_path, scenario, storage={"kind": "influxdb_v1", "url": server.url, "database": database}))
    stored = query(server.url, database, 'SELECT "cpu_pct" FROM "host" WHERE "host" = \'pc1\'')
    assert sorted(row["time"] for row in stored) == sorted(p["time"] for p in good)
    told = [r.getMessage() for r in caplog.records if "sent points that are not stored" in r.getMessage()]
    assert len(told) == 1 and "agent pc1" in told[0] and "storage.raw_retention_days" in told[0], told


def test_storage_that_keeps_what_ingest_takes_stores_old_points(tmp_path: Path) -> None:
    """The local store (and InfluxDB kept longer than max_point_age_days) has no shorter reach: a
    40-day-old point is stored like any other."""
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/ingest", json=batch(1, [host_at(time.time_ns() - 40 * DAY_NS)]), headers=auth()) as resp:
            assert resp.status == 200 and await resp.json() == {"seq": 1, "accepted": 1, "duplicate": False, "too_old": 0}
        assert app[QUEUE].stats()["queue_points"] == 1

    asyncio.run(with_collector(tmp_path, scenario))


def test_rate_limit_per_agent_answers_429_with_retry_after(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        for seq in (1, 2):  # the burst
            async with http.post("/api/v1/ingest", json=batch(seq), headers=auth()) as resp:
                assert resp.status == 200
        async with http.post("/api/v1/ingest", json=batch(3), headers=auth()) as resp:
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "4"
            assert (await resp.json())["error"] == "agent 'pc1' is over its request rate; retry after 4 s"
        # Another agent has its own bucket.
        async with http.post("/api/v1/ingest", json=batch(1, agent="pc2", points=[]), headers=auth(OTHER_TOKEN)) as resp:
            assert resp.status == 200
        # The refused batch was not stored; pc2's empty one is remembered (a resend is known) with nothing to write.
        stats = app[QUEUE].stats()
        assert stats["queue_batches"] == 2 and stats["seen_batches"] == 3

    asyncio.run(with_collector(tmp_path, scenario, agent_requests_per_s=0.25, agent_request_burst=2))


def test_no_token_or_secret_in_any_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    influx_token = "influx-v2-secret-token-abcdef"
    monkeypatch.setenv("NETTVAKT_TEST_INFLUX_TOKEN", influx_token)
    caplog.set_level(logging.DEBUG)
    dead_port = free_port()

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        for headers in ({}, auth("not-a-token-" + TOKEN), auth(), auth(OTHER_TOKEN)):
            async with http.post("/api/v1/ingest", json=batch(1), headers=headers) as resp:
                assert resp.status in (200, 401, 403)
            async with http.get("/api/v1/agents/pc1/config", headers=headers) as resp:
                assert resp.status in (200, 401, 403)
        # InfluxDB unreachable: the writer logs its failures (with the v2 token in its headers).
        await asyncio.to_thread(wait_until, lambda: app[WRITER].stats.write_errors >= 2, 20, "write failures")

    asyncio.run(
        with_collector(
            tmp_path,
            scenario,
            storage={
                "kind": "influxdb_v2", "url": f"http://127.0.0.1:{dead_port}", "org": "karlsoy", "bucket": "nettvakt",
                "token": "env:NETTVAKT_TEST_INFLUX_TOKEN", "flush_interval_s": 0.1,
            },
            write_backoff_max_s=0.2,
        )
    )
    lines = [record.getMessage() for record in caplog.records]
    assert any("InfluxDB write failed" in line for line in lines)  # the logs were really captured
    for secret in (TOKEN, OTHER_TOKEN, influx_token, token_hash(TOKEN)):
        assert not [line for line in lines if secret in line]


@pytest.mark.parametrize("ingest_workers", [0, 1], ids=["alone", "with-a-worker"])
def test_https_with_a_self_signed_pair_verified_by_the_agent(tmp_path: Path, ingest_workers: int) -> None:
    """Also where an ingest worker (collector/workers.py) holds the port and speaks TLS on it."""
    cert, key = tmp_path / "tls" / "collector.pem", tmp_path / "tls" / "collector.key"
    args = argparse.Namespace(cert=str(cert), key=str(key), name=["localhost", "127.0.0.1"], days=30, force=False)
    assert cmd_collector_tls(args) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert cmd_collector_tls(args) == 2  # never overwrites a pair silently
    inv = inventory(tmp_path, tls_cert=str(cert), tls_key=f"file:{key}", ingest_workers=ingest_workers)

    async def scenario() -> None:
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(inv, "127.0.0.1:0", ready.set_result))
        try:
            url = await asyncio.wait_for(asyncio.shield(ready), 30)
            assert url.startswith("https://127.0.0.1:")
            agent = Agent(AgentSettings(agent_id="pc1", collector_url=url, token=TOKEN, spool_path=tmp_path / "spool.sqlite3", ca_file=cert))
            try:
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=agent._ssl()), headers=auth()) as http:
                    async with http.post(f"{url}/api/v1/ingest", json=batch(1)) as resp:
                        assert resp.status == 200
            finally:
                agent.spool.close()
            # Without the pinned certificate the agent refuses to talk (no verify_ssl=False anywhere).
            async with aiohttp.ClientSession(headers=auth()) as http:
                with pytest.raises(aiohttp.ClientConnectorCertificateError):
                    await http.post(f"{url}/api/v1/ingest", json=batch(2))
            # Plain HTTP is not served on the TLS port.
            async with aiohttp.ClientSession(headers=auth()) as http:
                with pytest.raises(aiohttp.ClientError):
                    await http.post(url.replace("https://", "http://") + "/api/v1/ingest", json=batch(3))
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)

    asyncio.run(scenario())
    queue = DurableQueue(tmp_path / "data" / "queue.sqlite3")
    try:
        assert queue.stats()["queue_batches"] == 1  # only the verified agent's batch
    finally:
        queue.close()


def test_health_says_what_is_wrong(tmp_path: Path) -> None:
    dead_port = free_port()

    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.get("/api/v1/health") as resp:
            assert resp.status == 200
            assert (await resp.json())["problems"] == []
        # Batches of ~1 kB each into a 2.5 kB queue: the oldest are dropped, and counted.
        big = [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": float(k)}, "time": NOW_NS + k} for k in range(12)]
        for seq in range(1, 5):
            async with http.post("/api/v1/ingest", json=batch(seq, big), headers=auth()) as resp:
                assert resp.status == 200
        await asyncio.to_thread(wait_until, lambda: app[WRITER].stats.write_errors >= 1, 20, "a failed write")
        async with http.get("/api/v1/health") as resp:
            assert resp.status == 200  # still serving ingest: not an error status
            health = await resp.json()
        assert health["status"] == "degraded"
        failing, dropped = health["problems"]
        assert failing.startswith("InfluxDB writes failing (") and "ClientConnectorError" in failing
        assert dropped.startswith("the queue hit its bound of 2500 bytes: oldest points dropped (")
        assert health["queue"]["dropped_points"] > 0 and health["queue"]["queue_age_s"] >= 0

    asyncio.run(
        with_collector(
            tmp_path,
            scenario,
            storage={"kind": "influxdb_v1", "url": f"http://127.0.0.1:{dead_port}", "database": "x", "flush_interval_s": 0.1},
            queue_max_bytes=2500,
            write_backoff_max_s=30,
        )
    )


def test_self_monitoring_point_has_queue_age_and_agents_down(tmp_path: Path) -> None:
    async def scenario(app: web.Application, http: aiohttp.ClientSession) -> None:
        hour_old = [{"measurement": "host", "tags": {}, "fields": {"cpu_pct": 1.0}, "time": time.time_ns() - 3600 * 10**9}]
        async with http.post("/api/v1/ingest", json=batch(1, hour_old), headers=auth()) as resp:
            assert resp.status == 200
        app[SERVICE].evaluate_liveness(time.time_ns())
        (point,) = await asyncio.to_thread(collector_points, app, time.time_ns())
        assert point.measurement == "collector" and dict(point.tags) == {"collector": "main"}
        assert point.fields["queue_points"] >= 1.0 and point.fields["queue_age_s"] >= 0.0
        # pc1's only point is an hour old: down; pc2 has never reported: waiting, neither up nor down.
        assert (point.fields["agents_down"], point.fields["agents_up"], point.fields["agents_waiting"]) == (1.0, 0.0, 1.0)
        assert {"points_in", "batches_in", "written_points", "dropped_points", "rejected_points", "rate_limited"} <= set(point.fields)

    asyncio.run(with_collector(tmp_path, scenario))


def write_agents(tmp_path: Path, agents: list[tuple[str, str, str]]) -> Path:
    """An inventory of one site, radhus, and these agents: (id, site, token)."""
    built = InventoryBuilder(tmp_path)
    for agent_id, site, token in agents:
        built.agent(agent_id, token, site=site)
    return built.write()


def test_inventory_reloads_on_change_and_sighup_and_refuses_a_bad_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_agents(tmp_path, [("pc1", "radhus", TOKEN)])
    caplog.set_level(logging.INFO, logger="nettvakt.collector")

    async def status_for(http: aiohttp.ClientSession, token: str) -> int:
        async with http.get("/api/v1/agents/pc2/config", headers=auth(token)) as resp:
            return resp.status

    async def scenario() -> None:
        app = create_app(load_inventory(path), inventory_path=path)
        reloader = app[RELOADER]
        reloader.poll_s = 0.05
        async with serving(app) as url, aiohttp.ClientSession(url) as http:
            assert await status_for(http, OTHER_TOKEN) == 401
            # The file changes: pc2 is known without a restart.
            write_agents(tmp_path, [("pc1", "radhus", TOKEN), ("pc2", "radhus", OTHER_TOKEN)])
            await asyncio.to_thread(wait_until, lambda: reloader.reloads == 1, 10, "reload on file change")
            assert await status_for(http, OTHER_TOKEN) == 200
            # A bad file is refused with its reason; the inventory in force stays.
            write_agents(tmp_path, [("pc1", "radhus", TOKEN), ("pc2", "skole", OTHER_TOKEN)])
            await asyncio.to_thread(wait_until, lambda: reloader.refused == 1, 10, "bad inventory refused")
            assert await status_for(http, OTHER_TOKEN) == 200
            assert "agent 'pc2': site: no site with id 'skole'" in (reloader.last_error or "")
            health = await get_health(http)
            assert health["status"] == "degraded" and health["inventory"]["refused"] == 1, health
            assert any("inventory.toml was changed but refused" in p and "no site with id 'skole'" in p for p in health["problems"]), health
            # SIGHUP, with the file watcher slowed down so only the signal can explain the reload:
            # once it has looked once more, its next sleep is the long one.
            reloader.poll_s = 3600
            mark = reloader.checks
            await asyncio.to_thread(wait_until, lambda: reloader.checks > mark, 10, "the watcher's next round")
            write_agents(tmp_path, [("pc1", "radhus", TOKEN)])
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.to_thread(wait_until, lambda: reloader.reloads == 2, 10, "reload on SIGHUP")
            assert await status_for(http, OTHER_TOKEN) == 401
            health = await get_health(http)
            assert health["inventory"]["last_error"] is None and not any("inventory" in p for p in health["problems"]), health

    asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    refused = [m for m in messages if m.startswith("inventory reload (file changed) refused")]
    assert len(refused) == 1 and "agent 'pc2': site: no site with id 'skole'" in refused[0]
    assert any(m.startswith("inventory reloaded (SIGHUP): 1 sites, 1 agents") for m in messages)


async def get_health(http: aiohttp.ClientSession) -> dict[str, Any]:
    async with http.get("/api/v1/health") as resp:
        assert resp.status == 200
        return await resp.json()


def test_a_part_that_fails_to_take_a_reloaded_inventory_is_named_in_health(tmp_path: Path) -> None:
    """One part failing does not stop the others taking the new inventory, and it is not only in the log."""
    path = write_agents(tmp_path, [("pc1", "radhus", TOKEN)])

    async def broken_part(old: Inventory, new: Inventory) -> None:
        raise RuntimeError("cannot take it")

    async def scenario() -> None:
        app = create_app(load_inventory(path), inventory_path=path)
        reloader = app[RELOADER]
        async with serving(app) as url, aiohttp.ClientSession(url) as http:
            reloader.hooks.insert(0, broken_part)
            write_agents(tmp_path, [("pc1", "radhus", TOKEN), ("pc2", "radhus", OTHER_TOKEN)])
            assert await reloader.reload("test") is True
            # The parts after the broken one took it: pc2 is known.
            async with http.get("/api/v1/agents/pc2/config", headers=auth(OTHER_TOKEN)) as resp:
                assert resp.status == 200
            health = await get_health(http)
            assert health["status"] == "degraded" and health["inventory"]["parts_not_applied"] == [broken_part.__qualname__], health
            assert any(f"the last inventory reload failed in {broken_part.__qualname__}" in p for p in health["problems"]), health
            # The next reload that every part takes clears it.
            reloader.hooks.remove(broken_part)
            assert await reloader.reload("test") is True
            health = await get_health(http)
            assert health["inventory"]["parts_not_applied"] == [] and health["status"] == "ok", health

    asyncio.run(scenario())


def test_a_restart_keeps_every_agents_state(tmp_path: Path) -> None:
    """Liveness survives a collector restart (data_dir/liveness.json): an agent up before is up at
    once after, one down stays down, one never heard from is still waiting; nothing flips."""
    inv = inventory(tmp_path)

    async def first(app: web.Application, http: aiohttp.ClientSession) -> None:
        async with http.post("/api/v1/agents/pc1/heartbeat", json={"pending_points": 0}, headers=auth()) as resp:
            assert resp.status == 200
        assert app[SERVICE].agent_verdicts(time.time_ns()) == {"pc1": True, "pc2": None}

    asyncio.run(with_collector(tmp_path, first))
    saved = json.loads((tmp_path / "data" / "liveness.json").read_text(encoding="utf-8"))
    assert saved["agents"]["pc1"]["last_heartbeat_ns"] > 0 and saved["agents"]["pc2"]["last_heartbeat_ns"] == 0

    async def second(app: web.Application, http: aiohttp.ClientSession) -> None:
        service = app[SERVICE]
        now = time.time_ns()
        assert service.agent_verdicts(now) == {"pc1": True, "pc2": None}  # no "down" or "waiting" for pc1 after the restart
        points = {p.tags["host"]: p.fields for p in service.evaluate_liveness(now) if p.tags.get("kind") == "agent"}
        assert points["pc1"]["up"] == 1.0 and "up" not in points["pc2"] and points["pc2"]["waiting_s"] > 0
        # Later, pc1's silence is judged from its last heartbeat before the restart, as it would have been.
        assert service.agent_verdicts(now + 60 * 10**9) == {"pc1": False, "pc2": None}
        async with http.get("/api/v1/health") as resp:
            agents = (await resp.json())["agents"]
        assert (agents["pc1"]["state"], agents["pc2"]["state"], agents["pc2"]["up"]) == ("up", "waiting for first report", None)

    asyncio.run(with_collector(tmp_path, second))
    assert inv.agent[0].id == "pc1"
