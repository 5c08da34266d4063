"""Facts parsers on every recorded device output in shared/cli, against the expectations beside them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from agent.points import Point
from collector.ssh.facts import Facts, FactsError, duration_s, facts_from_outputs, facts_points
from collector.ssh.facts_fortios import parse_fortios_hardware, parse_fortios_status
from collector.ssh.facts_ios import parse_ios_inventory, parse_ios_version
from collector.ssh.facts_linux import LINUX_FACTS_COMMAND, parse_linux
from collector.ssh.facts_procurve import parse_procurve_system
from collector.ssh.platforms import PLATFORMS
from collector.ssh.recorded import load_session

FORTI_STATUS = ["fortinet_get_system_status_6.2", "fortinet_get_system_status_7.0", "fortinet_get_system_status_7.0_40f", "fortinet_get_system_status_7.4"]
IOS_VERSION = ["cisco_ios_show_version", "cisco_ios_show_version1", "cisco_ios_show_version4"]
PROCURVE_SYSTEM = ["hp_procurve_show_system", "hp_procurve_show_system2", "hp_procurve_show_system3"]
OXIDIZED = {
    "fortinet/running_config/fortigate#FortiGate-91G_7.4.7#simulation.yaml": ("FortiGate-91G", "7.4.7", "FGT91GTK00000000", "standalone"),
    "fortinet/running_config/fortigate#FortiGate-3001F_7.4.8_HA#simulation.yaml": ("FortiGate-3001F", "7.4.8", None, None),
    "fortinet/running_config/fortigate#FortiGate-501E_vdomHAdown#simulation.yaml": ("FortiGate-501E", "7.4.8", None, None),
}


@pytest.fixture(scope="module")
def cli(shared_dir: Path) -> Path:
    return shared_dir / "cli"


def expected(raw: Path) -> list[dict[str, object]]:
    return yaml.safe_load(raw.with_suffix(".yml").read_text())["parsed_sample"]


def test_every_recording_is_covered(cli: Path) -> None:
    """A recording added to shared/cli must be added to these lists too."""
    assert sorted(p.stem for p in (cli / "fortinet/get_system_status").glob("*.raw")) == sorted(FORTI_STATUS)
    assert sorted(p.stem for p in (cli / "cisco_ios/show_version").glob("*.raw")) == sorted(IOS_VERSION)
    assert sorted(p.stem for p in (cli / "hp_procurve/show_system").glob("*.raw")) == sorted(PROCURVE_SYSTEM)
    assert sorted(str(p.relative_to(cli)) for p in cli.glob("fortinet/running_config/*simulation.yaml")) == sorted(OXIDIZED)


@pytest.mark.parametrize("name", FORTI_STATUS)
def test_fortios_status_ntc(cli: Path, name: str) -> None:
    raw = cli / "fortinet/get_system_status" / f"{name}.raw"
    want = expected(raw)[0]
    facts = parse_fortios_status(raw.read_text())
    assert facts.serial == want["serial_number"] and facts.serials == [want["serial_number"]]
    assert facts.hostname == want["hostname"]
    assert facts.firmware == want["version"]
    assert facts.fw_rev == want["bios_version"]
    assert facts.ha_state == want["current_ha_mode"]
    model, rev = str(want["version"]).split(" v")
    assert facts.model == model and facts.sw_rev == rev.split(",")[0]
    assert facts.vendor == "Fortinet" and facts.os_name == "FortiOS"
    assert facts.uptime_s is None  # only the cluster's uptime is printed, never the unit's


@pytest.mark.parametrize("rel", sorted(OXIDIZED))
def test_fortios_status_oxidized_sessions(cli: Path, rel: str) -> None:
    """The model in `get system status` is the one `get hardware status` names in the same session."""
    session = load_session(cli / rel)
    facts = parse_fortios_status(session.outputs["get system status"])
    hardware_model = next(
        line.split(":", 1)[1].strip() for line in session.outputs["get hardware status"].splitlines() if line.startswith("Model name:")
    )
    model, rev, serial, ha = OXIDIZED[rel]
    assert facts.model == model == hardware_model
    assert facts.sw_rev == rev
    if serial:
        assert facts.serial == serial
    if ha:
        assert facts.ha_state == ha
    assert facts.serial and facts.hostname == session.prompt.rstrip(" #")


HARDWARE = {  # model, RAM MB, CPUs, hardware revision, as the recordings print them
    "fortinet/running_config/fortigate#FortiGate-91G_7.4.7#simulation.yaml": ("FortiGate-91G", 7547, 8, "Rev1", "ARMv8"),
    "fortinet/running_config/fortigate#FortiGate-3001F_7.4.8_HA#simulation.yaml": ("FortiGate-3001F", 129072, 64, None, "AMD EPYC 7502P 32-Core Processor"),
    "fortinet/running_config/fortigate#FortiGate-501E_vdomHAdown#simulation.yaml": ("FortiGate-501E", 16047, 8, None, "Intel(R) Core(TM) i7-6700 CPU @ 3.40GHz"),
}


@pytest.mark.parametrize("rel", sorted(HARDWARE))
def test_fortios_hardware_status(cli: Path, rel: str) -> None:
    session = load_session(cli / rel)
    model, ram_mb, cpus, hw_rev, cpu = HARDWARE[rel]
    facts = parse_fortios_hardware(session.outputs["get hardware status"])
    assert (facts.model, facts.cpu_threads, facts.hw_rev, facts.cpu_model) == (model, cpus, hw_rev, cpu)
    assert facts.mem_total_bytes == ram_mb * 1024 * 1024
    both = facts_from_outputs(PLATFORMS["fortinet"].facts, session.outputs)
    assert both.model == model and both.serial and both.mem_total_bytes == facts.mem_total_bytes  # status and hardware merged


def _uptime_from_fields(row: dict[str, object]) -> float:
    units = {"years": 365 * 86400, "weeks": 7 * 86400, "days": 86400, "hours": 3600, "minutes": 60}
    return float(sum(int(row[f"uptime_{u}"] or 0) * s for u, s in units.items()))


@pytest.mark.parametrize("name", IOS_VERSION)
def test_ios_show_version_ntc(cli: Path, name: str) -> None:
    raw = cli / "cisco_ios/show_version" / f"{name}.raw"
    want = expected(raw)[0]
    facts = parse_ios_version(raw.read_text())
    assert facts.model == want["hardware"][0]  # type: ignore[index]
    assert facts.serials == want["serial"] and facts.serial == want["serial"][0]  # type: ignore[index]
    assert facts.sw_rev == want["version"]
    assert facts.hostname == want["hostname"]
    assert facts.uptime_s == _uptime_from_fields(want) > 0
    assert facts.vendor == "Cisco" and facts.firmware and str(want["version"]) in facts.firmware


def test_ios_show_version_napalm_expected_facts(cli: Path) -> None:
    folder = cli / "cisco_ios/show_version/napalm_test_get_facts_normal"
    want = json.loads((folder / "expected_result.json").read_text())
    facts = parse_ios_version((folder / "show_version.txt").read_text())
    assert facts.model == want["model"]
    assert facts.serial == want["serial_number"]
    assert facts.uptime_s == want["uptime"]
    assert facts.hostname == want["hostname"]
    assert facts.firmware == want["os_version"]
    assert facts.vendor == want["vendor"]


def test_ios_show_version_genie_stack(cli: Path) -> None:
    text = (cli / "cisco_ios/show_version/genieparser_iosxe_ShowVersion/golden_output_4_output.txt").read_text()
    facts = parse_ios_version(text)
    assert (facts.model, facts.sw_rev, facts.hostname) == ("WS-C2960X-48FPD-L", "15.2(2)E7", "testname")
    assert facts.serials == ["FOC1913S46M", "FOC3333S00A"]
    assert facts.uptime_s == duration_s("25 weeks, 5 days, 15 hours, 45 minutes") == 25 * 604800 + 5 * 86400 + 15 * 3600 + 45 * 60


def test_ios_show_inventory_ntc(cli: Path) -> None:
    raw = cli / "cisco_ios/show_inventory/cisco_ios_show_inventory.raw"
    want = expected(raw)
    facts = parse_ios_inventory(raw.read_text())
    # The 3640's chassis entry has no PID, so its description names the model.
    assert facts.model == want[0]["descr"] and want[0]["pid"] == ""
    assert facts.serial == want[0]["sn"] and facts.serials == [want[0]["sn"]]


def test_ios_show_inventory_genie_stack(cli: Path) -> None:
    text = (cli / "cisco_ios/show_inventory/genieparser_iosxe_ShowInventory/golden_output_c3850_output.txt").read_text()
    facts = parse_ios_inventory(text)
    assert facts.model == "WS-C3850-24P-E"
    assert facts.serials == ["FCW1932D0LB", "FOC1932X0K1", "FCW1932C0MA", "FCW1932D0L0", "FOC1932X0F9"]


def test_ios_oxidized_session_version_and_inventory(cli: Path) -> None:
    session = load_session(cli / "cisco_ios/running_config/ios#C9200L-24P-4G_17.09.04a#simulation.yaml")
    facts = facts_from_outputs(PLATFORMS["cisco_ios"].facts, session.outputs)
    assert facts.model == "C9200L-24P-4G"
    assert facts.sw_rev == "17.9.4a" or facts.sw_rev == "17.09.04a"
    assert facts.serial == "JAE24FFFFFF"
    assert facts.os_name == "IOS-XE"


@pytest.mark.parametrize("name", PROCURVE_SYSTEM)
def test_procurve_show_system_ntc(cli: Path, name: str) -> None:
    raw = cli / "hp_procurve/show_system" / f"{name}.raw"
    want = expected(raw)
    facts = parse_procurve_system(raw.read_text())
    assert facts.serials == [row["serial"] for row in want]
    assert facts.serial == want[0]["serial"]
    assert facts.sw_rev == want[0]["software_version"]
    assert facts.fw_rev == want[0]["rom_version"]
    assert facts.hostname == want[0]["name"]
    assert facts.uptime_s == int(str(want[0]["uptime"]).split()[0]) * 86400
    assert facts.model is None  # show system does not name it; the inventory's model stands


def test_linux_facts_from_this_machine() -> None:
    """The command's real output on this host, parsed, equals what Python reads from the same files."""
    out = subprocess.run(["sh", "-c", LINUX_FACTS_COMMAND], capture_output=True, text=True, timeout=10).stdout
    facts = parse_linux(out)
    assert facts.sw_rev == Path("/proc/sys/kernel/osrelease").read_text().strip()
    release = dict(
        line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line
    )
    assert facts.os_name == release["NAME"].strip('"')
    assert facts.os_version == release.get("VERSION_ID", "").strip('"') or facts.os_version is None
    assert facts.uptime_s is not None and facts.uptime_s > 0
    vendor = Path("/sys/class/dmi/id/sys_vendor")
    if vendor.exists():
        assert facts.vendor in (vendor.read_text().strip(), None)


def test_linux_dmi_placeholders_and_dates() -> None:
    text = (
        "==> /sys/class/dmi/id/sys_vendor <==\nLENOVO\n\n"
        "==> /sys/class/dmi/id/product_name <==\n20L8S02D00\n\n"
        "==> /sys/class/dmi/id/product_serial <==\nTo Be Filled By O.E.M.\n\n"
        "==> /sys/class/dmi/id/bios_date <==\n03/14/2019\n\n"
        "==> /proc/sys/kernel/osrelease <==\n6.1.0-18-amd64\n"
    )
    facts = parse_linux(text)
    assert (facts.vendor, facts.model, facts.serial, facts.bios_date, facts.sw_rev) == ("LENOVO", "20L8S02D00", None, "2019-03-14", "6.1.0-18-amd64")


@pytest.mark.parametrize(
    "parse", [parse_fortios_status, parse_fortios_hardware, parse_ios_version, parse_ios_inventory, parse_procurve_system, parse_linux]
)
def test_unrelated_output_is_an_error(parse: object) -> None:
    with pytest.raises(FactsError):
        parse("% Invalid input detected at '^' marker.\n")  # type: ignore[operator]


def test_optional_command_may_fail() -> None:
    version = "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE4, RELEASE SOFTWARE (fc1)\n"
    facts = facts_from_outputs(PLATFORMS["cisco_ios"].facts, {"show version": version, "show inventory": "% Invalid input detected at '^' marker.\n"})
    assert facts.sw_rev == "15.0(2)SE4"
    with pytest.raises(FactsError, match="no output for 'show version'"):
        facts_from_outputs(PLATFORMS["cisco_ios"].facts, {})
    assert set(PLATFORMS) == {"fortinet", "cisco_ios", "hp_procurve", "linux"} and all(p.facts for p in PLATFORMS.values())


def test_points_follow_the_contract() -> None:
    facts = Facts(vendor="Cisco", model="WS-C3850-48U", serial="FOC1", serials=["FOC1", "FCW2"], sw_rev="03.06.05E", firmware="Cisco IOS ... Version 03.06.05E", uptime_s=120.0)
    hardware, device = facts_points(facts, device="core-sw", site="radhus", kind="switch", time_ns=1_700_000_000_000_000_000)
    for point in (hardware, device):
        Point.from_json(point.to_json())  # validates measurement, tags and fields
    assert hardware.measurement == "hardware" and dict(hardware.tags) == {"site": "radhus", "device": "core-sw", "kind": "switch"}
    assert hardware.fields["model"] == "WS-C3850-48U" and hardware.fields["serials"] == "FOC1,FCW2" and hardware.fields["sw_rev"] == "03.06.05E"
    assert device.measurement == "device" and dict(device.tags) == {"site": "radhus", "device": "core-sw"}
    assert device.fields == {"firmware": "Cisco IOS ... Version 03.06.05E", "uptime_s": 120.0}
    single = facts_points(Facts(model="X", serials=["A"], serial="A"), device="d", site="s")
    assert [p.measurement for p in single] == ["hardware"] and "serials" not in single[0].fields and single[0].tags["kind"] == "network"
