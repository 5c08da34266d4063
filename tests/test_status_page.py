"""The status page at `/`, served for real with no InfluxDB and no Grafana (storage kind `local`)."""

from __future__ import annotations

import asyncio
import re
import time
from html import unescape
from pathlib import Path

import aiohttp
import pytest

from agent.points import Point
from collector.app import create_app
from collector.appkeys import SERVICE
from collector.config import Inventory
from inventories import InventoryBuilder
from browser import chromium_driver, console_problems
from serving import serving

TOKEN = "status-page-token-pc1"


def inventory(tmp_path: Path) -> Inventory:
    """A firewall at radhus, pc1 there (silent for 3 x 1 s: down) and pc2 at the school; two probes at radhus."""
    return (
        InventoryBuilder(tmp_path, organisation="Karlsøy kommune")
        .alerting(language="en")
        .lifecycle("fw", 8, 1)
        .site("radhus")
        .site("skole", "Hansnes skole")
        .device("fw-radhus", name="Brannmur", host="192.0.2.1", hardware="fw")
        .agent("pc1", TOKEN, name="PC <1> & co", interval_s=1)
        .agent("pc2", name="PC 2", site="skole", interval_s=3600)
        .probe("gw", "icmp", "192.0.2.1", sites=["radhus"])
        .probe("web", "tcp", "192.0.2.2:443", sites=["radhus"])
        .parse()
    )


def row_text(page: str, element_id: str) -> str:
    """The text of the table row holding the element with this id, tags stripped."""
    match = re.search(rf'<tr>(?:(?!</tr>).)*id="{re.escape(element_id)}"(?:(?!</tr>).)*</tr>', page, re.S)
    assert match is not None, f"no row for {element_id}"
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", match.group(0))).split())


def target_row(page: str, name: str) -> str:
    rows = [" ".join(unescape(re.sub(r"<[^>]+>", " ", r)).split()) for r in re.findall(r"<tr>.*?</tr>", page, re.S)]
    (row,) = [r for r in rows if r.startswith(f"{name} ")]
    return row


def test_status_page_shows_live_state_and_an_agent_going_down(tmp_path: Path) -> None:
    async def scenario() -> None:
        app = create_app(inventory(tmp_path))
        async with serving(app) as base, aiohttp.ClientSession(base) as http:

            async def page() -> str:
                async with http.get("/") as resp:
                    assert resp.status == 200
                    assert resp.content_type == "text/html"
                    return await resp.text()

            now = time.time_ns()
            points = [
                {"measurement": "probe", "tags": {"kind": "icmp", "target": "gw"}, "fields": {"up": 1.0, "rtt_ms": 4.25}, "time": now},
                {"measurement": "probe", "tags": {"kind": "tcp", "target": "web"}, "fields": {"up": 0.0, "reason": "timeout"}, "time": now},
            ]
            async with http.post("/api/v1/ingest", json={"agent": "pc1", "seq": 1, "points": points}, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                assert resp.status == 200
            # What the SNMP poller would report for the firewall: it does not answer.
            await app[SERVICE].store_local("device:fw-radhus", [Point("availability", {"site": "radhus", "device": "fw-radhus", "kind": "device"}, {"up": 0.0}, now)])

            html = await page()
            assert "<title>nettvakt – Karlsøy kommune</title>" in html
            assert "Rådhuset" in html and "Hansnes skole" in html
            assert "PC &lt;1&gt; &amp; co" in html  # names are escaped, never markup
            # One script, inline, that only refreshes the page's live part; nothing is fetched from elsewhere.
            assert html.count("<script") == 1 and "<script>" in html and "src=" not in html and "http" not in html.split("<script>")[1]
            assert row_text(html, "agent-pc1").startswith("pc1 PC <1> & co up ")
            # Never heard from: neither up nor down, and not counted as either.
            assert row_text(html, "agent-pc2") == "pc2 PC 2 waiting for first report never unknown"
            assert "1 of 2 agents up, 0 down, 1 waiting for first report" in html
            assert row_text(html, "device-fw-radhus").startswith("fw-radhus Brannmur DOWN ")
            assert target_row(html, "gw").startswith("gw icmp pc1 up 4.2 ms ")
            assert target_row(html, "web").startswith("web tcp pc1 DOWN – (timeout) ")
            assert "No active alerts." not in html and "Alerting is not running." in html

            # pc1 falls silent: after 3 intervals the page shows it down, with its last-seen time.
            html = await wait_for_page(page, lambda h: " DOWN " in row_text(h, "agent-pc1"))
            # Local time in the inventory's zone, labelled (one clock for people).
            assert re.match(r"pc1 PC <1> & co DOWN \d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T \(\d+ s ago\) unknown$", row_text(html, "agent-pc1"))
            assert "0 of 2 agents up, 1 down, 1 waiting for first report" in html

    asyncio.run(scenario())


async def wait_for_page(page, condition, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        html = await page()
        if condition(html):
            return html
        assert time.monotonic() < deadline, f"the page never showed the change:\n{html}"
        await asyncio.sleep(0.2)


def test_status_page_in_headless_chromium_shows_an_agent_going_down(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    async def scenario() -> None:
        app = create_app(inventory(tmp_path))
        async with serving(app) as base:
            url = base + "/"
            browser = await asyncio.to_thread(chromium_driver)
            try:
                point = {"measurement": "probe", "tags": {"kind": "icmp", "target": "gw"}, "fields": {"up": 1.0, "rtt_ms": 4.25}, "time": time.time_ns()}
                async with aiohttp.ClientSession() as http:
                    async with http.post(url + "api/v1/ingest", json={"agent": "pc1", "seq": 1, "points": [point]}, headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
                        assert resp.status == 200

                def agent_row() -> str:
                    return browser.find_element(By.XPATH, '//tr[.//*[@id="agent-pc1"]]').text

                await asyncio.to_thread(browser.get, url)
                assert browser.title == "nettvakt – Karlsøy kommune"
                assert " up " in f" {await asyncio.to_thread(agent_row)} "
                deadline = time.monotonic() + 20
                while " DOWN " not in f" {await asyncio.to_thread(agent_row)} ":
                    assert time.monotonic() < deadline, "the page never showed pc1 down"
                    await asyncio.sleep(0.3)  # how often the page is reloaded; the DOWN row (or the deadline) ends it
                    await asyncio.to_thread(browser.refresh)
                summary = await asyncio.to_thread(lambda: browser.find_element(By.ID, "summary").text)
                assert summary.startswith("0 of 2 agents up, 1 down, 1 waiting for first report")
                # What a person sees: the never-heard agent waiting, times in the municipality's zone, labelled.
                shot = tmp_path / "status.png"
                assert await asyncio.to_thread(browser.save_screenshot, str(shot))
                assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
                pc2 = await asyncio.to_thread(lambda: browser.find_element(By.XPATH, '//tr[.//*[@id="agent-pc2"]]').text)
                assert "waiting for first report" in pc2
                assert re.search(r"\d\d:\d\d:\d\d CES?T \(\d+ s ago\)", await asyncio.to_thread(agent_row))
                assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T$", summary)
                assert await asyncio.to_thread(console_problems, browser) == []
            finally:
                await asyncio.to_thread(browser.quit)

    asyncio.run(scenario())


def test_a_partial_poll_shows_which_tables_timed_out(tmp_path: Path) -> None:
    from collector.queue import DurableQueue
    from collector.service import CollectorService
    from collector.status import render_status

    queue = DurableQueue(tmp_path / "q.sqlite3")
    try:
        service = CollectorService(inventory(tmp_path), queue)
        now = time.time_ns()
        tags = {"site": "radhus", "device": "fw-radhus"}
        service.observe_local([
            Point("device", tags, {"up": 1.0, "partial": 1.0, "partial_tables": "entPhysicalSerialNum"}, now),
            Point("availability", {**tags, "kind": "device"}, {"up": 1.0}, now),
        ])
        html = render_status(service, now)
        assert row_text(html, "device-fw-radhus").startswith("fw-radhus Brannmur up (partial: entPhysicalSerialNum timed out) ")
    finally:
        queue.close()
