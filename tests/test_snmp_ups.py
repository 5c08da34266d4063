"""UPSes polled as UPSes: what UPS-MIB (RFC 1628) and APC PowerNet values mean (collector/snmp/ups.py),
and every shared UPS recording served by snmpsim through the real DevicePoller (and the collector's
scheduler from an inventory), with the values shared/snmprec/README.md lists and snmpbulkwalk reads.

A UPS on a real snmpd whose values the test changes (on line, then on battery): test_snmp_ups_snmpd.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.points import Point
from agent.schema import DECLARED_MEASUREMENTS
from collector.localservers import SnmpsimServer
from collector.snmp import ups
from collector.snmp.cli import UPS_FIELDS, render_table
from collector.snmp.profiles import PROBED, PROFILES
from inventories import InventoryBuilder
from test_snmp_printer_poller import _fits, _two_polls, first_scheduled_polls
from test_snmp_session import net_snmp_env, net_snmp_walk, v2c

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

# The device fields of a UPS, by these names: the alert rules and the lifecycle read them.
CONTRACT_UPS_FIELDS = (
    "ups_on_battery", "ups_seconds_on_battery", "ups_minutes_left", "ups_charge_pct", "ups_battery_status",
    "ups_battery_low", "ups_output_source", "ups_alarms", "battery_replace_needed", "battery_last_replaced",
    "battery_replace_date",
)
UPSES = ("eaton-mgeups_9px", "dell-ups_tower1000w", "apc_sua750i", "apc_smt750x-nmc2")
PRINTERS = ("jetdirect_m252dw", "ricoh_mpc3002", "konica_c250i", "brother_hl5370dw", "okilan_9450g")
EXPECTED_PROFILE = {"eaton-mgeups_9px": "ups", "dell-ups_tower1000w": "ups", "apc_sua750i": "apc_ups",
                    "apc_smt750x-nmc2": "apc_ups"}
# The UPS fields of each recording's device point, as the README says (and nothing else: what a
# UPS does not send is absent, never 0).
EXPECTED_UPS = {
    "eaton-mgeups_9px": {  # battery normal, 0 s on battery, 24 min left, 100 %, output normal
        "ups_battery_status": "normal", "ups_battery_low": 0.0, "ups_seconds_on_battery": 0.0, "ups_minutes_left": 24.0,
        "ups_charge_pct": 100.0, "ups_output_source": "normal", "ups_on_battery": 0.0,
    },
    "dell-ups_tower1000w": {  # battery normal, 31 min left, 98 %, output normal
        "ups_battery_status": "normal", "ups_battery_low": 0.0, "ups_seconds_on_battery": 0.0, "ups_minutes_left": 31.0,
        "ups_charge_pct": 98.0, "ups_output_source": "normal", "ups_on_battery": 0.0,
    },
    "apc_sua750i": {  # PowerNet only: 438000 ticks = 73 min, on line, replaced 04/30/25, replace by 01/10/2022
        "ups_minutes_left": 73.0, "ups_charge_pct": 100.0, "ups_output_source": "normal", "ups_on_battery": 0.0,
        "battery_replace_needed": 0.0, "battery_last_replaced": "2025-04-30", "battery_replace_date": "2022-01-10",
    },
    "apc_smt750x-nmc2": {  # 10976200 ticks = 1829.37 min at a small load; no dates recorded
        "ups_minutes_left": 1829.37, "ups_charge_pct": 100.0, "ups_output_source": "normal", "ups_on_battery": 0.0,
        "battery_replace_needed": 0.0,
    },
}
# Neither the Eaton nor the Dell capture has upsIdentModel: only the manufacturer is said.
EXPECTED_HARDWARE = {
    "eaton-mgeups_9px": {"vendor": "EATON"},
    "dell-ups_tower1000w": {"vendor": "DELL"},
    "apc_sua750i": {"model": "Smart-UPS 750", "serial": "FFFFFFFFFFFF", "fw_rev": "651.12.I"},
    "apc_smt750x-nmc2": {"model": "Smart-UPS X 750", "serial": "AS1907242163", "fw_rev": "UPS 09.8 (ID20)"},
}


# ---------------------------------------------------------------- what the values mean


def test_the_contract_has_the_ups_fields_the_modules_write() -> None:
    device = DECLARED_MEASUREMENTS["device"].fields
    assert set(CONTRACT_UPS_FIELDS) <= set(device)
    assert set(UPS_FIELDS) == set(CONTRACT_UPS_FIELDS)  # what the UPS modules write, exactly these
    units = {name: device[name].unit for name in CONTRACT_UPS_FIELDS}
    assert units == {
        "ups_on_battery": "0/1", "ups_seconds_on_battery": "s", "ups_minutes_left": "min", "ups_charge_pct": "%",
        "ups_battery_status": "string", "ups_battery_low": "0/1", "ups_output_source": "string", "ups_alarms": "count",
        "battery_replace_needed": "0/1", "battery_last_replaced": "string", "battery_replace_date": "string",
    }


def test_battery_status_and_output_source() -> None:
    assert [ups.battery_status(v) for v in (1, 2, 3, 4, 5, "2", None)] == ["unknown", "normal", "low", "depleted", None, None, None]
    assert [ups.battery_low(v) for v in (1, 2, 3, 4, 9)] == [None, 0.0, 1.0, 1.0, None]
    assert [ups.output_source(v) for v in range(1, 9)] == ["other", "none", "normal", "bypass", "battery", "booster", "reducer", None]
    assert [ups.on_battery(v) for v in (3, 4, 5, 6, 0)] == [0.0, 0.0, 1.0, 0.0, None]
    # PowerNet in UPS-MIB's words; a battery or self test runs on battery on purpose: no alarm.
    assert [ups.apc_output_source(v) for v in (2, 3, 4, 7, 10, 12, 15, 28, 29)] == [
        "normal", "battery", "booster", "none", "bypass", "reducer", "battery_test", "self_test", None]
    assert [ups.apc_on_battery(v) for v in (2, 3, 15, 28)] == [0.0, 1.0, 0.0, 0.0]
    assert [ups.apc_battery_status(v) for v in (2, 3, 4, 5)] == ["normal", "low", "fault", "not_present"]
    assert [ups.apc_battery_low(v) for v in (1, 2, 3, 4, 5)] == [None, 0.0, 1.0, 0.0, 0.0]
    assert [ups.replace_needed(v) for v in (1, 2, 3, True)] == [0.0, 1.0, None, None]


def test_ticks_percent_and_counts() -> None:
    assert ups.ticks_to_minutes(438000) == 73.0 and ups.ticks_to_minutes(10976200) == 1829.37
    assert ups.ticks_to_seconds(12345) == 123.45 and ups.ticks_to_seconds(0) == 0.0
    assert ups.ticks_to_minutes(2**32 - 1) is None and ups.ticks_to_seconds(-1) is None  # "not supported"
    assert ups.ticks_to_minutes("438000") is None
    assert [ups.tenths_to_pct(v) for v in (1000, 873, 0, 1001, -1)] == [100.0, 87.3, 0.0, None, None]
    assert [ups.percent(v) for v in (98, 0, 100, 101, -1, "98")] == [98.0, 0.0, 100.0, None, None, None]
    assert [ups.non_negative(v) for v in (0, 24, -1, "24")] == [0.0, 24.0, None, None]


@pytest.mark.parametrize("text, iso", [
    ("04/30/25", "2025-04-30"),  # upsBasicBatteryLastReplaceDate, mm/dd/yy
    ("01/10/2022", "2022-01-10"),  # upsAdvBatteryRecommendedReplaceDate, mm/dd/yyyy
    (" 4/3/2019 ", "2019-04-03"),
    ("12/31/99", "1999-12-31"),  # POSIX pivot: 69-99 are the 1900s
    ("02/29/24", "2024-02-29"),
    ("00/00/00", None), ("13/01/22", None), ("02/30/2022", None), ("02/29/23", None), ("01/01/0000", None),
    ("30/04/25", None), ("2022-01-10", None), ("unknown", None), ("", None), ("04/30/255", None), (20220110, None), (None, None),
])
def test_apc_dates_are_iso_dates_or_nothing(text: object, iso: str | None) -> None:
    assert ups.mdy_date(text) == iso


# ---------------------------------------------------------------- the recordings, through the poller


@pytest.fixture(scope="module")
def ups_polls(snmpsim: SnmpsimServer) -> dict[str, tuple[list[Point], list[Point], int, int]]:
    return {name: _two_polls(snmpsim, name, hardware_kind="ups") for name in UPSES}


def test_the_profiles_are_data() -> None:
    generic = [m.name for m in PROFILES["generic"].modules]
    assert [m.name for m in PROFILES["ups"].modules] == generic + ["ups_mib"]
    assert PROFILES["ups"] in PROBED and PROFILES["ups"].sys_object_ids == ()
    assert PROFILES["ups"].probe == (ups.UPS_BATTERY_STATUS_OBJECT, ups.UPS_OUTPUT_SOURCE_OBJECT)
    assert PROFILES["apc_ups"] not in PROBED and PROFILES["apc_ups"].sys_object_ids == ("1.3.6.1.4.1.318",)
    assert [m.name for m in PROFILES["apc_ups"].modules][-2:] == ["apc_ups", "ups_mib"]


@pytest.mark.parametrize("name", UPSES)
def test_every_ups_recording_polls_as_a_ups(ups_polls: dict[str, tuple[list[Point], list[Point], int, int]], name: str) -> None:
    first, second, probes_first, probes_second = ups_polls[name]
    for points in (first, second):
        _fits(points)
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["up"] == 1.0 and device.fields["profile"] == EXPECTED_PROFILE[name]
        assert {k: v for k, v in device.fields.items() if k in CONTRACT_UPS_FIELDS} == EXPECTED_UPS[name]
        (hardware,) = [p for p in points if p.measurement == "hardware"]
        assert hardware.tags["kind"] == "ups" and dict(hardware.fields) == EXPECTED_HARDWARE[name]
        assert not [p for p in points if p.measurement == "printer_supply"]
    # Eaton (705.1) and Dell (674.10902.2) give generic: Printer-MIB asked first (no), then
    # UPS-MIB's first probe answers; remembered after. APC is chosen by its sysObjectID.
    probed = len(PROFILES["printer"].probe) + 1 if EXPECTED_PROFILE[name] == "ups" else 0
    assert (probes_first, probes_second) == (probed, 0)


@pytest.mark.parametrize("name", UPSES)
def test_ups_values_match_snmpbulkwalk(snmpsim: SnmpsimServer, ups_polls: dict[str, tuple[list[Point], list[Point], int, int]],
                                       tmp_path: Path, name: str) -> None:
    """The fields are what net-snmp reads from the same agent, converted as ups.py says."""
    env = net_snmp_env(tmp_path)
    base = ups.APC_UPS if name.startswith("apc") else f"{ups.UPS_MIB}.1"
    walk = net_snmp_walk(["snmpbulkwalk", "-v2c", "-Ot", "-c", name, f"{snmpsim.host}:{snmpsim.port}", base], env)
    (device,) = [p for p in ups_polls[name][1] if p.measurement == "device"]
    (hardware,) = [p for p in ups_polls[name][1] if p.measurement == "hardware"]
    if name.startswith("apc"):
        assert device.fields["ups_minutes_left"] == round(int(walk[ups.APC_ADV_BATTERY_RUNTIME_REMAINING]) / 6000, 2)
        assert device.fields["ups_charge_pct"] == int(walk[ups.APC_HIGH_PREC_BATTERY_CAPACITY]) / 10
        assert walk[ups.APC_BASIC_OUTPUT_STATUS] == "2" and walk[ups.APC_ADV_BATTERY_REPLACE_INDICATOR] == "1"
        assert hardware.fields["model"] == walk[ups.APC_BASIC_IDENT_MODEL]
        assert hardware.fields["serial"] == walk[ups.APC_ADV_IDENT_SERIAL]
        if name == "apc_sua750i":
            assert (walk[ups.APC_BASIC_BATTERY_LAST_REPLACE_DATE], walk[ups.APC_ADV_BATTERY_RECOMMENDED_REPLACE_DATE]) == (
                "04/30/25", "01/10/2022")
        assert not any(oid.startswith(f"{ups.UPS_MIB}.") for oid in walk)
    else:
        assert device.fields["ups_minutes_left"] == int(walk[ups.UPS_ESTIMATED_MINUTES_REMAINING])
        assert device.fields["ups_charge_pct"] == int(walk[ups.UPS_ESTIMATED_CHARGE_REMAINING])
        assert device.fields["ups_seconds_on_battery"] == int(walk[ups.UPS_SECONDS_ON_BATTERY])
        assert (walk[ups.UPS_BATTERY_STATUS], walk[ups.UPS_OUTPUT_SOURCE]) == ("2", "3")
        assert hardware.fields["vendor"] == walk[ups.UPS_IDENT_MANUFACTURER]
        assert ups.UPS_ALARMS_PRESENT not in walk and "ups_alarms" not in device.fields


def test_upses_and_printers_do_not_answer_each_others_probes(snmpsim: SnmpsimServer) -> None:
    """Whatever order the probes are asked in, a UPS is never taken for a printer, nor a printer for a UPS."""
    printer_probe, ups_probe = PROFILES["printer"].probe, PROFILES["ups"].probe

    async def walks(name: str, oids: tuple[str, ...]) -> list[list[tuple[str, object]]]:
        session = v2c(snmpsim, name)
        return [await session.walk(oid) for oid in oids]

    for name in ("eaton-mgeups_9px", "dell-ups_tower1000w"):
        assert asyncio.run(walks(name, printer_probe)) == [[], []], name
        assert all(asyncio.run(walks(name, ups_probe))), name
    for name in PRINTERS:
        assert asyncio.run(walks(name, ups_probe)) == [[], []], name


@pytest.mark.parametrize("community, profile", [
    *((name, "printer") for name in PRINTERS),
    ("edgeswitch_es-24-250w", "generic"),  # probed for both, answers neither
    ("procurve_e2910", "procurve"),
    ("fortigate_60f", "fortigate"),
])
def test_printers_and_switches_write_no_ups_fields(snmpsim: SnmpsimServer, community: str, profile: str) -> None:
    first, second, _, _ = _two_polls(snmpsim, community, hardware_kind="network")
    for points in (first, second):
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["profile"] == profile
        assert not set(CONTRACT_UPS_FIELDS) & set(device.fields)


def test_profile_ups_in_the_inventory(snmpsim: SnmpsimServer, tmp_path: Path) -> None:
    """`profile = "ups"` in inventory.toml validates and is polled as one by the collector's
    scheduler; a UPS without it is found by probing or by its sysObjectID; the profile on a
    switch writes no UPS fields (the switch has no UPS-MIB)."""
    devices = {"ups-eaton": ("eaton-mgeups_9px", "ups", "ups"), "ups-dell": ("dell-ups_tower1000w", "ups", None),
               "ups-apc": ("apc_sua750i", "ups", None), "sw": ("edgeswitch_es-24-250w", "switch", "ups")}
    inv = InventoryBuilder(tmp_path).storage("local").lifecycle("ups", 5, 12000)
    for device_id, (community, kind, profile) in devices.items():
        snmp = {"community": inv.secret_file(f"{device_id}.community", community), "port": snmpsim.port, "timeout_s": 5}
        if profile:
            snmp["profile"] = profile
        inv.device(device_id, host=snmpsim.host, hardware={"kind": kind, "lifetime_years": 6}, snmp=snmp)
    inventory = inv.load()
    assert [d.snmp.profile for d in inventory.device if d.snmp] == ["ups", None, None, "ups"]

    emitted = first_scheduled_polls(inventory)
    device = {d: next(p for p in pts if p.measurement == "device") for d, pts in emitted.items()}
    for device_id, points in emitted.items():
        _fits(points)
        assert device[device_id].fields["up"] == 1.0, device_id
    assert {d: p.fields["profile"] for d, p in device.items()} == {"ups-eaton": "ups", "ups-dell": "ups", "ups-apc": "apc_ups",
                                                                   "sw": "ups"}
    assert {k: v for k, v in device["ups-eaton"].fields.items() if k in CONTRACT_UPS_FIELDS} == EXPECTED_UPS["eaton-mgeups_9px"]
    assert device["ups-dell"].fields["ups_minutes_left"] == 31.0
    assert device["ups-apc"].fields["battery_last_replaced"] == "2025-04-30"
    assert not set(CONTRACT_UPS_FIELDS) & set(device["sw"].fields)
    (hardware,) = [p for p in emitted["ups-apc"] if p.measurement == "hardware"]
    assert hardware.tags["kind"] == "ups" and hardware.fields["model"] == "Smart-UPS 750"


def test_snmp_poll_table_shows_the_ups(ups_polls: dict[str, tuple[list[Point], list[Point], int, int]]) -> None:
    apc = render_table(ups_polls["apc_sua750i"][1], 5.0).splitlines()
    start = apc.index("ups: on line; 100 % charge, 73 min left; battery needs no replacing, replace by 2022-01-10")
    block = [line.split() for line in apc[start + 1:start + 8]]
    assert block == [["ups_minutes_left", "73", "min"], ["ups_charge_pct", "100", "%"], ["ups_output_source", "normal"],
                     ["ups_on_battery", "0"], ["battery_replace_needed", "0"], ["battery_last_replaced", "2025-04-30"],
                     ["battery_replace_date", "2022-01-10"]]
    # The UPS fields are in their block only, not again among the device's.
    assert sum(1 for line in apc if line.split()[0] == "ups_minutes_left") == 1
    eaton = render_table(ups_polls["eaton-mgeups_9px"][1], 5.0).splitlines()
    assert "ups: on line; 100 % charge, 24 min left, battery normal" in eaton
    assert ["ups_seconds_on_battery", "0", "s"] in [line.split() for line in eaton]
