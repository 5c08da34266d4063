"""Collector-side subcommands of `nettvakt` (imported only when one is invoked)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, run_until_signal
from collector.config import InventoryError, load_inventory, offline_notes
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
    summary = {
        "sites": len(inventory.site),
        "devices": len(inventory.device),
        "agents": len(inventory.agent),
        "probes": len(inventory.probe),
        "channels": len(inventory.channel),
    }
    if args.json:
        print(json.dumps({"ok": True, "file": str(path), "summary": summary, "not_checked_offline": notes}, ensure_ascii=False))
    else:
        for note in notes:
            print(f"{path}: note: not checked offline: {note}", file=sys.stderr)
        counts = ", ".join(f"{n} {k}" for k, n in summary.items())
        print(f"{path}: OK ({counts})")
    return EXIT_OK


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
        return run_until_signal(serve(inventory, args.listen, inventory_path=Path(args.inventory)))
    except StartupError as exc:
        print(f"nettvakt collector run: {exc}", file=sys.stderr)
        return EXIT_USAGE


def cmd_demo(args: argparse.Namespace) -> int:
    from collector.demo import run_demo

    return run_demo(args)


def cmd_snmp_poll(args: argparse.Namespace) -> int:
    from collector.snmp.cli import run_poll

    return run_poll(args)


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


def cmd_init(args: argparse.Namespace) -> int:
    from collector.init import run_init

    return run_init(args)


def cmd_discover(args: argparse.Namespace) -> int:
    from collector.snmp.discover import run_discover

    return run_discover(args)


def cmd_config_backup(args: argparse.Namespace) -> int:
    from collector.ssh.cli import run_backup

    return run_backup(args)


def cmd_config_history(args: argparse.Namespace) -> int:
    from collector.ssh.cli import run_history

    return run_history(args)


def cmd_config_diff(args: argparse.Namespace) -> int:
    from collector.ssh.cli import run_diff

    return run_diff(args)


def cmd_ssh_run(args: argparse.Namespace) -> int:
    from collector.ssh.cli import run_command

    return run_command(args)


def cmd_alerts(args: argparse.Namespace) -> int:
    from collector.alerting.cli import run_alerts

    return run_alerts(args)


def cmd_ack(args: argparse.Namespace) -> int:
    from collector.alerting.cli import run_ack

    return run_ack(args)


def cmd_silence_add(args: argparse.Namespace) -> int:
    from collector.alerting.cli import run_silence_add

    return run_silence_add(args)


def cmd_silence_list(args: argparse.Namespace) -> int:
    from collector.alerting.cli import run_silence_list

    return run_silence_list(args)


def cmd_silence_remove(args: argparse.Namespace) -> int:
    from collector.alerting.cli import run_silence_remove

    return run_silence_remove(args)


def cmd_diagnose(args: argparse.Namespace) -> int:
    from collector.diagnose.cli import run_diagnose

    return run_diagnose(args)


def cmd_report_hardware(args: argparse.Namespace) -> int:
    from collector.reports.cli import run_hardware

    return run_hardware(args)


def cmd_report_servers(args: argparse.Namespace) -> int:
    from collector.reports.cli import run_servers

    return run_servers(args)
