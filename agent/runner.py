"""The agent process: fetch its configuration, measure on schedule, spool, forward.

Measurements go to the spool first and the sender forwards them, so a dead link or a
stopped collector only delays them. The last configuration received is cached beside
the spool, so an agent restarted while the link is down keeps measuring.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from agent.cadence import run_every
from agent.collectoraddress import CollectorAddress
from agent.hostmetrics import HostMetrics
from agent.hwfacts import collect_hardware
from agent.listening import collect_listening
from agent.logins import LoginTracker
from agent.points import Point, now_ns
from agent.probes import ProbeSpec, run_probe_points
from agent.report import HEARTBEAT_PATH, INGEST_PATH
from agent.services import collect_services
from agent.spool import DEFAULT_MAX_BYTES, Spool

log = logging.getLogger("nettvakt.agent")

CONFIG_PATH = "/api/v1/agents/{agent_id}/config"
_JSON_BODY = {"Content-Type": "application/json"}
# The answer of a collector that does not serve this agent's site: the body names the one that does.
MISDIRECTED = 421


class AgentConfigError(ValueError):
    pass


@dataclass(frozen=True)
class AgentSettings:
    """Local settings of one agent: how to reach the collector. Everything else comes from it."""

    agent_id: str
    collector_url: str
    token: str
    spool_path: Path
    ca_file: Path | None = None
    batch_points: int = 5000
    config_refresh_s: float = 300.0
    send_interval_s: float = 2.0
    backoff_max_s: float = 60.0
    hardware_interval_s: float = 3600.0
    listen_interval_s: float = 300.0
    spool_max_bytes: int = DEFAULT_MAX_BYTES


@dataclass
class RemoteConfig:
    """What the collector tells this agent to do (GET /api/v1/agents/{id}/config)."""

    agent: str
    site: str
    interval_s: float
    probes: list[ProbeSpec] = field(default_factory=list)
    # How often to tell the collector "alive" between reports; None from a collector that does
    # not ask for heartbeats (it then judges liveness by the reports alone).
    heartbeat_s: float | None = None
    # Optional keys, from inventory `[[agent]].services` and `[[agent]].hardware`: a collector
    # that does not send them yet gives an agent that checks no services and ages by firmware.
    services: tuple[str, ...] = ()
    hardware_kind: str | None = None
    purchased: str | None = None  # ISO date
    # From inventory `[logins]`: how often to look at who is logged in; None: not at all.
    logins_interval_s: float | None = None

    @classmethod
    def from_json(cls, data: Any) -> "RemoteConfig":
        if not isinstance(data, dict):
            raise AgentConfigError("config: expected an object")
        try:
            probes = [ProbeSpec.from_json(p, f"probes[{i}]") for i, p in enumerate(data.get("probes", []))]
            services = data.get("services") or []
            if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
                raise AgentConfigError("config from collector: services: expected a list of service names")
            hardware = data.get("hardware") or {}
            if not isinstance(hardware, dict):
                raise AgentConfigError("config from collector: hardware: expected an object")
            heartbeat = data.get("heartbeat_s")
            if heartbeat is not None and (isinstance(heartbeat, bool) or not isinstance(heartbeat, (int, float)) or heartbeat <= 0):
                raise AgentConfigError(f"config from collector: heartbeat_s: expected a positive number, got {heartbeat!r}")
            logins = data.get("logins")
            if logins is not None and not isinstance(logins, dict):
                raise AgentConfigError("config from collector: logins: expected an object")
            logins_interval = (logins or {}).get("interval_s")
            if logins is not None and (isinstance(logins_interval, bool) or not isinstance(logins_interval, (int, float)) or logins_interval <= 0):
                raise AgentConfigError(f"config from collector: logins.interval_s: expected a positive number, got {logins_interval!r}")
            kind, purchased = hardware.get("kind"), hardware.get("purchased")
            for key, value in (("kind", kind), ("purchased", purchased)):
                if value is not None and not isinstance(value, str):
                    raise AgentConfigError(f"config from collector: hardware.{key}: expected a string")
            return cls(
                agent=str(data["agent"]),
                site=str(data["site"]),
                interval_s=float(data["interval_s"]),
                probes=probes,
                heartbeat_s=float(heartbeat) if heartbeat is not None else None,
                services=tuple(services),
                hardware_kind=kind or None,
                purchased=purchased or None,
                logins_interval_s=float(logins_interval) if logins is not None else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, AgentConfigError):
                raise
            raise AgentConfigError(f"config from collector: {exc}") from exc


class Agent:
    def __init__(self, settings: AgentSettings):
        self.settings = settings
        self.spool = Spool(settings.spool_path, settings.agent_id, max_bytes=settings.spool_max_bytes)
        self.config: RemoteConfig | None = None
        self._config_cache = settings.spool_path.with_suffix(".config.json")
        # --collector, or where a collector sent this agent (kept beside the spool).
        self.collector = CollectorAddress(settings.collector_url, settings.spool_path.with_suffix(".collector.json"))
        self._config_changed = asyncio.Event()
        # Kept across configuration changes and, in its file beside the spool, across restarts.
        self.logins = LoginTracker(settings.spool_path.with_suffix(".logins.json"))
        self.sent_batches = 0
        self.send_failures = 0
        self.heartbeats = 0  # answered by the collector
        self.unspooled_points = 0  # lost because the spool could not be written (full disk)
        self.too_old_points = 0  # sent and taken, but older than the collector's storage keeps (its answer says)
        self._store_failing = False

    def _ssl(self) -> ssl.SSLContext | bool:
        if self.settings.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.settings.ca_file))
        return True

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=30, connect=10)
        headers = {"Authorization": f"Bearer {self.settings.token}"}
        async with aiohttp.ClientSession(
            timeout=timeout, headers=headers, connector=aiohttp.TCPConnector(ssl=self._ssl())
        ) as http:
            self._load_cached_config()
            tasks = [
                asyncio.create_task(self._config_loop(http), name="config"),
                asyncio.create_task(self._send_loop(http), name="send"),
                asyncio.create_task(self._heartbeat_loop(http), name="heartbeat"),
                asyncio.create_task(self._measure_loop(), name="measure"),
            ]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._save_logins()
                self.spool.close()

    # --- configuration -------------------------------------------------------------
    def _load_cached_config(self) -> None:
        try:
            self.config = RemoteConfig.from_json(json.loads(self._config_cache.read_text()))
            log.info("using cached configuration from %s until the collector answers", self._config_cache)
        except FileNotFoundError:
            pass
        except (ValueError, AgentConfigError) as exc:
            log.warning("ignoring unreadable cached configuration %s: %s", self._config_cache, exc)

    async def _config_loop(self, http: aiohttp.ClientSession) -> None:
        delay = 1.0
        while True:
            url = self.collector.endpoint(CONFIG_PATH.format(agent_id=self.settings.agent_id))
            try:
                async with http.get(url) as resp:
                    if resp.status == MISDIRECTED:
                        await asyncio.sleep(self.collector.follow(await resp.text()))
                        continue
                    body = await resp.json(content_type=None)
                    if resp.status != 200:
                        raise AgentConfigError(f"HTTP {resp.status}: {body}")
                    self.collector.answered()
                config = RemoteConfig.from_json(body)
                if config != self.config:
                    self.config = config
                    tmp = self._config_cache.with_suffix(".tmp")
                    tmp.write_text(json.dumps(body))
                    os.replace(tmp, self._config_cache)
                    self._config_changed.set()
                    log.info("configuration: site %s, %d probes", config.site, len(config.probes))
                delay = self.settings.config_refresh_s
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
                log.warning("cannot fetch configuration from %s: %s", url, exc)
                delay = min(max(delay * 2, 2.0), 60.0) if self.config is None else 30.0
            await asyncio.sleep(delay)

    # --- measuring -----------------------------------------------------------------
    async def _measure_loop(self) -> None:
        while self.config is None:
            self._config_changed.clear()
            await self._config_changed.wait()
        while True:
            config = self.config
            assert config is not None
            tags = {"site": config.site, "host": self.settings.agent_id}
            self._config_changed.clear()
            jobs = [
                self._every(config.interval_s, self._host_job(tags), "host metrics"),
                self._every(self.settings.hardware_interval_s, self._hardware_job(config, tags), "hardware facts"),
                self._every(self.settings.listen_interval_s, self._listening_job(tags), "listening ports"),
            ]
            if config.services:
                jobs.append(self._every(config.interval_s, self._services_job(config, tags), "services"))
            if config.logins_interval_s is not None:
                jobs.append(self._every(config.logins_interval_s, self._logins_job(tags), "login sessions"))
            jobs += [self._every(p.interval_s, self._probe_job(p, tags), f"probe {p.name}") for p in config.probes]
            await self._config_changed.wait()
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)

    @staticmethod
    def _every(interval_s: float, job: Callable[[], Awaitable[object]], what: str) -> asyncio.Task[None]:
        # Spread the first runs over up to 2 s so forty probes do not fire in the same millisecond.
        return asyncio.create_task(run_every(interval_s, job, what=what, log=log, spread_s=2.0))

    def _host_job(self, tags: dict[str, str]):
        metrics = HostMetrics(tags)

        def collect() -> list[Point]:
            points = metrics.collect(now_ns())
            # The spool's own state rides on the host point, so the collector records what the
            # size bound dropped (and the backlog) without a measurement of its own.
            spool_fields = {
                "spool_pending_points": float(self.spool.pending()),
                "spool_dropped_points": float(self.spool.dropped() + self.unspooled_points),
                "spool_bytes": float(self.spool.used_bytes()),
            }
            return [
                Point(p.measurement, p.tags, {**p.fields, **spool_fields}, p.time_ns) if p.measurement == "host" else p
                for p in points
            ]

        async def job() -> None:
            await self._store(await asyncio.to_thread(collect))

        return job

    def _hardware_job(self, config: RemoteConfig, tags: dict[str, str]):
        """Facts at start and then every hardware_interval_s (subprocesses: in a thread)."""

        async def job() -> None:
            point = await asyncio.to_thread(collect_hardware, tags, config.hardware_kind, config.purchased)
            if point is not None:
                await self._store([point])

        return job

    def _services_job(self, config: RemoteConfig, tags: dict[str, str]):
        async def job() -> None:
            points = await asyncio.to_thread(collect_services, config.services, tags)
            await self._store(points)

        return job

    def _listening_job(self, tags: dict[str, str]):
        async def job() -> None:
            await self._store(await asyncio.to_thread(collect_listening, tags))

        return job

    def _logins_job(self, tags: dict[str, str]):
        async def job() -> None:
            await self._store(await asyncio.to_thread(self.logins.look, tags, now_ns()))
            await asyncio.to_thread(self.logins.save)

        return job

    def _save_logins(self) -> None:
        """At stop: the sessions of the last look, so the next start knows them (and when they were last seen)."""
        try:
            self.logins.save(force=True)
        except OSError as exc:
            log.warning("cannot save the login sessions to %s: %s; the next start reports open sessions again", self.logins.state_path, exc)

    def _probe_job(self, spec: ProbeSpec, tags: dict[str, str]):
        async def job() -> None:
            await self._store(await run_probe_points(spec, tags))

        return job

    async def _store(self, points: list[Point]) -> None:
        try:
            await asyncio.to_thread(self.spool.add, points)
        except sqlite3.Error as exc:
            # Full disk, read-only or corrupt file: these points are lost (and counted); what is
            # already spooled stays, and measuring goes on. Logged once until writing works again.
            self.unspooled_points += len(points)
            if not self._store_failing:
                self._store_failing = True
                log.error("cannot write the spool %s: %s; new measurements are dropped and counted", self.settings.spool_path, exc)
            return
        if self._store_failing:
            self._store_failing = False
            log.warning("spool writable again; %d points were lost meanwhile", self.unspooled_points)

    # --- forwarding ----------------------------------------------------------------
    async def _heartbeat_loop(self, http: aiohttp.ClientSession) -> None:
        """'Alive, with this backlog' every heartbeat_s, apart from the reports.

        Reports come as often as there is something measured (every host-metric interval at
        least); a heartbeat lets the collector find a silent agent in seconds instead. It is not
        spooled: a heartbeat from the past says nothing. Failures are quiet here, since the
        send loop already says the collector is unreachable.
        """
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            interval = self.config.heartbeat_s if self.config is not None else None
            if interval is None:
                # No configuration yet, or a collector that asks for no heartbeats: look again soon.
                # (Polling rather than waiting on _config_changed, which the measure loop owns.)
                await asyncio.sleep(1.0)
                next_at = loop.time()
                continue
            body: dict[str, int] = {}
            try:
                body["pending_points"] = await asyncio.to_thread(self.spool.pending)
            except sqlite3.Error as exc:  # the spool's trouble is _store's to report; "alive" still holds
                log.debug("heartbeat without the backlog: %s", exc)
            url = self.collector.endpoint(HEARTBEAT_PATH.format(agent_id=self.settings.agent_id))
            try:
                async with http.post(url, json=body, timeout=aiohttp.ClientTimeout(total=interval)) as resp:
                    if resp.status == 200:
                        self.heartbeats += 1
                    elif resp.status == MISDIRECTED:
                        # Told again at once where this agent's site is served: alive there, not here.
                        await asyncio.sleep(self.collector.follow(await resp.text()))
                        continue
                    else:
                        log.debug("heartbeat answered HTTP %d: %s", resp.status, (await resp.text())[:200])
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                log.debug("heartbeat failed: %s", exc)
            # A fixed rate, not a pause after each post: a slow answer must not stretch the gap.
            next_at = max(next_at + interval, loop.time())
            await asyncio.sleep(next_at - loop.time())

    def _told_too_old(self, seq: int, body: str) -> None:
        """The collector took the batch but did not store points older than its storage keeps
        (docs/api.md: `too_old`, `too_old_reason`): they are gone, so count and say it."""
        try:
            answer = json.loads(body)
        except ValueError:
            return
        count = answer.get("too_old") if isinstance(answer, dict) else None
        if type(count) is int and count > 0:
            self.too_old_points += count
            log.warning("the collector took batch %d but did not store %d of its points, %s (%d so far)",
                        seq, count, answer.get("too_old_reason") or "too old", self.too_old_points)

    async def _send_loop(self, http: aiohttp.ClientSession) -> None:
        backoff = 1.0
        batch_points = self.settings.batch_points
        while True:
            batch = await asyncio.to_thread(self.spool.next_encoded, batch_points)
            if batch is None:
                await asyncio.sleep(self.settings.send_interval_s)
                continue
            url = self.collector.endpoint(INGEST_PATH)
            try:
                async with http.post(url, data=batch.body, headers=_JSON_BODY) as resp:
                    body = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                self.send_failures += 1
                log.warning("collector unreachable (%s); %d points spooled, retry in %.0f s", exc, self.spool.pending(), backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.backoff_max_s)
                continue
            if status == MISDIRECTED:
                # Nothing was taken: the same batch goes to the collector that owns this agent's site.
                await asyncio.sleep(self.collector.follow(body))
                continue
            if status == 200:
                self.collector.answered()
                await asyncio.to_thread(self.spool.ack, batch.seq)
                self.sent_batches += 1
                self._told_too_old(batch.seq, body)
                backoff = 1.0
                batch_points = self.settings.batch_points
                continue
            if status == 413 and batch.points > 1:
                batch_points = max(1, batch.points // 2)
                await asyncio.to_thread(self.spool.split_pending)
                continue
            if status == 400:
                dropped = await asyncio.to_thread(self.spool.discard_pending)
                log.error("collector refused batch %d as invalid, %d points dropped: %s", batch.seq, dropped, body)
                continue
            # 401/403 (token), 5xx: keep the batch, retry later.
            self.send_failures += 1
            log.warning("collector answered HTTP %d: %s; retry in %.0f s", status, body[:300], backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.settings.backoff_max_s)
