"""The agent runner against a small aiohttp collector on loopback: hardware facts and services.

The stand-in collector serves a configuration (with the optional `services` and `hardware`
keys) and acknowledges every batch, recording the points, so the test sees exactly what
the agent would send to the real collector.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from agent.hwfacts import machine_age
from agent.points import Point
from agent.runner import Agent, AgentConfigError, AgentSettings, RemoteConfig
from agent.spool import Spool
from collector.app import SERVICE, create_app
from collector.appkeys import QUEUE
from collector.influxql import query
from inventories import InventoryBuilder
from serving import serving

TOKEN = "runner-test-token"


def make_app(config: dict[str, Any], received: list[dict[str, Any]]) -> web.Application:
    async def get_config(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        return web.json_response(config)

    async def ingest(request: web.Request) -> web.Response:
        body = await request.json()
        received.extend(body["points"])
        return web.json_response({"accepted": len(body["points"]), "duplicate": False})

    app = web.Application()
    app.router.add_get("/api/v1/agents/{agent}/config", get_config)
    app.router.add_post("/api/v1/ingest", ingest)
    return app


async def run_agent_until(config: dict[str, Any], tmp_path: Path, done: Any, settings: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    received: list[dict[str, Any]] = []
    async with serving(make_app(config, received), shutdown_timeout=0.1) as url:
        agent = Agent(
            AgentSettings(
                agent_id=config["agent"], collector_url=url, token=TOKEN,
                spool_path=tmp_path / "spool.sqlite3", send_interval_s=0.1, **(settings or {}),
            )
        )
        task = asyncio.create_task(agent.run())
        try:
            async with asyncio.timeout(60):
                while not done(received):
                    if task.done():
                        task.result()  # the agent died: raise its error here
                    await asyncio.sleep(0.1)  # how often the wait looks; the condition ends it
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return received


def test_hardware_and_services_points_from_the_runner(tmp_path: Path) -> None:
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        config = {
            "agent": "plo-pc", "site": "helse", "interval_s": 0.5, "probes": [],
            "services": ["sleep", "no-such-service-nettvakt"],
            "hardware": {"kind": "pc", "purchased": "2021-03-01"},
        }

        def done(points: list[dict[str, Any]]) -> bool:
            services = [p for p in points if p["measurement"] == "service"]
            checks = [p for p in services if "kind" not in p["tags"]]
            listens = [p for p in services if p["tags"].get("kind") == "listen"]
            return any(p["measurement"] == "hardware" for p in points) and len(checks) >= 4 and bool(listens)

        points = asyncio.run(run_agent_until(config, tmp_path, done))
    finally:
        sleeper.kill()
        sleeper.wait()
    hardware = [p for p in points if p["measurement"] == "hardware"]
    assert len(hardware) == 1  # once at start; the next one is an hour away
    assert hardware[0]["tags"] == {"site": "helse", "host": "plo-pc", "kind": "pc"}
    fields = hardware[0]["fields"]
    assert fields["age_source"] == "purchased" and fields["purchased"] == "2021-03-01"
    expected_age = (dt.date.today() - dt.date(2021, 3, 1)).days / 365.25
    assert fields["age_years"] == pytest.approx(expected_age, abs=0.01)
    assert fields["cpu_cores"] >= 1 and fields["mem_total_bytes"] > 0

    services = {p["tags"]["service"]: p["fields"] for p in points if p["measurement"] == "service" and "kind" not in p["tags"]}
    assert services["sleep"]["up"] == 1.0 and services["sleep"]["status"].startswith("running")
    assert services["no-such-service-nettvakt"] == {"up": 0.0, "status": "not found"}
    # Services are checked every interval, not once.
    assert sum(1 for p in points if p["measurement"] == "service" and p["tags"]["service"] == "sleep") >= 2
    listening = [p for p in points if p["measurement"] == "service" and p["tags"].get("kind") == "listen"]
    assert listening and all(p["tags"]["site"] == "helse" and p["fields"]["listen"] for p in listening)


def test_hardware_is_repeated_on_its_own_schedule_and_without_inventory_keys(tmp_path: Path) -> None:
    # An older collector sends neither services nor hardware: facts still come, aged by the machine itself.
    config = {"agent": "plo-pc", "site": "helse", "interval_s": 30, "probes": []}
    points = asyncio.run(
        run_agent_until(
            config, tmp_path,
            lambda pts: sum(p["measurement"] == "hardware" for p in pts) >= 2
            and any(p["tags"].get("kind") == "listen" for p in pts)
            and any(p["measurement"] == "host" for p in pts),
            {"hardware_interval_s": 0.3},
        )
    )
    hardware = [p for p in points if p["measurement"] == "hardware"]
    assert hardware[0]["tags"] == {"site": "helse", "host": "plo-pc"}
    # No service checks without a services list; the listening-ports map comes regardless.
    assert not any(p["measurement"] == "service" and p["tags"].get("kind") != "listen" for p in points)
    assert any(p["measurement"] == "service" and p["tags"].get("kind") == "listen" for p in points)
    assert hardware[0]["time"] < hardware[1]["time"]
    # The spool reports on itself in the host point, so the collector records what the bound dropped.
    host = next(p for p in points if p["measurement"] == "host")["fields"]
    assert host["spool_dropped_points"] == 0.0 and host["spool_pending_points"] >= 0 and host["spool_bytes"] > 0
    if "age_source" in hardware[0]["fields"]:  # this machine may have neither a BIOS date nor installer logs
        assert hardware[0]["fields"]["age_source"] in ("bios_date", "os_installed")


TODAY = dt.date(2026, 6, 30)


@pytest.mark.parametrize(
    ("facts", "purchased", "expected"),
    [
        # The inventory's purchase date beats every firmware clue.
        ({"manufactured_estimate": "2015-01-01", "os_installed": "2020-01-01"}, "2022-06-30",
         {"age_years": 4.0, "age_source": "purchased", "purchased": "2022-06-30"}),
        ({"manufactured_estimate": "2016-06-30", "os_installed": "2020-01-01"}, None,
         {"age_years": 10.0, "age_source": "bios_date"}),
        # A VM has a bios_date (its hypervisor's) but no manufactured_estimate: the OS install date counts.
        ({"bios_date": "2014-04-01", "virtual": 1.0, "os_installed": "2024-06-30"}, None,
         {"age_years": 2.0, "age_source": "os_installed"}),
        # A purchase date the inventory got wrong (in the future) is skipped, not a negative age.
        ({"manufactured_estimate": "2016-06-30"}, "2030-01-01", {"age_years": 10.0, "age_source": "bios_date"}),
        ({"cpu_cores": 4}, "not a date", {}),
    ],
)
def test_machine_age_sources(facts: dict[str, Any], purchased: str | None, expected: dict[str, Any]) -> None:
    assert machine_age(facts, purchased, TODAY) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"services": "sleep"}, "services: expected a list of service names"),
        ({"services": ["ok", ""]}, "services: expected a list of service names"),
        ({"hardware": ["pc"]}, "hardware: expected an object"),
        ({"hardware": {"purchased": 2021}}, "hardware.purchased: expected a string"),
        ({"heartbeat_s": 0}, "heartbeat_s: expected a positive number, got 0"),
        ({"heartbeat_s": "10"}, "heartbeat_s: expected a positive number, got '10'"),
    ],
)
def test_bad_optional_config_keys_are_named(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(AgentConfigError, match=message):
        RemoteConfig.from_json({"agent": "a", "site": "s", "interval_s": 30, **extra})


def test_heartbeats_reach_the_real_collector_and_keep_the_agent_live_between_reports(tmp_path: Path) -> None:
    """The agent's heartbeat against the collector's own app: live between rare reports, down soon after it stops."""
    # Host metrics once an hour: only the heartbeat (0.5 s) says it is alive in between.
    inventory = InventoryBuilder(tmp_path).site("helse").agent("plo-pc", TOKEN, interval_s=3600, heartbeat_s=0.5).parse()

    async def scenario() -> tuple[int, int | None, float, float]:
        app = create_app(inventory)
        async with serving(app, shutdown_timeout=0.1) as url:
            service = app[SERVICE]
            agent = Agent(AgentSettings(agent_id="plo-pc", collector_url=url, token=TOKEN,
                                        spool_path=tmp_path / "spool.sqlite3", send_interval_s=0.1))
            task = asyncio.create_task(agent.run())
            try:
                state = service.agents["plo-pc"]
                # Until its start-up reports (host, hardware, listening) are over 2 s old: longer than
                # 3 heartbeats, so only the heartbeats can keep it live.
                async with asyncio.timeout(30):
                    while agent.heartbeats < 6 or not state.last_seen_ns or time.time_ns() - state.last_seen_ns < 2.5e9:
                        await asyncio.sleep(0.1)  # how often the wait looks; the condition ends it
                beats, pending = agent.heartbeats, state.pending_points
                # Seconds since the last report's newest point vs since the last heartbeat.
                now = time.time_ns()
                since_data, since_beat = (now - state.last_seen_ns) / 1e9, (now - state.last_heartbeat_ns) / 1e9
                assert service.agent_verdicts(now)["plo-pc"] is True
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            stopped = time.time_ns()
            # 3 heartbeats of 0.5 s after its last one, the agent is down.
            assert service.agent_verdicts(stopped + int(1.0e9))["plo-pc"] is True
            assert service.agent_verdicts(stopped + int(2.0e9))["plo-pc"] is False
        return beats, pending, since_data, since_beat

    beats, pending, since_data, since_beat = asyncio.run(scenario())
    assert beats >= 6 and pending is not None and pending >= 0
    assert since_beat < 1.0 and since_data > 2.0, (since_beat, since_data)


def test_the_agent_counts_and_says_what_the_real_collector_did_not_store_and_keeps_the_rest(
    influx_db: tuple, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Back after more than a month offline: its spool holds a point older than InfluxDB's raw
    retention beside fresh ones. The collector takes the batch and says one was too old; the agent
    counts it and logs why, drops nothing as refused, and the fresh point is in InfluxDB."""
    server, database = influx_db
    inventory = InventoryBuilder(tmp_path).influxdb(server.url, database).site("helse").agent("plo-pc", TOKEN, interval_s=3600).parse()
    caplog.set_level(logging.WARNING, logger="nettvakt.agent")
    now = time.time_ns()
    old, fresh = now - 40 * 86400 * 10**9, now - 3600 * 10**9
    spool = Spool(tmp_path / "spool.sqlite3", "plo-pc")
    spool.add([Point("host", {}, {"cpu_pct": 40.0}, old), Point("host", {}, {"cpu_pct": 41.0}, fresh)])
    spool.close()

    async def scenario() -> tuple[int, int, int]:
        app = create_app(inventory, alerting=None)
        async with serving(app, shutdown_timeout=0.1) as url:
            agent = Agent(AgentSettings(agent_id="plo-pc", collector_url=url, token=TOKEN,
                                        spool_path=tmp_path / "spool.sqlite3", send_interval_s=0.1))
            task = asyncio.create_task(agent.run())
            try:
                async with asyncio.timeout(60):
                    while agent.too_old_points == 0 or app[QUEUE].stats()["queue_points"] or agent.spool.pending():
                        if task.done():
                            task.result()
                        await asyncio.sleep(0.1)  # how often the wait looks; the condition ends it
                return agent.too_old_points, agent.spool.dropped(), app[SERVICE].too_old_points
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    told, dropped, counted = asyncio.run(scenario())
    assert (told, dropped, counted) == (1, 0, 1)
    stored = query(server.url, database, "SELECT \"cpu_pct\" FROM \"host\" WHERE \"host\" = 'plo-pc' AND \"cpu_pct\" >= 40")
    assert [(row["time"], row["cpu_pct"]) for row in stored] == [(fresh, 41.0)]
    (warning,) = [r.getMessage() for r in caplog.records if "did not store" in r.getMessage()]
    assert "did not store 1 of its points, older than the raw retention of 30 days" in warning, warning
