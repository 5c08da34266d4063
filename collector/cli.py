"""`nettvakt check` and `nettvakt collector run|tls`: the collector's own commands.

Each collector command is declared beside the code that runs it (`COMMANDS` of its module);
agent/cli.py names the module and imports it only when the command is invoked or listed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent.commandline import Command, add_inventory_argument
from agent.process import EXIT_OK, EXIT_FAIL, EXIT_USAGE, run_until_signal
from collector.config import CollectorNameError, Inventory, InventoryError, load_inventory, offline_notes
from collector.problems import format_loc


def _inventory_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "path", None) or args.inventory)


def cmd_check(args: argparse.Namespace) -> int:
    path = _inventory_path(args)
    try:
        inventory = load_inventory(path, startup=True, offline=args.offline)
    except InventoryError as exc:
        if args.json:
            errors = [{"line": p.line, "path": format_loc(p.loc), "message": p.text()} for p in exc.found]
            print(json.dumps({"ok": False, "file": exc.path, "errors": errors}, ensure_ascii=False))
        else:
            for line in exc.lines():
                print(line, file=sys.stderr)
            print(f"{exc.path}: {len(exc.found)} problem(s); the collector would not start", file=sys.stderr)
        return EXIT_USAGE
    notes = offline_notes(inventory) if args.offline else []
    storage = {} if args.offline else _storage_check(inventory)
    summary = {
        "sites": len(inventory.site),
        "devices": len(inventory.device),
        "agents": len(inventory.agent),
        "probes": len(inventory.probe),
        "channels": len(inventory.channel),
    }
    if inventory.collectors:
        summary["collectors"] = len(inventory.collectors)
    trouble = bool(storage.get("differences") or storage.get("error"))
    if args.json:
        print(json.dumps({"ok": not trouble, "file": str(path), "summary": summary, "not_checked_offline": notes, "storage": storage},
                         ensure_ascii=False))
    else:
        for note in notes:
            print(f"{path}: note: not checked offline: {note}", file=sys.stderr)
        if storage.get("note"):
            print(f"{path}: note: {storage['note']}", file=sys.stderr)
        for difference in storage.get("differences", []):
            print(f"{path}: storage: {difference['text']}", file=sys.stderr)
        if storage.get("error"):
            print(f"{path}: storage: {storage['error']}", file=sys.stderr)
        counts = ", ".join(f"{n} {k}" for k, n in summary.items())
        store = "VictoriaMetrics" if inventory.storage.kind == "victoriametrics" else "InfluxDB"
        if storage.get("differences"):
            who = ("the collector makes them as asked at its next start" if inventory.storage.rollups_by == "continuous_queries"
                   else f"the collector cannot change them: {store}'s administrator does")
            print(f"{path}: {len(storage['differences'])} difference(s) between {store} and the inventory; {who} (docs/storage.md)",
                  file=sys.stderr)
        print(f"{path}: {f'valid, but {store} is not as it asks' if trouble else 'OK'} ({counts})")
    return EXIT_FAIL if trouble else EXIT_OK


def _storage_check(inventory: Inventory) -> dict[str, Any]:
    """The storage's retention and rollups against what the inventory asks: InfluxDB 1.x's retention
    policies and continuous queries, VictoriaMetrics' one retention (docs/storage.md)."""
    storage = inventory.storage
    if storage.kind == "local":
        return {}
    if storage.kind == "victoriametrics":
        return _victoriametrics_check(inventory)
    if storage.rollups_by == "collector" and storage.kind != "influxdb_v1":
        return {"checked": False, "note": f"storage kind {storage.kind!r}: the collector makes the rollups as it writes; the buckets "
                                          "they go to and how long they are kept are not compared (docs/storage.md)"}
    from collector.influxql import InfluxQueryError
    from collector.retention import storage_differences

    try:
        found = storage_differences(inventory)
    except InfluxQueryError as exc:
        return {"checked": False, "error": f"cannot compare retention policies and continuous queries with InfluxDB at {storage.url}: {exc}"}
    note = None
    if storage.rollups_by == "collector":  # no continuous queries there; the collector writes the rp_config rows (collector/resolution_rows.py)
        found = [d for d in found if d.kind != "continuous query"]
        note = "rollups = 'collector': the collector makes the rollups as it writes; the retention policies and the dashboards' resolution rows are compared"
    return {"checked": True, **({"note": note} if note else {}), "differences": [
        {"kind": d.kind, "name": d.name, "found": d.found, "wanted": d.wanted, "fix": list(d.fix), "text": d.text()} for d in found
    ]}


def _victoriametrics_check(inventory: Inventory) -> dict[str, Any]:
    """VictoriaMetrics keeps everything for one -retentionPeriod: long enough for the hourly rollups?"""
    from collector.rollups import DAY_S, RESOLUTIONS
    from collector.victoriametrics import VictoriaMetricsError, inventory_retention_s, retention_notes

    storage = inventory.storage
    try:
        kept_s = inventory_retention_s(inventory)
    except VictoriaMetricsError as exc:
        return {"checked": False, "error": f"cannot read VictoriaMetrics' -retentionPeriod: {exc}"}
    differences, notes = retention_notes(storage, kept_s)
    longest = max(r.retention_days(storage) for r in RESOLUTIONS.values())
    return {"checked": True, "note": " ".join(notes), "differences": [
        {"kind": "retention", "name": "-retentionPeriod", "found": f"{kept_s / DAY_S:g} days", "wanted": f"{longest} days",
         "fix": [f"-retentionPeriod={longest}d"], "text": text} for text in differences
    ]}


def cmd_collector_run(args: argparse.Namespace) -> int:
    from collector.app import StartupError, serve
    from collector.models import check_host_port

    if args.listen is not None:
        try:
            check_host_port(args.listen)
        except ValueError as exc:
            print(f"nettvakt collector run: --listen {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        inventory = load_inventory(args.inventory, startup=True)
    except InventoryError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        print(f"{exc.path}: {len(exc.found)} problem(s); the collector did not start", file=sys.stderr)
        return EXIT_USAGE
    try:
        inventory = inventory.for_collector(args.name)
    except CollectorNameError as exc:
        print(f"nettvakt collector run: {args.inventory}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_until_signal(serve(inventory, args.listen, inventory_path=Path(args.inventory)))
    except StartupError as exc:
        print(f"nettvakt collector run: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_collector_tls(args: argparse.Namespace) -> int:
    """Make a self-signed certificate and key and print the inventory.toml lines that use them."""
    from collector.tls import TlsError, make_self_signed

    cert, key = Path(args.cert), Path(args.key)
    if args.days < 1 or any(not name.strip() for name in args.name):
        print("nettvakt collector tls: --days must be at least 1 and every --name a host name or address", file=sys.stderr)
        return EXIT_USAGE
    try:
        make_self_signed(cert, key, list(args.name), days=args.days, overwrite=args.force)
    except (TlsError, ValueError) as exc:  # ValueError: a name the certificate cannot hold
        print(f"nettvakt collector tls: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"nettvakt collector tls: cannot write {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {cert} and {key} (key readable by its owner only) for {', '.join(args.name)}")
    print("in inventory.toml:")
    print("[collector]")
    print(f'tls_cert = "{cert.resolve()}"')
    print(f'tls_key = "file:{key.resolve()}"')
    print(f"and on every agent: --ca-file {cert.name} (a copy of {cert})")
    return EXIT_OK


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", metavar="INVENTORY", help="inventory file (overrides --inventory)")
    add_inventory_argument(parser)
    parser.add_argument("--offline", action="store_true", help="checking a file on another machine: secrets and files are notes, not errors")
    parser.add_argument("--json", action="store_true", help="machine-readable result")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    parser.add_argument("--listen", metavar="HOST:PORT", help="override collector.listen")
    parser.add_argument("--name", metavar="NAME", help="which of the inventory's [collectors.NAME] this is (only where it names several)")


def _tls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cert", required=True, metavar="PATH", help="certificate file to write (PEM)")
    parser.add_argument("--key", required=True, metavar="PATH", help="private key file to write (PEM, mode 0600)")
    parser.add_argument("--name", action="append", required=True, metavar="NAME", help="host name or IP address agents use to reach the collector (repeatable)")
    parser.add_argument("--days", type=int, default=825, help="validity in days (default 825)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")


COMMANDS = (
    Command(
        "check", help="validate an inventory file",
        description="Validate inventory.toml as the collector does before it starts: types, unknown keys, references, "
        "probe targets, addresses, secrets and files. Exit 2 with every problem, each with its line. With InfluxDB 1.x "
        "storage, also compare its retention policies and continuous queries with what [storage] asks (not with --offline): "
        "exit 1 with each difference by name.",
        arguments=_check_arguments, run=cmd_check,
    ),
    Command("collector", help="collector commands", subcommands=(
        Command("run", help="run the collector", description="Run the collector: ingest API, pollers, InfluxDB writer.",
                arguments=_run_arguments, run=cmd_collector_run),
        Command("tls", help="make a self-signed certificate and key for HTTPS",
                description="Make a self-signed certificate and key for the collector's HTTPS; agents pin the certificate with --ca-file.",
                arguments=_tls_arguments, run=cmd_collector_tls),
    )),
)
