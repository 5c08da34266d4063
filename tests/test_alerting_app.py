"""Alerting inside the real collector app: a device going down reaches a real SMTP server, and its
`alert` point lands in the durable queue, with storage "local" (no InfluxDB at all)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.points import Point
from collector.alerting.context import ALERTS, alerting_context
from collector.app import QUEUE, create_app
from collector.config import parse_inventory
from collector.services import wait_until_async


def test_collector_app_alerts_without_influxdb(tmp_path: Path, smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    smtp_port = inbox.port
    inventory = parse_inventory(
        {
            "collector": {"data_dir": str(tmp_path / "data")},
            "storage": {"kind": "local"},
            "site": [{"id": "radhus", "name": "Rådhuset"}],
            "device": [{"id": "sw-radhus", "name": "Kjernesvitsj", "site": "radhus", "host": "10.0.0.2",
                        "hardware": {"kind": "switch", "lifetime_years": 8}}],
            "channel": [{"id": "vakt", "kind": "email", "to": ["vakt@karlsoy.example"], "smtp_host": "127.0.0.1", "smtp_port": smtp_port}],
            "route": [{"channels": ["vakt"]}],
            "alert": [{"id": "device-down", "kind": "device_down", "severity": "critical"}],
        },
        tmp_path / "inventory.toml",
    )

    async def scenario() -> list[Point]:
        app = create_app(inventory, extra_contexts=[alerting_context(group_wait_s=0, interval_s=0.05)])
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
