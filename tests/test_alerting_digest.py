"""The monthly lifecycle digest: when it is due, what it says (the shipped inventory), and that it
reaches the managers' channel once a month, never the on-call one, also across a restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any


from collector.alerting.digest import digest_month, lifecycle_digest
from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.alerting.service import AlertService
from collector.config import load_inventory

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
REPO = Path(__file__).resolve().parents[1]


def oslo(*args: int) -> float:
    return dt.datetime(*args, tzinfo=OSLO).timestamp()  # type: ignore[misc]


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

    async def month(now: float) -> list[bool]:
        service = AlertService.from_inventory(inventory)
        service.clock = lambda: now
        sent = [await service.send_digest_if_due(), await service.send_digest_if_due()]
        await service.drain()
        await service.close()
        return sent

    # First start ever, after November's moment: nothing now; December's is the first.
    assert asyncio.run(month(oslo(2026, 11, 29, 10, 0))) == [False, False]
    assert asyncio.run(month(oslo(2026, 12, 1, 7, 0))) == [False, False]
    assert asyncio.run(month(oslo(2026, 12, 1, 8, 1))) == [True, False]
    assert asyncio.run(month(oslo(2026, 12, 2, 9, 0))) == [False, False]  # restarted: not again
    assert asyncio.run(month(oslo(2027, 1, 1, 8, 0))) == [True, False]
    assert [str(m["To"]) for m in inbox.messages] == ["it-leder@karlsoy.kommune.no, okonomi@karlsoy.kommune.no"] * 2
    assert [str(m["Subject"]).split(":")[0] for m in inbox.messages] == [
        "[nettvakt] Utskifting desember 2026", "[nettvakt] Utskifting januar 2027",
    ]
    assert "Gammel brannmur" in inbox.messages[0].get_content()
    history = AlertHistory(tmp_path / "data" / HISTORY_FILE).read()
    assert [(e["rule"], e["state"]) for e in history] == [("lifecycle_digest", "event")] * 2
