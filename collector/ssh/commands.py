"""Which commands `nettvakt ssh run` may send: read-only ones per platform, as data.

A command is allowed when
- it fully matches one of the device's own `allow_commands` patterns ([device.ssh] in the
  inventory; the operator's explicit choice, checked before anything else), or
- it holds none of the characters that chain, substitute or redirect (`;`, `&`, `` ` ``,
  `$`, `<`, `>`), its first part fully matches a READ_ONLY pattern of the platform, and
  every part after a `|` fully matches one of the platform's FILTERS.

Patterns match the command with its whitespace (newlines too) collapsed to single spaces,
and that one line is what is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Each pattern is matched against the whole command (re.fullmatch).
READ_ONLY: dict[str, tuple[str, ...]] = {
    "cisco_ios": (
        r"sh(o|ow)? \S.*",
        r"dir( \S+)?",
    ),
    "hp_procurve": (
        r"sh(o|ow)? \S.*",
        r"display \S.*",
    ),
    "fortinet": (
        r"get \S.*",
        r"show( \S.*)?",
        # `diagnose sys` also kills processes and clears sessions: only the listing verbs.
        r"diagnose sys (top( \d+){0,2}|top-summary|session (list|stat|full-stat)|ha (status|checksum (show|cluster))"
        r"|mpstat( \d+)?|vd list|link-monitor status( \S+)?|sdwan (health-check|member|service)( \S+)*)",
        r"diagnose hardware deviceinfo (nic|disk)( \S+)?",
        r"diagnose (ip (arp|route|address) list|netlink interface list( \S+)?|firewall iprope list( \S+)?)",
        r"execute (ping|traceroute) \S+",
    ),
    "linux": (
        r"uptime( -[ps])?",
        r"(hostname|whoami|w|who|date)",
        r"uname( -[a-z]+)?",
        r"df( -[hHiTlP]+)*( /\S*)*",
        r"free( -[bkmgh]+)?",
        r"ip( -(4|6|s|d|br|c|o))* (a|addr|address|l|link|r|route|n|neigh|neighbour|rule)( (show|list)( \S+)*)?",
        r"ss( -[a-zA-Z]+)*",
        r"cat( /proc/[\w./-]+)+",
        r"ps( -?[a-zA-Z]+)*",
        r"systemctl (status|is-active|is-enabled|list-units)( [\w@.-]+)*( --no-pager)?",
        r"lsblk( -[a-zA-Z]+)*",
    ),
}

# What may follow a `|`: the devices' own output filters (and on Linux the read-only text tools).
FILTERS: dict[str, tuple[str, ...]] = {
    "cisco_ios": (r"(i|in|inc|include|e|ex|exclude|b|begin|s|sec|section|count) \S.*",),
    "hp_procurve": (r"(i|in|include|e|ex|exclude|b|begin) \S.*",),
    "fortinet": (r"grep( -[a-zA-Z]+)* \S.*",),
    "linux": (r"(e|f)?grep( -[a-zA-Z]+)* \S.*", r"(head|tail)( -n)?( -?\d+)?", r"wc( -[lwc])?"),
}

_CHAINING = re.compile(r"[;&`$<>]")


def normalise_command(command: str) -> str:
    return " ".join(command.split())


def refusal(device_type: str, command: str, allow_commands: Sequence[str] = ()) -> str | None:
    """None when `command` may run on a device of this type; else why not."""
    command = normalise_command(command)
    if not command:
        return "empty command"
    if any(re.fullmatch(pattern, command) for pattern in allow_commands):
        return None
    if _CHAINING.search(command):
        return "it chains, substitutes or redirects (one of ; & ` $ < >)"
    if device_type == "linux" and ".." in command:
        return "it leaves the allowed paths (..)"
    first, *filters = [part.strip() for part in command.split("|")]
    if not any(re.fullmatch(p, first) for p in READ_ONLY[device_type]):
        return f"{first!r} is not one of the read-only {device_type} commands"
    for part in filters:
        if not any(re.fullmatch(p, part) for p in FILTERS[device_type]):
            return f"| {part!r} is not an output filter allowed on {device_type}"
    return None
