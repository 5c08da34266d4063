"""Blackbox probes run by the agent: icmp, tcp, http, dns, traceroute.

One module per kind, each declaring one descriptor (`ProbeKind`, agent/probes/kind.py: its run
function, target and parameter checks, time budget, latency field, the contract fields it
writes, a line of help), listed once in `PROBES` (registry.py). `ProbeSpec` (spec.py) validates a
configured probe against its kind's descriptor; the runner (runner.py) runs one round of any
kind and owns its timeout, timing and up/down. dns and traceroute keep their measuring code in
dns_query.py and traceroute_hops.py, imported on their first probe.

Agent-side package: stdlib, psutil and aiohttp only (no pydantic, no collector).
"""

from __future__ import annotations

from agent.probes.checks import ProbeConfigError
from agent.probes.icmp import build_echo_request, icmp_checksum, parse_echo_reply, ping, rtt_stats
from agent.probes.kind import ProbeFailed, ProbeKind, ProbeResult
from agent.probes.registry import PROBES, registered
from agent.probes.runner import run_probe, run_probe_points
from agent.probes.spec import ProbeSpec
from agent.probes.tls import cert_not_after

__all__ = [
    "PROBES", "ProbeConfigError", "ProbeFailed", "ProbeKind", "ProbeResult", "ProbeSpec",
    "build_echo_request", "cert_not_after", "icmp_checksum", "parse_echo_reply", "ping", "registered", "rtt_stats", "run_probe",
    "run_probe_points",
]
