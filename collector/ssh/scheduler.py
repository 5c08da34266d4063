"""Facts and configuration backups of every `[device.ssh]` device, each on its own interval.

One SSH session per device and round (facts commands, then the configuration command), on
the shared bounded `SshRunner`. Points (`hardware`, `device`) go to `emit` like the SNMP
scheduler's. A failing device is logged when its state changes (not every round) and the
others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.points import Point
from collector.config import Device, Inventory

from .configs import ConfigStore
from .session import DEFAULT_MAX_SESSIONS, SshFailure, SshRunner, target_from_inventory
from .tasks import DeviceRun, run_devices

log = logging.getLogger("nettvakt.ssh")


class SshScheduler:
    def __init__(
        self,
        inventory: Inventory,
        emit: Callable[[str, list[Point]], Awaitable[None]],
        *,
        data_dir: Path | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        start_spread_s: float = 5.0,
    ):
        self.inventory = inventory
        self.emit = emit
        data_dir = data_dir or inventory.data_dir()
        self.store = ConfigStore(data_dir / "config-backups")
        self.runner = SshRunner(data_dir / "ssh" / "known_hosts", max_sessions=max_sessions)
        self.start_spread_s = start_spread_s
        self.last: dict[str, DeviceRun] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for device in self.inventory.device:
            if device.ssh is not None:
                self._tasks.append(asyncio.create_task(self._loop(device), name=f"ssh-{device.id}"))

    async def run_once(self, device: Device) -> DeviceRun:
        try:
            target = target_from_inventory(device, self.inventory.base_dir)
        except SshFailure as exc:
            run = DeviceRun(device.id, error=exc)
        else:
            [run] = await run_devices(self.runner, [target], store=self.store)
        self._log_change(run)
        self.last[device.id] = run
        if run.points:
            await self.emit(f"ssh:{device.id}", run.points)
        return run

    def _log_change(self, run: DeviceRun) -> None:
        before = self.last.get(run.device)
        problem = str(run.error) if run.error else (run.facts_error or run.backup_error)
        was = (str(before.error) if before.error else (before.facts_error or before.backup_error)) if before else None
        if problem and problem != was:
            log.error("ssh %s", problem if run.error else f"{run.device}: {problem}")
        elif was and not problem:
            log.info("ssh %s: works again", run.device)
        if run.backup is not None and run.backup.changed:
            log.info("ssh %s: configuration stored as %s", run.device, (run.backup.revision or "")[:12])

    async def _loop(self, device: Device) -> None:
        assert device.ssh is not None
        interval = device.ssh.interval_s
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, min(interval, self.start_spread_s)))  # devices do not all log in at once
        next_at = loop.time()
        while True:
            try:
                await self.run_once(device)
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug for one device must not stop the others; logged with its trace
                log.exception("ssh %s: round failed", device.id)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Sessions in flight end within their device's timeout; then the pool's threads are gone.
        await asyncio.to_thread(self.runner.close)
