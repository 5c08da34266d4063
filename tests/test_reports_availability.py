"""`nettvakt report availability` on outages made for real: a collector process, three agent
processes and a real influxd. A service the agents probe (a listening socket of this test) is
closed and opened again; both agents of one site are stopped and started again. The report
finds each outage within the stated tolerances, its availability is the outage over the time
known, and it renders in every format (the PDF read back with pdftotext).
"""

from __future__ import annotations

import csv
import io
import json
import re
import socket
import subprocess
import threading
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest

from agent.cli import main
from collector.influxql import query
from collector.localservers import free_port, wait_until
from collector.reports import i18n
from inventories import InventoryBuilder

HEARTBEAT_S = 1.0
DOWN_AFTER = 3
PROBE_S = 1.0
BEAT_S = 30.0
# The collector judges every 5 s: an evidence time is at most that (and a probe round) off what we did.
JUDGED_EVERY_S = 5.0
# An agent process takes a few seconds from start to its first heartbeat (Python, its configuration).
AGENT_START_S = 20.0


class Service:
    """A TCP service on loopback the agents probe: accepts and closes, until stopped; then the port refuses."""

    def __init__(self) -> None:
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener,), daemon=True)
        self._thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            connection.close()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
            self._listener = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None


def write_inventory(folder: Path, influx_url: str, database: str, service_port: int) -> Path:
    """Helse: agents h1 and h2 probing the journal service; Hansnes: agent n1 probing it too."""
    every = {"interval_s": 1, "heartbeat_s": HEARTBEAT_S, "down_after_intervals": DOWN_AFTER}
    return (
        InventoryBuilder(folder)
        .influxdb(influx_url, database, flush_interval_s=0.2)
        .collector(availability_beat_s=BEAT_S)
        .site("helse", "Helsesenteret")
        .site("hansnes", "Hansnes")
        .agent("h1", site="helse", **every)
        .agent("h2", site="helse", **every)
        .agent("n1", site="hansnes", **every)
        .probe("journal", "tcp", f"127.0.0.1:{service_port}", interval_s=PROBE_S, timeout_s=1)
        .write()
    )


def report(capsys: pytest.CaptureFixture[str], inventory: Path, *args: str) -> str:
    rc = main(["report", "availability", "--inventory", str(inventory), *args])
    out, err = capsys.readouterr()
    assert rc == 0, err
    return out


def within(value: float, low: float, high: float) -> bool:
    return low <= value <= high


def iso_s(text: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(text).timestamp()


@pytest.fixture(scope="module")
def outages(influxd: Any, nettvakt_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("availability-report")
    database = "availability_report"
    admin = urllib_post(influxd.url, f'CREATE DATABASE "{database}"')
    assert admin
    service = Service()
    service.start()
    inventory = write_inventory(folder, influxd.url, database, service.port)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    nettvakt = nettvakt_module
    collector = nettvakt.start(["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"], folder / "collector.log")
    agents: dict[str, Any] = {}

    def start_agent(agent: str) -> None:
        agents[agent] = nettvakt.start(
            ["agent", "run", "--collector", base, "--agent-id", agent, "--spool", str(folder / f"{agent}.sqlite3")],
            folder / f"{agent}.log", {"NETTVAKT_AGENT_TOKEN": f"{agent}-token"},
        )

    def stored(statement: str) -> list[dict[str, Any]]:
        return query(influxd.url, database, statement)

    def last_up(where: str, since_ns: int) -> list[float]:
        return [r["last"] for r in stored(f"SELECT last(up) FROM availability WHERE {where} AND time > {since_ns} GROUP BY *")]

    try:
        wait_until(lambda: nettvakt.health(base)["status"], 30, "collector health")
        began = time.time()
        for agent in ("h1", "h2", "n1"):
            start_agent(agent)
        wait_until(lambda: last_up("kind = 'agent'", 0) == [1.0, 1.0, 1.0], 60, "every agent up")
        wait_until(lambda: last_up("kind = 'target'", 0) == [1.0, 1.0, 1.0], 60, "the journal service up from every agent")

        # The service goes away for a while: every agent's probes fail, nothing else does.
        service_stopped = time.time()
        service.stop()
        wait_until(lambda: last_up("kind = 'target'", int(service_stopped * 1e9)) == [0.0, 0.0, 0.0], 30, "the journal service down")
        service_started = time.time()
        service.start()
        wait_until(lambda: last_up("kind = 'target'", int(service_started * 1e9)) == [1.0, 1.0, 1.0], 30, "the journal service back")

        # Both agents of Helse stop: the site is down (and its probes of the service unknown meanwhile).
        helse_stopped = time.time()
        for agent in ("h1", "h2"):
            nettvakt.stop(agents[agent])
        wait_until(lambda: last_up("site = 'helse' AND kind = 'agent'", int(helse_stopped * 1e9)) == [0.0, 0.0], 30, "Helse's agents down")
        helse_started = time.time()
        for agent in ("h1", "h2"):
            start_agent(agent)
        wait_until(lambda: last_up("site = 'helse' AND kind = 'agent'", int(helse_started * 1e9)) == [1.0, 1.0], 60, "Helse's agents back")
        wait_until(lambda: last_up("site = 'helse' AND kind = 'target'", int(helse_started * 1e9)) == [1.0, 1.0], 30, "Helse's probes back")
        ended = time.time()
    finally:
        for proc in (*agents.values(), collector):
            nettvakt.stop(proc)
        service.stop()
    assert collector.returncode == 0, (folder / "collector.log").read_text()[-3000:]
    yield {
        "inventory": inventory, "folder": folder, "began": began, "service_stopped": service_stopped,
        "service_started": service_started, "helse_stopped": helse_stopped, "helse_started": helse_started, "ended": ended,
    }
    urllib_post(influxd.url, f'DROP DATABASE "{database}"')


def urllib_post(url: str, statement: str) -> bool:
    import urllib.parse
    import urllib.request

    request = urllib.request.Request(f"{url}/query", urllib.parse.urlencode({"q": statement}).encode(), method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        return response.status == 200


def since(outages: dict[str, Any]) -> str:
    """A period starting a little before the agents were first started, so it holds every outage."""
    return f"{int(time.time() - outages['began'] + 2)}s"


def test_outages_are_found_with_their_times(outages: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(report(capsys, outages["inventory"], "--since", since(outages), "--format", "json"))
    assert data["report"] == "availability" and data["timezone"] == "Europe/Oslo"
    assert data["start"].endswith(("+01:00", "+02:00"))  # ISO with the zone's offset
    sites = {s["id"]: s for s in data["sites"]}
    # Worst first: Helse had an outage, Hansnes none.
    assert [s["id"] for s in data["sites"]] == ["helse", "hansnes"]
    assert sites["hansnes"]["outages"] == [] and sites["hansnes"]["availability_pct"] == 100.0

    # Helse: down from the agents' last signs of life to the first one back.
    [site] = sites["helse"]["outages"]
    stopped, started = outages["helse_stopped"], outages["helse_started"]
    assert within(iso_s(site["start"]), stopped - HEARTBEAT_S - 1, stopped + 1), (site, stopped)
    assert within(iso_s(site["end"]), started, started + AGENT_START_S), (site, started)
    assert not site["open"] and not site["end_unknown"]
    # Availability is the time up over the time known; the outage is all of the time down.
    helse = sites["helse"]
    assert helse["down_s"] == pytest.approx(site["duration_s"], abs=0.01)
    assert helse["availability_pct"] == pytest.approx(100 * helse["up_s"] / (helse["up_s"] + helse["down_s"]), abs=0.01)
    period = iso_s(data["end"]) - iso_s(data["start"])
    assert helse["up_s"] + helse["down_s"] + helse["unknown_s"] == pytest.approx(period, abs=1)
    assert helse["mttr_s"] == pytest.approx(site["duration_s"], abs=0.01)

    services = {s["id"]: s for s in data["services"]}
    assert set(services) == {"journal@h1", "journal@h2", "journal@n1"}
    # Helse's services first (its site is worse), then Hansnes'.
    assert [s["site"] for s in data["services"]] == ["helse", "helse", "hansnes"]
    off, on = outages["service_stopped"], outages["service_started"]
    for ident, service in services.items():
        [outage] = service["outages"]  # the service's; Helse's own outage made its probes unknown, not down
        assert within(iso_s(outage["start"]), off, off + PROBE_S + JUDGED_EVERY_S), (ident, outage, off)
        assert within(iso_s(outage["end"]), on, on + PROBE_S + JUDGED_EVERY_S), (ident, outage, on)
        assert service["down_s"] == pytest.approx(outage["duration_s"], abs=0.01)
        assert service["mttr_s"] == pytest.approx(outage["duration_s"], abs=0.01)
        assert service["availability_pct"] == pytest.approx(100 * service["up_s"] / (service["up_s"] + service["down_s"]), abs=0.01)
        assert service["availability_pct"] < 100
    # While Helse's agents were stopped nobody measured the service from there: unknown, not up or down.
    for ident in ("journal@h1", "journal@h2"):
        assert services[ident]["unknown_s"] >= started - stopped - JUDGED_EVERY_S - 2 * DOWN_AFTER * PROBE_S
    assert services["journal@n1"]["unknown_s"] < services["journal@h1"]["unknown_s"]


def test_site_filter_and_unknown_site(outages: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(report(capsys, outages["inventory"], "--since", since(outages), "--format", "json", "--site", "hansnes"))
    assert [s["id"] for s in data["sites"]] == ["hansnes"] and [s["id"] for s in data["services"]] == ["journal@n1"]
    rc = main(["report", "availability", "--inventory", str(outages["inventory"]), "--site", "hansne"])
    _, err = capsys.readouterr()
    assert rc == 2 and "--site hansne: no site with that id" in err and "hansnes" in err


def test_every_format_renders(outages: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    period = since(outages)
    data = json.loads(report(capsys, outages["inventory"], "--since", period, "--format", "json"))
    helse = next(s for s in data["sites"] if s["id"] == "helse")
    # Each run ends at its own now, so Helse's percentage grows a little from one run to the next.
    pct_nb = re.compile(r"Helsesenteret\s+(\d{2},\d{2})\s")

    table = report(capsys, outages["inventory"], "--since", period)
    assert "Tilgjengelighet: steder og tjenester" in table
    assert table.index("Helsesenteret") < table.index("Hansnes")  # worst first
    shown = pct_nb.search(table)
    assert shown and i18n.parse_number(shown.group(1), "nb") == pytest.approx(helse["availability_pct"], abs=1.0), table
    assert "hele stedet" in table and "journal (fra h1)" in table
    assert "CET" in table or "CEST" in table  # times labelled with the zone

    english = report(capsys, outages["inventory"], "--since", period, "--lang", "en")
    assert "Availability: sites and services" in english and "the whole site" in english

    rows = list(csv.reader(io.StringIO(report(capsys, outages["inventory"], "--since", period, "--format", "csv")), delimiter=";"))
    site_row = next(r for r in rows if r and r[0] == "Helsesenteret")
    assert i18n.parse_number(site_row[1], "nb") == pytest.approx(helse["availability_pct"], abs=1.0)

    html = report(capsys, outages["inventory"], "--since", period, "--format", "html")
    assert html.lstrip().startswith("<!DOCTYPE html>") and "Helsesenteret" in html and "Alle avbrudd" in html

    pdf = tmp_path / "availability.pdf"
    report(capsys, outages["inventory"], "--since", period, "--format", "pdf", "--output", str(pdf))
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    assert "Tilgjengelighet: steder og tjenester" in text
    assert pct_nb.search(text) and "Alle avbrudd" in text and "hele stedet" in text
    rc = main(["report", "availability", "--inventory", str(outages["inventory"]), "--format", "pdf"])
    _, err = capsys.readouterr()
    assert rc == 2 and "--format pdf needs --output" in err
