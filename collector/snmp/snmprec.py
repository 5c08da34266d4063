"""Read snmpsim `.snmprec` recordings, and replay one as an SNMP client for unit tests.

A recording is the device's own answer set (NAPALM's mocked_data idea): the poller's rate,
wrap and reboot logic can be driven through it with edited counters and a fake clock, while
the real-protocol tests serve the same files with snmpsim.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .session import SnmpError, decode_octets, oid_str, oid_tuple

# snmprec type tags (RFC 1902 BER tag numbers) that hold integers.
_INT_TAGS = {"2", "65", "66", "67", "70"}  # Integer32, Counter32, Gauge32, TimeTicks, Counter64


def _value(tag: str, text: str) -> Any:
    base, hexed = (tag[:-1], True) if tag.endswith("x") else (tag, False)
    raw = bytes.fromhex(text) if hexed else text.encode("utf-8")
    if base in _INT_TAGS:
        return int(raw.decode())
    if base == "6":  # OBJECT IDENTIFIER
        return raw.decode()
    if base == "64":  # IpAddress
        return ".".join(str(b) for b in raw) if hexed else raw.decode()
    if base == "4":
        return decode_octets(raw)  # the same rule as a live session
    return raw.hex()


def load_snmprec(path: Path | str) -> dict[str, Any]:
    """{numeric oid: value} from a .snmprec file, values as SnmpSession returns them."""
    out: dict[str, Any] = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            oid, tag, text = line.split("|", 2)
            out[oid_str(oid_tuple(oid))] = _value(tag, text)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: not an snmprec line ({exc}): {line[:80]!r}") from None
    return out


class RecordedSession:
    """An SNMP client answering from a dict of {oid: value}; edit `values` between polls.

    `down=True` makes every request fail like an unreachable device.
    """

    def __init__(self, values: Mapping[str, Any], device: str = "recorded") -> None:
        self.values: dict[str, Any] = dict(values)
        self.device = device
        self.down = False
        self.requests = 0

    def _check(self, oid: str) -> None:
        self.requests += 1
        if self.down:
            raise SnmpError(self.device, oid, "timeout: no answer (recorded device marked down)")

    async def get(self, oids: Sequence[str]) -> dict[str, Any]:
        self._check(oids[0] if oids else "-")
        return {o: self.values[o] for o in (oid_str(oid_tuple(x)) for x in oids) if o in self.values}

    async def walk(self, prefix: str) -> list[tuple[str, Any]]:
        self._check(prefix)
        root = oid_tuple(prefix)
        rows = [(oid_tuple(o), v) for o, v in self.values.items()]
        return [(oid_str(o), v) for o, v in sorted(rows) if o[: len(root)] == root and len(o) > len(root)]

    def set_many(self, items: Iterable[tuple[str, Any]]) -> None:
        for oid, value in items:
            self.values[oid_str(oid_tuple(oid))] = value
