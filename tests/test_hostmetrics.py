"""Host metrics: the real psutil readings of this machine, and the host_net rate logic on
recorded-shaped per-NIC counters (psutil.net_io_counters(pernic=True)), including a reset."""

from __future__ import annotations

import time
from collections import namedtuple
from collections.abc import Iterator, Mapping
from typing import Any

import psutil

from agent.hostmetrics import HostMetrics, tag_value
from agent.points import Point

TAGS = {"site": "radhus", "host": "plo-pc"}

# The shape psutil returns per NIC (psutil._common.snetio).
snetio = namedtuple("snetio", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")


def by_measurement(points: list[Point], measurement: str) -> list[Point]:
    return [p for p in points if p.measurement == measurement]


def test_collect_on_this_machine() -> None:
    metrics = HostMetrics(TAGS)
    listed = set(psutil.net_io_counters(pernic=True))
    t_ns = time.time_ns()
    first = metrics.collect(t_ns)
    for point in first:
        point.validate()
        assert point.time_ns == t_ns
    [host] = by_measurement(first, "host")
    f = host.fields
    assert host.tags == TAGS
    assert 0.0 <= f["cpu_pct"] <= 100.0
    assert 0.0 < f["mem_used_pct"] < 100.0
    assert 0 < f["mem_available_bytes"] <= f["mem_total_bytes"] == float(psutil.virtual_memory().total)
    assert 0.0 <= f["swap_used_pct"] <= 100.0
    assert f["load1"] >= 0 and f["load5"] >= 0 and f["load15"] >= 0
    assert abs(f["boot_time_s"] + f["uptime_s"] - time.time()) < 5
    assert f["procs"] >= 1
    assert all(isinstance(v, float) for v in f.values())

    disks = by_measurement(first, "host_disk")
    mounts = {p.tags["mount"] for p in disks}
    assert "/" in mounts and len(mounts) == len(disks)  # one point per mount, no duplicates
    for disk in disks:
        d = disk.fields
        assert 0.0 <= d["used_pct"] <= 100.0
        assert d["used_bytes"] + d["free_bytes"] <= d["total_bytes"] * 1.0001
    assert not any(p.tags["mount"].startswith(("/proc", "/sys", "/dev/shm")) for p in disks)

    assert by_measurement(first, "host_net") == []  # nothing to diff yet
    time.sleep(0.05)
    before = set(psutil.net_io_counters(pernic=True))
    second = metrics.collect()
    after = set(psutil.net_io_counters(pernic=True))
    nets = by_measurement(second, "host_net")
    nics = {p.tags["nic"] for p in nets}
    assert "lo" not in nics and nics <= before | after  # (the lab may add or remove veths meanwhile)
    assert (listed & before & after) - {"lo"} <= nics  # every NIC present throughout has its rates
    for point in nets:
        point.validate()
        assert all(v >= 0 for v in point.fields.values())


class Recording:
    """Replays per-NIC counters sample by sample, with the monotonic time of each sample."""

    def __init__(self, samples: list[tuple[float, Mapping[str, Any]]]):
        self._samples: Iterator[tuple[float, Mapping[str, Any]]] = iter(samples)
        self.now = 0.0

    def counters(self) -> Mapping[str, Any]:
        self.now, counters = next(self._samples)
        return counters

    def clock(self) -> float:
        return self.now


def test_net_rates_from_recorded_counters_with_a_reset() -> None:
    # Shaped after a Windows PC's Ethernet adapter and Wi-Fi (large uptime counters), 30 s apart.
    eth_0 = snetio(48_213_905_220, 912_447_118_502, 61_237_912, 702_118_443, 0, 0, 12, 0)
    eth_1 = snetio(48_213_905_220 + 3_750_000, 912_447_118_502 + 37_500_000, 61_240_000, 702_150_000, 3, 0, 15, 0)
    # The adapter was re-created (driver update): counters start again near zero.
    eth_2 = snetio(120_000, 2_400_000, 300, 2_100, 0, 0, 0, 0)
    eth_3 = snetio(120_000 + 1_500_000, 2_400_000 + 15_000_000, 1_400, 14_000, 0, 0, 0, 0)
    wifi = [snetio(7_000_000 + i * 300_000, 90_000_000 + i * 600_000, 0, 0, 0, 0, 0, 0) for i in range(4)]
    lo = [snetio(i * 10**9, i * 10**9, 0, 0, 0, 0, 0, 0) for i in range(4)]
    recording = Recording(
        [
            (1000.0, {"Ethernet": eth_0, "Wi-Fi": wifi[0], "lo": lo[0]}),
            (1030.0, {"Ethernet": eth_1, "Wi-Fi": wifi[1], "lo": lo[1]}),
            (1060.0, {"Ethernet": eth_2, "Wi-Fi": wifi[2], "lo": lo[2], "vEthernet (WSL)": snetio(5, 5, 0, 0, 0, 0, 0, 0)}),
            (1090.0, {"Ethernet": eth_3, "Wi-Fi": wifi[3], "lo": lo[3], "vEthernet (WSL)": snetio(65, 5, 0, 0, 0, 0, 0, 0)}),
        ]
    )
    metrics = HostMetrics(TAGS, net_counters=recording.counters, clock=recording.clock)

    def rates(t: int) -> dict[str, dict[str, Any]]:
        points = metrics.net_points(t)
        for p in points:
            p.validate()
            assert p.measurement == "host_net" and p.time_ns == t
        return {p.tags["nic"]: dict(p.fields) for p in points}

    assert rates(1) == {}  # first sample: nothing to diff
    assert rates(2) == {
        "Ethernet": {
            "in_bps": 37_500_000 * 8 / 30, "out_bps": 3_750_000 * 8 / 30,
            "in_errors_ps": 0.1, "out_errors_ps": 0.0, "in_drops_ps": 0.1, "out_drops_ps": 0.0,
        },
        "Wi-Fi": {"in_bps": 160_000.0, "out_bps": 80_000.0, "in_errors_ps": 0.0, "out_errors_ps": 0.0, "in_drops_ps": 0.0, "out_drops_ps": 0.0},
    }
    # The reset interval gives no Ethernet point (not a negative or huge rate); the new NIC has no rate yet.
    assert set(rates(3)) == {"Wi-Fi"}
    third = rates(4)
    assert set(third) == {"Ethernet", "Wi-Fi", "vEthernet (WSL)"}
    assert third["Ethernet"]["in_bps"] == 4_000_000.0 and third["Ethernet"]["out_bps"] == 400_000.0
    assert third["vEthernet (WSL)"]["out_bps"] == 16.0


def test_one_counter_going_back_drops_the_interval_and_a_stalled_clock_gives_nothing() -> None:
    a = snetio(1000, 1000, 0, 0, 5, 0, 0, 0)
    b = snetio(2000, 2000, 0, 0, 4, 0, 0, 0)  # bytes went up but errin went back: counters not comparable
    c = snetio(3000, 3000, 0, 0, 4, 0, 0, 0)
    recording = Recording([(10.0, {"eth0": a}), (20.0, {"eth0": b}), (20.0, {"eth0": c}), (30.0, {"eth0": c})])
    metrics = HostMetrics(TAGS, net_counters=recording.counters, clock=recording.clock)
    assert metrics.net_points(1) == []
    assert metrics.net_points(2) == []
    assert metrics.net_points(3) == []  # no time passed: no division by zero, no point
    [point] = metrics.net_points(4)
    assert point.fields["in_bps"] == 0.0


def test_tag_values_fit_the_point_contract() -> None:
    assert tag_value("C:\\") == "C:"  # a tag may not end with a backslash in line protocol
    assert tag_value("/mnt/usb\tdisk") == "/mnt/usb?disk"
    assert len(tag_value("/" + "x" * 300)) == 128
