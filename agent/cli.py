"""`nettvakt`: one command line for agent and collector, assembled from the commands' own modules.

Each command is declared (a `Command`: texts, arguments, run function) in the module that runs
it; `COMMAND_MODULES` says, by name only, which module that is. The agent must run without the
collector's dependencies, so a module is imported only when its command is invoked, or when
the whole parser is wanted (`nettvakt --help`, a mistyped command); a missing collector extra
becomes a clear message instead of a traceback. Exit codes: agent/process.py.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Mapping, Sequence
from types import MappingProxyType

from agent.commandline import Command
from agent.process import EXIT_USAGE

COLLECTOR_EXTRA_HINT = "this command needs the collector extra: pip install 'nettvakt[collector]'"
# The collector extra's libraries (pyproject.toml), by the name they are imported under.
_COLLECTOR_EXTRA = frozenset({"pydantic", "pysnmp", "pyasn1", "netmiko", "paramiko", "ntc_templates", "textfsm", "yaml",
                              "cryptography", "matplotlib", "reportlab"})

# Every top-level command, in the order `nettvakt --help` lists them, and the module whose
# COMMANDS declares it. A module is named, not imported: see the module's docstring.
COMMAND_MODULES: Mapping[str, str] = MappingProxyType({
    "check": "collector.cli",
    "init": "collector.init",
    "collector": "collector.cli",
    "agent": "agent.commands",
    "snmp": "collector.snmp.cli",
    "discover": "collector.snmp.discover",
    "config": "collector.ssh.cli",
    "ssh": "collector.ssh.cli",
    "alerts": "collector.alerting.cli",
    "ack": "collector.alerting.cli",
    "silence": "collector.alerting.cli",
    "diagnose": "collector.diagnose.cli",
    "report": "collector.reports.cli",
    "probe": "agent.commands",
    "demo": "collector.demo",
})


class MissingExtra(Exception):
    """A command's module needs a library of the collector extra that is not installed."""

    def __init__(self, missing: str):
        super().__init__(f"{COLLECTOR_EXTRA_HINT} ({missing} is not installed)")


def _is_missing_extra(exc: ImportError) -> bool:
    name = exc.name or ""
    return name == "collector" or name.split(".")[0] in _COLLECTOR_EXTRA


def load_command(name: str) -> Command:
    """The top-level command `name` as its module declares it; MissingExtra when the module cannot be loaded here."""
    module_path = COMMAND_MODULES[name]
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        if not _is_missing_extra(exc):
            raise
        raise MissingExtra(exc.name or module_path) from exc
    declared = {command.name: command for command in module.COMMANDS}
    named_here = {n for n, path in COMMAND_MODULES.items() if path == module_path}
    if declared.keys() != named_here:  # the table and the module disagree: a command would vanish from the CLI
        raise RuntimeError(f"{module_path} declares {sorted(declared)}, COMMAND_MODULES names {sorted(named_here)} for it")
    return declared[name]


def _needs_extra(name: str, problem: MissingExtra) -> Command:
    """Stands in for a command whose module cannot be loaded, so `nettvakt --help` still lists it."""

    def explain(args: argparse.Namespace) -> int:
        print(f"nettvakt: {problem}", file=sys.stderr)
        return EXIT_USAGE

    return Command(name, help="(needs the collector extra)", run=explain)


def version() -> str:
    """The installed package's version (pyproject.toml), or 'unknown' when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("nettvakt")
    except PackageNotFoundError:
        return "unknown"


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with `only`, just that top-level command (what running it needs).

    A command whose module cannot be loaded here is listed as needing the collector extra; the
    one asked for by `only` raises MissingExtra instead.
    """
    parser = argparse.ArgumentParser(prog="nettvakt", description="Network and device monitoring: agents, collector, InfluxDB, Grafana.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"nettvakt {version()}")
    words = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if only is not None:
        load_command(only).add_to(words)
        return parser
    for name in COMMAND_MODULES:
        try:
            command = load_command(name)
        except MissingExtra as problem:
            command = _needs_extra(name, problem)
        command.add_to(words)
    return parser


def invoked_command(argv: Sequence[str]) -> str | None:
    """The top-level command `argv` names (global options take no value, so it is the first word), if it is one."""
    word = next((arg for arg in argv if not arg.startswith("-")), None)
    return word if word in COMMAND_MODULES else None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(only=invoked_command(argv))
    except MissingExtra as problem:
        print(f"nettvakt: {problem}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # a library of the extra a command loads when it runs (pysnmp, reportlab...)
        if not _is_missing_extra(exc):
            raise
        print(f"nettvakt: {MissingExtra(exc.name or '')}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
