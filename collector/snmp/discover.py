"""`nettvakt discover CIDR...`: map a network nobody has documented.

Every address of the given networks is tried with one ICMP echo and with SNMP (each
community and v3 user named in inventory.toml, plus `--community`), a bounded number at a
time. Devices that answer SNMP are read for the system group and their LLDP-MIB neighbours.
The result is a host table, proposed `[[device]]` entries for inventory.toml (secrets as the
same env:/file: references, never inline) and a neighbour table: which device is plugged
into which port.

Exit codes: 0 something answered, 1 nothing did, 2 bad usage (bad CIDR, no credentials).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from agent.commandline import Command
from agent.probes import ProbeFailed, ping
from agent.process import EXIT_FAIL, EXIT_OK, EXIT_USAGE
from agent.secrets import SecretError, is_secret_ref, resolve_secret
from collector.config import InventoryError, load_inventory
from collector.pollers import snmp_auth

from .profiles import SYS_DESCR, SYS_NAME, SYS_OBJECT_ID, SYS_UPTIME, select_profile
from .session import SnmpAuth, SnmpError, SnmpSession, close_engines

log = logging.getLogger(__name__)

PROG = "nettvakt discover"
MAX_ADDRESSES = 65536  # a /16; a bigger sweep is a typo more often than a plan
CLI_COMMUNITY_REF = "env:NETTVAKT_SNMP_COMMUNITY"

# LLDP-MIB (IEEE 802.1AB-2005), numeric. Remote rows are indexed timeMark.localPortNum.remIndex.
LLDP_LOC_PORT_ID = "1.0.8802.1.1.2.1.3.7.1.3"
LLDP_LOC_PORT_DESC = "1.0.8802.1.1.2.1.3.7.1.4"
LLDP_REM_CHASSIS_ID = "1.0.8802.1.1.2.1.4.1.1.5"
LLDP_REM_PORT_ID = "1.0.8802.1.1.2.1.4.1.1.7"
LLDP_REM_PORT_DESC = "1.0.8802.1.1.2.1.4.1.1.8"
LLDP_REM_SYS_NAME = "1.0.8802.1.1.2.1.4.1.1.9"
# lldpRemManAddrIfSubtype: the management address is in the index,
# timeMark.localPortNum.remIndex.addrSubtype.addrLen.addr...
LLDP_REM_MAN_ADDR_IF_SUBTYPE = "1.0.8802.1.1.2.1.4.2.1.3"
LLDP_COLUMNS = (LLDP_LOC_PORT_ID, LLDP_LOC_PORT_DESC, LLDP_REM_CHASSIS_ID, LLDP_REM_PORT_ID, LLDP_REM_PORT_DESC,
                LLDP_REM_SYS_NAME, LLDP_REM_MAN_ADDR_IF_SUBTYPE)

# Hardware kind proposed per profile; the consultant adjusts it to the inventory's [lifecycle.kinds].
# routeros is left out on purpose: RouterOS routers, CRS switches and access points all answer
# the same sysObjectID (1.3.6.1.4.1.14988.1), so the profile says nothing about the kind.
PROFILE_KIND = {"fortigate": "firewall", "procurve": "switch", "cisco": "switch"}


@dataclass(frozen=True)
class KindSign:
    """A device saying what it is: it has something under `subtree` (one GETNEXT finds out)
    and/or its sysObjectID is under `sys_object_id`; both must hold when both are given."""

    kind: str
    why: str  # for people: which MIB or sysObjectID said so
    subtree: str = ""
    sys_object_id: str = ""


HR_SYSTEM = "1.3.6.1.2.1.25.1"  # HOST-RESOURCES-MIB hrSystem
# First match wins, so the specific kinds come first: printers and some UPS cards also answer
# hrSystem. Only a host whose sysObjectID says it is a host counts as a server, since
# switches and appliances running Linux often answer HOST-RESOURCES too.
KIND_SIGNS: tuple[KindSign, ...] = (
    KindSign("ups", "UPS-MIB (RFC 1628) upsObjects", subtree="1.3.6.1.2.1.33.1"),
    KindSign("ups", "APC PowerNet-MIB ups group", subtree="1.3.6.1.4.1.318.1.1.1"),
    KindSign("printer", "Printer-MIB (RFC 3805)", subtree="1.3.6.1.2.1.43"),
    KindSign("server", "Windows server sysObjectID", sys_object_id="1.3.6.1.4.1.311.1.1.3.1.2"),
    KindSign("server", "Windows domain controller sysObjectID", sys_object_id="1.3.6.1.4.1.311.1.1.3.1.3"),
    KindSign("pc", "Windows workstation sysObjectID", sys_object_id="1.3.6.1.4.1.311.1.1.3.1.1"),
    KindSign("server", "HOST-RESOURCES hrSystem of a net-snmp host", subtree=HR_SYSTEM,
             sys_object_id="1.3.6.1.4.1.8072.3.2"),
)


def _under(oid: str, prefix: str) -> bool:
    oid = oid.strip().lstrip(".")
    return oid == prefix or oid.startswith(prefix + ".")


async def device_kind(session: SnmpSession, sys_object_id: str, profile: str) -> tuple[str, str]:
    """(hardware kind, why) from what the device says (KIND_SIGNS), else from its profile, else network."""
    subtrees = list(dict.fromkeys(s.subtree for s in KIND_SIGNS if s.subtree))
    try:
        found = await session.get_next(subtrees)
    except SnmpError as exc:
        log.debug("%s: MIB probe failed: %s", session.device, exc)
        found = {}
    has = {t for t in subtrees if t in found and _under(found[t][0], t)}
    for sign in KIND_SIGNS:
        if sign.subtree and sign.subtree not in has:
            continue
        if sign.sys_object_id and not _under(sys_object_id, sign.sys_object_id):
            continue
        return sign.kind, sign.why
    if profile in PROFILE_KIND:
        return PROFILE_KIND[profile], f"profile {profile}"
    return "network", ""


class UsageError(Exception):
    """Bad arguments or inventory; printed as is, exit code 2."""


@dataclass(frozen=True)
class Credential:
    """One way to speak SNMP to a device, and how inventory.toml refers to its secrets."""

    label: str  # for people: where it came from, never the secret
    auth: SnmpAuth
    toml: tuple[tuple[str, str], ...]  # [device.snmp] (and v3) keys to propose, references only


@dataclass
class Neighbour:
    device: str  # sysName of the device that sees the neighbour
    address: str  # and its address
    local_port: str
    remote_name: str
    remote_port: str
    remote_chassis: str = ""
    remote_address: str = ""


@dataclass
class Host:
    address: str
    icmp_rtt_ms: float | None = None
    snmp: str | None = None  # label of the credential that answered
    sys_name: str = ""
    sys_descr: str = ""
    sys_object_id: str = ""
    uptime_s: float | None = None
    profile: str = ""
    kind: str = ""  # hardware kind to propose, once SNMP answered (KIND_SIGNS, PROFILE_KIND, else network)
    kind_why: str = ""
    in_inventory: str = ""  # id of the inventory device with this host, if any
    neighbours: list[Neighbour] = field(default_factory=list)
    credential: Credential | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.icmp_rtt_ms is not None or self.snmp is not None


def parse_targets(cidrs: Sequence[str]) -> list[str]:
    """Addresses to sweep, in order, without duplicates; network and broadcast left out of v4 nets."""
    out: dict[str, None] = {}
    for text in cidrs:
        try:
            net = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError as exc:
            raise UsageError(f"{PROG}: {text!r} is not an address or network (e.g. 10.20.0.0/24): {exc}") from None
        if net.num_addresses > MAX_ADDRESSES:
            raise UsageError(f"{PROG}: {text} has {net.num_addresses} addresses; sweep at most {MAX_ADDRESSES} (a /16) at once")
        hosts = [net.network_address] if net.num_addresses == 1 else list(net.hosts())
        for address in hosts:
            out[str(address)] = None
        if len(out) > MAX_ADDRESSES:
            raise UsageError(f"{PROG}: more than {MAX_ADDRESSES} addresses in all")
    return list(out)


def _resolve_community(text: str) -> str:
    if not is_secret_ref(text):
        return text
    try:
        return resolve_secret(text)
    except SecretError as exc:
        raise UsageError(f"{PROG}: --community {exc}") from None


def credentials(inventory_path: Path, communities: Sequence[str], explicit_inventory: bool) -> tuple[list[Credential], dict[str, str]]:
    """Credentials to try, in order (--community first), and {host: device id} of the inventory."""
    creds: list[Credential] = []
    seen: set[tuple[Any, ...]] = set()
    for i, text in enumerate(communities):
        community = _resolve_community(text)
        ref = text if is_secret_ref(text) else CLI_COMMUNITY_REF
        key = ("2c", community)
        if community and key not in seen:
            seen.add(key)
            creds.append(Credential(f"v2c --community #{i + 1}", SnmpAuth("2c", community=community),
                                    (("version", "2c"), ("community", ref))))
    known: dict[str, str] = {}
    skipped: dict[str, list[str]] = {}  # one line per unresolvable secret, not one per device
    if inventory_path.exists() or explicit_inventory:  # else: no inventory here, only --community
        try:
            inventory = load_inventory(inventory_path)
        except InventoryError as exc:
            raise UsageError(str(exc)) from None
        for index, device in enumerate(inventory.device):
            known[device.host] = device.id
            snmp = device.snmp
            if snmp is None:
                continue
            try:
                auth = snmp_auth(inventory, device)
            except (SecretError, ValueError) as exc:
                skipped.setdefault(str(exc), []).append(f"device[{index}] ({device.id})")
                continue
            if snmp.version in ("1", "2c"):
                key = (snmp.version, auth.community)
                toml = (("version", snmp.version), ("community", snmp.community or ""))
                label = f"v{snmp.version} community of {device.id}"
            else:
                v3 = snmp.v3
                assert v3 is not None
                key = ("3", auth._engine_key())
                toml = tuple((k, str(v)) for k, v in (
                    ("version", "3"), ("v3.user", v3.user), ("v3.auth_protocol", v3.auth_protocol),
                    ("v3.auth_key", v3.auth_key), ("v3.priv_protocol", v3.priv_protocol), ("v3.priv_key", v3.priv_key),
                ) if v is not None)
                label = f"v3 user {v3.user} of {device.id}"
            if key not in seen:
                seen.add(key)
                creds.append(Credential(label, auth, toml))
    for reason, where in skipped.items():
        print(f"{PROG}: {inventory_path}: credentials of {', '.join(where)} not tried: {reason}", file=sys.stderr)
    return creds, known


# ---------------------------------------------------------------- the sweep


async def _icmp(address: str, timeout_s: float) -> float | None:
    try:
        fields = await ping(address, count=1, timeout_s=timeout_s, methods=("icmp", "icmp_dgram"))
    except (ProbeFailed, OSError):
        return None
    rtt = fields.get("rtt_ms")
    return float(rtt) if isinstance(rtt, (int, float)) else None


async def _snmp_system(address: str, port: int, creds: Sequence[Credential], timeout_s: float) -> tuple[Credential, dict[str, Any]] | None:
    """The first credential (in order) that gets an answer, with the system group."""

    async def attempt(cred: Credential) -> dict[str, Any] | None:
        session = SnmpSession(address, port, cred.auth, timeout_s=timeout_s, retries=0, device=address)
        try:
            values = await session.get([SYS_DESCR, SYS_OBJECT_ID, SYS_UPTIME, SYS_NAME])
        except SnmpError:
            return None  # wrong community, wrong key, or nobody there: the others may answer
        return values or None

    # All at once: a wrong community costs a full timeout, and a dead host would cost one per credential.
    answers = await asyncio.gather(*(attempt(c) for c in creds))
    return next(((c, a) for c, a in zip(creds, answers) if a is not None), None)


def _index_address(parts: Sequence[int]) -> str:
    """The management address at the end of an lldpRemManAddrTable index (IPv4/IPv6), else ''."""
    if len(parts) < 2:
        return ""
    subtype, length, raw = parts[0], parts[1], bytes(parts[2:2 + parts[1]]) if all(0 <= p < 256 for p in parts[2:]) else b""
    if len(raw) != length:
        return ""
    if subtype == 1 and length == 4:
        return str(ipaddress.IPv4Address(raw))
    if subtype == 2 and length == 16:
        return str(ipaddress.IPv6Address(raw))
    return ""


def _mac_like(text: str) -> str:
    """A 6-byte id shown as a MAC (chassis and port ids are MACs more often than not)."""
    return ":".join(text[i:i + 2] for i in range(0, 12, 2)) if re.fullmatch(r"[0-9a-f]{12}", text) else text


async def _lldp(session: SnmpSession, device: str, address: str) -> list[Neighbour]:
    tables: dict[str, list[tuple[str, Any]]] = {}
    for column in LLDP_COLUMNS:
        try:
            tables[column] = await session.walk(column)
        except SnmpError as exc:
            log.debug("%s: LLDP-MIB not read: %s", device, exc)  # most hosts have none: not news
            return []

    def by_index(column: str) -> dict[tuple[int, ...], Any]:
        return {tuple(int(x) for x in oid[len(column) + 1:].split(".")): v for oid, v in tables[column]}

    local_desc, local_id = by_index(LLDP_LOC_PORT_DESC), by_index(LLDP_LOC_PORT_ID)
    addresses: dict[tuple[int, int], str] = {}
    for index in by_index(LLDP_REM_MAN_ADDR_IF_SUBTYPE):
        if len(index) > 3:
            found = _index_address(index[3:])
            if found:
                addresses.setdefault((index[1], index[2]), found)
    names, port_ids, port_descs = by_index(LLDP_REM_SYS_NAME), by_index(LLDP_REM_PORT_ID), by_index(LLDP_REM_PORT_DESC)
    chassis = by_index(LLDP_REM_CHASSIS_ID)
    out = []
    for index in sorted(set(names) | set(port_ids) | set(chassis)):
        if len(index) != 3:
            continue
        _, port, rem = index
        local = str(local_desc.get((port,)) or local_id.get((port,)) or port).strip()
        out.append(Neighbour(
            device=device,
            address=address,
            local_port=local,
            remote_name=str(names.get(index) or "").strip(),
            remote_port=_mac_like(str(port_descs.get(index) or port_ids.get(index) or "").strip()),
            remote_chassis=_mac_like(str(chassis.get(index) or "").strip()),
            remote_address=addresses.get((port, rem), ""),
        ))
    return out


async def _snmp_host(host: Host, args: argparse.Namespace, creds: Sequence[Credential]) -> Host:
    address = host.address
    answer = await _snmp_system(address, args.port, creds, args.timeout) if creds else None
    if answer is None:
        return host
    cred, values = answer
    host.credential = cred
    host.snmp = cred.label
    host.sys_name = str(values.get(SYS_NAME, "")).strip()
    host.sys_descr = " ".join(str(values.get(SYS_DESCR, "")).split())
    host.sys_object_id = str(values.get(SYS_OBJECT_ID, ""))
    uptime = values.get(SYS_UPTIME)
    host.uptime_s = uptime / 100 if isinstance(uptime, int) else None
    host.profile = select_profile(host.sys_object_id or None).name
    session = SnmpSession(address, args.port, cred.auth, timeout_s=args.timeout, retries=1, device=address)
    host.kind, host.kind_why = await device_kind(session, host.sys_object_id, host.profile)
    host.neighbours = await _lldp(session, host.sys_name or address, address)
    return host


class Progress:
    """A progress bar on a terminal; on a pipe, a line at every tenth, so logs stay readable.

    The bar runs twice over the addresses: the ICMP round, then the SNMP round.
    """

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.phase, self.done, self.alive, self.snmp = "icmp", 0, 0, 0
        self.tty = stream.isatty()
        self._last_tenth = -1

    def start(self, phase: str) -> None:
        self.phase, self.done, self._last_tenth = phase, 0, -1

    def update(self, host: Host) -> None:
        self.done += 1
        if self.phase == "icmp":
            self.alive += host.icmp_rtt_ms is not None
        else:
            self.alive += host.icmp_rtt_ms is None and host.snmp is not None  # answers SNMP but not ICMP
            self.snmp += host.snmp is not None
        width = 30
        filled = width * self.done // self.total
        text = (f"{self.phase} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} addresses, "
                f"{self.alive} answer, {self.snmp} SNMP")
        if self.tty:
            self.stream.write("\r" + text + ("\n" if self.done == self.total else ""))
            self.stream.flush()
            return
        tenth = 10 * self.done // self.total
        if tenth != self._last_tenth:
            self._last_tenth = tenth
            self.stream.write(text + "\n")
            self.stream.flush()


async def sweep(
    addresses: Sequence[str], args: argparse.Namespace, creds: Sequence[Credential], known: dict[str, str],
    progress: Progress | None = None,
) -> list[Host]:
    """Every address tried, at most args.concurrency at a time; hosts in address order.

    ICMP goes first, for all addresses, then SNMP: pysnmp's work (engines, decoding) runs in
    the same event loop and would otherwise delay echo replies past their timeout.
    """
    semaphore = asyncio.Semaphore(args.concurrency)
    hosts = [Host(a, in_inventory=known.get(a, "")) for a in addresses]

    async def icmp(host: Host) -> Host:
        async with semaphore:
            host.icmp_rtt_ms = await _icmp(host.address, args.timeout)
        if progress is not None:
            progress.update(host)
        return host

    async def snmp(host: Host) -> Host:
        async with semaphore:
            await _snmp_host(host, args, creds)
        if progress is not None:
            progress.update(host)
        return host

    if not args.no_icmp:
        await asyncio.gather(*(icmp(h) for h in hosts))
    if creds:
        if progress is not None:
            progress.start("snmp")
        try:
            await asyncio.gather(*(snmp(h) for h in hosts))
        finally:
            close_engines()
    return hosts


# ---------------------------------------------------------------- output


def slug(text: str) -> str:
    """An inventory id from a device name: lower-case ASCII letters, digits and '-'."""
    text = text.lower().translate(str.maketrans({"æ": "ae", "ø": "o", "å": "a"}))
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:63].strip("-")


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def proposed_entries(hosts: Iterable[Host], port: int, site: str | None = None) -> str:
    """[[device]] tables for inventory.toml, for SNMP hosts the inventory does not have yet (at `site`, if given)."""
    blocks: list[str] = []
    used: set[str] = set()
    for host in hosts:
        if host.snmp is None or host.in_inventory or host.credential is None:
            continue
        base = slug(host.sys_name) if host.sys_name and host.sys_name != "<private>" else ""
        base = base or "dev-" + slug(host.address)
        ident, n = base, 2
        while ident in used:
            ident, n = f"{base}-{n}", n + 1
        used.add(ident)
        lines = [
            f"# {host.address}: {host.sys_descr[:100]}" if host.sys_descr else f"# {host.address}",
            "[[device]]",
            f"id = {_toml_str(ident)}",
            f"name = {_toml_str(host.sys_name or host.address)}",
            f"site = {_toml_str(site)}" if site else 'site = "unassigned"  # TODO: the id of the [[site]] this device is at',
            f"host = {_toml_str(host.address)}",
            f"hardware = {{ kind = {_toml_str(host.kind or 'network')} }}  # a kind in [lifecycle.kinds]"
            + (f"; {host.kind_why}" if host.kind_why else ""),
            "[device.snmp]",
        ]
        main = [(k, v) for k, v in host.credential.toml if not k.startswith("v3.")]
        v3 = [(k[3:], v) for k, v in host.credential.toml if k.startswith("v3.")]
        lines += [f"{k} = {_toml_str(v)}" for k, v in main]
        if port != 161:
            lines.append(f"port = {port}")
        if v3:
            lines.append("[device.snmp.v3]")
            lines += [f"{k} = {_toml_str(v)}" for k, v in v3]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  " + "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]


def render(hosts: Sequence[Host], port: int) -> str:
    alive = [h for h in hosts if h.alive]
    out = [f"hosts that answer ({len(alive)} of {len(hosts)} addresses)"]
    if alive:
        rows = [("address", "icmp_ms", "snmp", "sys_name", "profile", "kind", "inventory", "sys_descr")]
        for h in alive:
            rows.append((h.address, f"{h.icmp_rtt_ms:.2f}" if h.icmp_rtt_ms is not None else "-", h.snmp or "-",
                         h.sys_name or "-", h.profile or "-", h.kind or "-", h.in_inventory or "-", h.sys_descr[:60] or "-"))
        out += _table(rows)
    neighbours = [n for h in hosts for n in h.neighbours]
    out.append("")
    out.append(f"LLDP neighbours ({len(neighbours)})")
    if neighbours:
        rows = [("device", "address", "local_port", "neighbour", "neighbour_port", "neighbour_address", "chassis_id")]
        rows += [(n.device, n.address, n.local_port, n.remote_name or "-", n.remote_port or "-", n.remote_address or "-",
                  n.remote_chassis or "-") for n in neighbours]
        out += _table(rows)
    proposal = proposed_entries(hosts, port)
    out.append("")
    if proposal:
        out.append("# Proposed entries for inventory.toml (devices that answer SNMP and are not in it yet)")
        out.append(proposal)
    else:
        out.append("# No new devices to propose for inventory.toml")
    return "\n".join(out)


def to_json(hosts: Sequence[Host], port: int) -> dict[str, Any]:
    def host_json(h: Host) -> dict[str, Any]:
        data = asdict(h)
        data.pop("credential")
        data.pop("neighbours")
        return data

    return {
        "hosts": [host_json(h) for h in hosts if h.alive],
        "addresses_swept": len(hosts),
        "neighbours": [asdict(n) for h in hosts for n in h.neighbours],
        "proposed_toml": proposed_entries(hosts, port),
    }


# ---------------------------------------------------------------- entry points


def run_discover(args: argparse.Namespace) -> int:
    """Entry point of `nettvakt discover` (arguments: add_arguments)."""
    try:
        if args.timeout <= 0 or args.concurrency < 1 or not 0 < args.port < 65536:
            raise UsageError(f"{PROG}: --timeout must be > 0, --concurrency >= 1, --port 1..65535")
        if args.add_to and not args.site:
            raise UsageError(f"{PROG}: --add-to needs --site: the id of the [[site]] the devices found are at")
        addresses = parse_targets(args.cidrs)
        inventory = Path(args.inventory or "inventory.toml")
        creds, known = credentials(inventory, args.community or [], explicit_inventory=args.inventory is not None)
        if not creds and args.no_icmp:
            raise UsageError(f"{PROG}: nothing to try: no SNMP credentials (none in {inventory}, no --community) and --no-icmp")
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if not creds:
        print(f"{PROG}: no SNMP credentials (none in {inventory}, no --community): ICMP only", file=sys.stderr)
    progress = Progress(len(addresses), sys.stderr)
    if args.no_icmp:
        progress.start("snmp")
    hosts = asyncio.run(sweep(addresses, args, creds, known, progress))
    if args.add_to:
        return add_to_inventory(Path(args.add_to), hosts, args.port, args.site)
    if args.json:
        print(json.dumps(to_json(hosts, args.port), ensure_ascii=False))
    else:
        print(render(hosts, args.port))
    return EXIT_OK if any(h.alive for h in hosts) else EXIT_FAIL


def add_to_inventory(path: Path, hosts: Sequence[Host], port: int, site: str) -> int:
    """Append the proposed [[device]] entries to inventory.toml after showing them, keeping the file as
    written (comments, layout); only if the result validates as `nettvakt check --offline` would."""
    proposal = proposed_entries(hosts, port, site)
    if not proposal:
        print(f"{PROG}: no new devices that answer SNMP; {path} is unchanged")
        return EXIT_OK if any(h.alive for h in hosts) else EXIT_FAIL
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{PROG}: {path}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    added = f"\n\n# Added by nettvakt discover on {time.strftime('%Y-%m-%d')}\n{proposal}\n"
    print(f"# Adding to {path}:{added}")
    # Checked in a copy beside it (relative file: secrets resolve the same), then put in place at once.
    candidate = path.with_name(f".{path.name}.discover")
    candidate.write_text(text.rstrip("\n") + added, encoding="utf-8")
    try:
        load_inventory(candidate, startup=True, offline=True)
    except InventoryError as exc:
        candidate.unlink()
        for line in exc.lines():
            print(line.replace(str(candidate), str(path)), file=sys.stderr)
        print(f"{PROG}: {path} is unchanged: with these entries it would not validate", file=sys.stderr)
        return EXIT_USAGE
    os.replace(candidate, path)
    print(f"{PROG}: {path}: {proposal.count('[[device]]')} device(s) added")
    return EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `nettvakt discover` and of `python -m collector.snmp.discover`."""
    parser.add_argument("cidrs", nargs="+", metavar="CIDR", help="networks or addresses to sweep, e.g. 10.20.0.0/24")
    parser.add_argument("--inventory", default=None, metavar="PATH",
                        help="inventory whose SNMP communities and v3 users are tried (default ./inventory.toml if present)")
    parser.add_argument("--community", action="append", metavar="NAME",
                        help="also try this v1/v2c community (a name, or env:NAME / file:PATH); repeatable")
    parser.add_argument("--port", type=int, default=161, help="SNMP port (default 161)")
    parser.add_argument("--timeout", type=float, default=1.0, metavar="S", help="per ICMP echo and SNMP request (default 1)")
    parser.add_argument("--concurrency", type=int, default=64, metavar="N", help="addresses tried at once (default 64)")
    parser.add_argument("--no-icmp", action="store_true", help="SNMP only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--add-to", metavar="INVENTORY", help="append the proposed [[device]] entries to this inventory (after showing them; kept only if it still validates)")
    parser.add_argument("--site", metavar="ID", help="with --add-to: the site the devices found are at")


COMMANDS = (
    Command(
        "discover", help="sweep networks with ICMP and SNMP, propose inventory entries",
        description="Sweep CIDRs with ICMP and SNMP (the inventory's communities and v3 users, plus --community), read system and "
        "LLDP-MIB neighbours, print proposed [[device]] entries and a neighbour table.",
        arguments=add_arguments, run=run_discover,
    ),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_discover(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
