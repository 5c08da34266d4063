"""A UPS on a real snmpd whose values the test changes (collector/lab/ups_agent.py): Debian's snmpd
serves UPS-MIB through collector/lab/pass_persist.py from a JSON file the test rewrites.

The poller finds it by probing UPS-MIB (snmpd's sysObjectID is net-snmp's Linux one), sees it on
line, and at the next poll after the test wrote an on-battery state sees it on battery with the
seconds and minutes left; net-snmp's snmpget reads the same. The same snmpd.conf line works
inside a network namespace, as the lab starts it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.points import Point
from collector.lab.pass_persist import write_oid_table
from collector.lab.ups_agent import PASS_PERSIST_SCRIPT, UpsSnmpd, UpsState, start_ups_snmpd, ups_snmpd_config, write_ups_state
from collector.localservers import SYS_OBJECT_ID_OID, ServiceError, start_snmpd
from collector.snmp import ups
from collector.snmp.cli import render_table
from collector.snmp.poller import DevicePoller
from collector.snmp.profiles import select_profile
from collector.snmp.session import SnmpAuth, SnmpSession
from test_localservers import netns  # noqa: F401  (the throwaway-namespace fixture)
from test_snmp_printer_poller import _fits

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

COMMUNITY = "ups-ro"
NET_SNMP_LINUX = "1.3.6.1.4.1.8072.3.2.10"  # net-snmp's sysObjectID on Linux: says nothing of a UPS
UPS_OIDS = (ups.UPS_IDENT_MODEL, ups.UPS_BATTERY_STATUS, ups.UPS_SECONDS_ON_BATTERY, ups.UPS_ESTIMATED_MINUTES_REMAINING,
            ups.UPS_ESTIMATED_CHARGE_REMAINING, ups.UPS_OUTPUT_SOURCE, ups.UPS_ALARMS_PRESENT)


# ---------------------------------------------------------------- the pass_persist script on its own


class PassPersist:
    """The script as snmpd runs it, spoken to over its stdin/stdout; killed if a reply takes 10 s."""

    def __init__(self, table: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", str(PASS_PERSIST_SCRIPT), str(table)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def ask(self, *lines: str, replies: int = 1) -> list[str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("".join(f"{line}\n" for line in lines))
        self.proc.stdin.flush()
        watchdog = threading.Timer(10, self.proc.kill)
        watchdog.start()
        try:
            out = [self.proc.stdout.readline().rstrip("\n") for _ in range(replies)]
        finally:
            watchdog.cancel()
        assert all(out), f"pass_persist gave no reply to {lines}: {self.proc.stderr.read() if self.proc.stderr else ''}"
        return out

    def close(self) -> str:
        """Close stdin as snmpd does on shutdown: the script exits 0. Returns what it said on stderr."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            assert self.proc.wait(10) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.stderr.read() if self.proc.stderr else ""


@pytest.fixture
def pass_persist(tmp_path: Path) -> Iterator[tuple[PassPersist, Path]]:
    table = tmp_path / "table.json"
    write_ups_state(table, UpsState())
    script = PassPersist(table)
    try:
        yield script, table
    finally:
        if script.proc.poll() is None:
            script.proc.kill()
            script.proc.wait()


def test_pass_persist_speaks_snmpds_protocol(pass_persist: tuple[PassPersist, Path]) -> None:
    script, table = pass_persist
    assert script.ask("PING") == ["PONG"]
    assert script.ask("get", f".{ups.UPS_OUTPUT_SOURCE}", replies=3) == [f".{ups.UPS_OUTPUT_SOURCE}", "integer", "3"]
    assert script.ask("get", f".{ups.UPS_IDENT_MODEL}", replies=3) == [f".{ups.UPS_IDENT_MODEL}", "string", "nettvakt lab UPS 1000"]
    assert script.ask("get", f".{ups.UPS_OUTPUT_SOURCE_OBJECT}") == ["NONE"]  # the object, not its instance
    # GETNEXT in OID order (numerically: .1.2.2.0 before .1.2.10), from the registered base, and past the end.
    assert script.ask("getnext", f".{ups.UPS_MIB}", replies=3)[0] == f".{ups.UPS_IDENT_MANUFACTURER}"
    assert script.ask("getnext", f".{ups.UPS_BATTERY_STATUS_OBJECT}", replies=3) == [f".{ups.UPS_BATTERY_STATUS}", "integer", "2"]
    assert script.ask("getnext", f".{ups.UPS_ESTIMATED_CHARGE_REMAINING}", replies=3)[0] == f".{ups.UPS_OUTPUT_SOURCE}"
    assert script.ask("getnext", f".{ups.UPS_ALARMS_PRESENT}") == ["NONE"]
    assert script.ask("set", f".{ups.UPS_OUTPUT_SOURCE}", "integer 5") == ["not-writable"]
    assert script.ask("get", "not an oid") == ["NONE"]

    # A rewrite is seen by the next request; a broken or missing file leaves the last table served.
    write_ups_state(table, UpsState.on_battery(seconds=30, minutes_left=20))
    assert script.ask("get", f".{ups.UPS_OUTPUT_SOURCE}", replies=3)[2] == "5"
    table.write_text("{not json", encoding="utf-8")
    assert script.ask("get", f".{ups.UPS_SECONDS_ON_BATTERY}", replies=3)[2] == "30"
    table.unlink()
    assert script.ask("get", f".{ups.UPS_ESTIMATED_MINUTES_REMAINING}", replies=3)[2] == "20"
    errors = script.close()
    assert f"{table}: Expecting property name" in errors and f"{table}: [Errno 2]" in errors


def test_tables_and_states_are_checked_before_they_are_written(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    with pytest.raises(ValueError, match=r"t\.json: 1\.3\.6\.1\.2: a gauge needs an integer, not '7'"):
        write_oid_table(path, {"1.3.6.1.2": ("gauge", "7")})
    with pytest.raises(ValueError, match=r"t\.json: 1\.3: type 'float' is none of pass_persist's"):
        write_oid_table(path, {"1.3": ("float", 1)})
    with pytest.raises(ValueError, match=r"t\.json: 1\.3: a string needs text on one line"):
        write_oid_table(path, {"1.3": ("string", "a\nb")})
    with pytest.raises(ValueError, match=r"not a numeric OID: 'ups'"):
        write_oid_table(path, {"ups": ("integer", 1)})
    assert not path.exists() and list(tmp_path.iterdir()) == []  # nothing half-written left behind
    with pytest.raises(ValueError, match=r"UpsState\.output_source 'mains': one of other, none, normal, bypass, battery"):
        UpsState(output_source="mains")
    with pytest.raises(ValueError, match=r"UpsState\.battery_status 'flat'"):
        UpsState(battery_status="flat")
    with pytest.raises(ValueError, match=r"UpsState\.minutes_left -1: a whole number >= 0"):
        UpsState.on_battery(seconds=1, minutes_left=-1)
    with pytest.raises(ValueError, match=r"UpsState\.charge_pct 101: at most 100"):
        UpsState(charge_pct=101)
    with pytest.raises(ValueError, match="snmpd splits pass_persist commands at blanks"):
        ups_snmpd_config(tmp_path / "a state.json")
    write_ups_state(path, UpsState(alarms=2))
    assert json.loads(path.read_text())[ups.UPS_ALARMS_PRESENT] == ["gauge", 2]


# ---------------------------------------------------------------- through a real snmpd


@pytest.fixture
def ups_snmpd(tmp_path: Path) -> Iterator[UpsSnmpd]:
    try:
        server = start_ups_snmpd(tmp_path / "ups", community=COMMUNITY)
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _snmpget(server: UpsSnmpd) -> dict[str, str]:
    proc = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-On", "-Oq", f"{server.server.host}:{server.server.port}", *UPS_OIDS],
                          capture_output=True, text=True, env=server.server.net_snmp_env(), timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {oid.lstrip("."): value.strip('"') for oid, _, value in (line.partition(" ") for line in proc.stdout.splitlines())}


def _ups_fields(points: list[Point]) -> dict[str, object]:
    (device,) = [p for p in points if p.measurement == "device"]
    return {k: v for k, v in device.fields.items() if k.startswith(("ups_", "battery_")) or k == "profile"}


def test_the_poller_sees_the_ups_go_on_battery(ups_snmpd: UpsSnmpd) -> None:
    session = SnmpSession(ups_snmpd.server.host, ups_snmpd.server.port, SnmpAuth("2c", community=COMMUNITY), device="ups-vannvag")
    poller = DevicePoller("ups-vannvag", "vannvag", session, hardware_kind="ups")

    async def system_oid() -> str:
        return str((await session.get([SYS_OBJECT_ID_OID]))[SYS_OBJECT_ID_OID])

    sys_object_id = asyncio.run(system_oid())
    assert sys_object_id == NET_SNMP_LINUX and select_profile(sys_object_id).name == "generic"

    on_line = asyncio.run(poller.poll())
    _fits(on_line)
    assert _ups_fields(on_line) == {
        "profile": "ups", "ups_battery_status": "normal", "ups_battery_low": 0.0, "ups_seconds_on_battery": 0.0,
        "ups_minutes_left": 45.0, "ups_charge_pct": 100.0, "ups_output_source": "normal", "ups_on_battery": 0.0,
        "ups_alarms": 0.0,
    }
    (hardware,) = [p for p in on_line if p.measurement == "hardware"]
    assert hardware.tags["kind"] == "ups" and dict(hardware.fields) == {"vendor": "nettvakt", "model": "nettvakt lab UPS 1000"}

    # The power goes: the next poll (the file is replaced before it starts) sees the UPS on battery.
    ups_snmpd.set(UpsState.on_battery(seconds=90, minutes_left=12, charge_pct=80, alarms=1))
    on_battery = asyncio.run(poller.poll())
    _fits(on_battery)
    assert _ups_fields(on_battery) == {
        "profile": "ups", "ups_battery_status": "normal", "ups_battery_low": 0.0, "ups_seconds_on_battery": 90.0,
        "ups_minutes_left": 12.0, "ups_charge_pct": 80.0, "ups_output_source": "battery", "ups_on_battery": 1.0,
        "ups_alarms": 1.0,
    }
    assert _snmpget(ups_snmpd) == {
        ups.UPS_IDENT_MODEL: "nettvakt lab UPS 1000", ups.UPS_BATTERY_STATUS: "2", ups.UPS_SECONDS_ON_BATTERY: "90",
        ups.UPS_ESTIMATED_MINUTES_REMAINING: "12", ups.UPS_ESTIMATED_CHARGE_REMAINING: "80", ups.UPS_OUTPUT_SOURCE: "5",
        ups.UPS_ALARMS_PRESENT: "1",
    }
    assert "ups: ON BATTERY for 90 s; 80 % charge, 12 min left, battery normal; 1 alarm(s)" in render_table(on_battery, 4.0).splitlines()

    # The battery runs low, then the power is back.
    ups_snmpd.set(UpsState.on_battery(seconds=700, minutes_left=2, charge_pct=9, battery_status="low"))
    low = _ups_fields(asyncio.run(poller.poll()))
    assert (low["ups_battery_status"], low["ups_battery_low"], low["ups_minutes_left"]) == ("low", 1.0, 2.0)
    ups_snmpd.set(UpsState(charge_pct=15))
    back = _ups_fields(asyncio.run(poller.poll()))
    assert (back["ups_on_battery"], back["ups_output_source"], back["ups_seconds_on_battery"]) == (0.0, "normal", 0.0)


def test_the_snmpd_config_line_works_inside_a_network_namespace(netns: str, tmp_path: Path) -> None:  # noqa: F811
    """As the lab starts it: snmpd under `ip netns exec`, the state written from outside."""
    state = tmp_path / "ups-state.json"
    write_ups_state(state, UpsState())
    server = start_snmpd(tmp_path / "snmpd", netns=netns, community=COMMUNITY, extra_config=ups_snmpd_config(state))
    try:
        def inside() -> str:
            proc = subprocess.run(
                ["ip", "netns", "exec", netns, "snmpget", "-v2c", "-c", COMMUNITY, "-Oqv", "127.0.0.1:161", ups.UPS_OUTPUT_SOURCE,
                 ups.UPS_SECONDS_ON_BATTERY],
                capture_output=True, text=True, env=server.net_snmp_env(), timeout=30)
            assert proc.returncode == 0, proc.stderr
            return " ".join(proc.stdout.split())

        assert inside() == "3 0"
        write_ups_state(state, UpsState.on_battery(seconds=60, minutes_left=9))
        assert inside() == "5 60"
    finally:
        server.stop()
    assert not server.process.alive()
