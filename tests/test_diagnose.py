"""`nettvakt diagnose`: the time-series sources against real stores, the checks on data built here, the CLI."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from agent.cli import main as nettvakt
from agent.points import Point
from collector import clock
from collector.config import parse_inventory
from collector.diagnose import diagnose, load_site_data, site_context
from collector.diagnose.data import SiteData
from collector.diagnose.analysis import Diagnosis, pearson
from collector.diagnose.render import render_json, render_markdown, render_text, span
from collector.lineprotocol import encode_points
from collector.queue import DurableQueue
from collector.localservers import free_port
from collector.timeseries import InfluxSource, LocalSource, Sample, SeriesSource, SourceError, open_source
from collector.writer import InfluxHttpSink
from inventories import InventoryBuilder

S = 1_000_000_000
T0 = 1_795_000_000 * S

STORE_POINTS = [
    Point("probe", {"site": "plo", "host": "plo-pc", "kind": "icmp", "target": "gw"}, {"up": 1, "rtt_ms": 1.5, "loss_pct": 0, "method": "icmp"}, T0),
    Point("probe", {"site": "plo", "host": "plo-pc", "kind": "icmp", "target": "inet"}, {"up": 0, "reason": "timeout", "loss_pct": 100.0}, T0 + 2 * S),
    Point("probe", {"site": "plo", "host": "plo-pc", "kind": "traceroute", "target": "inet", "hop": "02"}, {"rtt_ms": 9.0, "hop_addr": "10.0.0.1"}, T0 + 3 * S),
    Point("probe", {"site": "hel", "host": "hel-pc", "kind": "icmp", "target": "gw"}, {"up": 1, "rtt_ms": 3}, T0 + 1 * S),
    Point("host", {"site": "plo", "host": "plo-pc"}, {"cpu_pct": 97.5}, T0 + 1 * S),
    Point("probe", {"site": "plo", "host": "plo-pc", "kind": "icmp", "target": "gw"}, {"up": 1, "rtt_ms": 2.0}, T0 + 60 * S),
]


def check_source(source: SeriesSource) -> None:
    got = source.samples("probe", T0, T0 + 10 * S, {"site": "plo"})
    assert [s.time_ns for s in got] == [T0, T0 + 2 * S, T0 + 3 * S]
    first = got[0]
    assert first == Sample(T0, {"site": "plo", "host": "plo-pc", "kind": "icmp", "target": "gw"}, {"up": 1.0, "rtt_ms": 1.5, "loss_pct": 0.0, "method": "icmp"})
    assert isinstance(first.fields["up"], float)
    assert got[1].fields == {"up": 0.0, "reason": "timeout", "loss_pct": 100.0}
    assert got[2].tags["hop"] == "02" and got[2].fields["hop_addr"] == "10.0.0.1"
    assert [s.tags["site"] for s in source.samples("probe", T0, T0 + 10 * S)] == ["plo", "hel", "plo", "plo"]
    assert source.samples("probe", T0, T0 + 10 * S, {"site": "plo", "target": "gw"})[0].fields["rtt_ms"] == 1.5
    assert source.samples("probe", T0, T0 + 10 * S, {"site": "nowhere"}) == []
    assert source.samples("host", T0, T0 + 10 * S)[0].fields == {"cpu_pct": 97.5}
    assert source.samples("interface", T0, T0 + 10 * S) == []
    # start inclusive, end exclusive
    assert len(source.samples("probe", T0 + 60 * S, T0 + 61 * S)) == 1
    assert source.samples("probe", T0 + 61 * S, T0 + 62 * S) == []
    quoted = source.samples("probe", T0, T0 + 10 * S, {"site": "o'brien\\"})
    assert quoted == []


def influx_inventory(url: str, database: str):
    return parse_inventory({"storage": {"kind": "influxdb_v1", "url": url, "database": database}})


def test_influx_source_reads_what_the_writer_wrote(influx_db: tuple) -> None:
    server, database = influx_db
    inventory = influx_inventory(server.url, database)

    async def write() -> None:
        sink = InfluxHttpSink(inventory.storage, inventory)
        try:
            await sink.write(encode_points(STORE_POINTS))
        finally:
            await sink.close()

    asyncio.run(write())
    source = open_source(inventory)
    assert isinstance(source, InfluxSource)
    check_source(source)


def test_influx_source_unreachable_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    source = open_source(influx_inventory(url, "nope"), "influx")
    with pytest.raises(SourceError, match=url.replace(".", r"\.")):
        source.samples("probe", T0, T0 + S)


def test_local_source_reads_the_durable_queue(tmp_path: Path) -> None:
    inventory = parse_inventory({"collector": {"data_dir": str(tmp_path / "data")}})
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3")
    try:
        # The queue stamps arrival with the wall clock (after T0): every batch is a candidate for the window.
        queue.put("agent:plo-pc", 1, STORE_POINTS[:3])
        queue.put("agent:hel-pc", 1, STORE_POINTS[3:4])
        queue.put_local("snmp", STORE_POINTS[4:])
        source = open_source(inventory, "auto")
        assert isinstance(source, LocalSource)
        check_source(source)
    finally:
        queue.close()


def test_influx_source_asked_of_a_local_inventory_says_so(tmp_path: Path) -> None:
    inventory = parse_inventory({"collector": {"data_dir": str(tmp_path)}})
    with pytest.raises(SourceError, match="storage.kind = 'local'.*--source local"):
        open_source(inventory, "influx")


def test_local_source_missing_store_names_the_path(tmp_path: Path) -> None:
    inventory = parse_inventory({"collector": {"data_dir": str(tmp_path / "nothing")}})
    with pytest.raises(SourceError, match=str(tmp_path / "nothing" / "queue.sqlite3")):
        open_source(inventory, "local")


# --- the checks, on data built here ---------------------------------------------------------------


SHA = "a" * 64
GW = "10.0.0.1"


def inventory_dict(**changes: object) -> dict:
    """A site `skole` with an agent, a firewall as its uplink (SNMP, 10 Mbit/s line), a switch, probes."""
    base: dict = {
        "site": [{"id": "skole", "name": "Skolen", "uplink": "fw"}, {"id": "hall", "name": "Rådhuset"}],
        "device": [
            {
                "id": "fw", "name": "Brannmur", "site": "skole", "host": GW, "hardware": {"kind": "firewall", "lifetime_years": 7},
                "snmp": {"community": "env:X", "important_interfaces": ["wan1"], "interface_speed_bps": {"wan1": 10e6}},
            },
            {"id": "sw", "name": "Svitsj", "site": "skole", "host": "10.0.0.2", "hardware": {"kind": "switch", "lifetime_years": 8}, "snmp": {"community": "env:X"}},
        ],
        "agent": [{"id": "pc1", "name": "Lærer-pc", "site": "skole", "token_sha256": SHA}],
        "probe": [
            {"name": "gw", "kind": "icmp", "target": GW, "sites": ["skole"]},
            {"name": "internett", "kind": "icmp", "target": "192.0.2.10", "sites": ["skole"]},
            {"name": "sti", "kind": "traceroute", "target": "192.0.2.10", "sites": ["skole"]},
            {"name": "fag", "kind": "http", "target": "http://fag.karlsoy.local/login", "sites": ["skole"]},
            {"name": "fag-ping", "kind": "icmp", "target": "fag.karlsoy.local", "sites": ["skole"]},
        ],
    }
    base.update(changes)
    return base


class MemorySource:
    """Samples held in memory: the unit-level double of a store (the stores are tested above for real)."""

    def __init__(self) -> None:
        self.points: dict[str, list[Sample]] = {}

    def add(self, measurement: str, t: int, tags: dict[str, str], fields: dict[str, float | str]) -> None:
        self.points.setdefault(measurement, []).append(Sample(t, tags, fields))

    def resolution_for(self, start_ns: int, end_ns: int, now_ns: int) -> str:
        return "raw"  # a unit-level store of raw points only, like LocalSource

    def samples(self, measurement: str, start_ns: int, end_ns: int, tags: Mapping[str, str] | None = None, resolution: str = "raw") -> list[Sample]:
        assert resolution == "raw"
        rows = [s for s in self.points.get(measurement, []) if start_ns <= s.time_ns < end_ns and all(s.tags.get(k) == v for k, v in (tags or {}).items())]
        return sorted(rows, key=lambda s: s.time_ns)


def probe_tags(target: str, kind: str = "icmp", **extra: str) -> dict[str, str]:
    return {"site": "skole", "host": "pc1", "kind": kind, "target": target, **extra}


def clean_network(src: MemorySource, n: int = 60, step: int = 10, rtt: float = 2.0, beyond_loss: float = 0.0) -> None:
    """icmp rounds every `step` s to the gateway and the internet, 10 echoes each."""
    for i in range(n):
        t = T0 + i * step * S
        src.add("probe", t, probe_tags("gw"), {"up": 1.0, "rtt_ms": rtt, "sent": 10.0, "received": 10.0, "loss_pct": 0.0})
        lost = round(10 * beyond_loss / 100) if i % 2 == 0 else round(10 * beyond_loss / 100 * 0.8)
        src.add("probe", t, probe_tags("internett"), {"up": 1.0, "rtt_ms": rtt + 10, "sent": 10.0, "received": 10.0 - lost, "loss_pct": 10.0 * lost})


def run_checks(src: MemorySource, inv: dict | None = None, minutes: float = 10) -> Diagnosis:
    inventory = parse_inventory(inv or inventory_dict())
    ctx = site_context(inventory, "skole")
    return diagnose(ctx, load_site_data(src, ctx, T0, T0 + int(minutes * 60 * S)))


def kinds(d: Diagnosis) -> list[str]:
    return [v.kind for v in d.verdicts]


def test_pearson_is_none_for_a_constant_series() -> None:
    assert pearson([1.0, 2.0, 3.0], [2.0, 4.0, 6.1]) == pytest.approx(1.0, abs=1e-3)
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) is None


def saturated_source() -> MemorySource:
    """Busy from minute 4 to 7: the named uplink wan1 full, latency of a full queue beyond the gateway."""
    src = MemorySource()
    clean_network(src)
    for i in range(20):
        t = T0 + i * 30 * S
        busy = 8 <= i < 14
        # A rate point describes the poll interval before its time: this one, [t, t + 30 s).
        src.add("interface", t + 30 * S, {"site": "skole", "device": "fw", "ifname": "wan1"}, {"in_util_pct": 97.5 if busy else 10.0 + i, "out_util_pct": 3.0, "speed_bps": 10e6})
        src.add("interface", t + 30 * S, {"site": "skole", "device": "fw", "ifname": "lan"}, {"in_util_pct": 99.0, "out_util_pct": 99.0})  # not the named uplink
        src.add("device", t, {"site": "skole", "device": "fw"}, {"up": 1.0, "cpu_pct": 35.0 if busy else 4.0, "rebooted": 0.0})
        if busy:
            for k in range(4):
                src.add("probe", t + k * 5 * S, probe_tags("internett"), {"up": 1.0, "rtt_ms": 380.0, "sent": 10.0, "received": 10.0})
    return src


def saturated_diagnosis() -> Diagnosis:
    return run_checks(saturated_source())


def test_uplink_saturated_when_latency_follows_utilisation() -> None:
    d = saturated_diagnosis()
    top = d.verdicts[0]
    assert top.kind == "uplink_saturated" and top.subject == "fw/wan1"
    e = top.evidence
    assert e["correlation"] >= 0.9 and e["peak_util_pct"] == 97.5 and e["busy_buckets"] == 6 and e["bucket_s"] == 30.0
    assert e["rtt_busy_ms"] > 50 and e["rtt_quiet_ms"] < 20 and e["speed_bps"] == 10e6
    assert e["device_cpu_peak_pct"] == 35.0 and e["device_reboots"] == 0
    assert top.ranges == [(T0 + 240 * S, T0 + 420 * S)]
    assert top.confidence > 0.9


def test_busy_uplink_with_flat_latency_is_not_a_verdict() -> None:
    src = MemorySource()
    clean_network(src)
    for i in range(20):
        src.add("interface", T0 + i * 30 * S, {"site": "skole", "device": "fw", "ifname": "wan1"}, {"in_util_pct": 95.0 if i % 2 else 20.0})
    d = run_checks(src)
    assert "uplink_saturated" not in kinds(d) and d.checks["uplink_saturated"] == "clean", d.verdicts


def test_uplink_full_all_window_is_a_weak_verdict_without_correlation() -> None:
    src = MemorySource()
    clean_network(src)
    for i in range(20):
        src.add("interface", T0 + (i + 1) * 30 * S, {"site": "skole", "device": "fw", "ifname": "wan1"}, {"out_util_pct": 98.0})
    [v] = [v for v in run_checks(src).verdicts if v.kind == "uplink_saturated"]
    assert v.evidence["correlation"] == "unknown" and v.evidence["busy_buckets"] == 19 and v.confidence == pytest.approx(0.4)
    assert "korrelasjon ukjent" in render_text(run_checks(src), "nb")


def test_uplink_missing_pieces_become_suggestions() -> None:
    inv = inventory_dict()
    inv["site"][0].pop("uplink")
    d = run_checks(MemorySource(), inv)
    assert d.checks["uplink_saturated"] == "no_data"
    assert any(s.code == "name_uplink" and s.params["candidates"] == "fw, sw" for s in d.missing)

    inv = inventory_dict()
    inv["device"][0].pop("snmp")
    assert any(s.code == "poll_uplink_snmp" and s.params["device"] == "fw" for s in run_checks(MemorySource(), inv).missing)

    src = MemorySource()
    clean_network(src)
    for i in range(10):
        src.add("interface", T0 + i * 30 * S, {"site": "skole", "device": "fw", "ifname": "wan1"}, {"in_bps": 5e6})
    assert any(s.code == "uplink_speed" for s in run_checks(src).missing)

    inv = inventory_dict()
    inv["device"][0]["snmp"]["important_interfaces"] = ["wan9"]
    [wrong] = [s for s in run_checks(src, inv).missing if s.code == "uplink_ifname"]
    assert wrong.params == {"device": "fw", "ifnames": "wan1"}
    assert "None of the interfaces in snmp.important_interfaces of fw exists; the device has: wan1." in render_text(run_checks(src, inv), "en")


def test_interface_errors_name_the_interface_and_count() -> None:
    src = MemorySource()
    clean_network(src)
    for i in range(20):
        t = T0 + i * 30 * S
        src.add("interface", t, {"site": "skole", "device": "sw", "ifname": "gi0/3"}, {"in_errors_ps": 2.0 if i >= 10 else 0.0, "out_errors_ps": 0.0, "in_discards_ps": 0.0})
        src.add("interface", t, {"site": "skole", "device": "sw", "ifname": "gi0/4"}, {"in_errors_ps": 0.0, "in_discards_ps": 0.0})
    d = run_checks(src)
    [v] = [v for v in d.verdicts if v.kind == "interface_errors"]
    assert v.subject == "sw/gi0/3"
    assert v.evidence["errors"] == 600 and v.evidence["discards"] == 0 and v.evidence["samples_with_errors"] == 10
    assert v.ranges == [(T0 + 270 * S, T0 + 570 * S)]  # each rate is of the 30 s before its sample


def add_hops(src: MemorySource, n: int, hop2_loss: float) -> None:
    for i in range(n):
        t = T0 + i * 10 * S
        src.add("probe", t, probe_tags("sti", "traceroute"), {"up": 1.0, "hops": 2.0, "hop_addr": "192.0.2.10"})
        src.add("probe", t, probe_tags("sti", "traceroute", hop="01"), {"hop_addr": GW, "rtt_ms": 1.0, "sent": 3.0, "received": 3.0, "loss_pct": 0.0})
        lost = 1.0 if i % int(100 / hop2_loss / 3) == 0 else 0.0
        src.add("probe", t, probe_tags("sti", "traceroute", hop="02"), {"hop_addr": "192.0.2.10", "rtt_ms": 9.0, "sent": 3.0, "received": 3.0 - lost})


def test_loss_beyond_gateway_says_where_it_begins() -> None:
    src = MemorySource()
    clean_network(src, beyond_loss=20)
    add_hops(src, 60, 20)
    d = run_checks(src)
    top = d.verdicts[0]
    assert top.kind == "loss_beyond_gateway", d.verdicts
    e = top.evidence
    assert e["gateway_loss_pct"] == 0 and e["gateway_rounds"] == 60
    assert e["beyond_loss_pct"] == 20.0 and e["beyond_rounds"] == 60
    assert e["loss_begins_hop"] == 2 and e["loss_begins_addr"] == "192.0.2.10" and e["previous_hop_addr"] == GW
    assert {t["target"]: t["side"] for t in e["targets"]} == {"gw": "gateway", "internett": "beyond"}
    assert e["previous_hop_is_gateway"] is True
    assert top.subject == "192.0.2.10" and top.confidence > 0.8 and top.suggestions == []
    text = render_text(d, "nb")
    assert "probene bak den taper 20 % (60 runder). Tapet begynner ved hopp 2 (192.0.2.10, " in text, text
    assert "hopp 1 (10.0.0.1) er gatewayen" in text


def test_a_round_that_lost_every_echo_to_the_last_hop_does_not_hide_where_loss_begins() -> None:
    # With every TTL-2 echo of a round lost, the traceroute goes on to TTL 3 and meets the target
    # there, cleanly: the path is still two hops, and loss still begins at hop 2.
    src = MemorySource()
    clean_network(src, beyond_loss=20)
    add_hops(src, 60, 20)
    t = T0 + 5 * S
    src.add("probe", t, probe_tags("sti", "traceroute"), {"up": 1.0, "hops": 3.0, "hop_addr": "192.0.2.10"})
    src.add("probe", t, probe_tags("sti", "traceroute", hop="01"), {"hop_addr": GW, "sent": 3.0, "received": 3.0})
    src.add("probe", t, probe_tags("sti", "traceroute", hop="02"), {"hop_addr": "*", "sent": 3.0, "received": 0.0})
    src.add("probe", t, probe_tags("sti", "traceroute", hop="03"), {"hop_addr": "192.0.2.10", "sent": 3.0, "received": 3.0})
    [v] = [v for v in run_checks(src).verdicts if v.kind == "loss_beyond_gateway"]
    assert v.evidence["loss_begins_hop"] == 2 and v.evidence["loss_begins_addr"] == "192.0.2.10", v.evidence
    assert v.evidence["hop_loss_pct"] > 20.0  # that round's three lost echoes count at hop 2


def test_loss_at_the_gateway_too_is_not_beyond_it() -> None:
    src = MemorySource()
    clean_network(src, beyond_loss=20)
    for i in range(60):
        src.add("probe", T0 + i * 10 * S + 1, probe_tags("gw"), {"up": 1.0, "sent": 10.0, "received": 8.0})
    assert "loss_beyond_gateway" not in kinds(run_checks(src))


def test_gateway_known_from_the_first_traceroute_hop_without_a_device() -> None:
    inv = inventory_dict(device=[])
    inv["site"][0].pop("uplink")
    inv["probe"][0]["target"] = "10.9.9.9"  # not a known device: only the traceroute says it is hop 1
    src = MemorySource()
    clean_network(src, beyond_loss=20)
    for i in range(60):
        src.add("probe", T0 + i * 10 * S, probe_tags("sti", "traceroute", hop="01"), {"hop_addr": "10.9.9.9", "sent": 3.0, "received": 3.0})
    d = run_checks(src, inv)
    [v] = [v for v in d.verdicts if v.kind == "loss_beyond_gateway"]
    assert v.suggestions == []  # hop data exists, though hop 1 is clean and the far hop is not traced
    assert "loss_begins_hop" not in v.evidence
    assert v.evidence["gateway_rounds"] == 60


def host_samples(src: MemorySource, n: int, cpu: Callable[[int], float]) -> None:
    for i in range(n):
        t = T0 + i * 10 * S
        src.add("host", t, {"site": "skole", "host": "pc1"}, {"cpu_pct": cpu(i), "mem_used_pct": 40.0})
        src.add("host_disk", t, {"site": "skole", "host": "pc1", "mount": "/"}, {"used_pct": 50.0})


def test_host_saturated_while_the_network_is_clean() -> None:
    src = MemorySource()
    clean_network(src)
    host_samples(src, 60, lambda i: 99.0 if i >= 20 else 5.0)
    d = run_checks(src)
    top = d.verdicts[0]
    assert top.kind == "host_saturated" and top.subject == "pc1 cpu"
    e = top.evidence
    assert e["saturated_fraction"] == pytest.approx(0.67, abs=0.01) and e["peak_pct"] == 99.0 and e["network_clean"] is True
    assert e["network_loss_pct"] == 0 and top.confidence > 0.9
    assert top.ranges == [(T0 + 200 * S, T0 + 600 * S)]


def test_host_saturated_counts_less_when_the_network_had_trouble_too() -> None:
    src = MemorySource()
    clean_network(src, beyond_loss=30)
    host_samples(src, 60, lambda i: 99.0)
    [v] = [v for v in run_checks(src).verdicts if v.kind == "host_saturated"]
    assert v.evidence["network_clean"] is False and v.confidence < 0.5


def test_application_slow_when_the_network_to_the_server_is_normal() -> None:
    src = MemorySource()
    clean_network(src)
    for i in range(30):
        t = T0 + i * 20 * S
        src.add("probe", t, probe_tags("fag", "http"), {"up": 1.0, "status_code": 200.0, "ttfb_ms": 2400.0, "total_ms": 2500.0})
        src.add("probe", t, probe_tags("fag-ping"), {"up": 1.0, "rtt_ms": 1.2, "sent": 5.0, "received": 5.0})
    [v] = [v for v in run_checks(src).verdicts if v.kind == "application_slow"]
    assert v.subject == "fag" and v.evidence["server"] == "fag.karlsoy.local"
    assert v.evidence["http_ms"] == 2400.0 and v.evidence["rtt_ms"] == 1.2 and v.evidence["slow_fraction"] == 1.0


def test_application_without_a_network_probe_asks_for_one() -> None:
    inv = inventory_dict()
    inv["probe"] = [p for p in inv["probe"] if p["name"] != "fag-ping"]
    d = run_checks(MemorySource(), inv)
    assert any(s.code == "add_server_probe" and s.params["host"] == "fag.karlsoy.local" for s in d.missing)


def test_no_data_is_insufficient_data_with_what_to_add() -> None:
    inv = inventory_dict(probe=[])
    inv["site"][0].pop("uplink")
    d = run_checks(MemorySource(), inv)
    [v] = d.verdicts
    assert v.kind == "insufficient_data" and v.confidence == 1.0
    codes = {s.code for s in v.suggestions}
    assert {"name_uplink", "add_gateway_probe", "add_internet_probe", "more_data"} <= codes, codes


def device_polls(src: MemorySource, n: int, cpu: Callable[[int], float], down: range = range(0), restart_at: int | None = None) -> None:
    """The firewall polled every 30 s: unreachable in `down`, restarted just before poll `restart_at`."""
    uptime = 9e5
    for i in range(n):
        t = T0 + i * 30 * S
        if i in down:
            src.add("device", t, {"site": "skole", "device": "fw"}, {"up": 0.0, "reason": "timeout"})
            continue
        fields = {"up": 1.0, "cpu_pct": cpu(i), "rebooted": 0.0}
        if restart_at is not None and i == restart_at:
            uptime, fields["rebooted"] = 12.0, 1.0
        else:
            uptime += 30
        src.add("device", t, {"site": "skole", "device": "fw"}, {**fields, "uptime_s": uptime})


def test_a_restarted_firewall_with_loss_meanwhile_is_a_verdict_with_its_outage() -> None:
    src = MemorySource()
    clean_network(src)
    # Polls 8-9 unanswered, poll 10 finds it up for 12 s: it went away after poll 7 and came back 12 s before poll 10.
    device_polls(src, 20, lambda i: 20.0, down=range(8, 10), restart_at=10)
    for i in range(21, 30):  # every probe round lost while it was down
        src.add("probe", T0 + i * 10 * S + 1, probe_tags("internett"), {"up": 0.0, "sent": 10.0, "received": 0.0})
    d = run_checks(src)
    [v] = [v for v in d.verdicts if v.kind == "device_rebooted"]
    assert v.subject == "fw" and v.evidence["reboots"] == 1 and v.evidence["last_uptime_s"] == 12.0
    assert v.evidence["unreachable_s"] == 90.0  # from its last answer (poll 7, 210 s) to its first after (poll 10, 300 s)
    assert v.evidence["loss_during_pct"] > 20 and v.confidence >= 0.8
    assert v.ranges == [(T0 + 210 * S, T0 + 300 * S)]
    assert d.checks["device_trouble"] == "verdict"
    text = render_text(d, "nb")
    assert "fw startet på nytt 1 gang(er) i tidsrommet (sysUpTime gikk tilbake" in text, text
    assert "oppetid 12 s da den svarte igjen); den svarte ikke i inntil 90 s, og tapet i nettet var " in text, text
    assert "restarted 1 time(s) in the window" in render_text(d, "en")


def test_a_busy_firewall_cpu_that_slows_what_goes_through_it_is_a_verdict() -> None:
    src = MemorySource()
    busy = set(range(8, 14))
    for i in range(60):
        t = T0 + i * 10 * S
        rtt = 80.0 if i // 3 in busy else 2.0  # rounds every 10 s, polls every 30 s
        src.add("probe", t, probe_tags("gw"), {"up": 1.0, "rtt_ms": rtt, "sent": 10.0, "received": 10.0})
        src.add("probe", t, probe_tags("internett"), {"up": 1.0, "rtt_ms": rtt + 10, "sent": 10.0, "received": 10.0})
    device_polls(src, 20, lambda i: 97.0 if i in busy else 15.0)
    d = run_checks(src)
    [v] = [v for v in d.verdicts if v.kind == "device_overloaded"]
    e = v.evidence
    assert v.subject == "fw" and e["busy_samples"] == 6 and e["samples"] == 20 and e["cpu_peak_pct"] == 97.0
    assert e["correlation"] > 0.9 and e["rtt_busy_ms"] > 10 * e["rtt_quiet_ms"], e
    assert v.confidence >= 0.8 and v.ranges
    assert "CPU-en på fw var over 90 % i 6 av 20 målinger" in render_text(d, "nb")


def test_a_busy_firewall_cpu_without_latency_data_says_so() -> None:
    src = MemorySource()
    host_samples(src, 60, lambda i: 10.0)
    device_polls(src, 20, lambda i: 97.0 if 8 <= i < 14 else 15.0)
    d = run_checks(src)
    [v] = [v for v in d.verdicts if v.kind == "device_overloaded"]
    assert "rtt_busy_ms" not in v.evidence and v.evidence["correlation"] == "unknown"
    assert [s.code for s in v.suggestions] == ["add_gateway_probe"]
    assert "forsinkelsen gjennom den ble ikke målt i den tiden" in render_text(d, "nb")
    assert "latency through it was not measured meanwhile" in render_text(d, "en")


def test_a_busy_firewall_cpu_with_latency_unchanged_is_not_the_answer() -> None:
    src = MemorySource()
    clean_network(src)
    device_polls(src, 20, lambda i: 97.0 if 8 <= i < 14 else 15.0)
    d = run_checks(src)
    assert "device_overloaded" not in kinds(d) and d.checks["device_trouble"] == "clean", d.verdicts


def test_a_clean_site_has_no_verdict() -> None:
    src = MemorySource()
    clean_network(src)
    add_hops(src, 60, 0.5)
    host_samples(src, 60, lambda i: 10.0)
    for i in range(20):
        src.add("interface", T0 + i * 30 * S, {"site": "skole", "device": "fw", "ifname": "wan1"}, {"in_util_pct": 20.0, "in_errors_ps": 0.0})
        src.add("device", T0 + i * 30 * S, {"site": "skole", "device": "fw"}, {"up": 1.0, "uptime_s": 9e5 + i * 30, "rebooted": 0.0, "cpu_pct": 30.0})
    for i in range(30):
        t = T0 + i * 20 * S
        src.add("probe", t, probe_tags("fag", "http"), {"up": 1.0, "ttfb_ms": 40.0})
        src.add("probe", t, probe_tags("fag-ping"), {"up": 1.0, "rtt_ms": 1.2, "sent": 5.0, "received": 5.0})
    d = run_checks(src)
    # A site without a UPS has no power to judge: that check does not apply.
    assert d.checks.pop("power_cut") == "not_applicable"
    assert d.verdicts == [] and set(d.checks.values()) == {"clean"}, (d.verdicts, d.checks)


# --- power cuts -------------------------------------------------------------------------------------

def ups_inventory() -> dict:
    base = inventory_dict()
    base["device"].append({"id": "ups", "name": "UPS skolen", "site": "skole", "host": "10.0.0.5",
                           "hardware": {"kind": "ups", "lifetime_years": 6}, "snmp": {"community": "env:X"}})
    return base


def ups_polls(src: MemorySource, states: list[tuple[float, float | None, float]]) -> None:
    """One UPS poll a minute: (on battery, runtime minutes or None when it did not answer, seconds on battery)."""
    for i, (on, minutes, seconds) in enumerate(states):
        t = T0 + i * 60 * S
        if minutes is None:
            src.add("device", t, {"site": "skole", "device": "ups"}, {"up": 0.0, "reason": "timeout"})
        else:
            src.add("device", t, {"site": "skole", "device": "ups"}, {
                "up": 1.0, "ups_on_battery": on, "ups_minutes_left": minutes, "ups_seconds_on_battery": seconds, "ups_charge_pct": 4 * minutes})


def test_a_site_that_went_quiet_on_battery_had_a_power_cut(capsys: pytest.CaptureFixture[str]) -> None:
    src = MemorySource()
    # The agent measures for three minutes, then its PC loses power with everything else.
    clean_network(src, n=18)
    host_samples(src, 18, lambda i: 10.0)
    ups_polls(src, [(0.0, 24.0, 0.0), (1.0, 21.0, 40.0), (1.0, 16.0, 100.0), (1.0, 11.0, 160.0)] + [(0.0, None, 0.0)] * 6)
    d = run_checks(src, ups_inventory())
    top = d.verdicts[0]
    assert (top.kind, top.subject, top.confidence) == ("power_cut", "ups", 0.95), d.verdicts
    # It went on battery 40 s before the poll that saw it; quiet from its last answer to the end of the window.
    assert top.ranges == [(T0 + 20 * S, d.end_ns)]
    assert top.evidence == {"device": "ups", "on_battery_minutes": 2.7, "runtime_then_minutes": 21.0, "runtime_last_minutes": 11.0,
                            "charge_last_pct": 44.0, "site_quiet": True, "agents_silent": 1, "agents": 1}
    text = render_text(d, "nb", "Europe/Oslo")
    at = clock.local((T0 + 20 * S) / 1e9, "Europe/Oslo", "%H:%M", label=False)
    assert f"UPS-en ups gikk på batteri kl. {at} (21 min batteritid da) og ble stille etter 2,7 min på batteri med 11 min igjen; 1 av 1 agenter på stedet ble stille samtidig. Utfallet skyldes strømmen, ikke en nettverksfeil." in text
    assert "1. Strømbrudd: stedet mistet strømmen, ikke nettet (sikkerhet 0,95): ups" in text
    assert json.loads(render_json(d, "en"))["verdicts"][0]["title"] == "Power cut: the site lost power, not its network"


def test_a_ups_gone_quiet_while_the_site_still_measures_is_less_sure() -> None:
    src = MemorySource()
    clean_network(src)
    host_samples(src, 60, lambda i: 10.0)  # the agent measures all ten minutes: its PC had power
    ups_polls(src, [(0.0, 24.0, 0.0), (1.0, 21.0, 40.0)] + [(0.0, None, 0.0)] * 8)
    d = run_checks(src, ups_inventory())
    (verdict,) = [v for v in d.verdicts if v.kind == "power_cut"]
    assert verdict.confidence == 0.8 and verdict.evidence["agents_silent"] == 0
    assert "agentene på stedet ble hørt i mellomtiden" in render_text(d, "nb")


def test_a_cut_the_ups_bridged_is_said_as_such() -> None:
    src = MemorySource()
    clean_network(src)
    host_samples(src, 60, lambda i: 10.0)
    ups_polls(src, [(0.0, 24.0, 0.0), (1.0, 22.0, 20.0), (1.0, 19.0, 80.0), (0.0, 19.0, 0.0), (0.0, 20.0, 0.0)])
    d = run_checks(src, ups_inventory())
    (verdict,) = [v for v in d.verdicts if v.kind.startswith("power")]
    assert (verdict.kind, verdict.confidence, verdict.ranges) == ("power_cut_bridged", 0.6, [(T0 + 40 * S, T0 + 180 * S)])
    assert d.checks["power_cut"] == "verdict"
    assert "og var på strømnettet igjen kl." in render_text(d, "nb")


def test_a_ups_on_line_all_along_is_clean() -> None:
    src = MemorySource()
    clean_network(src)
    ups_polls(src, [(0.0, 24.0, 0.0)] * 10)
    d = run_checks(src, ups_inventory())
    assert d.checks["power_cut"] == "clean" and not [v for v in d.verdicts if v.kind.startswith("power")]


# --- rendering ---------------------------------------------------------------------------------------


def test_text_in_norwegian_has_decimal_comma_and_norwegian_times() -> None:
    d = saturated_diagnosis()
    text = render_text(d, "nb", "Europe/Oslo")
    assert text.startswith("Diagnose for Skolen (skole)\nTidsrom: 18.11.2026 12:06–12:16 CET\n")
    assert "1. Opplinken er mettet (sikkerhet 0," in text
    assert "utnyttelse opptil 97,5 %" in text and "korrelasjon 0,99 over 19 intervaller à 30 s" in text
    assert "Gjelder: 18.11.2026 12:10–12:13" in text
    assert "Grunnlag: enhet: fw; grensesnitt: wan1; korrelasjon: 0,99; intervaller: 19; intervallengde: 30 s; høyeste utnyttelse: 97,5 %;" in text
    assert "linjehastighet: 10\u00a0000\u00a0000 bit/s" in text  # grouped by a no-break space
    assert span(T0, T0 + 60 * S, "nb", "Europe/Oslo") == "18.11.2026 12:06–12:07 CET"
    english = render_text(d, "en", "Europe/Oslo")
    assert "1. The uplink is saturated (confidence 0." in english and "utilisation up to 97.5 %" in english
    assert span(T0, T0 + 60 * S, "en", "UTC") == "2026-11-18 11:06–11:07 UTC"


def test_markdown_and_json() -> None:
    d = saturated_diagnosis()
    md = render_markdown(d, "nb")
    assert md.startswith("# Diagnose for Skolen (skole)") and "| 1 | Opplinken er mettet | 0," in md and "## Kontroller" in md
    assert "| høyeste utnyttelse | 97,5 % |" in md and "| forsinkelse, ledig linje | 7 ms |" in md
    data = json.loads(render_json(d, "en"))
    v = data["verdicts"][0]
    assert v["kind"] == "uplink_saturated" and v["evidence"]["peak_util_pct"] == 97.5
    assert v["ranges"][0]["start"] == "2026-11-18T11:10:40+00:00" and v["ranges"][0]["start_ns"] == T0 + 240 * S
    assert data["checks"]["uplink_saturated"] == "verdict" and data["language"] == "en"
    assert data["resolution"] == "raw"  # what the checks read (tests/test_diagnose_rollups.py: 5m)


# --- the command ---------------------------------------------------------------------------------------


def local_inventory(tmp_path: Path, language: str = "nb") -> Path:
    """The school without a named uplink: the teacher's PC and its icmp probes; the store is the local one (fill_local_store)."""
    return (
        InventoryBuilder(tmp_path)
        .alerting(language=language)
        .site("skole", "Skolen")
        .site("hall", "Rådhuset")
        .agent("pc1", name="Lærer-pc", site="skole")
        .probe("gw", "icmp", GW, sites=["skole"])
        .probe("internett", "icmp", "192.0.2.10", sites=["skole"])
        .write()
    )


def fill_local_store(tmp_path: Path) -> None:
    """A real durable queue as the collector leaves it with storage.kind = "local": a busy CPU, a clean network."""
    queue = DurableQueue(tmp_path / "data" / "queue.sqlite3")
    now = time.time_ns()
    try:
        points = []
        for i in range(30):
            t = now - (300 - i * 10) * S
            points.append(Point("host", {"site": "skole", "host": "pc1"}, {"cpu_pct": 98.0, "mem_used_pct": 30.0}, t))
            for target in ("gw", "internett"):
                points.append(Point("probe", {"site": "skole", "host": "pc1", "kind": "icmp", "target": target}, {"up": 1.0, "rtt_ms": 1.5, "sent": 5.0, "received": 5.0}, t))
        queue.put("agent:pc1", 1, points)
    finally:
        queue.close()


def test_cli_text_json_markdown_from_the_local_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = local_inventory(tmp_path)
    fill_local_store(tmp_path)
    report = tmp_path / "skole.md"
    assert nettvakt(["diagnose", "skole", "--inventory", str(inventory), "--since", "1h", "--markdown", str(report)]) == 0
    text = capsys.readouterr().out
    assert "1. Maskinen selv er overbelastet (sikkerhet 0," in text and "pc1: CPU over 90 % i 100 % av målingene" in text
    assert "Oppgi stedets opplink" in text  # what to add, in Norwegian by default ([alerting] language)
    assert report.read_text(encoding="utf-8").startswith("# Diagnose for Skolen (skole)")

    assert nettvakt(["diagnose", "skole", "--inventory", str(inventory), "--since", "3600", "--json", "--lang", "en"]) == 0
    data = json.loads(capsys.readouterr().out)
    top = data["verdicts"][0]
    assert top["kind"] == "host_saturated" and top["evidence"]["host"] == "pc1" and top["evidence"]["samples"] == 30
    assert top["title"] == "The machine itself is saturated"
    assert any(m["code"] == "name_uplink" and m["text"].startswith("Name the site's uplink") for m in data["missing"])


def test_cli_language_from_the_inventory_and_thin_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = local_inventory(tmp_path, language="en")
    fill_local_store(tmp_path)
    assert nettvakt(["diagnose", "skole", "--inventory", str(inventory), "--since", "15"]) == 0
    text = capsys.readouterr().out
    # "Not enough data" is no finding: no confidence attached; the checks named in the report's language.
    assert text.startswith("Diagnosis for Skolen (skole)") and "1. Not enough data to judge: skole\n" in text, text
    assert "(confidence" not in text and "uplink_saturated" not in text and "machine saturated too little data" in text
    assert "Wait for more data or widen --since" in text


def test_cli_unknown_site_bad_inventory_and_unreadable_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = local_inventory(tmp_path)
    assert nettvakt(["diagnose", "nowhere", "--inventory", str(inventory)]) == 2
    assert "no site 'nowhere' in the inventory; known sites: skole, hall" in capsys.readouterr().err

    assert nettvakt(["diagnose", "skole", "--inventory", str(inventory)]) == 1  # no collector has run: no local store
    assert str(tmp_path / "data" / "queue.sqlite3") in capsys.readouterr().err

    url = f"http://127.0.0.1:{free_port()}"
    text = inventory.read_text(encoding="utf-8").replace("[collector]", f'[storage]\nkind = "influxdb_v1"\nurl = "{url}"\ndatabase = "nettvakt"\n[collector]')
    inventory.write_text(text, encoding="utf-8")
    assert nettvakt(["diagnose", "skole", "--inventory", str(inventory)]) == 1
    assert url in capsys.readouterr().err

    broken = tmp_path / "broken.toml"
    broken.write_text("[[site]]\nid = 3\n", encoding="utf-8")
    assert nettvakt(["diagnose", "skole", "--inventory", str(broken)]) == 2
    assert f"{broken}:2: site #1: id: expected a string (in quotes), got 3" in capsys.readouterr().err


def test_thin_data_says_who_is_silent_in_plain_words() -> None:
    """A device that stopped answering and an agent that reported nothing are named, with the time."""
    inventory = parse_inventory({
        "alerting": {"language": "en", "timezone": "Europe/Oslo"},
        "site": [{"id": "vannvag", "name": "Vannvåg", "uplink": "sw-vannvag"}],
        "device": [{"id": "sw-vannvag", "name": "Svitsj", "site": "vannvag", "host": "10.0.0.2",
                    "hardware": {"kind": "switch", "lifetime_years": 8}, "snmp": {"community": "env:X"}}],
        "agent": [{"id": "vannvag-ops", "name": "OPS", "site": "vannvag", "token_sha256": "1" * 64}],
    })
    ctx = site_context(inventory, "vannvag")
    start = 1_796_000_000 * S
    polls = [Sample(start + k * 60 * S, {"device": "sw-vannvag", "site": "vannvag"}, {"up": 1.0 if k < 3 else 0.0}) for k in range(10)]
    result = diagnose(ctx, SiteData(start, start + 600 * S, device=polls))
    text = render_text(result, "en", "Europe/Oslo")
    answered = clock.local((start + 2 * 60 * S) / 1e9, "Europe/Oslo", "%H:%M")
    assert f"sw-vannvag has not answered SNMP since {answered}." in text, text
    assert "The agent vannvag-ops reported nothing in the window" in text
    assert json.loads(render_json(result, "en"))["verdicts"][0]["confidence"] is None

