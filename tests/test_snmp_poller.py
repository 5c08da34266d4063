"""DevicePoller: real recordings over snmpsim, real snmpd on loopback, and the rate math with a fake clock."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from agent.contract import point_problems
from agent.points import Point
from collector.localservers import SnmpdServer, SnmpsimServer, start_snmpsim
from collector.snmp.poller import DevicePoller, counter_rate, sanitize_name, sys_uptime_rebooted
from collector.snmp.session import SnmpAuth, SnmpError, SnmpSession
from collector.snmp.snmprec import RecordedSession, load_snmprec
from test_snmp_session import net_snmp_env, net_snmp_walk

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")


IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.10"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
FG_SYS = "1.3.6.1.4.1.12356.101.4.1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def by_kind(points: list[Point]) -> tuple[Point, dict[str, Point], list[Point]]:
    for point in points:
        point.validate()  # every point must pass the ingest contract
    device = [p for p in points if p.measurement == "device"]
    assert len(device) == 1
    interfaces = {p.tags["ifname"]: p for p in points if p.measurement == "interface"}
    hardware = [p for p in points if p.measurement == "hardware"]
    return device[0], interfaces, hardware


def recorded(shared_dir: Path, name: str) -> dict[str, Any]:
    return load_snmprec(shared_dir / "snmprec" / f"{name}.snmprec")


# ---------------------------------------------------------------- recordings served by snmpsim


def poll_snmpsim(snmpsim: SnmpsimServer, community: str) -> list[Point]:
    session = SnmpSession(snmpsim.host, snmpsim.port, SnmpAuth("2c", community=community), device=community)
    return asyncio.run(DevicePoller(community, "lab", session).poll())


# Every recording in shared/snmprec, and the profile its sysObjectID selects.
RECORDINGS = {
    "fortigate_60f": "fortigate",
    "fortigate_100e": "fortigate",
    "procurve_e2910": "procurve",
    "ios_2960x": "cisco",
    "edgeswitch_es-24-250w": "generic",
    "apc_smt750x-nmc2": "apc_ups",
}
LATER = "-later"  # community suffix of the copy with counters moved on
LATER_TICKS = 1000  # sysUpTime moved on by 10 s in the copy
# Counter columns the copy moves on, by (octets per ifIndex number) so every row differs.
MOVED_COUNTERS = {
    IF_HC_IN: 1000, IF_HC_OUT: 3000, IF_IN_OCTETS: 2000, "1.3.6.1.2.1.2.2.1.16": 4000,  # ifOutOctets
    "1.3.6.1.2.1.2.2.1.14": 7,  # ifInErrors
}
IF_COLUMNS = {
    "name": IF_NAME, "descr": IF_DESCR, "oper": "1.3.6.1.2.1.2.2.1.8", "admin": "1.3.6.1.2.1.2.2.1.7",
    "high_speed": "1.3.6.1.2.1.31.1.1.1.15", "speed": "1.3.6.1.2.1.2.2.1.5",
    "hc_in": IF_HC_IN, "in": IF_IN_OCTETS, "hc_out": IF_HC_OUT, "out": "1.3.6.1.2.1.2.2.1.16",
    "in_errors": "1.3.6.1.2.1.2.2.1.14",
}
ENT_PHYSICAL = "1.3.6.1.2.1.47.1.1.1.1"


def _moved_on(line: str) -> str:
    """One snmprec line of the `-later` copy: sysUpTime and the MOVED_COUNTERS grown."""
    oid, tag, value = line.split("|", 2)
    if oid == SYS_UPTIME and tag == "67":
        return f"{oid}|{tag}|{(int(value) + LATER_TICKS) % 2**32}"
    for column, per_index in MOVED_COUNTERS.items():
        if oid.startswith(column + ".") and tag in ("65", "70"):
            index = int(oid[len(column) + 1:])
            return f"{oid}|{tag}|{(int(value) + per_index * index) % (2**32 if tag == '65' else 2**64)}"
    return line


@pytest.fixture(scope="module")
def snmpsim_twice(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimServer]:
    """snmpsim serving every recording as is and as `<name>-later`, 10 s on with counters grown."""
    data = tmp_path_factory.mktemp("snmprec-twice")
    for name in RECORDINGS:
        text = (shared_dir / "snmprec" / f"{name}.snmprec").read_text(encoding="utf-8")
        (data / f"{name}.snmprec").write_text(text, encoding="utf-8")
        later = "\n".join(_moved_on(line) if line.strip() else line for line in text.splitlines())
        (data / f"{name}{LATER}.snmprec").write_text(later + "\n", encoding="utf-8")
    server = start_snmpsim(data, tmp_path_factory.mktemp("snmpsim-twice"))
    try:
        yield server
    finally:
        server.stop()


def _bulkwalk(server: SnmpsimServer, community: str, prefix: str, env: dict[str, str]) -> dict[str, str]:
    """{row index: value text} of one column as net-snmp's snmpbulkwalk reads it (-Ot: TimeTicks as a number)."""
    rows = net_snmp_walk(["snmpbulkwalk", "-Ot", "-v2c", "-c", community, f"{server.host}:{server.port}", prefix], env)
    # An empty subtree makes snmpbulkwalk GET the prefix itself ("No Such Object"): not a row.
    return {oid[len(prefix) + 1:]: value for oid, value in rows.items() if oid.startswith(prefix + ".")}


@pytest.mark.parametrize("community", sorted(RECORDINGS))
def test_every_recording_yields_points_that_match_snmpbulkwalk(
    snmpsim_twice: SnmpsimServer, tmp_path: Path, community: str
) -> None:
    """Two polls (the recording, then its copy 10 s on): names, states, speeds and rates from counters
    all equal what net-snmp's snmpbulkwalk reads from the same snmpsim agent."""
    server = snmpsim_twice
    clock = FakeClock()

    async def two_polls() -> tuple[list[Point], list[Point]]:
        poller = DevicePoller(community, "lab", SnmpSession(server.host, server.port, SnmpAuth("2c", community=community)),
                              clock=clock)
        first = await poller.poll()
        poller.session = SnmpSession(server.host, server.port, SnmpAuth("2c", community=community + LATER))
        clock.now += LATER_TICKS / 100
        return first, await poller.poll()

    first, second = asyncio.run(two_polls())
    for point in first + second:  # what the poller writes is the contract's
        assert point_problems(point.measurement, point.tags, point.fields, "collector") == [], point
    env = net_snmp_env(tmp_path)
    walk = {key: _bulkwalk(server, community, oid, env) for key, oid in IF_COLUMNS.items()}
    later = {key: _bulkwalk(server, community + LATER, IF_COLUMNS[key], env) for key in ("hc_in", "in", "hc_out", "out", "in_errors")}
    system = _bulkwalk(server, community, "1.3.6.1.2.1.1", env)

    device, ifs1, hardware = by_kind(first)
    assert device.fields["up"] == 1.0 and device.fields["profile"] == RECORDINGS[community]
    assert device.tags == {"device": community, "site": "lab"}
    assert device.fields["uptime_s"] == pytest.approx(int(system["3.0"]) / 100)
    device2, ifs2, _ = by_kind(second)
    assert device2.fields["rebooted"] == 0.0
    assert all(not (set(p.fields) & {"in_bps", "out_bps", "in_errors_ps"}) for p in ifs1.values())  # first poll: state only

    # Interface names: ifName, else ifDescr (FortiOS leaves ifDescr empty; the APC has no ifName).
    indexes = sorted(set(walk["name"]) | set(walk["descr"]), key=int)
    names = {i: " ".join((walk["name"].get(i) or walk["descr"].get(i) or "").split()) or f"if{i}" for i in indexes}
    repeated = {n for n in names.values() if list(names.values()).count(n) > 1}
    names = {i: f"{n}#{i}" if n in repeated else n for i, n in names.items()}
    assert sorted(ifs2) == sorted(names.values()) and len(names) > 1

    counted = 0
    for index, name in names.items():
        fields = ifs2[name].fields
        for key, field_name in (("oper", "oper_up"), ("admin", "admin_up")):
            if index in walk[key]:
                assert fields[field_name] == (1.0 if walk[key][index] == "1" else 0.0), (name, key)
            else:
                assert field_name not in fields, (name, key)
        high_speed, speed = int(walk["high_speed"].get(index) or 0), int(walk["speed"].get(index) or 0)
        expected_speed = high_speed * 1e6 if high_speed else speed or None
        assert fields.get("speed_bps") == expected_speed, name
        for direction in ("in", "out"):
            source = "hc_" + direction if index in walk["hc_" + direction] else direction
            if index not in walk[source]:
                assert f"{direction}_bps" not in fields, name  # no counter in the recording: no rate
                continue
            modulo = 2**64 if source.startswith("hc_") else 2**32
            moved = (int(later[source][index]) - int(walk[source][index])) % modulo
            assert fields[f"{direction}_bps"] == pytest.approx(moved * 8 / (LATER_TICKS / 100)), (name, direction)
            if expected_speed:
                assert fields[f"{direction}_util_pct"] == pytest.approx(fields[f"{direction}_bps"] / expected_speed * 100)
            else:
                assert f"{direction}_util_pct" not in fields  # no speed: no utilisation, no division by zero
            counted += 1
        if index in walk["in_errors"]:
            moved = int(later["in_errors"][index]) - int(walk["in_errors"][index])
            assert fields["in_errors_ps"] == pytest.approx(moved / (LATER_TICKS / 100)), name
    assert counted > 0

    # Hardware: the ENTITY chassis row (class 3, or the first row naming a model or serial).
    classes = _bulkwalk(server, community, f"{ENT_PHYSICAL}.5", env)
    serials = _bulkwalk(server, community, f"{ENT_PHYSICAL}.11", env)
    models = _bulkwalk(server, community, f"{ENT_PHYSICAL}.13", env)
    if not (serials or models):
        # The APC: no ENTITY-MIB; model, serial and UPS firmware from PowerNet (test_snmp_ups.py).
        assert [sorted(p.fields) for p in hardware] == [["fw_rev", "model", "serial"]]
        return
    chassis = sorted((i for i, v in classes.items() if v == "3"), key=int) or sorted(
        (i for i in set(serials) | set(models) if serials.get(i) or models.get(i)), key=int)[:1]
    assert len(hardware) == 1 and hardware[0].tags["kind"] == "network"
    assert hardware[0].fields.get("serial") == (serials.get(chassis[0]) or None)
    assert hardware[0].fields.get("model") == (models.get(chassis[0]) or None)


@pytest.mark.parametrize("community", ["fortigate_60f", "fortigate_100e"])
def test_fortigate_values_equal_the_recording(snmpsim: SnmpsimServer, shared_dir: Path, community: str) -> None:
    rec = recorded(shared_dir, community)
    device, _, _ = by_kind(poll_snmpsim(snmpsim, community))
    assert device.fields["firmware"] == rec[f"{FG_SYS}.1.0"]
    assert device.fields["cpu_pct"] == rec[f"{FG_SYS}.3.0"]
    assert device.fields["mem_used_pct"] == rec[f"{FG_SYS}.4.0"]
    assert device.fields["sessions"] == rec[f"{FG_SYS}.8.0"]
    # Tunnels: fgVpn2TunTable (FortiOS 7, 60F) or fgVpnTunTable (FortiOS 5, 100E); up is status 2.
    statuses = [v for oid, v in rec.items() if oid.startswith(("1.3.6.1.4.1.12356.101.12.4.2.1.26.",
                                                                "1.3.6.1.4.1.12356.101.12.2.2.1.20."))]
    assert device.fields["vpn_tunnels_total"] == len(statuses) > 0
    assert device.fields["vpn_tunnels_up"] == statuses.count(2)


def test_switch_cpu_and_memory_from_vendor_mibs(snmpsim: SnmpsimServer, shared_dir: Path) -> None:
    hp = recorded(shared_dir, "procurve_e2910")
    device, _, _ = by_kind(poll_snmpsim(snmpsim, "procurve_e2910"))
    assert device.fields["cpu_pct"] == hp["1.3.6.1.4.1.11.2.14.11.5.1.9.6.1.0"]
    total, alloc = hp["1.3.6.1.4.1.11.2.14.11.5.1.1.2.1.1.1.5.1"], hp["1.3.6.1.4.1.11.2.14.11.5.1.1.2.1.1.1.7.1"]
    assert device.fields["mem_used_pct"] == pytest.approx(alloc / total * 100)

    cisco = recorded(shared_dir, "ios_2960x")
    device, interfaces, hardware = by_kind(poll_snmpsim(snmpsim, "ios_2960x"))
    cpus = [v for oid, v in cisco.items() if oid.startswith("1.3.6.1.4.1.9.9.109.1.1.1.1.8.")]
    assert device.fields["cpu_pct"] == pytest.approx(sum(cpus) / len(cpus))
    assert 0 < device.fields["mem_used_pct"] < 100
    assert device.fields["firmware"] == "15.0(2a)EX5"  # no vendor scalar: the chassis software revision
    assert hardware[0].fields["serials"] == "FCW1929B68S,FCW1931A06Z,FCW1929B6BP"  # the 3-switch stack


def test_unreachable_device_is_a_point_with_reason(snmpsim: SnmpsimServer) -> None:
    session = SnmpSession(snmpsim.host, snmpsim.port, SnmpAuth("2c", community="no-such-recording"),
                          timeout_s=0.5, retries=0, device="fw-radhus")
    points = asyncio.run(DevicePoller("fw-radhus", "radhus", session).poll(now_ns=1_700_000_000_000_000_000))
    device, interfaces, hardware = by_kind(points)
    assert device.fields["up"] == 0.0 and not interfaces and not hardware
    assert "fw-radhus" in device.fields["reason"] and "timeout" in device.fields["reason"]
    assert device.time_ns == 1_700_000_000_000_000_000


# ---------------------------------------------------------------- real snmpd


def test_wrong_community_on_snmpd_gives_up_0(snmpd: SnmpdServer) -> None:
    session = SnmpSession(snmpd.host, snmpd.port, SnmpAuth("2c", community="not-" + snmpd.community),
                          timeout_s=0.5, retries=0, device="sw-core")
    device, _, _ = by_kind(asyncio.run(DevicePoller("sw-core", "radhus", session).poll()))
    assert device.fields["up"] == 0.0 and device.fields["reason"].startswith("sw-core: SNMP ")


def test_real_rates_on_loopback(snmpd: SnmpdServer) -> None:
    """Two polls of snmpd with UDP traffic over lo between them: lo's in_bps must be > 0."""
    user = next(u for u in snmpd.v3_users if u.priv_protocol == "AES" and u.auth_protocol == "SHA")
    auth = SnmpAuth("3", user=user.name, auth_protocol="SHA", auth_key=user.auth_key, priv_protocol="AES",
                    priv_key=user.priv_key)
    session = SnmpSession(snmpd.host, snmpd.port, auth, device="linux-host")

    async def scenario() -> tuple[list[Point], list[Point], int]:
        poller = DevicePoller("linux-host", "lab", session)
        first = await poller.poll()
        sent = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            rx.bind(("127.0.0.1", 0))
            rx.setblocking(False)
            for _ in range(1500):
                sent += tx.sendto(b"n" * 8000, rx.getsockname())
        # net-snmp caches interface counters for about 3 s: poll again once that has expired.
        await asyncio.sleep(3.5)
        return first, await poller.poll(), sent

    first, second, sent = asyncio.run(scenario())
    device, ifs1, _ = by_kind(first)
    assert device.fields["up"] == 1.0 and device.fields["profile"] == "generic"
    assert "lo" in ifs1 and "in_bps" not in ifs1["lo"].fields
    device2, ifs2, _ = by_kind(second)
    lo = ifs2["lo"].fields
    assert lo["in_bps"] > 0 and lo["out_bps"] > 0
    assert lo["in_bps"] * 4.5 / 8 >= sent * 0.5  # at least half the bytes we sent, over <= 4.5 s
    assert device2.fields["rebooted"] == 0.0
    assert 0 < device2.fields["mem_used_pct"] < 100  # HOST-RESOURCES hrStorageRam


# ---------------------------------------------------------------- rate math, fake clock


def test_counter_rate_rules() -> None:
    assert counter_rate(100, 700, 64, 60.0, None) == 10.0
    assert counter_rate(700, 100, 64, 60.0, 1e12) is None  # 64-bit backwards: reset
    assert counter_rate(2**32 - 600, 600, 32, 60.0, 1e6) == 20.0  # one 32-bit wrap, plausible
    assert counter_rate(4_000_000_000, 3_999_000_000, 32, 60.0, 12.5e6) is None  # would be 572 Mbit/s on 100M
    assert counter_rate(2**32 - 600, 600, 32, 60.0, None) is None  # speed unknown: cannot tell wrap from reset
    assert counter_rate(1, 2, 32, 0.0, None) is None


def test_sys_uptime_wrap_is_not_a_reboot() -> None:
    assert sys_uptime_rebooted(5_000_000, 1_000, 60) is True
    assert sys_uptime_rebooted(2**32 - 3000, 3000, 60) is False  # 497 days: TimeTicks wrapped
    assert sys_uptime_rebooted(2**32 - 3000, 900_000, 60) is True  # wrapped, but not where time says
    assert sys_uptime_rebooted(1_000, 7_000, 60) is False


def test_sanitize_name() -> None:
    assert sanitize_name("Slot: 0 Port: 1\tGigabit\n") == "Slot: 0 Port: 1 Gigabit"
    assert sanitize_name("x" * 300) == "x" * 128
    assert sanitize_name("trailing\\") == "trailing"


def _wan1_index(values: dict[str, Any], name: str) -> str:
    return next(oid[len(IF_NAME) + 1:] for oid, v in values.items() if oid.startswith(IF_NAME + ".") and v == name)


def test_rates_first_poll_wrap_reset_reboot(shared_dir: Path) -> None:
    values = recorded(shared_dir, "fortigate_60f")
    session = RecordedSession(values, device="fw-radhus")
    clock = FakeClock()
    poller = DevicePoller("fw-radhus", "radhus", session, clock=clock, interface_speed_bps={"internal1": 2_000_000})
    wan1 = _wan1_index(values, "wan1")
    internal1 = _wan1_index(values, "internal1")

    device, ifs, hardware = by_kind(asyncio.run(poller.poll()))
    assert "rebooted" not in device.fields
    assert set(ifs["wan1"].fields) >= {"oper_up", "admin_up", "speed_bps"}
    assert not any(k.endswith(("_bps", "_ps", "_pct")) and k != "speed_bps" for k in ifs["wan1"].fields)

    # 60 s later: wan1 received 7.5 MB (1 Mbit/s) and sent 15 MB; internal1 got 150 kB (20 kbit/s).
    clock.now += 60
    session.values[SYS_UPTIME] += 6000
    session.values[f"{IF_HC_IN}.{wan1}"] += 7_500_000
    session.values[f"{IF_HC_OUT}.{wan1}"] += 15_000_000
    session.values[f"{IF_HC_IN}.{internal1}"] += 150_000
    session.values[f"1.3.6.1.2.1.2.2.1.14.{wan1}"] += 120  # ifInErrors
    device, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields["rebooted"] == 0.0
    w = ifs["wan1"].fields
    assert w["in_bps"] == pytest.approx(1e6) and w["out_bps"] == pytest.approx(2e6)
    assert w["in_util_pct"] == pytest.approx(0.1) and w["speed_bps"] == 1e9  # ifHighSpeed 1000 Mbit/s
    assert w["in_errors_ps"] == pytest.approx(2.0) and w["out_errors_ps"] == 0.0
    i1 = ifs["internal1"].fields
    assert i1["speed_bps"] == 2e6 and i1["in_util_pct"] == pytest.approx(1.0)  # inventory override

    # A 64-bit counter that went backwards (cleared): no in rate this interval, out still there.
    clock.now += 60
    session.values[SYS_UPTIME] += 6000
    session.values[f"{IF_HC_IN}.{wan1}"] = 5
    session.values[f"{IF_HC_OUT}.{wan1}"] += 7_500_000
    _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert "in_bps" not in ifs["wan1"].fields and "in_util_pct" not in ifs["wan1"].fields
    assert ifs["wan1"].fields["out_bps"] == pytest.approx(1e6)

    # Reboot: sysUpTime back to 30 s; counters moved forward, but no interface gets a rate.
    clock.now += 60
    session.values[SYS_UPTIME] = 3000
    session.values[f"{IF_HC_IN}.{wan1}"] += 1000
    session.values[f"{IF_HC_OUT}.{wan1}"] += 1000
    device, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields["rebooted"] == 1.0
    assert not any("in_bps" in p.fields or "out_bps" in p.fields for p in ifs.values())

    # And the poll after the reboot has rates again.
    clock.now += 30
    session.values[SYS_UPTIME] += 3000
    session.values[f"{IF_HC_IN}.{wan1}"] += 3_750_000
    device, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields["rebooted"] == 0.0 and ifs["wan1"].fields["in_bps"] == pytest.approx(1e6)


def test_32bit_counters_wrap_once_when_plausible(shared_dir: Path) -> None:
    # The APC card has a complete ifTable with 32-bit counters and ifSpeed only.
    values = recorded(shared_dir, "apc_smt750x-nmc2")
    index = next(oid.rsplit(".", 1)[1] for oid, v in values.items() if oid.startswith(IF_DESCR + ".") and v == "vmac0")
    speed = values[f"1.3.6.1.2.1.2.2.1.5.{index}"]
    session = RecordedSession(values, device="ups-radhus")
    clock = FakeClock()
    poller = DevicePoller("ups-radhus", "radhus", session, clock=clock)
    session.values[f"{IF_IN_OCTETS}.{index}"] = 2**32 - 500
    asyncio.run(poller.poll())

    clock.now += 10
    session.values[SYS_UPTIME] += 1000
    session.values[f"{IF_IN_OCTETS}.{index}"] = 1500  # wrapped: 2000 octets in 10 s
    _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert ifs["vmac0"].fields["in_bps"] == pytest.approx(1600.0)
    assert ifs["vmac0"].fields["speed_bps"] == speed

    clock.now += 10
    session.values[SYS_UPTIME] += 1000
    session.values[f"{IF_IN_OCTETS}.{index}"] = 1000  # backwards by 500: a wrap would mean 3.4 Gbit/s
    _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert "in_bps" not in ifs["vmac0"].fields


def test_duplicate_descr_names_get_their_index(shared_dir: Path) -> None:
    values = recorded(shared_dir, "procurve_e2910")
    for oid in [o for o in values if o.startswith(IF_NAME + ".")]:
        del values[oid]  # an agent without ifName: names come from ifDescr, which repeats
    _, ifs, _ = by_kind(asyncio.run(DevicePoller("sw-core", "radhus", RecordedSession(values)).poll()))
    loopbacks = sorted(n for n in ifs if n.startswith("HP Switch software loopback interface"))
    assert len(loopbacks) == 8 and loopbacks[0] == "HP Switch software loopback interface#12461"
    assert "Trk1" in ifs and "24" in ifs


class SlowAnswers(RecordedSession):
    """A device on a slow link: each GET of the system group returns `latency_s` later on the fake clock."""

    def __init__(self, values: dict[str, Any], clock: FakeClock) -> None:
        super().__init__(values, device="sw-hansnes")
        self.clock = clock
        self.latency_s = 0.0

    async def get(self, oids: Sequence[str]) -> dict[str, Any]:
        if SYS_UPTIME in oids:
            self.clock.now += self.latency_s
        return await super().get(oids)


def test_slow_round_trip_takes_the_interval_from_sys_uptime(shared_dir: Path) -> None:
    values = recorded(shared_dir, "fortigate_60f")
    clock = FakeClock()
    session = SlowAnswers(values, clock)
    poller = DevicePoller("sw-hansnes", "hansnes", session, clock=clock)
    wan1 = _wan1_index(values, "wan1")
    asyncio.run(poller.poll())

    # 60 s on the device's clock, but the answer took 5 s on a congested radio link: our own
    # sample time says 65 s. 7.5 MB in the device's 60 s is 1 Mbit/s.
    clock.now += 60
    session.latency_s = 5.0
    session.values[SYS_UPTIME] += 6000
    session.values[f"{IF_HC_IN}.{wan1}"] += 7_500_000
    _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert ifs["wan1"].fields["in_bps"] == pytest.approx(1e6)

    # A sysUpTime that stands still (a recording, a stuck agent) is not believed: local 60 s.
    clock.now += 55
    session.values[f"{IF_HC_IN}.{wan1}"] += 7_500_000
    _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert ifs["wan1"].fields["in_bps"] == pytest.approx(1e6)

    # Fast answers at both ends of an interval: the local clock, whatever sysUpTime says (it
    # moves 30 s in 60 s here). The first fast poll still follows a slow one, so it is skipped.
    session.latency_s = 0.0
    for _ in range(2):
        clock.now += 60
        session.values[SYS_UPTIME] += 3000
        session.values[f"{IF_HC_IN}.{wan1}"] += 7_500_000
        _, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert ifs["wan1"].fields["in_bps"] == pytest.approx(1e6)


class OneBrokenOid(RecordedSession):
    """A device whose agent fails on one subtree (a crashing sub-agent), every time."""

    broken = "1.3.6.1.2.1.47.1.1.1.1.13"

    async def walk(self, prefix: str) -> list[tuple[str, Any]]:
        if prefix == self.broken:
            raise SnmpError(self.device, prefix, "error status genErr")
        return await super().walk(prefix)


def test_one_failing_oid_is_logged_once_and_the_rest_carries_on(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    session = OneBrokenOid(recorded(shared_dir, "fortigate_100e"), device="fw-100e")
    poller = DevicePoller("fw-100e", "radhus", session)
    with caplog.at_level(logging.WARNING, logger="collector.snmp.poller"):
        for _ in range(3):
            device, ifs, hardware = by_kind(asyncio.run(poller.poll()))
            assert device.fields["up"] == 1.0 and device.fields["sessions"] == 1380.0 and ifs
            assert "model" not in hardware[0].fields and hardware[0].fields["serial"] == "FG100E4Q17011652"
    warnings = [r for r in caplog.records if OneBrokenOid.broken in r.getMessage()]
    assert len(warnings) == 1 and "fw-100e" in warnings[0].getMessage()


def test_value_of_the_wrong_type_is_dropped_and_logged_once(shared_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    values = recorded(shared_dir, "fortigate_60f")
    wan1, wan2 = _wan1_index(values, "wan1"), _wan1_index(values, "wan2")
    session = RecordedSession(values, device="fw-radhus")
    session.values[f"{IF_HC_IN}.{wan1}"] = "12345"  # an OCTET STRING where a Counter64 belongs
    clock = FakeClock()
    poller = DevicePoller("fw-radhus", "radhus", session, clock=clock)
    with caplog.at_level(logging.WARNING, logger="collector.snmp.poller"):
        for _ in range(3):
            clock.now += 60
            session.values[SYS_UPTIME] += 6000
            session.values[f"{IF_HC_IN}.{wan2}"] += 750_000
            device, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields["up"] == 1.0
    assert "in_bps" not in ifs["wan1"].fields and ifs["wan1"].fields["out_bps"] == 0.0
    assert ifs["wan2"].fields["in_bps"] == pytest.approx(100_000.0)
    warnings = [r.getMessage() for r in caplog.records if f"{IF_HC_IN}.{wan1}" in r.getMessage()]
    assert len(warnings) == 1 and "fw-radhus" in warnings[0] and "should be counter64" in warnings[0]


def test_device_going_down_and_back(shared_dir: Path) -> None:
    session = RecordedSession(recorded(shared_dir, "fortigate_60f"), device="fw-radhus")
    poller = DevicePoller("fw-radhus", "radhus", session, clock=FakeClock())
    asyncio.run(poller.poll())
    session.down = True
    device, ifs, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields == {"up": 0.0, "reason": device.fields["reason"], "poll_ms": device.fields["poll_ms"]}
    assert "fw-radhus" in device.fields["reason"] and not ifs
    session.down = False
    device, _, _ = by_kind(asyncio.run(poller.poll()))
    assert device.fields["up"] == 1.0


def test_profile_override_and_unknown_profile(shared_dir: Path) -> None:
    session = RecordedSession(recorded(shared_dir, "fortigate_60f"))
    device, _, _ = by_kind(asyncio.run(DevicePoller("x", "y", session, profile_override="generic").poll()))
    assert device.fields["profile"] == "generic" and "sessions" not in device.fields
    with pytest.raises(ValueError, match="unknown SNMP profile"):
        DevicePoller("x", "y", session, profile_override="fortinet")


def test_a_table_that_times_out_mid_walk_makes_a_partial_poll_and_is_skipped_a_while(
    shared_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real agents sometimes stop answering in the middle of one table. snmpsim does the same for a
    row whose OID is malformed: no answer to any GETBULK that would include it. The device is up,
    the poll is marked partial and names the table, the log says what happened, and the next poll
    skips the table instead of waiting out its timeout again."""
    lines = (shared_dir / "snmprec" / "procurve_e2910.snmprec").read_text(encoding="utf-8").splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("1.3.6.1.2.1.47.1.1.1.1.11."))
    lines.insert(at + 1, lines[at].split("|", 1)[0] + ".xx|4|a row no agent can encode")
    data = tmp_path / "data"
    data.mkdir()
    (data / "dev.snmprec").write_text("\n".join(lines) + "\n", encoding="utf-8")
    server = start_snmpsim(data, tmp_path / "snmpsim")
    try:
        session = SnmpSession(server.host, server.port, SnmpAuth("2c", community="dev"), timeout_s=1.0, retries=0, device="sw-hansnes")
        poller = DevicePoller("sw-hansnes", "hansnes", session)

        async def two_polls() -> tuple[list[Point], list[Point]]:
            return await poller.poll(), await poller.poll()

        with caplog.at_level(logging.WARNING, logger="nettvakt.snmp"):
            first, second = asyncio.run(two_polls())
    finally:
        server.stop()
    device1, device2 = first[0], second[0]
    for device in (device1, device2):
        assert device.fields["up"] == 1.0 and device.fields["partial"] == 1.0
        # The bad row's own table; a GETBULK of the table before it runs into the row too.
        assert "entPhysicalSerialNum" in device.fields["partial_tables"].split(", "), device.fields
        assert "ifDescr" not in device.fields["partial_tables"]
        assert point_problems(device.measurement, device.tags, device.fields, "collector") == []
    assert any(p.measurement == "interface" for p in first)  # the other tables all came
    # The first poll waited out the timeout; the second skipped the table (a ratio, not a time limit).
    assert device1.fields["poll_ms"] >= 1000 and device2.fields["poll_ms"] < device1.fields["poll_ms"] / 2, (device1.fields, device2.fields)
    warnings = [r.getMessage() for r in caplog.records if "entPhysicalSerialNum table" in r.getMessage()]
    assert len(warnings) == 1 and "timed out mid-walk while the device answered the rest" in warnings[0], warnings
