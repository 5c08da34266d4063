"""The monthly digest: when it is due, what it says (the shipped inventory), and that it reaches the
managers' channel once a month, never the on-call one, also across a restart; with last month's
availability and the lines that fill up read from a real influxd, and without them when it is down."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.points import Point
from collector.alerting.digest import digest_month, lifecycle_digest
from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.alerting.service import AlertService
from collector.config import Inventory, load_inventory
from collector.reports import i18n
from collector.reports.capacity import add_months, report_months
from inventories import InventoryBuilder
from test_reports_capacity import write_year, year_inventory

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
REPO = Path(__file__).resolve().parents[1]


def oslo(*args: int) -> float:
    return dt.datetime(*args, tzinfo=OSLO).timestamp()  # type: ignore[misc]


def digest_rounds(inventory: Inventory, now: float) -> list[bool]:
    """A collector started at `now` asks twice whether the digest is due (sending it if so), then stops."""

    async def rounds() -> list[bool]:
        service = AlertService.from_inventory(inventory)
        service.clock = lambda: now
        sent = [await service.send_digest_if_due(), await service.send_digest_if_due()]
        await service.drain()
        await service.close()
        return sent

    return asyncio.run(rounds())


def test_digest_is_due_once_a_month_from_its_day_and_time() -> None:
    at = dt.time(8, 0)
    assert digest_month(oslo(2026, 12, 1, 7, 59), OSLO, 1, at, None) is None
    assert digest_month(oslo(2026, 12, 1, 8, 0), OSLO, 1, at, None) == "2026-12"
    # A collector that was down on the 1st sends it when it is back, the same month only.
    assert digest_month(oslo(2026, 12, 17, 13, 0), OSLO, 1, at, "2026-11") == "2026-12"
    assert digest_month(oslo(2026, 12, 17, 13, 0), OSLO, 1, at, "2026-12") is None
    assert digest_month(oslo(2027, 1, 1, 8, 30), OSLO, 1, at, "2026-12") == "2027-01"
    assert digest_month(oslo(2027, 1, 14, 9, 0), OSLO, 15, at, "2026-12") is None


def test_digest_of_the_shipped_inventory_lists_the_old_firewall_and_the_plan() -> None:
    inventory = load_inventory(REPO / "inventory.toml")
    title, body = lifecycle_digest(inventory, dt.date(2026, 12, 1), "nb")
    assert title.startswith("[nettvakt] Utskifting desember 2026: ")
    assert "enheter forfalt (" in title and "\u00a0kr)" in title
    past, due_now, plan = body.split("\n\n")[:3]
    assert past.startswith("Forfalt (skulle vært byttet):")
    assert "Gammel brannmur (erstattes av FortiGate 60F) (brannmur, " in past and "kjøpt 18.02.2016, forfalt 2023, 38\u00a0000\u00a0kr" in past
    assert "FortiGate 60F" not in past.replace("(erstattes av FortiGate 60F)", "")  # the new firewall is not due
    assert due_now.startswith("Forfaller i 2026:") and ", forfaller 2026, " in due_now
    years = [line.split(":")[0].strip() for line in plan.splitlines()[1:]]
    assert years == ["2026", "2027", "2028", "2029", "2030"]
    n_past = int(title.split(": ")[1].split(" enheter")[0])
    assert n_past == past.count("\n  - ") > 5  # every past-due item listed (fewer than MAX_LISTED here)
    title_en, body_en = lifecycle_digest(inventory, dt.date(2026, 12, 1), "en")
    assert title_en.startswith("[nettvakt] Renewal December 2026: ") and "NOK\u00a0" in title_en
    assert "Plan for the next five budget years:" in body_en


def test_digest_reaches_managers_once_a_month_and_not_on_call(tmp_path: Path, smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    text = (REPO / "inventory.toml").read_text(encoding="utf-8")
    # The shipped inventory with its channels pointed at the test's SMTP server, no credentials.
    text = text.replace('smtp_host = "smtp.karlsoy.local"\nsmtp_port = 587', f'smtp_host = "127.0.0.1"\nsmtp_port = {inbox.port}')
    text = text.replace('smtp_username = "nettvakt"\nsmtp_password = "env:NETTVAKT_SMTP_PASSWORD"\n', "")
    text = text.replace('data_dir = "/var/lib/nettvakt"', f'data_dir = "{tmp_path / "data"}"')
    path = tmp_path / "inventory.toml"
    path.write_text(text, encoding="utf-8")
    inventory = load_inventory(path)
    assert inventory.data_dir() == tmp_path / "data"

    # First start ever, after November's moment: nothing now; December's is the first.
    assert digest_rounds(inventory, oslo(2026, 11, 29, 10, 0)) == [False, False]
    assert digest_rounds(inventory, oslo(2026, 12, 1, 7, 0)) == [False, False]
    assert digest_rounds(inventory, oslo(2026, 12, 1, 8, 1)) == [True, False]
    assert digest_rounds(inventory, oslo(2026, 12, 2, 9, 0)) == [False, False]  # restarted: not again
    assert digest_rounds(inventory, oslo(2027, 1, 1, 8, 0)) == [True, False]
    assert [str(m["To"]) for m in inbox.messages] == ["it-leder@karlsoy.kommune.no, okonomi@karlsoy.kommune.no"] * 2
    assert [str(m["Subject"]).split(":")[0] for m in inbox.messages] == [
        "[nettvakt] Utskifting desember 2026", "[nettvakt] Utskifting januar 2027",
    ]
    assert "Gammel brannmur" in inbox.messages[0].get_content()
    history = AlertHistory(tmp_path / "data" / HISTORY_FILE).read()
    assert [(e["rule"], e["state"]) for e in history] == [("lifecycle_digest", "event")] * 2


def digest_inventory(folder: Path, smtp_port: int, influx_url: str, database: str) -> InventoryBuilder:
    """The capacity report's three sites (tests/test_reports_capacity.py), an agent at the one without
    an uplink, and the managers' e-mail channel taking the digest."""
    return (year_inventory(folder, influx_url, database).agent("pc-uten", site="uten")
            .email("ledelse", smtp_port, to=["it-leder@karlsoy.example"]).route("ledelse", rules=["lifecycle_digest"]))


def verdicts(month: dt.date, tags: dict[str, str], down: Callable[[int, int], bool]) -> list[Point]:
    """`availability` verdicts every 15 minutes through `month` (Oslo time); `down(k, n)`: whether the k-th of n is down."""
    start = int(dt.datetime.combine(month, dt.time(0), OSLO).timestamp())
    n = (int(dt.datetime.combine(add_months(month, 1), dt.time(0), OSLO).timestamp()) - start) // 900
    return [Point("availability", tags, {"up": 0.0 if down(k, n) else 1.0}, (start + k * 900) * 10**9) for k in range(n)]


def test_digest_carries_last_month_s_availability_and_the_lines_that_fill_up(
    tmp_path: Path, smtp_inbox: Callable[..., Any], influx_db: tuple, capsys: pytest.CaptureFixture[str]
) -> None:
    server, database = influx_db
    inbox = smtp_inbox()
    first = dt.datetime.now(OSLO).date().replace(day=1)  # the digest goes out on the 1st of this month
    months = report_months(first, 12)
    last = months[-1]
    more = (
        # The growing site's firewall is down 6 hours on the 10th; the falling site's always up;
        # the site without an uplink has one machine, up the first half of the month.
        verdicts(last, {"site": "vekst", "kind": "device", "device": "fw-vekst"}, lambda k, n: 9 * 96 <= k < 9 * 96 + 24)
        + verdicts(last, {"site": "nedgang", "kind": "device", "device": "fw-nedgang"}, lambda k, n: False)
        + verdicts(last, {"site": "uten", "kind": "agent", "host": "pc-uten"}, lambda k, n: k >= n // 2)
    )
    year = write_year(digest_inventory(tmp_path, inbox.port, server.url, database), months, more)
    inventory = load_inventory(year.inventory)
    day = dt.datetime.combine(first, dt.time(7, 0), OSLO).timestamp()
    assert digest_rounds(inventory, day) == [False, False]
    assert digest_rounds(inventory, day + 3600 + 60) == [True, False]
    (mail,) = inbox.messages
    assert str(mail["Subject"]).startswith(f"[nettvakt] Utskifting {i18n.month(first, 'nb')}: ")
    body = mail.get_content().replace("\r\n", "\n")
    assert "Plan for de neste fem budsjettårene:" in body  # the renewal plan is still there
    month_s = (dt.datetime.combine(first, dt.time(0), OSLO) - dt.datetime.combine(last, dt.time(0), OSLO)).total_seconds()
    vekst = i18n.number(100.0 * (1 - 6 * 3600 / month_s), "nb", 2)
    availability = body[body.index(f"Tilgjengelighet i {i18n.month(last, 'nb')}"):].split("\n\n")[0].splitlines()
    assert availability[1:] == ["  - Uten opplink: 50,00 %", f"  - Vekst skole: {vekst} %", "  - Nedgang sykehjem: 100,00 %"]

    # The month the line passes 80 % is the capacity report's.
    assert main(["report", "capacity", "--inventory", str(year.inventory), "--format", "json"]) == 0
    report = {s["site"]: s for s in json.loads(capsys.readouterr().out)["sites"]}
    crossing = dt.date.fromisoformat(report["vekst"]["trend"]["in"]["crossing"] + "-01")
    p95 = i18n.number(report["vekst"]["months"][-1]["in_p95_pct"], "nb", 1)
    capacity = body[body.index("Linjer som passerer 80 % innen 12 måneder"):].splitlines()
    assert capacity[1] == f"  - Vekst skole (fw-vekst/wan1): {i18n.month(crossing, 'nb')} (inn); p95 {p95} % i {i18n.month(last, 'nb')}"
    assert capacity[2:4] == ["", "Full rapport med diagram per sted: nettvakt report capacity --format pdf --output kapasitet.pdf"]
    assert "kunne ikke leses" not in body


def test_digest_goes_out_with_the_renewal_plan_when_influxdb_is_down(tmp_path: Path, smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    with socket.socket() as sock:  # bound and closed: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = digest_inventory(tmp_path, inbox.port, f"http://127.0.0.1:{port}", "nettvakt").alerting(language="en").write()
    inventory = load_inventory(path)
    assert digest_rounds(inventory, oslo(2026, 12, 1, 7, 0)) == [False, False]
    assert digest_rounds(inventory, oslo(2026, 12, 1, 8, 1)) == [True, False]
    (mail,) = inbox.messages
    body = mail.get_content().replace("\r\n", "\n")
    assert str(mail["Subject"]).startswith("[nettvakt] Renewal December 2026: ")
    assert body.startswith("Past due (should have been replaced):") and "Plan for the next five budget years:" in body
    assert f"Availability could not be read: InfluxDB at http://127.0.0.1:{port}" in body
    assert f"Capacity could not be read: InfluxDB at http://127.0.0.1:{port}" in body


def test_evaluation_goes_on_while_the_digest_waits_for_a_silent_store(tmp_path: Path, smtp_inbox: Callable[..., Any]) -> None:
    """An InfluxDB that accepts the digest's query and says nothing holds the digest, never the alerts:
    the engine keeps judging; when the store hangs up, the digest goes out saying what it could not read."""
    inbox = smtp_inbox()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(10)  # the wait for the digest's connection, at most
        path = digest_inventory(tmp_path, inbox.port, f"http://127.0.0.1:{silent.getsockname()[1]}", "nettvakt").write()
        inventory = load_inventory(path)
        assert digest_rounds(inventory, oslo(2026, 12, 1, 7, 0)) == [False, False]  # November's counts as sent

        async def until(condition: Callable[[], bool]) -> None:
            while not condition():
                await asyncio.sleep(0.01)  # how often the wait looks; the condition (under wait_for) ends it

        async def scenario() -> None:
            service = AlertService.from_inventory(inventory)
            service.clock = lambda: oslo(2026, 12, 1, 8, 1)
            service.interval_s = 0.02
            runner = asyncio.ensure_future(service.run())
            connection, _ = await asyncio.to_thread(silent.accept)  # the digest is reading
            with connection:
                judged = service.evaluations
                await asyncio.wait_for(until(lambda: service.evaluations >= judged + 5), 10)
                assert inbox.messages == [] and service.digest_sent == "2026-11"  # still reading, the engine judging
            silent.close()  # the store is gone: the read fails, the next connection is refused
            await asyncio.wait_for(until(lambda: len(inbox.messages) == 1), 30)
            runner.cancel()
            await service.drain()
            await service.close()

        asyncio.run(scenario())
    body = inbox.messages[0].get_content()
    assert "Plan for de neste fem budsjettårene:" in body
    assert "Tilgjengelighet kunne ikke leses: InfluxDB at http://127.0.0.1:" in body and "Kapasitet kunne ikke leses: " in body
