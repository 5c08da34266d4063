"""The agent package's commands: `nettvakt agent run|install-service|token|facts` and `nettvakt probe`.

They run on every PC and server, where only the agent is installed: this module and what it
loads at import never touch the collector or its libraries (tests/test_agent_light.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets as pysecrets
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from agent.commandline import Command
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE, run_until_signal


def cmd_agent_run(args: argparse.Namespace) -> int:
    import sqlite3
    import ssl

    from agent.runner import Agent, AgentSettings
    from agent.secrets import SecretError, resolve_secret

    try:
        token = resolve_secret(args.token)
    except SecretError as exc:
        print(f"nettvakt agent run: --token {exc}", file=sys.stderr)
        return EXIT_USAGE
    settings = AgentSettings(
        agent_id=args.agent_id or socket.gethostname().lower(),
        collector_url=args.collector,
        token=token,
        spool_path=Path(args.spool),
        ca_file=Path(args.ca_file) if args.ca_file else None,
        spool_max_bytes=int(args.spool_max_mb * 1024 * 1024),
    )
    try:
        if settings.ca_file is not None:
            ssl.create_default_context(cafile=str(settings.ca_file))  # a missing or broken file is found now, not at the first send
        agent = Agent(settings)  # opens the spool
    except (OSError, sqlite3.Error) as exc:  # ssl.SSLError is an OSError
        print(f"nettvakt agent run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_until_signal(agent.run())


def cmd_agent_install_service(args: argparse.Namespace) -> int:
    from agent.install import InstallError, ServiceOptions, default_spool, install_linux, install_windows

    from agent.secrets import is_secret_ref

    if not is_secret_ref(args.token):
        print("nettvakt agent install-service: --token must be a reference (file:PATH or env:NAME), never the token", file=sys.stderr)
        return EXIT_USAGE
    windows = sys.platform == "win32"
    spool = args.spool or default_spool(sys.platform)
    opts = ServiceOptions(
        collector=args.collector,
        agent_id=args.agent_id or socket.gethostname().lower(),
        token_ref=args.token,
        # A service starts in / (systemd) or System32 (Task Scheduler): relative paths would land there.
        spool=spool if windows else str(Path(spool).absolute()),
        python=sys.executable,
        ca_file=(args.ca_file if windows else str(Path(args.ca_file).absolute())) if args.ca_file else None,
        name=args.name,
    )
    try:
        if windows:
            commands = install_windows(opts, enable=not args.no_start)
            where = f"scheduled task {opts.name}"
        else:
            unit_dir = Path(args.unit_dir)
            commands = install_linux(opts, unit_dir, enable=not args.no_start)
            where = str(unit_dir / f"{opts.name}.service")
    except (InstallError, OSError) as exc:
        print(f"nettvakt agent install-service: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.no_start:
        print(f"installed {where}; to start it run:")
        for argv in commands:
            print("  " + subprocess.list2cmdline(argv) if windows else "  " + " ".join(argv))
    else:
        print(f"installed and started {where}")
    return EXIT_OK


def cmd_agent_token(args: argparse.Namespace) -> int:
    import hashlib

    token = pysecrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode()).hexdigest()
    if args.json:
        print(json.dumps({"token": token, "token_sha256": digest}))
    else:
        print(f"token (give to the agent only, e.g. in a file read by --token file:PATH): {token}")
        print(f"token_sha256 (put in inventory.toml under the agent):                    {digest}")
    return EXIT_OK


def cmd_agent_facts(args: argparse.Namespace) -> int:
    from agent.hwfacts import collect_hardware

    point = collect_hardware({"host": socket.gethostname().lower()})
    if point is None:
        print("nettvakt agent facts: no hardware facts could be read on this machine", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps(point.to_json(), ensure_ascii=False))
    else:
        width = max(len(k) for k in point.fields)
        for key, value in point.fields.items():
            print(f"{key:{width}}  {value}")
    return EXIT_OK


def cmd_probe(args: argparse.Namespace) -> int:
    from agent.probes import PROBES, ProbeConfigError, ProbeSpec, run_probe_points

    params: dict[str, Any] = dict(args.param)
    if args.count is not None:
        params["count"] = args.count
    if args.max_hops is not None:
        params["max_hops"] = args.max_hops
    if args.interval_ms is not None:
        params["interval_ms"] = args.interval_ms
    if args.resolver:
        params["resolver"] = args.resolver
    try:
        spec = ProbeSpec.from_json(
            {"kind": args.kind, "target": args.target, "name": "cli", "timeout_s": args.timeout, "params": params},
            "probe",
        )
    except ProbeConfigError as exc:
        print(f"nettvakt probe: {exc} (kinds: {', '.join(sorted(PROBES))})", file=sys.stderr)
        return EXIT_USAGE
    points = asyncio.run(run_probe_points(spec, {"host": socket.gethostname().lower()}))
    for point in points:  # the round's point first, then per-hop points (traceroute)
        if args.json:
            print(json.dumps(point.to_json(), ensure_ascii=False))
        else:
            fields = " ".join(f"{k}={v}" for k, v in point.fields.items())
            hop = f" hop {point.tags['hop']}" if "hop" in point.tags else ""
            print(f"{spec.kind} {spec.target}{hop}: {fields}")
    return EXIT_OK if points[0].fields.get("up") == 1.0 else EXIT_FAIL


def _positive_mb(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of megabytes, got {text!r}")
    return value


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collector", required=True, metavar="URL", help="collector base URL, e.g. https://nettvakt.karlsoy.local:8650")
    parser.add_argument("--agent-id", metavar="ID", help="this agent's id in inventory.toml (default: host name)")
    parser.add_argument("--token", default="env:NETTVAKT_AGENT_TOKEN", metavar="REF", help="bearer token reference env:NAME or file:PATH (default env:NETTVAKT_AGENT_TOKEN)")
    parser.add_argument("--spool", default="nettvakt-spool.sqlite3", metavar="PATH", help="store-and-forward database")
    parser.add_argument("--spool-max-mb", type=_positive_mb, default=200.0, metavar="MB", help="bound of the spool on disk; past it the oldest points are dropped and counted (default 200)")
    parser.add_argument("--ca-file", metavar="PATH", help="CA certificate to verify the collector's TLS certificate")


def _install_service_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collector", required=True, metavar="URL", help="collector base URL")
    parser.add_argument("--agent-id", metavar="ID", help="this agent's id in inventory.toml (default: host name)")
    parser.add_argument("--token", default="env:NETTVAKT_AGENT_TOKEN", metavar="REF", help="token reference for the service: file:PATH, or env:NAME (Linux: set in /etc/nettvakt/agent.env)")
    parser.add_argument("--spool", metavar="PATH", help="store-and-forward database (default /var/lib/nettvakt/spool.sqlite3, Windows C:\\ProgramData\\nettvakt\\spool.sqlite3)")
    parser.add_argument("--ca-file", metavar="PATH", help="CA certificate to verify the collector's TLS certificate")
    parser.add_argument("--name", default="nettvakt-agent", help="unit or task name (default nettvakt-agent)")
    parser.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR", help="Linux: where to write the unit")
    parser.add_argument("--no-start", action="store_true", help="only write/register; print the commands that would start it")


def _json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true")


def _probe_param(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as in inventory.toml's params (5, true, "GET"); a bare word is a string."""
    import tomllib

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value


def _probe_arguments(parser: argparse.ArgumentParser) -> None:
    from agent.probes import PROBES  # the kinds as registered now (a kind added at test time too)

    kinds = "; ".join(f"{name}: {kind.help}" for name, kind in PROBES.items())
    parser.add_argument("kind", metavar="KIND", help=kinds)
    parser.add_argument("target", metavar="TARGET", help="what the kind measures: a host, host:port, URL or name")
    parser.add_argument("--count", type=int, help="icmp: echoes in the burst; traceroute: probes per hop")
    parser.add_argument("--max-hops", type=int, help="traceroute: give up after this many hops (default 30)")
    parser.add_argument("--interval-ms", type=int, help="icmp: spacing of the echoes")
    parser.add_argument("--resolver", metavar="IP[:PORT]", help="dns: resolver to ask")
    parser.add_argument("--param", action="append", default=[], type=_probe_param, metavar="KEY=VALUE",
                        help="any parameter of the kind, as in inventory.toml's [[probe]] params (a TOML value: 5, true, \"GET\"; "
                        "a bare word is a string), checked by the kind itself; repeatable")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="S")
    parser.add_argument("--json", action="store_true")


COMMANDS = (
    Command("agent", help="agent commands", subcommands=(
        Command("run", help="run the agent", description="Run the agent: fetch configuration, measure, spool, forward.",
                arguments=_run_arguments, run=cmd_agent_run),
        Command("install-service", help="run the agent at boot (systemd unit on Linux, scheduled task on Windows)",
                description="Install the agent as a boot-time service that restarts when it stops.",
                arguments=_install_service_arguments, run=cmd_agent_install_service),
        Command("token", help="make a new agent token and its hash for inventory.toml", arguments=_json_argument, run=cmd_agent_token),
        Command("facts", help="print this machine's hardware and software facts", arguments=_json_argument, run=cmd_agent_facts),
    )),
    Command("probe", help="run one probe once and print its point", description="Run one round of a probe, for debugging in the field.",
            arguments=_probe_arguments, run=cmd_probe),
)
