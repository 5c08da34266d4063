"""`nettvakt demo`: the whole product on this machine, as a newcomer runs it.

Real processes: the demo itself, the influxd and snmpsim it starts, the collector polling the
simulated firewall, switch, printer and UPS, the alert going out through the demo's own
webhook, and `nettvakt report hardware` on the inventory the demo wrote. Expected values are
read from the recordings (collector/demo_data/snmprec), not repeated here.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from collector.config import load_inventory
from collector.demo_inventory import DEMO_AGENT, DEMO_DEVICES, LIFECYCLE_KINDS, RECORDINGS
from collector.localservers import wait_until
from collector.snmp.ups import mdy_date, ticks_to_minutes
from collector.timeseries import Sample, open_source
from test_status_history import Chart, charts

ROOT = Path(__file__).resolve().parents[1]
DEVICES = {d.id: d for d in DEMO_DEVICES}
PROFILES = {"fw-demo": "fortigate", "sw-demo": "procurve", "pr-demo": "printer", "ups-demo": "apc_ups"}
# The demo polls every 10 s: two polls and a rate within this, on a busy machine too.
POLLED_WITHIN_S = 60
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# What the status page says without an alert engine, in English and in Norwegian.
ALERTING_OFF = ("Alerting is not running", "Varsling kjører ikke")


def start_demo(
    workdir: Path, duration_s: int, env: dict[str, str] | None = None, python_args: tuple[str, ...] = ("-m", "agent.cli"),
) -> tuple[subprocess.Popen[str], dict]:
    log = workdir.parent / f"{workdir.name}.log"
    proc = subprocess.Popen(
        [sys.executable, *python_args, "demo", "--json", "--duration", str(duration_s), "--workdir", str(workdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"demo printed nothing; log: {log.read_text()}")
    return proc, json.loads(line)


def stop_demo(proc: subprocess.Popen[str], tmp_path: Path) -> tuple[int | None, list[dict]]:
    """SIGTERM, as Ctrl-C or a service manager stops it: its exit status, and whatever still runs
    from the test's folder (the demo's influxd, snmpsim); asserted after a `finally`, so a failing
    check inside is not hidden by this one."""
    proc.terminate()
    try:
        status: int | None = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        status = None
    leftovers = [p for p in psutil.process_iter(["pid", "name", "cmdline"]) if str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    for process in leftovers:  # the test fails on them, and leaves none running either
        process.kill()
    return status, [p.info for p in leftovers]


def recorded(recording: str, oid: str) -> tuple[str, str]:
    """(type, value) of one line of a demo recording."""
    for line in (RECORDINGS / f"{recording}.snmprec").read_text(encoding="utf-8").splitlines():
        line_oid, tag, value = line.split("|", 2)
        if line_oid == oid:
            return tag, value
    raise AssertionError(f"{oid} is not in {recording}.snmprec")


def numeric(recording: str, oid: str) -> dict[str, float]:
    """The settings of a value snmpsim's `numeric` module computes (initial, rate, scale ...)."""
    tag, value = recorded(recording, oid)
    assert tag.endswith(":numeric"), (oid, tag)
    return {k: float(v) for k, v in (item.split("=") for item in value.split(",")) if k != "function"}


def latest(samples: list[Sample], field: str) -> Sample:
    with_field = [s for s in samples if field in s.fields]
    assert with_field, f"no sample with {field}"
    return with_field[-1]


def assert_devices_polled(inventory_path: Path) -> None:
    """The collector polled all four simulated devices into its store, with the recordings' values,
    and the counters advanced into rates."""
    source = open_source(load_inventory(inventory_path))

    def samples(measurement: str, **tags: str) -> list[Sample]:
        return source.samples(measurement, 0, time.time_ns() + 10**9, tags)

    def rates_arrived() -> bool:
        return all(any("in_bps" in s.fields for s in samples("interface", device=d, ifname=name))
                   for d, name in (("fw-demo", "wan1"), ("sw-demo", "6"), ("pr-demo", "Ethernet"), ("ups-demo", "vmac0")))

    wait_until(rates_arrived, POLLED_WITHIN_S, "interface rates of the four simulated devices")
    for device_id, profile in PROFILES.items():
        point = latest(samples("device", device=device_id), "up")
        assert point.fields["up"] == 1.0 and point.fields["profile"] == profile, (device_id, point.fields)

    fw = DEVICES["fw-demo"].recording
    wan1 = latest(samples("interface", device="fw-demo", ifname="wan1"), "in_bps").fields
    for field, column in (("in_bps", "6"), ("out_bps", "10")):
        expected_bps = 8 * numeric(fw, f"1.3.6.1.2.1.31.1.1.1.{column}.1")["rate"]
        # The counter is read within its walk, the rate timed from the walk's middle: a slow walk
        # on a busy machine moves a 10 s interval by a few hundred ms.
        assert abs(wan1[field] - expected_bps) <= 0.1 * expected_bps, (field, wan1[field], expected_bps)
    # Against the 50 Mbit/s line the inventory names, not the 1 Gbit/s port.
    assert abs(wan1["in_util_pct"] - wan1["in_bps"] / 50e6 * 100) < 1e-6
    cpu = numeric(fw, "1.3.6.1.4.1.12356.101.4.1.3.0")
    fw_device = latest(samples("device", device="fw-demo"), "cpu_pct").fields
    assert cpu["initial"] - cpu["scale"] - 1 <= fw_device["cpu_pct"] <= cpu["initial"] + cpu["scale"] + 1
    assert fw_device["vpn_tunnels_up"] == fw_device["vpn_tunnels_total"] == 2.0

    # The worn cable on switch port 6: input errors at the recorded rate (whole errors, so roughly).
    port6 = latest(samples("interface", device="sw-demo", ifname="6"), "in_errors_ps").fields
    assert 0 < port6["in_errors_ps"] <= 2 * numeric(DEVICES["sw-demo"].recording, "1.3.6.1.2.1.2.2.1.14.6")["rate"]

    printer = DEVICES["pr-demo"].recording
    supplies = {s.tags["supply"]: s.fields["left_pct"] for s in samples("printer_supply", device="pr-demo")}
    for row in range(1, 5):
        name = recorded(printer, f"1.3.6.1.2.1.43.11.1.1.6.1.{row}")[1]
        level, capacity = (int(recorded(printer, f"1.3.6.1.2.1.43.11.1.1.{c}.1.{row}")[1]) for c in (9, 8))
        assert supplies[name] == 100 * level / capacity, name
    pages = latest(samples("device", device="pr-demo"), "pages_total").fields["pages_total"]
    assert pages >= numeric(printer, "1.3.6.1.2.1.43.10.2.1.4.1.1")["initial"]

    ups = DEVICES["ups-demo"].recording
    ups_device = latest(samples("device", device="ups-demo"), "battery_last_replaced").fields
    assert ups_device["battery_last_replaced"] == mdy_date(recorded(ups, "1.3.6.1.4.1.318.1.1.1.2.1.3.0")[1])
    assert ups_device["ups_minutes_left"] == ticks_to_minutes(int(recorded(ups, "1.3.6.1.4.1.318.1.1.1.2.2.3.0")[1]))
    assert ups_device["ups_on_battery"] == 0.0


def get(url: str) -> str:
    with _NO_PROXY.open(url, timeout=10) as resp:
        return resp.read().decode("utf-8")


def assert_last_hour_fills(where: dict) -> None:
    """The last hour's view the demo prints: within a few minutes of the start the loopback probe's
    latency chart has two minute buckets with a median, one of them complete, and each bucket that
    was complete when the page was drawn shows the median of the rounds stored in it."""
    def loopback_chart() -> Chart:
        found = [c for kind, c in charts(get(where["last_hour"] + "&part=main"))
                 if kind == "latency" and (c.root.get("aria-label") or "").startswith("loopback ")]
        assert len(found) == 1, "one loopback chart on the page"
        return found[0]

    def buckets(chart: Chart) -> list[int]:
        """The minute buckets drawn (the band's points are at their middles; the newest, still open,
        is drawn at the chart's end), by their start's minute."""
        return sorted({int(t // 60) for polygon in chart.find("polygon", "band") for t, _ in chart.points(polygon)})

    def complete(chart: Chart) -> list[int]:
        """Buckets complete when drawn: ended 20 s before (a round reaches the store a few seconds after it ends)."""
        return [minute for minute in buckets(chart) if (minute + 1) * 60 <= chart.t1 - 20]

    def filled() -> Chart | None:
        chart = loopback_chart()
        return chart if len(buckets(chart)) >= 2 and complete(chart) else None

    chart = wait_until(filled, 240, "two minute buckets, one complete, in the last hour's loopback chart", interval_s=2)
    drawn = buckets(chart)
    assert drawn == list(range(drawn[0], drawn[0] + len(drawn))), drawn  # one after the other
    medians = [(t, v) for line in chart.find("polyline", "median") for t, v in chart.points(line)]
    rounds = open_source(load_inventory(Path(where["inventory"]))).samples(
        "probe", drawn[0] * 60 * 10**9, int(chart.t1 * 1e9), {"host": DEMO_AGENT, "target": "loopback"})
    for minute in complete(chart):
        stored = [s.fields["rtt_ms"] for s in rounds if minute * 60 <= s.time_ns / 1e9 < (minute + 1) * 60 and "rtt_ms" in s.fields]
        shown = [v for t, v in medians if abs(t - (minute * 60 + 30)) < 1]
        assert stored and shown, (minute, stored, medians)
        assert shown[0] == pytest.approx(statistics.median(stored), abs=chart.vmax / 1000), (minute, shown, stored)


def test_demo_shows_devices_an_alert_and_a_replacement_plan(tmp_path: Path) -> None:
    """With influxd and snmpsim: charts' data from four simulated devices, the printer's low toner
    alert (API, status page, the demo's channel), the agent's probes, and a replacement plan."""
    proc, where = start_demo(tmp_path / "demo", 300)
    try:
        assert where["storage"] == "influxdb" and where["database"] == "nettvakt"
        assert where["devices"] == list(DEVICES)
        inventory_path = Path(where["inventory"])
        assert_devices_polled(inventory_path)

        black = recorded(DEVICES["pr-demo"].recording, "1.3.6.1.2.1.43.11.1.1.6.1.1")[1]
        subject = f"pr-demo/{black}"

        def toner_alert() -> list[dict]:
            return [a for a in json.loads(get(where["alerts"]))["firing"]
                    if a["rule"] == "printer-toner" and a["subject"] == subject]

        (firing,) = wait_until(toner_alert, 30, "the printer's toner alert in /api/v1/alerts")
        assert firing["severity"] == "warning" and firing["site"] == "radhus"
        received = Path(where["received"])
        messages = wait_until(lambda: received.read_text(encoding="utf-8").splitlines(), 30, "the demo's channel to receive it")
        alerts = [a for m in map(json.loads, messages) for a in m["alerts"]]
        assert any(a["rule"] == "printer-toner" and a["subject"] == subject and a["event"] == "firing" for a in alerts)
        page = get(where["collector"])
        assert subject in page and not any(words in page for words in ALERTING_OFF)

        probes = open_source(load_inventory(inventory_path)).samples("probe", 0, time.time_ns(), {"host": DEMO_AGENT})
        assert {s.tags["kind"] for s in probes if s.fields.get("up") == 1.0} & {"icmp", "tcp", "http"}
        assert_last_hour_fills(where)

        report = subprocess.run(
            [sys.executable, "-m", "agent.cli", "report", "hardware", "--inventory", str(inventory_path), "--format", "json"],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert report.returncode == 0, report.stderr
        plan = json.loads(report.stdout)
        items = {i["id"]: i for i in plan["items"]}
        assert set(items) == {*DEVICES, "ups-demo/battery", DEMO_AGENT}
        this_year = dt.date.today().year
        for device in DEMO_DEVICES:
            item = items[device.id]
            lifetime = LIFECYCLE_KINDS[device.kind][0]
            assert item["due_year"] == this_year - device.years_old + lifetime, device.id
            assert item["replacement_cost_nok"] == device.cost_nok and item["age_source"] == "purchased"
        assert items["pr-demo"]["model"] == recorded(DEVICES["pr-demo"].recording, "1.3.6.1.2.1.25.3.2.1.3.1")[1]
        assert plan["past_due"] == [d.id for d in DEMO_DEVICES if d.years_old > LIFECYCLE_KINDS[d.kind][0]] == ["sw-demo"]
        battery = items["ups-demo/battery"]
        replaced = dt.date.fromisoformat(mdy_date(recorded(DEVICES["ups-demo"].recording, "1.3.6.1.4.1.318.1.1.1.2.1.3.0")[1]) or "")
        assert battery["battery_source"] == "device_replaced"
        years = (dt.date.fromisoformat(battery["due_date"]) - replaced).days / 365.2425
        assert abs(years - LIFECYCLE_KINDS["ups-battery"][0]) < 0.01
        assert sum(f["units"] for f in plan["forecast"]) >= 5 and plan["forecast_total_nok"] > 0
    finally:
        stopped = stop_demo(proc, tmp_path)
    assert stopped == (0, [])


def test_demo_without_influxdb_keeps_the_points_in_the_local_store(tmp_path: Path) -> None:
    """No influxd and no net-snmp tools on PATH: the collector's local store gets the agent's and
    the simulated devices' points (snmpsim, in the venv, needs no snmpget to start)."""
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    proc, where = start_demo(tmp_path / "demo", 300, env={"PATH": str(empty_path)})
    try:
        assert where["storage"].startswith("local store ") and where["devices"] == list(DEVICES)
        assert_devices_polled(Path(where["inventory"]))
        source = open_source(load_inventory(Path(where["inventory"])))
        assert source.samples("host", 0, time.time_ns(), {"host": DEMO_AGENT})
    finally:
        stopped = stop_demo(proc, tmp_path)
    assert stopped == (0, [])


# The demo as on a machine without snmpsim: its program cannot be found.
WITHOUT_SNMPSIM = (
    "-c",
    "import sys; from collector.localservers import BINARIES; "
    "BINARIES['snmpsim-command-responder'] = '/nonexistent/snmpsim-command-responder'; "
    "from agent.cli import main; sys.exit(main())",
)


def test_demo_without_snmpsim_runs_without_devices_and_says_so_once(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"  # nor on PATH
    empty_path.mkdir()
    proc, where = start_demo(tmp_path / "demo", 300, env={"PATH": str(empty_path)}, python_args=WITHOUT_SNMPSIM)
    try:
        assert where["devices"] == [] and where["snmpsim"].startswith("not installed (pip install snmpsim)")
        inventory = load_inventory(Path(where["inventory"]))
        assert inventory.device == [] and inventory.alert and inventory.channel
        health = wait_until(lambda: json.loads(get(where["health"])), 20, "the collector's health")
        assert "alerting" in health  # rules and a channel: the alert engine runs
    finally:
        stopped = stop_demo(proc, tmp_path)
    assert stopped == (0, [])
    # Said once, where the demo says where to look; the log does not say it again.
    assert "pip install snmpsim" not in (tmp_path / "demo.log").read_text(encoding="utf-8")
