"""DevicePoller: real recordings over snmpsim, real snmpd on loopback, and the rate math with a fake clock."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest

from agent.points import Point
from collector.services import SnmpdServer, SnmpsimServer
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


@pytest.mark.parametrize(
    ("community", "profile"),
    [("fortigate_60f", "fortigate"), ("fortigate_100e", "fortigate"), ("procurve_e2910", "procurve"), ("ios_2960x", "cisco")],
)
def test_recorded_device_profile_and_interfaces_match_net_snmp(
    snmpsim: SnmpsimServer, shared_dir: Path, tmp_path: Path, community: str, profile: str
) -> None:
    points = poll_snmpsim(snmpsim, community)
    device, interfaces, hardware = by_kind(points)
    assert device.fields["up"] == 1.0 and device.fields["profile"] == profile
    assert device.tags == {"device": community, "site": "lab"}
    uptime_ticks = recorded(shared_dir, community)[SYS_UPTIME]
    assert device.fields["uptime_s"] == pytest.approx(uptime_ticks / 100)

    # Interface names are exactly what net-snmp's snmpbulkwalk of ifName returns (all unique here).
    names = net_snmp_walk(
        ["snmpbulkwalk", "-v2c", "-c", community, f"{snmpsim.host}:{snmpsim.port}", IF_NAME], net_snmp_env(tmp_path)
    )
    assert sorted(interfaces) == sorted(names.values())
    assert all("in_bps" not in p.fields for p in interfaces.values())  # first poll: state only
    assert all(p.tags["device"] == community for p in interfaces.values())

    # ENTITY chassis from the recording: the class-3 row, or row 1 where FortiOS 7 has no class.
    rec = recorded(shared_dir, community)
    chassis = sorted(
        (int(oid.rsplit(".", 1)[1]) for oid, v in rec.items() if oid.startswith("1.3.6.1.2.1.47.1.1.1.1.5.") and v == 3)
    ) or [1]
    assert len(hardware) == 1 and hardware[0].tags["kind"] == "network"
    assert hardware[0].fields["serial"] == rec[f"1.3.6.1.2.1.47.1.1.1.1.11.{chassis[0]}"]
    assert hardware[0].fields["model"] == rec[f"1.3.6.1.2.1.47.1.1.1.1.13.{chassis[0]}"]


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
