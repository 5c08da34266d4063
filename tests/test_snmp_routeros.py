"""MikroTik RouterOS polled with the `routeros` profile: model, serial, RouterBOOT firmware,
RouterOS version and temperature from MIKROTIK-MIB (collector/snmp/mikrotik.py), not ENTITY.

shared/snmprec has no RouterOS recording, so the project wrote two (tests/testdata/snmprec, its
README says what each stands for and which real answers it is shaped after). snmpsim serves
them; the real DevicePoller polls them, net-snmp reads the same agent, and `nettvakt discover`'s
profile and kind decision is asked about them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.points import Point
from agent.schema import DECLARED_MEASUREMENTS
from collector.localservers import SnmpsimServer
from collector.snmp import mikrotik as mt
from collector.snmp.discover import device_kind
from collector.snmp.poller import DevicePoller
from collector.snmp.profiles import ENTITY, PROBED, PROFILES, SYS_OBJECT_ID, select_profile
from collector.snmp.snmprec import load_snmprec
from test_snmp_printer_poller import _fits, _session, _two_polls
from test_snmp_session import net_snmp_env, net_snmp_walk, v2c

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

TESTDATA = Path(__file__).resolve().parent / "testdata" / "snmprec"
ROUTEROS = ("routeros_rb5009_v7", "routeros_rb951_v6")
# As the README beside the recordings says.
EXPECTED_HARDWARE = {
    "routeros_rb5009_v7": {"model": "RB5009UG+S+IN", "serial": "HGB09T2KQ7M", "fw_rev": "7.15.3", "sw_rev": "7.16.2"},
    # No mtxrBoardName (2017 MIB revision): the model is the board named in sysDescr.
    "routeros_rb951_v6": {"model": "RB951Ui-2HnD", "serial": "5A2F07C1B3E4", "fw_rev": "3.41", "sw_rev": "6.40.5"},
}
EXPECTED_DEVICE = {
    # The hottest celsius row of mtxrGaugeTable (38 and 46; the 243 dV voltage row is no temperature).
    "routeros_rb5009_v7": {"firmware": "7.16.2", "temperature_c": 46.0, "cpu_pct": 6.0, "mem_used_pct": 25.0},
    # mtxrHlTemperature 412 tenths of a degree.
    "routeros_rb951_v6": {"firmware": "6.40.5", "temperature_c": 41.2, "cpu_pct": 9.0, "mem_used_pct": 37.5},
}
EXPECTED_INTERFACES = {
    "routeros_rb5009_v7": ["ether1", "ether2", "ether3", "sfp-sfpplus1", "bridge", "lo", "pppoe-out1"],
    "routeros_rb951_v6": ["ether1", "ether2", "ether3", "wlan1", "bridge-local"],
}


# ---------------------------------------------------------------- what the values mean


def test_temperatures_in_tenths() -> None:
    assert [mt.tenths(v) for v in (330, 412, 0, -55, "330", None, True)] == [33.0, 41.2, 0.0, -5.5, None, None, None]


@pytest.mark.parametrize("sys_descr, model", [
    ("RouterOS RB951Ui-2HnD", "RB951Ui-2HnD"),
    ("RouterOS CRS305-1G-4S+", "CRS305-1G-4S+"),
    ("RouterOS RB5009UG+S+IN ", "RB5009UG+S+IN"),
    ("router", None),  # what RouterOS 6.40.5 says in the LibreNMS recording: no board named
    ("RouterOS ", None), ("RB260GS", None), ("", None), (None, None), (42, None),
])
def test_model_from_sys_descr(sys_descr: object, model: str | None) -> None:
    assert mt.model_from_sys_descr(sys_descr) == model


# ---------------------------------------------------------------- the profile is data


def test_routeros_is_chosen_by_its_sys_object_id_and_walks_no_entity() -> None:
    routeros = PROFILES["routeros"]
    assert routeros.sys_object_ids == ("1.3.6.1.4.1.14988.1",) and routeros not in PROBED
    assert [m.name for m in routeros.modules] == ["system", "if_mib", "host_resources", "mikrotik"]
    assert select_profile("1.3.6.1.4.1.14988.1").name == "routeros"
    assert select_profile(".1.3.6.1.4.1.14988.1").name == "routeros"
    assert select_profile("1.3.6.1.4.1.14988.2").name == "generic"  # SwOS: no MIKROTIK-MIB
    assert select_profile("1.3.6.1.4.1.149881").name == "generic"
    # The fields it writes are in the contract, with their units.
    device, hardware = DECLARED_MEASUREMENTS["device"].fields, DECLARED_MEASUREMENTS["hardware"].fields
    assert device["temperature_c"].unit == "°C" and device["temperature_c"].type == "float"
    module = routeros.module("mikrotik")
    assert module is not None
    assert {s.field for s in module.scalars if s.point == "hardware"} <= set(hardware)
    assert {s.field for s in module.scalars if s.point == "device"} | {a.field for a in module.aggregates} <= set(device)


@pytest.mark.parametrize("name", ROUTEROS)
def test_the_recordings_answer_every_mikrotik_oid_the_module_reads(name: str) -> None:
    values = load_snmprec(TESTDATA / f"{name}.snmprec")
    assert select_profile(values[SYS_OBJECT_ID]).name == "routeros"
    module = PROFILES["routeros"].module("mikrotik")
    assert module is not None
    both = {**load_snmprec(TESTDATA / "routeros_rb5009_v7.snmprec"), **load_snmprec(TESTDATA / "routeros_rb951_v6.snmprec")}
    for scalar in module.scalars:
        assert scalar.oid in both, scalar.name
    for column in module.columns:
        assert any(oid.startswith(column.oid + ".") for oid in both), column.name
    # What real RouterOS has and the profile does without: an ENTITY chassis row saying nothing.
    entity = {c.meaning: c.oid for c in ENTITY.columns}
    assert values[f"{entity['class']}.65536"] == 3
    assert all(values[f"{entity[m]}.65536"] == "" for m in ("model", "serial", "vendor", "sw_rev"))


# ---------------------------------------------------------------- the recordings, through the poller


@pytest.fixture(scope="module")
def routeros_polls(project_snmpsim: SnmpsimServer) -> dict[str, tuple[list[Point], list[Point], int, int]]:
    return {name: _two_polls(project_snmpsim, name, hardware_kind="network") for name in ROUTEROS}


@pytest.mark.parametrize("name", ROUTEROS)
def test_routeros_polls_model_serial_firmware_and_temperature(
    routeros_polls: dict[str, tuple[list[Point], list[Point], int, int]], name: str
) -> None:
    first, second, probes_first, probes_second = routeros_polls[name]
    assert (probes_first, probes_second) == (0, 0)  # chosen by sysObjectID, never probed
    for points in (first, second):
        _fits(points)
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["up"] == 1.0 and device.fields["profile"] == "routeros"
        assert device.fields["partial"] == 0.0
        assert {k: device.fields[k] for k in EXPECTED_DEVICE[name]} == EXPECTED_DEVICE[name]
        (hardware,) = [p for p in points if p.measurement == "hardware"]
        assert hardware.tags["kind"] == "network" and dict(hardware.fields) == EXPECTED_HARDWARE[name]
        assert [p.tags["ifname"] for p in points if p.measurement == "interface"] == EXPECTED_INTERFACES[name]


def test_entity_is_not_walked_and_would_not_have_helped(project_snmpsim: SnmpsimServer) -> None:
    """The routeros profile never walks ENTITY-MIB; polled as generic (ENTITY only), the same
    device has no model and no serial at all: its chassis row is empty."""
    entity_oids = {c.oid for c in ENTITY.columns}
    session = _session(project_snmpsim, "routeros_rb5009_v7")
    points = asyncio.run(DevicePoller("rtr", "lab", session).poll())
    assert not entity_oids & set(session.walked)
    assert any(p.measurement == "hardware" for p in points)

    generic = asyncio.run(DevicePoller("rtr", "lab", _session(project_snmpsim, "routeros_rb5009_v7"), "generic").poll())
    (device,) = [p for p in generic if p.measurement == "device"]
    assert device.fields["profile"] == "generic" and "temperature_c" not in device.fields
    assert not [p for p in generic if p.measurement == "hardware"]


@pytest.mark.parametrize("name", ROUTEROS)
def test_routeros_values_match_snmpbulkwalk(
    project_snmpsim: SnmpsimServer, routeros_polls: dict[str, tuple[list[Point], list[Point], int, int]],
    tmp_path: Path, name: str,
) -> None:
    """The hardware fields are what net-snmp reads from the same agent under mtXRouterOs."""
    env = net_snmp_env(tmp_path)
    walk = net_snmp_walk(["snmpbulkwalk", "-v2c", "-c", name, f"{project_snmpsim.host}:{project_snmpsim.port}",
                          "1.3.6.1.4.1.14988.1.1"], env)
    (hardware,) = [p for p in routeros_polls[name][1] if p.measurement == "hardware"]
    assert hardware.fields["serial"] == walk[mt.MTXR_SERIAL_NUMBER]
    assert hardware.fields["fw_rev"] == walk[mt.MTXR_FIRMWARE_VERSION]
    assert hardware.fields["sw_rev"] == walk[mt.MTXR_LIC_VERSION]
    if name == "routeros_rb5009_v7":
        assert hardware.fields["model"] == walk[mt.MTXR_BOARD_NAME]
        names = {oid.rsplit(".", 1)[1]: v for oid, v in walk.items() if oid.startswith(mt.MTXR_GAUGE_NAME + ".")}
        celsius = [int(walk[f"{mt.MTXR_GAUGE_VALUE}.{i}"]) for i in names
                   if walk[f"{mt.MTXR_GAUGE_UNIT}.{i}"] == str(mt.GAUGE_UNIT_CELSIUS)]
        assert names == {"13": "voltage", "14": "temperature", "17": "cpu-temperature"} and max(celsius) == 46
        assert mt.MTXR_HL_TEMPERATURE not in walk
    else:
        assert mt.MTXR_BOARD_NAME not in walk and not any(o.startswith(mt.MTXR_GAUGE_NAME) for o in walk)
        assert int(walk[mt.MTXR_HL_TEMPERATURE]) / 10 == 41.2


# ---------------------------------------------------------------- nettvakt discover


@pytest.mark.parametrize("name", ROUTEROS)
def test_discover_proposes_the_routeros_profile_and_no_guessed_kind(project_snmpsim: SnmpsimServer, name: str) -> None:
    """discover names the profile from the sysObjectID; a RouterOS device answers neither UPS-MIB,
    Printer-MIB nor a host's sysObjectID, and its sysObjectID is the same for routers, switches
    and access points, so the kind proposed is `network` for the consultant to set."""
    sys_object_id = load_snmprec(TESTDATA / f"{name}.snmprec")[SYS_OBJECT_ID]
    profile = select_profile(sys_object_id).name
    assert profile == "routeros"
    assert asyncio.run(device_kind(v2c(project_snmpsim, name), sys_object_id, profile)) == ("network", "")
