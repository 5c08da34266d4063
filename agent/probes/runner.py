"""The probe runner: one round of a probe as `probe` points, whatever its kind.

It owns what every kind shares: the time budget (the kind's `budget_s`), the timing
(`duration_ms`), up/down, and turning every target problem into a point with `up=0` and a
short `reason` (docs/metrics.md). A probe only measures.

A kind whose round yields several points (traceroute: one per hop) returns a `ProbeResult`:
the fields of the round's own point plus extra points, each with its extra tags. The round's
point keeps the one-point contract (`up`, `duration_ms`, `reason`); `run_probe_points` returns
it first, followed by the extra points with the same time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Mapping

import aiohttp

from agent.points import Point, now_ns
from agent.probes.kind import ExtraPoints, Fields, ProbeFailed, ProbeResult
from agent.probes.net import MAX_REASON_LEN, failure_reason, ms
from agent.probes.registry import PROBES
from agent.probes.spec import ProbeSpec


async def run_probe_points(spec: ProbeSpec, tags: Mapping[str, str]) -> list[Point]:
    """Run one probe round: its `probe` point first, then any extra points of a multi-point probe.

    A target problem is a point with up=0, never an exception.
    """
    started_ns = now_ns()
    t0 = time.perf_counter()
    fields: Fields
    extra: ExtraPoints = []
    kind = PROBES[spec.kind]
    try:
        async with asyncio.timeout(kind.budget_s(spec.params, spec.timeout_s)):
            result = await kind.run(spec.target, spec.params, spec.timeout_s)
        if isinstance(result, ProbeResult):
            result, extra = result.fields, result.extra
        fields = {"up": 1.0, **result}
    except ProbeFailed as exc:
        fields = {**exc.fields, "up": 0.0, "reason": exc.reason[:MAX_REASON_LEN]}
        extra = exc.extra
    except (TimeoutError, OSError, aiohttp.ClientError) as exc:
        fields = {"up": 0.0, "reason": failure_reason(exc)}
    fields["duration_ms"] = ms(time.perf_counter() - t0)
    base = {**tags, "kind": spec.kind, "target": spec.name}
    points = [Point("probe", tags=base, fields=fields, time_ns=started_ns)]
    points += [Point("probe", tags={**base, **t}, fields=dict(f), time_ns=started_ns) for t, f in extra]
    return points


async def run_probe(spec: ProbeSpec, tags: Mapping[str, str]) -> Point:
    """Run one probe and return its round's `probe` point (extra points of multi-point probes are dropped)."""
    return (await run_probe_points(spec, tags))[0]
