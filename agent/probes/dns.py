"""The dns probe's descriptor and checks: one query over UDP straight to the resolver in the spec, timed.

The measuring code is agent/probes/dns_query.py, imported on the first dns probe: most agents
run none, and leaving it out keeps them smaller (docs/benchmarks.md, "Agent footprint").
"""

from __future__ import annotations

import ipaddress
from types import MappingProxyType
from typing import Any, Mapping

from agent.probes.checks import ProbeConfigError, split_host_port
from agent.probes.kind import ProbeKind, loaded_on_first_use
from agent.schema import FieldSpec

DNS_TYPES = {"A": 1, "AAAA": 28}


def encode_qname(name: str) -> bytes:
    """QNAME wire form: length-prefixed labels, IDNA-encoded, ending with the root label."""
    name = name.rstrip(".")
    if not name or len(name) > 253:
        raise ValueError(f"bad DNS name {name!r}")
    out = b""
    for label in name.split("."):
        raw = label.encode("idna") if not label.isascii() else label.encode("ascii")
        if not 0 < len(raw) <= 63 or any(c <= 32 or c == 127 for c in raw):
            raise ValueError(f"bad DNS label {label!r}")
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_resolver(text: str) -> tuple[str, int]:
    """'10.0.0.53', '127.0.0.1:5353', '::1', '[::1]:53' -> (ip, port)."""
    host, port = split_host_port(text)
    ipaddress.ip_address(host)  # ValueError for names: a resolver must be an address
    return host, port or 53


def _check_target(target: str, where: str) -> None:
    try:
        encode_qname(target)
    except ValueError:
        raise ProbeConfigError(f"{where}: expected a DNS name, got {target!r}") from None


def _check_resolver(value: Any, where: str) -> None:
    try:
        if not isinstance(value, str):
            raise ValueError
        parse_resolver(value)
    except ValueError:
        raise ProbeConfigError(
            f"{where}: expected an IP address with an optional port (e.g. \"10.0.0.53\", \"127.0.0.1:5353\", \"[::1]:53\"), got {value!r}"
        ) from None


def _check_record(value: Any, where: str) -> None:
    if value not in DNS_TYPES:
        raise ProbeConfigError(f"{where}: expected \"A\" or \"AAAA\", got {value!r}")


def _require_resolver(params: Mapping[str, Any], where: str) -> None:
    if "resolver" not in params:
        raise ProbeConfigError(f"{where}.resolver: required for dns probes (e.g. \"10.0.0.53\" or \"127.0.0.1:5353\")")


KIND = ProbeKind(
    name="dns",
    run=loaded_on_first_use("agent.probes.dns_query", "probe_dns"),
    check_target=_check_target,
    latency_field="resolve_ms",
    counts_loss=True,
    fields=(
        FieldSpec("resolve_ms", "ms", "dns: time to the resolver's answer"),
        FieldSpec("answers", "count", "dns: answer records"),
        FieldSpec("rcode", "count", "dns: response code (0 NOERROR, 3 NXDOMAIN)"),
    ),
    help="one A or AAAA query over UDP to the resolver in `resolver`: the time to its answer",
    params=MappingProxyType({"resolver": _check_resolver, "record": _check_record}),
    check_params=_require_resolver,
)
