"""The measurement schema: units, limits, the spec types, and every measurement as declared.

agent/contract.py is the contract everyone reads (`MEASUREMENTS_SPEC`, the checks, the docs).
It is made of this module and the probe kinds: the `probe` measurement is declared here with
what the probe runner writes for every kind (tags `kind` and `target`, fields `up`,
`duration_ms`, `reason`); each probe kind's descriptor (agent/probes/) adds its own fields and
tags, and the contract takes the kind vocabulary from the probe registry.

This module imports nothing of the project, so agent/points.py and the probe package can build
on it while agent/contract.py builds on them.

Stored types are two, forever: every number is a float (JSON integers and booleans too:
true is 1.0, false 0.0), every other value a string. A field's unit sets its valid range.
Tag and field keys are identifiers (`IDENTIFIER`); no field shares a name with a tag of its
measurement, and none is called `time`, so InfluxQL's `"host" = 'pc1'` always means the tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Collection, Literal, Mapping

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
    Unit("min", "float", 0.0),
    Unit("°C", "float", -273.15),  # degrees Celsius; below freezing in an outdoor cabinet
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
    # A running total that only grows (until its source restarts): rolled up as its maximum, not
    # averaged, so the increase over any range stays readable from the rollups (collector/rollups.py).
    cumulative: bool = False
    # A quantity of the interval since the series' previous point (seconds judged up): rolled up as
    # its sum, so the sums, and ratios of sums, over any range are exact from the rollups.
    additive: bool = False

    @property
    def type(self) -> StoredType:
        return UNITS[self.unit].type


@dataclass(frozen=True, slots=True)
class TagSpec:
    name: str
    doc: str = ""
    required: bool = False  # on every point of the measurement (site/host are set by the collector)
    values: Collection[str] | None = None  # a fixed vocabulary, when there is one
    pattern: str | None = None  # else a shape, when there is one
    agent: bool = True  # an agent may set it (False: only the collector, e.g. `device`)


@dataclass(frozen=True, slots=True)
class MeasurementSpec:
    name: str
    writers: frozenset[str]
    tags: Mapping[str, TagSpec]
    fields: Mapping[str, FieldSpec]
    # One point per event (an alert's change of state, a login), not a series sampled on a
    # cadence: averaging means nothing, so its points are kept whole as long as the longest
    # rollups instead of being rolled up (collector/rollups.py, docs/storage.md).
    events: bool = False


def measurement(
    name: str, writers: tuple[Writer, ...], tags: list[TagSpec], fields: list[FieldSpec], *, events: bool = False
) -> MeasurementSpec:
    return MeasurementSpec(
        name, frozenset(writers), MappingProxyType({t.name: t for t in tags}), MappingProxyType({f.name: f for f in fields}), events
    )


F = FieldSpec
T = TagSpec

SITE = T("site", "site id from inventory.toml (set by the collector on agent points)", required=True)
HOST = T("host", "agent id from inventory.toml (set by the collector on agent points)", required=True)
DEVICE = T("device", "device id from inventory.toml", required=True, agent=False)

# Every measurement as declared. agent/contract.py's MEASUREMENTS_SPEC is the same, but for `probe`,
# which it completes with what each registered probe kind writes.
DECLARED_MEASUREMENTS: Mapping[str, MeasurementSpec] = MappingProxyType({m.name: m for m in (
    measurement("probe", ("agent",), [
        SITE, HOST,
        T("kind", "probe kind", required=True),  # the vocabulary: the probe registry's kinds
        T("target", "probe name from inventory `[[probe]].name`", required=True),
    ], [
        F("up", "0/1", "1 when the target answered as expected (absent on traceroute hop points)"),
        F("duration_ms", "ms", "wall time of the whole probe round"),
        F("reason", "string", "why it failed, when up=0"),
    ]),
    measurement("host", ("agent",), [SITE, HOST], [
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
        F("spool_dropped_points", "count", "dropped by the spool's size bound or lost to a full disk (cumulative)", cumulative=True),
        F("spool_bytes", "bytes", "the spool's size on disk"),
    ]),
    measurement("host_disk", ("agent",), [SITE, HOST, T("mount", "mount point (a trailing backslash is cut: `C:`)", required=True)], [
        F("used_pct", "%"),
        F("total_bytes", "bytes"),
        F("used_bytes", "bytes"),
        F("free_bytes", "bytes"),
    ]),
    measurement("host_net", ("agent",), [SITE, HOST, T("nic", "network interface name as the OS reports it", required=True)], [
        F("in_bps", "bits/s"),
        F("out_bps", "bits/s"),
        F("in_errors_ps", "/s", "receive errors per second"),
        F("out_errors_ps", "/s", "transmit errors per second"),
        F("in_drops_ps", "/s", "receive drops per second"),
        F("out_drops_ps", "/s", "transmit drops per second"),
    ]),
    measurement("hardware", ("agent", "collector"), [
        T("site", "site id", required=True),
        T("host", "agent id (agents)"),
        T("device", "device id (network gear; written by the collector only)", agent=False),
        T("kind", "inventory hardware kind: `pc`, `laptop`, `server`, `firewall`, `switch`, `ups`, `printer`, or `network` when only SNMP/SSH says"),
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
    measurement("service", ("agent",), [
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
    measurement("login", ("agent",), [
        SITE, HOST,
        T("user", "the account as the OS names it, or `h:` and its keyed hash (inventory `[logins] user_names`; the collector hashes it)", required=True),
        T("kind", "`console` (at the machine: a text or graphical console) or `remote` (SSH, remote desktop, ...)", required=True,
          values=("console", "remote")),
        T("event", "`start`: a session was seen to begin; `end`: it was seen gone", required=True, values=("start", "end")),
        T("terminal", "the session's terminal (`tty1`, `pts/0`, `:0`); absent on Windows, which names none"),
    ], [
        F("from_host", "string", "remote sessions: the address or name the OS says the session came from (Windows: IPv4 only)"),
        F("start_time_s", "s", "when the session began, Unix seconds (Linux: the login; Windows: the last (re)connect)"),
        F("end_time_s", "s", "end points: when the agent saw the session gone (or, with `end_unseen`, last saw it)"),
        F("duration_s", "s", "end points: end_time_s - start_time_s"),
        F("end_unseen", "0/1", "end points: 1 when the session ended while the agent was not running"),
    ], events=True),
    measurement("lifecycle", ("collector",), [
        SITE,
        T("host", "agent id (agents)"),
        T("device", "device id (network gear)"),
        T("kind", "hardware kind; `ups-battery` for the battery of a UPS (its own plan: [lifecycle.kinds.ups-battery], the device's `battery`)", required=True),
        T("due_year", "purchase year + lifetime, or `unknown` without a purchase date: a bounded set of years", required=True),
        T("department", "when the inventory names one: costs can be summed per department"),
    ], [
        F("model", "string", "from the inventory"),
        F("purchased", "string", "ISO date; for a battery, when it went in (the inventory's `battery.replaced`, else the UPS's purchase)"),
        F("age_years", "years", "today - purchase date"),
        F("lifetime_years", "years", "the entry's own, else `[lifecycle.kinds.<kind>]`"),
        F("remaining_years", "years", "lifetime - age (negative: overdue)"),
        F("due_calendar_year", "year", "the `due_year` tag as a number, for sorting"),
        F("replacement_cost_nok", "NOK", "the entry's `cost_nok`, else the kind's default"),
    ]),
    measurement("device", ("collector",), [SITE, DEVICE], [
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
        F("temperature_c", "°C", "temperature inside the device as it measures it (MikroTik RouterOS: mtxrHlTemperature, "
          "the board sensor); absent where the device has no sensor or its profile reads none"),
        F("sys_descr", "string"),
        F("profile", "string", "the SNMP profile that polled it"),
        F("poll_ms", "ms", "time the poll took"),
        F("partial", "0/1", "1 when the device answered but some tables timed out (or are skipped for a few polls after timing out)"),
        F("partial_tables", "string", "the tables of a partial poll, e.g. `entPhysicalDescr, ifAlias`"),
        F("pages_total", "count", "printers: pages printed, prtMarkerLifeCount summed over markers; a counter (it restarts when the device's does)", cumulative=True),
        F("printer_error", "0/1", "printers: 1 when hrPrinterDetectedErrorState has any bit set (absent when the printer has no hrPrinterTable)"),
        F("printer_errors", "string", "printers: the set bits, e.g. `low_toner, door_open` (RFC 3805 names, `bit<n>` beyond them); absent when none"),
        F("ups_on_battery", "0/1", "UPSes: 1 while the load runs on the battery: upsOutputSource battery(5), or APC upsBasicOutputStatus onBattery(3) (an APC battery or self test is not counted: it is `battery_test`/`self_test` in `ups_output_source`)"),
        F("ups_seconds_on_battery", "s", "UPSes: how long it has been on battery this time (upsSecondsOnBattery; APC upsBasicBatteryTimeOnBattery where the card has it); 0 on line"),
        F("ups_minutes_left", "min", "UPSes: the UPS's estimate of runtime left on the battery at the present load (upsEstimatedMinutesRemaining; APC upsAdvBatteryRunTimeRemaining); given on line too"),
        F("ups_charge_pct", "%", "UPSes: battery charge (upsEstimatedChargeRemaining; APC upsHighPrecBatteryCapacity, else upsAdvBatteryCapacity)"),
        F("ups_battery_status", "string", "UPSes: `normal`, `low`, `depleted` or `unknown` (upsBatteryStatus); APC upsBasicBatteryStatus adds `fault` and `not_present`"),
        F("ups_battery_low", "0/1", "UPSes: 1 when `ups_battery_status` is `low` or `depleted`, 0 otherwise; absent when the status is unknown"),
        F("ups_output_source", "string", "UPSes: where the output comes from, in UPS-MIB's words: `normal` (mains), `battery`, `bypass` (load unprotected), `booster`, `reducer`, `none`, `other`; APC states without such a word keep PowerNet's name (`battery_test`, `self_test`, `eco_mode`, `sleeping`, ...)"),
        F("ups_alarms", "count", "UPSes: alarms active now (upsAlarmsPresent; absent where the UPS has no UPS-MIB alarm table)"),
        F("battery_replace_needed", "0/1", "UPSes: 1 when the UPS says its battery needs replacing (APC upsAdvBatteryReplaceIndicator)"),
        F("battery_last_replaced", "string", "UPSes: ISO date the battery was last replaced, as set on the UPS (APC upsBasicBatteryLastReplaceDate); absent when the UPS's date is no real date"),
        F("battery_replace_date", "string", "UPSes: ISO date by which the UPS recommends replacing the battery (APC upsAdvBatteryRecommendedReplaceDate; may be past); absent when it is no real date"),
    ]),
    measurement("printer_supply", ("collector",), [
        SITE, DEVICE,
        T("supply", "prtMarkerSuppliesDescription, sanitised as `ifname` (duplicates get `#<row index>`)", required=True),
        T("type", "prtMarkerSuppliesType: `toner`, `waste_toner`, `drum`, `fuser`, `transfer_unit`, `ink`, ... (`type<n>` for codes not named)", required=True),
    ], [
        F("left_pct", "%", "what is left before it needs changing, of the max capacity (a receptacle's level is its space left); absent when the device gives no number"),
        F("state", "string", "`ok`, `empty` (`full` for a receptacle), or a code: `some_remaining` (-3), `unknown` (-2, or no capacity), `other` (-1)"),
        F("receptacle", "0/1", "1 for a waste box (prtMarkerSuppliesClass receptacle, or a waste type)"),
        F("level", "number", "prtMarkerSuppliesLevel as sent, in units of the max capacity (negative values are the codes)"),
        F("max_capacity", "number", "prtMarkerSuppliesMaxCapacity as sent (negative values are codes)"),
    ]),
    measurement("interface", ("collector",), [SITE, DEVICE, T("ifname", "ifName, else ifDescr", required=True)], [
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
    measurement("availability", ("collector",), [
        SITE,
        T("kind", "what the verdict is about", required=True, values=("agent", "device", "target")),
        T("host", "agents and probe targets: the agent id"),
        T("device", "devices: the device id"),
        T("target", "probe targets: the probe name"),
    ], [
        F("up", "0/1", "the verdict from this point until the series' next point (held at most one beat and a minute); absent: nobody knows"),
        F("silent_s", "s", "seconds since the last sign of life (agents: a heartbeat or a recent report; targets: the newest probe, also on the point without `up` when its probes stopped)"),
        F("expected_s", "s", "agents: the longest gap between signs of life it is held to (its heartbeat, or its report interval); down after `down_after_intervals` of them"),
        F("waiting_s", "s", "agents never heard from (no `up`: neither up nor down): how long the collector has been waiting for the first report"),
        F("up_s", "s", "seconds since the series' previous point in which it was judged up", additive=True),
        F("judged_s", "s", "seconds since the series' previous point in which it was judged at all (up or down): `sum(up_s) / sum(judged_s)` is the availability of any range", additive=True),
    ]),
    measurement("alert", ("collector",), [
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
    ], events=True),
    measurement("collector", ("collector",), [T("collector", "instance name: `main`, or its name in `[collectors.NAME]` where several share a storage", required=True)], [
        F("points_in", "count", "accepted at ingest since start", cumulative=True),
        F("batches_in", "count", "batches accepted at ingest since start", cumulative=True),
        F("duplicates", "count", "resent batches acknowledged without storing them again", cumulative=True),
        F("queue_points", "count", "waiting in the durable queue"),
        F("queue_bytes", "bytes", "the durable queue's size"),
        F("queue_age_s", "s", "age of the oldest batch waiting in the queue"),
        F("written_points", "count", "written to InfluxDB (cumulative)", cumulative=True),
        F("dropped_points", "count", "dropped because the queue hit its bound (cumulative; alerted)", cumulative=True),
        F("rejected_points", "count", "refused by InfluxDB or the line-protocol writer as bad data, moved aside (cumulative)", cumulative=True),
        F("write_errors", "count", "failed write attempts since start", cumulative=True),
        F("agents_up", "count"),
        F("agents_down", "count"),
        F("agents_waiting", "count", "agents that have never reported"),
        F("agents_total", "count"),
        F("rate_limited", "count", "ingest requests answered 429 since start", cumulative=True),
        F("too_old_points", "count", "taken at ingest since start but not stored: older than the raw retention (docs/storage.md)", cumulative=True),
    ]),
)})
