"""`diagnose` over a window longer than two days reads 5-minute rollups on a real influxd: a device
reboot and a power cut made in the data are still found with the same verdict kind; a single CPU
spike, a verdict on raw points, is not one on 5-minute means. What differs (docs/storage.md, "The
reports and diagnose"): thresholds are met by a bucket's mean, the restart and battery fields are
the bucket's max or min, and traceroute hops are not rolled up.

The points are the unit tests' scenarios (tests/test_diagnose.py), written through the collector's
sink, rolled up by collector/retention.py's set-up and backfill as the collector does.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from agent.points import Point
from collector.config import StorageSettings, parse_inventory
from collector.diagnose import diagnose, load_site_data, site_context
from collector.diagnose.render import render_json
from collector.localservers import InfluxdServer
from collector.retention import backfill
from collector.timeseries import InfluxSource
from test_diagnose import S, T0, MemorySource, clean_network, device_polls, host_samples, inventory_dict, kinds, ups_inventory, ups_polls
from test_reports_hardware import write_through_collector_sink
from test_reports_rollups import LONG, create, set_up_rollups

DAY = 86400 * S
# Three days ending an hour after the scenario: long enough that the store names the 5-minute rollup.
START, END = T0 - 3 * DAY + 3600 * S, T0 + 3600 * S


def write(server: InfluxdServer, database: str, src: MemorySource, tmp: Path) -> None:
    inventory = parse_inventory({"storage": {"kind": "influxdb_v1", "url": server.url, "database": database}})
    create(server, database)
    admin, result = set_up_rollups(server, database, tmp, LONG)
    points = [Point(m, s.tags, s.fields, s.time_ns) for m, samples in src.points.items() for s in samples]

    asyncio.run(write_through_collector_sink(inventory, points))
    backfill(admin, result.plan, START, time.time_ns())


def both(server: InfluxdServer, database: str, inventory: dict) -> tuple:
    """(raw diagnosis, rollup diagnosis) of site skole over the long window."""
    inv = parse_inventory(inventory)
    ctx = site_context(inv, "skole")
    raw = InfluxSource(server.url, database)  # knows no rollups: raw at every range
    rolled = InfluxSource(server.url, database, retention=StorageSettings(kind="influxdb_v1", url=server.url, database=database))
    return (diagnose(ctx, load_site_data(raw, ctx, START, END)), diagnose(ctx, load_site_data(rolled, ctx, START, END)))


def test_a_reboot_is_found_from_the_rollup_and_a_single_cpu_spike_is_not(influxd: InfluxdServer, tmp_path: Path) -> None:
    src = MemorySource()
    clean_network(src)
    device_polls(src, 20, lambda i: 20.0, down=range(8, 10), restart_at=10)
    for i in range(21, 30):
        src.add("probe", T0 + i * 10 * S + 1, {"site": "skole", "host": "pc1", "kind": "icmp", "target": "internett"},
                {"up": 0.0, "sent": 10.0, "received": 0.0})
    host_samples(src, 18, lambda i: 99.0 if i in (5, 6) else 10.0)  # two readings of 10 s at 99 %: a spike
    write(server := influxd, "diagnose_reboot", src, tmp_path)
    raw, rolled = both(server, "diagnose_reboot", inventory_dict())
    assert (raw.resolution, rolled.resolution) == ("raw", "5m")
    assert json.loads(render_json(rolled, "en"))["resolution"] == "5m"
    assert "device_rebooted" in kinds(raw) and "device_rebooted" in kinds(rolled)
    (reboot,) = [v for v in rolled.verdicts if v.kind == "device_rebooted"]
    assert reboot.subject == "fw" and reboot.evidence["reboots"] == 1 and reboot.evidence["last_uptime_s"] == 12.0  # uptime: the bucket's min
    # The spike: 2 of 18 readings at 99 % is a verdict on raw points; a 5-minute mean of 19 % is none.
    assert "host_saturated" in kinds(raw) and "host_saturated" not in kinds(rolled)


def test_a_power_cut_is_found_from_the_rollup(influxd: InfluxdServer, tmp_path: Path) -> None:
    src = MemorySource()
    clean_network(src, n=18)
    host_samples(src, 18, lambda i: 10.0)
    ups_polls(src, [(0.0, 24.0, 0.0), (1.0, 21.0, 40.0), (1.0, 16.0, 100.0), (1.0, 11.0, 160.0)] + [(0.0, None, 0.0)] * 6)
    write(server := influxd, "diagnose_power", src, tmp_path)
    raw, rolled = both(server, "diagnose_power", ups_inventory())
    assert raw.verdicts[0].kind == rolled.verdicts[0].kind == "power_cut"
    assert rolled.verdicts[0].evidence["site_quiet"] is True and rolled.verdicts[0].evidence["agents_silent"] == 1


# A saturated afternoon: the uplink's line (wan1, 10 Mbit/s) full for 45 minutes of a 2.5-hour
# stretch, and the latency beyond the gateway of a full queue meanwhile.
BUSY_FROM_S, BUSY_TO_S, SCENARIO_S = 60 * 60, 105 * 60, 150 * 60


def saturated_afternoon() -> MemorySource:
    """icmp rounds every 10 s to the gateway (2 ms all along) and the internet (12 ms, 380 ms while
    the line is full); wan1 and the firewall polled every 30 s, wan1's rate describing the 30 s before."""
    src = MemorySource()
    for i in range(SCENARIO_S // 10):
        t = T0 + i * 10 * S
        busy = BUSY_FROM_S <= i * 10 < BUSY_TO_S
        for target, rtt in (("gw", 2.0), ("internett", 380.0 if busy else 12.0)):
            src.add("probe", t, {"site": "skole", "host": "pc1", "kind": "icmp", "target": target},
                    {"up": 1.0, "rtt_ms": rtt, "sent": 10.0, "received": 10.0, "loss_pct": 0.0})
    for i in range(SCENARIO_S // 30):
        t = T0 + (i + 1) * 30 * S
        busy = BUSY_FROM_S < (i + 1) * 30 <= BUSY_TO_S
        src.add("interface", t, {"site": "skole", "device": "fw", "ifname": "wan1"},
                {"in_util_pct": 97.5 if busy else 10.0 + i % 20, "out_util_pct": 3.0, "speed_bps": 10e6})
        src.add("device", t, {"site": "skole", "device": "fw"}, {"up": 1.0, "cpu_pct": 35.0 if busy else 4.0, "rebooted": 0.0})
    return src


def test_a_saturated_uplink_is_found_from_the_rollup_as_from_raw_points(influxd: InfluxdServer, tmp_path: Path) -> None:
    src = saturated_afternoon()
    write(server := influxd, "diagnose_uplink", src, tmp_path)
    ctx = site_context(parse_inventory(inventory_dict()), "skole")
    # Raw points over the scenario itself (as someone asks the day it happened), the 5-minute rollup
    # over three days ending after it (as someone asks a few days later).
    raw = diagnose(ctx, load_site_data(InfluxSource(server.url, database := "diagnose_uplink"), ctx, T0, T0 + SCENARIO_S * S))
    long_end = T0 + SCENARIO_S * S + 3600 * S
    rolled_source = InfluxSource(server.url, database, retention=StorageSettings(kind="influxdb_v1", url=server.url, database=database))
    rolled = diagnose(ctx, load_site_data(rolled_source, ctx, long_end - 3 * DAY, long_end))
    assert (raw.resolution, rolled.resolution) == ("raw", "5m")
    top_raw, top_rolled = raw.verdicts[0], rolled.verdicts[0]
    assert (top_raw.kind, top_raw.subject) == (top_rolled.kind, top_rolled.subject) == ("uplink_saturated", "fw/wan1"), (raw.verdicts, rolled.verdicts)
    e_raw, e_rolled = top_raw.evidence, top_rolled.evidence
    assert e_raw["peak_util_pct"] == e_rolled["peak_util_pct"] == 97.5  # buckets wholly inside the busy stretch
    assert e_rolled["correlation"] >= 0.9 and e_raw["correlation"] >= 0.9
    # Latency under load against quiet, each the mean over the two paths of their medians: exact on
    # raw points, and on 5-minute means wherever a bucket is wholly busy or wholly quiet.
    assert e_raw["rtt_busy_ms"] == e_rolled["rtt_busy_ms"] == 191.0 and e_raw["rtt_quiet_ms"] == e_rolled["rtt_quiet_ms"] == 7.0
    assert e_rolled["bucket_s"] == 3 * DAY / S / 288 and top_rolled.confidence > 0.9
    # The busy time, to the rollup's grid: the busy 45 minutes within a bucket (15 min) at each end.
    ((busy_start, busy_end),) = top_rolled.ranges
    assert abs(busy_start - (T0 + BUSY_FROM_S * S)) <= 900 * S and abs(busy_end - (T0 + BUSY_TO_S * S)) <= 900 * S, top_rolled.ranges
