"""The measurement contract as data: every measurement, who may write it, its tags and its fields.

One schema, read by the collector's ingest (what an agent may post), by the line-protocol
writer (what can be stored at all), by the tests, and by `docs/metrics.md`, whose tables are
generated from it (`python -m agent.contract --check docs/metrics.md` / `--write`).

Stored types are two, forever: every number is a float (JSON integers and booleans too:
true is 1.0, false 0.0), every other value a string. A field's unit sets its valid range.
Tag and field keys are identifiers (`IDENTIFIER`); no field shares a name with a tag of its
measurement, and none is called `time`, so InfluxQL's `"host" = 'pc1'` always means the tag.

Shared by agent and collector: plain data and a few functions, no dependencies.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Mapping

# Tag and field keys, and measurement names: lower-case identifiers. Nothing in line protocol
# needs escaping in them, so a key can never swallow the `=` or `,` after it.
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]{0,63}")
RESERVED_KEYS = frozenset({"time"})

MAX_TAG_LEN = 128
MAX_STRING_LEN = 4096

Writer = Literal["agent", "collector"]
StoredType = Literal["float", "string"]


@dataclass(frozen=True, slots=True)
class Unit:
    """What a field's values are: stored type and valid range, by unit."""

    name: str
    type: StoredType
    low: float | None = None
    high: float | None = None


# The units of the contract. A field names its unit once; its range follows from it.
UNITS: Mapping[str, Unit] = MappingProxyType({u.name: u for u in (
    Unit("0/1", "float", 0.0, 1.0),
    Unit("%", "float", 0.0, 100.0),
    Unit("% of capacity", "float", 0.0),  # above 100 when the capacity it is measured against is wrong
    Unit("ms", "float", 0.0),
    Unit("s", "float", 0.0),
    Unit("days", "float"),  # negative once a certificate has expired
    Unit("years", "float"),  # remaining years are negative when overdue
    Unit("year", "float", 0.0, 9999.0),
    Unit("bytes", "float", 0.0),
    Unit("bits/s", "float", 0.0),
    Unit("/s", "float", 0.0),
    Unit("count", "float", 0.0),
    Unit("load", "float", 0.0),
    Unit("NOK", "float", 0.0),
    Unit("number", "float"),
    Unit("string", "string"),
)})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    unit: str
    doc: str = ""

    @property
    def type(self) -> StoredType:
        return UNITS[self.unit].type


@dataclass(frozen=True, slots=True)
class TagSpec:
    name: str
    doc: str = ""
    required: bool = False  # on every point of the measurement (site/host are set by the collector)
    values: tuple[str, ...] | None = None  # a fixed vocabulary, when there is one
    pattern: str | None = None  # else a shape, when there is one
    agent: bool = True  # an agent may set it (False: only the collector, e.g. `device`)


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    name: str
    writers: frozenset[str]
    tags: Mapping[str, TagSpec]
    fields: Mapping[str, FieldSpec]


def _measurement(name: str, writers: tuple[Writer, ...], tags: list[TagSpec], fields: list[FieldSpec]) -> MeasurementSpec:
    return MeasurementSpec(
        name, frozenset(writers), MappingProxyType({t.name: t for t in tags}), MappingProxyType({f.name: f for f in fields})
    )


F = FieldSpec
T = TagSpec

SITE = T("site", "site id from inventory.toml (set by the collector on agent points)", required=True)
HOST = T("host", "agent id from inventory.toml (set by the collector on agent points)", required=True)
DEVICE = T("device", "device id from inventory.toml", required=True, agent=False)

PROBE_KINDS = ("icmp", "tcp", "http", "dns", "traceroute")
# What "latency" is for each probe kind, defined once: the status page shows it, `probe_latency`
# alerts on it, `nettvakt diagnose` compares it. A round trip for the network probes, the wait
# for the first answer for the application ones.
PROBE_LATENCY_FIELD: Mapping[str, str] = MappingProxyType(
    {"icmp": "rtt_ms", "tcp": "connect_ms", "http": "ttfb_ms", "dns": "resolve_ms", "traceroute": "rtt_ms"}
)


def probe_latency_ms(kind: object, fields: Mapping[str, object]) -> float | None:
    """The latency of one probe round of this kind, or None when the round has none (it failed)."""
    name = PROBE_LATENCY_FIELD.get(kind) if isinstance(kind, str) else None
    value = fields.get(name) if name is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)

_ICMP_STATS = [
    F("rtt_ms", "ms", "median round-trip time of the burst (icmp; traceroute: per hop, and on the round point to the destination)"),
    F("rtt_min_ms", "ms", "fastest echo (icmp, traceroute hops)"),
    F("rtt_max_ms", "ms", "slowest echo (icmp, traceroute hops)"),
    F("rtt_p95_ms", "ms", "95th percentile of the burst (icmp, traceroute hops)"),
    F("jitter_ms", "ms", "mean absolute difference of consecutive RTTs (icmp, traceroute hops)"),
    F("loss_pct", "%", "lost echoes (icmp, traceroute)"),
    F("sent", "count", "echoes sent (icmp, traceroute hops)"),
    F("received", "count", "echoes answered (icmp, traceroute hops)"),
]

MEASUREMENTS_SPEC: Mapping[str, MeasurementSpec] = MappingProxyType({m.name: m for m in (
    _measurement("probe", ("agent",), [
        SITE, HOST,
        T("kind", "probe kind", required=True, values=PROBE_KINDS),
        T("target", "probe name from inventory `[[probe]].name`", required=True),
        T("hop", "traceroute hop points only: `01`..`64`, zero-padded so they sort in path order", pattern=r"[0-9]{2,3}"),
    ], [
        F("up", "0/1", "1 when the target answered as expected (absent on traceroute hop points)"),
        F("duration_ms", "ms", "wall time of the whole probe round"),
        F("reason", "string", "why it failed, when up=0"),
        *_ICMP_STATS,
        F("method", "string", "icmp: `icmp` (raw), `icmp_dgram` (unprivileged) or `tcp` (fallback)"),
        F("connect_ms", "ms", "tcp: handshake time"),
        F("status_code", "count", "http: HTTP status"),
        F("ttfb_ms", "ms", "http: time to the response headers"),
        F("total_ms", "ms", "http: time to the end of the body"),
        F("bytes", "bytes", "http: body size"),
        F("cert_days_left", "days", "http (https): days until the server certificate expires"),
        F("resolve_ms", "ms", "dns: time to the resolver's answer"),
        F("answers", "count", "dns: answer records"),
        F("rcode", "count", "dns: response code (0 NOERROR, 3 NXDOMAIN)"),
        F("hops", "count", "traceroute round point: hops to the destination"),
        F("hop_addr", "string", "traceroute: the address that answered (`*` when silent; the destination on the round point)"),
    ]),
    _measurement("host", ("agent",), [SITE, HOST], [
        F("cpu_pct", "%", "CPU busy since the previous sample"),
        F("mem_used_pct", "%", "memory in use"),
        F("mem_total_bytes", "bytes"),
        F("mem_available_bytes", "bytes"),
        F("swap_used_pct", "%"),
        F("load1", "load", "run-queue average over 1 minute (emulated on Windows)"),
        F("load5", "load", "over 5 minutes"),
        F("load15", "load", "over 15 minutes"),
        F("uptime_s", "s", "time since boot"),
        F("boot_time_s", "s", "boot time, Unix seconds"),
        F("procs", "count", "processes"),
        F("spool_pending_points", "count", "measurements waiting in the agent's store-and-forward spool"),
        F("spool_dropped_points", "count", "dropped by the spool's size bound or lost to a full disk (cumulative)"),
        F("spool_bytes", "bytes", "the spool's size on disk"),
    ]),
    _measurement("host_disk", ("agent",), [SITE, HOST, T("mount", "mount point (a trailing backslash is cut: `C:`)", required=True)], [
        F("used_pct", "%"),
        F("total_bytes", "bytes"),
        F("used_bytes", "bytes"),
        F("free_bytes", "bytes"),
    ]),
    _measurement("host_net", ("agent",), [SITE, HOST, T("nic", "network interface name as the OS reports it", required=True)], [
        F("in_bps", "bits/s"),
        F("out_bps", "bits/s"),
        F("in_errors_ps", "/s", "receive errors per second"),
        F("out_errors_ps", "/s", "transmit errors per second"),
        F("in_drops_ps", "/s", "receive drops per second"),
        F("out_drops_ps", "/s", "transmit drops per second"),
    ]),
    _measurement("hardware", ("agent", "collector"), [
        T("site", "site id", required=True),
        T("host", "agent id (agents)"),
        T("device", "device id (network gear; written by the collector only)", agent=False),
        T("kind", "inventory hardware kind: `pc`, `laptop`, `server`, `firewall`, `switch`, `ups`, or `network` when only SNMP/SSH says"),
    ], [
        F("model", "string", "as the firmware reports it"),
        F("serial", "string"),
        F("vendor", "string", "vendor names are not normalised"),
        F("model_number", "string", "the vendor's machine-type code where `model` is the marketing name (Lenovo)"),
        F("bios_version", "string"),
        F("bios_date", "string", "ISO date of the BIOS release (firmware updates make it younger than the machine)"),
        F("manufactured_estimate", "string", "ISO date: best evidence of build date from firmware (BIOS date; absent on VMs)"),
        F("chassis_type", "string", "SMBIOS chassis type (Desktop, Notebook, Rack Mount Chassis, ...)"),
        F("cpu_model", "string"),
        F("cpu_cores", "count"),
        F("cpu_threads", "count"),
        F("mem_total_bytes", "bytes", "installed memory modules, else what the OS sees"),
        F("os_name", "string", "operating system (end-of-support planning)"),
        F("os_version", "string"),
        F("virtual", "0/1", "1 when firmware shows a virtual machine"),
        F("os_installed", "string", "ISO date the operating system was installed, where the OS says"),
        F("age_source", "string", "where `age_years` comes from: `purchased` (inventory), `bios_date`, or `os_installed`"),
        F("hw_rev", "string", "hardware revision (ENTITY-MIB, show version)"),
        F("fw_rev", "string", "firmware revision"),
        F("sw_rev", "string", "software revision"),
        F("serials", "string", "all chassis serials of a stack, comma-separated (the point itself describes the first chassis)"),
        F("purchased", "string", "ISO date from inventory.toml"),
        F("age_years", "years", "since purchase (or first seen)"),
        F("lifetime_years", "years", "from inventory (device) or `[lifecycle.kinds]`"),
        F("due_year", "year", "purchase year + lifetime"),
        F("replacement_cost_nok", "NOK"),
    ]),
    _measurement("service", ("agent",), [
        SITE, HOST,
        T("service", "the inventory's service name (configured), or the program name the OS reports (listen)", required=True),
        T("kind", "`configured` (the names in `[[agent]].services`; points without a `kind` tag are these too) or `listen`",
          values=("configured", "listen")),
    ], [
        F("up", "0/1", "running (always 1 for `listen`)"),
        F("status", "string", "OS status text (configured services)"),
        F("listen", "string", "`tcp:0.0.0.0:22 tcp:[::]:22 ...` (listen)"),
        F("ports", "string", "the ports, comma-separated (listen)"),
        F("sockets", "count", "listening sockets of the program (listen)"),
        F("processes", "count", "processes of the program (listen)"),
    ]),
    _measurement("lifecycle", ("collector",), [
        SITE,
        T("host", "agent id (agents)"),
        T("device", "device id (network gear)"),
        T("kind", "hardware kind", required=True),
        T("due_year", "purchase year + lifetime, or `unknown` without a purchase date: a bounded set of years", required=True),
        T("department", "when the inventory names one: costs can be summed per department"),
    ], [
        F("model", "string", "from the inventory"),
        F("purchased", "string", "ISO date"),
        F("age_years", "years", "today - purchase date"),
        F("lifetime_years", "years", "the entry's own, else `[lifecycle.kinds.<kind>]`"),
        F("remaining_years", "years", "lifetime - age (negative: overdue)"),
        F("due_calendar_year", "year", "the `due_year` tag as a number, for sorting"),
        F("replacement_cost_nok", "NOK", "the entry's `cost_nok`, else the kind's default"),
    ]),
    _measurement("device", ("collector",), [SITE, DEVICE], [
        F("up", "0/1", "device answered SNMP"),
        F("reason", "string", "when up=0"),
        F("uptime_s", "s", "sysUpTime"),
        F("rebooted", "0/1", "1 when sysUpTime went backwards since the previous poll"),
        F("cpu_pct", "%", "from the vendor profile or HOST-RESOURCES-MIB"),
        F("mem_used_pct", "%", "from the vendor profile or HOST-RESOURCES-MIB"),
        F("sessions", "count", "firewall sessions (FortiGate)"),
        F("vpn_tunnels_up", "count", "IPsec tunnels up (FortiGate)"),
        F("vpn_tunnels_total", "count", "IPsec tunnels (FortiGate)"),
        F("ha_state", "string", "HA mode/state (FortiGate)"),
        F("ha_members", "count", "HA cluster members (FortiGate)"),
        F("ha_members_in_sync", "count", "HA members in configuration sync (FortiGate)"),
        F("firmware", "string"),
        F("sys_descr", "string"),
        F("profile", "string", "the SNMP profile that polled it"),
        F("poll_ms", "ms", "time the poll took"),
        F("partial", "0/1", "1 when the device answered but some tables timed out (or are skipped for a few polls after timing out)"),
        F("partial_tables", "string", "the tables of a partial poll, e.g. `entPhysicalDescr, ifAlias`"),
    ]),
    _measurement("interface", ("collector",), [SITE, DEVICE, T("ifname", "ifName, else ifDescr", required=True)], [
        F("in_bps", "bits/s", "from ifHCInOctets (64-bit) or ifInOctets (32-bit, wrap handled)"),
        F("out_bps", "bits/s", "from ifHCOutOctets or ifOutOctets"),
        F("in_util_pct", "% of capacity", "against ifHighSpeed/ifSpeed, or the inventory's `interface_speed_bps` (can pass 100 when the speed is wrong)"),
        F("out_util_pct", "% of capacity", "as in_util_pct"),
        F("in_errors_ps", "/s"),
        F("out_errors_ps", "/s"),
        F("in_discards_ps", "/s"),
        F("out_discards_ps", "/s"),
        F("oper_up", "0/1", "ifOperStatus is up(1)"),
        F("admin_up", "0/1", "ifAdminStatus is up(1)"),
        F("speed_bps", "bits/s", "speed used for utilisation"),
        F("alias", "string", "ifAlias, the description set on the device"),
    ]),
    _measurement("availability", ("collector",), [
        SITE,
        T("kind", "what the verdict is about", required=True, values=("agent", "device", "target")),
        T("host", "agents and probe targets: the agent id"),
        T("device", "devices: the device id"),
        T("target", "probe targets: the probe name"),
    ], [
        F("up", "0/1"),
        F("silent_s", "s", "seconds since the last sign of life (agents: a heartbeat or a recent report; targets: the newest probe)"),
        F("expected_s", "s", "agents: the longest gap between signs of life it is held to (its heartbeat, or its report interval); down after `down_after_intervals` of them"),
        F("waiting_s", "s", "agents never heard from (no `up`: neither up nor down): how long the collector has been waiting for the first report"),
    ]),
    _measurement("alert", ("collector",), [
        T("site", "absent for the collector's own alerts"),
        T("rule", "alert rule id", required=True),
        T("severity", "", required=True, values=("info", "warning", "critical")),
        T("state", "`event` is a one-off with nothing to resolve (configuration change, changed SSH host key)",
          required=True, values=("pending", "firing", "resolved", "event")),
        T("subject", "what the alert is about: a host, device, `device/ifname`, target or site id", required=True),
    ], [
        F("active", "0/1", "1 while firing"),
        F("summary", "string", "the message people got"),
        F("affected", "count", "things folded under a site alert"),
        F("revision", "string", "with `rule=config_change`: the backup revision of the new configuration"),
    ]),
    _measurement("collector", ("collector",), [T("collector", "instance name, `main`", required=True)], [
        F("points_in", "count", "accepted at ingest since start"),
        F("batches_in", "count", "batches accepted at ingest since start"),
        F("duplicates", "count", "resent batches acknowledged without storing them again"),
        F("queue_points", "count", "waiting in the durable queue"),
        F("queue_bytes", "bytes", "the durable queue's size"),
        F("queue_age_s", "s", "age of the oldest batch waiting in the queue"),
        F("written_points", "count", "written to InfluxDB (cumulative)"),
        F("dropped_points", "count", "dropped because the queue hit its bound (cumulative; alerted)"),
        F("rejected_points", "count", "refused by InfluxDB or the line-protocol writer as bad data, moved aside (cumulative)"),
        F("write_errors", "count", "failed write attempts since start"),
        F("agents_up", "count"),
        F("agents_down", "count"),
        F("agents_waiting", "count", "agents that have never reported"),
        F("agents_total", "count"),
        F("rate_limited", "count", "ingest requests answered 429 since start"),
    ]),
)})

# Measurements an agent may post about itself; everything else only the collector writes.
AGENT_MEASUREMENTS = frozenset(name for name, spec in MEASUREMENTS_SPEC.items() if "agent" in spec.writers)


def contract_errors() -> list[str]:
    """What is wrong with the schema itself (a test keeps this empty)."""
    errors = []
    for m in MEASUREMENTS_SPEC.values():
        names = [m.name, *m.tags, *m.fields]
        errors += [f"{m.name}: {n!r} is not an identifier" for n in names if not IDENTIFIER.fullmatch(n)]
        errors += [f"{m.name}: {n!r} is reserved" for n in names if n in RESERVED_KEYS]
        errors += [f"{m.name}: field {n!r} shadows a tag" for n in m.fields if n in m.tags]
        errors += [f"{m.name}.{f.name}: unknown unit {f.unit!r}" for f in m.fields.values() if f.unit not in UNITS]
        errors += [f"{m.name}: no writer" for _ in [0] if not m.writers <= {"agent", "collector"} or not m.writers]
    probe = MEASUREMENTS_SPEC["probe"]
    errors += [f"probe latency of {kind}: {name!r} is not a probe field" for kind, name in PROBE_LATENCY_FIELD.items() if name not in probe.fields]
    if set(PROBE_LATENCY_FIELD) != set(PROBE_KINDS):
        errors.append("PROBE_LATENCY_FIELD must name a latency field for every probe kind")
    return errors


def point_problems(measurement: str, tags: Mapping[str, object], fields: Mapping[str, object], writer: Writer) -> list[str]:
    """What in one point does not fit the contract for this writer; [] when it fits.

    Plain and thorough, for tests and tools: the collector's ingest applies the same schema,
    compiled into lookups (collector/ingest.py).
    """
    spec = MEASUREMENTS_SPEC.get(measurement)
    if spec is None:
        return [f"measurement {measurement!r} is not in the contract"]
    if writer not in spec.writers:
        return [f"{measurement}: written by {', '.join(sorted(spec.writers))} only, not {writer}"]
    problems = []
    for key, value in tags.items():
        tag = spec.tags.get(key)
        if tag is None or (writer == "agent" and not tag.agent):
            problems.append(f"{measurement}: tag {key!r} is not in the contract")
        elif not isinstance(value, str) or not value or len(value) > MAX_TAG_LEN:
            problems.append(f"{measurement}.{key}: tag value {value!r} is not a string of 1..{MAX_TAG_LEN} characters")
        elif tag.values and value not in tag.values:
            problems.append(f"{measurement}.{key}: {value!r} is not one of {tag.values}")
        elif tag.pattern and not re.fullmatch(tag.pattern, value):
            problems.append(f"{measurement}.{key}: {value!r} does not have the form {tag.pattern}")
    required = [t.name for t in spec.tags.values() if t.required and (writer == "collector" or t.agent)]
    problems += [f"{measurement}: required tag {name!r} is missing" for name in required if name not in tags]
    if not fields:
        problems.append(f"{measurement}: no fields")
    for key, value in fields.items():
        field = spec.fields.get(key)
        if field is None:
            problems.append(f"{measurement}: field {key!r} is not in the contract")
            continue
        unit = UNITS[field.unit]
        if unit.type == "string":
            if not isinstance(value, str) or len(value) > MAX_STRING_LEN:
                problems.append(f"{measurement}.{key}: expected a string of at most {MAX_STRING_LEN} characters, got {value!r:.60}")
        elif not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{measurement}.{key}: expected a finite number, got {value!r:.60}")
        elif (unit.low is not None and value < unit.low) or (unit.high is not None and value > unit.high):
            problems.append(f"{measurement}.{key}: {value!r} is out of range for {field.unit}")
    return problems


# --- docs/metrics.md ----------------------------------------------------------------------------
_BEGIN = "<!-- contract:{} -->"
_END = "<!-- /contract:{} -->"


def _range(unit: Unit) -> str:
    if unit.type == "string":
        return f"at most {MAX_STRING_LEN} characters"
    low = "" if unit.low is None else f"{unit.low:g}"
    high = "" if unit.high is None else f"{unit.high:g}"
    if low and high:
        return f"{low}–{high}"
    return f"≥ {low}" if low else "any"


def markdown_tables(spec: MeasurementSpec) -> str:
    """The tag and field tables of one measurement, as docs/metrics.md shows them."""
    who = " and ".join(sorted(spec.writers, key=["agent", "collector"].index))
    lines = [f"Written by: {who}.", "", "| tag | required | values | meaning |", "|---|---|---|---|"]
    for tag in spec.tags.values():
        values = " \\| ".join(f"`{v}`" for v in tag.values) if tag.values else (f"`{tag.pattern}`" if tag.pattern else "")
        required = "yes" if tag.required else ""
        lines.append(f"| `{tag.name}` | {required} | {values} | {tag.doc}{'' if tag.agent else ' (never from an agent)'} |")
    lines += ["", "| field | type | unit | range | meaning |", "|---|---|---|---|---|"]
    for f in spec.fields.values():
        unit = UNITS[f.unit]
        shown = "" if unit.type == "string" else f.unit
        lines.append(f"| `{f.name}` | {unit.type} | {shown} | {_range(unit)} | {f.doc} |")
    return "\n".join(lines)


def render_metrics_doc(text: str) -> str:
    """docs/metrics.md with every contract block replaced by the tables made from the schema."""
    for name, spec in MEASUREMENTS_SPEC.items():
        begin, end = _BEGIN.format(name), _END.format(name)
        start = text.find(begin)
        stop = text.find(end)
        if start < 0 or stop < start:
            raise ValueError(f"docs/metrics.md has no block {begin} ... {end}")
        text = text[: start + len(begin)] + "\n" + markdown_tables(spec) + "\n" + text[stop:]
    return text


def _main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("--check", "--write"):
        print("usage: python -m agent.contract --check|--write docs/metrics.md", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        text = fh.read()
    rendered = render_metrics_doc(text)
    if argv[0] == "--write":
        with open(argv[1], "w", encoding="utf-8") as fh:
            fh.write(rendered)
        return 0
    if rendered != text:
        print(f"{argv[1]} is not what the contract says; run python -m agent.contract --write {argv[1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))

__all__ = [
    "AGENT_MEASUREMENTS", "IDENTIFIER", "MAX_STRING_LEN", "MAX_TAG_LEN", "MEASUREMENTS_SPEC", "PROBE_KINDS", "PROBE_LATENCY_FIELD",
    "UNITS", "probe_latency_ms",
    "FieldSpec", "MeasurementSpec", "TagSpec", "Unit", "contract_errors", "markdown_tables", "point_problems", "render_metrics_doc",
]
