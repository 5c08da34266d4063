"""The collector's service layer: ingest, agent configuration, liveness. HTTP handlers stay thin over it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any

from agent.points import Point, PointError
from agent.report import Batch, parse_batch
from collector.config import AgentEntry, Inventory
from collector.queue import DurableQueue

log = logging.getLogger("nettvakt.collector")


class AuthError(Exception):
    """Missing or wrong bearer token (HTTP 401)."""


class UnknownAgentError(Exception):
    """The token is valid but for another agent (HTTP 403), or no such agent (404)."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass
class AgentState:
    last_seen_ns: int = 0  # newest point time received (not arrival time: backlog is old)
    last_batch_ns: int = 0  # arrival time of the last batch
    up: bool | None = None  # None: never heard of since start


class CollectorService:
    def __init__(self, inventory: Inventory, queue: DurableQueue):
        self.inventory = inventory
        self.queue = queue
        self.agents: dict[str, AgentState] = {a.id: AgentState() for a in inventory.agent}
        self._by_hash = {a.token_sha256: a for a in inventory.agent}
        self.points_in = 0
        self.batches_in = 0
        self.duplicates = 0
        self.started_ns = time.time_ns()
        self.on_ingest: list[Any] = []  # callables woken after a commit (the writer)

    def authenticate(self, authorization: str | None) -> AgentEntry:
        if not authorization or not authorization.startswith("Bearer "):
            raise AuthError("missing bearer token (Authorization: Bearer <token>)")
        digest = token_hash(authorization[len("Bearer "):].strip())
        for known, agent in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return agent
        raise AuthError("unknown token")

    async def ingest(self, agent: AgentEntry, data: Any) -> dict[str, Any]:
        """Validate and durably commit a batch; only then is it acknowledged."""
        batch = parse_batch(data, self.inventory.collector.max_batch_points)
        if batch.agent != agent.id:
            raise UnknownAgentError(f"token belongs to agent {agent.id!r}, batch says {batch.agent!r}")
        points = [self._stamp(agent, p) for p in batch.points]
        stored = await asyncio.to_thread(self.queue.put, f"agent:{agent.id}", batch.seq, points)
        self._heard_from(agent, batch)
        if stored:
            self.points_in += len(points)
            self.batches_in += 1
            for wake in self.on_ingest:
                wake()
        else:
            self.duplicates += 1
        return {"seq": batch.seq, "accepted": len(points) if stored else 0, "duplicate": not stored}

    def _stamp(self, agent: AgentEntry, point: Point) -> Point:
        # The inventory, not the agent, says which site and host a point belongs to.
        tags = dict(point.tags)
        tags["site"] = agent.site
        tags["host"] = agent.id
        return Point(point.measurement, tags, point.fields, point.time_ns)

    def _heard_from(self, agent: AgentEntry, batch: Batch) -> None:
        state = self.agents[agent.id]
        state.last_batch_ns = time.time_ns()
        newest = max((p.time_ns for p in batch.points), default=0)
        state.last_seen_ns = max(state.last_seen_ns, newest)

    def agent_config(self, agent: AgentEntry) -> dict[str, Any]:
        return {
            "agent": agent.id,
            "site": agent.site,
            "interval_s": agent.interval_s,
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

    def evaluate_liveness(self, now_ns: int | None = None) -> list[Point]:
        """`availability` points for every agent; an agent silent for down_after_intervals is down.

        Only recent data counts as a sign of life: a backlog of old points arriving after an
        outage is stored with its own times but does not flip the agent back to up.
        """
        now_ns = now_ns or time.time_ns()
        points = []
        for agent in self.inventory.agent:
            state = self.agents[agent.id]
            allowed_ns = agent.interval_s * agent.down_after_intervals * 1e9
            # Before the first report, give the agent its grace period from collector start.
            reference = state.last_seen_ns or self.started_ns
            up = now_ns - reference <= allowed_ns
            if up != state.up:
                if state.up is not None or not up:
                    log.info("agent %s (%s) is %s", agent.id, agent.site, "up" if up else "DOWN")
                state.up = up
            points.append(
                Point(
                    "availability",
                    {"site": agent.site, "host": agent.id, "kind": "agent"},
                    {"up": 1.0 if up else 0.0, "silent_s": round(max(0, now_ns - reference) / 1e9, 3)},
                    now_ns,
                )
            )
        return points

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "uptime_s": round((time.time_ns() - self.started_ns) / 1e9, 1),
            "ingest": {"batches": self.batches_in, "points": self.points_in, "duplicates": self.duplicates},
            "agents": {
                a.id: {"site": a.site, "up": self.agents[a.id].up, "last_seen_ns": self.agents[a.id].last_seen_ns or None}
                for a in self.inventory.agent
            },
        }


__all__ = ["AuthError", "CollectorService", "PointError", "UnknownAgentError", "token_hash"]
