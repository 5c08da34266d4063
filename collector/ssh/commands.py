"""Which commands `nettvakt ssh run` may send: read-only ones per platform, as data.

A command is allowed when
- it fully matches one of the device's own `allow_commands` patterns ([device.ssh] in the
  inventory; the operator's explicit choice, checked before anything else), or
- it holds none of the characters that chain, substitute or redirect (`;`, `&`, `` ` ``,
  `$`, `<`, `>`), nor `..` on a platform whose commands name files, its first part fully
  matches one of the platform's `read_only` patterns, and every part after a `|` fully
  matches one of its `pipe_filters` (collector.ssh.platforms).

Patterns match the command with its whitespace (newlines too) collapsed to single spaces,
and that one line is what is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .platforms import PLATFORMS

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
    platform = PLATFORMS[device_type]
    if platform.commands_take_paths and ".." in command:
        return "it leaves the allowed paths (..)"
    first, *filters = [part.strip() for part in command.split("|")]
    if not any(re.fullmatch(p, first) for p in platform.read_only):
        return f"{first!r} is not one of the read-only {device_type} commands"
    for part in filters:
        if not any(re.fullmatch(p, part) for p in platform.pipe_filters):
            return f"| {part!r} is not an output filter allowed on {device_type}"
    return None
