"""The one registry of probe kinds: kind name -> its descriptor, read-only.

A new kind is one module beside the others that declares its `KIND`, and one entry below.
Config validation, the runner, the measurement contract (kind vocabulary, fields, latency) and
the docs read `PROBES`; nothing else lists the kinds.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from types import MappingProxyType
from typing import Mapping

from agent import registry
from agent.probes import dns, http, icmp, tcp, traceroute
from agent.probes.kind import ProbeKind

_KINDS: dict[str, ProbeKind] = {kind.name: kind for kind in (icmp.KIND, tcp.KIND, http.KIND, dns.KIND, traceroute.KIND)}

PROBES: Mapping[str, ProbeKind] = MappingProxyType(_KINDS)


def registered(kind: ProbeKind) -> AbstractContextManager[ProbeKind]:
    """For tests: `kind` is in the registry while the block runs; afterwards the registry is as before.

    Everything else only reads PROBES (a read-only view of this table).
    """
    return registry.registered(_KINDS, kind.name, kind, "probe kind")
