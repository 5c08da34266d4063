"""`nettvakt`: one command line for agent and collector.

Exit codes: 0 success; 1 a check or run failed; 2 bad usage, bad configuration, or a
missing install (argparse uses 2 for usage errors too).

The agent package must run without the collector's dependencies, so collector
subcommands are looked up by name only when they are invoked (`collector.cli`), and a
missing collector extra becomes a clear message instead of a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import secrets as pysecrets
import signal
import socket
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
COLLECTOR_EXTRA_HINT = "this command needs the collector extra: pip install 'nettvakt[collector]'"


def _collector_command(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module("collector.cli")
        except ImportError as exc:
            print(f"nettvakt: {COLLECTOR_EXTRA_HINT} ({exc.name or exc} is not installed)", file=sys.stderr)
            return EXIT_USAGE
        return getattr(module, name)(args)

    return run


# --- agent-side commands --------------------------------------------------------------
def cmd_agent_run(args: argparse.Namespace) -> int:
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
    )
    return run_until_signal(Agent(settings).run())


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
    from agent.probes import PROBES, ProbeConfigError, ProbeSpec, run_probe

    params: dict[str, Any] = {}
    if args.count is not None:
        params["count"] = args.count
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
    point = asyncio.run(run_probe(spec, {"host": socket.gethostname().lower()}))
    if args.json:
        print(json.dumps(point.to_json(), ensure_ascii=False))
    else:
        fields = " ".join(f"{k}={v}" for k, v in point.fields.items())
        print(f"{spec.kind} {spec.target}: {fields}")
    return EXIT_OK if point.fields.get("up") == 1.0 else EXIT_FAIL


def run_until_signal(coro: Any) -> int:
    """Run a long-lived coroutine until SIGINT/SIGTERM, then let it clean up."""

    async def main() -> None:
        task = asyncio.ensure_future(coro)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, task.cancel)
            except NotImplementedError:  # Windows: Ctrl-C still raises KeyboardInterrupt
                pass
        try:
            await task
        except asyncio.CancelledError:
            pass

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return EXIT_OK


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nettvakt", description="Network and device monitoring: agents, collector, InfluxDB, Grafana.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def inventory_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--inventory", default="inventory.toml", metavar="PATH", help="inventory file (default ./inventory.toml)")

    p = sub.add_parser("check", help="validate an inventory file", description="Validate inventory.toml: types, unknown keys, references, secrets.")
    p.add_argument("path", nargs="?", metavar="INVENTORY", help="inventory file (overrides --inventory)")
    inventory_arg(p)
    p.add_argument("--strict", action="store_true", help="unresolvable secret references are errors, not warnings")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=_collector_command("cmd_check"))

    p = sub.add_parser("collector", help="collector commands")
    csub = p.add_subparsers(dest="collector_command", required=True, metavar="SUBCOMMAND")
    run = csub.add_parser("run", help="run the collector", description="Run the collector: ingest API, pollers, InfluxDB writer.")
    inventory_arg(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="override collector.listen")
    run.set_defaults(func=_collector_command("cmd_collector_run"))

    p = sub.add_parser("agent", help="agent commands")
    asub = p.add_subparsers(dest="agent_command", required=True, metavar="SUBCOMMAND")
    run = asub.add_parser("run", help="run the agent", description="Run the agent: fetch configuration, measure, spool, forward.")
    run.add_argument("--collector", required=True, metavar="URL", help="collector base URL, e.g. https://nettvakt.karlsoy.local:8650")
    run.add_argument("--agent-id", metavar="ID", help="this agent's id in inventory.toml (default: host name)")
    run.add_argument("--token", default="env:NETTVAKT_AGENT_TOKEN", metavar="REF", help="bearer token reference env:NAME or file:PATH (default env:NETTVAKT_AGENT_TOKEN)")
    run.add_argument("--spool", default="nettvakt-spool.sqlite3", metavar="PATH", help="store-and-forward database")
    run.add_argument("--ca-file", metavar="PATH", help="CA certificate to verify the collector's TLS certificate")
    run.set_defaults(func=cmd_agent_run)
    tok = asub.add_parser("token", help="make a new agent token and its hash for inventory.toml")
    tok.add_argument("--json", action="store_true")
    tok.set_defaults(func=cmd_agent_token)
    facts = asub.add_parser("facts", help="print this machine's hardware and software facts")
    facts.add_argument("--json", action="store_true")
    facts.set_defaults(func=cmd_agent_facts)

    p = sub.add_parser("snmp", help="SNMP commands")
    ssub = p.add_subparsers(dest="snmp_command", required=True, metavar="SUBCOMMAND")
    poll = ssub.add_parser("poll", help="poll one device once and print its points", description="Poll one device once: an inventory device by id, or any device given --address.")
    poll.add_argument("device", nargs="?", metavar="DEVICE", help="device id in inventory.toml")
    inventory_arg(poll)
    poll.add_argument("--address", metavar="HOST[:PORT]", help="poll this address instead of an inventory device")
    poll.add_argument("--community", metavar="NAME", help="v1/v2c community (with --address)")
    poll.add_argument("--version", choices=["1", "2c", "3"], default=None, help="SNMP version (with --address; default 2c, or 3 with --v3-user)")
    poll.add_argument("--v3-user", metavar="USER")
    poll.add_argument("--auth", metavar="PROTO", help="v3 auth protocol: SHA, SHA-256, SHA-512, ...")
    poll.add_argument("--auth-key", metavar="REF", help="v3 auth key as env:NAME or file:PATH")
    poll.add_argument("--priv", metavar="PROTO", help="v3 privacy protocol: AES, AES-256, ...")
    poll.add_argument("--priv-key", metavar="REF", help="v3 privacy key as env:NAME or file:PATH")
    poll.add_argument("--timeout", type=float, default=3.0, metavar="S")
    poll.add_argument("--json", action="store_true")
    poll.set_defaults(func=_collector_command("cmd_snmp_poll"))

    p = sub.add_parser("probe", help="run one probe once and print its point", description="Run one round of a probe, for debugging in the field.")
    p.add_argument("kind", metavar="KIND", help="icmp, tcp, http, dns")
    p.add_argument("target", metavar="TARGET", help="host (icmp), host:port (tcp), URL (http), name (dns)")
    p.add_argument("--count", type=int, help="icmp: echoes in the burst")
    p.add_argument("--interval-ms", type=int, help="icmp: spacing of the echoes")
    p.add_argument("--resolver", metavar="IP[:PORT]", help="dns: resolver to ask")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("demo", help="run a collector and a local agent", description="Start a collector and a local agent, writing to a local InfluxDB if one can be started, else to the collector's own durable store.")
    p.add_argument("--lab", action="store_true", help="build the simulated municipality in network namespaces (root)")
    p.add_argument("--workdir", default="var/demo", metavar="PATH", help="where the demo keeps its data")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    p.add_argument("--json", action="store_true", help="print the demo's endpoints as JSON")
    p.set_defaults(func=_collector_command("cmd_demo"))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
