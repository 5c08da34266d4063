"""The collector's SNMP scheduler polls each device at a phase of its own within its interval
(collector/pollers.py): polls made together decode their answers on the event loop together and
ingest waits behind them (bench/scale_sim.py measured it), so after the first poll, which comes
within a second of the start, the devices are spread evenly over the interval; the second poll
is never less than half an interval after the first (a rate over less would be mostly noise).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from collector.config import load_inventory
from collector.localservers import SnmpsimServer
from collector.pollers import FIRST_POLL_SPREAD_S, SnmpScheduler, poll_phases
from inventories import InventoryBuilder

INTERVAL_S = 6.0
DEVICES = 4
# The event loop wakes a poll late by what is decoding meanwhile (another poll: about 0.1 s of CPU).
LATE_S = 0.4
# The process's first polls also load pysnmp's machinery: measured up to 1.6 s on a busy machine.
FIRST_LATE_S = 1.5


def test_devices_poll_first_at_once_then_each_at_its_own_phase(snmpsim: SnmpsimServer, tmp_path: Path) -> None:
    built = InventoryBuilder(tmp_path).storage("local")
    community = built.secret_file("community", "fortigate_60f")
    for k in range(DEVICES):
        built.device(f"fw{k}", hardware="firewall", host=snmpsim.host,
                     snmp={"port": snmpsim.port, "community": community, "interval_s": INTERVAL_S, "timeout_s": 2, "retries": 0})
    inventory = load_inventory(built.write())
    phases = poll_phases(inventory)
    assert phases == {f"fw{k}": k * INTERVAL_S / DEVICES for k in range(DEVICES)}

    stamps: dict[str, list[float]] = {}  # device -> the start of each of its polls (s after the scheduler's start)

    async def run() -> float:
        enough = asyncio.Event()

        async def emit(source: str, points: list) -> None:
            device = source.removeprefix("device:")
            stamps.setdefault(device, []).append(points[-1].time_ns / 1e9 - started)  # the availability point: the poll's start
            if len(stamps) == DEVICES and all(len(s) >= 3 for s in stamps.values()):
                enough.set()

        scheduler = SnmpScheduler(inventory, emit)
        started = time.time()
        scheduler.start()
        try:
            await asyncio.wait_for(enough.wait(), 4 * INTERVAL_S + 30)
        finally:
            await scheduler.stop()
        return started

    asyncio.run(run())
    for device, times in stamps.items():
        assert 0 <= times[0] <= FIRST_POLL_SPREAD_S + FIRST_LATE_S, (device, times)  # data right after the start, not a phase later
        for later in times[1:]:
            # Every later poll at the device's phase of the interval.
            offset = (later - phases[device]) % INTERVAL_S
            assert min(offset, INTERVAL_S - offset) <= LATE_S, (device, times)
        # The second poll at its phase, half an interval to an interval and a half after the first.
        assert INTERVAL_S / 2 - LATE_S <= times[1] - times[0] <= 1.5 * INTERVAL_S + LATE_S, (device, times)
        assert all(b - a == pytest.approx(INTERVAL_S, abs=LATE_S) for a, b in zip(times[1:], times[2:])), (device, times)
