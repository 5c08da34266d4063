"""Poll shared recordings (served by snmpsim, community = recording name) with the real DevicePoller."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from agent.points import Point
from collector.localservers import SnmpsimServer
from collector.snmp.poller import DevicePoller
from collector.snmp.session import SnmpAuth, SnmpSession


def poll_recordings(snmpsim: SnmpsimServer, devices: Mapping[str, str], kind: str, site: str = "radhus") -> list[Point]:
    """One poll of each device id -> recording, as the collector's poller writes it (hardware kind `kind`)."""

    async def poll_all() -> list[Point]:
        points: list[Point] = []
        for device, recording in devices.items():
            session = SnmpSession(snmpsim.host, snmpsim.port, SnmpAuth("2c", community=recording), device=recording)
            points += await DevicePoller(device, site, session, None, hardware_kind=kind).poll()
        return points

    return asyncio.run(poll_all())
