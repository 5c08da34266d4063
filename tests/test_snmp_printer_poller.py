"""The poller polls printers as printers: every shared printer recording served by snmpsim, through
the real DevicePoller (and through the collector's scheduler from an inventory), writes one
`printer_supply` point per supply, the page counter and error state on its `device` point and
model/serial on its `hardware` point; a switch writes no printer points.

The values are those shared/snmprec/README.md lists (the same tables test_snmp_printer.py proves
printer.py computes from snmpsim and snmpbulkwalk); here they arrive as points that fit the contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.contract import point_problems
from agent.points import Point
from collector.config import Inventory, load_inventory
from collector.localservers import SnmpsimServer
from collector.pollers import SnmpScheduler
from collector.snmp.cli import render_table
from collector.snmp.poller import DevicePoller
from collector.snmp.profiles import PROBED, PROFILES
from collector.snmp.session import SnmpAuth, SnmpError, SnmpSession
from test_snmp_printer import (
    EXPECTED_ERRORS,
    EXPECTED_MODEL,
    EXPECTED_PAGES,
    EXPECTED_SERIAL,
    EXPECTED_SUPPLIES,
    EXPECTED_TYPES,
    PRINTERS,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

PROBE_OIDS = {oid for profile in PROBED for oid in profile.probe}
# The supply tag: the description, with the row index on names a device repeats (brother).
SUPPLY_TAGS = {"brother_hl5370dw": ["Black Toner Cartridge#1.1", "Black Toner Cartridge#1.2", "Drum Unit"]}
# Raw level and max capacity as sent: units of the max capacity, negative values are codes.
RAW = {
    ("okilan_9450g", "Black Image Drum Unit OKI DATA CORP"): (28407.0, 30000.0),
    ("okilan_9450g", "Belt Unit OKI DATA CORP"): (78392.0, 80000.0),
    ("okilan_9450g", "Fuser Unit OKI DATA CORP"): (98842.0, 100000.0),
    ("konica_c250i", "Waste Toner Box"): (-3.0, -2.0),
    ("brother_hl5370dw", "Black Toner Cartridge#1.1"): (0.0, -2.0),
    ("brother_hl5370dw", "Black Toner Cartridge#1.2"): (-3.0, -2.0),
    ("brother_hl5370dw", "Drum Unit"): (17208.0, 25000.0),
    ("ricoh_mpc3002", "Waste Toner"): (100.0, 100.0),
    ("jetdirect_m252dw", "Yellow Cartridge HP CF402X"): (36.0, 100.0),
}


class CountingSession:
    """The real SNMP session to snmpsim, noting which subtrees the poller walks."""

    def __init__(self, session: SnmpSession) -> None:
        self.session = session
        self.device = session.device
        self.walked: list[str] = []

    async def get(self, oids: Sequence[str]) -> dict[str, Any]:
        return await self.session.get(oids)

    async def walk(self, prefix: str) -> list[tuple[str, Any]]:
        self.walked.append(prefix)
        return await self.session.walk(prefix)


def _session(snmpsim: SnmpsimServer, community: str) -> CountingSession:
    return CountingSession(SnmpSession(snmpsim.host, snmpsim.port, SnmpAuth("2c", community=community), device=community))


def _fits(points: list[Point]) -> None:
    for point in points:
        point.validate()
        assert point_problems(point.measurement, point.tags, point.fields, "collector") == [], point


def _probes(walked: list[str], points: list[Point]) -> int:
    """How many walks of one poll were probes: walks of a probe OID beyond the profile's own column walks."""
    (device,) = [p for p in points if p.measurement == "device"]
    columns = {c.oid for c in PROFILES[str(device.fields["profile"])].columns()}
    return len([p for p in walked if p in PROBE_OIDS]) - len(PROBE_OIDS & columns)


def _two_polls(snmpsim: SnmpsimServer, community: str, profile: str | None = None,
               hardware_kind: str = "printer") -> tuple[list[Point], list[Point], int, int]:
    """Two polls of one poller: (first points, second points, probe walks of each)."""
    session = _session(snmpsim, community)
    poller = DevicePoller(community, "lab", session, profile, hardware_kind=hardware_kind)

    async def run() -> tuple[list[Point], list[Point], int, int]:
        first = await poller.poll()
        probes_first = _probes(session.walked, first)
        session.walked.clear()
        second = await poller.poll()
        return first, second, probes_first, _probes(session.walked, second)

    return asyncio.run(run())


@pytest.fixture(scope="module")
def printer_polls(snmpsim: SnmpsimServer) -> dict[str, tuple[list[Point], list[Point], int, int]]:
    return {name: _two_polls(snmpsim, name) for name in PRINTERS}


def test_printer_profile_is_data() -> None:
    printer = PROFILES["printer"]
    assert printer.sys_object_ids == () and printer in PROBED and PROFILES["generic"] not in PROBED
    # A printer is polled for everything generic polls, plus Printer-MIB.
    assert [m.name for m in printer.modules] == [m.name for m in PROFILES["generic"].modules] + ["printer"]


@pytest.mark.parametrize("name", PRINTERS)
def test_every_printer_recording_polls_as_a_printer(
    printer_polls: dict[str, tuple[list[Point], list[Point], int, int]], name: str
) -> None:
    first, second, probes_first, probes_second = printer_polls[name]
    for points in (first, second):
        _fits(points)
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["profile"] == "printer"
        supplies = [p for p in points if p.measurement == "printer_supply"]
        expected = EXPECTED_SUPPLIES[name]
        tags = SUPPLY_TAGS.get(name, [n for n, *_ in expected])
        assert [p.tags["supply"] for p in supplies] == tags
        assert all(p.tags["device"] == name and p.tags["site"] == "lab" for p in supplies)
        got = [(p.fields.get("left_pct"), p.fields["state"], p.fields["receptacle"]) for p in supplies]
        assert got == [(pct, state, 1.0 if receptacle else 0.0) for _, pct, state, receptacle in expected]
        if name in EXPECTED_TYPES:
            assert [p.tags["type"] for p in supplies] == EXPECTED_TYPES[name]
        for point in supplies:
            if (name, point.tags["supply"]) in RAW:
                assert (point.fields["level"], point.fields["max_capacity"]) == RAW[(name, point.tags["supply"])]
        # Pages: a counter where the printer has prtMarkerLifeCount (jetdirect and okilan have none).
        assert device.fields.get("pages_total") == EXPECTED_PAGES.get(name)
        # Error state: konica's 01 00 is service_requested; the rest have no bit set.
        assert device.fields["printer_error"] == (1.0 if EXPECTED_ERRORS[name] else 0.0)
        assert device.fields.get("printer_errors") == (", ".join(EXPECTED_ERRORS[name]) or None)
        hardware = [p for p in points if p.measurement == "hardware"]
        expected_hw = {k: v for k, v in (("model", EXPECTED_MODEL.get(name)), ("serial", EXPECTED_SERIAL.get(name))) if v}
        # okilan names neither model (no hrDeviceDescr) nor serial: no hardware point.
        assert [dict(p.fields) for p in hardware] == ([expected_hw] if expected_hw else [])
        assert all(p.tags["kind"] == "printer" for p in hardware)
    # Probed once (the sysObjectID names no vendor profile): the supplies answered; remembered after.
    assert (probes_first, probes_second) == (1, 0)


@pytest.mark.parametrize("community, profile", [
    ("edgeswitch_es-24-250w", "generic"),  # sysObjectID gives generic: probed once, not a printer
    ("eaton-mgeups_9px", "ups"),  # probed: no Printer-MIB, but UPS-MIB
    ("apc_smt750x-nmc2", "apc_ups"),  # a vendor profile: never probed
    ("procurve_e2910", "procurve"),
])
def test_a_non_printer_writes_no_printer_points(snmpsim: SnmpsimServer, community: str, profile: str) -> None:
    first, second, probes_first, probes_second = _two_polls(snmpsim, community)
    for points in (first, second):
        _fits(points)
        assert not [p for p in points if p.measurement == "printer_supply"]
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["profile"] == profile
        assert not {"pages_total", "printer_error", "printer_errors"} & set(device.fields)
    # Every probe asked once (up to the UPS-MIB answer) and the answer remembered; a vendor
    # profile never asks.
    asked = {"generic": len(PROBE_OIDS), "ups": len(PROFILES["printer"].probe) + 1}.get(profile, 0)
    assert (probes_first, probes_second) == (asked, 0)


def first_scheduled_polls(inventory: Inventory, timeout_s: float = 60) -> dict[str, list[Point]]:
    """The points of each SNMP device's first poll by the collector's own scheduler: {device id: points}."""
    wanted = {d.id for d in inventory.device if d.snmp is not None}
    emitted: dict[str, list[Point]] = {}

    async def run() -> None:
        done = asyncio.Event()

        async def emit(source: str, points: list[Point]) -> None:
            emitted.setdefault(source.removeprefix("device:"), points)
            if set(emitted) >= wanted:
                done.set()

        scheduler = SnmpScheduler(inventory, emit)
        scheduler.start()
        try:
            await asyncio.wait_for(done.wait(), timeout_s)
        finally:
            await scheduler.stop()

    asyncio.run(run())
    return emitted


def test_profile_printer_in_the_inventory(snmpsim: SnmpsimServer, tmp_path: Path) -> None:
    """`profile = "printer"` in inventory.toml validates and is polled as one by the collector's
    scheduler; a printer without it is found by probing; the profile on a switch writes no supplies."""
    devices = {"okilan": ("okilan_9450g", "printer", '\nprofile = "printer"'), "konica": ("konica_c250i", "printer", ""),
               "sw": ("edgeswitch_es-24-250w", "switch", '\nprofile = "printer"')}
    text = ['[storage]\nkind = "local"\n\n[[site]]\nid = "lab"\nname = "Lab"\n']
    for device_id, (community, kind, profile) in devices.items():
        (tmp_path / f"{device_id}.community").write_text(community + "\n", encoding="utf-8")
        text.append(
            f'[[device]]\nid = "{device_id}"\nname = "{device_id}"\nsite = "lab"\nhost = "{snmpsim.host}"\n'
            f'hardware = {{ kind = "{kind}", lifetime_years = 6 }}\n'
            f'[device.snmp]\ncommunity = "file:{device_id}.community"\nport = {snmpsim.port}\ntimeout_s = 5{profile}\n'
        )
    path = tmp_path / "inventory.toml"
    path.write_text("\n".join(text), encoding="utf-8")
    inventory = load_inventory(path)
    assert [d.snmp.profile for d in inventory.device if d.snmp] == ["printer", None, "printer"]

    emitted = first_scheduled_polls(inventory)
    for device_id, points in emitted.items():
        _fits(points)
        (device,) = [p for p in points if p.measurement == "device"]
        assert device.fields["up"] == 1.0 and device.fields["profile"] == "printer", device_id
    supplies = {d: [p for p in pts if p.measurement == "printer_supply"] for d, pts in emitted.items()}
    assert [p.fields.get("left_pct") for p in supplies["okilan"]] == [pct for _, pct, *_ in EXPECTED_SUPPLIES["okilan_9450g"]]
    assert [p.fields.get("state") for p in supplies["konica"]] == [s for _, _, s, _ in EXPECTED_SUPPLIES["konica_c250i"]]
    assert supplies["sw"] == []
    (hardware,) = [p for p in emitted["konica"] if p.measurement == "hardware"]
    assert hardware.tags["kind"] == "printer" and hardware.fields["serial"] == "AA2M021115700"
    konica = next(p for p in emitted["konica"] if p.measurement == "device")
    assert konica.fields["pages_total"] == 33810.0 and konica.fields["printer_errors"] == "service_requested"


def test_snmp_poll_table_lists_the_supplies(printer_polls: dict[str, tuple[list[Point], list[Point], int, int]]) -> None:
    _, second, _, _ = printer_polls["konica_c250i"]
    table = render_table(second, 5.0).splitlines()
    start = next(i for i, line in enumerate(table) if line.startswith("supplies (5;"))
    rows = [line.split() for line in table[start + 2:start + 7]]
    assert rows[0] == ["Toner", "(Cyan)", "toner", "76.0", "ok", "76", "100"]
    assert rows[4] == ["Waste", "Toner", "Box", "waste_toner", "-", "some_remaining", "-3", "-2"]
    assert [line.split() for line in table if line.split()[0] in ("pages_total", "printer_errors")] == [
        ["pages_total", "33810"], ["printer_errors", "service_requested"]]


class ProbeTimesOutOnce(CountingSession):
    """The real session, but the first walk of a probe column times out (a busy printer)."""

    def __init__(self, session: SnmpSession) -> None:
        super().__init__(session)
        self.failed = False

    async def walk(self, prefix: str) -> list[tuple[str, Any]]:
        if prefix in PROBE_OIDS and not self.failed:
            self.failed = True
            raise SnmpError(self.device, prefix, "timed out", timed_out=True)
        return await super().walk(prefix)


def test_a_probe_that_fails_is_asked_again(snmpsim: SnmpsimServer) -> None:
    """No answer is not "no Printer-MIB": jetdirect (supplies but no page counter) is polled as
    generic while its supplies time out, and found at the next poll."""
    session = ProbeTimesOutOnce(SnmpSession(snmpsim.host, snmpsim.port, SnmpAuth("2c", community="jetdirect_m252dw"),
                                            device="jetdirect_m252dw"))
    poller = DevicePoller("jetdirect", "lab", session, hardware_kind="printer")

    async def run() -> list[list[Point]]:
        return [await poller.poll() for _ in range(2)]

    first, second = asyncio.run(run())
    profiles = [next(p for p in pts if p.measurement == "device").fields["profile"] for pts in (first, second)]
    assert profiles == ["generic", "printer"]
    assert not [p for p in first if p.measurement == "printer_supply"]
    assert len([p for p in second if p.measurement == "printer_supply"]) == 4
