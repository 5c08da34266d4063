"""A probe as configured (`ProbeSpec`), validated against its kind's descriptor."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from agent.probes.checks import ProbeConfigError, positive_number
from agent.probes.registry import PROBES

# Same rule as the collector's inventory slugs (collector/config.py), re-stated here because the
# agent may not import the collector.
NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")

_SPEC_KEYS = ("kind", "target", "name", "interval_s", "timeout_s", "params")


@dataclass(frozen=True)
class ProbeSpec:
    kind: str
    target: str
    name: str
    interval_s: float = 30.0
    timeout_s: float = 5.0
    # Read-only, and left out of the hash so a spec stays hashable like any frozen dataclass.
    params: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @classmethod
    def from_json(cls, data: Any, where: str) -> "ProbeSpec":
        """Validate the JSON form (as sent by the collector); errors name `where` and the key."""
        if not isinstance(data, dict):
            raise ProbeConfigError(f"{where}: expected an object, got {type(data).__name__}")
        for key in data:
            if key not in _SPEC_KEYS:
                raise ProbeConfigError(f"{where}.{key}: unknown key (known: {', '.join(_SPEC_KEYS)})")
        if "kind" not in data:
            raise ProbeConfigError(f"{where}.kind: required ({', '.join(sorted(PROBES))})")
        kind_name = data["kind"]
        if not isinstance(kind_name, str) or kind_name not in PROBES:
            raise ProbeConfigError(f"{where}.kind: unknown probe kind {kind_name!r}; known: {', '.join(sorted(PROBES))}")
        kind = PROBES[kind_name]
        target = data.get("target")
        if not isinstance(target, str) or not target.strip():
            raise ProbeConfigError(f"{where}.target: expected a non-empty string")
        kind.check_target(target, f"{where}.target")
        name = data.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise ProbeConfigError(
                f"{where}.name: expected a slug (a-z, 0-9 and '-', at most 64 characters), got {name!r}"
            )
        interval_s = positive_number(data.get("interval_s", 30.0), f"{where}.interval_s", "seconds")
        timeout_s = positive_number(data.get("timeout_s", 5.0), f"{where}.timeout_s", "seconds")
        params = data.get("params", {})
        if not isinstance(params, dict):
            raise ProbeConfigError(f"{where}.params: expected an object, got {type(params).__name__}")
        for key, value in params.items():
            check = kind.params.get(key)
            if check is None:
                known = ", ".join(kind.params) or "none"
                raise ProbeConfigError(f"{where}.params.{key}: unknown key for {kind.name} probes (known: {known})")
            check(value, f"{where}.params.{key}")
        kind.check_params(params, f"{where}.params")
        return cls(
            kind=kind.name,
            target=target,
            name=name,
            interval_s=interval_s,
            timeout_s=timeout_s,
            params=MappingProxyType(dict(params)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "target": self.target,
            "name": self.name,
            "interval_s": self.interval_s,
            "timeout_s": self.timeout_s,
            "params": dict(self.params),
        }
