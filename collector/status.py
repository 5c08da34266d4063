"""The status page at `/`: sites, agents, devices and probe targets from the collector's live state.

Server-rendered HTML with no script, so it works with no InfluxDB, no Grafana and no
JavaScript, on the collector's own port. It refreshes itself every 10 s.
"""

from __future__ import annotations

import datetime as dt
from html import escape
from typing import Any

from collector import clock
from collector.config import Inventory
from collector.service import WAITING, CollectorService

REFRESH_S = 10

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;background:#fafafa}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.3rem 0 .8rem;min-width:32rem}
th,td{text-align:left;padding:.2rem .7rem;border-bottom:1px solid #e2e2e2}th{font-weight:600;background:#eee}
.up{color:#0a6b1f;font-weight:600}.down{color:#b00020;font-weight:700}.unknown{color:#777}
.summary{margin:.2rem 0 1rem}.problems{color:#b00020}.muted{color:#777}
"""


def _backlog(pending_points: int | None) -> str:
    """Points the agent still holds (its last heartbeat): after an outage, what is yet to come."""
    if pending_points is None:
        return "unknown"
    return "none" if pending_points == 0 else f"{pending_points} points"


def _when(time_ns: int | None, now_ns: int, zone: str) -> str:
    if not time_ns:
        return "never"
    age_s = max(0, (now_ns - time_ns) // 10**9)
    stamp = clock.local(time_ns / 1e9, zone, "%Y-%m-%d %H:%M:%S")
    if age_s < 120:
        ago = f"{age_s} s ago"
    elif age_s < 7200:
        ago = f"{age_s // 60} min ago"
    else:
        ago = f"{age_s // 3600} h ago"
    return f"{stamp} ({ago})"


def _state(up: bool | None, waiting: str = "unknown") -> str:
    """up, DOWN, or `waiting` (no verdict yet: never reported, not polled yet, not measured yet)."""
    if up is None:
        return f'<span class="unknown">{escape(waiting)}</span>'
    return '<span class="up">up</span>' if up else '<span class="down">DOWN</span>'


def _table(headers: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_status(
    service: CollectorService,
    now_ns: int,
    health: dict[str, Any] | None = None,
    alerts: list[dict[str, Any]] | None = None,
) -> str:
    """The whole page. Cells are HTML-escaped: names come from inventory.toml and agents."""
    inventory: Inventory = service.inventory
    verdicts = service.agent_verdicts(now_ns)
    zone = inventory.alerting.timezone  # one clock for people, labelled
    n_down = sum(1 for up in verdicts.values() if up is False)
    n_up = sum(1 for up in verdicts.values() if up)
    n_waiting = len(verdicts) - n_down - n_up
    health = health or {}
    problems = health.get("problems") or []
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request, so no 404 in the browser console
        f"<title>nettvakt – {escape(inventory.organisation)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>nettvakt – {escape(inventory.organisation)}</h1>",
        f'<p class="summary" id="summary">{n_up} of {len(verdicts)} agents up, {n_down} down'
        + (f', {n_waiting} waiting for first report' if n_waiting else "")
        + f' · collector {escape(str(health.get("status", "ok")))} · '
        f'storage {escape(inventory.storage.kind)} · {escape(_when(now_ns, now_ns, zone).split(" (")[0])}</p>',
    ]
    if problems:
        parts.append('<ul class="problems">' + "".join(f"<li>{escape(p)}</li>" for p in problems) + "</ul>")
    parts.append("<h2>Active alerts</h2>")
    parts.append(
        _table(
            ["severity", "site", "subject", "summary", "since"],
            [
                [escape(a.get("severity", "")), escape(a.get("site") or ""), escape(str(a.get("subject", ""))),
                 escape(str(a.get("summary", ""))) + (f' <span class="muted">({escape(a["muted"])})</span>' if a.get("muted") else "")
                 + (f' <span class="muted">(acknowledged by {escape(str(a["acked_by"]))}, {escape(_when(int(a["acked_at"] * 1e9), now_ns, zone))})</span>'
                    if a.get("acked_by") else ""),
                 escape(_when(int(a["since"] * 1e9), now_ns, zone)) if a.get("since") else ""]
                for a in alerts or []
            ],
            "No active alerts." if alerts is not None else "Alerting is not running.",
        )
    )
    for site in inventory.site:
        parts.append(f'<h2 id="site-{escape(site.id)}">{escape(site.name)} <span class="muted">({escape(site.id)})</span></h2>')
        agents = [a for a in inventory.agent if a.site == site.id]
        parts.append(
            _table(
                ["agent", "name", "state", "last seen", "backlog"],
                [
                    [f'<span id="agent-{escape(a.id)}">{escape(a.id)}</span>', escape(a.name), _state(verdicts.get(a.id), WAITING),
                     escape(_when(max(service.agents[a.id].last_seen_ns, service.agents[a.id].last_heartbeat_ns), now_ns, zone)),
                     escape(_backlog(service.agents[a.id].pending_points))]
                    for a in agents
                ],
                "No agents at this site.",
            )
        )
        devices = [d for d in inventory.device if d.site == site.id]
        if devices:
            rows = []
            for d in devices:
                state = service.devices.get(d.id)
                shown = _state(state.up if state else None, "waiting for first poll")
                if state is not None and state.up and state.partial:
                    shown += f' <span class="muted">(partial: {escape(state.partial)} timed out)</span>'
                rows.append([f'<span id="device-{escape(d.id)}">{escape(d.id)}</span>', escape(d.name), shown,
                             escape(_when(state.time_ns if state else None, now_ns, zone))])
            parts.append(_table(["device", "name", "state", "last polled"], rows, ""))
        target_rows = []
        for a in agents:
            for probe in inventory.probes_for(a):
                target = service.targets.get((a.id, probe.name))
                latency = f"{target.latency_ms:.1f} ms" if target and target.latency_ms is not None else "–"
                if target and not target.up and target.reason:
                    latency += f' <span class="muted">({escape(target.reason)})</span>'
                target_rows.append([
                    escape(probe.name), escape(probe.kind), escape(a.id), _state(target.up if target else None, "not measured yet"), latency,
                    escape(_when(target.time_ns if target else None, now_ns, zone)),
                ])
        if target_rows:
            parts.append(_table(["target", "kind", "from agent", "state", "latency", "measured"], target_rows, ""))
    parts.append("</body></html>")
    return "\n".join(parts)
