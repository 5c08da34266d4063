"""Facts and configuration backups of every `[device.ssh]` device, each on its own interval.

One SSH session per device and round (facts commands, then the configuration command), on
the shared bounded `SshRunner`. Points (`hardware`, `device`) go to `emit` like the SNMP
scheduler's. A failing device is logged when its state changes (not every round) and the
others carry on.

Events people are told about, each once: a real configuration change (as ConfigStore decides,
so re-encrypted secrets and timestamps never count; the first backup is no change) and a
changed host key. Each becomes an `alert` point with `state=event` (Grafana annotates graphs
with it) and, through `announce` (AlertService.announce), a message to the channels the
inventory routes choose; a configuration change carries its redacted diff.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent.cadence import run_every
from agent.points import Point, now_ns
from collector import texts
from collector.config import Device, Inventory

from .configs import ConfigStore
from .session import DEFAULT_MAX_SESSIONS, HostKeyChanged, SshFailure, SshRunner, target_from_inventory
from .tasks import DeviceRun, run_devices

log = logging.getLogger("nettvakt.ssh")

# AlertService.announce: keyword arguments rule, site, subject, severity, title, body; returns
# how many channels the message went to.
Announce = Callable[..., Awaitable[int]]

CONFIG_CHANGE_RULE = "config_change"
HOST_KEY_RULE = "ssh_host_key_changed"
# A message body beyond this is cut (a mail of a whole re-numbered configuration helps nobody).
MAX_DIFF_CHARS = 20_000

# The messages' words by language (the catalog's ssh_events).
_WORDS = texts.in_each_language(lambda catalog: catalog.ssh_events)


def cut_diff(diff: str, words: texts.Words, device_id: str, limit: int = MAX_DIFF_CHARS) -> str:
    """The diff, or its first `limit` characters (whole lines) and a note saying where the rest is."""
    if len(diff) <= limit:
        return diff
    shown = diff[:limit].rsplit("\n", 1)[0] + "\n"
    return shown + words["cut"].format(shown=len(shown), total=len(diff), device_id=device_id) + "\n"


class SshScheduler:
    def __init__(
        self,
        inventory: Inventory,
        emit: Callable[[str, list[Point]], Awaitable[None]],
        *,
        data_dir: Path | None = None,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        start_spread_s: float = 5.0,
        announce: Announce | None = None,
    ):
        self.inventory = inventory
        self.emit = emit
        self.announce = announce
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
        new_problem = self._log_change(run)
        self.last[device.id] = run
        events = []
        if run.backup is not None and run.backup.changed and not run.backup.first:
            events.append(await self._config_changed(device, run))
        if isinstance(run.error, HostKeyChanged) and new_problem:
            events.append(await self._host_key_changed(device, run.error))
        if run.points or events:
            await self.emit(f"ssh:{device.id}", run.points + events)
        return run

    def _names(self, device: Device) -> tuple[str, str, texts.Words]:
        site = next((s.name for s in self.inventory.site if s.id == device.site), device.site)
        return device.name, site, _WORDS[self.inventory.alerting.language]

    def _event(self, device: Device, rule: str, severity: str, summary: str, **fields: str) -> Point:
        tags = {"site": device.site, "rule": rule, "severity": severity, "state": "event", "subject": device.id}
        return Point("alert", tags, {"active": 0.0, "summary": summary, **fields}, now_ns())

    async def _announce(self, **event: str) -> None:
        assert self.announce is not None
        try:
            await self.announce(**event)
        except Exception:  # noqa: BLE001 - announce reports channel failures itself; this is a bug, and the event point still goes out
            log.exception("ssh %s: message %r not delivered", event["subject"], event["title"])

    async def _config_changed(self, device: Device, run: DeviceRun) -> Point:
        assert run.backup is not None and run.backup.revision is not None
        name, site, words = self._names(device)
        rev = run.backup.revision[:12]
        title = words["config_title"].format(device=name, site=site)
        if self.announce is not None:
            intro = words["config_intro"].format(device=name, site=site, rev=rev)
            body = f"{intro}\n\n{cut_diff(run.backup.diff, words, device.id)}"
            await self._announce(rule=CONFIG_CHANGE_RULE, site=device.site, subject=device.id, severity="info", title=title, body=body)
        return self._event(device, CONFIG_CHANGE_RULE, "info", title, revision=run.backup.revision)

    async def _host_key_changed(self, device: Device, error: HostKeyChanged) -> Point:
        name, site, words = self._names(device)
        title = words["key_title"].format(device=name, site=site)
        if self.announce is not None:
            body = f"{words['key_intro'].format(device=name)}\n\n{error}"
            await self._announce(rule=HOST_KEY_RULE, site=device.site, subject=device.id, severity="warning", title=title, body=body)
        return self._event(device, HOST_KEY_RULE, "warning", title)

    def _log_change(self, run: DeviceRun) -> bool:
        """Log what changed since the device's last round; True when a problem is new."""
        before = self.last.get(run.device)
        problem = str(run.error) if run.error else (run.facts_error or run.backup_error)
        was = (str(before.error) if before.error else (before.facts_error or before.backup_error)) if before else None
        new_problem = bool(problem) and problem != was
        if new_problem:
            log.error("ssh %s", problem if run.error else f"{run.device}: {problem}")
        elif was and not problem:
            log.info("ssh %s: works again", run.device)
        if run.backup is not None and run.backup.changed:
            log.info("ssh %s: configuration stored as %s", run.device, (run.backup.revision or "")[:12])
        missing = run.facts.missing if run.facts else []
        if missing and missing != (before.facts.missing if before and before.facts else []):
            log.info("ssh %s: the device does not tell %s", run.device, ", ".join(missing))
        return new_problem

    async def _loop(self, device: Device) -> None:
        assert device.ssh is not None
        # Devices do not all log in at once: the first rounds spread over start_spread_s.
        await run_every(device.ssh.interval_s, lambda: self.run_once(device), what=f"ssh {device.id}: round", log=log, spread_s=self.start_spread_s)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # Sessions in flight end within their device's timeout; then the pool's threads are gone.
        await asyncio.to_thread(self.runner.close)
