"""A page for one site (`/site/{id}`): its section of the overview alone, with links back and to its devices."""

from __future__ import annotations

from html import escape

from collector.config import Site
from collector.service import CollectorService
from collector.status.layout import page, words
from collector.status.sections import PageHistory, history_error, site_section


def render_site_main(site: Site, service: CollectorService, now_ns: int, history: PageHistory, view: str) -> str:
    lang = service.inventory.alerting.language
    return history_error(history, lang) + site_section(site, service, history, view, now_ns, linked=False)


def render_site(site: Site, service: CollectorService, now_ns: int, history: PageHistory, view: str) -> str:
    inventory = service.inventory
    lang = inventory.alerting.language
    w = words(lang)
    title = w["site_title"].format(site=site.name, org=inventory.organisation)
    header = f'<p><a href="/">{escape(w["back"])}</a></p><h1>{escape(site.name)}</h1>'
    if site.description:
        header += f'<p class="muted">{escape(site.description)}</p>'
    return page(lang, title, header, render_site_main(site, service, now_ns, history, view), inventory.collector.status_refresh_s)
