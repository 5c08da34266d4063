"""SshScheduler: facts points and backups on the device's interval, failures logged once."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from agent.points import Point
from collector.config import load_inventory
from collector.ssh.recorded import load_session
from collector.ssh.scheduler import SshScheduler
from collector.ssh.simulator import CliSimulator, DeviceScript
from inventories import InventoryBuilder

IOS_9200 = "cisco_ios/running_config/ios#C9200L-24P-4G_17.09.04a#simulation.yaml"


def write_inventory(tmp_path: Path, port: int) -> Path:
    """Two switches on the simulator: sw1 with the right password, sw-bad with a wrong one (in tmp_path/bad-pw)."""
    inv = InventoryBuilder(tmp_path)
    for dev_id, password_file, password in (("sw1", "pw", "secret"), ("sw-bad", "bad-pw", "wrong")):
        password_ref = inv.secret_file(password_file, password)
        inv.device(dev_id, ssh={"device_type": "cisco_ios", "port": port, "username": "admin", "password": password_ref,
                                "interval_s": 600, "timeout_s": 3})
    return inv.write()


def test_scheduler_emits_facts_and_stores_backups(tmp_path: Path, shared_dir: Path) -> None:
    rec = load_session(shared_dir / "cli" / IOS_9200)
    emitted: list[tuple[str, list[Point]]] = []

    async def main(port: int) -> SshScheduler:
        got = asyncio.Event()

        async def emit(source: str, points: list[Point]) -> None:
            emitted.append((source, points))
            got.set()

        scheduler = SshScheduler(load_inventory(write_inventory(tmp_path, port)), emit, start_spread_s=0)
        scheduler.start()
        try:
            await asyncio.wait_for(got.wait(), 30)
            while len(scheduler.last) < 2:  # the failing device's first round has ended too
                await asyncio.sleep(0.05)
        finally:
            await scheduler.stop()
        return scheduler

    with CliSimulator(DeviceScript(rec.prompt, dict(rec.outputs))) as sim:
        scheduler = asyncio.run(main(sim.port))
    [(source, points)] = emitted
    assert source == "ssh:sw1"
    hardware = next(p for p in points if p.measurement == "hardware")
    assert dict(hardware.tags) == {"site": "radhus", "device": "sw1", "kind": "switch"} and hardware.fields["model"] == "C9200L-24P-4G"
    assert scheduler.store.history("sw1") and not scheduler.store.history("sw-bad")
    bad = scheduler.last["sw-bad"].error
    assert bad is not None and bad.reason == "authentication failed"
    assert (tmp_path / "data" / "config-backups" / "full" / "sw1.cfg").exists()


def test_failure_logged_once_then_recovery(tmp_path: Path, shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    rec = load_session(shared_dir / "cli" / IOS_9200)

    async def emit(source: str, points: list[Point]) -> None:
        pass

    with CliSimulator(DeviceScript(rec.prompt, dict(rec.outputs))) as sim:
        inventory = load_inventory(write_inventory(tmp_path, sim.port))
        device = next(d for d in inventory.device if d.id == "sw-bad")

        async def rounds() -> None:
            scheduler = SshScheduler(inventory, emit)
            try:
                with caplog.at_level(logging.INFO, logger="nettvakt.ssh"):
                    await scheduler.run_once(device)
                    await scheduler.run_once(device)
                    (tmp_path / "bad-pw").write_text("secret\n")  # the operator fixes the secret
                    run = await scheduler.run_once(device)
                    assert run.error is None and run.backup is not None and run.backup.changed
            finally:
                await scheduler.stop()

        asyncio.run(rounds())
    messages = [r.getMessage() for r in caplog.records if r.name == "nettvakt.ssh"]
    assert [m for m in messages if "authentication failed" in m] == ["ssh sw-bad: authentication failed (user 'admin')"]
    assert "ssh sw-bad: works again" in messages
