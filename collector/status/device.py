"""A page for one device (`/device/{id}`): its state now, its CPU and memory and its interfaces'
traffic, errors and discards over the last day."""

from __future__ import annotations

from html import escape

from collector import svg
from collector.config import Device
from collector.history import DeviceHistory
from collector.service import CollectorService
from collector.status.layout import legend, number, page, state, table, ticks, when, words
from collector.status.sections import site_url, traffic_chart


def render_device_main(device: Device, service: CollectorService, now_ns: int, history: DeviceHistory | None, error: str | None) -> str:
    inventory = service.inventory
    lang, zone = inventory.alerting.language, inventory.alerting.timezone
    w = words(lang)
    current = service.devices.get(device.id)
    shown = state(current.up if current else None, lang, "waiting_poll")
    if current is not None and current.up and current.partial:
        shown += f' <span class="muted">({escape(w["partial"].format(tables=current.partial))})</span>'
    parts = [table([w["device"], w["name"], w["state"], w["last_polled"]],
                   [[escape(device.id), escape(device.name), shown, escape(when(current.time_ns if current else None, now_ns, zone, lang))]], "")]
    if error is not None:
        parts.append(f'<p class="problems">{escape(w["history_error"].format(error=error))}</p>')
    if history is None:
        return "".join(parts)
    t0, t1 = history.start_s, history.end_s
    marks = ticks(t0, t1, zone, lang)
    if any(v is not None for _, v in history.cpu_pct + history.mem_used_pct):
        parts.append(f"<h3>{escape(w['cpu_mem'])}</h3>")
        parts.append(svg.line_chart([svg.Line("cpu", history.cpu_pct), svg.Line("mem", history.mem_used_pct)], t0, t1, marks,
                                    w["cpu_mem"], top_label=lambda v: f"{number(v, lang, 0)}\u00a0%", vmax=100.0))
        parts.append(legend([("cpu", w["cpu"]), ("mem", w["mem"])]))
    parts.append(f"<h2>{escape(w['interfaces'])}</h2>")
    if not history.interfaces:
        parts.append(f'<p class="muted">{escape(w["no_interfaces"])}</p>')
    for traffic in history.interfaces:
        parts.append(traffic_chart(traffic, t0, t1, zone, lang, w["interface_traffic"].format(ifname=traffic.ifname)))
        if any(v for _, v in traffic.errors_ps + traffic.discards_ps):
            title = w["interface_errors"].format(ifname=traffic.ifname)
            parts.append(svg.line_chart([svg.Line("errors", traffic.errors_ps), svg.Line("discards", traffic.discards_ps)], t0, t1, marks,
                                        title, top_label=lambda v: w["per_s"].format(value=number(v, lang, 1))))
            parts.append(legend([("l3", w["errors"]), ("l1", w["discards"])]))
        else:
            parts.append(f'<p class="muted">{escape(w["no_errors"].format(ifname=traffic.ifname))}</p>')
    return "".join(parts)


def render_device(device: Device, service: CollectorService, now_ns: int, history: DeviceHistory | None, error: str | None) -> str:
    inventory = service.inventory
    lang = inventory.alerting.language
    w = words(lang)
    site = next((s for s in inventory.site if s.id == device.site), None)
    title = w["device_title"].format(device=device.name, org=inventory.organisation)
    header = (f'<p><a href="/">{escape(w["back"])}</a>'
              + (f' · <a href="{site_url(site.id)}">{escape(site.name)}</a>' if site else "") + f"</p><h1>{escape(device.name)}</h1>")
    return page(lang, title, header, render_device_main(device, service, now_ns, history, error), inventory.collector.status_refresh_s)
