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
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
COLLECTOR_EXTRA_HINT = "this command needs the collector extra: pip install 'nettvakt[collector]'"
# The collector extra's libraries (pyproject.toml), by the name they are imported under.
_COLLECTOR_EXTRA = frozenset({"pydantic", "pysnmp", "pyasn1", "netmiko", "paramiko", "ntc_templates", "textfsm", "yaml",
                              "cryptography", "matplotlib", "reportlab"})


def _collector_command(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module("collector.cli")
        except ImportError as exc:
            print(f"nettvakt: {COLLECTOR_EXTRA_HINT} ({exc.name or exc} is not installed)", file=sys.stderr)
            return EXIT_USAGE
        try:
            return getattr(module, name)(args)
        except ModuleNotFoundError as exc:  # a command's own library of the extra (pysnmp, netmiko, reportlab...)
            if (exc.name or "").split(".")[0] not in _COLLECTOR_EXTRA:
                raise
            print(f"nettvakt: {COLLECTOR_EXTRA_HINT} ({exc.name} is not installed)", file=sys.stderr)
            return EXIT_USAGE

    return run


# --- agent-side commands --------------------------------------------------------------
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

    params: dict[str, Any] = {}
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


_DURATION_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_duration(text: str) -> float:
    """'90s', '15m', '24h', '7d', '2w' (or plain seconds) -> seconds; argparse type."""
    value = text.strip().lower()
    unit = _DURATION_UNITS.get(value[-1:]) if value else None
    number = value[:-1] if unit is not None else value
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90s, 15m, 24h or 7d, got {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive duration, got {text!r}")
    return seconds


def _positive_mb(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of megabytes, got {text!r}")
    return value


def version() -> str:
    """The installed package's version (pyproject.toml), or 'unknown' when run from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("nettvakt")
    except PackageNotFoundError:
        return "unknown"


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nettvakt", description="Network and device monitoring: agents, collector, InfluxDB, Grafana.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"nettvakt {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def inventory_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--inventory", default="inventory.toml", metavar="PATH", help="inventory file (default ./inventory.toml)")

    p = sub.add_parser(
        "check", help="validate an inventory file",
        description="Validate inventory.toml as the collector does before it starts: types, unknown keys, references, "
        "probe targets, addresses, secrets and files. Exit 2 with every problem, each with its line.",
    )
    p.add_argument("path", nargs="?", metavar="INVENTORY", help="inventory file (overrides --inventory)")
    inventory_arg(p)
    p.add_argument("--offline", action="store_true", help="checking a file on another machine: secrets and files are notes, not errors")
    p.add_argument("--json", action="store_true", help="machine-readable result")
    p.set_defaults(func=_collector_command("cmd_check"))

    p = sub.add_parser("init", help="write a first inventory.toml", description="Write a small, valid, commented inventory.toml for one site; `nettvakt check` passes on it and the collector starts on it.")
    p.add_argument("path", nargs="?", default="inventory.toml", metavar="PATH", help="where to write it (default ./inventory.toml)")
    p.add_argument("--organisation", default="Karlsøy kommune", metavar="NAME", help="the municipality or organisation")
    p.add_argument("--site", default="radhus", metavar="ID", help="id of the first site (lower-case letters, digits, '-')")
    p.add_argument("--site-name", metavar="NAME", help="its display name (default: the id)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_collector_command("cmd_init"))

    p = sub.add_parser("collector", help="collector commands")
    csub = p.add_subparsers(dest="collector_command", required=True, metavar="SUBCOMMAND")
    run = csub.add_parser("run", help="run the collector", description="Run the collector: ingest API, pollers, InfluxDB writer.")
    inventory_arg(run)
    run.add_argument("--listen", metavar="HOST:PORT", help="override collector.listen")
    run.set_defaults(func=_collector_command("cmd_collector_run"))
    tls = csub.add_parser("tls", help="make a self-signed certificate and key for HTTPS", description="Make a self-signed certificate and key for the collector's HTTPS; agents pin the certificate with --ca-file.")
    tls.add_argument("--cert", required=True, metavar="PATH", help="certificate file to write (PEM)")
    tls.add_argument("--key", required=True, metavar="PATH", help="private key file to write (PEM, mode 0600)")
    tls.add_argument("--name", action="append", required=True, metavar="NAME", help="host name or IP address agents use to reach the collector (repeatable)")
    tls.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    tls.add_argument("--force", action="store_true", help="overwrite existing files")
    tls.set_defaults(func=_collector_command("cmd_collector_tls"))

    p = sub.add_parser("agent", help="agent commands")
    asub = p.add_subparsers(dest="agent_command", required=True, metavar="SUBCOMMAND")
    run = asub.add_parser("run", help="run the agent", description="Run the agent: fetch configuration, measure, spool, forward.")
    run.add_argument("--collector", required=True, metavar="URL", help="collector base URL, e.g. https://nettvakt.karlsoy.local:8650")
    run.add_argument("--agent-id", metavar="ID", help="this agent's id in inventory.toml (default: host name)")
    run.add_argument("--token", default="env:NETTVAKT_AGENT_TOKEN", metavar="REF", help="bearer token reference env:NAME or file:PATH (default env:NETTVAKT_AGENT_TOKEN)")
    run.add_argument("--spool", default="nettvakt-spool.sqlite3", metavar="PATH", help="store-and-forward database")
    run.add_argument("--spool-max-mb", type=_positive_mb, default=200.0, metavar="MB", help="bound of the spool on disk; past it the oldest points are dropped and counted (default 200)")
    run.add_argument("--ca-file", metavar="PATH", help="CA certificate to verify the collector's TLS certificate")
    run.set_defaults(func=cmd_agent_run)
    svc = asub.add_parser(
        "install-service",
        help="run the agent at boot (systemd unit on Linux, scheduled task on Windows)",
        description="Install the agent as a boot-time service that restarts when it stops.",
    )
    svc.add_argument("--collector", required=True, metavar="URL", help="collector base URL")
    svc.add_argument("--agent-id", metavar="ID", help="this agent's id in inventory.toml (default: host name)")
    svc.add_argument("--token", default="env:NETTVAKT_AGENT_TOKEN", metavar="REF", help="token reference for the service: file:PATH, or env:NAME (Linux: set in /etc/nettvakt/agent.env)")
    svc.add_argument("--spool", metavar="PATH", help="store-and-forward database (default /var/lib/nettvakt/spool.sqlite3, Windows C:\\ProgramData\\nettvakt\\spool.sqlite3)")
    svc.add_argument("--ca-file", metavar="PATH", help="CA certificate to verify the collector's TLS certificate")
    svc.add_argument("--name", default="nettvakt-agent", help="unit or task name (default nettvakt-agent)")
    svc.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR", help="Linux: where to write the unit")
    svc.add_argument("--no-start", action="store_true", help="only write/register; print the commands that would start it")
    svc.set_defaults(func=cmd_agent_install_service)
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

    p = sub.add_parser("discover", help="sweep networks with ICMP and SNMP, propose inventory entries", description="Sweep CIDRs with ICMP and SNMP (the inventory's communities and v3 users, plus --community), read system and LLDP-MIB neighbours, print proposed [[device]] entries and a neighbour table.")
    p.add_argument("cidrs", nargs="+", metavar="CIDR", help="networks or addresses to sweep, e.g. 10.20.0.0/24")
    p.add_argument("--inventory", default=None, metavar="PATH", help="inventory whose SNMP communities and v3 users are tried (default ./inventory.toml if present)")
    p.add_argument("--community", action="append", metavar="NAME", help="also try this v1/v2c community (a name, or env:NAME / file:PATH); repeatable")
    p.add_argument("--port", type=int, default=161, help="SNMP port (default 161)")
    p.add_argument("--timeout", type=float, default=1.0, metavar="S", help="per ICMP echo and SNMP request (default 1)")
    p.add_argument("--concurrency", type=int, default=64, metavar="N", help="addresses tried at once (default 64)")
    p.add_argument("--no-icmp", action="store_true", help="SNMP only")
    p.add_argument("--json", action="store_true")
    p.add_argument("--add-to", metavar="INVENTORY", help="append the proposed [[device]] entries to this inventory (after showing them; kept only if it still validates)")
    p.add_argument("--site", metavar="ID", help="with --add-to: the site the devices found are at")
    p.set_defaults(func=_collector_command("cmd_discover"))

    p = sub.add_parser("config", help="network device configurations over SSH: backups, history, diffs")
    cfsub = p.add_subparsers(dest="config_command", required=True, metavar="SUBCOMMAND")
    backup = cfsub.add_parser("backup", help="back up running configurations now", description="Fetch the running configuration of one inventory device, or of every device with [device.ssh], and store it with history; prints what changed, secrets redacted.")
    backup.add_argument("device", nargs="?", metavar="DEVICE", help="device id in inventory.toml (default: every device with [device.ssh])")
    inventory_arg(backup)
    backup.add_argument("--max-sessions", type=int, default=None, metavar="N", help="concurrent SSH sessions (default 4)")
    backup.add_argument("--json", action="store_true")
    backup.set_defaults(func=_collector_command("cmd_config_backup"))
    hist = cfsub.add_parser("history", help="stored configuration revisions of a device")
    hist.add_argument("device", metavar="DEVICE")
    inventory_arg(hist)
    hist.add_argument("--json", action="store_true")
    hist.set_defaults(func=_collector_command("cmd_config_history"))
    diff = cfsub.add_parser("diff", help="redacted diff between two revisions (default: the latest change)")
    diff.add_argument("device", metavar="DEVICE")
    inventory_arg(diff)
    diff.add_argument("--from", dest="from_rev", metavar="REV")
    diff.add_argument("--to", dest="to_rev", metavar="REV")
    diff.set_defaults(func=_collector_command("cmd_config_diff"))

    p = sub.add_parser("ssh", help="run a command on a network device over SSH")
    shsub = p.add_subparsers(dest="ssh_command", required=True, metavar="SUBCOMMAND")
    shrun = shsub.add_parser(
        "run",
        help="run one command on a device and keep its output with the device's history",
        description="Run one CLI command on an inventory device over SSH. Only read-only commands unless the device's [device.ssh] allows more.",
    )
    shrun.add_argument("device", metavar="DEVICE", help="device id in inventory.toml")
    shrun.add_argument("words", nargs="+", metavar="COMMAND", help="the command, e.g. show interfaces status; put -- before a command with options: nettvakt ssh run srv1 -- df -h")
    inventory_arg(shrun)
    shrun.add_argument("--json", action="store_true")
    shrun.set_defaults(func=_collector_command("cmd_ssh_run"))

    p = sub.add_parser("alerts", help="what is firing and what fired recently", description="List firing alerts and recent alert state changes from the collector's local store.")
    inventory_arg(p)
    p.add_argument("--recent", type=parse_duration, default=24 * 3600.0, metavar="DURATION", help="how far back to list state changes (default 24h)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_collector_command("cmd_alerts"))

    p = sub.add_parser("ack", help="acknowledge a firing alert: someone is on it, repeats stop",
                       description="Mark a firing alert as being worked on: it is no longer repeated (it still resolves), "
                       "and the status page, `nettvakt alerts` and the alert history say who and when.")
    p.add_argument("rule", metavar="RULE", help="the alert's rule id, as `nettvakt alerts` shows it")
    p.add_argument("subject", metavar="SUBJECT", help="what it is about: a device, agent, site, device/ifname or target@host")
    inventory_arg(p)
    p.add_argument("--comment", default="", help="what is being done")
    p.add_argument("--author", default="", help="who is on it (default: your user name)")
    p.set_defaults(func=_collector_command("cmd_ack"))

    p = sub.add_parser("silence", help="silence alerts for a while (maintenance, known problems)")
    slsub = p.add_subparsers(dest="silence_command", required=True, metavar="SUBCOMMAND")
    sadd = slsub.add_parser("add", help="silence matching alerts until an expiry", description="Silence alerts matching every given site, rule and subject until the expiry; the running collector picks it up.")
    inventory_arg(sadd)
    sadd.add_argument("--site", action="append", default=[], metavar="SITE", help="site id (repeatable)")
    sadd.add_argument("--rule", action="append", default=[], metavar="RULE", help="rule id or rule kind (repeatable)")
    sadd.add_argument("--subject", action="append", default=[], metavar="SUBJECT", help="agent, device, probe or interface (repeatable)")
    expiry = sadd.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--for", dest="duration", type=parse_duration, metavar="DURATION", help="how long, e.g. 2h")
    expiry.add_argument("--until", metavar="TIME", help="ISO time it ends, e.g. 2026-12-06T14:00 (local time of [alerting] timezone)")
    sadd.add_argument("--comment", default="", help="why (shown in listings)")
    sadd.add_argument("--author", default="", help="who")
    sadd.add_argument("--json", action="store_true")
    sadd.set_defaults(func=_collector_command("cmd_silence_add"))
    slist = slsub.add_parser("list", help="active silences")
    inventory_arg(slist)
    slist.add_argument("--json", action="store_true")
    slist.set_defaults(func=_collector_command("cmd_silence_list"))
    srem = slsub.add_parser("remove", help="end a silence now")
    srem.add_argument("silence_id", metavar="ID")
    inventory_arg(srem)
    srem.set_defaults(func=_collector_command("cmd_silence_remove"))

    p = sub.add_parser(
        "diagnose",
        help="explain slowness and loss at a site",
        description="Locate and explain slowness and loss for a site from agent probes and SNMP data: a verdict per finding, with confidence, evidence and times.",
    )
    p.add_argument("site", metavar="SITE", help="site id in inventory.toml")
    inventory_arg(p)
    p.add_argument("--since", type=parse_duration, default=24 * 3600.0, metavar="DURATION", help="how far back to look (default 24h)")
    p.add_argument("--source", choices=["auto", "influx", "local"], default="auto", help="where to read (default: InfluxDB when configured, else the collector's local store)")
    p.add_argument("--lang", choices=["nb", "en"], default=None, help="language (default: [alerting] language, nb)")
    p.add_argument("--json", action="store_true", help="machine-readable verdicts")
    p.add_argument("--markdown", metavar="PATH", help="also write a Markdown report to PATH")
    p.set_defaults(func=_collector_command("cmd_diagnose"))

    p = sub.add_parser("report", help="reports for managers: hardware renewal, server use")
    rsub = p.add_subparsers(dest="report_command", required=True, metavar="SUBCOMMAND")
    hw = rsub.add_parser(
        "hardware",
        help="age, due year and cost of every machine, with a five-year forecast",
        description="Every PC, server, printer, switch and firewall with its age and its source, expected lifetime, due year and replacement cost, grouped by site and department, with a five-year forecast.",
    )
    inventory_arg(hw)
    hw.add_argument("--year", type=int, metavar="N", help="first budget year of the forecast (default: this year)")
    hw.add_argument(
        "--format", choices=["table", "csv", "html", "pdf", "json"], default="table",
        help="table (terminal); csv (nb: ';' and decimal comma, for Norwegian Excel; en: ',' and '.'); json; html (one self-contained file with the chart); pdf (needs --output)",
    )
    hw.add_argument("--output", metavar="PATH", help="write here instead of standard output (required for pdf)")
    hw.add_argument("--lang", choices=["nb", "en"], default=None, help="language (default: [alerting] language, nb)")
    hw.set_defaults(func=_collector_command("cmd_report_hardware"))
    srv = rsub.add_parser(
        "servers",
        help="applications, ports and use of every server; consolidation candidates",
        description="Per server: the applications it runs (listening services), their ports, and average and peak CPU, memory and disk use; servers with little use listed as candidates for consolidation.",
    )
    inventory_arg(srv)
    srv.add_argument("--since", type=parse_duration, default=30 * 86400.0, metavar="DURATION", help="period to summarise (default 30d)")
    srv.add_argument("--source", choices=["auto", "influx", "local"], default="auto")
    srv.add_argument(
        "--format", choices=["table", "csv", "html", "json"], default="table",
        help="table (terminal); csv (nb: ';' and decimal comma; en: ',' and '.'); json; html (one self-contained file)",
    )
    srv.add_argument("--output", metavar="PATH", help="write here instead of standard output")
    srv.add_argument("--lang", choices=["nb", "en"], default=None)
    srv.set_defaults(func=_collector_command("cmd_report_servers"))

    p = sub.add_parser("probe", help="run one probe once and print its point", description="Run one round of a probe, for debugging in the field.")
    p.add_argument("kind", metavar="KIND", help="icmp, tcp, http, dns, traceroute")
    p.add_argument("target", metavar="TARGET", help="host (icmp, traceroute), host:port (tcp), URL (http), name (dns)")
    p.add_argument("--count", type=int, help="icmp: echoes in the burst; traceroute: probes per hop")
    p.add_argument("--max-hops", type=int, help="traceroute: give up after this many hops (default 30)")
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
