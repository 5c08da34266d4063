"""The collector's cleanup_ctx for alerting: build the service at startup, run it, close it.

collector/app.py appends `alerting_context()` when the inventory has alert rules or channels
and feeds points to `app[ALERTS].observe`; alert points go to the durable local queue through
`store_local`, so history is kept while InfluxDB is down and messages never wait for it.
Rules, windows, routes and channels follow inventory reloads (SIGHUP, file change).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from agent.points import Point
from collector.alerting.service import AlertService
from collector.config import Inventory

ALERTS = web.AppKey("alerts", AlertService)


def alerting_context(*, interval_s: float = 1.0, **engine_overrides: object) -> Callable[[web.Application], AsyncIterator[None]]:
    """`engine_overrides` replace [alerting] settings (tests: `group_wait_s=0`)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Imported here: collector.app imports this module to install the context.
        from collector.app import INVENTORY, RELOADER, store_local

        async def emit(points: list[Point]) -> None:
            await store_local(app, "alerting", points)

        service = AlertService.from_inventory(app[INVENTORY], emit=emit, **engine_overrides)
        service.interval_s = interval_s
        app[ALERTS] = service

        async def follow(old: Inventory, new: Inventory) -> None:
            await service.reload(new, **engine_overrides)

        async def reload_refused(problem: str) -> None:
            # The file on disk is not what runs: the people who edit it should know without reading logs.
            await service.announce(
                rule="inventory_reload_failed", site="", subject="collector", severity="warning",
                title=f"inventory.toml not applied: {problem}"[:300],
                body=f"The collector refused the changed inventory and keeps running on the previous one.\n\n{problem}\n\n"
                "Fix the file (nettvakt check shows every problem); it is applied as soon as it validates.",
            )

        reloader = app.get(RELOADER)
        if reloader is not None:
            reloader.hooks.append(follow)
            reloader.on_refused.append(reload_refused)
        task = asyncio.create_task(service.run(), name="alerting")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.close()

    return ctx
