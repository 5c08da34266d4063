"""Counters that grow, wrap and reset, and a device that reboots, served live by snmpsim.

The recordings are written here with snmpsim's `numeric` variation module, whose value is
`initial + rate * (seconds since snmpsim started)`, taken modulo `max` with `wrap=1`, or any
`math` function of that time (`function=fmod%<time>%X` restarts the count every X/rate s).
The poller runs against them on the real clock for a few seconds, so every wrap, reset and
reboot below happens at least once inside the window, wherever the phase falls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from agent.points import Point
from collector.localservers import SnmpsimServer, start_snmpsim
from collector.snmp.poller import DevicePoller
from collector.snmp.session import SnmpAuth, SnmpSession, oid_tuple

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

POLLS = 6  # 5 intervals of a bit over POLL_GAP_S: a window of more than 5 s
POLL_GAP_S = 1.0
# Our sample time and the moment snmpsim computes a counter differ by a few ms, more on a
# busy machine; a rate is checked to be the configured one within this share. A wrap taken
# for a reset gives no rate, one taken wrongly gives 2**32 too much: both far outside.
RATE_TOLERANCE = 0.5

WRAP_RATE = 2**30  # octets/s: a 32-bit counter wraps every 4 s, at least once in the window
STEADY_RATE = 1_000_000  # octets/s
RESET_EVERY_S = 2.5  # counters (and, in the reboot recording, sysUpTime) restart this often

IF_DESCR, IF_OPER, IF_ADMIN = "1.3.6.1.2.1.2.2.1.2", "1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.2.2.1.7"
IF_IN, IF_OUT = "1.3.6.1.2.1.2.2.1.10", "1.3.6.1.2.1.2.2.1.16"
IF_NAME, IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.1", "1.3.6.1.2.1.31.1.1.1.15"
IF_HC_IN, IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10"

STEADY32 = f"65:numeric|rate={STEADY_RATE},initial=1000"
STEADY64 = f"70:numeric|rate={STEADY_RATE},initial={2**40}"
RESET32 = f"65:numeric|function=fmod%<time>%{STEADY_RATE * RESET_EVERY_S:.0f},rate={STEADY_RATE}"
RESET64 = f"70:numeric|function=fmod%<time>%{STEADY_RATE * RESET_EVERY_S:.0f},rate={STEADY_RATE}"

# ifIndex -> (name, ifHighSpeed Mbit/s, {column: snmprec type|value}).
COUNTER_INTERFACES: dict[int, tuple[str, int, dict[str, str]]] = {
    # 8.6 Gbit/s through a 32-bit counter on a 40G port: wraps are plausible and must be counted.
    1: ("wrap32", 40_000, {IF_IN: f"65:numeric|max=4294967295,rate={WRAP_RATE},initial=4000000000,wrap=1",
                           IF_OUT: STEADY32}),
    2: ("hc64", 1000, {IF_HC_IN: STEADY64, IF_HC_OUT: STEADY64}),
    # Cleared counters on a 1G port: read as a 32-bit wrap they would be 34 Gbit/s, so no rate.
    3: ("reset32", 1000, {IF_IN: RESET32, IF_OUT: STEADY32}),
    4: ("reset64", 1000, {IF_HC_IN: RESET64, IF_HC_OUT: STEADY64}),
}
# The device restarts every RESET_EVERY_S: sysUpTime and the in counter start again together,
# the out counter carries on (some agents keep hardware counters over a restart).
REBOOT_INTERFACES: dict[int, tuple[str, int, dict[str, str]]] = {
    1: ("port1", 1000, {IF_HC_IN: RESET64, IF_HC_OUT: STEADY64}),
}


def _snmprec(uptime: str, interfaces: dict[int, tuple[str, int, dict[str, str]]]) -> str:
    records = {
        "1.3.6.1.2.1.1.1.0": "4|nettvakt counter test agent",
        "1.3.6.1.2.1.1.2.0": "6|1.3.6.1.4.1.8072.3.2.10",  # net-snmp Linux: the generic profile
        "1.3.6.1.2.1.1.3.0": uptime,
        "1.3.6.1.2.1.1.5.0": "4|counters",
    }
    for index, (name, mbit, counters) in interfaces.items():
        records.update({
            f"{IF_DESCR}.{index}": f"4|{name}", f"{IF_OPER}.{index}": "2|1", f"{IF_ADMIN}.{index}": "2|1",
            f"{IF_NAME}.{index}": f"4|{name}", f"{IF_HIGH_SPEED}.{index}": f"66|{mbit}",
        })
        records.update({f"{column}.{index}": value for column, value in counters.items()})
    # snmpsim answers GETNEXT/GETBULK from the file order: it must be in OID order.
    return "".join(f"{oid}|{records[oid]}\n" for oid in sorted(records, key=oid_tuple))


@pytest.fixture(scope="module")
def variating_snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimServer]:
    data = tmp_path_factory.mktemp("snmprec-variation")
    (data / "counters.snmprec").write_text(_snmprec("67:numeric|rate=100,initial=100000", COUNTER_INTERFACES))
    reboot_uptime = f"67:numeric|function=fmod%<time>%{RESET_EVERY_S * 100:.0f},rate=100"
    (data / "reboots.snmprec").write_text(_snmprec(reboot_uptime, REBOOT_INTERFACES))
    server = start_snmpsim(data, tmp_path_factory.mktemp("snmpsim-variation"))
    try:
        yield server
    finally:
        server.stop()


Series = list[tuple[Point, dict[str, Point]]]


async def _poll_series(server: SnmpsimServer, community: str) -> Series:
    """POLLS polls POLL_GAP_S apart on the real clock: [(device point, {ifname: interface point})]."""
    session = SnmpSession(server.host, server.port, SnmpAuth("2c", community=community), device=community)
    poller = DevicePoller(community, "lab", session)
    result = []
    for i in range(POLLS):
        if i:
            await asyncio.sleep(POLL_GAP_S)
        points = await poller.poll()
        for point in points:
            point.validate()
        device = next(p for p in points if p.measurement == "device")
        assert device.fields["up"] == 1.0, device.fields
        result.append((device, {p.tags["ifname"]: p for p in points if p.measurement == "interface"}))
    return result


@pytest.fixture(scope="module")
def series(variating_snmpsim: SnmpsimServer) -> dict[str, Series]:
    """Both recordings polled side by side, so the real-clock wait is paid once."""

    async def both() -> list[Series]:
        return list(await asyncio.gather(*(_poll_series(variating_snmpsim, c) for c in ("counters", "reboots"))))

    counters, reboots = asyncio.run(both())
    return {"counters": counters, "reboots": reboots}


def assert_sane(interfaces: dict[str, Point]) -> None:
    """No rate is negative, and none is above what the port can carry."""
    for name, point in interfaces.items():
        speed = point.fields["speed_bps"]
        for key, value in point.fields.items():
            if key.endswith(("_bps", "_ps", "_pct")) and key != "speed_bps":
                assert value >= 0, (name, key, value)
            if key in ("in_bps", "out_bps"):
                assert value <= speed * 1.05, (name, key, value)


def assert_rate(value: float, octets_per_s: float) -> None:
    assert value == pytest.approx(octets_per_s * 8, rel=RATE_TOLERANCE)


def test_wraps_and_resets_give_right_rates_or_none(series: dict[str, Series]) -> None:
    polls = series["counters"]
    assert all("in_bps" not in p.fields for p in polls[0][1].values())  # first poll: no rates yet
    seen: dict[str, list[float | None]] = {name: [] for name, _, _ in COUNTER_INTERFACES.values()}
    for device, interfaces in polls[1:]:
        assert device.fields["rebooted"] == 0.0
        assert_sane(interfaces)
        for name in seen:
            seen[name].append(interfaces[name].fields.get("in_bps"))
        # The out counters of every port just grow: a rate every interval.
        for name in ("wrap32", "hc64", "reset32", "reset64"):
            assert_rate(interfaces[name].fields["out_bps"], STEADY_RATE)

    # wrap32 passed 2**32 at least once in the window (WRAP_RATE * 5 s > 2**32 octets), and
    # every interval, wrapped or not, has the right rate.
    assert len(seen["wrap32"]) == POLLS - 1
    for value in seen["wrap32"]:
        assert value is not None
        assert_rate(value, WRAP_RATE)
    for value in seen["hc64"]:
        assert value is not None
        assert_rate(value, STEADY_RATE)
    # The cleared counters: no rate for the interval of a reset (one every 2.5 s, so at least
    # one in the window), the right rate for the others.
    for name in ("reset32", "reset64"):
        assert None in seen[name], (name, seen[name])
        rates = [v for v in seen[name] if v is not None]
        assert rates, (name, seen[name])
        for value in rates:
            assert_rate(value, STEADY_RATE)


def test_reboot_gives_no_rate_for_that_interval(series: dict[str, Series]) -> None:
    polls = series["reboots"]
    rebooted = [device.fields["rebooted"] for device, _ in polls[1:]]
    assert 1.0 in rebooted and 0.0 in rebooted, rebooted  # a restart every 2.5 s, polls every 1 s
    for device, interfaces in polls[1:]:
        assert_sane(interfaces)
        port = interfaces["port1"].fields
        if device.fields["rebooted"] == 1.0:
            # Even the out counter, which carried on, gives no rate: after a restart no counter is trusted.
            assert "in_bps" not in port and "out_bps" not in port, port
            continue
        assert_rate(port["out_bps"], STEADY_RATE)
        if "in_bps" in port:  # absent when the restart fell between reading sysUpTime and the counter
            assert_rate(port["in_bps"], STEADY_RATE)
    assert any("in_bps" in i["port1"].fields for d, i in polls[1:] if d.fields["rebooted"] == 0.0)
