"""Alerting inside the real collector app: a device going down reaches a real SMTP server, and its
`alert` point lands in the durable queue, with storage "local" (no InfluxDB at all)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agent.points import Point
from collector.alerting.context import AlertingOptions
from collector.app import create_app
from collector.appkeys import ALERTS, QUEUE
from collector.config import Inventory
from collector.localservers import wait_until_async
from inventories import InventoryBuilder
from serving import serving


def test_collector_app_alerts_without_influxdb(tmp_path: Path, smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    smtp_port = inbox.port
    inventory = (
        InventoryBuilder(tmp_path)
        .storage("local")
        .device("sw-radhus", name="Kjernesvitsj", host="10.0.0.2", hardware={"kind": "switch", "lifetime_years": 8})
        .email("vakt", smtp_port)
        .route("vakt")
        .alert("device-down", "device_down", severity="critical")
        .parse()
    )

    async def scenario() -> list[Point]:
        app = create_app(inventory, alerting=AlertingOptions(interval_s=0.05, engine_overrides={"group_wait_s": 0}))
        runner = web.AppRunner(app)
        await runner.setup()
        try:
            app[ALERTS].observe([Point("availability", {"site": "radhus", "device": "sw-radhus", "kind": "device"}, {"up": 0.0})])
            await wait_until_async(lambda: inbox.subjects, 10, "the alert mail")
            # The point is stored by the same tick that sent the mail; wait for it the same bounded way.
            deadline = time.monotonic() + 10
            while True:
                batches = await asyncio.to_thread(app[QUEUE].peek, 100)
                points = [p for b in batches for p in b.points if p.measurement == "alert"]
                if points or time.monotonic() > deadline:
                    return points
                await asyncio.sleep(0.02)
        finally:
            await runner.cleanup()

    points = asyncio.run(scenario())
    assert inbox.subjects == ["[AKTIV] Kjernesvitsj svarer ikke på SNMP"]
    assert (tmp_path / "data" / "alerts.json").exists()  # state for the next start
    assert [(p.tags["rule"], p.tags["state"], p.fields["active"]) for p in points] == [("device-down", "firing", 1.0)]


# --- restarts change nothing people see ---------------------------------------------------------
def restart_inventory(tmp_path: Path, smtp_port: int) -> Inventory:
    """Two agents behind Hansnes' line and one at radhus, each heartbeating every second with its id as token."""
    built = InventoryBuilder(tmp_path).alerting(recovery_grace_s=0).site("radhus").site("hansnes", "Hansnes")
    for agent, site in (("pc-h1", "hansnes"), ("pc-h2", "hansnes"), ("pc-r1", "radhus")):
        built.agent(agent, agent, site=site, heartbeat_s=1.0)
    built.email("vakt", smtp_port).route("vakt")
    built.alert("agent-silent", "agent_silent", severity="critical").alert("site-down", "site_unreachable", severity="critical")
    return built.parse()


class Collector:
    """The collector app on a loopback port, and agents that heartbeat to it while they are 'alive'."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.alive: set[str] = set()

    async def __aenter__(self) -> "Collector":
        self.app = create_app(self.inventory, alerting=AlertingOptions(interval_s=0.05, engine_overrides={"group_wait_s": 0}))
        self.served = AsyncExitStack()
        self.url = await self.served.enter_async_context(serving(self.app))
        self.http = aiohttp.ClientSession()
        self.beats = asyncio.create_task(self._beat())
        return self

    async def _beat(self) -> None:
        while True:
            for agent in sorted(self.alive):
                async with self.http.post(f"{self.url}/api/v1/agents/{agent}/heartbeat", json={},
                                          headers={"Authorization": f"Bearer {agent}"}) as resp:
                    assert resp.status == 200
            await asyncio.sleep(0.1)  # the agents' cadence (well inside their 1 s heartbeat), not a wait for anything

    async def judged(self, rounds: int = 40) -> None:
        """Wait until the engine has evaluated `rounds` more times and liveness has run a few rounds too."""
        mark = self.app[ALERTS].evaluations
        await wait_until_async(lambda: self.app[ALERTS].evaluations >= mark + rounds, 20, f"{rounds} more evaluations")

    async def __aexit__(self, *_: object) -> None:
        self.beats.cancel()
        await asyncio.gather(self.beats, return_exceptions=True)
        await self.http.close()
        await self.served.aclose()


def test_restarts_change_nothing_people_see(tmp_path: Path, smtp_inbox: Callable[..., Any], monkeypatch: Any) -> None:
    """(a) a restart in a quiet period sends nothing; (b) a restart during a site outage that goes
    on sends nothing; (c) an outage that ended while the collector was down gives one 'resolved'."""
    import collector.app as app_module

    monkeypatch.setattr(app_module, "HOUSEKEEPING_INTERVAL_S", 0.1)
    inbox = smtp_inbox()
    inventory = restart_inventory(tmp_path, inbox.port)
    everyone = {"pc-h1", "pc-h2", "pc-r1"}

    async def scenario() -> None:
        # (a) Quiet, then a restart, quiet again: nobody hears anything.
        async with Collector(inventory) as c:
            c.alive = set(everyone)
            await c.judged()
        async with Collector(inventory) as c:
            c.alive = set(everyone)
            await c.judged()
        assert inbox.subjects == []
        # The line to Hansnes drops: one message for the site.
        async with Collector(inventory) as c:
            c.alive = set(everyone)
            await c.judged()
            c.alive = {"pc-r1"}
            await wait_until_async(lambda: inbox.subjects, 20, "the site alert")
            await c.judged()
        assert inbox.subjects == ["[AKTIV] Hansnes utilgjengelig siden " + inbox.subjects[0].split("siden ")[1]]
        assert inbox.subjects[0].endswith(", 2 maskiner bak den")
        # (b) The collector restarts while Hansnes is still cut off: nothing new.
        async with Collector(inventory) as c:
            c.alive = {"pc-r1"}
            await c.judged()
        assert len(inbox.subjects) == 1
        # (c) Hansnes came back while the collector was down: exactly one "resolved" after the restart.
        async with Collector(inventory) as c:
            c.alive = set(everyone)
            await wait_until_async(lambda: len(inbox.subjects) > 1, 20, "the resolved message")
            await c.judged()
        assert inbox.subjects[1:] == ["[LØST] Hansnes er tilgjengelig igjen"]

    asyncio.run(scenario())
