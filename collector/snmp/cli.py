"""`nettvakt snmp poll`: poll one device and print the points a poll yields.

The device is an inventory entry (`DEVICE`, credentials from inventory.toml) or any address
(`--address HOST[:PORT]` with `--community` or the `--v3-*` options). Rates need two samples,
so the device is polled twice RATE_GAP_S apart; the table says so, `--json` prints the points
of the second poll (state and rates) as one JSON array.

Exit codes: 0 the device answered, 1 it did not, 2 bad usage (unknown device, missing or
unresolvable credentials), each with a message naming the inventory file or the option.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.commandline import Command, add_inventory_argument
from agent.points import Point
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from agent.schema import DECLARED_MEASUREMENTS
from agent.secrets import SecretError, is_secret_ref, resolve_secret
from collector.config import InventoryError, load_inventory
from collector.pollers import snmp_auth

from .poller import DevicePoller
from .profiles import APC_UPS, UPS_MIB
from .session import AUTH_PROTOCOLS, PRIV_PROTOCOLS, SnmpAuth, SnmpSession, close_engines

PROG = "nettvakt snmp poll"
# Long enough for net-snmp's agent, which caches interface counters for about 3 s.
RATE_GAP_S = 4.0
ADDRESS_RETRIES = 1


class UsageError(Exception):
    """Bad arguments or inventory; the message is printed as is and the exit code is 2."""


@dataclass
class Target:
    device_id: str
    site: str
    session: SnmpSession
    profile: str | None = None
    interface_speed_bps: dict[str, float] | None = None
    hardware_kind: str = "network"


def parse_address(text: str) -> tuple[str, int]:
    """'host', 'host:port', '[v6]:port' or a bare IPv6 address -> (host, port); port 161 by default."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"{PROG}: --address {text!r}: expected HOST[:PORT] or [IPV6]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    if not host:
        raise UsageError(f"{PROG}: --address {text!r}: no host")
    if not port_text:
        return host, 161
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{PROG}: --address {text!r}: port must be 1..65535")
    return host, int(port_text)


def _key(option: str, ref: str | None) -> str | None:
    """A v3 key from its env:/file: reference; a key typed on the command line would show in `ps`."""
    if ref is None:
        return None
    if not is_secret_ref(ref):
        raise UsageError(f"{PROG}: {option} must be a reference env:NAME or file:PATH, not the key itself")
    try:
        return resolve_secret(ref)
    except SecretError as exc:
        raise UsageError(f"{PROG}: {option} {exc}") from None


def _address_target(args: argparse.Namespace) -> Target:
    host, port = parse_address(args.address)
    v3_options = {"--auth": args.auth, "--auth-key": args.auth_key, "--priv": args.priv, "--priv-key": args.priv_key}
    version = args.version or ("3" if args.v3_user else "2c")
    if version in ("1", "2c"):
        given = [name for name, value in {"--v3-user": args.v3_user, **v3_options}.items() if value]
        if given:
            raise UsageError(f"{PROG}: {', '.join(given)} only go with SNMPv3 (--version 3 or --v3-user)")
        if not args.community:
            raise UsageError(f"{PROG}: SNMP v{version} needs --community NAME")
        community = args.community
        if is_secret_ref(community):
            try:
                community = resolve_secret(community)
            except SecretError as exc:
                raise UsageError(f"{PROG}: --community {exc}") from None
        auth = SnmpAuth(version, community=community)
    else:
        if args.community:
            raise UsageError(f"{PROG}: --community is for v1/v2c; SNMPv3 uses --v3-user")
        if not args.v3_user:
            raise UsageError(f"{PROG}: SNMPv3 needs --v3-user USER (and --auth/--auth-key, --priv/--priv-key)")
        auth_protocol = args.auth.upper() if args.auth else None
        priv_protocol = args.priv.upper() if args.priv else None
        if auth_protocol is not None and auth_protocol not in AUTH_PROTOCOLS:
            raise UsageError(f"{PROG}: --auth {args.auth!r}: use one of {', '.join(sorted(AUTH_PROTOCOLS))}")
        if priv_protocol is not None and priv_protocol not in PRIV_PROTOCOLS:
            raise UsageError(f"{PROG}: --priv {args.priv!r}: use one of {', '.join(sorted(PRIV_PROTOCOLS))}")
        if (auth_protocol is None) != (args.auth_key is None):
            raise UsageError(f"{PROG}: --auth and --auth-key go together")
        if (priv_protocol is None) != (args.priv_key is None):
            raise UsageError(f"{PROG}: --priv and --priv-key go together")
        try:
            auth = SnmpAuth(
                "3", user=args.v3_user, auth_protocol=auth_protocol, auth_key=_key("--auth-key", args.auth_key),
                priv_protocol=priv_protocol, priv_key=_key("--priv-key", args.priv_key),
            )
        except ValueError as exc:
            raise UsageError(f"{PROG}: {exc}") from None
    session = SnmpSession(host, port, auth, timeout_s=args.timeout, retries=ADDRESS_RETRIES)
    return Target(session.device, "cli", session)


def _inventory_target(args: argparse.Namespace) -> Target:
    extra = [name for name, value in (
        ("--community", args.community), ("--version", args.version), ("--v3-user", args.v3_user),
        ("--auth", args.auth), ("--auth-key", args.auth_key), ("--priv", args.priv), ("--priv-key", args.priv_key),
    ) if value]
    if extra:
        raise UsageError(f"{PROG}: {', '.join(extra)} only go with --address; DEVICE takes its credentials from {args.inventory}")
    try:
        inventory = load_inventory(args.inventory)
    except InventoryError as exc:
        raise UsageError(str(exc)) from None
    index, device = next(((i, d) for i, d in enumerate(inventory.device) if d.id == args.device), (None, None))
    if device is None or index is None:
        known = ", ".join(d.id for d in inventory.device if d.snmp is not None) or "none"
        raise UsageError(f"{PROG}: no device {args.device!r} in {args.inventory} (devices with SNMP: {known})")
    if device.snmp is None:
        raise UsageError(f"{PROG}: {args.inventory}: device[{index}] ({device.id}) has no [device.snmp] table")
    try:
        auth = snmp_auth(inventory, device)
    except (SecretError, ValueError) as exc:
        raise UsageError(f"{PROG}: {args.inventory}: device[{index}].snmp ({device.id}): {exc}") from None
    session = SnmpSession(device.host, device.snmp.port, auth, timeout_s=args.timeout,
                          retries=device.snmp.retries, device=device.id)
    return Target(device.id, device.site, session, device.snmp.profile, dict(device.snmp.interface_speed_bps),
                  device.hardware.kind)


def build_target(args: argparse.Namespace) -> Target:
    """The device to poll from the arguments; raises UsageError with the message to print."""
    if args.timeout is None or args.timeout <= 0:
        raise UsageError(f"{PROG}: --timeout must be > 0")
    if args.device and args.address:
        raise UsageError(f"{PROG}: give DEVICE (from {args.inventory}) or --address, not both")
    if args.address:
        return _address_target(args)
    if args.device:
        return _inventory_target(args)
    raise UsageError(f"{PROG}: give DEVICE (an id in {args.inventory}) or --address HOST[:PORT]")


async def poll_twice(target: Target, gap_s: float = RATE_GAP_S) -> list[Point]:
    """Poll, wait gap_s, poll again; the second poll's points (or the first's if the device is down)."""
    poller = DevicePoller(target.device_id, target.site, target.session, target.profile,
                          interface_speed_bps=target.interface_speed_bps, hardware_kind=target.hardware_kind)
    try:
        first = await poller.poll()
        if _up(first) != 1.0:
            return first
        await asyncio.sleep(gap_s)
        return await poller.poll()
    finally:
        close_engines()


def _up(points: Sequence[Point]) -> float:
    return next((float(p.fields.get("up", 0.0)) for p in points if p.measurement == "device"), 0.0)


# ---------------------------------------------------------------- table output


def _bps(value: Any) -> str:
    if not isinstance(value, (int, float)):
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}"


def _num(value: Any, fmt: str = "{:.1f}") -> str:
    return fmt.format(value) if isinstance(value, (int, float)) else "-"


def _state(value: Any) -> str:
    return {1.0: "up", 0.0: "down"}.get(value, "-") if isinstance(value, (int, float)) else "-"


TEXT_MAX = 160  # characters of one text field in the table (sysDescr can run to several hundred)


def field_text(value: Any) -> str:
    """One field as one table cell: text on one line ('a / b' for a multi-line sysDescr), cut at
    TEXT_MAX; every number the same way, whole numbers without a decimal point (0, 2, 1380) and
    others rounded to two decimals (2239745.55, not 2239745.5500000003)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if float(value).is_integer():
            return str(int(value))
        text = f"{value:.2f}".rstrip("0").rstrip(".")
        return "0" if text == "-0" else text
    text = " / ".join(line.strip() for line in str(value).splitlines() if line.strip())
    return text if len(text) <= TEXT_MAX else text[:TEXT_MAX - 1] + "…"


def _fields(fields: dict[str, Any], units: bool = False) -> list[str]:
    """One line per field; with `units`, each number followed by its contract unit (24 min, 100 %)."""
    width = max(len(k) for k in fields)
    device = DECLARED_MEASUREMENTS["device"].fields
    lines = []
    for key, value in fields.items():
        unit = device[key].unit if units and key in device else ""
        shown = field_text(value)
        if unit not in ("", "string", "0/1", "count") and isinstance(value, (int, float)):
            shown += f" {unit}"
        lines.append(f"  {key:{width}}  {shown}")
    return lines


# The device fields the UPS modules write: shown in their own block, with units.
UPS_FIELDS = tuple(dict.fromkeys(s.field for m in (UPS_MIB, APC_UPS) for s in m.scalars if s.point == "device"))


def ups_summary(fields: dict[str, Any]) -> str:
    """The UPS fields as one line for people: where the power comes from, then the battery."""
    source = fields.get("ups_output_source")
    if fields.get("ups_on_battery") == 1.0:
        seconds = fields.get("ups_seconds_on_battery")
        power = "ON BATTERY" + (f" for {field_text(seconds)} s" if isinstance(seconds, (int, float)) else "")
    elif source == "normal":
        power = "on line"
    else:
        power = f"output {source}" if source else "power source not given"
    parts = [power]
    battery = [f"{field_text(fields[k])}{unit}" for k, unit in (("ups_charge_pct", " % charge"), ("ups_minutes_left", " min left"))
               if isinstance(fields.get(k), (int, float))]
    if "ups_battery_status" in fields:
        battery.append(f"battery {fields['ups_battery_status']}")
    if battery:
        parts.append(", ".join(battery))
    replace = []
    if "battery_replace_needed" in fields:
        replace.append("battery needs replacing" if fields["battery_replace_needed"] == 1.0 else "battery needs no replacing")
    if "battery_replace_date" in fields:
        replace.append(f"replace by {fields['battery_replace_date']}")
    if replace:
        parts.append(", ".join(replace))
    if isinstance(fields.get("ups_alarms"), (int, float)) and fields["ups_alarms"] > 0:
        parts.append(f"{field_text(fields['ups_alarms'])} alarm(s)")
    return "; ".join(parts)


def render_table(points: Sequence[Point], gap_s: float) -> str:
    device = next(p for p in points if p.measurement == "device")
    lines = [f"device {device.tags['device']} (site {device.tags['site']})"]
    ups = {k: v for k, v in device.fields.items() if k in UPS_FIELDS}
    lines += _fields({k: v for k, v in device.fields.items() if k not in ups})
    if ups:
        lines.append(f"ups: {ups_summary(ups)}")
        lines += _fields(ups, units=True)
    for hardware in (p for p in points if p.measurement == "hardware"):
        lines.append(f"hardware (kind {hardware.tags['kind']})")
        lines += _fields(hardware.fields)
    interfaces = [p for p in points if p.measurement == "interface"]
    if interfaces:
        lines.append(f"interfaces ({len(interfaces)}; rates over the {gap_s:g} s between two polls)")
        header = ("ifname", "oper", "admin", "speed", "in_bps", "out_bps", "in%", "out%", "err/s", "disc/s", "alias")
        rows = [header]
        for p in interfaces:
            f = p.fields
            errors = [f.get(k) for k in ("in_errors_ps", "out_errors_ps") if isinstance(f.get(k), (int, float))]
            discards = [f.get(k) for k in ("in_discards_ps", "out_discards_ps") if isinstance(f.get(k), (int, float))]
            rows.append((
                p.tags["ifname"], _state(f.get("oper_up")), _state(f.get("admin_up")), _bps(f.get("speed_bps")),
                _bps(f.get("in_bps")), _bps(f.get("out_bps")), _num(f.get("in_util_pct")), _num(f.get("out_util_pct")),
                _num(sum(errors) if errors else None, "{:g}"), _num(sum(discards) if discards else None, "{:g}"),
                field_text(f.get("alias", "")),
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    supplies = [p for p in points if p.measurement == "printer_supply"]
    if supplies:
        lines.append(f"supplies ({len(supplies)}; left % of the max capacity, a waste box's space left)")
        rows = [("supply", "type", "left%", "state", "level", "max")]
        rows += [(p.tags["supply"], p.tags["type"], _num(p.fields.get("left_pct")), str(p.fields.get("state", "-")),
                  field_text(p.fields.get("level", "-")), field_text(p.fields.get("max_capacity", "-"))) for p in supplies]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            lines.append("  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    return "\n".join(lines)


def run_poll(args: argparse.Namespace) -> int:
    """Entry point of `nettvakt snmp poll`."""
    try:
        target = build_target(args)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    print(f"{PROG}: polling {target.session.device} twice, {RATE_GAP_S:g} s apart, for rates", file=sys.stderr)
    points = asyncio.run(poll_twice(target))
    up = _up(points) == 1.0
    if args.json:
        print(json.dumps([p.to_json() for p in points], ensure_ascii=False))
    elif up:
        print(render_table(points, RATE_GAP_S))
    if not up:
        device = next(p for p in points if p.measurement == "device")
        print(f"{PROG}: {target.device_id} did not answer: {device.fields.get('reason', 'no reason given')}", file=sys.stderr)
        return EXIT_FAIL
    return EXIT_OK


def _poll_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("device", nargs="?", metavar="DEVICE", help="device id in inventory.toml")
    add_inventory_argument(parser)
    parser.add_argument("--address", metavar="HOST[:PORT]", help="poll this address instead of an inventory device")
    parser.add_argument("--community", metavar="NAME", help="v1/v2c community (with --address)")
    parser.add_argument("--version", choices=["1", "2c", "3"], default=None, help="SNMP version (with --address; default 2c, or 3 with --v3-user)")
    parser.add_argument("--v3-user", metavar="USER")
    parser.add_argument("--auth", metavar="PROTO", help="v3 auth protocol: SHA, SHA-256, SHA-512, ...")
    parser.add_argument("--auth-key", metavar="REF", help="v3 auth key as env:NAME or file:PATH")
    parser.add_argument("--priv", metavar="PROTO", help="v3 privacy protocol: AES, AES-256, ...")
    parser.add_argument("--priv-key", metavar="REF", help="v3 privacy key as env:NAME or file:PATH")
    parser.add_argument("--timeout", type=float, default=3.0, metavar="S")
    parser.add_argument("--json", action="store_true")


COMMANDS = (
    Command("snmp", help="SNMP commands", subcommands=(
        Command("poll", help="poll one device once and print its points",
                description="Poll one device once: an inventory device by id, or any device given --address.",
                arguments=_poll_arguments, run=run_poll),
    )),
)
