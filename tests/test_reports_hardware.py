"""`nettvakt report hardware` on the shipped inventory (every format) and on recorded hardware facts.

The shipped inventory is run through the real command line (`agent.cli.main`), with a fixed
--year so the forecast does not move with the calendar. The PDF is rendered to PNG with
pdftoppm and checked for the chart's bar colours; its text (pdftotext) for the table rows.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import csv
import datetime as dt
import io
import json
import subprocess
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.cli import main
from agent.hwfacts import facts_from_dmidecode
from agent.points import Point
from collector.queue import DurableQueue
from collector.config import Inventory, load_inventory
from collector.lineprotocol import encode_points
from collector.writer import make_sink
from collector.reports import i18n
from collector.reports.hardware import (
    GB,
    build_hardware_report,
    hardware_document,
    observed_from_points,
)
from collector.reports.render import ALERT_COLOUR, BAR_COLOUR, render_csv
from inventories import InventoryBuilder

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "inventory.toml"


@pytest.fixture(scope="module", autouse=True)
def _shipped_with_a_local_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The shipped inventory, its data in a local store of its own that a collector has written:
    the report reads it (and finds no observed facts yet) instead of an InfluxDB this machine lacks."""
    global SHIPPED
    original = SHIPPED
    folder = tmp_path_factory.mktemp("shipped")
    text = original.read_text(encoding="utf-8")
    storage = text[text.index("[storage]\n"):text.index("\n\n", text.index("[storage]\n"))]
    text = text.replace(storage, '[storage]\nkind = "local"').replace('data_dir = "/var/lib/nettvakt"', f'data_dir = "{folder / "data"}"')
    SHIPPED = folder / "inventory.toml"
    SHIPPED.write_text(text, encoding="utf-8")
    DurableQueue(folder / "data" / "queue.sqlite3").close()
    yield
    SHIPPED = original
YEAR = 2026
NBSP = "\u00a0"
# In the shipped inventory, due before 2026: the old firewall, every PC and the laptop, the server,
# the UPS and the older switches. The new FortiGate (2026) and the outstation switches (due 2026) are not.
PAST_DUE = {
    "fw-gammel", "srv-sak", "pc-servicetorg-1", "plo-pc-2etg", "lege-hansnes-1", "lege-vannoya-1",
    "hansnes-ops", "vannvag-ops", "skole-adm", "sw-core", "sw-helse", "sw-hansnes-lege",
    "sw-vannoya-lege", "sw-skole", "ups-radhus",
}
# The UPS's battery, replaced 2024-03-01 with a 4-year plan, falls due in 2028.
NOT_PAST_DUE = {"fw-radhus", "sw-hansnes", "sw-vannvag", "ups-radhus/battery"}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(["report", "hardware", "--inventory", str(SHIPPED), "--year", str(YEAR), *argv])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture(scope="module")
def shipped_json() -> dict:
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["report", "hardware", "--inventory", str(SHIPPED), "--year", str(YEAR), "--format", "json"]) == 0
    return json.loads(buf.getvalue())


# ------------------------------------------------------------------------------ formatting
def test_counted_words_agree_with_their_number() -> None:
    # "1 enheter", "1 maskiner bak den" were what people read before.
    assert [i18n.count(n, "machine", "nb") for n in (0, 1, 7)] == ["0 maskiner", "1 maskin", "7 maskiner"]
    assert [i18n.count(n, "unit", "en") for n in (1, 2)] == ["1 unit", "2 units"]
    assert i18n.count(1, "unit", "nb") == "1 enhet"
    assert [i18n.kind_count(n, "firewall", "en") for n in (1, 2)] == ["1 firewall", "2 firewalls"]
    assert [i18n.kind_count(n, "switch", "nb") for n in (1, 7)] == ["1 svitsj", "7 svitsjer"]


def test_norwegian_and_english_numbers_and_dates() -> None:
    assert i18n.number(1234567.5, "nb", 1) == f"1{NBSP}234{NBSP}567,5"
    assert i18n.number(1234567.5, "en", 1) == "1,234,567.5"
    assert i18n.number(1234567.5, "nb", 1, group=False) == "1234567,5"
    assert i18n.money(1234567, "nb") == f"1{NBSP}234{NBSP}567{NBSP}kr"
    assert i18n.money(1234567, "en") == f"NOK{NBSP}1,234,567"
    assert i18n.date(dt.date(2026, 11, 29), "nb") == "29.11.2026"
    assert i18n.date(dt.date(2026, 11, 29), "en") == "2026-11-29"
    assert i18n.parse_number(i18n.number(-0.04, "nb", 1), "nb") == 0.0  # no "-0,0"
    assert i18n.parse_number(f"1{NBSP}234,5", "nb") == 1234.5


# ---------------------------------------------------------------------- shipped inventory
def test_json_lists_the_old_firewall_and_pcs_past_due_with_a_five_year_forecast(shipped_json: dict) -> None:
    assert shipped_json["first_year"] == YEAR
    assert set(shipped_json["past_due"]) == PAST_DUE
    assert shipped_json["past_due"][0] in {"hansnes-ops", "vannvag-ops"}  # oldest due year (2020) first
    items = {i["id"]: i for i in shipped_json["items"]}
    assert set(items) == PAST_DUE | NOT_PAST_DUE
    old_fw = items["fw-gammel"]
    assert (old_fw["kind"], old_fw["due_year"], old_fw["replacement_cost_nok"], old_fw["age_source"]) == ("firewall", 2023, 38000.0, "purchased")
    assert old_fw["lifetime_years"] == 7.0 and old_fw["status"] == "past_due"
    assert all(items[i]["status"] == "past_due" for i in items if items[i]["kind"] in ("pc", "laptop"))
    # Inventory defaults per kind: a switch without cost_nok costs [lifecycle.kinds.switch].
    assert items["sw-helse"]["replacement_cost_nok"] == 28000.0
    assert items["sw-hansnes"]["status"] == "due" and items["sw-hansnes"]["due_year"] == 2026
    assert items["fw-radhus"]["status"] == "later" and items["fw-radhus"]["due_year"] == 2033

    forecast = shipped_json["forecast"]
    assert [f["year"] for f in forecast] == [2026, 2027, 2028, 2029, 2030]
    past_due_cost = sum(items[i]["replacement_cost_nok"] for i in PAST_DUE)
    first = forecast[0]
    assert first["past_due_units"] == len(PAST_DUE) and first["past_due_cost_nok"] == past_due_cost
    assert first["units"] == len(PAST_DUE) + 2 and first["cost_nok"] == past_due_cost + 2 * 28000
    # The laptop (4-year lifetime), bought anew in 2026, falls due again in 2030.
    assert items["lege-vannoya-1"]["replaced_in"] == [2026, 2030]
    assert forecast[4]["units"] == 1 and forecast[4]["kinds"] == {"laptop": 1}
    battery = items["ups-radhus/battery"]
    assert (battery["kind"], battery["due_date"], battery["battery_source"], battery["replacement_cost_nok"]) == (
        "ups-battery", "2028-03-01", "inventory", 2500.0)
    assert battery["replaced_in"] == [2028] and forecast[2]["kinds"].get("ups-battery") == 1
    assert shipped_json["forecast_total_nok"] == sum(f["cost_nok"] for f in forecast) == past_due_cost + 2 * 28000 + 14000 + 2500


def test_table_puts_past_due_first_then_forecast_then_groups(capsys: pytest.CaptureFixture[str], shipped_json: dict) -> None:
    rc, out, _ = run(capsys)
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "Utskiftingsplan for maskinvare"
    past_due_at = lines.index("Forfalt til utskifting (forfallsår < 2026)")
    forecast_at = next(n for n, line in enumerate(lines) if line.startswith("Prognose per budsjettår 2026"))
    groups_at = lines.index("Alle enheter etter sted og avdeling")
    assert past_due_at < forecast_at < groups_at
    past_due_rows = lines[past_due_at + 4: forecast_at - 1]
    assert len(past_due_rows) == len(PAST_DUE)
    assert any("fw-gammel" in r and "Cisco ASA 5505" in r and "2023" in r and f"38{NBSP}000{NBSP}kr" in r for r in past_due_rows)
    # Forecast rows: year, units, cost (Norwegian grouping), of which past due.
    forecast_rows = [line.split() for line in lines[forecast_at + 4: forecast_at + 9]]
    assert [r[0] for r in forecast_rows] == ["2026", "2027", "2028", "2029", "2030"]
    first = shipped_json["forecast"][0]
    assert forecast_rows[0][1] == str(first["units"])
    assert f"  {i18n.money(first['cost_nok'], 'nb')}  " in lines[forecast_at + 4]
    # Aligned: every row of the forecast is as wide as its header's numeric columns end.
    header = lines[forecast_at + 2]
    assert all(lines[n].index("kr") + 2 == header.index("Kostnad") + len("Kostnad") for n in range(forecast_at + 4, forecast_at + 9))
    # Grouped by site and department.
    assert f"[Rådhuset, Hansnes / IT – 6 enheter, 296{NBSP}500{NBSP}kr]" in lines  # the UPS battery is one of them
    assert f"[Rådhuset, Hansnes / Servicetorget – 1 enhet, 11{NBSP}000{NBSP}kr]" in lines


def test_english(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "--lang", "en")
    assert rc == 0
    assert out.startswith("Hardware replacement plan\n")
    assert "Past due for replacement (due year < 2026)" in out
    assert f"NOK{NBSP}38,000" in out and "purchase date (inventory)" in out


def _csv_blocks(text: str, delimiter: str) -> dict[str, list[list[str]]]:
    blocks: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for row in csv.reader(io.StringIO(text), delimiter=delimiter):
        if not row:
            current = None
        elif current is None:
            current = blocks.setdefault(row[0], [])
        else:
            current.append(row)
    return blocks


@pytest.mark.parametrize("lang, delimiter", [("nb", ";"), ("en", ",")])
def test_csv_reads_back(capsys: pytest.CaptureFixture[str], shipped_json: dict, lang: str, delimiter: str) -> None:
    rc, out, _ = run(capsys, "--format", "csv", "--lang", lang)
    assert rc == 0
    blocks = _csv_blocks(out, delimiter)
    past_due = next(rows for title, rows in blocks.items() if title.startswith(("Forfalt", "Past due")))
    header, rows = past_due[0], past_due[1:]
    assert {r[header.index("Id")] for r in rows} == PAST_DUE
    cost_col = header.index("Kostnad" if lang == "nb" else "Cost")
    age_col = header.index("Alder (år)" if lang == "nb" else "Age (years)")
    by_id = {r[1]: r for r in rows}
    assert by_id["fw-gammel"][cost_col] == "38000"
    age = by_id["fw-gammel"][age_col]
    assert ("," in age) == (lang == "nb") and ("." in age) == (lang == "en")  # decimal mark per language
    items = {i["id"]: i for i in shipped_json["items"]}
    assert i18n.parse_number(age, lang) == pytest.approx(items["fw-gammel"]["age_years"], abs=0.05)
    forecast = next(rows for title, rows in blocks.items() if title.startswith(("Prognose", "Forecast")))
    assert [r[0] for r in forecast[1:]] == ["2026", "2027", "2028", "2029", "2030"]
    assert sum(float(r[2]) for r in forecast[1:]) == shipped_json["forecast_total_nok"]
    everything = next(rows for title, rows in blocks.items() if title.startswith(("Alle", "All")))
    assert everything[0][0] == ("Sted / avdeling" if lang == "nb" else "Site / department")  # the group as a column
    assert len(everything) - 1 == len(PAST_DUE | NOT_PAST_DUE)


class _HtmlTables(HTMLParser):
    """Headings, tables (rows of cell texts) and images of an HTML page, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, object]] = []
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self._table: list[list[str]] | None = None
        self.styles = 0
        self.external = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in ("h1", "h2", "td", "th"):
            self._text = []
        elif tag == "table":
            self._table = []
        elif tag == "tr":
            self._row = []
        elif tag == "img":
            self.order.append(("img", a.get("src") or ""))
        elif tag == "style":
            self.styles += 1
        elif tag in ("link", "script") and (a.get("href") or a.get("src")):
            self.external += 1

    def handle_data(self, data: str) -> None:
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._text is not None:
            self.order.append((tag, "".join(self._text)))
            self._text = None
        elif tag in ("td", "th") and self._text is not None and self._row is not None:
            self._row.append("".join(self._text))
            self._text = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table" and self._table is not None:
            self.order.append(("table", self._table))
            self._table = None


def test_html_is_self_contained_with_chart_and_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "plan.html"
    rc, out, _ = run(capsys, "--format", "html", "--output", str(out_file))
    assert rc == 0 and out == ""
    page = _HtmlTables()
    page.feed(out_file.read_text(encoding="utf-8"))
    assert page.styles == 1 and page.external == 0
    kinds = [k for k, _ in page.order]
    assert page.order[0] == ("h1", "Utskiftingsplan for maskinvare")
    # Past due first, then the chart, then the forecast table.
    headings = [v for k, v in page.order if k == "h2"]
    assert headings[0].startswith("Forfalt til utskifting")
    assert kinds.index("img") < [n for n, (k, v) in enumerate(page.order) if k == "h2" and str(v).startswith("Prognose")][0]
    tables = [v for k, v in page.order if k == "table"]
    past_due = tables[0]
    assert {row[1] for row in past_due[1:]} == PAST_DUE
    forecast = tables[1]
    assert [row[0] for row in forecast[1:]] == ["2026", "2027", "2028", "2029", "2030"]
    src = next(v for k, v in page.order if k == "img")
    assert isinstance(src, str) and src.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    assert image.format == "PNG" and image.width > 400
    assert _pixels_near(image, ALERT_COLOUR) > 500 and _pixels_near(image, BAR_COLOUR) > 50


def _pixels_near(image: Image.Image, colour: str, tolerance: int = 12) -> int:
    target = np.array([int(colour[i: i + 2], 16) for i in (1, 3, 5)])
    pixels = np.asarray(image.convert("RGB"), dtype=int)
    return int((np.abs(pixels - target).max(axis=2) <= tolerance).sum())


def test_pdf_has_the_table_and_the_chart(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pdf = tmp_path / "plan.pdf"
    rc, out, _ = run(capsys, "--format", "pdf", "--output", str(pdf))
    assert rc == 0 and out == ""
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    text = text.replace(NBSP, " ")
    assert "Utskiftingsplan for maskinvare" in text
    fw_line = next(line for line in text.splitlines() if "fw-gammel" in line and "Cisco ASA 5505" in line)
    assert "2023" in fw_line and "38 000 kr" in fw_line
    for ident in PAST_DUE:
        assert ident in text
    assert text.index("Forfalt til utskifting") < text.index("Prognose per budsjettår")
    forecast_line = next(line for line in text.splitlines() if line.split()[:1] == ["2026"] and " kr" in line)
    assert forecast_line.split()[1:4] == ["17", "500", "000"]  # year, units, cost
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True, capture_output=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages
    counts = [(_pixels_near(Image.open(p), ALERT_COLOUR), _pixels_near(Image.open(p), BAR_COLOUR)) for p in pages]
    assert any(red > 200 and blue > 20 for red, blue in counts), counts


def test_pdf_needs_output_and_bad_inventory_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rc, _, err = run(capsys, "--format", "pdf")
    assert rc == 2 and "--output" in err
    rc = main(["report", "hardware", "--inventory", str(SHIPPED), "--year", "26"])
    assert rc == 2 and "--year 26: expected a budget year" in capsys.readouterr().err
    bad = tmp_path / "inventory.toml"
    bad.write_text('[[device]]\nid = "x"\n', encoding="utf-8")
    rc = main(["report", "hardware", "--inventory", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and f"{bad}:1: device 'x': name: required key is missing" in err


# ---------------------------------------------------------------- recorded hardware facts
def facts_inventory(folder: Path) -> InventoryBuilder:
    """PCs and servers with recorded hardware facts (RECORDINGS), a PC without, and a switch (no facts from devices)."""
    return (
        InventoryBuilder(folder)
        .lifecycle("pc", 5, 11000)
        .lifecycle("server", 6, 140000)
        .lifecycle("switch", 8, 28000)
        .device("sw-1", host="10.0.0.2", hardware={"kind": "switch", "model": "HP 1820-8G"})
        .agent("pc-old", hardware="pc")
        .agent("pc-lenovo", hardware={"kind": "pc", "purchased": dt.date(2011, 1, 10)})
        .agent("srv-new", hardware={"kind": "server", "lifetime_years": 7})
        .agent("srv-vm", hardware={"kind": "server", "cost_nok": 0})
        .agent("pc-silent", hardware="pc")
    )


RECORDINGS = {
    "pc-old": "desktop_dell-optiplex-7010_1D78E8528AA7.txt",  # BIOS 09/19/2012, 6 GiB
    "pc-lenovo": "desktop_lenovo-thinkcentre-m70e_F9633F6633E6.txt",  # BIOS 07/21/2010, 6 GiB
    "srv-new": "server_dell-poweredge-r440_4A122AB18262.txt",  # BIOS 03/07/2023, 32 GiB
    "srv-vm": "vm_qemu-q35-edk2_418878F10378.txt",  # a VM: its firmware date says nothing
}


@pytest.fixture(scope="module")
def recorded_points(shared_dir: Path) -> tuple[list, list, list]:
    hw = shared_dir / "hwfacts" / "linux-dmidecode"
    hardware = [({"site": "radhus", "host": host}, facts_from_dmidecode((hw / name).read_text(errors="replace"))) for host, name in RECORDINGS.items()]
    host = [({"site": "radhus", "host": "pc-old"}, {"mem_total_bytes": 6.0 * 1024**3, "cpu_pct": 3.0})]
    host_disk = [
        ({"site": "radhus", "host": "pc-old", "mount": "/"}, {"total_bytes": 500.0 * GB}),
        ({"site": "radhus", "host": "srv-new", "mount": "/"}, {"total_bytes": 100.0 * GB}),
        ({"site": "radhus", "host": "srv-new", "mount": "/srv"}, {"total_bytes": 2000.0 * GB}),
        ({"site": "radhus", "host": "pc-lenovo", "mount": "C:"}, {"total_bytes": 80.0 * GB}),
    ]
    return hardware, host, host_disk


def test_age_from_recorded_facts_and_unknown_with_a_reason(recorded_points: tuple[list, list, list], tmp_path: Path) -> None:
    inventory = facts_inventory(tmp_path).parse()
    observed = observed_from_points(*recorded_points)
    report = build_hardware_report(inventory, 2026, dt.date(2026, 11, 29), observed)
    items = {i.id: i for i in report.items}

    old = items["pc-old"]  # no purchase date: the BIOS date (2012-09-19) stands in, marked as an estimate
    assert (old.age_source, old.purchased, old.due_year, old.due_estimated) == ("bios_date", dt.date(2012, 9, 19), 2017, True)
    assert old.age_years == pytest.approx(14.2, abs=0.05) and old.status == "past_due"
    assert old.low == ["mem"] and old.mem_gib == 6.0 and old.disk_gb == 500

    lenovo = items["pc-lenovo"]  # the inventory's purchase date wins over the BIOS date
    assert (lenovo.age_source, lenovo.due_year, lenovo.due_estimated) == ("purchased", 2016, False)
    assert lenovo.low == ["mem", "disk"] and lenovo.model == "ThinkCentre M70e"  # model from facts

    srv = items["srv-new"]  # per-item lifetime 7 overrides the kind's 6
    assert (srv.age_source, srv.lifetime_years, srv.due_year, srv.status) == ("bios_date", 7.0, 2030, "due")
    assert srv.low == [] and srv.disk_gb == 2000  # the largest file system counts
    assert srv.replaced_in == [2030]

    assert (items["srv-vm"].age_source, items["srv-vm"].unknown_reason, items["srv-vm"].status) == (None, "virtual", "unknown")
    assert items["pc-silent"].unknown_reason == "no_facts_agent"
    assert items["sw-1"].unknown_reason == "no_facts_device" and items["sw-1"].age_years is None

    assert [f.units for f in report.forecast] == [2, 0, 0, 0, 1]
    assert report.forecast[0].cost_nok == 22000 and report.forecast[4].cost_nok == 140000

    doc = hardware_document(report, "nb")
    assert any("3 enheter har ukjent alder" in s and "srv-vm" in s for s in doc.summary)
    assert items["srv-vm"].low == ["mem"]  # 4 GiB against a server's 16
    assert any("3 maskiner har for lite minne eller disk" in s for s in doc.summary)
    blocks = _csv_blocks(render_csv(doc), ";")
    everything = next(rows for title, rows in blocks.items() if title.startswith("Alle"))
    header = everything[0]
    by_id = {r[header.index("Id")]: r for r in everything[1:]}
    assert by_id["pc-old"][header.index("Kilde for alder")] == "BIOS-dato (anslag)"
    assert "virtuell maskin" in by_id["srv-vm"][header.index("Merknad")]
    assert "for lite minne (under 8 GiB)" in by_id["pc-old"][header.index("Merknad")]
    assert by_id["pc-silent"][header.index("Kilde for alder")] == "ukjent"
    assert "agenten har ikke meldt maskinvarefakta" in by_id["pc-silent"][header.index("Merknad")]


async def write_through_collector_sink(inventory: Path | Inventory, points: list[Point]) -> None:
    """Into InfluxDB the way the collector writes (its own sink), for an inventory file or one parsed."""
    sink = make_sink(inventory if isinstance(inventory, Inventory) else load_inventory(inventory))
    assert sink is not None
    try:
        await sink.write(encode_points(points))
    finally:
        await sink.close()


def test_command_reads_recorded_facts_from_influxdb(
    influx_db: tuple, tmp_path: Path, recorded_points: tuple[list, list, list], capsys: pytest.CaptureFixture[str]
) -> None:
    """The same recorded facts, written into a real InfluxDB as agents would, read by the command."""
    server, db = influx_db
    hardware, host, host_disk = recorded_points
    now = time.time_ns()
    points = [Point("hardware", {**tags, "kind": "pc"}, dict(fields), now - 3600 * 10**9) for tags, fields in hardware]
    points += [Point("host", tags, fields, now - 60 * 10**9) for tags, fields in host]
    points += [Point("host_disk", tags, fields, now - 60 * 10**9) for tags, fields in host_disk]
    inventory = facts_inventory(tmp_path).influxdb(server.url, db).write()
    asyncio.run(write_through_collector_sink(inventory, points))
    rc = main(["report", "hardware", "--inventory", str(inventory), "--year", "2026", "--format", "json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)
    assert data["facts_error"] is None
    items = {i["id"]: i for i in data["items"]}
    assert (items["pc-old"]["age_source"], items["pc-old"]["purchased"], items["pc-old"]["due_year"]) == ("bios_date", "2012-09-19", 2017)
    assert items["pc-old"]["low_resources"] == ["mem"] and items["pc-lenovo"]["low_resources"] == ["mem", "disk"]
    assert items["srv-vm"]["unknown_reason"] == "virtual" and items["pc-silent"]["unknown_reason"] == "no_facts_agent"
    assert "pc-old" in data["past_due"]


def test_unreachable_store_is_said_in_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inventory = facts_inventory(tmp_path).collector(data_dir=tmp_path / "none").write()
    rc = main(["report", "hardware", "--inventory", str(inventory), "--year", "2026", "--lang", "en"])
    out, err = capsys.readouterr()
    assert rc == 1  # the plan is printed, and the exit says its data could not be read
    assert "made without observed facts: cannot read the data" in err
    assert f"Observed hardware facts could not be read: local store {tmp_path / 'none'}" in out
    assert "no purchase date in the inventory, and observed facts could not be read" in out
