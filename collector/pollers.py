"""Schedules the SNMP pollers of every inventory device, each on its own interval.

Points go to the durable queue like agent points; each poll also yields an `availability`
point for the device, so outage history covers network gear too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from agent.cadence import run_every
from agent.points import Point, now_ns
from agent.secrets import SecretError
from collector.config import Device, Inventory
from collector.snmp.poller import DevicePoller
from collector.snmp.session import SnmpAuth, SnmpSession, default_semaphore

log = logging.getLogger("nettvakt.snmp")

# Devices' first polls spread over this much of the start, so they do not all ask in one millisecond.
FIRST_POLL_SPREAD_S = 1.0


def snmp_auth(inventory: Inventory, device: Device) -> SnmpAuth:
    """SnmpAuth from the inventory, with secrets resolved; raises SecretError naming the reference."""
    snmp = device.snmp
    assert snmp is not None
    if snmp.version in ("1", "2c"):
        return SnmpAuth(version=snmp.version, community=inventory.secret(snmp.community or ""))
    v3 = snmp.v3
    assert v3 is not None
    return SnmpAuth(
        version="3",
        user=v3.user,
        auth_protocol=v3.auth_protocol,
        auth_key=inventory.secret(v3.auth_key) if v3.auth_key else None,
        priv_protocol=v3.priv_protocol,
        priv_key=inventory.secret(v3.priv_key) if v3.priv_key else None,
    )


def availability_point(device: Device, points: list[Point], time_ns: int) -> Point:
    up = next((p.fields.get("up") for p in points if p.measurement == "device"), 0.0)
    return Point("availability", {"site": device.site, "device": device.id, "kind": "device"}, {"up": float(up or 0.0)}, time_ns)


def poll_phases(inventory: Inventory) -> dict[str, float]:
    """Each SNMP device's phase within its interval (seconds after the start): the devices evenly
    spread, in inventory order, so no two poll at once where the interval allows."""
    polled = [d for d in inventory.device if d.snmp is not None]
    return {d.id: k / len(polled) * d.snmp.interval_s for k, d in enumerate(polled) if d.snmp is not None}


class SnmpScheduler:
    def __init__(self, inventory: Inventory, emit: Callable[[str, list[Point]], Awaitable[None]]):
        self.inventory = inventory
        self.emit = emit
        self.pollers: dict[str, DevicePoller] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        semaphore = default_semaphore()
        phases = poll_phases(self.inventory)
        for device in self.inventory.device:
            if device.snmp is None:
                continue
            try:
                auth = snmp_auth(self.inventory, device)
            except (SecretError, ValueError) as exc:
                log.error("device %s: SNMP not polled: %s", device.id, exc)
                continue
            session = SnmpSession(
                device.host,
                device.snmp.port,
                auth,
                timeout_s=device.snmp.timeout_s,
                retries=device.snmp.retries,
                semaphore=semaphore,
                device=device.id,
            )
            poller = DevicePoller(
                device.id,
                device.site,
                session,
                device.snmp.profile,
                interface_speed_bps=device.snmp.interface_speed_bps,
                hardware_kind=device.hardware.kind,
            )
            self.pollers[device.id] = poller
            self._tasks.append(asyncio.create_task(self._loop(device, poller, phases[device.id]), name=f"snmp-{device.id}"))

    async def _loop(self, device: Device, poller: DevicePoller, phase_s: float) -> None:
        assert device.snmp is not None

        async def poll_once() -> None:
            stamp = now_ns()
            try:
                points = await poller.poll(stamp)
            except asyncio.CancelledError:
                raise
            except Exception:  # a poller bug must not stop the other devices; logged with its trace
                log.exception("device %s: poll failed", device.id)
                points = []
            points.append(availability_point(device, points, stamp))
            try:
                await self.emit(f"device:{device.id}", points)
            except Exception:  # the queue's trouble (a full disk) is reported by /health; polling goes on
                log.exception("device %s: %d points not stored", device.id, len(points))

        # The first poll within a second of the start; after it each device polls at its own phase of
        # its interval (`phase_s` after the start, then every interval): polls made together decode
        # their answers on the event loop together, and ingest waits behind them (bench/scale_sim.py,
        # docs/benchmarks.md). The second poll comes half an interval to an interval and a half after
        # the first: a first rate over a shorter time would be mostly noise (a few whole errors).
        loop = asyncio.get_running_loop()
        interval, started = device.snmp.interval_s, loop.time()
        await asyncio.sleep(random.uniform(0, min(FIRST_POLL_SPREAD_S, interval)))
        first_at = loop.time()
        await poll_once()
        next_at = started + phase_s
        while next_at < first_at + interval / 2 or next_at <= loop.time():
            next_at += interval
        await asyncio.sleep(next_at - loop.time())
        await run_every(interval, poll_once, what=f"device {device.id}: poll round", log=log, spread_s=0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
