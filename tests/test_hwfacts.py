"""agent/hwfacts.py against real dumps (shared/hwfacts) and against this machine.

Expected facts per recording live in tests/testdata/hwfacts/expected.json, written by
reading the dumps; the test compares the whole facts dict, so a new field or a lost one
shows up here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agent import hwfacts
from agent.contract import point_problems
from agent.hwfacts import (
    clean,
    collect_hardware,
    decode_wmic,
    facts_from_dmidecode,
    facts_from_sysfs,
    facts_from_wmi,
    hardware_point,
    parse_cim_json,
    parse_date,
    parse_wmic_list,
)
from agent.points import Point

EXPECTED_FILE = Path(__file__).parent / "testdata" / "hwfacts" / "expected.json"
EXPECTED = {k: v for k, v in json.loads(EXPECTED_FILE.read_text()).items() if not k.startswith("_")}


@pytest.fixture(scope="module")
def hw_dir(shared_dir: Path) -> Path:
    return shared_dir / "hwfacts"


def facts_of(path: Path) -> dict:
    """Parse one recording the way its adapter would."""
    if path.parent.name == "windows":
        wmi_class = path.stem.rsplit("-", 1)[-1]  # "proxmox-Win32_Bios" -> "Win32_Bios"
        return facts_from_wmi({wmi_class: parse_wmic_list(decode_wmic(path.read_bytes()))})
    return facts_from_dmidecode(path.read_text(errors="replace"))


def recordings(hw_dir: Path) -> list[Path]:
    return sorted(p for p in hw_dir.rglob("*") if p.is_file() and p.name != "README.md")


def test_every_recording_has_expected_facts(hw_dir: Path) -> None:
    found = {str(p.relative_to(hw_dir)) for p in recordings(hw_dir)}
    assert found == set(EXPECTED), "a recording without expected facts, or expected facts without a recording"
    for rel, expected in EXPECTED.items():
        assert facts_of(hw_dir / rel) == expected, rel


def test_every_recording_makes_a_valid_point(hw_dir: Path) -> None:
    for path in recordings(hw_dir):
        point = hardware_point(facts_of(path), {"site": "karlsoy", "host": "pc-1", "kind": "pc"})
        assert point is not None and point.measurement == "hardware"
        assert point_problems(point.measurement, point.tags, point.fields, "agent") == [], path


@pytest.mark.parametrize(
    "value",
    ["--", "Not Specified", "To Be Filled By O.E.M.", "To be filled by O.E.M.", "Default string",
     "System Serial Number", "0000000000", "FFFFFFFF", "  ", "", None, "<BAD INDEX>", "Fill By OEM", "unknown"],
)
def test_placeholders_are_absent(value: object) -> None:
    assert clean(value) is None


def test_real_values_survive_cleaning() -> None:
    assert clean("  Intel(R) Core(TM)2 Duo CPU     E7500  @ 2.93GHz     ") == "Intel(R) Core(TM)2 Duo CPU E7500 @ 2.93GHz"
    assert clean("A08") == "A08"
    assert clean("01") == "01"


def test_placeholders_from_recordings_are_dropped(hw_dir: Path) -> None:
    # The M70e fills its chassis vendor, board name and SKU with "To Be Filled By O.E.M.";
    # every serial in these dumps is "--". None of that may reach a field.
    for path in recordings(hw_dir):
        facts = facts_of(path)
        assert "serial" not in facts, path
        for key, value in facts.items():
            if isinstance(value, str):
                assert clean(value) == value, (path, key, value)


def test_dmidecode_synthetic_placeholder_serial_and_board_fallback() -> None:
    text = (
        "Handle 0x0001, DMI type 1, 27 bytes\nSystem Information\n"
        "\tManufacturer: System manufacturer\n\tProduct Name: System Product Name\n"
        "\tSerial Number: System Serial Number\n\n"
        "Handle 0x0002, DMI type 2, 15 bytes\nBase Board Information\n"
        "\tManufacturer: ASUSTeK COMPUTER INC.\n\tProduct Name: PRIME B450M-A\n\tSerial Number: 190436754300123\n\n"
        "Handle 0x0003, DMI type 3, 22 bytes\nChassis Information\n\tType: Desktop\n\tSerial Number: Default string\n"
    )
    facts = facts_from_dmidecode(text)
    assert facts["vendor"] == "ASUSTeK COMPUTER INC."
    assert facts["model"] == "PRIME B450M-A"
    assert facts["serial"] == "190436754300123"  # the board serial, the only real one


@pytest.mark.parametrize("name", ["desktop_dell-optiplex-7010_1D78E8528AA7.txt", "vm_qemu-q35-edk2_418878F10378.txt"])
def test_truncated_dmidecode_gives_partial_facts(hw_dir: Path, name: str) -> None:
    text = (hw_dir / "linux-dmidecode" / name).read_text()
    full = facts_from_dmidecode(text)
    for cut in range(0, len(text), 97):
        partial = facts_from_dmidecode(text[:cut])
        for key, value in partial.items():
            # A cut inside a value can shorten it (or drop a DIMM), never invent a different fact.
            if key in ("mem_total_bytes", "cpu_cores", "cpu_threads"):
                assert value <= full[key], (cut, key)
            elif key != "virtual":
                assert str(full[key]).startswith(str(value)) or key in ("bios_date", "manufactured_estimate"), (cut, key)


def test_truncated_dell_keeps_what_came_before_the_cut(hw_dir: Path) -> None:
    text = (hw_dir / "linux-dmidecode" / "desktop_dell-optiplex-7010_1D78E8528AA7.txt").read_text()
    cut = text.index("Handle 0x0002, DMI type 2")
    facts = facts_from_dmidecode(text[:cut])
    assert facts["vendor"] == "Dell Inc." and facts["model"] == "OptiPlex 7010"
    assert facts["bios_date"] == "2012-09-19"
    assert "cpu_model" not in facts and "mem_total_bytes" not in facts


def test_corrupt_dmidecode_does_not_raise() -> None:
    junk = "Handle 0xZZ, DMI type x\n\t\torphan\nno handle here\nHandle 0x0001, DMI type 1, 27 bytes\n\tManufacturer Dell\n\t: \n\x00\xff"
    assert facts_from_dmidecode(junk) == {}
    assert facts_from_dmidecode("") == {}
    assert facts_from_dmidecode("Handle 0x0000, DMI type 0, 24 bytes\nBIOS Information\n\tRelease Date: 13/45/2012\n") == {}


def test_truncated_and_corrupt_wmic(hw_dir: Path) -> None:
    data = (hw_dir / "windows" / "11-AzureAD-Win32_ComputerSystem.wmi").read_bytes()
    for cut in range(0, len(data), 101):  # odd cuts split a UTF-16 code unit
        facts_from_wmi({"Win32_ComputerSystem": parse_wmic_list(decode_wmic(data[:cut]))})
    cut = decode_wmic(data).index("Model=")
    partial = facts_from_wmi({"Win32_ComputerSystem": parse_wmic_list(decode_wmic(data)[:cut])})
    assert partial == {"vendor": "LENOVO", "virtual": 0.0}
    assert facts_from_wmi({"Win32_BIOS": [{"ReleaseDate": "garbage", "SMBIOSBIOSVersion": 7}]}) == {
        "bios_version": "7", "virtual": 0.0,
    }
    assert facts_from_wmi({}) == {}


def test_powershell_json_form() -> None:
    # The shape our PowerShell script prints; Win32_BIOS as a bare object (unrolled array)
    # and a PowerShell 5.1 date, to show both are taken.
    text = json.dumps(
        {
            "Win32_ComputerSystem": [{"Manufacturer": "Dell Inc.", "Model": "OptiPlex 7010", "TotalPhysicalMemory": 8463011840}],
            "Win32_ComputerSystemProduct": [{"Vendor": "Dell Inc.", "Version": "01", "IdentifyingNumber": "7XK2Q5J"}],
            "Win32_BIOS": {"Manufacturer": "Dell Inc.", "SMBIOSBIOSVersion": "A29", "ReleaseDate": "/Date(1544054400000)/"},
            "Win32_SystemEnclosure": [{"ChassisTypes": [16], "SerialNumber": "7XK2Q5J"}],
            "Win32_Processor": [{"Name": "Intel(R) Core(TM) i5-3475S CPU @ 2.90GHz", "NumberOfCores": 4, "NumberOfLogicalProcessors": 4}],
            "Win32_PhysicalMemory": [{"Capacity": "4294967296"}, {"Capacity": 4294967296}],
            "Win32_OperatingSystem": [{"Caption": "Microsoft Windows 10 Pro", "Version": "10.0.19045", "TotalVisibleMemorySize": 8264660}],
        }
    )
    assert facts_from_wmi(parse_cim_json(text)) == {
        "vendor": "Dell Inc.",
        "model": "OptiPlex 7010",
        "serial": "7XK2Q5J",
        "chassis_type": "Lunch Box",
        "bios_version": "A29",
        "bios_date": "2018-12-06",
        "manufactured_estimate": "2018-12-06",
        "cpu_model": "Intel(R) Core(TM) i5-3475S CPU @ 2.90GHz",
        "cpu_cores": 4,
        "cpu_threads": 4,
        "mem_total_bytes": 8589934592,
        "os_name": "Microsoft Windows 10 Pro",
        "os_version": "10.0.19045",
        "virtual": 0.0,
    }


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("09/19/2012", "2012-09-19"),
        ("2/2/2022", "2022-02-02"),
        ("12/01/06", "2006-12-01"),
        ("20140401000000.000000+000", "2014-04-01"),
        ("2014-04-01", "2014-04-01"),
        ("2014-04-01T00:00:00", "2014-04-01"),
        ("/Date(1396310400000)/", "2014-04-01"),
        ("02/30/2020", None),
        ("01/01/1970", None),
        ("Not Specified", None),
        ("soon", None),
    ],
)
def test_parse_date(text: str, iso: str | None) -> None:
    assert parse_date(text) == iso


def test_sysfs_directory(tmp_path: Path) -> None:
    # /sys/class/dmi/id of the T14 in the recordings, as the kernel shows it to a non-root
    # user: product_serial is root-only, so it is missing here.
    for name, value in {
        "sys_vendor": "LENOVO", "product_name": "21MCS00J00", "product_version": "ThinkPad T14 Gen 5",
        "product_family": "ThinkPad T14 Gen 5", "board_vendor": "LENOVO", "board_name": "21MCS00J00",
        "bios_vendor": "LENOVO", "bios_version": "R2LET28W (1.09 )", "bios_date": "08/23/2024",
        "chassis_type": "10", "chassis_vendor": "LENOVO",
    }.items():
        (tmp_path / name).write_text(value + "\n")
    assert facts_from_sysfs(tmp_path) == {
        "vendor": "LENOVO", "model": "ThinkPad T14 Gen 5", "model_number": "21MCS00J00",
        "chassis_type": "Notebook", "bios_version": "R2LET28W (1.09 )", "bios_date": "2024-08-23",
        "manufactured_estimate": "2024-08-23", "virtual": 0.0,
    }
    assert facts_from_sysfs(tmp_path / "missing") == {}


def test_collect_hardware_on_this_machine() -> None:
    # This VM has no DMI: the point must still come, from what the OS knows.
    point = collect_hardware({"site": "karlsoy", "host": "srv-1"}, kind="server")
    assert isinstance(point, Point)
    point.validate()
    assert point.tags == {"site": "karlsoy", "host": "srv-1", "kind": "server"}
    assert point.fields["mem_total_bytes"] > 0
    assert point.fields["cpu_threads"] >= 1


def test_a_failing_adapter_is_logged_and_os_facts_used(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> dict:
        raise RuntimeError("adapter bug")

    monkeypatch.setitem(hwfacts.ADAPTERS, sys.platform, broken)
    point = collect_hardware({"host": "srv-1"})
    assert point is not None and point.fields["mem_total_bytes"] > 0
    assert "adapter failed" in caplog.text


def test_nothing_known_is_no_point() -> None:
    assert hardware_point({}, {"host": "x"}) is None


def test_missing_command_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(3):
        assert hwfacts._run(["nettvakt-no-such-command"], 1.0) is None
    assert len([r for r in caplog.records if "nettvakt-no-such-command" in r.getMessage()]) == 1
