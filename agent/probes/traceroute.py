"""The traceroute probe's descriptor, limits and checks: per-hop address, RTT and loss, one point per hop.

The measuring code is agent/probes/traceroute_hops.py, imported on the first traceroute probe:
most agents run none, and leaving it out keeps them smaller (docs/benchmarks.md, "Agent footprint").
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping

from agent.probes.checks import check_host, check_interval_ms, positive_int
from agent.probes.icmp import ECHO_STATS
from agent.probes.kind import ProbeKind, burst_budget_s, loaded_on_first_use
from agent.schema import FieldSpec, TagSpec

TRACE_COUNT = 3
TRACE_MAX_COUNT = 10
TRACE_MAX_HOPS = 30
TRACE_HOPS_LIMIT = 64
TRACE_INTERVAL_MS = 50.0


def _check_count(value: Any, where: str) -> None:
    positive_int(value, where, TRACE_MAX_COUNT)


def _check_max_hops(value: Any, where: str) -> None:
    positive_int(value, where, TRACE_HOPS_LIMIT)


def _budget_s(params: Mapping[str, Any], timeout_s: float) -> float:
    return burst_budget_s(params.get("count", TRACE_COUNT), params.get("interval_ms", TRACE_INTERVAL_MS), timeout_s)


KIND = ProbeKind(
    name="traceroute",
    run=loaded_on_first_use("agent.probes.traceroute_hops", "probe_traceroute"),
    check_target=check_host,
    latency_field="rtt_ms",  # of the round point: the destination's
    fields=(
        *ECHO_STATS,
        FieldSpec("hops", "count", "traceroute round point: hops to the destination"),
        FieldSpec("hop_addr", "string", "traceroute: the address that answered (`*` when silent; the destination on the round point)"),
    ),
    help="ICMP echoes with rising TTL (needs root): a point per hop with its address, RTT and loss, and the round to the destination",
    params=MappingProxyType({"count": _check_count, "max_hops": _check_max_hops, "interval_ms": check_interval_ms}),
    budget_s=_budget_s,
    tags=(TagSpec("hop", "traceroute hop points only: `01`..`64`, zero-padded so they sort in path order", pattern=r"[0-9]{2,3}"),),
)
