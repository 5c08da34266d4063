"""Runs the engine in the collector: evaluate on a tick, deliver, record `alert` points.

Delivery runs in its own tasks so a slow SMTP server never delays evaluation; a channel
that gives up is reported through the other channels. Nothing here touches InfluxDB:
points go to `emit` (the collector's durable local queue).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import time
import zoneinfo
from pathlib import Path
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from agent.points import Point
from collector import clock
from collector.alerting.acks import ACKS_FILE, AckStore
from collector.alerting.channels import ChannelError, Locale, Sender, build_senders
from collector.alerting.config import AlertRule, MaintenanceWindow
from collector.alerting.digest import DIGEST_RULE, digest_month, lifecycle_digest, previous_month
from collector.alerting.engine import AlertEngine, AlertEvent, Notification
from collector.alerting.history import HISTORY_FILE, STATE_FILE, AlertHistory, entry_from_point
from collector.alerting.silences import SILENCES_FILE, SilenceStore
from collector.config import Inventory

log = logging.getLogger("nettvakt.alerting")

Emit = Callable[[list[Point]], Awaitable[None]]


# A failing channel is noticed again at most this often while it keeps failing.
NOTICE_REPEAT_S = 4 * 3600.0


@dataclass
class ChannelTrouble:
    since: float
    last_error: str = ""
    noticed: float | None = None


def _log_digest_failure(task: asyncio.Task[bool]) -> None:
    """A digest that failed is logged (a bug: unreadable data is said in the digest itself); the next tick tries again."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("alerting: the monthly digest failed; trying again next tick", exc_info=exc)


class AlertService:
    def __init__(
        self,
        engine: AlertEngine,
        senders: dict[str, Sender],
        emit: Emit | None = None,
        *,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.senders = senders
        self.emit = emit
        self.interval_s = interval_s
        self.clock = clock
        self.failures: list[tuple[str, str]] = []  # (channel, error), newest last, for health
        self._troubles: dict[str, ChannelTrouble] = {}  # channels failing now
        self.evaluations = 0
        self._deliveries: set[asyncio.Task[bool]] = set()
        # One lock per channel: messages to one channel go out one at a time, in order
        # ("firing" before its "resolved"), while channels do not wait for each other.
        self._locks: dict[str, asyncio.Lock] = {}
        self.state_path: Path | None = None
        self.history: AlertHistory | None = None
        # For the monthly digest: the inventory in force and the month last sent ("2026-12").
        self.inventory: Inventory | None = None
        self.digest_sent: str | None = None

    def load_state(self, path: Path) -> None:
        """Take back what the previous run knew (who was told what), and save there from now on."""
        self.state_path = path
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error("alerting: cannot read %s (%s); starting with no alert state", path, exc)
            return
        self.digest_sent = data.get("digest_sent") if isinstance(data, dict) else None
        try:
            count = self.engine.restore(data, self.clock())
        except (KeyError, TypeError, ValueError) as exc:
            log.error("alerting: %s is not an alert state file (%s); starting with no alert state", path, exc)
            return
        log.info("alerting: %d alerts taken back from %s", count, path)

    def save_state(self) -> None:
        if self.state_path is None:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        state = {**self.engine.snapshot(), "digest_sent": self.digest_sent}
        tmp.write_text(json.dumps(state, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state_path)

    @classmethod
    def from_inventory(
        cls,
        inventory: Inventory,
        rules: Sequence[AlertRule] | None = None,
        maintenance: Sequence[MaintenanceWindow] | None = None,
        emit: Emit | None = None,
        **engine_options: object,
    ) -> "AlertService":
        """The service for `inventory` (its rules, windows and [alerting] settings unless given)."""
        engine = _engine(inventory, rules, maintenance, engine_options)
        senders, _ = build_senders(list(inventory.channel), inventory.secret, _locale(inventory))
        service = cls(engine, senders, emit)
        service.inventory = inventory
        service.history = AlertHistory(inventory.data_dir() / HISTORY_FILE)
        service.load_state(inventory.data_dir() / STATE_FILE)
        return service

    async def reload(self, inventory: Inventory, **engine_options: object) -> None:
        """Follow an inventory reload: new rules, routes, sites, windows and channels; alert state kept.

        The new engine takes back the old one's snapshot (who was told what), so a reload
        neither repeats "firing" messages nor loses a "resolved"; alerts of removed rules end.
        Observations start afresh: the next report round brings them (within one interval).
        """
        snapshot = self.engine.snapshot()
        engine = _engine(inventory, None, None, engine_options)
        engine.restore(snapshot, self.clock())
        senders, _ = build_senders(list(inventory.channel), inventory.secret, _locale(inventory))
        old_senders, self.senders, self.engine, self.inventory = self.senders, senders, engine, inventory
        for sender in old_senders.values():
            await sender.close()
        log.info("alerting: following the reloaded inventory (%d rules, %d channels)", len(engine.rules), len(senders))

    def observe(self, points: Iterable[Point]) -> None:
        self.engine.observe(points)

    async def tick(self, now: float | None = None) -> list[Notification]:
        """One evaluation: schedule deliveries, emit the state-change points."""
        notifications = self.engine.evaluate(self.clock() if now is None else now)
        self.evaluations += 1  # a mark tests wait for: "the engine has judged again since then"
        for notification in notifications:
            self._spawn(self.deliver(notification))
        points = self.engine.take_points()
        if points or notifications:
            try:
                await asyncio.to_thread(self._persist, points)
            except OSError as exc:
                log.error("alerting: cannot save alert state to %s: %s", self.state_path, exc)
        if points and self.emit is not None:
            try:
                await self.emit(points)
            except Exception as exc:  # noqa: BLE001 - history is lost, never the alert itself; say so loudly
                log.error("alerting: %d alert points not stored: %s", len(points), exc)
        return notifications

    def _persist(self, points: list[Point]) -> None:
        self.save_state()
        if self.history is not None:
            self.history.append(entry_from_point(p) for p in points)

    async def announce(
        self, *, rule: str, site: str, subject: str, severity: str, title: str, body: str, named_only: bool = False
    ) -> int:
        """Deliver a one-off event (a configuration change, a changed host key, the monthly digest).

        It has no state to resolve: it goes to the channels the routes choose for (site,
        severity, rule), unless a silence covers it, and into the history. Returns how many
        channels it was sent to; a failing channel is reported like any alert, never raised.
        """
        now = self.clock()
        engine = self.engine
        silence = engine.silences.muting(now, site, rule, rule, subject)
        channels = [] if silence is not None else list(engine.route(site, severity, rule, named_only=named_only))
        if self.history is not None:
            entry = {"time": now, "rule": rule, "severity": severity, "state": "event", "site": site,
                     "subject": subject, "summary": title, "affected": 0}
            try:
                await asyncio.to_thread(self.history.append, [entry])
            except OSError as exc:
                log.error("alerting: cannot write alert history %s: %s", self.history.path, exc)
        if silence is not None:
            log.info("alerting: %s %s silenced by %s: %s", rule, subject, silence.id, title)
        elif not channels:
            log.info("alerting: %s %s matches no route: %s", rule, subject, title)
        event = AlertEvent("event", rule, rule, severity, site, subject, title, now)
        for channel in channels:
            self._spawn(self.deliver(Notification(channel, title, body, (event,), now)))
        return len(channels)

    async def send_digest_if_due(self, now: float | None = None) -> bool:
        """The monthly lifecycle digest, once per month from `[alerting] digest_day`; True if sent now."""
        inventory = self.inventory
        if inventory is None or inventory.alerting.digest_day == 0:
            return False
        now = self.clock() if now is None else now
        settings = inventory.alerting
        zone = zoneinfo.ZoneInfo(settings.timezone)
        month = digest_month(now, zone, settings.digest_day, settings.digest_time, self.digest_sent)
        if self.digest_sent is None:
            # A fresh install: the first digest is the next one due, not one at first start.
            self.digest_sent = month or previous_month(now, zone)
            await asyncio.to_thread(self.save_state)
            return False
        if month is None:
            return False
        today = dt.datetime.fromtimestamp(now, zone).date()
        title, body = await asyncio.to_thread(lifecycle_digest, inventory, today, settings.language)
        self.digest_sent = month  # before sending: a failing channel is reported, not retried monthly-storm style
        await asyncio.to_thread(self.save_state)
        sent = await self.announce(
            rule=DIGEST_RULE, site="", subject="lifecycle", severity="info", title=title, body=body, named_only=True
        )
        if not sent:
            log.info("alerting: the lifecycle digest for %s goes nowhere: no route names %s", month, DIGEST_RULE)
        return True

    async def run(self) -> None:
        digest: asyncio.Task[bool] | None = None
        try:
            while True:
                try:
                    await self.tick()
                    # The digest reads the store (availability, capacity), which may be slow or down:
                    # evaluation never waits for it, and one digest at a time is made.
                    if digest is None or digest.done():
                        digest = asyncio.ensure_future(self.send_digest_if_due())
                        digest.add_done_callback(_log_digest_failure)
                except Exception:  # noqa: BLE001 - a bug in one tick must not end alerting for good
                    log.exception("alerting: evaluation failed; trying again next tick")
                await asyncio.sleep(self.interval_s)
        finally:
            if digest is not None:
                digest.cancel()

    async def deliver(self, notification: Notification, *, report_failure: bool = True) -> bool:
        channel = notification.channel
        sender = self.senders.get(channel)
        if sender is None:
            error = f"channel {channel!r} is not configured or could not be set up"
        else:
            try:
                async with self._locks.setdefault(channel, asyncio.Lock()):
                    await sender.send(notification)
                if self._troubles.pop(channel, None) is not None:
                    log.info("alerting: channel %s delivers again", channel)
                return True
            except ChannelError as exc:
                error = str(exc)
        log.error("alerting: %s; lost message: %s", error, notification.title)
        self.failures = (self.failures + [(channel, error)])[-20:]
        if report_failure:
            self._notice_failing(channel, error)
        return False

    def _notice_failing(self, channel: str, error: str) -> None:
        """One notice per failing channel, at most every NOTICE_REPEAT_S, to the routes that take
        system notices: which channel, since when, its last error. Never the alert again: whoever
        got it through another channel has it already."""
        now = self.clock()
        trouble = self._troubles.setdefault(channel, ChannelTrouble(since=now))
        trouble.last_error = error
        if trouble.noticed is not None and now - trouble.noticed < NOTICE_REPEAT_S:
            return
        trouble.noticed = now
        targets = sorted(self.engine.notice_channels() - {channel})
        if not targets:
            log.warning("alerting: channel %s is failing and no route takes system notices (system_notices = true)", channel)
            return
        zone = self.inventory.alerting.timezone if self.inventory is not None else "Europe/Oslo"
        since = clock.local(trouble.since, zone)
        title = f"[nettvakt] varslingskanal {channel} feiler siden {since} / alert channel {channel} failing since {since}"
        body = (
            f"Varsler til kanalen {channel} kommer ikke fram. Siste feil / last error:\n{error}\n\n"
            f"Messages to channel {channel} do not arrive; this notice is repeated at most every "
            f"{NOTICE_REPEAT_S / 3600:.0f} hours while it fails."
        )
        for target in targets:
            # A notice that fails is logged, not noticed again: no loops.
            self._spawn(self.deliver(Notification(target, title, body, (), now), report_failure=False))

    def _spawn(self, coro: Awaitable[bool]) -> None:
        task = asyncio.ensure_future(coro)
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def drain(self, timeout_s: float = 30.0) -> None:
        """Wait for deliveries in flight (and the failure reports they start)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._deliveries:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            await asyncio.wait(set(self._deliveries), timeout=remaining)

    async def close(self) -> None:
        await self.drain(10.0)
        try:
            self.save_state()
        except OSError as exc:
            log.error("alerting: cannot save alert state to %s: %s", self.state_path, exc)
        for task in self._deliveries:
            task.cancel()
        for sender in self.senders.values():
            await sender.close()


def _engine(
    inventory: Inventory,
    rules: Sequence[AlertRule] | None,
    maintenance: Sequence[MaintenanceWindow] | None,
    options: dict[str, object],
) -> AlertEngine:
    silences = SilenceStore.load(inventory.data_dir() / SILENCES_FILE)
    acks = AckStore(inventory.data_dir() / ACKS_FILE)
    merged = {**inventory.alerting.engine_options(), **options}
    return AlertEngine(
        inventory,
        inventory.alert if rules is None else rules,
        inventory.maintenance if maintenance is None else maintenance,
        silences=silences,
        acks=acks,
        **merged,  # type: ignore[arg-type]
    )


def _locale(inventory: Inventory) -> Locale:
    return Locale(inventory.alerting.language, inventory.alerting.timezone)
