"""Checks that probe kinds share for their targets and parameters; each kind's own are in its module.

A check takes the value and `where` (the path of its key, e.g. `probe[3].params.count`) and
raises ProbeConfigError with a message that starts with it.
"""

from __future__ import annotations

import math
from typing import Any


class ProbeConfigError(ValueError):
    """A probe spec that does not validate; the message starts with the path of the bad key."""


def positive_number(value: Any, where: str, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProbeConfigError(f"{where}: expected a positive number of {unit}, got {value!r}")
    return float(value)


def positive_int(value: Any, where: str, maximum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ProbeConfigError(f"{where}: expected a positive integer, got {value!r}")
    if value > maximum:
        raise ProbeConfigError(f"{where}: at most {maximum}, got {value!r}")


def check_interval_ms(value: Any, where: str) -> None:
    positive_number(value, where, "milliseconds")


def check_bool(value: Any, where: str) -> None:
    if not isinstance(value, bool):
        raise ProbeConfigError(f"{where}: expected true or false, got {value!r}")


def check_path(value: Any, where: str) -> None:
    if not isinstance(value, str) or not value:
        raise ProbeConfigError(f"{where}: expected a file path, got {value!r}")


def check_host(target: str, where: str) -> None:
    """A host name or address (icmp, traceroute)."""
    if any(c.isspace() for c in target) or len(target) > 253:
        raise ProbeConfigError(f"{where}: expected a host name or IP address, got {target!r}")


def check_host_port(target: str, where: str) -> None:
    """host:port (tcp)."""
    try:
        host, port = split_host_port(target)
    except ValueError:
        host, port = "", None
    if not host or port is None or any(c.isspace() for c in host):
        raise ProbeConfigError(f"{where}: expected host:port (e.g. \"10.0.0.1:443\" or \"[::1]:22\"), got {target!r}")


def split_host_port(text: str) -> tuple[str, int | None]:
    """'host:port', '[v6]:port', 'host', 'v6' -> (host, port or None)."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad bracketed address {text!r}")
        return host, _port(rest[1:]) if rest else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port)
    return text, None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port {text!r}")
    return int(text)
