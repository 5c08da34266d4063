"""The overview at `/`: the collector now, the active alerts, then every site with its history.

Works with no InfluxDB, no Grafana and no JavaScript, on the collector's own port: the live
state comes from the collector's memory, the history from the store (collector/history.py) or,
when that cannot be read, a line saying so.
"""

from __future__ import annotations

from html import escape
from typing import Any

from collector.service import CollectorService
from collector.status.layout import local, page, words
from collector.status.sections import PageHistory, active_alerts, history_error, site_section

NO_HISTORY = PageHistory({}, None, ())


def render_main(
    service: CollectorService, now_ns: int, health: dict[str, Any] | None = None, alerts: list[dict[str, Any]] | None = None,
    history: PageHistory = NO_HISTORY, view: str = "24h",
) -> str:
    """The page's live part (what the refresh replaces). Cells are HTML-escaped: names come from inventory.toml and agents."""
    inventory = service.inventory
    lang, zone = inventory.alerting.language, inventory.alerting.timezone
    w = words(lang)
    verdicts = service.agent_verdicts(now_ns)
    n_down = sum(1 for up in verdicts.values() if up is False)
    n_up = sum(1 for up in verdicts.values() if up)
    n_waiting = len(verdicts) - n_down - n_up
    health = health or {}
    summary = w["summary"].format(up=n_up, total=len(verdicts), down=n_down)
    if n_waiting:
        summary += w["summary_waiting"].format(n=n_waiting)
    summary += w["summary_tail"].format(status=health.get("status", "ok"), storage=inventory.storage.kind,
                                        time=local(now_ns / 1e9, zone, lang, seconds=True))
    parts = [f'<p class="summary" id="summary">{escape(summary)}</p>']
    problems = health.get("problems") or []
    if problems:
        parts.append('<ul class="problems">' + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>")
    parts.append(history_error(history, lang))
    parts.append(active_alerts(alerts, now_ns, zone, lang))
    for site in inventory.site:
        parts.append(site_section(site, service, history, view, now_ns))
    return "\n".join(parts)


def render_status(
    service: CollectorService, now_ns: int, health: dict[str, Any] | None = None, alerts: list[dict[str, Any]] | None = None,
    history: PageHistory = NO_HISTORY, view: str = "24h",
) -> str:
    """The whole overview page."""
    inventory = service.inventory
    lang = inventory.alerting.language
    title = words(lang)["title"].format(org=inventory.organisation)
    return page(lang, title, f"<h1>{escape(title)}</h1>", render_main(service, now_ns, health, alerts, history, view), inventory.collector.status_refresh_s)
