"""Times for people: in the municipality's time zone (`[alerting] timezone`), always labelled.

One clock for everything a person reads (status page, CLI, mail, SMS, chat, reports), so a
"since 01:41" and a "2026-12-06 01:41:14" never disagree by an unsaid hour. JSON carries ISO
8601 with its offset.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

Zone = str | zoneinfo.ZoneInfo


def _zone(zone: Zone) -> zoneinfo.ZoneInfo:
    return zone if isinstance(zone, zoneinfo.ZoneInfo) else zoneinfo.ZoneInfo(zone)


def local(t: float, zone: Zone, fmt: str = "%Y-%m-%d %H:%M", label: bool = True) -> str:
    """Unix time `t` as local time with the zone's label: '2026-12-06 01:41 CET' (without it where
    a sentence has said the zone once already)."""
    moment = dt.datetime.fromtimestamp(t, _zone(zone))
    return f"{moment.strftime(fmt)} {moment.strftime('%Z')}" if label else moment.strftime(fmt)


def iso(t: float, zone: Zone) -> str:
    """Unix time `t` as ISO 8601 with the offset: '2026-12-06T01:41:14+01:00'."""
    return dt.datetime.fromtimestamp(t, _zone(zone)).isoformat(timespec="seconds")
