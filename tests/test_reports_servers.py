"""`nettvakt report servers` on real stores: the same points written into a real InfluxDB
(influx_db fixture) and into the collector's durable queue (local store), read back through
collector/timeseries.py, and the report asserted: applications and ports, averages and peaks,
and the little-used server named as a candidate with its numbers.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from agent.cli import main
from agent.points import Point
from collector.config import load_inventory
from collector.lineprotocol import encode_points
from collector.queue import DurableQueue
from collector.writer import make_sink
from inventories import InventoryBuilder

MINUTE_NS = 60 * 10**9
SAMPLES = 60

# srv-idle: avg 2 %, peak 8 %: a candidate. srv-sak: avg 4 % but a nightly peak of 35 %: in use.
# srv-busy: avg 60 %. pc-1 is a PC without service checks: not a server. srv-new has one sample.
CPU = {
    "srv-idle": [1.0, 2.0, 3.0] * 19 + [1.0, 8.0, 1.0],
    "srv-sak": [3.0] * 59 + [35.0],
    "srv-busy": [40.0, 60.0, 80.0] * 20,
    "pc-1": [1.0] * SAMPLES,
}
MEM = {"srv-idle": 20.0, "srv-sak": 55.0, "srv-busy": 70.0, "pc-1": 30.0}
LISTEN = {
    "srv-idle": [("sshd", "22", "tcp:0.0.0.0:22 tcp:[::]:22"), ("nginx", "80,443", "tcp:0.0.0.0:80 tcp:0.0.0.0:443")],
    "srv-sak": [("sqlservr", "1433", "tcp:0.0.0.0:1433"), ("w3wp", "80,443", "tcp:0.0.0.0:80 tcp:0.0.0.0:443")],
    "srv-busy": [("postgres", "5432", "tcp:127.0.0.1:5432")],
    "pc-1": [("spotify", "57621", "udp:0.0.0.0:57621")],
}


def servers_inventory(folder: Path) -> InventoryBuilder:
    """srv-idle (an old HP server), srv-sak (its services watched: no hardware kind), srv-busy, srv-new; pc-1 a PC."""
    return (
        InventoryBuilder(folder)
        .agent("srv-idle", hardware={"kind": "server", "model": "HP ProLiant DL360 G7"})
        .agent("srv-sak", services=["MSSQLSERVER", "W3SVC"])
        .agent("srv-busy", hardware="server")
        .agent("srv-new", hardware="server")
        .agent("pc-1", hardware="pc")
    )


def recorded_points(end_ns: int) -> list[Point]:
    points = []
    start = end_ns - SAMPLES * MINUTE_NS
    for host, cpu in CPU.items():
        tags = {"site": "radhus", "host": host}
        for n, value in enumerate(cpu):
            t = start + n * MINUTE_NS
            mem = MEM[host] + (10.0 if n == 30 else 0.0)
            points.append(Point("host", tags, {"cpu_pct": value, "mem_used_pct": mem, "mem_total_bytes": 16.0 * 1024**3}, t))
            points.append(Point("host_disk", {**tags, "mount": "/"}, {"used_pct": 40.0 + n % 2, "total_bytes": 1e11}, t))
            points.append(Point("host_disk", {**tags, "mount": "/data"}, {"used_pct": 80.0 + (n % 3), "total_bytes": 1e12}, t))
        for name, ports, listen in LISTEN[host]:
            points.append(Point("service", {**tags, "service": name, "kind": "listen"}, {"up": 1.0, "ports": ports, "listen": listen, "sockets": 2.0, "processes": 1.0}, end_ns - 5 * MINUTE_NS))
    points.append(Point("service", {"site": "radhus", "host": "srv-sak", "service": "MSSQLSERVER"}, {"up": 1.0, "status": "running"}, end_ns - 2 * MINUTE_NS))
    points.append(Point("host", {"site": "radhus", "host": "srv-new"}, {"cpu_pct": 0.5, "mem_used_pct": 10.0}, end_ns - MINUTE_NS))
    # Before the period (--since 2h): must not count.
    points.append(Point("host", {"site": "radhus", "host": "srv-idle"}, {"cpu_pct": 99.0, "mem_used_pct": 99.0}, end_ns - 180 * MINUTE_NS))
    return points


@pytest.fixture
def influx_inventory(influx_db: tuple, tmp_path: Path) -> Path:
    server, db = influx_db
    end_ns = time.time_ns()
    path = servers_inventory(tmp_path).influxdb(server.url, db).write()

    async def write() -> None:  # the way the collector writes: its own sink
        sink = make_sink(load_inventory(path))
        assert sink is not None
        try:
            await sink.write(encode_points(recorded_points(end_ns)))
        finally:
            await sink.close()

    asyncio.run(write())
    return path


@pytest.fixture
def local_inventory(tmp_path: Path) -> Path:
    inventory = servers_inventory(tmp_path).storage("local")
    inventory.data_dir.mkdir()
    queue = DurableQueue(inventory.data_dir / "queue.sqlite3")
    try:
        points = recorded_points(time.time_ns())
        for n in range(0, len(points), 100):  # several batches, as agents send them
            queue.put("agent:test", n, points[n: n + 100])
    finally:
        queue.close()
    return inventory.write()


def report_json(path: Path, capsys: pytest.CaptureFixture[str], source: str) -> dict:
    rc = main(["report", "servers", "--inventory", str(path), "--since", "2h", "--source", source, "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def check_report(data: dict) -> None:
    servers = {s["id"]: s for s in data["servers"]}
    assert set(servers) == {"srv-idle", "srv-sak", "srv-busy", "srv-new"}  # pc-1 is no server
    assert data["candidates"] == ["srv-idle"]
    idle = servers["srv-idle"]
    assert idle["verdict"] == "candidate" and idle["why"] == "kind" and idle["model"] == "HP ProLiant DL360 G7"
    assert idle["cpu_pct"]["samples"] == SAMPLES
    assert idle["cpu_pct"]["avg"] == pytest.approx(sum(CPU["srv-idle"]) / SAMPLES)
    assert idle["cpu_pct"]["peak"] == 8.0  # the 99 % before the period does not count
    assert idle["mem_used_pct"]["avg"] == pytest.approx(20.0 + 10.0 / SAMPLES) and idle["mem_used_pct"]["peak"] == 30.0
    assert idle["disk_used_pct"]["/data"]["peak"] == 82.0 and idle["disk_used_pct"]["/"]["avg"] == pytest.approx(40.5)
    assert {a["name"]: a["ports"] for a in idle["apps"]} == {"nginx": [80, 443], "sshd": [22]}

    sak = servers["srv-sak"]
    assert sak["verdict"] == "in_use" and sak["why"] == "services"
    assert sak["cpu_pct"]["avg"] == pytest.approx((59 * 3.0 + 35.0) / 60) and sak["cpu_pct"]["peak"] == 35.0
    apps = {(a["kind"], a["name"]): a for a in sak["apps"]}
    assert apps[("listen", "sqlservr")]["ports"] == [1433] and apps[("listen", "w3wp")]["ports"] == [80, 443]
    assert apps[("configured", "MSSQLSERVER")]["up"] is True and apps[("configured", "MSSQLSERVER")]["status"] == "running"
    assert apps[("configured", "W3SVC")]["up"] is None  # configured, never reported
    assert servers["srv-busy"]["verdict"] == "in_use" and servers["srv-busy"]["cpu_pct"]["avg"] == pytest.approx(60.0)
    assert servers["srv-new"]["verdict"] == "no_data"  # one sample is no evidence


def test_report_from_influxdb(influx_inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_report(report_json(influx_inventory, capsys, "auto"))


def test_report_from_local_store(local_inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    check_report(report_json(local_inventory, capsys, "auto"))


def test_table_csv_and_html_name_the_candidate_with_evidence(local_inventory: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    base = ["report", "servers", "--inventory", str(local_inventory), "--since", "2h"]
    assert main(base) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "Servere: programmer og bruk"
    assert "Lite brukt, og kan vurderes for konsolidering eller utfasing (1): srv-idle." in lines
    evidence = next(line for line in lines if line.startswith("Rådhuset") and "Grunnlag" not in line and "CPU i snitt" in line)
    assert "srv-idle" in evidence and "CPU i snitt 2,1 %" in evidence and "topp 8,0 %" in evidence
    assert "nginx (80 443)" in evidence and "sshd (22)" in evidence
    assert "For lite data til å vurdere: srv-new." in lines

    assert main([*base, "--format", "csv", "--lang", "en"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    use_at = rows.index(["Use per server"])
    header = rows[use_at + 1]
    idle = next(r for r in rows[use_at + 2:] if len(r) > 1 and r[1] == "srv-idle")
    assert idle[header.index("CPU avg (%)")] == "2.1" and idle[header.index("CPU peak (%)")] == "8.0"
    assert idle[header.index("Disk (fullest)")] == "/data" and idle[header.index("Verdict")] == "little used"
    apps_at = rows.index(["Applications and ports"])
    assert rows[apps_at + 1][:3] == ["Server", "Application", "Ports"]
    assert ["srv-sak", "sqlservr", "1433"] in [r[:3] for r in rows[apps_at + 2:]]

    html_file = tmp_path / "servers.html"
    assert main([*base, "--format", "html", "--output", str(html_file)]) == 0

    class Cells(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.cells: list[str] = []
            self.inside = False

        def handle_starttag(self, tag: str, attrs: list) -> None:
            self.inside = tag == "td"

        def handle_data(self, data: str) -> None:
            if self.inside:
                self.cells.append(data)

        def handle_endtag(self, tag: str) -> None:
            self.inside = False

    page = Cells()
    page.feed(html_file.read_text(encoding="utf-8"))
    assert "tcp:0.0.0.0:1433" in page.cells and "lite brukt" in page.cells


def test_unreadable_store_fails_with_the_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = servers_inventory(tmp_path).storage("local").collector(data_dir=tmp_path / "nothing").write()
    rc = main(["report", "servers", "--inventory", str(path)])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot read the data" in err and str(tmp_path / "nothing") in err
