"""Collector-side subcommands of `nettvakt` (imported only when one is invoked)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from agent.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, run_until_signal
from collector.config import InventoryError, load_inventory


def _inventory_path(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "path", None) or args.inventory)


def cmd_check(args: argparse.Namespace) -> int:
    path = _inventory_path(args)
    try:
        inventory = load_inventory(path)
    except InventoryError as exc:
        if args.json:
            print(json.dumps({"ok": False, "file": exc.path, "errors": exc.problems}, ensure_ascii=False))
        else:
            for problem in exc.problems:
                print(f"{exc.path}: {problem}", file=sys.stderr)
            print(f"{exc.path}: {len(exc.problems)} problem(s)", file=sys.stderr)
        return EXIT_FAIL
    unresolved = inventory.unresolved_secrets()
    ok = not (args.strict and unresolved)
    summary = {
        "sites": len(inventory.site),
        "devices": len(inventory.device),
        "agents": len(inventory.agent),
        "probes": len(inventory.probe),
        "channels": len(inventory.channel),
    }
    if args.json:
        print(json.dumps({"ok": ok, "file": str(path), "summary": summary, "unresolved_secrets": unresolved}, ensure_ascii=False))
    else:
        for problem in unresolved:
            print(f"{path}: {'error' if args.strict else 'warning'}: {problem}", file=sys.stderr)
        counts = ", ".join(f"{n} {k}" for k, n in summary.items())
        print(f"{path}: {'OK' if ok else 'FAILED'} ({counts})")
    return EXIT_OK if ok else EXIT_FAIL


def cmd_collector_run(args: argparse.Namespace) -> int:
    from collector.app import serve

    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    return run_until_signal(serve(inventory, args.listen, inventory_path=Path(args.inventory)))


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
    try:
        make_self_signed(cert, key, list(args.name), days=args.days, overwrite=args.force)
    except TlsError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"wrote {cert} and {key} (key readable by its owner only) for {', '.join(args.name)}")
    print("in inventory.toml:")
    print("[collector]")
    print(f'tls_cert = "{cert.resolve()}"')
    print(f'tls_key = "file:{key.resolve()}"')
    print(f"and on every agent: --ca-file {cert.name} (a copy of {cert})")
    return EXIT_OK


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
