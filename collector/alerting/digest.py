"""The monthly lifecycle digest for managers: what is past due and what falls due, with costs.

Hardware past its lifetime is a budget matter, not a page: once a month (`[alerting]
digest_day` at `digest_time`, local time) the alert service sends this text as a one-off
event with rule `lifecycle_digest`, so routes decide who gets it (typically a route with
`rules = ["lifecycle_digest"]` to the managers' channel). The numbers come from the same
model as `nettvakt report hardware` (one place for the renewal maths).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from collector import texts
from collector.config import Inventory
from collector.reports import i18n
from collector.reports.hardware import HardwareItem, build_hardware_report

DIGEST_RULE = "lifecycle_digest"
MAX_LISTED = 25  # past-due lines in the mail; the full list is in the report

def digest_month(now: float, zone: zoneinfo.ZoneInfo, day: int, at: dt.time, last_sent: str | None) -> str | None:
    """The month ("2026-12") whose digest is due at Unix time `now`, or None.

    Due from `day` at `at` local time until the month ends, once: a collector that was down
    at the moment sends it when it comes back, and a restart does not send it twice.
    """
    local = dt.datetime.fromtimestamp(now, zone)
    month = f"{local.year:04d}-{local.month:02d}"
    if month == last_sent:
        return None
    moment = dt.datetime.combine(local.date().replace(day=day), at, zone)
    return month if local >= moment else None


def previous_month(now: float, zone: zoneinfo.ZoneInfo) -> str:
    local = dt.datetime.fromtimestamp(now, zone)
    year, month = (local.year, local.month - 1) if local.month > 1 else (local.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def lifecycle_digest(inventory: Inventory, today: dt.date, lang: str) -> tuple[str, str]:
    """(title, body) of the digest for `today`."""
    catalog = texts.of(lang)
    t = catalog.digest
    report = build_hardware_report(inventory, today.year, today)
    currency = report.currency

    def money(value: float) -> str:
        return i18n.money(value, lang, currency)

    past = report.past_due
    due_now = [i for i in report.items if i.status == "due" and i.due_year == today.year]
    title = t["title"].format(
        month=f"{catalog.months[today.month - 1]} {today.year}", past=i18n.count(len(past), "unit", lang),
        past_cost=money(sum(i.cost_nok or 0.0 for i in past)), due=len(due_now), year=today.year,
        due_cost=money(sum(i.cost_nok or 0.0 for i in due_now)),
    )

    def item_line(item: HardwareItem) -> str:
        return t["item"].format(
            name=item.name, kind=i18n.kind_name(item.kind, lang), site=item.site_name,
            purchased=i18n.date(item.purchased, lang) or "?", due_year=item.due_year, cost=money(item.cost_nok or 0.0),
            due_word=t["was_due"] if item.status == "past_due" else t["falls_due"],
        )

    lines = [t["past"]]
    lines += [item_line(i) for i in past[:MAX_LISTED]] or [t["none"]]
    if len(past) > MAX_LISTED:
        lines.append(t["more"].format(n=len(past) - MAX_LISTED))
    lines += ["", t["due"].format(year=today.year)]
    lines += [item_line(i) for i in due_now[:MAX_LISTED]] or [t["none"]]
    if len(due_now) > MAX_LISTED:
        lines.append(t["more"].format(n=len(due_now) - MAX_LISTED))
    lines += ["", t["forecast"]]
    lines += [t["row"].format(year=f.year, units=i18n.count(f.units, "unit", lang), cost=money(f.cost_nok)) for f in report.forecast]
    if report.unknown:
        lines += ["", t["unknown"].format(n=i18n.count(len(report.unknown), "unit", lang))]
    lines += ["", t["footer"]]
    return title, "\n".join(lines) + "\n"
