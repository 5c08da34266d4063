"""What a probe kind is: one frozen descriptor, `ProbeKind`, and what its run function returns or raises.

Each kind module (icmp.py, tcp.py, http.py, dns.py, traceroute.py) declares one `KIND`, and
agent/probes/registry.py lists them once in `PROBES`. Spec validation, the runner's time budget,
the contract's kind vocabulary, its probe fields and each kind's latency all read the descriptor.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Awaitable, Callable, Literal, Mapping, Sequence

from agent.points import FieldValue
from agent.schema import FieldSpec, TagSpec

Fields = dict[str, FieldValue]
# (its own tags, its fields) of each point a round yields besides its own (traceroute: one per hop)
ExtraPoints = list[tuple[Mapping[str, str], Mapping[str, FieldValue]]]


class ProbeFailed(Exception):
    """Raised by a probe when the target did not answer as expected.

    `fields` are the partial measurements to keep (e.g. icmp sent/received/loss_pct=100).
    """

    def __init__(
        self,
        reason: str,
        fields: Mapping[str, FieldValue] | None = None,
        extra: Sequence[tuple[Mapping[str, str], Mapping[str, FieldValue]]] = (),
    ):
        super().__init__(reason)
        self.reason = reason
        self.fields: Fields = dict(fields or {})
        self.extra: ExtraPoints = list(extra)  # points measured before the failure (traceroute hops up to the gap)


@dataclass(frozen=True)
class ProbeResult:
    """What a multi-point probe returns: its round's fields and (extra tags, fields) per extra point."""

    fields: Fields
    extra: ExtraPoints = field(default_factory=list)


# A probe: (target, params, timeout_s) -> its fields. It only measures; the runner bounds it in
# time, times it and turns a failure into a point with up=0 (agent/probes/runner.py).
ProbeRun = Callable[[str, Mapping[str, Any], float], Awaitable[Fields | ProbeResult]]
# Checks raise ProbeConfigError with a message that starts with `where` (the path of the bad key).
TargetCheck = Callable[[str, str], None]  # (target, where)
ParamCheck = Callable[[Any, str], None]  # (value, where)
ParamsCheck = Callable[[Mapping[str, Any], str], None]  # (all params, where)
Budget = Callable[[Mapping[str, Any], float], float]  # (params, timeout_s) -> seconds


def target_is_host(target: str) -> str:
    """The target of kinds whose target is the host itself (icmp, traceroute, dns's name)."""
    return target


def timeout_budget_s(params: Mapping[str, Any], timeout_s: float) -> float:
    """The budget of a probe that ends by its own timeout."""
    return timeout_s


# Bursts end themselves (last echo + timeout); the runner's limit is only a safety net and
# must not cut a lossy burst that waited out its own deadline on a busy machine: that would
# turn a round with some loss into a round with no counts at all.
BURST_GRACE_S = 1.0


def burst_budget_s(count: int, interval_ms: float, timeout_s: float) -> float:
    """The budget of a burst of `count` sends `interval_ms` apart that waits `timeout_s` after the last."""
    return count * interval_ms / 1000.0 + timeout_s + BURST_GRACE_S


def no_rule_across_params(params: Mapping[str, Any], where: str) -> None:
    """For kinds whose parameters are each valid on their own."""


@dataclass(frozen=True, eq=False)
class ProbeKind:
    """Everything the rest of nettvakt knows of one probe kind."""

    name: str  # `kind` in inventory.toml and on every point
    run: ProbeRun
    check_target: TargetCheck
    latency_field: str  # what "latency" is for this kind: the status page, the probe_latency rule and diagnose read it
    fields: tuple[FieldSpec, ...]  # the contract fields it writes, besides the runner's up, duration_ms and reason
    help: str  # one line for people (docs/metrics.md, the CLI)
    params: Mapping[str, ParamCheck] = field(default_factory=lambda: MappingProxyType({}))  # its keys and their checks
    check_params: ParamsCheck = no_rule_across_params  # rules across keys: required ones, ones that exclude each other
    budget_s: Budget = timeout_budget_s  # how long the runner lets one round take
    tags: tuple[TagSpec, ...] = ()  # the tags of its extra points (traceroute: hop)
    # What diagnose may conclude from its rounds (collector/diagnose/analysis.py):
    target_host: Callable[[str], str] = target_is_host  # the host a target reaches (tcp: of host:port; http: of the URL)
    counts_loss: bool = False  # its failed rounds are loss on the path (icmp echoes, tcp handshakes, dns queries)
    # How its latency relates to the path: "round_trip" (an echo: the path alone), "handshake"
    # (about one round trip and the peer's accept); None: it includes a server's work or is no latency.
    path_latency: Literal["round_trip", "handshake"] | None = None
    answers_as_application: bool = False  # its latency is an application's answer, set against the path to the same host (http)


def loaded_on_first_use(module: str, function: str) -> ProbeRun:
    """A run function that imports `module` on its first call and runs its `function`.

    For kinds most agents never run (dns, traceroute): their code would cost every agent
    resident memory for nothing (docs/benchmarks.md, "Agent footprint"). The descriptor and its
    checks stay in the kind's own light module; only the measuring code waits.
    """

    async def run(target: str, params: Mapping[str, Any], timeout_s: float) -> Fields | ProbeResult:
        probe: ProbeRun = getattr(importlib.import_module(module), function)
        return await probe(target, params, timeout_s)

    run.__name__ = run.__qualname__ = function
    return run
