"""The parts of the status pages: a site's section (history at the top, then its live tables and
its probe targets' latency), the active alerts, and the alert timeline. The overview shows every
site's section, the site page one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

from collector import svg
from collector.config import Inventory, Site
from collector.history_grids import HOUR_S
from collector.history import (
    DEFAULT_VIEW, DEGRADED, DOWN, LATENCY_VIEWS, TIMELINE_S, UP, WAITING, AlertEpisode, HistoryService, SiteHistory,
    TargetsView, Traffic,
)
from collector.service import CollectorService
from collector.status.layout import VIEW_PARAM, duration, legend, local, ms, number, pct, rate, state, table, ticks, when, words
from collector.timeseries import SourceError

STRIP_STATES = (UP, DEGRADED, DOWN, WAITING)


@dataclass
class PageHistory:
    """What the store said for a page; `error` when it could not be read (the live parts still show)."""

    sites: Mapping[str, SiteHistory]
    targets: TargetsView | None
    timeline: Sequence[AlertEpisode]
    error: str | None = None


def gather(history: HistoryService, inventory: Inventory, view: str, now_s: float) -> PageHistory:
    """Read what the pages show (blocking). A store that cannot be read is said on the page; the
    alert timeline comes from the collector's own files, whatever the store."""
    timeline: Sequence[AlertEpisode] = ()
    error = None
    try:
        timeline = history.timeline(inventory, now_s)
    except (OSError, ValueError) as exc:
        error = str(exc)
    try:
        return PageHistory(history.sites(inventory, now_s, view), history.targets(inventory, view, now_s), timeline, error)
    except SourceError as exc:
        return PageHistory({}, None, timeline, str(exc))


def view_of(query: Mapping[str, str]) -> str:
    """The latency view a page asks for (`?latency=1h`, `?latency=7d`); anything else is the default."""
    value = query.get(VIEW_PARAM, DEFAULT_VIEW)
    return value if value in LATENCY_VIEWS else DEFAULT_VIEW


def site_url(site_id: str) -> str:
    return f"/site/{quote(site_id)}"


def device_url(device_id: str) -> str:
    return f"/device/{quote(device_id)}"


def active_alerts(alerts: list[dict[str, Any]] | None, now_ns: int, zone: str, lang: str) -> str:
    w = words(lang)
    rows = []
    for a in alerts or []:
        summary = escape(str(a.get("summary", "")))
        if a.get("muted"):
            summary += f' <span class="muted">({escape(a["muted"])})</span>'
        if a.get("acked_by"):
            acked = w["acked"].format(by=a["acked_by"], when=when(int(a["acked_at"] * 1e9), now_ns, zone, lang))
            summary += f' <span class="muted">({escape(acked)})</span>'
        rows.append([escape(a.get("severity", "")), escape(a.get("site") or ""), escape(str(a.get("subject", ""))), summary,
                     escape(when(int(a["since"] * 1e9), now_ns, zone, lang)) if a.get("since") else ""])
    return f"<h2>{escape(w['active_alerts'])}</h2>" + table(
        [w["col_severity"], w["col_site"], w["col_subject"], w["col_summary"], w["col_since"]], rows,
        w["no_alerts"] if alerts is not None else w["alerting_off"],
    )


def _strip(site: SiteHistory, zone: str, lang: str) -> str:
    w = words(lang)
    spans = [svg.Span(s.start_s, s.end_s, s.state, w["span_title"].format(
        state=w[f"state_{s.state}"], start=local(s.start_s, zone, lang, with_date=False), end=local(s.end_s, zone, lang, with_date=False),
        duration=duration(s.end_s - s.start_s, lang))) for s in site.strip]
    chart = svg.strip(spans, site.start_s, site.end_s, ticks(site.start_s, site.end_s, zone, lang), w["strip_title"])
    outages = [
        (w["outage"] if o.end_s is not None else w["outage_open"]).format(
            start=local(o.start_s, zone, lang), end=local(o.end_s, zone, lang, with_date=False) if o.end_s is not None else "",
            duration=duration(o.duration_s(site.end_s), lang))
        for o in site.outages
    ]
    said = (f'<p><b>{escape(w["outages_24h"])}</b> ' + "; ".join(escape(o) for o in outages) + "</p>") if outages else \
        f'<p class="muted">{escape(w["no_outages_24h"])}</p>'
    return (f"<h3>{escape(w['strip_title'])}</h3>" + chart + legend([(s, w[f"state_{s}"]) for s in STRIP_STATES]) + said)


def traffic_chart(traffic: Traffic, start_s: float, end_s: float, zone: str, lang: str, title: str) -> str:
    w = words(lang)
    capacity = traffic.capacity_bps
    chart = svg.line_chart(
        [svg.Line("in", traffic.in_bps, area=True), svg.Line("out", traffic.out_bps)], start_s, end_s,
        ticks(start_s, end_s, zone, lang), title, top_label=lambda v: rate(v, lang),
        limit=capacity, limit_label=w["capacity"].format(rate=rate(capacity, lang)) if capacity else "",
    )
    keys = [("in", w["traffic_in"]), ("out", w["traffic_out"])] + ([("cap", w["capacity"].format(rate=rate(capacity, lang)))] if capacity else [])
    return f"<h3>{escape(title)}</h3>{chart}{legend(keys)}"


def _uplink(site: Site, history: SiteHistory, zone: str, lang: str) -> str:
    if history.uplink is None:
        return ""
    t = history.uplink
    w = words(lang)
    span = w["view_1h"] if t.end_s - t.start_s <= HOUR_S else w["view_24h"]
    return traffic_chart(t, t.start_s, t.end_s, zone, lang, w["uplink"].format(device=t.device, ifname=t.ifname, span=span))


def _views(view: str, anchor: str, lang: str) -> str:
    w = words(lang)
    links = []
    for name in LATENCY_VIEWS:
        label = escape(w[f"view_{name}"])
        links.append(f"<b>{label}</b>" if name == view else f'<a href="?{VIEW_PARAM}={name}#{escape(anchor)}">{label}</a>')
    return f'<p class="views">{escape(w["latency_over"])} {"".join(links)}</p>'


def targets_block(inventory: Inventory, service: CollectorService, agents: Sequence[Any], view: TargetsView | None,
                  chosen_view: str, anchor: str, now_ns: int, zone: str, lang: str) -> str:
    """Every probe target of `agents`: its live state and latency, the change against the same
    hour yesterday, and its latency chart under it."""
    w = words(lang)
    rows: list[list[str]] = []
    graphs: dict[int, str] = {}
    for agent in agents:
        for probe in inventory.probes_for(agent):
            target = service.targets.get((agent.id, probe.name))
            latency = ms(target.latency_ms, lang) if target and target.latency_ms is not None else "–"
            if target and not target.up and target.reason:
                latency += f' <span class="muted">({escape(target.reason)})</span>'
            history = view.targets.get((agent.id, probe.name)) if view is not None else None
            change = "–"
            if history is not None and history.change_ms is not None:
                sign = "+" if history.change_ms > 0 else ""
                change = escape(w["change"].format(delta=f"{sign}{ms(history.change_ms, lang)}",
                                                  before=ms(history.same_hour_yesterday_ms, lang), now=ms(history.last_hour_ms, lang)))
            rows.append([escape(probe.name), escape(probe.kind), escape(agent.id), state(target.up if target else None, lang, "not_measured"),
                         latency, change, escape(when(target.time_ns if target else None, now_ns, zone, lang))])
            if history is not None and view is not None:
                title = w["latency_title"].format(target=probe.name, agent=agent.id, view=w[f"view_{view.view}"])
                graphs[len(rows) - 1] = svg.latency_chart(history.buckets, view.bucket_s, view.start_s, view.end_s,
                                                         ticks(view.start_s, view.end_s, zone, lang), title, lambda v: ms(v, lang))
    if not rows:
        return ""
    keys = [("l0", w["loss_none"]), ("l1", w["loss_some"]), ("l2", w["loss_more"]), ("l3", w["loss_much"]), ("band", w["spread"])]
    return (_views(chosen_view, anchor, lang)
            + table([w["target"], w["kind"], w["from_agent"], w["state"], w["latency"], w["change_col"], w["measured"]], rows, "", graphs)
            + (legend(keys) if graphs else ""))


def timeline_block(episodes: Sequence[AlertEpisode], end_s: float, zone: str, lang: str) -> str:
    """The last TIMELINE_S of alerts: a strip coloured by severity while each fired, and the list, with who acknowledged."""
    w = words(lang)
    start_s = end_s - TIMELINE_S
    spans = [svg.Span(start_s, end_s, "quiet")]
    rows = []
    for e in episodes:
        spans.append(svg.Span(max(e.start_s, start_s), e.end_s if e.end_s is not None else end_s, e.severity or "warning",
                              f"{e.summary or e.rule} ({local(e.start_s, zone, lang)})"))
        rows.append([escape(local(e.start_s, zone, lang)),
                     escape(local(e.end_s, zone, lang)) if e.end_s is not None else f'<span class="down">{escape(w["still_firing"])}</span>',
                     escape(duration((e.end_s if e.end_s is not None else end_s) - e.start_s, lang)),
                     escape(e.severity), escape(e.summary or f"{e.rule} {e.subject}"),
                     escape(w["acked_by"].format(by=e.acked_by, when=local(e.acked_at or 0, zone, lang))) if e.acked_by else "–"])
    chart = svg.strip(spans, start_s, end_s, ticks(start_s, end_s, zone, lang), w["timeline_title"])
    return (f"<h3>{escape(w['timeline_title'])}</h3>" + chart
            + table([w["col_from"], w["col_to"], w["col_duration"], w["col_severity"], w["col_summary"], w["col_acked"]], rows, w["no_alerts_7d"]))


def site_section(site: Site, service: CollectorService, history: PageHistory, view: str, now_ns: int, linked: bool = True) -> str:
    """One site: its history at the top (strip, availability, uplink), its agents and devices now,
    its probe targets with their latency, and its alerts of the last 7 days."""
    inventory = service.inventory
    lang, zone = inventory.alerting.language, inventory.alerting.timezone
    w = words(lang)
    anchor = f"site-{site.id}"
    name = f'<a href="{site_url(site.id)}">{escape(site.name)}</a>' if linked else escape(site.name)
    parts = [f'<section id="{escape(anchor)}"><h2>{name} <span class="muted">({escape(site.id)})</span></h2>']
    past = history.sites.get(site.id)
    if past is not None:
        parts.append(f'<p class="avail">' + escape(w["availability"].format(
            d7=pct(past.availability_pct.get(7), lang), d30=pct(past.availability_pct.get(30), lang))) + "</p>")
        parts.append(_strip(past, zone, lang))
        parts.append(_uplink(site, past, zone, lang))
    agents = [a for a in inventory.agent if a.site == site.id]
    verdicts = service.agent_verdicts(now_ns)
    parts.append(table(
        [w["agent"], w["name"], w["state"], w["last_seen"], w["backlog"]],
        [[f'<span id="agent-{escape(a.id)}">{escape(a.id)}</span>', escape(a.name), state(verdicts.get(a.id), lang, "waiting"),
          escape(when(max(service.agents[a.id].last_seen_ns, service.agents[a.id].last_heartbeat_ns), now_ns, zone, lang)),
          escape(_backlog(service.agents[a.id].pending_points, lang))]
         for a in agents],
        w["no_agents"],
    ))
    devices = [d for d in inventory.device if d.site == site.id]
    rows = []
    for d in devices:
        current = service.devices.get(d.id)
        shown = state(current.up if current else None, lang, "waiting_poll")
        if current is not None and current.up and current.partial:
            shown += f' <span class="muted">({escape(w["partial"].format(tables=current.partial))})</span>'
        rows.append([f'<a id="device-{escape(d.id)}" href="{device_url(d.id)}">{escape(d.id)}</a>', escape(d.name), shown,
                     escape(when(current.time_ns if current else None, now_ns, zone, lang))])
    parts.append(table([w["device"], w["name"], w["state"], w["last_polled"]], rows, ""))
    parts.append(targets_block(inventory, service, agents, history.targets, view, anchor, now_ns, zone, lang))
    episodes = [e for e in history.timeline if e.site == site.id]
    parts.append(timeline_block(episodes, now_ns / 1e9, zone, lang))
    parts.append("</section>")
    return "".join(parts)


def _backlog(pending_points: int | None, lang: str) -> str:
    """Points the agent still holds (its last heartbeat): after an outage, what is yet to come."""
    w = words(lang)
    if pending_points is None:
        return w["backlog_unknown"]
    return w["backlog_none"] if pending_points == 0 else w["backlog_points"].format(n=pending_points)


def history_error(history: PageHistory, lang: str) -> str:
    if history.error is None:
        return ""
    return f'<p class="problems">{escape(words(lang)["history_error"].format(error=history.error))}</p>'


__all__ = ["PageHistory", "active_alerts", "device_url", "gather", "history_error", "number", "site_section", "site_url", "view_of"]
