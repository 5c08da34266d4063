"""The collector's cleanup_ctx for alerting: build the service at startup, run it, close it.

`create_app(alerting=AlertingOptions(...))` installs `alerting_context` when the inventory has
alert rules or channels. The engine subscribes to every committed point (the collector service's
one subscriber path, agents' and the collector's own alike); its alert points go to the durable
local queue through the same path, so history is kept while InfluxDB is down and messages never
wait for it. Rules, windows, routes and channels follow inventory reloads (SIGHUP, file change).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from agent.contract import AGENT_MEASUREMENTS
from agent.points import Point
from collector.alerting.service import AlertService
from collector.appkeys import ALERTS, INVENTORY, RELOADER, SERVICE
from collector.config import Inventory
from collector.logins import SharedAccountWatch
from collector.service import is_agent_source

# The queue source of the engine's own alert points; they are not input to it.
ALERTING_SOURCE = "alerting"


@dataclass(frozen=True)
class AlertingOptions:
    """How the collector runs its alert engine: how often it evaluates, and [alerting] settings replaced (tests: group_wait_s=0)."""

    interval_s: float = 1.0
    engine_overrides: Mapping[str, object] = field(default_factory=dict)


def alerting_context(options: AlertingOptions) -> Callable[[web.Application], AsyncIterator[None]]:
    overrides = dict(options.engine_overrides)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        collector = app[SERVICE]

        async def emit(points: list[Point]) -> None:
            await collector.store_local(ALERTING_SOURCE, points)

        service = AlertService.from_inventory(app[INVENTORY], emit=emit, **overrides)
        service.interval_s = options.interval_s
        app[ALERTS] = service
        # Logins to shared accounts are one-off events, told as the agents' points are committed.
        shared_logins = SharedAccountWatch(app[INVENTORY], lambda: collector.user_names, service.announce, emit)

        def observe(source: str, points: list[Point]) -> None:
            if source == ALERTING_SOURCE:
                return
            if is_agent_source(source):
                # Ingest already refuses the rest; this keeps it so should that ever change: device,
                # interface, availability and alert state come from the pollers and the engine only.
                points = [p for p in points if p.measurement in AGENT_MEASUREMENTS]
                shared_logins.observe(points)
            service.observe(points)

        async def follow(old: Inventory, new: Inventory) -> None:
            await service.reload(new, **overrides)
            shared_logins.inventory = new

        async def reload_refused(problem: str) -> None:
            # The file on disk is not what runs: the people who edit it should know without reading logs.
            await service.announce(
                rule="inventory_reload_failed", site="", subject="collector", severity="warning",
                title=f"inventory.toml not applied: {problem}"[:300],
                body=f"The collector refused the changed inventory and keeps running on the previous one.\n\n{problem}\n\n"
                "Fix the file (nettvakt check shows every problem); it is applied as soon as it validates.",
            )

        collector.subscribers.append(observe)
        reloader = app.get(RELOADER)
        if reloader is not None:
            reloader.hooks.append(follow)
            reloader.on_refused.append(reload_refused)
        task = asyncio.create_task(service.run(), name="alerting")
        yield
        collector.subscribers.remove(observe)  # points made while the rest shuts down find a closed engine otherwise
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await shared_logins.close()
        await service.close()

    return ctx
