"""The status pages' history (issue 20): strips, availability, uplink, latency and the alert
timeline, drawn as SVG from what is stored, from InfluxDB (a real influxd, written through the
collector's own sink) and from the local store, checked on the SVG's elements and values.

One night of Vannvåg, relative to now (T): the whole site down from T-3h for 10 minutes (its
uplink switch and both agents), the internet target down for 20 minutes at T-8h while the site
was up (degraded), an hour of slow pings (80 ms instead of 10) from T-6h, an hour of 10 % loss
from T-12h, and the same hour yesterday at 20 ms. The uplink carries 200 kbit/s in and 100 out,
950 in during the slow hour, on a 1 Mbit/s line.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path

import aiohttp
import pytest

from agent.points import Point
from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.app import create_app
from collector.appkeys import QUEUE
from collector.config import Inventory, parse_inventory
from collector.history import HistoryService
from collector.queue import DurableQueue
from collector.service import CollectorService
from collector.status import overview, sections
from collector.status import device as device_page
from collector.svg import WIDTH
from inventories import InventoryBuilder
from browser import chromium_driver, console_problems
from serving import serving
from test_reports_hardware import write_through_collector_sink

REPO = Path(__file__).resolve().parents[1]
HOUR = 3600.0
OUTAGE = (-3 * HOUR, -3 * HOUR + 600)  # the whole site down
DEGRADED = (-8 * HOUR, -8 * HOUR + 1200)  # the internet target down, the site up
SLOW = (-6 * HOUR, -5 * HOUR)  # 80 ms
LOSSY = (-12 * HOUR, -11 * HOUR)  # 10 % loss
YESTERDAY = (-25 * HOUR, -24 * HOUR)  # 20 ms: the last hour (10 ms) is 10 ms faster
HISTORY_START = -26 * HOUR
BEAT = 300.0
# A point of the SVG is rounded to a tenth of a unit: of time, a tenth of WIDTH's share of a day.
X_TOLERANCE_S = 0.1 / WIDTH * 86400 + 1


def vannvag(folder: Path) -> InventoryBuilder:
    return (
        InventoryBuilder(folder, organisation="Karlsøy kommune")
        .site("vannvag", "Teknisk utestasjon Vannvåg", uplink="sw-vannvag")
        .device("sw-vannvag", name="Svitsj Vannvåg", snmp={"community": "env:NETTVAKT_TEST_COMMUNITY", "important_interfaces": ["0/1"],
                                                        "interface_speed_bps": {"0/1": 1_000_000}})
        .agent("vannvag-1", name="Driftspc")
        .agent("vannvag-2", name="SD-anlegg")
        .probe("internett", "icmp", "192.0.2.1", agents=["vannvag-1"])
        .probe("gw", "icmp", "192.0.2.254", agents=["vannvag-1"])
    )


def within(t: float, span: tuple[float, float], now: float) -> bool:
    return now + span[0] <= t < now + span[1]


def night(now: float) -> list[Point]:
    """Every point of the scenario, as the collector and its agents write them."""
    points: list[Point] = []
    ns = lambda t: int(t * 1e9)  # noqa: E731
    site = {"site": "vannvag"}
    # Availability: stored on change and once per beat, up_s/judged_s since the series' previous point.
    series = {
        ("agent", "vannvag-1"): [OUTAGE], ("agent", "vannvag-2"): [OUTAGE], ("device", "sw-vannvag"): [OUTAGE],
        ("target", "internett"): [OUTAGE, DEGRADED], ("target", "gw"): [OUTAGE],
    }
    for (kind, ident), downs in series.items():
        tags = {**site, "kind": kind}
        tags.update({"device": ident} if kind == "device" else {"host": ident} if kind == "agent" else {"target": ident, "host": "vannvag-1"})
        times = {now + HISTORY_START + i * BEAT for i in range(int(-HISTORY_START // BEAT) + 1)}
        times |= {now + edge for down in downs for edge in down}
        previous: tuple[float, bool] | None = None
        for t in sorted(times):
            up = not any(within(t, d, now) for d in downs)
            fields = {"up": 1.0 if up else 0.0}
            if previous is not None:
                fields.update(judged_s=t - previous[0], up_s=t - previous[0] if previous[1] else 0.0)
            points.append(Point("availability", tags, fields, ns(t)))
            previous = (t, up)
    # Probe rounds every minute from vannvag-1; none while the site is down (nothing reached the collector).
    t = now + HISTORY_START
    while t < now:
        if not within(t, OUTAGE, now):
            for target in ("internett", "gw"):
                rtt = 80.0 if within(t, SLOW, now) else 20.0 if within(t, YESTERDAY, now) else 10.0
                received = 9.0 if within(t, LOSSY, now) else 10.0
                up = not (target == "internett" and within(t, DEGRADED, now))
                fields = ({"up": 1.0, "rtt_ms": rtt, "rtt_min_ms": rtt * 0.75, "rtt_max_ms": rtt * 1.5, "loss_pct": 100 - 10 * received,
                           "sent": 10.0, "received": received} if up else {"up": 0.0, "loss_pct": 100.0, "sent": 10.0, "received": 0.0,
                                                                           "reason": "no reply"})
                points.append(Point("probe", {**site, "host": "vannvag-1", "kind": "icmp", "target": target}, fields, ns(t)))
            for ifname, scale in (("0/1", 1.0), ("0/2", 0.1)):
                in_bps = (950_000.0 if within(t, SLOW, now) else 200_000.0) * scale
                points.append(Point("interface", {**site, "device": "sw-vannvag", "ifname": ifname}, {
                    "in_bps": in_bps, "out_bps": 100_000.0 * scale, "speed_bps": 1e9, "in_errors_ps": 0.5 if within(t, SLOW, now) and ifname == "0/1" else 0.0,
                    "out_errors_ps": 0.0, "in_discards_ps": 0.0, "out_discards_ps": 0.0}, ns(t)))
            points.append(Point("device", {**site, "device": "sw-vannvag"}, {"up": 1.0, "cpu_pct": 35.0, "mem_used_pct": 60.0}, ns(t)))
        t += 60.0
    return points


def write_alert_history(inventory: Inventory, now: float) -> None:
    """The site alert of the outage, acknowledged by kari two minutes in, as the alerting writes it."""
    start = now + OUTAGE[0] + 30
    entry = {"rule": "site-down", "severity": "critical", "site": "vannvag", "subject": "vannvag",
             "summary": "Teknisk utestasjon Vannvåg unreachable", "affected": 2}
    AlertHistory(inventory.data_dir() / HISTORY_FILE).append([
        {**entry, "time": start, "state": "firing"},
        {**entry, "time": start + 90, "state": "acknowledged", "by": "kari", "summary": "... (acknowledged by kari)"},
        {**entry, "time": now + OUTAGE[1] + 5, "state": "resolved"},
    ])


def fill_local_store(inventory: Inventory, points: list[Point]) -> None:
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3")
    try:
        for n in range(0, len(points), 500):
            queue.put("agent:test", n, points[n: n + 500])
    finally:
        queue.close()


# --- reading the page back ------------------------------------------------------------------------

@dataclass
class Chart:
    root: ET.Element
    t0: float
    t1: float
    vmax: float
    height: float

    def time(self, x: float) -> float:
        return self.t0 + x / WIDTH * (self.t1 - self.t0)

    def value(self, y: float) -> float:
        return (self.height - y) / self.height * self.vmax

    def points(self, element: ET.Element) -> list[tuple[float, float]]:
        """(time, value) of each point of a polyline or polygon."""
        pairs = [tuple(map(float, p.split(","))) for p in element.get("points", "").split()]
        return [(self.time(x), self.value(y)) for x, y in pairs]

    def find(self, tag: str, css_class: str) -> list[ET.Element]:
        return [e for e in self.root.iter(tag) if css_class in e.get("class", "").split()]


def charts(html: str) -> list[tuple[str, Chart]]:
    """Every chart of a page, with the class of its box (strip, latency, lines), in page order."""
    out = []
    for kind, svg in re.findall(r'<div class="chart (\w+)">(<svg .*?</svg>)', html, re.S):
        root = ET.fromstring(svg)
        height = float(root.get("viewBox", "").split()[3])
        out.append((kind, Chart(root, float(root.get("data-t0")), float(root.get("data-t1")), float(root.get("data-vmax")), height)))
    return out


def section(html: str, site: str) -> str:
    match = re.search(rf'<section id="site-{site}">.*?</section>', html, re.S)
    assert match is not None, f"no section for {site}"
    return match.group(0)


def text_of(fragment: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


def render_overview(inventory: Inventory, tmp_path: Path, now: float, view: str = "24h") -> str:
    queue = DurableQueue(tmp_path / "live-queue.sqlite3")  # the live state's queue; the history is in the store
    try:
        service = CollectorService(inventory, queue)
        history = sections.gather(HistoryService(), inventory, view, now)
        assert history.error is None, history.error
        return overview.render_status(service, int(now * 1e9), {}, None, history, view)
    finally:
        queue.close()


def check_night(html: str, now: float) -> None:
    """What an on-call person must see of the night, on the SVG's elements and values."""
    site = section(html, "vannvag")
    found = charts(site)
    strip = next(c for kind, c in found if kind == "strip")
    assert strip.t1 == pytest.approx(now, abs=1) and strip.t0 == pytest.approx(now - 86400, abs=1)
    # The outage: one down rect, from the uplink's down verdict to its up verdict, placed where those times are.
    (down,) = strip.find("rect", "down")
    assert float(down.get("data-start")) == pytest.approx(now + OUTAGE[0], abs=1)
    assert float(down.get("data-end")) == pytest.approx(now + OUTAGE[1], abs=1)
    assert strip.time(float(down.get("x"))) == pytest.approx(now + OUTAGE[0], abs=X_TOLERANCE_S)
    assert strip.time(float(down.get("x")) + float(down.get("width"))) == pytest.approx(now + OUTAGE[1], abs=X_TOLERANCE_S)
    title = down.find("title").text or ""
    assert re.match(r"nede \d\d:\d\d–\d\d:\d\d \(10 min\)", title), title
    # Degraded while the internet target was down and the site up.
    (degraded,) = strip.find("rect", "degraded")
    assert float(degraded.get("data-start")) == pytest.approx(now + DEGRADED[0], abs=1)
    assert float(degraded.get("data-end")) == pytest.approx(now + DEGRADED[1], abs=1)
    said = text_of(site)
    assert re.search(r"Avbrudd: \d\d\.\d\d\.\d{4} \d\d:\d\d CES?T–\d\d:\d\d \(10 min\)", said), said
    # Availability: 10 minutes down of what is known (the 26 hours written).
    known = -HISTORY_START
    expected = 100 * (known - 600) / known
    match = re.search(r"Tilgjengelighet 7 døgn: ([\d,]+) % · 30 døgn: ([\d,]+) %", said)
    assert match is not None, said
    assert [float(g.replace(",", ".")) for g in match.groups()] == [pytest.approx(expected, abs=0.011)] * 2
    # The uplink: its line interface (the important one), in during the slow hour near capacity, the capacity line at 1 Mbit/s.
    lines = [c for kind, c in found if kind == "lines"]
    uplink = lines[0]
    (limit,) = uplink.find("line", "limit")
    assert float(limit.get("data-value")) == 1_000_000
    assert uplink.value(float(limit.get("y1"))) == pytest.approx(1_000_000, rel=0.002)
    inbound = [p for polygon in uplink.find("polygon", "in") for p in uplink.points(polygon)[:-2]]
    slow_in = [v for t, v in inbound if within(t, (SLOW[0] + 600, SLOW[1] - 600), now)]
    quiet_in = [v for t, v in inbound if not within(t, (SLOW[0] - 600, SLOW[1] + 600), now)]
    assert slow_in and all(v == pytest.approx(950_000, abs=uplink.vmax / 1000) for v in slow_in), slow_in
    assert quiet_in and all(v == pytest.approx(200_000, abs=uplink.vmax / 1000) for v in quiet_in)
    assert "Linja ut (sw-vannvag 0/1)" in said
    # The internet target: median 10 ms, 80 in the slow hour, its band reaching the slowest echo (120),
    # the lossy hour's line in the 5–20 % class.
    latency = [c for kind, c in found if kind == "latency"]
    internet = latency[0]
    medians = [p for line in internet.find("polyline", "median") for p in internet.points(line)]
    inside = lambda span: [v for t, v in medians if within(t, (span[0] + 600, span[1] - 600), now)]  # noqa: E731
    tolerance = internet.vmax / 1000
    assert inside(SLOW) and all(v == pytest.approx(80, abs=tolerance) for v in inside(SLOW))
    calm = [v for t, v in medians if not any(within(t, (s[0] - 600, s[1] + 600), now) for s in (SLOW, DEGRADED, OUTAGE, YESTERDAY))]
    assert len(calm) > 100 and all(v == pytest.approx(10, abs=tolerance) for v in calm)
    band = [p for polygon in internet.find("polygon", "band") for p in internet.points(polygon)]
    assert max(v for t, v in band if within(t, SLOW, now)) == pytest.approx(120, abs=tolerance)
    lossy = [t for line in internet.find("polyline", "l2") for t, _ in internet.points(line)]
    # A bucket the target's 20 minutes down only partly cover may read 5-20 % too (where the buckets
    # fall depends on the time of day); its stroke starts at the bucket before: 1.5 buckets each side.
    around_down = (DEGRADED[0] - 900, DEGRADED[1] + 900)
    assert lossy and all(now + LOSSY[0] - 600 <= t <= now + LOSSY[1] + 600 or within(t, around_down, now) for t in lossy), lossy
    assert any(within(t, (LOSSY[0] + 600, LOSSY[1] - 600), now) for t in lossy)
    # The target's 20 minutes down: buckets with every echo lost are shaded, the median into a bucket partly lost is over 20 %.
    lost = [(internet.time(float(r.get("x"))), internet.time(float(r.get("x")) + float(r.get("width")))) for r in internet.find("rect", "lost")]
    # A bucket is shaded when every round in it was lost: it may begin or end up to one round (60 s)
    # beyond the 20 minutes, where no round fell between their edge and the bucket's.
    lost_edge = 60 + X_TOLERANCE_S
    assert lost and all(now + DEGRADED[0] - lost_edge <= a and b <= now + DEGRADED[1] + lost_edge for a, b in lost), lost
    worst = [t for line in internet.find("polyline", "l3") for t, _ in internet.points(line)]
    assert all(now + DEGRADED[0] - 1200 <= t <= now + DEGRADED[1] + 1200 for t in worst), worst
    # Now against yesterday: the last hour at 10 ms, the same hour yesterday at 20.
    row = next(r for r in re.findall(r"<tr>.*?</tr>", site, re.S) if text_of(r).startswith("internett icmp vannvag-1"))
    assert "-10,0 ms (10,0 ms, i går 20,0 ms)" in text_of(row)
    # The alert timeline: the site alert where it fired, with who acknowledged it.
    timeline = [c for kind, c in found if kind == "strip"][1]
    (alert,) = timeline.find("rect", "critical")
    assert float(alert.get("data-start")) == pytest.approx(now + OUTAGE[0] + 30, abs=1)
    assert float(alert.get("data-end")) == pytest.approx(now + OUTAGE[1] + 5, abs=1)
    assert re.search(r"Teknisk utestasjon Vannvåg unreachable kari, \d\d\.\d\d\.\d{4} \d\d:\d\d CES?T", said), said


@pytest.fixture
def now() -> float:
    return float(int(time.time()))


def test_the_night_from_influxdb(influx_db: tuple, tmp_path: Path, now: float) -> None:
    server, database = influx_db
    inventory = vannvag(tmp_path).influxdb(server.url, database).parse()
    asyncio.run(write_through_collector_sink(inventory, night(now)))
    write_alert_history(inventory, now)
    check_night(render_overview(inventory, tmp_path, now), now)


@pytest.mark.parametrize("phase_s", [20.0, 310.0, 590.0])
def test_the_night_from_the_local_store(tmp_path: Path, phase_s: float) -> None:
    """Where the 10-minute buckets fall against the night's edges depends on the time of day: three
    phases of `now` against the bucket grid, chosen, rather than the clock's."""
    now = (time.time() // 600 - 1) * 600 + phase_s
    inventory = vannvag(tmp_path).storage("local").parse()
    fill_local_store(inventory, night(now))
    write_alert_history(inventory, now)
    check_night(render_overview(inventory, tmp_path, now), now)


def test_the_last_hour_by_the_minute(tmp_path: Path, now: float) -> None:
    """`?latency=1h`: the latency charts and the uplink over the last hour in minute buckets, one
    round a minute each (the night's last hour: 10 ms, 200 kbit/s in); the strip stays a day."""
    inventory = vannvag(tmp_path).storage("local").parse()
    fill_local_store(inventory, night(now))
    site = section(render_overview(inventory, tmp_path, now, view="1h"), "vannvag")
    found = charts(site)
    strip = next(c for kind, c in found if kind == "strip")
    assert strip.t1 - strip.t0 == pytest.approx(86400, abs=1)
    uplink = next(c for kind, c in found if kind == "lines")
    assert uplink.t1 == pytest.approx(now, abs=1) and uplink.t0 == pytest.approx(now - 3600, abs=1)
    inbound = [(t, v) for polygon in uplink.find("polygon", "in") for t, v in uplink.points(polygon)[:-2]]
    assert len(inbound) >= 59 and all(v == pytest.approx(200_000, abs=uplink.vmax / 1000) for _, v in inbound)
    assert "Linja ut (sw-vannvag 0/1), siste time" in text_of(site)
    internet = next(c for kind, c in found if kind == "latency")
    assert internet.t0 == pytest.approx(now - 3600, abs=60)
    medians = [(t, v) for line in internet.find("polyline", "median") for t, v in internet.points(line)]
    # A point per minute bucket, at its middle; every round of the hour at 10 ms.
    assert len(medians) >= 59 and all(v == pytest.approx(10, abs=internet.vmax / 1000) for _, v in medians)
    assert all(b - a == pytest.approx(60, abs=2 * 0.1 / WIDTH * 3600) for (a, _), (b, _) in zip(medians, medians[1:]))
    assert "<b>siste time</b>" in site


# --- served: pages, their parts, gzip ---------------------------------------------------------------

def test_pages_are_served_gzipped_with_their_live_parts(tmp_path: Path, now: float) -> None:
    builder = vannvag(tmp_path).storage("local").collector(status_refresh_s=2)
    inventory = builder.parse()
    fill_local_store(inventory, night(now))

    async def scenario() -> None:
        app = create_app(inventory, alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base, aiohttp.ClientSession(base, auto_decompress=False) as http:
            async with http.get("/", headers={"Accept-Encoding": "gzip"}) as resp:
                assert resp.status == 200 and resp.headers["Content-Encoding"] == "gzip"
                assert "'sha256-" in resp.headers["Content-Security-Policy"] and resp.headers["Cache-Control"] == "no-store"
                page = gzip.decompress(await resp.read()).decode()
            assert page.startswith("<!DOCTYPE html>") and '<main id="main">' in page and ",2000)" in page  # refreshed every 2 s
            assert 'href="/site/vannvag"' in page and 'href="/device/sw-vannvag"' in page
            for path, must in (("/?part=main", 'id="site-vannvag"'), ("/site/vannvag?part=main&latency=7d", "<b>7 døgn</b>"),
                               ("/device/sw-vannvag?part=main", "Svitsj Vannvåg")):
                async with http.get(path, headers={"Accept-Encoding": "identity"}) as resp:  # a client without gzip: plain
                    assert resp.status == 200 and "Content-Encoding" not in resp.headers, path
                    part = await resp.text()
                assert "<html" not in part and "<script" not in part and must in part, path
            async with http.get("/site/vannvag", headers={"Accept-Encoding": "identity"}) as resp:
                site = await resp.text()
            assert "<title>Teknisk utestasjon Vannvåg – nettvakt – Karlsøy kommune</title>" in site
            assert [kind for kind, _ in charts(site)].count("latency") == 2
            async with http.get("/device/sw-vannvag", headers={"Accept-Encoding": "identity"}) as resp:
                device = await resp.text()
            # CPU and memory, and each interface's traffic; errors drawn where there were some (0/1, the slow hour).
            kinds = [kind for kind, _ in charts(device)]
            assert kinds == ["lines"] * 4, kinds
            assert "0/2: ingen feil eller forkastede pakker siste døgn." in text_of(device)
            for path in ("/site/nowhere", "/device/nothing"):
                async with http.get(path) as resp:
                    assert resp.status == 404 and "in the inventory" in (await resp.json())["error"]

    asyncio.run(scenario())


def test_the_local_store_keeps_raw_retention_days_and_no_more(tmp_path: Path) -> None:
    """The bound of the local store's history: batches received more than raw_retention_days ago
    are removed at the collector's start (and hourly), counted as expired, not as dropped."""
    inventory = vannvag(tmp_path).storage("local", raw_retention_days=2).parse()
    now_ns = time.time_ns()
    day_ns = 86400 * 10**9
    queue = DurableQueue(inventory.data_dir() / "queue.sqlite3")
    try:
        for seq, age_days in enumerate((3.0, 2.1, 1.9, 0.0)):
            point = Point("probe", {"site": "vannvag", "host": "vannvag-1", "kind": "icmp", "target": "gw"}, {"up": 1.0, "rtt_ms": 10.0 + seq},
                          now_ns - int(age_days * day_ns))
            queue.put("agent:vannvag-1", seq, [point])
            # As if received then: the queue stamps a batch with its arrival.
            queue._db.execute("UPDATE batch SET received_ns = ? WHERE seq = ?", (now_ns - int(age_days * day_ns), seq))
    finally:
        queue.close()

    async def scenario() -> tuple[dict, list[float]]:
        app = create_app(inventory, alerting=None)
        async with serving(app, shutdown_timeout=0.1):
            deadline = time.monotonic() + 20
            while app[QUEUE].stats()["expired_points"] < 2:
                assert time.monotonic() < deadline, app[QUEUE].stats()
                await asyncio.sleep(0.05)  # the expiry runs at start; this only waits for its thread
            stats = app[QUEUE].stats()
            kept = [p.fields["rtt_ms"] for batch in app[QUEUE].peek(100) for p in batch.points if p.measurement == "probe"]
        return stats, kept

    stats, kept = asyncio.run(scenario())
    assert stats["expired_points"] == 2 and stats["dropped_points"] == 0
    assert kept == [12.0, 13.0]  # the 1.9-day-old batch and today's


def example_inventory(folder: Path) -> Inventory:
    """The shipped inventory.toml (8 agents measuring 24 targets, 7 sites), on a local store in `folder`."""
    data = tomllib.loads((REPO / "inventory.toml").read_text(encoding="utf-8"))
    data["storage"] = {"kind": "local"}
    data["collector"] = {"data_dir": str(folder / "data")}
    return parse_inventory(data, REPO / "inventory.toml")


def example_day(inventory: Inventory, now: float) -> list[Point]:
    """A day of every probe target and uplink of the example, at its interval, with some wobble."""
    points = []
    for agent in inventory.agent:
        for probe in inventory.probes_for(agent):
            t, n = now - 86400 - 3600, 0
            while t < now:
                rtt = 8.0 + (n * 7919 % 13) + (40.0 if agent.site == "vannvag" and n % 50 < 3 else 0.0)
                points.append(Point("probe", {"site": agent.site, "host": agent.id, "kind": probe.kind, "target": probe.name},
                                    {"up": 1.0, "rtt_ms": rtt, "connect_ms": rtt, "ttfb_ms": rtt, "resolve_ms": rtt,
                                     "rtt_min_ms": rtt * 0.8, "rtt_max_ms": rtt * 1.6, "loss_pct": float(n % 97 == 0) * 10}, int(t * 1e9)))
                t += probe.interval_s
                n += 1
    uplinks = {s.uplink for s in inventory.site}
    for device in inventory.device:
        if device.id in uplinks and device.snmp is not None:
            ifname = (device.snmp.important_interfaces or list(device.snmp.interface_speed_bps) or ["1"])[0]
            for i in range(24 * 60):
                t = now - 86400 + i * 60
                points.append(Point("interface", {"site": device.site, "device": device.id, "ifname": ifname},
                                    {"in_bps": 300_000.0 + (i * 104729 % 500_000), "out_bps": 90_000.0 + (i * 7 % 50_000), "speed_bps": 1e8},
                                    int(t * 1e9)))
    return points


def test_the_overview_of_the_example_inventory_is_small(tmp_path: Path, now: float, artifacts_dir: Path) -> None:
    """Built for the outstation lines: the overview of the shipped inventory, a day of history for
    every target and uplink, well under 100 kB compressed (the figure is in docs/benchmarks.md)."""
    inventory = example_inventory(tmp_path)
    fill_local_store(inventory, example_day(inventory, now))
    started = time.perf_counter()
    html = render_overview(inventory, tmp_path, now)
    rendered_s = time.perf_counter() - started
    compressed = gzip.compress(html.encode(), 6)
    (artifacts_dir / "overview-example.html").write_text(html, encoding="utf-8")
    print(f"overview of the example inventory: {len(html.encode())} bytes, {len(compressed)} gzipped, read and drawn in {rendered_s:.2f} s")
    assert [kind for kind, _ in charts(html)].count("latency") == sum(len(inventory.probes_for(a)) for a in inventory.agent) == 24
    assert len(compressed) < 60_000, len(compressed)


def test_overview_and_site_page_in_headless_chromium(tmp_path: Path, now: float, artifacts_dir: Path) -> None:
    """A browser loads the overview and the site page with no console errors (the CSP lets the
    page's own script run), the page refreshes its live part in place, and a phone-sized window
    needs no sideways scrolling of the page."""
    inventory = vannvag(tmp_path).storage("local").collector(status_refresh_s=1).parse()
    fill_local_store(inventory, night(now))
    write_alert_history(inventory, now)

    async def scenario() -> None:
        app = create_app(inventory, alerting=None)
        async with serving(app, shutdown_timeout=0.1) as base:
            browser = await asyncio.to_thread(chromium_driver)
            try:
                await asyncio.to_thread(browser.set_window_size, 1280, 1600)
                await asyncio.to_thread(browser.get, base + "/")
                assert browser.title == "nettvakt – Karlsøy kommune"
                # Marks: one on the window (gone if the page reloads), one in <main> (gone when the part is replaced).
                summary = await asyncio.to_thread(browser.execute_script,
                                                  "window.kept = 1; document.getElementById('summary').dataset.old = 1;"
                                                  "return document.getElementById('summary').textContent")
                deadline = time.monotonic() + 20
                while await asyncio.to_thread(browser.execute_script, "return document.getElementById('summary').dataset.old") is not None:
                    assert time.monotonic() < deadline, "the live part was never replaced"
                    await asyncio.sleep(0.2)  # the page's own refresh (every second here) ends this
                assert await asyncio.to_thread(browser.execute_script, "return window.kept") == 1
                assert summary.startswith("0 av 2 agenter oppe")
                strips = await asyncio.to_thread(browser.execute_script, "return document.querySelectorAll('#site-vannvag .strip rect.down').length")
                assert strips == 1
                await asyncio.to_thread(browser.save_screenshot, str(artifacts_dir / "overview.png"))
                await asyncio.to_thread(browser.get, base + "/site/vannvag?latency=7d")
                assert browser.title.startswith("Teknisk utestasjon Vannvåg")
                await asyncio.to_thread(browser.save_screenshot, str(artifacts_dir / "site-vannvag-7d.png"))
                await asyncio.to_thread(browser.set_window_size, 390, 844)
                await asyncio.to_thread(browser.get, base + "/site/vannvag")
                overflow = await asyncio.to_thread(browser.execute_script, "return document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 0, overflow
                await asyncio.to_thread(browser.save_screenshot, str(artifacts_dir / "site-vannvag-phone.png"))
                assert await asyncio.to_thread(console_problems, browser) == []
            finally:
                await asyncio.to_thread(browser.quit)
        for shot in ("overview.png", "site-vannvag-7d.png", "site-vannvag-phone.png"):
            assert (artifacts_dir / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    asyncio.run(scenario())
