"""`nettvakt report capacity` on a year of uplink polls in a real influxd, written through the collector's sink.

Two sites with a line each, polled every 30 minutes for the twelve complete months before this one
(in the inventory's time zone, Europe/Oslo), busy on weekdays 08-16 local time and quiet otherwise:
`vekst`, whose level rises 3 points a month (with the site's ping time rising with its use), and
`nedgang`, whose level falls 2 points a month and which has one month with only three days of polls.
A third site names no uplink. The test computes each month's p95 (numpy), the least-squares trend
and the crossing month itself, and holds the report to them within stated tolerances:

- p95 and peak: 0.5 percentage points (the report takes the nearest rank, numpy interpolates);
- trend: 0.05 points per month; crossing: the same month, or one month either side of it;
- latency under load: 1 ms (the busy-hour boundary is a percentile of the same kind).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import io
import json
import math
import random
import subprocess
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agent.cli import main
from agent.points import Point
from collector.reports import i18n
from collector.reports.capacity import LIMIT_PCT, MIN_COVERED_HOURS, add_months, report_months
from collector.reports.render import ALERT_COLOUR, BAR_COLOUR
from inventories import InventoryBuilder
from test_reports_hardware import _csv_blocks, _HtmlTables, _pixels_near, write_through_collector_sink

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
STEP_S = 1800  # one poll every 30 minutes
P95_TOLERANCE_PP = 0.5
TREND_TOLERANCE_PP = 0.05
LATENCY_TOLERANCE_MS = 1.0


@dataclass
class Line:
    """One generated line: what was written, and the numbers the test expects from it."""

    site: str
    device: str
    ifname: str
    level: list[float]  # per month: the busy hours' level of use (in)
    out_share: float = 0.4
    thin_month: int | None = None  # this month gets three days of polls only
    points: list[Point] = field(default_factory=list)
    in_by_month: list[list[float]] = field(default_factory=list)
    out_by_month: list[list[float]] = field(default_factory=list)
    # (hour, use, rtt) per month, for latency under load
    hours_by_month: list[list[tuple[int, float, float]]] = field(default_factory=list)


def busy(moment: dt.datetime) -> bool:
    local = moment.astimezone(OSLO)
    return local.weekday() < 5 and 8 <= local.hour < 16


def rtt_ms(use: float) -> float:
    """The site's ping time: 8 ms on a quiet line, rising with use above 40 %."""
    return 8.0 + 0.3 * max(0.0, use - 40.0)


def generate(line: Line, months: list[dt.date], seed: int, probe_host: str | None = None) -> Line:
    rng = random.Random(seed)
    for i, month in enumerate(months):
        start = dt.datetime.combine(month, dt.time(0), OSLO)
        end = dt.datetime.combine(add_months(month, 1), dt.time(0), OSLO)
        if line.thin_month == i:
            end = start + dt.timedelta(days=3)
        ins, outs, hours = [], [], []
        t = int(start.timestamp())
        t -= t % STEP_S  # on the poll grid
        while t < end.timestamp():
            moment = dt.datetime.fromtimestamp(t, dt.timezone.utc)
            if t >= start.timestamp():
                share = rng.uniform(0.95, 1.05) if busy(moment) else rng.uniform(0.15, 0.35)
                use_in = line.level[i] * share
                use_out = use_in * line.out_share
                ins.append(use_in)
                outs.append(use_out)
                tags = {"site": line.site, "device": line.device, "ifname": line.ifname}
                fields = {"in_util_pct": use_in, "out_util_pct": use_out, "in_bps": use_in * 1e6, "out_bps": use_out * 1e6,
                          "speed_bps": 100e6, "oper_up": 1.0}
                line.points.append(Point("interface", tags, fields, t * 10**9))
                if probe_host is not None:
                    rtt = rtt_ms(use_in)
                    line.points.append(Point("probe", {"site": line.site, "host": probe_host, "kind": "icmp", "target": "internett"},
                                             {"up": 1.0, "rtt_ms": rtt, "loss_pct": 0.0}, t * 10**9))
                    hours.append((t // 3600, use_in, rtt))
            t += STEP_S
        line.in_by_month.append(ins)
        line.out_by_month.append(outs)
        line.hours_by_month.append(hours)
    return line


def expected_trend(p95s: list[float | None], months: list[dt.date]) -> tuple[float, str]:
    """(slope, crossing) as the test computes them: numpy's least squares, the first month at or over the limit."""
    xs = [i for i, v in enumerate(p95s) if v is not None]
    slope, intercept = np.polyfit(xs, [p95s[i] for i in xs], 1)
    if slope <= 0:
        return float(slope), "never"
    index = max(math.ceil((LIMIT_PCT - intercept) / slope), len(months))
    return float(slope), add_months(months[0], index).strftime("%Y-%m")


def expected_latency(hours: list[tuple[int, float, float]]) -> tuple[float, float]:
    """Median ping time of the busy hours (use at or over the month's 90th percentile) and the quiet ones (at or under its median)."""
    per_hour: dict[int, list[tuple[float, float]]] = {}
    for hour, use, rtt in hours:
        per_hour.setdefault(hour, []).append((use, rtt))
    use = {h: float(np.mean([u for u, _ in v])) for h, v in per_hour.items()}
    rtt = {h: float(np.median([r for _, r in v])) for h, v in per_hour.items()}
    busy_from, quiet_to = np.quantile(list(use.values()), 0.9), np.quantile(list(use.values()), 0.5)
    return (float(np.median([rtt[h] for h, u in use.items() if u >= busy_from])),
            float(np.median([rtt[h] for h, u in use.items() if u <= quiet_to])))


def year_inventory(folder: Path, url: str, database: str) -> InventoryBuilder:
    """Three sites: two with an uplink firewall polled over SNMP, one without an uplink."""
    snmp = {"community": "env:NETTVAKT_TEST_NEVER_SET"}
    inv = InventoryBuilder(folder, organisation="Karlsøy kommune").influxdb(url, database)
    inv.site("vekst", "Vekst skole", uplink="fw-vekst").site("nedgang", "Nedgang sykehjem", uplink="fw-nedgang").site("uten", "Uten opplink")
    inv.device("fw-vekst", site="vekst", hardware="firewall", snmp={**snmp, "important_interfaces": ["wan1"]})
    inv.device("fw-nedgang", site="nedgang", hardware="firewall", snmp=snmp)  # no interface named: the busiest is the line
    inv.agent("pc-vekst", site="vekst")
    return inv


@dataclass
class Year:
    inventory: Path
    months: list[dt.date]
    growing: Line
    falling: Line


def write_year(inv: InventoryBuilder, months: list[dt.date], more: list[Point] | None = None) -> Year:
    """The inventory written, and the year of polls (and `more`) written into its InfluxDB through the collector's sink."""
    growing = generate(Line("vekst", "fw-vekst", "wan1", [40.0 + 3.0 * i for i in range(12)]), months, seed=1, probe_host="pc-vekst")
    falling = generate(Line("nedgang", "fw-nedgang", "ge0", [60.0 - 2.0 * i for i in range(12)], thin_month=5), months, seed=2)
    # The falling site's firewall has other interfaces in the last days: a quieter port, and a loopback that is never the line.
    last_days = int(dt.datetime.combine(add_months(months[-1], 1), dt.time(0), OSLO).timestamp()) - 5 * 86400
    others = [
        Point("interface", {"site": "nedgang", "device": "fw-nedgang", "ifname": name}, {"in_util_pct": use, "out_util_pct": use}, (last_days + k * STEP_S) * 10**9)
        for name, use in (("ge1", 3.0), ("lo0", 99.0)) for k in range(4 * 48)
    ]
    inventory = inv.write()
    asyncio.run(write_through_collector_sink(inventory, growing.points + falling.points + others + (more or [])))
    return Year(inventory, months, growing, falling)


@pytest.fixture(scope="module")
def year(influx_db_module: tuple, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Year]:
    """The year, written once: the tests only read it."""
    server, database = influx_db_module
    months = report_months(dt.datetime.now(OSLO).date(), 12)
    yield write_year(year_inventory(tmp_path_factory.mktemp("year"), server.url, database), months)


def report(capsys: pytest.CaptureFixture[str], inventory: Path, *argv: str) -> tuple[int, str, str]:
    rc = main(["report", "capacity", "--inventory", str(inventory), *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_monthly_p95_trend_crossing_and_latency_match_the_test_s_own(year: Year, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = report(capsys, year.inventory, "--format", "json")
    assert rc == 0, err
    data = json.loads(out)
    assert data["months"] == [m.strftime("%Y-%m") for m in year.months] and data["basis"] == "raw"
    sites = {s["site"]: s for s in data["sites"]}
    assert sites["uten"]["problem"] == "no_uplink" and sites["uten"]["months"] == []

    growing, falling = sites["vekst"], sites["nedgang"]
    assert (growing["device"], growing["ifname"], growing["speed_bps"]) == ("fw-vekst", "wan1", 100e6)
    assert falling["ifname"] == "ge0"  # busier than ge1; lo0 is never the line
    for site, line in ((growing, year.growing), (falling, year.falling)):
        for direction, by_month in (("in", line.in_by_month), ("out", line.out_by_month)):
            expected: list[float | None] = []
            for index, (month, values) in enumerate(zip(site["months"], by_month)):
                if index == line.thin_month:  # three days of polls: too little for numbers
                    assert month["enough_data"] is False and month[f"{direction}_p95_pct"] is None
                    expected.append(None)
                    continue
                expected.append(float(np.percentile(values, 95)))
                assert month[f"{direction}_p95_pct"] == pytest.approx(expected[-1], abs=P95_TOLERANCE_PP)
                assert month[f"{direction}_peak_pct"] == pytest.approx(max(values), abs=1e-6)
            slope, crossing = expected_trend(expected, year.months)
            trend = site["trend"][direction]
            assert trend["slope_pp_per_month"] == pytest.approx(slope, abs=TREND_TOLERANCE_PP)
            if crossing == "never":
                assert trend["crossing"] == "never"
            else:
                months_apart = abs((dt.date.fromisoformat(trend["crossing"] + "-01") - dt.date.fromisoformat(crossing + "-01")).days) / 30.44
                assert months_apart <= 1.05, (direction, trend["crossing"], crossing)
    # Rising 3 points a month from about 42 %: 80 % within a few months of now; out (at 40 % of in) much later.
    crossing_in = dt.date.fromisoformat(growing["trend"]["in"]["crossing"] + "-01")
    assert add_months(year.months[-1], 1) <= crossing_in <= add_months(year.months[-1], 6)
    assert dt.date.fromisoformat(growing["trend"]["out"]["crossing"] + "-01") > add_months(year.months[-1], 24)
    assert falling["trend"]["in"]["crossing"] == "never" and falling["trend"]["in"]["slope_pp_per_month"] < -1.5
    thin = falling["months"][5]
    assert thin["enough_data"] is False and thin["covered_hours"] == 72 and thin["in_peak_pct"] is None

    for month, hours in zip(growing["months"], year.growing.hours_by_month):
        busy_ms, quiet_ms = expected_latency(hours)
        assert month["latency_busy_ms"] == pytest.approx(busy_ms, abs=LATENCY_TOLERANCE_MS)
        assert month["latency_quiet_ms"] == pytest.approx(quiet_ms, abs=LATENCY_TOLERANCE_MS)
        assert month["latency_busy_ms"] > month["latency_quiet_ms"]
    assert all(m["latency_busy_ms"] is None for m in falling["months"])  # no ping from that site


def test_table_says_what_a_manager_needs_in_norwegian(year: Year, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = report(capsys, year.inventory)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "Kapasitet: linjene ut fra hvert sted"
    assert lines[1] == f"Karlsøy kommune \u2013 {i18n.month(year.months[0], 'nb')}\u2013{i18n.month(year.months[-1], 'nb')} (12 måneder)"
    soon = next(line for line in lines if line.startswith("Passerer 80 % innen tolv måneder (1): Vekst skole ("))
    assert soon.endswith(" 2027).") or soon.endswith(" 2026).")
    assert any(line.startswith("Nedgang sykehjem: p95 inn ") and "passerer grensen: aldri (synkende eller flat trend) (inn)" in line for line in lines)
    assert "Uten opplink: stedet har ingen opplink i inventaret ([[site]] uplink)." in lines
    assert f"for lite data (72 timer med målinger, trenger {MIN_COVERED_HOURS})" in out
    table = lines[lines.index("Linjene"):]
    assert "  Hastighet (Mbit/s)  " in table[2]
    row = next(line for line in table if line.startswith("Vekst skole "))
    assert "  fw-vekst/wan1  " in row and "  100,0  " in row


@pytest.mark.parametrize("lang, delimiter", [("nb", ";"), ("en", ",")])
def test_csv_reads_back(year: Year, capsys: pytest.CaptureFixture[str], lang: str, delimiter: str) -> None:
    rc, out, _ = report(capsys, year.inventory, "--format", "json")
    data = {s["site"]: s for s in json.loads(out)["sites"]}
    rc, out, err = report(capsys, year.inventory, "--format", "csv", "--lang", lang)
    assert rc == 0, err
    blocks = _csv_blocks(out, delimiter)
    overview = blocks["Linjene" if lang == "nb" else "The lines"]
    header, rows = overview[0], overview[1:]
    assert [r[0] for r in rows] == ["Vekst skole", "Nedgang sykehjem", "Uten opplink"]
    trend = rows[0][header.index("Trend inn (pp/mnd)" if lang == "nb" else "Trend in (pp/month)")]
    assert i18n.parse_number(trend, lang) == pytest.approx(data["vekst"]["trend"]["in"]["slope_pp_per_month"], abs=0.05)
    monthly = blocks["Per måned" if lang == "nb" else "Per month"]
    header, rows = monthly[0], monthly[1:]
    assert header[:2] == (["Sted", "Måned"] if lang == "nb" else ["Site", "Month"])
    vekst = [r for r in rows if r[0] == "vekst"]
    assert [r[1] for r in vekst] == [m["month"] for m in data["vekst"]["months"]]  # ISO months in CSV
    p95 = [i18n.parse_number(r[2], lang) for r in vekst]
    assert p95 == pytest.approx([m["in_p95_pct"] for m in data["vekst"]["months"]], abs=0.05)
    assert [r[2] for r in rows if r[0] == "nedgang"][5] == ""  # the thin month: no number


def test_html_has_a_chart_per_site_with_the_limit_and_the_p95(year: Year, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "kapasitet.html"
    rc, out, err = report(capsys, year.inventory, "--format", "html", "--output", str(out_file))
    assert rc == 0 and out == "", err
    page = _HtmlTables()
    page.feed(out_file.read_text(encoding="utf-8"))
    assert page.styles == 1 and page.external == 0
    headings = [v for k, v in page.order if k == "h2"]
    assert "Vekst skole (fw-vekst/wan1): p95 per måned" in headings and "Nedgang sykehjem (fw-nedgang/ge0): p95 per måned" in headings
    images = [v for k, v in page.order if k == "img"]
    assert len(images) == 2
    for src in images:
        assert isinstance(src, str) and src.startswith("data:image/png;base64,")
        image = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
        assert image.format == "PNG"
        assert _pixels_near(image, ALERT_COLOUR) > 300 and _pixels_near(image, BAR_COLOUR) > 100


def test_pdf_has_the_tables_and_the_charts(year: Year, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pdf = tmp_path / "kapasitet.pdf"
    rc, out, err = report(capsys, year.inventory, "--format", "pdf", "--output", str(pdf), "--lang", "en")
    assert rc == 0 and out == "", err
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Capacity: the line out of each site" in text
    assert "Vekst skole (fw-vekst/wan1): p95 per month" in text
    assert "never (falling or flat trend)" in text
    subprocess.run(["pdftoppm", "-r", "60", "-png", str(pdf), str(tmp_path / "page")], check=True, capture_output=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert sum(_pixels_near(Image.open(p), ALERT_COLOUR) for p in pages) > 100
    assert sum(_pixels_near(Image.open(p), BAR_COLOUR) for p in pages) > 50


def test_one_site_and_its_mistakes(year: Year, capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = report(capsys, year.inventory, "--site", "nedgang", "--format", "json", "--months", "6")
    assert rc == 0, err
    data = json.loads(out)
    assert [s["site"] for s in data["sites"]] == ["nedgang"] and len(data["months"]) == 6
    rc, _, err = report(capsys, year.inventory, "--site", "vekts")
    assert rc == 2 and "--site vekts: no site with that id" in err and "vekst" in err
    rc, _, err = report(capsys, year.inventory, "--format", "pdf")
    assert rc == 2 and "--format pdf needs --output PATH" in err
