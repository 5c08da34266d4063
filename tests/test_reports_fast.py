"""What InfluxDB folds for the long-range reports equals what the reports fold from the points.

`report servers`, `availability` and `capacity` ask InfluxDB for aggregates (issue 19: each under
5 s on a year of a large estate) where they used to read every row; any other store still gives
its points. Here, on a real influxd, each InfluxQL path is held to the point-by-point path on the
same data, read through `SamplesOnly` (the same source seen only through `samples`, as a store
without InfluxQL is): the same numbers within float rounding (`EXACT`, sums added in another
order), the same judged buckets, the same line.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agent.points import Point
from collector.config import load_inventory
from collector.diagnose.analysis import is_round, path_rtt_ms
from collector.diagnose.data import site_context
from collector.influxql import write_lines
from collector.lineprotocol import encode_points
from collector.localservers import InfluxdServer
from collector.reports.availability import fold_in_influx, fold_rows
from collector.reports.capacity import (
    HOUR_NS, ROUND_TRIP_KINDS, build_capacity_report, busiest_line, hourly_round_trip_ms, read_capacity, read_site_line, report_months,
)
from collector.reports.servers import read_use, use_from_points
from collector.retention import backfill
from collector.timeseries import InfluxSource, Sample
from inventories import InventoryBuilder
from test_reports_capacity import OSLO, write_year, year_inventory
from test_reports_rollups import EXACT, LONG, rollup_source, set_up_rollups

NS = 1_000_000_000
HOUR = 3600
DAY = 86400


class SamplesOnly:
    """A source seen through `resolution_for` and `samples` only: the reports' point-by-point path."""

    def __init__(self, source: InfluxSource):
        self.source = source

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        return self.source.resolution_for(start_ns, end_ns, now_ns)

    def samples(self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = "raw") -> list[Sample]:
        return self.source.samples(measurement, start_ns, end_ns, tags, resolution)


def write(server: InfluxdServer, database: str, policy: str, points: list[Point]) -> None:
    write_lines(server.url, database, policy, encode_points(points), timeout_s=60)


def close(got: float | None, want: float | None) -> bool:
    return (got is None) == (want is None) and (got is None or math.isclose(got, want, rel_tol=EXACT, abs_tol=EXACT))  # type: ignore[arg-type]


def same(got: Any, want: Any, where: str = "") -> None:
    """Equal JSON, numbers within EXACT (InfluxDB adds in another order)."""
    if isinstance(want, float) or isinstance(got, float):
        assert close(got, want), (where, got, want)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(want), where
        for k in want:
            same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{where}[{i}]")
    else:
        assert got == want, (where, got, want)


# --- availability ---------------------------------------------------------------------------------
def availability_rows(start_s: int, days: int) -> list[Point]:
    """Hourly rollup rows (what the continuous queries write into nettvakt_1h) of series with every
    kind of gap the fold must see: none; the collector stopped for five hours; a target's probes
    stopped (its last row holds judged time but no verdict); a series that starts late with a first
    point accounting nothing; an agent first waited for (no verdict, nothing judged); a device whose
    site tag changed halfway (two stored series of one thing)."""
    hours = days * 24
    rows: list[Point] = []

    def row(tags: dict[str, str], hour: int, up: float | None, judged_s: float, up_s: float) -> None:
        fields: dict[str, float] = {"judged_s": judged_s, "up_s": up_s}
        if up is not None:
            fields |= {"up": up, "up_min": up, "up_max": up}
        rows.append(Point("availability", tags, fields, (start_s + hour * HOUR) * NS))

    agent = {"site": "s1", "kind": "agent", "host": "a1"}
    for h in range(hours):
        row(agent, h, 1.0, 3600.0, 3600.0 - (h % 7) * 0.125)
    device = {"site": "s1", "kind": "device", "device": "d1"}
    for h in (h for h in range(hours) if not 500 <= h < 505):
        row(device, h, 0.0 if h % 97 == 0 else 1.0, 3600.0, 0.0 if h % 97 == 0 else 3600.0)
    stopped = {"site": "s1", "kind": "target", "host": "a1", "target": "gw"}
    for h in range(60 * 24):
        row(stopped, h, 1.0, 3600.0, 3599.5)
    row(stopped, 60 * 24 + 2, None, 360.0, 360.0)
    late = {"site": "s1", "kind": "target", "host": "a1", "target": "dns"}
    row(late, 30 * 24, 1.0, 0.0, 0.0)
    for h in range(30 * 24 + 1, hours):
        row(late, h, 1.0, 3600.0, 3600.0)
    waited = {"site": "s2", "kind": "agent", "host": "a2"}
    for h in range(10):
        row(waited, h, None, 0.0, 0.0)
    for h in range(10, hours):
        row(waited, h, 1.0 if h % 11 else 0.0, 3600.0, 3600.0 if h % 11 else 0.0)
    for h in range(hours):
        row({"site": "s1" if h < hours // 2 else "s2", "kind": "device", "device": "d2"}, h, 1.0, 3600.0, 3600.0)
    return rows


def test_availability_folded_by_influxdb_equals_the_rows_folded_here(influx_db: tuple[InfluxdServer, str], tmp_path: Path) -> None:
    server, database = influx_db
    set_up_rollups(server, database, tmp_path, LONG)
    days = 90  # longer than the 5-minute rollup serves: hours
    start_s = (1_790_000_000 // DAY) * DAY + 5 * HOUR  # mid-day, so a day holds part of the period
    write(server, database, "nettvakt_1h", availability_rows(start_s, days))
    source = rollup_source(server, database)
    first_ns, end_ns = start_s * NS, (start_s + days * DAY - 30 * 60) * NS  # ends inside the last bucket
    assert source.resolution_for(first_ns, end_ns, end_ns) == "1h"

    folded = fold_in_influx(source, "1h", first_ns, end_ns)
    want = fold_rows(source.samples("availability", first_ns, end_ns, None, "1h"), first_ns, "1h")
    assert set(folded) == set(want) == {("agent", "a1"), ("agent", "a2"), ("device", "d1"), ("device", "d2"), ("target", "gw@a1"),
                                        ("target", "dns@a1")}
    for key, w in want.items():
        got = folded[key]
        assert got.judged == w.judged, key
        assert close(got.up_s, w.up_s) and close(got.judged_s, w.judged_s), (key, got, w)
    # The gaps are there to be found: the collector's five hours, the stopped target's last row.
    assert want[("device", "d1")].judged == [(0, 499), (505, days * 24 - 1)]
    assert want[("target", "gw@a1")].judged == [(0, 60 * 24 - 1), (60 * 24 + 2, 60 * 24 + 2)]
    assert want[("target", "dns@a1")].judged == [(30 * 24, days * 24 - 1)]
    assert want[("agent", "a2")].judged == [(10, days * 24 - 1)]


# --- servers --------------------------------------------------------------------------------------
def test_server_use_folded_by_influxdb_equals_the_points_folded_here(influx_db: tuple[InfluxdServer, str], tmp_path: Path) -> None:
    """Raw points and their 5-minute rollup (made by the collector's backfill): the same averages,
    peaks, counts, memory size and mounts (one without `used_pct` readings is left out by both)."""
    server, database = influx_db
    admin, _ = set_up_rollups(server, database, tmp_path, LONG)
    end_s = (1_790_000_000 // 300) * 300
    start_s = end_s - DAY
    points = []
    for n, host in enumerate(("srv-a", "srv-b")):
        for i, t in enumerate(range(start_s, end_s, 30)):
            fields = {"cpu_pct": float((i * 7 + n * 13) % 90), "mem_used_pct": 40.0 + (i % 50) / 3, "mem_total_bytes": 8e9 + (i // 1000) * 1e9}
            points.append(Point("host", {"site": "s", "host": host}, fields, t * NS))
            points.append(Point("host_disk", {"site": "s", "host": host, "mount": "/"}, {"used_pct": 50.0 + i / 999}, t * NS))
            points.append(Point("host_disk", {"site": "s", "host": host, "mount": "/boot"}, {"total_bytes": 5e8}, t * NS))
    write(server, database, "autogen", points)
    backfill(admin, set_up_rollups(server, database, tmp_path, LONG)[1].plan, start_s * NS, end_s * NS, chunk_s=DAY)
    source = rollup_source(server, database)
    for resolution in ("raw", "5m"):
        read = {m: [(s.tags, dict(s.fields)) for h in ("srv-a", "srv-b") for s in source.samples(m, start_s * NS, end_s * NS, {"host": h}, resolution)]
                for m in ("host", "host_disk")}
        want = use_from_points(read, resolution)
        got = read_use(source, ["srv-a", "srv-b", "srv-none"], start_s * NS, end_s * NS, resolution)
        assert set(got) == set(want) == {"srv-a", "srv-b"}, resolution
        for host, w in want.items():
            g = got[host]
            assert list(g.disks) == list(w.disks) == ["/"], (resolution, host)
            for name, gs, ws in [("cpu", g.cpu, w.cpu), ("mem", g.mem, w.mem), ("disk", g.disks["/"], w.disks["/"])]:
                assert (gs.samples, gs.peak) == (ws.samples, ws.peak), (resolution, host, name)
                assert close(gs.avg, ws.avg), (resolution, host, name, gs.avg, ws.avg)
            assert g.mem_total_bytes == w.mem_total_bytes, (resolution, host)
        assert got["srv-a"].cpu.samples == (DAY // 30 if resolution == "raw" else DAY // 300)


# --- capacity: which interface is the line --------------------------------------------------------
def test_the_busiest_line_chosen_from_influxdb_s_highest_readings_is_the_one_every_reading_chooses(
    influx_db: tuple[InfluxdServer, str], tmp_path: Path
) -> None:
    """A week of 5-minute rollup rows of an uplink firewall with no interface named: a port with the
    highest single reading but a low p95 (read, then beaten), the port with the highest p95, two
    identical quieter ports (a tie: the first in InfluxDB's order), a loopback at 99 % (never the
    line), a port with no utilisation. The InfluxQL choice reads fewer ports and picks the same."""
    server, database = influx_db
    set_up_rollups(server, database, tmp_path, LONG)
    end_s = (1_790_000_000 // 300) * 300
    start_s = end_s - 7 * DAY
    use = {
        "spiky": lambda i: 98.0 if i == 100 else 5.0,
        "steady": lambda i: 60.0 + (i % 10),
        "twin1": lambda i: 20.0 + (i % 3),
        "twin2": lambda i: 20.0 + (i % 3),
        "lo0": lambda i: 99.0,
    }
    rows = [Point("interface", {"site": "s", "device": "fw", "ifname": name}, {"in_util_pct": f(i), "out_util_pct": f(i) / 2, "speed_bps": 1e8},
                  t * NS) for name, f in use.items() for i, t in enumerate(range(start_s, end_s, 300))]
    rows += [Point("interface", {"site": "s", "device": "fw", "ifname": "mgmt"}, {"in_bps": 10.0}, t * NS) for t in range(start_s, end_s, 300)]
    write(server, database, "nettvakt_5m", rows)
    hourly = {f"{d}_util_pct{a}": v for d, v in (("in", 30.0), ("out", 12.0)) for a in ("", "_min", "_max", "_p95")}
    write(server, database, "nettvakt_1h", [Point("interface", {"site": "s", "device": "fw", "ifname": name}, {**hourly, "in_bps": 3e7, "speed_bps": 1e8},
                                                  t * NS) for name in use for t in range(start_s, end_s, HOUR)])
    path = (InventoryBuilder(tmp_path).influxdb(server.url, database).site("s", "S", uplink="fw")
            .device("fw", site="s", hardware="firewall", snmp={"community": "env:NETTVAKT_TEST_NEVER_SET"}).write())
    ctx = site_context(load_inventory(path), "s")
    source = rollup_source(server, database)
    assert source.resolution_for(start_s * NS, end_s * NS, end_s * NS) == "5m"
    assert ctx.uplink is not None
    chosen = busiest_line(source, ctx.uplink, start_s * NS, end_s * NS, "5m")
    every = read_site_line(SamplesOnly(source), ctx, start_s * NS, end_s * NS, end_s * NS)
    assert chosen == every.ifname == "steady"
    # Without the steady port, the twins tie: both paths take the same one.
    write(server, database, "nettvakt_5m", [Point("interface", {"site": "s", "device": "fw", "ifname": "steady"}, {"in_util_pct": 0.0, "out_util_pct": 0.0},
                                                  t * NS) for t in range(start_s, end_s, 300)])
    chosen = busiest_line(source, ctx.uplink, start_s * NS, end_s * NS, "5m")
    assert chosen == read_site_line(SamplesOnly(source), ctx, start_s * NS, end_s * NS, end_s * NS).ifname == "twin1"
    # Through InfluxDB the line's months read only the report's fields, the same values.
    fast, slow = (read_site_line(s, ctx, start_s * NS, end_s * NS, end_s * NS) for s in (source, SamplesOnly(source)))
    read = set(fast.interface[0].fields)
    assert len(fast.interface) == len(slow.interface) == 7 * 24 and not {"in_bps", "in_util_pct_min"} & read
    assert [(s.time_ns, s.fields) for s in fast.interface] == [(s.time_ns, {k: v for k, v in s.fields.items() if k in read}) for s in slow.interface]


# --- capacity: the site's round-trip time per hour ------------------------------------------------
def test_the_hourly_round_trip_time_made_by_influxdb_is_the_one_made_here(influx_db: tuple[InfluxdServer, str]) -> None:
    """A day of raw rounds: two agents to two targets every 10 minutes (six rounds an hour per path,
    an even count: the median is a mean of two), a path missing some hours, a traceroute whose hop
    points (tag `hop`) must not count, another site. Per hour: the mean over paths of each path's
    median, the same within float rounding."""
    server, database = influx_db
    start_s = (1_790_000_000 // DAY) * DAY
    points = []
    for i, t in enumerate(range(start_s, start_s + DAY, 600)):
        for host, target, base in (("pc1", "gw", 2.0), ("pc1", "ute", 30.0), ("pc2", "gw", 4.0), ("pc2", "ute", 35.0)):
            if target == "ute" and host == "pc2" and (t // HOUR) % 5 == 0:
                continue
            points.append(Point("probe", {"site": "s", "host": host, "kind": "icmp", "target": target}, {"up": 1.0, "rtt_ms": base + (i * 7 % 13) / 3}, t * NS))
        points.append(Point("probe", {"site": "s", "host": "pc1", "kind": "icmp", "target": "gw", "hop": "01"}, {"rtt_ms": 500.0}, t * NS))
        points.append(Point("probe", {"site": "other", "host": "pc9", "kind": "icmp", "target": "gw"}, {"up": 1.0, "rtt_ms": 900.0}, t * NS))
    write(server, database, "autogen", points)
    source = InfluxSource(server.url, database)  # no rollups: raw points
    end_ns = (start_s + DAY) * NS
    got = hourly_round_trip_ms(source, "s", start_s * NS, end_ns, "raw")
    rounds = [p for kind in ROUND_TRIP_KINDS for p in source.samples("probe", start_s * NS, end_ns, {"site": "s", "kind": kind}) if is_round(p)]
    want = path_rtt_ms(rounds, lambda t: t // HOUR_NS)
    assert sorted(got) == sorted(want) and len(want) == 24
    assert all(close(got[h], want[h]) for h in want), {h: (got[h], want[h]) for h in want if not close(got[h], want[h])}


# --- capacity: the whole report -------------------------------------------------------------------
def test_the_capacity_report_from_influxdb_s_folds_is_the_one_from_every_row(influx_db: tuple[InfluxdServer, str], tmp_path: Path) -> None:
    """Four months of polls (tests/test_reports_capacity.py's lines: a site whose line is named, one
    whose line is the busiest of its ports, a thin month, latency under load), rolled up by the
    collector's backfill: the report from InfluxDB's folds (line, hourly use, each month's p95 and
    peak, the hourly round-trip time) is the one made from every row."""
    server, database = influx_db
    months = report_months(dt.datetime.now(OSLO).date(), 4)
    admin, _ = set_up_rollups(server, database, tmp_path, LONG)
    year = write_year(year_inventory(tmp_path, server.url, database), months)
    start = int(dt.datetime.combine(months[0], dt.time(0), OSLO).timestamp()) * NS
    backfill(admin, set_up_rollups(server, database, tmp_path, LONG)[1].plan, start, time.time_ns(), chunk_s=31 * DAY)
    inventory = load_inventory(year.inventory)
    sites = [s.id for s in inventory.site]
    source = rollup_source(server, database)
    folded = build_capacity_report(inventory, months, read_capacity(inventory, source, months, sites)).to_json()
    every_row = build_capacity_report(inventory, months, read_capacity(inventory, SamplesOnly(source), months, sites)).to_json()
    assert folded["basis"] == "1h_p95" and any(m["latency_busy_ms"] is not None for s in folded["sites"] for m in s["months"])
    same(folded, every_row)
