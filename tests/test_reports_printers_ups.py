"""`nettvakt report hardware` with printers and UPSes: pages per month across counter resets,
models from the printers themselves, UPS batteries with their due dates.

Printers and UPSes are polled from the shared recordings served by snmpsim through the real
DevicePoller; their points go into a real InfluxDB through the collector's own sink, preceded by
ten days of page counts (the recordings hold one reading each), and the command reads them back.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from pathlib import Path

import pytest

from agent.cli import main
from agent.points import Point
from collector.localservers import SnmpsimServer
from collector.reports.hardware import pages_per_month
from recorded_polls import poll_recordings
from inventories import InventoryBuilder
from test_reports_hardware import _csv_blocks, write_through_collector_sink

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

DAY_NS = 86400 * 10**9
# Device id -> recording (snmpsim community).
POLLED = {"skriver-ricoh": "ricoh_mpc3002", "skriver-konica": "konica_c250i", "skriver-brother": "brother_hl5370dw"}


def inventory(folder: Path) -> InventoryBuilder:
    return (
        InventoryBuilder(folder)
        .lifecycle("printer", 5, 9000)
        .device("skriver-ricoh", name="Kopimaskin servicetorget", hardware={"kind": "printer", "purchased": dt.date(2019, 5, 2)})
        .device("skriver-konica", name="Kopimaskin PLO", hardware={"kind": "printer", "purchased": dt.date(2024, 2, 20)})
        .device("skriver-brother", name="Skriver legekontor", hardware={"kind": "printer", "purchased": dt.date(2012, 3, 1)})
        .device("skriver-stille", name="Skriver uten data", hardware="printer")
    )


def history(device: str, counts: list[float], end_ns: int) -> list[Point]:
    """One `device` point a day before `end_ns`, the last count a day before the end."""
    n = len(counts)
    return [Point("device", {"site": "radhus", "device": device}, {"up": 1.0, "pages_total": c}, end_ns - (n - i) * DAY_NS)
            for i, c in enumerate(counts)]


def test_pages_per_month_across_a_reset_and_never_from_too_little() -> None:
    day = DAY_NS
    # 500 pages a day; on day 5 the counter restarted (a service reset) and 300 were printed since.
    counts = [(i * day, 40000.0 + 500 * i) for i in range(5)] + [(5 * day, 300.0)] + [((5 + i) * day, 300.0 + 500 * i) for i in range(1, 6)]
    assert pages_per_month(counts) == round((2000 + 300 + 2500) * 30.44 / 10)
    assert pages_per_month([(0, 10.0), (day - 1, 500.0)]) is None  # less than a day says nothing about a month
    assert pages_per_month([(0, 10.0)]) is None


def test_report_lists_printers_by_use_from_their_own_page_counters(
    snmpsim: SnmpsimServer, influx_db: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, db = influx_db
    now = time.time_ns()
    polled = [Point(p.measurement, p.tags, p.fields, now - 60 * 10**9) for p in poll_recordings(snmpsim, POLLED, "printer")]
    latest = {p.tags["device"]: p for p in polled if p.measurement == "device"}
    assert (latest["skriver-ricoh"].fields["pages_total"], latest["skriver-konica"].fields["pages_total"]) == (271871.0, 33810.0)
    # Ten days before the polls: the ricoh printed 900 pages a day up to its recorded 271871; the
    # konica's counter was reset four days ago (its recorded 33810 is what it has counted since).
    points = history("skriver-ricoh", [271871.0 - 900 * d for d in range(10, 0, -1)], now)
    points += history("skriver-konica", [118000.0 + 400 * d for d in range(6)] + [32210.0 + 400 * d for d in range(4)], now)
    points += polled
    path = inventory(tmp_path).influxdb(server.url, db).write()
    asyncio.run(write_through_collector_sink(path, points))

    assert main(["report", "hardware", "--inventory", str(path), "--year", "2026", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["facts_error"] is None
    items = {i["id"]: i for i in data["items"]}
    span_days = 10 - 60 / 86400  # from the first history point to the polled one
    assert items["skriver-ricoh"]["pages_per_month"] == pytest.approx(9000 * 30.44 / span_days, abs=1)
    assert items["skriver-ricoh"]["pages_total"] == 271871.0
    # Across the reset: 5 x 400 before it, the 32210 counted by the first reading after it, then 3 x 400 and 400 to 33810.
    assert items["skriver-konica"]["pages_per_month"] == pytest.approx((2000 + 32210 + 1200 + 400) * 30.44 / span_days, abs=1)
    # The brother has one reading (the poll): no month from it. The silent one has nothing at all.
    assert items["skriver-brother"]["pages_per_month"] is None and items["skriver-brother"]["pages_total"] == 7792.0
    assert items["skriver-stille"]["pages_per_month"] is None and items["skriver-stille"]["unknown_reason"] == "no_facts_device"
    # Models from the printers' own hrDeviceDescr where the inventory names none.
    assert items["skriver-ricoh"]["model"] == "RICOH Aficio MP C3002"
    assert items["skriver-brother"]["status"] == "past_due" and items["skriver-brother"]["due_year"] == 2017

    assert main(["report", "hardware", "--inventory", str(path), "--year", "2026", "--format", "csv"]) == 0
    blocks = _csv_blocks(capsys.readouterr().out, ";")
    printers = next(rows for title, rows in blocks.items() if title.startswith("Skrivere etter bruk"))
    header = printers[0]
    # The busiest first: that is where a replacement pays.
    assert [r[header.index("Id")] for r in printers[1:]] == ["skriver-konica", "skriver-ricoh", "skriver-brother", "skriver-stille"]
    ricoh = printers[2]
    assert ricoh[header.index("Sider totalt")] == "271871"  # CSV: no grouping, as spreadsheets read numbers


def test_report_dates_ups_batteries_by_what_the_ups_says_else_the_inventory(
    snmpsim: SnmpsimServer, influx_db: tuple, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, db = influx_db
    recordings = {"ups-radhus": "apc_sua750i", "ups-serverrom": "apc_smt750x-nmc2", "ups-helse": "eaton-mgeups_9px"}

    path = (
        InventoryBuilder(tmp_path)
        .lifecycle("ups", 8, 18000)
        .lifecycle("ups-battery", 4, 2500)
        .device("ups-radhus", name="UPS rådhuset", hardware={"kind": "ups", "purchased": dt.date(2017, 11, 15)})
        .device("ups-serverrom", name="UPS serverrom", hardware={"kind": "ups", "purchased": dt.date(2019, 3, 1),
                                                                  "battery": {"replaced": dt.date(2023, 9, 1), "cost_nok": 3900}})
        .device("ups-helse", name="UPS helse", hardware={"kind": "ups", "purchased": dt.date(2020, 6, 1)})
        .influxdb(server.url, db).write()
    )
    asyncio.run(write_through_collector_sink(path, poll_recordings(snmpsim, recordings, "ups")))
    assert main(["report", "hardware", "--inventory", str(path), "--year", "2026", "--format", "json"]) == 0
    items = {i["id"]: i for i in json.loads(capsys.readouterr().out)["items"]}
    got = {i: (items[i]["due_date"], items[i]["battery_source"], items[i]["status"], items[i]["replacement_cost_nok"])
           for i in items if i.endswith("/battery")}
    assert got == {
        # The APC says it was replaced 2025-04-30 (its "replace by 2022-01-10" was never updated): + 4 years.
        "ups-radhus/battery": ("2029-04-30", "device_replaced", "due", 2500.0),
        # The Smart-UPS X says no dates: the inventory's replacement, its own cost.
        "ups-serverrom/battery": ("2027-09-01", "inventory", "due", 3900.0),
        # The Eaton says nothing of its battery: from the UPS's purchase, an estimate, long past due.
        "ups-helse/battery": ("2024-06-01", "purchased", "past_due", 2500.0),
    }
    assert items["ups-helse/battery"]["due_estimated"] is True
    # The UPSes themselves, with the model the APCs give.
    assert items["ups-radhus"]["model"] == "Smart-UPS 750" and items["ups-radhus"]["kind"] == "ups"

    assert main(["report", "hardware", "--inventory", str(path), "--year", "2026"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("UPS-batterier"):]
    assert "30.04.2029" in table and "UPS-en (sist byttet) + levetid" in table and "UPS-ens innkjøp + levetid (anslag)" in table
