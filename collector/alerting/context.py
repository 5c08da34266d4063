"""The collector's cleanup_ctx for alerting: build the service at startup, run it, close it.

collector/app.py appends `alerting_context(inventory.alert, inventory.maintenance, inventory.alerting)` and
feeds points to `app[ALERTS].observe`; alert points go to the durable local queue through
`store_local`, so history is kept while InfluxDB is down and messages never wait for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from aiohttp import web

from agent.points import Point
from collector.alerting.config import AlertingSettings, AlertRule, MaintenanceWindow
from collector.alerting.service import AlertService

ALERTS = web.AppKey("alerts", AlertService)


def alerting_context(
    rules: Sequence[AlertRule],
    maintenance: Sequence[MaintenanceWindow],
    settings: AlertingSettings = AlertingSettings(),
    *,
    interval_s: float = 1.0,
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        # Imported here: collector.app imports this module to install the context.
        from collector.app import INVENTORY, store_local

        async def emit(points: list[Point]) -> None:
            await store_local(app, "alerting", points)

        service = AlertService.from_inventory(app[INVENTORY], rules, maintenance, emit=emit, **settings.engine_options())
        service.interval_s = interval_s
        app[ALERTS] = service
        task = asyncio.create_task(service.run(), name="alerting")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await service.close()

    return ctx
