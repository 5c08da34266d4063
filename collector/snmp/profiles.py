"""SNMP profiles as data: which numeric OIDs to read, what they mean, in which unit.

Like snmp_exporter's generated config, nothing here is resolved from MIB files at run time:
every OID is numeric, and the MIB name is kept beside it for people reading logs. A profile
is a list of modules chosen by the device's sysObjectID (longest prefix wins, `generic`
otherwise), or, for a device the sysObjectID leaves generic, by what it answers: a profile with
`probe` OIDs (printers: Printer-MIB columns; UPSes: UPS-MIB scalars) is taken when the device
answers a walk of one of them.
The poller reads three kinds of entries:

- `Scalar`: one instance OID (ending in .0) -> one `device` field (or `hardware` field), through
  a scale, an enum or a `convert` function; one OID may feed several fields.
- `Column`: one table column, walked; its `meaning` is a role the module's consumer knows
  (interface counters, ENTITY chassis facts) or a name an `Aggregate` refers to.
- `Aggregate`: reduces rows of columns to one `device` field (mean CPU over processors,
  used/total memory, tunnels up). For one field, the first aggregate or scalar that yields a
  value wins, so modules and aggregates are listed in order of preference.

Every OID below was checked against the LibreNMS recordings in shared/snmprec where the
device family is recorded (see tests/test_snmp_profiles.py) and against the MIB texts. MikroTik
RouterOS has no shared recording: mikrotik.py names the real answers its OIDs were checked
against, and tests/testdata/snmprec holds the project's own recordings shaped after them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from . import mikrotik as mt
from . import printer as prt
from . import ups

Kind = Literal["gauge", "counter32", "counter64", "string", "enum", "timeticks", "oid"]
AggregateOp = Literal["mean", "max", "sum", "count", "count_eq", "ratio_pct"]


@dataclass(frozen=True)
class Scalar:
    """One instance OID -> one device field; numbers are multiplied by `scale` into `unit`."""

    name: str  # MIB object name, for humans and logs
    oid: str
    field: str
    kind: Kind
    unit: str = ""
    scale: float = 1.0
    enum: Mapping[int, str] | None = None  # kind="enum": value -> string stored in `field`
    emit: bool = True  # False: read for the poller's own use (profile choice), not stored
    # What a value means, where a scale or an enum cannot say it (a TimeTicks sentinel, a date
    # as text, 0/1 from a code): raw value -> field value, None when it is no value. The
    # functions live beside their MIB's OIDs (ups.py) and are tested there.
    convert: Callable[[Any], float | str | None] | None = None
    # The point the field goes on: the `device` point, or the `hardware` point (model, serial,
    # vendor of devices without an ENTITY-MIB chassis; ENTITY wins where it has one).
    point: Literal["device", "hardware"] = "device"


@dataclass(frozen=True)
class Column:
    """One table column; the row index is what follows `oid` in each walked OID."""

    name: str
    oid: str
    meaning: str
    kind: Kind
    unit: str = ""
    scale: float = 1.0
    # Walked only for rows the columns listed before it with the same meaning left without a
    # usable value (ifHCInOctets first, ifInOctets for the rest).
    fallback: bool = False
    # A value of 0 means "not known" (ifHighSpeed is 0 below 1 Mbit/s): try the fallback.
    zero_is_unknown: bool = False


@dataclass(frozen=True)
class Aggregate:
    """Reduce the rows of a table to one device field.

    ops: mean/max/sum of `columns[0]`; count of rows of `columns[0]`; count_eq of rows whose
    `columns[0]` equals `value`; ratio_pct = 100 * sum(columns) / sum(denominator), summing
    each listed column over the rows. `where` keeps only rows whose column equals a value.
    `default` is the result when the walk succeeded but no row matched (0 tunnels), never
    when it failed.
    """

    field: str
    op: AggregateOp
    columns: tuple[str, ...]
    denominator: tuple[str, ...] = ()
    value: int | str | None = None
    where: tuple[tuple[str, int | str], ...] = ()
    unit: str = ""
    default: float | None = None

    def column_oids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((*self.columns, *self.denominator, *(oid for oid, _ in self.where))))


@dataclass(frozen=True)
class Module:
    name: str
    scalars: tuple[Scalar, ...] = ()
    columns: tuple[Column, ...] = ()
    aggregates: tuple[Aggregate, ...] = ()


@dataclass(frozen=True)
class Profile:
    name: str
    sys_object_ids: tuple[str, ...]  # prefixes of sysObjectID this profile is for
    modules: tuple[Module, ...]
    description: str = ""
    # Chosen by asking the device, not by its sysObjectID: a device whose sysObjectID selects no
    # vendor profile (generic) gets this profile when it answers a walk of one of these OIDs
    # (a table column: any row; a scalar's object OID, without .0: its instance). The poller
    # asks once per sysObjectID and remembers the answer (poller.DevicePoller).
    probe: tuple[str, ...] = ()

    def scalars(self) -> list[Scalar]:
        return [s for m in self.modules for s in m.scalars]

    def columns(self) -> list[Column]:
        return [c for m in self.modules for c in m.columns]

    def aggregates(self) -> list[Aggregate]:
        return [a for m in self.modules for a in m.aggregates]

    def module(self, name: str) -> Module | None:
        return next((m for m in self.modules if m.name == name), None)


# ---------------------------------------------------------------- SNMPv2-MIB system group

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"

SYSTEM = Module(
    "system",
    scalars=(
        Scalar("sysDescr", SYS_DESCR, "sys_descr", "string"),
        Scalar("sysObjectID", SYS_OBJECT_ID, "sys_object_id", "oid", emit=False),
        # TimeTicks are hundredths of a second.
        Scalar("sysUpTime", SYS_UPTIME, "uptime_s", "timeticks", unit="s", scale=0.01),
        Scalar("sysName", SYS_NAME, "sys_name", "string", emit=False),
    ),
)

# ---------------------------------------------------------------- IF-MIB (RFC 2863)
# The interface list is the union of the ifName and ifDescr indexes: the recordings (and some
# real agents) have no ifIndex column. Meanings are the roles the poller turns into fields.

IF_MIB = Module(
    "if_mib",
    columns=(
        Column("ifName", "1.3.6.1.2.1.31.1.1.1.1", "ifname", "string"),
        Column("ifDescr", "1.3.6.1.2.1.2.2.1.2", "ifdescr", "string"),
        Column("ifAlias", "1.3.6.1.2.1.31.1.1.1.18", "alias", "string"),
        Column("ifOperStatus", "1.3.6.1.2.1.2.2.1.8", "oper_status", "enum"),  # up(1)
        Column("ifAdminStatus", "1.3.6.1.2.1.2.2.1.7", "admin_status", "enum"),  # up(1)
        Column("ifHighSpeed", "1.3.6.1.2.1.31.1.1.1.15", "speed_bps", "gauge", "bit/s", 1e6, zero_is_unknown=True),
        Column("ifSpeed", "1.3.6.1.2.1.2.2.1.5", "speed_bps", "gauge", "bit/s", fallback=True),
        Column("ifHCInOctets", "1.3.6.1.2.1.31.1.1.1.6", "in_octets", "counter64", "octets"),
        Column("ifInOctets", "1.3.6.1.2.1.2.2.1.10", "in_octets", "counter32", "octets", fallback=True),
        Column("ifHCOutOctets", "1.3.6.1.2.1.31.1.1.1.10", "out_octets", "counter64", "octets"),
        Column("ifOutOctets", "1.3.6.1.2.1.2.2.1.16", "out_octets", "counter32", "octets", fallback=True),
        Column("ifInErrors", "1.3.6.1.2.1.2.2.1.14", "in_errors", "counter32", "packets"),
        Column("ifOutErrors", "1.3.6.1.2.1.2.2.1.20", "out_errors", "counter32", "packets"),
        Column("ifInDiscards", "1.3.6.1.2.1.2.2.1.13", "in_discards", "counter32", "packets"),
        Column("ifOutDiscards", "1.3.6.1.2.1.2.2.1.19", "out_discards", "counter32", "packets"),
    ),
)

# ---------------------------------------------------------------- ENTITY-MIB (RFC 6933)
# entPhysicalTable; the chassis is the row with entPhysicalClass chassis(3). FortiOS 7 leaves
# the class column out (fortigate_60f), so the poller falls back to the lowest row with a
# model name or serial.

ENT_CLASS_CHASSIS = 3

ENTITY = Module(
    "entity",
    columns=(
        Column("entPhysicalClass", "1.3.6.1.2.1.47.1.1.1.1.5", "class", "enum"),
        Column("entPhysicalHardwareRev", "1.3.6.1.2.1.47.1.1.1.1.8", "hw_rev", "string"),
        Column("entPhysicalFirmwareRev", "1.3.6.1.2.1.47.1.1.1.1.9", "fw_rev", "string"),
        Column("entPhysicalSoftwareRev", "1.3.6.1.2.1.47.1.1.1.1.10", "sw_rev", "string"),
        Column("entPhysicalSerialNum", "1.3.6.1.2.1.47.1.1.1.1.11", "serial", "string"),
        Column("entPhysicalMfgName", "1.3.6.1.2.1.47.1.1.1.1.12", "vendor", "string"),
        Column("entPhysicalModelName", "1.3.6.1.2.1.47.1.1.1.1.13", "model", "string"),
    ),
)

# ---------------------------------------------------------------- HOST-RESOURCES-MIB (RFC 2790)

HR_STORAGE_RAM = "1.3.6.1.2.1.25.2.1.2"  # hrStorageRam, the type of the physical memory row

HOST_RESOURCES = Module(
    "host_resources",
    columns=(
        Column("hrProcessorLoad", "1.3.6.1.2.1.25.3.3.1.2", "cpu_load", "gauge", "%"),
        Column("hrStorageType", "1.3.6.1.2.1.25.2.3.1.2", "storage_type", "oid"),
        Column("hrStorageSize", "1.3.6.1.2.1.25.2.3.1.5", "storage_size", "gauge", "units"),
        Column("hrStorageUsed", "1.3.6.1.2.1.25.2.3.1.6", "storage_used", "gauge", "units"),
    ),
    aggregates=(
        # hrProcessorLoad is the 1-minute average per processor; the device figure is the mean.
        Aggregate("cpu_pct", "mean", ("1.3.6.1.2.1.25.3.3.1.2",), unit="%"),
        # Both size and used are in hrStorageAllocationUnits of the same row, so the unit cancels.
        Aggregate(
            "mem_used_pct", "ratio_pct", ("1.3.6.1.2.1.25.2.3.1.6",), ("1.3.6.1.2.1.25.2.3.1.5",),
            where=(("1.3.6.1.2.1.25.2.3.1.2", HR_STORAGE_RAM),), unit="%",
        ),
    ),
)

# ---------------------------------------------------------------- FORTINET-FORTIGATE-MIB

_FG = "1.3.6.1.4.1.12356.101"
FG_VPN_TUN_STATUS = f"{_FG}.12.2.2.1.20"  # fgVpnTunEntStatus: down(1), up(2)
FG_VPN2_TUN_STATUS = f"{_FG}.12.4.2.1.26"  # fgVpn2TunStatus (FortiOS 6.4.2+): down(1), up(2)
FG_HA_STATS_SERIAL = f"{_FG}.13.2.1.1.2"  # fgHaStatsSerial, one row per cluster member
FG_HA_STATS_SYNC = f"{_FG}.13.2.1.1.12"  # fgHaStatsSyncStatus: unsynchronized(0), synchronized(1)

FORTIGATE = Module(
    "fortigate",
    scalars=(
        Scalar("fgSysVersion", f"{_FG}.4.1.1.0", "firmware", "string"),
        Scalar("fgSysCpuUsage", f"{_FG}.4.1.3.0", "cpu_pct", "gauge", "%"),
        Scalar("fgSysMemUsage", f"{_FG}.4.1.4.0", "mem_used_pct", "gauge", "%"),
        Scalar("fgSysSesCount", f"{_FG}.4.1.8.0", "sessions", "gauge", "sessions"),
        Scalar(
            "fgHaSystemMode", f"{_FG}.13.1.1.0", "ha_state", "enum",
            enum={1: "standalone", 2: "active-active", 3: "active-passive"},
        ),
    ),
    columns=(
        Column("fgVpn2TunStatus", FG_VPN2_TUN_STATUS, "vpn2_status", "enum"),
        Column("fgVpnTunEntStatus", FG_VPN_TUN_STATUS, "vpn_status", "enum"),
        Column("fgHaStatsSerial", FG_HA_STATS_SERIAL, "ha_serial", "string"),
        Column("fgHaStatsSyncStatus", FG_HA_STATS_SYNC, "ha_sync", "enum"),
    ),
    aggregates=(
        # FortiOS 7 fills the newer fgVpn2TunTable and may leave fgVpnTunTable empty (60F);
        # older releases only have fgVpnTunTable (100E). The first table with rows wins, so a
        # release that fills both is not counted twice.
        Aggregate("vpn_tunnels_up", "count_eq", (FG_VPN2_TUN_STATUS,), value=2),
        Aggregate("vpn_tunnels_up", "count_eq", (FG_VPN_TUN_STATUS,), value=2, default=0),
        Aggregate("vpn_tunnels_total", "count", (FG_VPN2_TUN_STATUS,)),
        Aggregate("vpn_tunnels_total", "count", (FG_VPN_TUN_STATUS,), default=0),
        Aggregate("ha_members", "count", (FG_HA_STATS_SERIAL,)),
        Aggregate("ha_members_in_sync", "count_eq", (FG_HA_STATS_SYNC,), value=1),
    ),
)

# ---------------------------------------------------------------- HP ProCurve (HP-ICF / STATISTICS-MIB)

_HP = "1.3.6.1.4.1.11.2.14.11.5.1"
HP_MEM_TOTAL = f"{_HP}.1.2.1.1.1.5"  # hpLocalMemTotalBytes
HP_MEM_ALLOC = f"{_HP}.1.2.1.1.1.7"  # hpLocalMemAllocBytes

PROCURVE = Module(
    "procurve",
    scalars=(Scalar("hpSwitchCpuStat", f"{_HP}.9.6.1.0", "cpu_pct", "gauge", "%"),),
    columns=(
        Column("hpLocalMemTotalBytes", HP_MEM_TOTAL, "mem_total", "gauge", "bytes"),
        Column("hpLocalMemAllocBytes", HP_MEM_ALLOC, "mem_alloc", "gauge", "bytes"),
    ),
    aggregates=(Aggregate("mem_used_pct", "ratio_pct", (HP_MEM_ALLOC,), (HP_MEM_TOTAL,), unit="%"),),
)

# ---------------------------------------------------------------- Cisco (CISCO-PROCESS-MIB, CISCO-MEMORY-POOL-MIB)

CISCO_CPU_5MIN = "1.3.6.1.4.1.9.9.109.1.1.1.1.8"  # cpmCPUTotal5minRev, one row per CPU (stack member)
CISCO_POOL_NAME = "1.3.6.1.4.1.9.9.48.1.1.1.2"  # ciscoMemoryPoolName
CISCO_POOL_USED = "1.3.6.1.4.1.9.9.48.1.1.1.5"  # ciscoMemoryPoolUsed (bytes)
CISCO_POOL_FREE = "1.3.6.1.4.1.9.9.48.1.1.1.6"  # ciscoMemoryPoolFree (bytes)

CISCO = Module(
    "cisco",
    columns=(
        Column("cpmCPUTotal5minRev", CISCO_CPU_5MIN, "cpu_5min", "gauge", "%"),
        Column("ciscoMemoryPoolName", CISCO_POOL_NAME, "pool_name", "string"),
        Column("ciscoMemoryPoolUsed", CISCO_POOL_USED, "pool_used", "gauge", "bytes"),
        Column("ciscoMemoryPoolFree", CISCO_POOL_FREE, "pool_free", "gauge", "bytes"),
    ),
    aggregates=(
        Aggregate("cpu_pct", "mean", (CISCO_CPU_5MIN,), unit="%"),
        # The Processor pool is the memory that runs out; the I/O pool is a fixed carve-out.
        Aggregate(
            "mem_used_pct", "ratio_pct", (CISCO_POOL_USED,), (CISCO_POOL_USED, CISCO_POOL_FREE),
            where=((CISCO_POOL_NAME, "Processor"),), unit="%",
        ),
        Aggregate("mem_used_pct", "ratio_pct", (CISCO_POOL_USED,), (CISCO_POOL_USED, CISCO_POOL_FREE), unit="%"),
    ),
)

# ---------------------------------------------------------------- Printer-MIB (RFC 3805) and hrPrinterTable (RFC 2790)
# The OIDs are in printer.py beside what their values mean; the poller turns the supply rows
# into `printer_supply` points and the rest into device and hardware fields (poller._printer).

PRINTER = Module(
    "printer",
    columns=(
        Column("prtMarkerSuppliesClass", prt.PRT_SUPPLIES_CLASS, "supply_class", "enum"),  # only jetdirect has it
        Column("prtMarkerSuppliesType", prt.PRT_SUPPLIES_TYPE, "supply_type", "enum"),
        Column("prtMarkerSuppliesDescription", prt.PRT_SUPPLIES_DESCRIPTION, "supply_name", "string"),
        Column("prtMarkerSuppliesMaxCapacity", prt.PRT_SUPPLIES_MAX_CAPACITY, "supply_max", "gauge", "units"),
        Column("prtMarkerSuppliesLevel", prt.PRT_SUPPLIES_LEVEL, "supply_level", "gauge", "units"),
        Column("prtMarkerLifeCount", prt.PRT_MARKER_LIFE_COUNT, "pages", "counter32", "pages"),
        Column("prtGeneralSerialNumber", prt.PRT_GENERAL_SERIAL, "printer_serial", "string"),
        Column("hrDeviceDescr", prt.HR_DEVICE_DESCR, "printer_model", "string"),
        Column("hrPrinterDetectedErrorState", prt.HR_PRINTER_ERROR_STATE, "printer_errors", "string"),
    ),
    # One row per marker (a colour printer may count per engine): the device's pages are the sum.
    aggregates=(Aggregate("pages_total", "sum", (prt.PRT_MARKER_LIFE_COUNT,), unit="pages"),),
)

# ---------------------------------------------------------------- UPS-MIB (RFC 1628) and APC PowerNet-MIB
# The OIDs and what their values mean are in ups.py. Both modules write the same device fields
# in the same words (PowerNet's output states in UPS-MIB's terms), so a rule or a reader never
# asks which MIB a UPS speaks. Absent objects are absent fields: the Eaton and Dell recordings
# have no upsIdentModel and no upsAlarmsPresent, the APC ones no battery status.

UPS_MIB = Module(
    "ups_mib",
    scalars=(
        Scalar("upsIdentManufacturer", ups.UPS_IDENT_MANUFACTURER, "vendor", "string", point="hardware"),
        Scalar("upsIdentModel", ups.UPS_IDENT_MODEL, "model", "string", point="hardware"),
        Scalar("upsBatteryStatus", ups.UPS_BATTERY_STATUS, "ups_battery_status", "enum", convert=ups.battery_status),
        Scalar("upsBatteryStatus", ups.UPS_BATTERY_STATUS, "ups_battery_low", "enum", convert=ups.battery_low),
        Scalar("upsSecondsOnBattery", ups.UPS_SECONDS_ON_BATTERY, "ups_seconds_on_battery", "gauge", "s",
               convert=ups.non_negative),
        Scalar("upsEstimatedMinutesRemaining", ups.UPS_ESTIMATED_MINUTES_REMAINING, "ups_minutes_left", "gauge", "min",
               convert=ups.non_negative),
        Scalar("upsEstimatedChargeRemaining", ups.UPS_ESTIMATED_CHARGE_REMAINING, "ups_charge_pct", "gauge", "%",
               convert=ups.percent),
        Scalar("upsOutputSource", ups.UPS_OUTPUT_SOURCE, "ups_output_source", "enum", convert=ups.output_source),
        Scalar("upsOutputSource", ups.UPS_OUTPUT_SOURCE, "ups_on_battery", "enum", convert=ups.on_battery),
        Scalar("upsAlarmsPresent", ups.UPS_ALARMS_PRESENT, "ups_alarms", "gauge", "alarms", convert=ups.non_negative),
    ),
)

APC_UPS = Module(
    "apc_ups",
    scalars=(
        Scalar("upsBasicIdentModel", ups.APC_BASIC_IDENT_MODEL, "model", "string", point="hardware"),
        Scalar("upsAdvIdentSerialNumber", ups.APC_ADV_IDENT_SERIAL, "serial", "string", point="hardware"),
        Scalar("upsAdvIdentFirmwareRevision", ups.APC_ADV_IDENT_FIRMWARE, "fw_rev", "string", point="hardware"),
        Scalar("upsBasicBatteryStatus", ups.APC_BASIC_BATTERY_STATUS, "ups_battery_status", "enum",
               convert=ups.apc_battery_status),
        Scalar("upsBasicBatteryStatus", ups.APC_BASIC_BATTERY_STATUS, "ups_battery_low", "enum",
               convert=ups.apc_battery_low),
        Scalar("upsBasicBatteryTimeOnBattery", ups.APC_BASIC_BATTERY_TIME_ON_BATTERY, "ups_seconds_on_battery",
               "timeticks", "s", convert=ups.ticks_to_seconds),
        Scalar("upsAdvBatteryRunTimeRemaining", ups.APC_ADV_BATTERY_RUNTIME_REMAINING, "ups_minutes_left",
               "timeticks", "min", convert=ups.ticks_to_minutes),
        # The high-precision capacity first: the same figure in tenths (both APC recordings have
        # only this one).
        Scalar("upsHighPrecBatteryCapacity", ups.APC_HIGH_PREC_BATTERY_CAPACITY, "ups_charge_pct", "gauge", "%",
               convert=ups.tenths_to_pct),
        Scalar("upsAdvBatteryCapacity", ups.APC_ADV_BATTERY_CAPACITY, "ups_charge_pct", "gauge", "%",
               convert=ups.percent),
        Scalar("upsBasicOutputStatus", ups.APC_BASIC_OUTPUT_STATUS, "ups_output_source", "enum",
               convert=ups.apc_output_source),
        Scalar("upsBasicOutputStatus", ups.APC_BASIC_OUTPUT_STATUS, "ups_on_battery", "enum",
               convert=ups.apc_on_battery),
        Scalar("upsAdvBatteryReplaceIndicator", ups.APC_ADV_BATTERY_REPLACE_INDICATOR, "battery_replace_needed",
               "enum", convert=ups.replace_needed),
        Scalar("upsBasicBatteryLastReplaceDate", ups.APC_BASIC_BATTERY_LAST_REPLACE_DATE, "battery_last_replaced",
               "string", convert=ups.mdy_date),
        Scalar("upsAdvBatteryRecommendedReplaceDate", ups.APC_ADV_BATTERY_RECOMMENDED_REPLACE_DATE,
               "battery_replace_date", "string", convert=ups.mdy_date),
    ),
)

# ---------------------------------------------------------------- MikroTik RouterOS (MIKROTIK-MIB)
# The OIDs, what their values mean and what they were verified against are in mikrotik.py.
# RouterOS's ENTITY-MIB chassis row has no model and no serial, so the profile does not walk
# ENTITY at all: MIKROTIK-MIB says both. CPU (hrProcessorLoad per core) and memory (the
# hrStorageRam row) are HOST-RESOURCES, as RouterOS answers them.

MIKROTIK = Module(
    "mikrotik",
    scalars=(
        Scalar("mtxrBoardName", mt.MTXR_BOARD_NAME, "model", "string", point="hardware"),
        # Releases without mtxrBoardName: the board named in sysDescr (already read with the
        # system group, so not asked again).
        Scalar("sysDescr", SYS_DESCR, "model", "string", point="hardware", convert=mt.model_from_sys_descr),
        Scalar("mtxrSerialNumber", mt.MTXR_SERIAL_NUMBER, "serial", "string", point="hardware"),
        Scalar("mtxrFirmwareVersion", mt.MTXR_FIRMWARE_VERSION, "fw_rev", "string", point="hardware"),
        # The RouterOS version: the hardware point's software revision, and so (as for every
        # profile without a firmware scalar) the device point's `firmware`.
        Scalar("mtxrLicVersion", mt.MTXR_LIC_VERSION, "sw_rev", "string", point="hardware"),
        Scalar("mtxrHlTemperature", mt.MTXR_HL_TEMPERATURE, "temperature_c", "gauge", "°C", convert=mt.tenths),
    ),
    columns=(
        Column("mtxrGaugeValue", mt.MTXR_GAUGE_VALUE, "gauge_value", "gauge"),
        Column("mtxrGaugeUnit", mt.MTXR_GAUGE_UNIT, "gauge_unit", "enum"),
    ),
    aggregates=(
        # RouterOS 6.47 and later: the hottest sensor in whole degrees. Older releases answer
        # mtxrHlTemperature above instead (a scalar, so it is taken first where both exist).
        Aggregate("temperature_c", "max", (mt.MTXR_GAUGE_VALUE,), where=((mt.MTXR_GAUGE_UNIT, mt.GAUGE_UNIT_CELSIUS),),
                  unit="°C"),
    ),
)

MODULES: dict[str, Module] = {
    m.name: m
    for m in (SYSTEM, IF_MIB, ENTITY, HOST_RESOURCES, FORTIGATE, PROCURVE, CISCO, PRINTER, UPS_MIB, APC_UPS, MIKROTIK)
}

# ---------------------------------------------------------------- profiles

GENERIC = Profile(
    "generic", (), (SYSTEM, IF_MIB, ENTITY, HOST_RESOURCES),
    "any SNMP agent: MIB-2 interfaces, ENTITY chassis, HOST-RESOURCES CPU and memory",
)

PROFILES: Mapping[str, Profile] = MappingProxyType({
    p.name: p
    for p in (
        Profile(
            "fortigate", (f"{_FG}.1",), (SYSTEM, IF_MIB, ENTITY, FORTIGATE),
            "Fortinet FortiGate (sysObjectID under fgModel 1.3.6.1.4.1.12356.101.1)",
        ),
        # Stacks (an Aruba 3810M stack, for one) answer with a sysObjectID under 11.2.3.7.8, not
        # hpEtherSwitch; the same HP-ICF CPU and memory objects apply. No shared recording of a
        # stack exists yet, so only the selection is tested (tests/test_snmp_profiles.py).
        Profile(
            "procurve", ("1.3.6.1.4.1.11.2.3.7.11", "1.3.6.1.4.1.11.2.3.7.8"), (SYSTEM, IF_MIB, ENTITY, PROCURVE),
            "HP ProCurve / Aruba switches (hpEtherSwitch 1.3.6.1.4.1.11.2.3.7.11) and stacks (1.3.6.1.4.1.11.2.3.7.8)",
        ),
        Profile(
            "cisco", ("1.3.6.1.4.1.9.1",), (SYSTEM, IF_MIB, ENTITY, CISCO),
            "Cisco IOS devices (ciscoProducts 1.3.6.1.4.1.9.1)",
        ),
        Profile(
            "routeros", (mt.ROUTEROS_SYS_OBJECT_ID,), (SYSTEM, IF_MIB, HOST_RESOURCES, MIKROTIK),
            "MikroTik RouterOS (sysObjectID 1.3.6.1.4.1.14988.1): generic without ENTITY, plus MIKROTIK-MIB board "
            "name, serial, RouterBOOT firmware, RouterOS version and board temperature",
        ),
        # Printers' sysObjectIDs are under each vendor's enterprise (HP's even beside its
        # switches), so Printer-MIB itself says it is a printer: a supplies row or a page counter
        # (jetdirect and okilan have no prtMarkerLifeCount, every recording has supplies).
        Profile(
            "printer", (), (SYSTEM, IF_MIB, ENTITY, HOST_RESOURCES, PRINTER),
            "printers: generic plus Printer-MIB supplies, page count, serial and error state (found by probing Printer-MIB)",
            probe=(prt.PRT_SUPPLIES_LEVEL, prt.PRT_MARKER_LIFE_COUNT),
        ),
        # A UPS card's sysObjectID is its vendor's (Eaton 705, Dell 674.10902) or only "Linux"
        # (net-snmp on a small card or a NUT host), so UPS-MIB itself says it is a UPS: the
        # battery status or the output source, both mandatory in RFC 1628.
        Profile(
            "ups", (), (SYSTEM, IF_MIB, ENTITY, HOST_RESOURCES, UPS_MIB),
            "UPSes speaking UPS-MIB (RFC 1628): generic plus on battery, minutes left, charge, battery status, "
            "alarms (found by probing UPS-MIB)",
            probe=(ups.UPS_BATTERY_STATUS_OBJECT, ups.UPS_OUTPUT_SOURCE_OBJECT),
        ),
        # APC's own MIB first: it is what every APC card has (apc_sua750i has nothing else);
        # UPS-MIB fills in what PowerNet does not say (alarms) on cards that also speak it.
        Profile(
            "apc_ups", (ups.APC_ENTERPRISE,), (SYSTEM, IF_MIB, ENTITY, APC_UPS, UPS_MIB),
            "APC UPSes (sysObjectID under 1.3.6.1.4.1.318): PowerNet-MIB battery, runtime, output state and battery "
            "replacement dates, plus UPS-MIB where the card has it",
        ),
        GENERIC,
    )
})
# Profiles chosen by probing, in the order they are asked (the first that answers wins).
PROBED: tuple[Profile, ...] = tuple(p for p in PROFILES.values() if p.probe)


def select_profile(sys_object_id: str | None, override: str | None = None) -> Profile:
    """The profile for a device: `override` if given, else the longest sysObjectID prefix match."""
    if override is not None:
        try:
            return PROFILES[override]
        except KeyError:
            raise ValueError(f"unknown SNMP profile {override!r}; known: {', '.join(sorted(PROFILES))}") from None
    if not sys_object_id:
        return GENERIC
    oid = sys_object_id.strip().lstrip(".")
    best: tuple[int, Profile] | None = None
    for profile in PROFILES.values():
        for prefix in profile.sys_object_ids:
            if oid == prefix or oid.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), profile)
    return best[1] if best else GENERIC
