"""`nettvakt config backup [DEVICE]`, `config history DEVICE`, `config diff DEVICE [--from REV] [--to REV]`.

`run_backup` backs up the running configuration of inventory devices now.

Without DEVICE every device with a `[device.ssh]` table that has a configuration to back up
(a `device_type = "linux"` one only with `config_files`, see collector.ssh.linuxfiles).
Backups go to `<data_dir>/config-backups` (see collector.ssh.configs), host keys to
`<data_dir>/ssh/known_hosts`.

Prints one line per device (`changed`, `unchanged` or `FAILED: reason (detail)`), and the
redacted diff of each change. Exit codes: 0 every device backed up, 1 at least one failed,
2 bad usage (inventory does not load, unknown DEVICE, DEVICE without ssh).

`run_history` lists the stored revisions; `run_diff` prints the redacted diff between two
(default: the latest change). Both read the backups only; they never log in to a device.

`run_command` (`nettvakt ssh run DEVICE COMMAND...`) runs one command that
collector.ssh.commands allows (read-only unless the device's `allow_commands` says more),
prints its output redacted and keeps it with the device's history (ConfigStore.save_run).
Exit codes: 0 ran, 1 the session failed, 2 refused or bad usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path

from agent.commandline import Command, add_inventory_argument
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from collector.config import Device, InventoryError, load_inventory

from .commands import normalise_command, refusal
from .configs import BackupError, ConfigStore
from .session import DEFAULT_MAX_SESSIONS, SshFailure, SshRunner, SshTarget, config_command, target_from_inventory
from .tasks import DeviceRun, run_devices

PROG = "nettvakt config backup"


def backup_dir(data_dir: Path) -> Path:
    return data_dir / "config-backups"


def known_hosts_path(data_dir: Path) -> Path:
    return data_dir / "ssh" / "known_hosts"


def run_backup(args: argparse.Namespace) -> int:
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    wanted = getattr(args, "device", None)
    devices = [d for d in inventory.device if _has_config(d)]
    if wanted:
        entry = next((d for d in inventory.device if d.id == wanted), None)
        if entry is None:
            print(f"{PROG}: {args.inventory}: no device with id {wanted!r}", file=sys.stderr)
            return EXIT_USAGE
        if not _has_config(entry):
            hint = " (a linux device needs config_files, the files that are its configuration)" if entry.ssh is not None else ""
            print(f"{PROG}: {args.inventory}: device {wanted!r} has no [device.ssh] table with a configuration to back up{hint}", file=sys.stderr)
            return EXIT_USAGE
        devices = [entry]
    if not devices:
        print(f"{PROG}: {args.inventory}: no device has a [device.ssh] table", file=sys.stderr)
        return EXIT_USAGE

    targets: list[SshTarget] = []
    failed: list[DeviceRun] = []
    for device in devices:
        try:
            targets.append(target_from_inventory(device, inventory.base_dir))
        except SshFailure as exc:
            failed.append(DeviceRun(device.id, error=exc))

    data_dir = inventory.data_dir()
    store = ConfigStore(backup_dir(data_dir))
    runner = SshRunner(known_hosts_path(data_dir), max_sessions=getattr(args, "max_sessions", None) or DEFAULT_MAX_SESSIONS)
    try:
        runs = asyncio.run(run_devices(runner, targets, facts=False, store=store)) if targets else []
    except (BackupError, OSError) as exc:  # the backup folder or git: the data cannot be kept
        print(f"{PROG}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        runner.close()
    runs = failed + runs
    if getattr(args, "json", False):
        print(json.dumps([_as_json(r) for r in runs], ensure_ascii=False, indent=2))
    else:
        for run in runs:
            print(_line(run))
            if run.backup is not None and run.backup.changed and run.backup.diff:
                print(run.backup.diff, end="" if run.backup.diff.endswith("\n") else "\n")
    if failed:  # credentials that do not resolve are the configuration's to fix, not the device's
        return EXIT_USAGE
    return EXIT_OK if all(_ok(r) for r in runs) else EXIT_FAIL


def _has_config(device: Device) -> bool:
    return device.ssh is not None and config_command(device.ssh.device_type, device.ssh.config_files) is not None


def _ok(run: DeviceRun) -> bool:
    return run.error is None and run.backup_error is None and run.backup is not None


def _line(run: DeviceRun) -> str:
    if run.error is not None:
        return f"{run.device}: FAILED: {run.error.reason}" + (f" ({run.error.detail})" if run.error.detail else "")
    if run.backup_error is not None or run.backup is None:
        return f"{run.device}: FAILED: no configuration ({run.backup_error})"
    if run.backup.changed:
        return f"{run.device}: changed (revision {run.backup.revision[:12] if run.backup.revision else '?'})"
    return f"{run.device}: unchanged"


def _as_json(run: DeviceRun) -> dict[str, object]:
    out: dict[str, object] = {"device": run.device, "ok": _ok(run)}
    if run.error is not None:
        out.update(reason=run.error.reason, detail=run.error.detail)
    elif run.backup_error is not None:
        out.update(reason="no configuration", detail=run.backup_error)
    if run.backup is not None:
        out.update(changed=run.backup.changed, revision=run.backup.revision, diff=run.backup.diff)
    return out


def _store_for(args: argparse.Namespace, prog: str) -> tuple[ConfigStore, str] | int:
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not any(d.id == args.device for d in inventory.device):
        print(f"{prog}: {args.inventory}: no device with id {args.device!r}", file=sys.stderr)
        return EXIT_USAGE
    return ConfigStore(backup_dir(inventory.data_dir())), args.device


def run_history(args: argparse.Namespace) -> int:
    """`nettvakt config history DEVICE`: one line per stored revision, newest first."""
    found = _store_for(args, "nettvakt config history")
    if isinstance(found, int):
        return found
    store, device = found
    revisions = store.history(device)
    if getattr(args, "json", False):
        print(json.dumps([{"revision": r.rev, "time": r.time.isoformat(), "message": r.message} for r in revisions], indent=2))
    else:
        for r in revisions:
            print(f"{r.rev[:12]}  {r.time.isoformat()}  {r.message}")
        if not revisions:
            print(f"{device}: no backups yet (nettvakt config backup {device})")
    return EXIT_OK


def run_diff(args: argparse.Namespace) -> int:
    """`nettvakt config diff DEVICE [--from REV] [--to REV]`: redacted diff, default the latest change."""
    found = _store_for(args, "nettvakt config diff")
    if isinstance(found, int):
        return found
    store, device = found
    try:
        diff = store.diff(device, getattr(args, "from_rev", None), getattr(args, "to_rev", None))
    except BackupError as exc:
        print(f"nettvakt config diff: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(diff, end="" if diff.endswith("\n") or not diff else "\n")
    return EXIT_OK


def _pattern_for(command: str) -> str:
    """A regular expression matching exactly `command`, readable (spaces left unescaped)."""
    return re.escape(command).replace("\\ ", " ")


def run_command(args: argparse.Namespace) -> int:
    """`nettvakt ssh run DEVICE COMMAND...`."""
    prog = "nettvakt ssh run"
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    device: Device | None = next((d for d in inventory.device if d.id == args.device), None)
    if device is None:
        print(f"{prog}: {args.inventory}: no device with id {args.device!r}", file=sys.stderr)
        return EXIT_USAGE
    if device.ssh is None:
        print(f"{prog}: {args.inventory}: device {device.id!r} has no [device.ssh] table", file=sys.stderr)
        return EXIT_USAGE
    command = normalise_command(" ".join(args.words))
    why = refusal(device.ssh.device_type, command, device.ssh.allow_commands)
    if why is not None:
        print(
            f"{prog}: {device.id}: refused {command!r}: {why}.\n"
            f"Only read-only commands run unless the device allows more: add a regular expression matching the "
            f"whole command to allow_commands in the [device.ssh] table of device {device.id!r} in {args.inventory}, "
            f"e.g. allow_commands = [{json.dumps(_pattern_for(command))}]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        target = target_from_inventory(device, inventory.base_dir)
    except SshFailure as exc:
        print(f"{prog}: {args.inventory}: {exc}", file=sys.stderr)
        return EXIT_USAGE

    data_dir = inventory.data_dir()
    runner = SshRunner(known_hosts_path(data_dir), max_sessions=1)
    try:
        result = runner.run_blocking(target, [command])
    finally:
        runner.close()
    as_json = getattr(args, "json", False)
    if result.error is not None:
        error = result.error
        if as_json:
            print(json.dumps({"device": device.id, "command": command, "ok": False, "reason": error.reason, "detail": error.detail}, ensure_ascii=False))
        print(f"{device.id}: FAILED: {error.reason}" + (f" ({error.detail})" if error.detail else ""), file=sys.stderr)
        return EXIT_FAIL
    output = result.outputs[command]
    store = ConfigStore(backup_dir(data_dir))
    try:
        full, readable = store.save_run(device.id, command, output)
    except BackupError as exc:
        print(f"{prog}: {device.id}: output not saved: {exc}", file=sys.stderr)
        return EXIT_FAIL
    shown = store.redact(output)
    if as_json:
        print(json.dumps({"device": device.id, "command": command, "ok": True, "output": shown, "saved": str(readable), "full": str(full)}, ensure_ascii=False))
    else:
        print(shown, end="" if shown.endswith("\n") or not shown else "\n")
        print(f"# saved as {readable} (secrets redacted; exact output in {full})", file=sys.stderr)
    return EXIT_OK


def _backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", nargs="?", metavar="DEVICE", help="device id in inventory.toml (default: every device with [device.ssh])")
    add_inventory_argument(parser)
    parser.add_argument("--max-sessions", type=int, default=None, metavar="N", help="concurrent SSH sessions (default 4)")
    parser.add_argument("--json", action="store_true")


def _history_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE")
    add_inventory_argument(parser)
    parser.add_argument("--json", action="store_true")


def _diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE")
    add_inventory_argument(parser)
    parser.add_argument("--from", dest="from_rev", metavar="REV")
    parser.add_argument("--to", dest="to_rev", metavar="REV")


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", metavar="DEVICE", help="device id in inventory.toml")
    parser.add_argument("words", nargs="+", metavar="COMMAND", help="the command, e.g. show interfaces status; put -- before a command with options: nettvakt ssh run srv1 -- df -h")
    add_inventory_argument(parser)
    parser.add_argument("--json", action="store_true")


COMMANDS = (
    Command("config", help="network device configurations over SSH: backups, history, diffs", subcommands=(
        Command("backup", help="back up running configurations now",
                description="Fetch the running configuration of one inventory device, or of every device with [device.ssh], "
                "and store it with history; prints what changed, secrets redacted.",
                arguments=_backup_arguments, run=run_backup),
        Command("history", help="stored configuration revisions of a device", arguments=_history_arguments, run=run_history),
        Command("diff", help="redacted diff between two revisions (default: the latest change)", arguments=_diff_arguments, run=run_diff),
    )),
    Command("ssh", help="run a command on a network device over SSH", subcommands=(
        Command("run", help="run one command on a device and keep its output with the device's history",
                description="Run one CLI command on an inventory device over SSH. Only read-only commands unless the device's "
                "[device.ssh] allows more.",
                arguments=_run_arguments, run=run_command),
    )),
)
