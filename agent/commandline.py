"""What a `nettvakt` command is, and the argument types several commands share.

Each command module declares its commands as `Command`s beside the functions that run them
and lists them in a module-level `COMMANDS`; agent/cli.py assembles the parser from those.
This module imports nothing of the project, so agent and collector modules can both use it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

Run = Callable[[argparse.Namespace], int]
"""What runs a command: the parsed arguments in, the exit code (agent.process) out."""


@dataclass(frozen=True)
class Command:
    """One word of the command line: its texts, its arguments, and what runs it or the words under it."""

    name: str
    help: str
    run: Run | None = None
    arguments: Callable[[argparse.ArgumentParser], None] | None = None
    description: str | None = None
    subcommands: tuple[Command, ...] = ()

    def __post_init__(self) -> None:
        if (self.run is None) == (not self.subcommands):
            raise ValueError(f"command {self.name!r}: give it either a run function or subcommands")

    def add_to(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
        """Add this command (and its subcommands) to `subparsers`; `func` in the parsed arguments runs it."""
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        if self.arguments is not None:
            self.arguments(parser)
        if self.subcommands:
            words = parser.add_subparsers(dest=f"{self.name}_command", required=True, metavar="SUBCOMMAND")
            for command in self.subcommands:
                command.add_to(words)
        else:
            parser.set_defaults(func=self.run)
        return parser


def add_inventory_argument(parser: argparse.ArgumentParser) -> None:
    """--inventory, as every command that reads inventory.toml takes it."""
    parser.add_argument("--inventory", default="inventory.toml", metavar="PATH", help="inventory file (default ./inventory.toml)")


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}
MONTH_S = 365.25 / 12 * 86400.0  # '12mo' is a year


def parse_duration(text: str) -> float:
    """'90s', '15m', '24h', '7d', '2w', '12mo' (or plain seconds) -> seconds; argparse type."""
    value = text.strip().lower()
    if value.endswith("mo"):
        unit: float | None = MONTH_S
        number = value[:-2]
    else:
        unit = _DURATION_UNITS.get(value[-1:]) if value else None
        number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 15m, 24h, 7d or 12mo, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return seconds
