"""`nettvakt alerts`, `nettvakt ack` and `nettvakt silence add|list|remove`.

They work on the collector's data folder (run them on the collector's machine, with the
collector's inventory.toml): the running collector re-reads the silences file before each
evaluation, and writes its alert state and history there on every change. No running
collector is needed to list what was firing when it stopped.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import sys
import time
import zoneinfo
from pathlib import Path

from agent.commandline import Command, add_inventory_argument, parse_duration
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from collector import clock
from collector.alerting.admin import AckError, acknowledge, alert_listing, unknown_names
from collector.alerting.rules import SITE_RULE
from collector.alerting.silences import SILENCES_FILE, Silence, SilenceError, SilenceStore
from collector.config import CollectorNameError, Inventory, InventoryError, load_inventory


def _inventory(args: argparse.Namespace, command: str) -> Inventory | None:
    """The inventory of the collector whose data folder the command works on (`--collector` where it names several)."""
    try:
        return load_inventory(args.inventory).for_collector(args.collector, "--collector")
    except InventoryError as exc:
        print(str(exc), file=sys.stderr)
    except CollectorNameError as exc:
        print(f"nettvakt {command}: {args.inventory}: {exc}", file=sys.stderr)
    return None


def _local(t: float, zone: zoneinfo.ZoneInfo) -> str:
    return clock.local(t, zone)


def run_alerts(args: argparse.Namespace) -> int:
    if args.all:
        return _run_alerts_all(args)
    inventory = _inventory(args, "alerts")
    if inventory is None:
        return EXIT_USAGE
    try:
        listing = alert_listing(inventory, args.recent)
    except (OSError, ValueError) as exc:
        print(f"nettvakt alerts: cannot read the alert state in {inventory.data_dir()}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps(listing, ensure_ascii=False))
        return EXIT_OK
    for line in _listing_lines(inventory, listing, args.recent):
        print(line)
    return EXIT_OK


def _run_alerts_all(args: argparse.Namespace) -> int:
    """Every collector's alerts over its HTTP API; exit 1 when one of them cannot be read (the others are shown)."""
    from collector.alerting.overview import read_all

    if args.collector is not None:
        print("nettvakt alerts: --all reads every collector; leave --collector out", file=sys.stderr)
        return EXIT_USAGE
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if not inventory.collectors:  # one collector, whose data folder is here
        args.all = False
        return run_alerts(args)
    answers = read_all(inventory, args.recent, args.ca_file)
    if args.json:
        print(json.dumps({"collectors": {a.name: a.to_json() for a in answers}}, ensure_ascii=False))
    else:
        for answer in answers:
            node = inventory.collectors[answer.name]
            print(f"== collector {answer.name} ({answer.url}): sites {', '.join(node.sites)}")
            if answer.listing is None:
                print(f"  cannot read its alerts: {answer.error}")
            else:
                text = "\n".join(_listing_lines(inventory, answer.listing, args.recent))
                print("\n".join("  " + line if line else line for line in text.splitlines()))
            print()
    unread = [a for a in answers if a.listing is None]
    for answer in unread:
        print(f"nettvakt alerts: collector {answer.name!r} at {answer.url}: {answer.error}", file=sys.stderr)
    return EXIT_FAIL if unread else EXIT_OK


def _listing_lines(inventory: Inventory, listing: dict, recent_s: float) -> list[str]:
    firing, recent, silences = listing["firing"], listing["recent"], listing["silences"]
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    lines = [f"Firing ({len(firing)}):", *firing_lines(inventory, firing, zone)]
    lines.append(f"\nState changes in the last {_span(recent_s)} ({len(recent)}):")
    for e in recent:
        lines.append(f"  {_local(float(e['time']), zone)}  {e['state']:<9} {e.get('severity') or '':<8} {e['rule']:<20} {e['subject']:<20} {e.get('summary') or ''}")
    if silences:
        lines.append(f"\nActive silences ({len(silences)}):")
        lines += ["  " + _silence_line(Silence.from_json(item), zone) for item in silences]
    return lines


def firing_lines(inventory: Inventory, firing: list[dict], zone: zoneinfo.ZoneInfo) -> list[str]:
    """What fires, by site: a site's own outage first with what it folds under it, the sites with
    the most trouble first; names before ids."""
    names = {**{d.id: d.name for d in inventory.device}, **{a.id: a.name for a in inventory.agent}}
    site_names = {s.id: s.name for s in inventory.site}
    by_site: dict[str, list[dict]] = {}
    for alert in firing:
        by_site.setdefault(alert.get("site") or "", []).append(alert)

    def site_alert(alerts: list[dict]) -> dict | None:
        return next((a for a in alerts if a.get("kind") == SITE_RULE), None)

    def weight(site: str) -> tuple:
        outage = site_alert(by_site[site])
        return (outage is None, -len(outage.get("affected") or ()) if outage else 0, -len(by_site[site]), site_names.get(site, site))

    lines = []
    for site in sorted(by_site, key=weight):
        alerts = by_site[site]
        outage = site_alert(alerts)
        lines.append(f"  {site_names.get(site, site or 'the collector')} ({site or '-'})")
        if outage is not None:
            acked = f" (acknowledged by {outage['acked_by']} {_local(float(outage['acked_at']), zone)})" if outage.get("acked_by") else ""
            lines.append(f"    {_local(float(outage.get('since') or 0), zone)}  {outage.get('severity') or '':<8} {outage.get('summary') or ''}{acked}")
        for a in sorted((a for a in alerts if a is not outage), key=lambda a: a.get("since") or 0):
            subject = str(a.get("subject", ""))
            label = f"{names[subject]} ({subject})" if subject in names else subject
            note = "  [folded into the site outage]" if outage is not None else ""
            flag = " (flapping)" if a.get("flapping") else ""
            if a.get("acked_by"):
                flag += f" (acknowledged by {a['acked_by']} {_local(float(a['acked_at']), zone)})"
            indent = "      " if outage is not None else "    "
            lines.append(f"{indent}{_local(float(a.get('since') or 0), zone)}  {a.get('severity') or '':<8} {a['rule']:<16} {label}: {a.get('summary') or ''}{flag}{note}")
    return lines


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _silence_line(s: Silence, zone: zoneinfo.ZoneInfo) -> str:
    what = ", ".join(f"{k}={','.join(v)}" for k, v in (("site", s.sites), ("rule", s.rules), ("subject", s.subjects)) if v)
    who = f" by {s.author}" if s.author else ""
    why = f": {s.comment}" if s.comment else ""
    return f"{s.id}  until {_local(s.until, zone)}  {what}{who}{why}"


def _until(args: argparse.Namespace, inventory: Inventory, now: float) -> float:
    if args.duration is not None:
        return now + float(args.duration)
    try:
        when = dt.datetime.fromisoformat(args.until)
    except ValueError:
        raise SilenceError(f"--until {args.until!r} is not an ISO time such as 2026-12-06T14:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zoneinfo.ZoneInfo(inventory.alerting.timezone))
    return when.timestamp()


def run_silence_add(args: argparse.Namespace) -> int:
    inventory = _inventory(args, "silence add")
    if inventory is None:
        return EXIT_USAGE
    problems = unknown_names(inventory, args.site, args.rule, args.subject)
    if problems:
        for problem in problems:
            print(f"nettvakt silence add: {problem}", file=sys.stderr)
        return EXIT_USAGE
    now = time.time()
    store = SilenceStore.load(inventory.data_dir() / SILENCES_FILE)
    try:
        silence = store.add(
            now, _until(args, inventory, now), sites=args.site, rules=args.rule, subjects=args.subject,
            comment=args.comment, author=args.author,
        )
    except SilenceError as exc:
        print(f"nettvakt silence add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # SilenceStoreError, or the data folder cannot be written
        print(f"nettvakt silence add: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps(silence.to_json(), ensure_ascii=False))
    else:
        print("silenced: " + _silence_line(silence, zoneinfo.ZoneInfo(inventory.alerting.timezone)))
    return EXIT_OK


def run_ack(args: argparse.Namespace) -> int:
    inventory = _inventory(args, "ack")
    if inventory is None:
        return EXIT_USAGE
    try:
        ack = acknowledge(inventory, args.rule, args.subject, args.author or getpass.getuser(), args.comment)
    except (AckError, ValueError) as exc:  # nothing fires under that name; a comment too long
        print(f"nettvakt ack: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"nettvakt ack: {exc}", file=sys.stderr)
        return EXIT_FAIL
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    print(f"acknowledged {ack.rule} {ack.subject} by {ack.by} at {_local(ack.at, zone)}: no repeats until it resolves")
    return EXIT_OK


def run_silence_list(args: argparse.Namespace) -> int:
    inventory = _inventory(args, "silence list")
    if inventory is None:
        return EXIT_USAGE
    store = SilenceStore.load(inventory.data_dir() / SILENCES_FILE)
    silences = store.active(time.time())
    if store.read_error is not None:
        print(f"nettvakt silence list: {store.read_error}", file=sys.stderr)
        return EXIT_FAIL
    if args.json:
        print(json.dumps([s.to_json() for s in silences], ensure_ascii=False))
        return EXIT_OK
    zone = zoneinfo.ZoneInfo(inventory.alerting.timezone)
    if not silences:
        print("no active silences")
    for s in silences:
        print(_silence_line(s, zone))
    return EXIT_OK


def run_silence_remove(args: argparse.Namespace) -> int:
    inventory = _inventory(args, "silence remove")
    if inventory is None:
        return EXIT_USAGE
    try:
        removed = SilenceStore.load(inventory.data_dir() / SILENCES_FILE).remove(args.silence_id)
    except OSError as exc:
        print(f"nettvakt silence remove: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if removed:
        print(f"silence {args.silence_id} removed")
        return EXIT_OK
    # An id that names nothing is a mistake on the command line, like an unknown device.
    print(f"nettvakt silence remove: no active silence {args.silence_id!r} (see: nettvakt silence list)", file=sys.stderr)
    return EXIT_USAGE


def _add_collector_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--collector", metavar="NAME",
                        help="which collector's data folder, where the inventory names several ([collectors]); run it on that collector's machine")


def _alerts_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    _add_collector_argument(parser)
    parser.add_argument("--all", action="store_true",
                        help="every collector the inventory names, read over each one's HTTP API (exit 1 if one cannot be read)")
    parser.add_argument("--ca-file", type=Path, metavar="PATH", help="with --all: certificate(s) to trust for the collectors' HTTPS")
    parser.add_argument("--recent", type=parse_duration, default=24 * 3600.0, metavar="DURATION", help="how far back to list state changes (default 24h)")
    parser.add_argument("--json", action="store_true")


def _ack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rule", metavar="RULE", help="the alert's rule id, as `nettvakt alerts` shows it")
    parser.add_argument("subject", metavar="SUBJECT", help="what it is about: a device, agent, site, device/ifname or target@host")
    add_inventory_argument(parser)
    _add_collector_argument(parser)
    parser.add_argument("--comment", default="", help="what is being done")
    parser.add_argument("--author", default="", help="who is on it (default: your user name)")


def _silence_add_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    _add_collector_argument(parser)
    parser.add_argument("--site", action="append", default=[], metavar="SITE", help="site id (repeatable)")
    parser.add_argument("--rule", action="append", default=[], metavar="RULE", help="rule id or rule kind (repeatable)")
    parser.add_argument("--subject", action="append", default=[], metavar="SUBJECT", help="agent, device, probe or interface (repeatable)")
    expiry = parser.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--for", dest="duration", type=parse_duration, metavar="DURATION", help="how long, e.g. 2h")
    expiry.add_argument("--until", metavar="TIME", help="ISO time it ends, e.g. 2026-12-06T14:00 (local time of [alerting] timezone)")
    parser.add_argument("--comment", default="", help="why (shown in listings)")
    parser.add_argument("--author", default="", help="who")
    parser.add_argument("--json", action="store_true")


def _silence_list_arguments(parser: argparse.ArgumentParser) -> None:
    add_inventory_argument(parser)
    _add_collector_argument(parser)
    parser.add_argument("--json", action="store_true")


def _silence_remove_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("silence_id", metavar="ID")
    add_inventory_argument(parser)
    _add_collector_argument(parser)


COMMANDS = (
    Command("alerts", help="what is firing and what fired recently",
            description="List firing alerts and recent alert state changes from the collector's local store; "
            "with --all, of every collector the inventory names, over their HTTP API.",
            arguments=_alerts_arguments, run=run_alerts),
    Command("ack", help="acknowledge a firing alert: someone is on it, repeats stop",
            description="Mark a firing alert as being worked on: it is no longer repeated (it still resolves), "
            "and the status page, `nettvakt alerts` and the alert history say who and when.",
            arguments=_ack_arguments, run=run_ack),
    Command("silence", help="silence alerts for a while (maintenance, known problems)", subcommands=(
        Command("add", help="silence matching alerts until an expiry",
                description="Silence alerts matching every given site, rule and subject until the expiry; the running collector picks it up.",
                arguments=_silence_add_arguments, run=run_silence_add),
        Command("list", help="active silences", arguments=_silence_list_arguments, run=run_silence_list),
        Command("remove", help="end a silence now", arguments=_silence_remove_arguments, run=run_silence_remove),
    )),
)
