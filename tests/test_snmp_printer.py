"""Printer-MIB levels, page counts and error bits read from snmpsim serving every shared printer recording.

The values are those shared/snmprec/README.md lists (and snmpbulkwalk reads the same numbers);
the computation is collector/snmp/printer.py. The poller's points from the same recordings:
tests/test_snmp_printer_poller.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from collector.localservers import SnmpsimServer
from collector.snmp import printer
from collector.snmp.printer import SupplyLevel, error_bits, octets, supply_level
from test_snmp_session import net_snmp_env, net_snmp_walk, v2c

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

PRINTERS = ("jetdirect_m252dw", "ricoh_mpc3002", "konica_c250i", "brother_hl5370dw", "okilan_9450g")
COLUMNS = {
    "class": printer.PRT_SUPPLIES_CLASS, "type": printer.PRT_SUPPLIES_TYPE, "name": printer.PRT_SUPPLIES_DESCRIPTION,
    "max": printer.PRT_SUPPLIES_MAX_CAPACITY, "level": printer.PRT_SUPPLIES_LEVEL,
    "pages": printer.PRT_MARKER_LIFE_COUNT, "serial": printer.PRT_GENERAL_SERIAL,
    "model": printer.HR_DEVICE_DESCR, "errors": printer.HR_PRINTER_ERROR_STATE,
}
# (name, left_pct, state, receptacle) per supply row, as the README says.
EXPECTED_SUPPLIES = {
    "jetdirect_m252dw": [  # max 100: the level is the percentage
        ("Black Cartridge HP CF400X", 63.0, "ok", False), ("Cyan Cartridge HP CF401X", 63.0, "ok", False),
        ("Magenta Cartridge HP CF403X", 88.0, "ok", False), ("Yellow Cartridge HP CF402X", 36.0, "ok", False),
    ],
    "ricoh_mpc3002": [  # the waste box at 100 of 100 has all its space left: empty, not full
        ("Black Toner", 40.0, "ok", False), ("Waste Toner", 100.0, "ok", True), ("Cyan Toner", 20.0, "ok", False),
        ("Magenta Toner", 50.0, "ok", False), ("Yellow Toner", 50.0, "ok", False),
    ],
    "konica_c250i": [  # the waste box: max -2 unknown, level -3 "some remaining", no number
        ("Toner (Cyan)", 76.0, "ok", False), ("Toner (Magenta)", 78.0, "ok", False),
        ("Toner (Yellow)", 77.0, "ok", False), ("Toner (Black)", 86.0, "ok", False),
        ("Waste Toner Box", None, "some_remaining", True),
    ],
    "brother_hl5370dw": [  # toner max -2 level 0 is no amount; -3 some remaining; drum 17208 of 25000
        ("Black Toner Cartridge", None, "unknown", False), ("Black Toner Cartridge", None, "some_remaining", False),
        ("Drum Unit", 68.8, "ok", False),
    ],
    "okilan_9450g": [  # drums of 30000, belt of 80000, fuser of 100000
        ("Black Toner Cartridge OKI DATA CORP", 59.0, "ok", False), ("Cyan Toner Cartridge OKI DATA CORP", 69.0, "ok", False),
        ("Magenta Toner Cartridge OKI DATA CORP", 69.0, "ok", False), ("Yellow Toner Cartridge OKI DATA CORP", 69.0, "ok", False),
        ("Black Image Drum Unit OKI DATA CORP", 94.7, "ok", False), ("Cyan Image Drum Unit OKI DATA CORP", 95.9, "ok", False),
        ("Magenta Image Drum Unit OKI DATA CORP", 95.9, "ok", False), ("Yellow Image Drum Unit OKI DATA CORP", 95.9, "ok", False),
        ("Belt Unit OKI DATA CORP", 98.0, "ok", False), ("Fuser Unit OKI DATA CORP", 98.8, "ok", False),
    ],
}
EXPECTED_TYPES = {"okilan_9450g": ["toner"] * 4 + ["drum"] * 4 + ["transfer_unit", "fuser"],
                  "ricoh_mpc3002": ["toner", "waste_toner", "toner", "toner", "toner"]}
EXPECTED_PAGES = {"ricoh_mpc3002": 271871, "konica_c250i": 33810, "brother_hl5370dw": 7792}
EXPECTED_SERIAL = {"ricoh_mpc3002": "W492KB03439", "konica_c250i": "AA2M021115700"}
EXPECTED_MODEL = {"jetdirect_m252dw": "HP Color LaserJet Pro M252dw", "ricoh_mpc3002": "RICOH Aficio MP C3002",
                  "konica_c250i": "KONICA MINOLTA bizhub C250i", "brother_hl5370dw": "Brother HL-5370DW series"}
# konica's 01 00 is bit 7, serviceRequested; the others set none.
EXPECTED_ERRORS = {"jetdirect_m252dw": [], "ricoh_mpc3002": [], "konica_c250i": ["service_requested"], "brother_hl5370dw": [],
                   "okilan_9450g": []}


async def _read(snmpsim: SnmpsimServer, community: str) -> dict[str, dict[str, object]]:
    session = v2c(snmpsim, community)
    walks = await asyncio.gather(*(session.walk(oid) for oid in COLUMNS.values()))
    return {key: {oid[len(COLUMNS[key]) + 1:]: value for oid, value in rows} for key, rows in zip(COLUMNS, walks)}


@pytest.fixture(scope="module")
def printers(snmpsim: SnmpsimServer) -> dict[str, dict[str, dict[str, object]]]:
    async def read_all() -> dict[str, dict[str, dict[str, object]]]:
        return dict(zip(PRINTERS, await asyncio.gather(*(_read(snmpsim, name) for name in PRINTERS))))

    return asyncio.run(read_all())


def _supplies(tables: dict[str, dict[str, object]]) -> list[tuple[str, SupplyLevel, int]]:
    def key(index: str) -> tuple[int, ...]:
        return tuple(int(x) for x in index.split("."))

    out = []
    for index in sorted(tables["name"], key=key):
        level = supply_level(tables["level"].get(index), tables["max"].get(index),  # type: ignore[arg-type]
                             tables["class"].get(index), tables["type"].get(index))  # type: ignore[arg-type]
        out.append((str(tables["name"][index]), level, int(tables["type"][index])))  # type: ignore[call-overload]
    return out


@pytest.mark.parametrize("name", PRINTERS)
def test_supply_levels_of_every_recorded_printer(printers: dict[str, dict[str, dict[str, object]]], name: str) -> None:
    got = [(n, s.left_pct, s.state, s.receptacle) for n, s, _ in _supplies(printers[name])]
    assert got == EXPECTED_SUPPLIES[name]
    if name in EXPECTED_TYPES:
        assert [printer.SUPPLY_TYPES[t] for _, _, t in _supplies(printers[name])] == EXPECTED_TYPES[name]


@pytest.mark.parametrize("name", PRINTERS)
def test_pages_serial_model_and_error_bits(printers: dict[str, dict[str, dict[str, object]]], name: str) -> None:
    tables = printers[name]
    assert (sum(tables["pages"].values()) if tables["pages"] else None) == EXPECTED_PAGES.get(name)  # type: ignore[arg-type]
    assert (next(iter(tables["serial"].values()), None)) == EXPECTED_SERIAL.get(name)
    assert (next(iter(tables["model"].values()), None)) == EXPECTED_MODEL.get(name)  # okilan has no hrDeviceDescr
    (state,) = tables["errors"].values()
    assert error_bits(octets(state)) == EXPECTED_ERRORS[name]  # type: ignore[arg-type]


def test_levels_match_snmpbulkwalk(snmpsim: SnmpsimServer, printers: dict[str, dict[str, dict[str, object]]], tmp_path: Path) -> None:
    env = net_snmp_env(tmp_path)
    for name in ("okilan_9450g", "brother_hl5370dw", "konica_c250i"):
        for key in ("max", "level"):
            walk = net_snmp_walk(["snmpbulkwalk", "-v2c", "-c", name, f"{snmpsim.host}:{snmpsim.port}", COLUMNS[key]], env)
            assert {oid[len(COLUMNS[key]) + 1:]: int(v) for oid, v in walk.items()} == printers[name][key]


def test_codes_and_bits() -> None:
    assert supply_level(28407, 30000, None, 9) == SupplyLevel(94.7, "ok", False)
    assert supply_level(0, 100, 3, 3) == SupplyLevel(0.0, "empty", False)
    assert supply_level(0, 100, None, 4) == SupplyLevel(0.0, "full", True)  # no space left in the waste box
    assert supply_level(-1, 100) == SupplyLevel(None, "other", False)
    assert supply_level(-2, 100) == SupplyLevel(None, "unknown", False)
    assert supply_level(120, 100).left_pct == 100.0
    assert supply_level(50, 100, 4, 3).receptacle  # the class column wins over the type
    assert error_bits(bytes([0b0011_0100, 0b1000_0010])) == ["low_toner", "no_toner", "jammed", "input_tray_missing", "overdue_prevent_maint"]
    assert error_bits(octets("0100")) == ["service_requested"] and error_bits(octets("0001")) == ["bit15"] and error_bits(octets("")) == []
    assert error_bits(octets("@")) == ["no_paper"]  # 0x40 arrives as printable text
