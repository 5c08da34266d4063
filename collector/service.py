"""The collector's service layer: ingest, agent configuration, liveness. HTTP handlers stay thin over it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agent.contract import probe_latency_ms
from agent.points import Point, PointError
from agent.report import parse_batch
from collector.availability import AvailabilityRecorder
from collector.config import AgentEntry, Inventory
from collector.ingest import AgentPoints, TimeWindow, storage_reach
from collector.logins import UserNames
from collector.queue import DurableQueue, GroupCommit

log = logging.getLogger("nettvakt.collector")


class AuthError(Exception):
    """Missing or wrong bearer token (HTTP 401)."""


class AdminDisabledError(Exception):
    """Admin endpoints are off because no admin token is configured (HTTP 403)."""


class UnknownAgentError(Exception):
    """The token is valid but for another agent (HTTP 403), or no such agent (404)."""


class AgentElsewhereError(Exception):
    """The agent's site is owned by another collector ([collectors]): HTTP 421, naming where to go."""

    def __init__(self, agent: AgentEntry, collector: str, url: str, here: str | None):
        self.agent, self.collector, self.url = agent, collector, url
        super().__init__(f"agent {agent.id!r} (site {agent.site!r}) reports to collector {collector!r} at {url}; "
                         f"collector {here!r} takes no points, heartbeats or configuration requests for it")

    def answer(self) -> dict[str, str]:
        """The JSON body: what the agent follows (`collector_url`), and why."""
        return {"error": str(self), "collector": self.collector, "collector_url": self.url}


# A heartbeat's backlog: more than any spool holds (2 million points by default) is a lie.
MAX_PENDING_POINTS = 10**9

PointSubscriber = Callable[[str, list[Point]], None]
"""Told of every batch of points once the queue has it, the agents' and the collector's own alike:
its source (`agent_source(id)` for an agent's; the collector's own: `collector`, `device:ID`,
`ssh:ID`, `lifecycle`, `alerting`) and its points. Called in the event loop: it must not block."""

_AGENT_SOURCE = "agent:"


def agent_source(agent_id: str) -> str:
    """The queue source of an agent's batches."""
    return _AGENT_SOURCE + agent_id


def is_agent_source(source: str) -> bool:
    """True for points an agent sent (checked against the contract), false for the collector's own."""
    return source.startswith(_AGENT_SOURCE)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class AgentState:
    last_seen_ns: int = 0  # newest point time received (not arrival time: backlog is old)
    last_batch_ns: int = 0  # arrival time of the last batch
    last_heartbeat_ns: int = 0  # arrival time (collector clock) of the last heartbeat
    pending_points: int | None = None  # the agent's spool backlog, as its last heartbeat said
    up: bool | None = None  # None: waiting for its first report (never heard from, also before a restart)
    known_since_ns: int = 0  # when the collector first had it in its inventory (how long it has been waited for)


# An agent's state, as people read it.
UP, DOWN, WAITING = "up", "down", "waiting for first report"
# Liveness the collector keeps across restarts (data_dir), so a restart changes no one's state.
LIVENESS_FILE = "liveness.json"


@dataclass
class TargetState:
    """The newest `probe` point of one agent for one target (by measurement time, not arrival)."""

    time_ns: int
    up: bool
    latency_ms: float | None = None
    reason: str | None = None


@dataclass
class DeviceState:
    """The newest verdict of the SNMP poller on one device."""

    time_ns: int
    up: bool
    partial: str | None = None  # the tables that timed out, when the device answered the rest


class RateLimiter:
    """Token bucket per key: `rate_per_s` sustained, `burst` at once."""

    def __init__(self, rate_per_s: float, burst: int):
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, monotonic time)

    def admit(self, key: str, now: float | None = None) -> float:
        """0.0 when admitted (a token taken), else the seconds until a token is there."""
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate_per_s)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate_per_s


class AgentGate:
    """Who may post: the agent a bearer token names (or the 401/421 to answer instead), and each
    agent's request rate. The collector has one, and so has each ingest worker (collector/workers.py)."""

    def __init__(self, inventory: Inventory):
        self.limiter = RateLimiter(inventory.collector.agent_requests_per_s, inventory.collector.agent_request_burst)
        self.rate_limited = 0
        self.reload(inventory)

    def reload(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._by_hash = _tokens(inventory)
        self._own = frozenset(a.id for a in inventory.agent)

    def authenticate(self, authorization: str | None) -> AgentEntry:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        digest = token_hash(authorization[len("Bearer "):].strip())
        for known, agent in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                if agent.id not in self._own:  # known to the inventory, owned by another collector
                    owner = self.inventory.collector_of(agent.site)
                    assert owner is not None  # the inventory's check: every site has its collector
                    raise AgentElsewhereError(agent, owner, self.inventory.collectors[owner].url, self.inventory.collector_name)
                return agent
        raise AuthError("unknown token")

    def admit(self, agent: AgentEntry) -> float:
        """0.0 when the agent may make this request now, else seconds to wait (HTTP 429)."""
        wait_s = self.limiter.admit(agent.id)
        if wait_s:
            self.rate_limited += 1
        return wait_s


@dataclass(slots=True)
class PreparedBatch:
    """An agent's batch checked against the contract and ready to commit: made where its request is
    read (the collector, or an ingest worker), committed where the queue is (the collector)."""

    agent: str
    seq: int
    points: list[Point]  # what is stored: the points the storage keeps, user names in their stored form
    lines: list[str | None] | None  # each point's line where already made (DurableQueue.put)
    too_old: int  # points taken but not stored (ingest.storage_reach)
    newest_ns: int  # the newest point's time in the whole batch: a sign of life
    probes: dict[str, TargetState]  # the batch's newest probe point of each target: the live state


def prepare_batch(inventory: Inventory, user_names: UserNames, agent: AgentEntry, data: Any) -> PreparedBatch:
    """Check every point of a decoded request body against the contract (collector/ingest.py).

    Raises IngestError (400, or 403 for what this agent may not write at all), UnknownAgentError
    (403), BatchTooLargeError (413), PointError (400).
    """
    if isinstance(data, dict) and data.get("agent") != agent.id and isinstance(data.get("agent"), str):
        raise UnknownAgentError(f"token belongs to agent {agent.id!r}, batch says {data['agent']!r}")
    settings = inventory.collector
    window = TimeWindow(settings.max_clock_ahead_s, settings.max_point_age_days * 86400.0)
    now_ns = time.time_ns()
    checked = AgentPoints(agent.id, agent.site, now_ns, window)
    batch = parse_batch(data, settings.max_batch_points, checked)
    reach = storage_reach(settings, inventory.storage)
    kept, too_old = reach.split(batch.points, now_ns) if reach is not None else (batch.points, 0)
    # Before anything is stored: with hashed user names no plain name reaches the queue.
    points = user_names.stored_points(kept)
    lines = checked.lines if points is batch.points else None
    return PreparedBatch(agent.id, batch.seq, points, lines, too_old, *_signs_of_life(batch.points))


def _signs_of_life(points: list[Point]) -> tuple[int, dict[str, TargetState]]:
    """The newest point's time, and the newest probe point of each target as the live state keeps it."""
    newest = max((p.time_ns for p in points), default=0)
    latest: dict[str, Point] = {}
    for point in points:
        if point.measurement == "probe":
            target = point.tags.get("target")
            if target is not None and (target not in latest or latest[target].time_ns <= point.time_ns):
                latest[target] = point
    probes = {}
    for target, point in latest.items():
        reason = point.fields.get("reason")
        probes[target] = TargetState(point.time_ns, bool(point.fields.get("up")), probe_latency_ms(point.tags.get("kind"), point.fields),
                                     reason if isinstance(reason, str) else None)
    return newest, probes


class BatchIngest(Protocol):
    """What the ingest endpoint runs on: the collector itself, or an ingest worker that hands its batches to it."""

    gate: AgentGate

    def prepare(self, agent: AgentEntry, data: Any) -> PreparedBatch: ...

    async def commit(self, batch: PreparedBatch) -> dict[str, Any]: ...


class CollectorService:
    def __init__(self, inventory: Inventory, queue: DurableQueue, state_path: Path | None = None):
        self.inventory = inventory
        self.queue = queue
        self.commits = GroupCommit(queue)  # concurrent agents' batches share one commit
        self.state_path = state_path
        self.started_ns = time.time_ns()
        self.agents: dict[str, AgentState] = {a.id: AgentState(known_since_ns=self.started_ns) for a in inventory.agent}
        self._saved: dict[str, Any] | None = None
        self._load_liveness()
        self.targets: dict[tuple[str, str], TargetState] = {}  # (agent id, probe name)
        # Targets with a verdict in the last liveness round: when one's probes stop, one point says so.
        self._targets_judged: set[tuple[str, str]] = set()
        # Of the availability verdicts, storage gets the changes and a beat; subscribers get them all.
        self.availability = AvailabilityRecorder(inventory.collector.availability_beat_s)
        self.devices: dict[str, DeviceState] = {}
        self.gate = AgentGate(inventory)
        self.user_names = UserNames.from_inventory(inventory)
        self.points_in = 0
        self.batches_in = 0
        self.duplicates = 0
        # Every committed batch goes to each, in order: the live device state first, then the
        # writer and alerting as their contexts start.
        self.subscribers: list[PointSubscriber] = [self._follow_devices]
        self.too_old_points = 0  # taken at ingest but not stored: older than the storage keeps (ingest.storage_reach)
        self._too_old_told: set[str] = set()

    def authenticate(self, authorization: str | None) -> AgentEntry:
        return self.gate.authenticate(authorization)

    def admit(self, agent: AgentEntry) -> float:
        return self.gate.admit(agent)

    @property
    def rate_limited(self) -> int:
        return self.gate.rate_limited

    def authenticate_admin(self, authorization: str | None) -> None:
        """Raises AuthError unless the bearer token is the collector's admin token."""
        expected = self.inventory.collector.admin_token_sha256
        if expected is None:
            raise AdminDisabledError("no admin token is configured (collector.admin_token_sha256 in inventory.toml)")
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token (Authorization: Bearer <admin token>)")
        if not hmac.compare_digest(expected, token_hash(authorization[len("Bearer "):].strip())):
            raise AuthError("not the admin token")

    def _load_liveness(self) -> None:
        """Signs of life from before a restart: an agent up then is up now, one down stays down."""
        if self.state_path is None:
            return
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
            for agent_id, entry in saved.get("agents", {}).items():
                state = self.agents.get(agent_id)
                if state is not None:
                    state.last_seen_ns = int(entry.get("last_seen_ns") or 0)
                    state.last_heartbeat_ns = int(entry.get("last_heartbeat_ns") or 0)
                    state.known_since_ns = int(entry.get("known_since_ns") or state.known_since_ns)
        except FileNotFoundError:
            return
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.error("liveness state %s unreadable (%s); every agent waits for its next report", self.state_path, exc)

    def save_liveness(self) -> None:
        """Blocking (a small file, replaced atomically); only when something changed."""
        if self.state_path is None:
            return
        data = {"agents": {
            agent_id: {"last_seen_ns": s.last_seen_ns, "last_heartbeat_ns": s.last_heartbeat_ns, "known_since_ns": s.known_since_ns}
            for agent_id, s in self.agents.items()
        }}
        if data == self._saved:
            return
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.state_path)
        self._saved = data

    def reload(self, inventory: Inventory) -> None:
        """A new inventory in force: new agents start waiting for their first report, removed ones are forgotten."""
        self.inventory = inventory
        now = time.time_ns()
        self.agents = {a.id: self.agents.get(a.id) or AgentState(known_since_ns=now) for a in inventory.agent}
        self.gate.reload(inventory)
        self.user_names = UserNames.from_inventory(inventory)
        self.availability.beat_s = inventory.collector.availability_beat_s
        known = {a.id for a in inventory.agent}
        self.targets = {key: state for key, state in self.targets.items() if key[0] in known}

    async def ingest(self, agent: AgentEntry, data: Any) -> dict[str, Any]:
        """Check every point against the contract and durably commit the batch; only then is it acknowledged.

        Raises as `prepare_batch`.
        """
        return await self.commit(self.prepare(agent, data))

    def prepare(self, agent: AgentEntry, data: Any) -> PreparedBatch:
        return prepare_batch(self.inventory, self.user_names, agent, data)

    async def commit(self, batch: PreparedBatch) -> dict[str, Any]:
        """Durably commit a prepared batch (a resend is known by its agent and seq and stored once);
        the answer its agent gets once it is on disk."""
        source = agent_source(batch.agent)
        stored = await self.commits.put(source, batch.seq, batch.points, batch.lines)
        self._heard_from(batch)
        if stored:
            self.points_in += len(batch.points)
            self.batches_in += 1
            self._publish(source, batch.points)
        else:
            self.duplicates += 1
        answer: dict[str, Any] = {"seq": batch.seq, "accepted": len(batch.points) if stored else 0, "duplicate": not stored,
                                  "too_old": batch.too_old}
        reach = storage_reach(self.inventory.collector, self.inventory.storage) if batch.too_old else None
        if reach is not None:
            answer["too_old_reason"] = reach.reason
            if stored:  # a resend was counted when first taken
                self._too_old(batch.agent, batch.too_old, reach.reason)
        return answer

    def _too_old(self, agent_id: str, count: int, reason: str) -> None:
        """Counted in the self-monitoring; logged at the first such batch of each agent (a backlog brings many)."""
        self.too_old_points += count
        if agent_id not in self._too_old_told:
            self._too_old_told.add(agent_id)
            log.warning("agent %s sent points that are not stored, %s (%d in this batch; the rest of the batch is kept; "
                        "counted in the collector's too_old_points, this is said once per agent)", agent_id, reason, count)

    def _heard_from(self, batch: PreparedBatch) -> None:
        state = self.agents.get(batch.agent)
        if state is None:
            # A reload took the agent away (removed, or its site moved to another collector) while
            # its batch was being stored: the batch is kept and acknowledged, its liveness no longer ours.
            return
        state.last_batch_ns = time.time_ns()
        state.last_seen_ns = max(state.last_seen_ns, batch.newest_ns)
        for target, probe in batch.probes.items():
            known = self.targets.get((batch.agent, target))
            if known is not None and known.time_ns > probe.time_ns:
                continue  # backlog older than what we know: stored, but not the live state
            self.targets[(batch.agent, target)] = probe

    def heartbeat(self, agent: AgentEntry, data: Any) -> dict[str, Any]:
        """A sign of life, timed by the collector's clock (an agent's clock may be off).

        Unlike a report it proves the agent reaches the collector now, so it counts as live even
        while the agent is still sending an old backlog.
        """
        if not isinstance(data, dict):
            raise PointError(f"body: expected an object, got {type(data).__name__}")
        unknown = set(data) - {"pending_points"}
        if unknown:
            raise PointError(f"body: unknown keys {sorted(map(str, unknown))}")
        pending = data.get("pending_points")
        if pending is not None and (type(pending) is not int or not 0 <= pending <= MAX_PENDING_POINTS):
            raise PointError(f"pending_points: expected an integer in 0..{MAX_PENDING_POINTS}")
        state = self.agents.get(agent.id)
        if state is not None:  # else a reload took the agent away while its body was read
            state.last_heartbeat_ns = time.time_ns()
            state.pending_points = pending
        return {"agent": agent.id, "heartbeat_s": agent.heartbeat_s}

    async def store_local(self, source: str, points: list[Point]) -> None:
        """Queue points the collector made itself (liveness, self-monitoring, SNMP, SSH, alerts) and tell the subscribers.

        Every point is told; of the `availability` verdicts only the changes and the beat are
        queued (collector/availability.py).
        """
        stored = self.availability.to_store(points)
        if stored:
            await asyncio.to_thread(self.queue.put_local, source, stored)
        self._publish(source, points)

    def _publish(self, source: str, points: list[Point]) -> None:
        for subscriber in self.subscribers:
            subscriber(source, points)

    def _follow_devices(self, source: str, points: list[Point]) -> None:
        if not is_agent_source(source):  # an agent's points never steer the collector's own device state
            self.observe_local(points)

    def observe_local(self, points: list[Point]) -> None:
        """Live device state from the collector's own points (the SNMP poller's `device` and `availability`)."""
        partial: dict[str, str | None] = {}
        for point in points:
            device = point.tags.get("device")
            if point.measurement == "device" and device is not None:
                tables = point.fields.get("partial_tables")
                partial[device] = tables if isinstance(tables, str) and point.fields.get("partial") else None
            if point.measurement == "availability" and point.tags.get("kind") == "device" and device is not None:
                known = self.devices.get(device)
                if known is None or known.time_ns <= point.time_ns:
                    self.devices[device] = DeviceState(point.time_ns, bool(point.fields.get("up")), partial.get(device))

    def agent_config(self, agent: AgentEntry) -> dict[str, Any]:
        config = self._agent_config(agent)
        # What the agent checks and reports about itself, when the inventory says so.
        if agent.services:
            config["services"] = list(agent.services)
        if agent.hardware is not None:
            config["hardware"] = {
                "kind": agent.hardware.kind,
                "purchased": agent.hardware.purchased.isoformat() if agent.hardware.purchased else None,
            }
        if self.inventory.logins is not None and self.inventory.records_logins(agent):
            config["logins"] = {"interval_s": self.inventory.logins.interval_s}
        return config

    def _agent_config(self, agent: AgentEntry) -> dict[str, Any]:
        return {
            "agent": agent.id,
            "site": agent.site,
            "interval_s": agent.interval_s,
            "heartbeat_s": agent.heartbeat_s,
            "probes": [
                {
                    "kind": p.kind,
                    "target": p.target,
                    "name": p.name,
                    "interval_s": p.interval_s,
                    "timeout_s": p.timeout_s,
                    "params": p.params,
                }
                for p in self.inventory.probes_for(agent)
            ],
        }

    def _verdict(self, agent: AgentEntry, now_ns: int) -> tuple[bool | None, int]:
        """(up, time of the last sign of life) of one agent at now_ns; up is None while it has never been heard from."""
        state = self.agents[agent.id]
        reference = max(state.last_seen_ns, state.last_heartbeat_ns)
        if not reference:
            return None, 0
        allowed_ns = self.liveness_interval_s(agent) * agent.down_after_intervals * 1e9
        return now_ns - reference <= allowed_ns, reference

    def liveness_interval_s(self, agent: AgentEntry) -> float:
        """The gap between two signs of life this agent is held to: its heartbeat once it has sent
        one (the cadence it keeps even while it sends an old backlog, when its reports carry no
        recent point), else its report interval (an agent from before heartbeats, during an upgrade)."""
        return agent.heartbeat_s if self.agents[agent.id].last_heartbeat_ns else agent.interval_s

    def agent_verdicts(self, now_ns: int) -> dict[str, bool | None]:
        """Up, down or None (waiting for its first report) of every agent now, as the availability points say."""
        return {agent.id: self._verdict(agent, now_ns)[0] for agent in self.inventory.agent}

    def evaluate_liveness(self, now_ns: int | None = None) -> list[Point]:
        """`availability` points for every agent and every probe target it measures.

        An agent silent for down_after_intervals liveness intervals is down. Signs of life are its
        heartbeats and recent data: a backlog of old points arriving after an outage is stored
        with its own times but does not by itself flip the agent back to up. An agent never heard
        from is neither: its point carries `waiting_s` (how long it has been waited for) and no
        `up`, so nothing calls it down, and `agent_never_reported` can say so after a while.
        A target's verdict is the `up` of the agent's newest probe of it, while that probe is
        recent; a target whose probes stopped (its agent is silent) gets one point without `up`
        (nobody knows its state from then) and then none until its probes are recent again.
        """
        now_ns = now_ns or time.time_ns()
        points = []
        for agent in self.inventory.agent:
            state = self.agents[agent.id]
            up, reference = self._verdict(agent, now_ns)
            if up != state.up and up is not None:
                log.info("agent %s (%s) is %s", agent.id, agent.site, "up" if up else "DOWN")
            state.up = up
            tags = {"site": agent.site, "host": agent.id, "kind": "agent"}
            if up is None:
                waiting_s = round(max(0, now_ns - state.known_since_ns) / 1e9, 3)
                points.append(Point("availability", tags, {"waiting_s": waiting_s, "expected_s": self.liveness_interval_s(agent)}, now_ns))
                continue
            points.append(
                Point(
                    "availability",
                    tags,
                    {
                        "up": 1.0 if up else 0.0,
                        "silent_s": round(max(0, now_ns - reference) / 1e9, 3),
                        "expected_s": self.liveness_interval_s(agent),
                    },
                    now_ns,
                )
            )
            for probe in self.inventory.probes_for(agent):
                key = (agent.id, probe.name)
                target = self.targets.get(key)
                if target is None:
                    continue
                silent_ns = max(0, now_ns - target.time_ns)
                if silent_ns > probe.interval_s * agent.down_after_intervals * 1e9:
                    if key in self._targets_judged:
                        self._targets_judged.discard(key)
                        points.append(Point(
                            "availability", {"site": agent.site, "host": agent.id, "target": probe.name, "kind": "target"},
                            {"silent_s": round(silent_ns / 1e9, 3)}, now_ns,
                        ))
                    continue
                self._targets_judged.add(key)
                points.append(
                    Point(
                        "availability",
                        {"site": agent.site, "host": agent.id, "target": probe.name, "kind": "target"},
                        {"up": 1.0 if target.up else 0.0, "silent_s": round(silent_ns / 1e9, 3)},
                        now_ns,
                    )
                )
        return points

    def health(self) -> dict[str, Any]:
        now_ns = time.time_ns()
        verdicts = self.agent_verdicts(now_ns)  # as of now, not as of the last housekeeping round
        return {
            "uptime_s": round((now_ns - self.started_ns) / 1e9, 1),
            "ingest": {
                "batches": self.batches_in, "points": self.points_in, "duplicates": self.duplicates, "rate_limited": self.rate_limited,
                "too_old": self.too_old_points,
            },
            "agents": {
                a.id: {
                    "site": a.site,
                    "up": verdicts[a.id],
                    "state": agent_state_word(verdicts[a.id]),
                    "last_seen_ns": self.agents[a.id].last_seen_ns or None,
                    "last_heartbeat_ns": self.agents[a.id].last_heartbeat_ns or None,
                    "pending_points": self.agents[a.id].pending_points,
                }
                for a in self.inventory.agent
            },
        }


def _tokens(inventory: Inventory) -> dict[str, AgentEntry]:
    """Token hash -> agent, of this collector's agents and of those other collectors own (to send them there)."""
    return {a.token_sha256: a for a in (*inventory.agent, *inventory.elsewhere)}


def agent_state_word(up: bool | None) -> str:
    return WAITING if up is None else UP if up else DOWN


__all__ = ["AgentElsewhereError", "AgentGate", "AuthError", "BatchIngest", "CollectorService", "PointError", "PreparedBatch", "UnknownAgentError",
           "prepare_batch", "token_hash"]
