"""`nettvakt alerts --all`: every collector's alerts, read over each one's HTTP API.

Where the inventory names several collectors ([collectors], docs/scaling.md) each keeps the
alert state of its own sites in its own data folder; the overview asks each at the url the
inventory gives it (GET /api/v1/alerts, no token needed) and changes nothing anywhere.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.config import Inventory

ALERTS_PATH = "/api/v1/alerts"
READ_TIMEOUT_S = 10.0
# Collectors are on the municipality's network: never through a proxy from the environment.
_NO_PROXY = urllib.request.ProxyHandler({})


@dataclass(frozen=True)
class CollectorAlerts:
    """One collector's answer: its listing (firing, recent, silences), or why there is none."""

    name: str
    url: str
    listing: dict[str, Any] | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "error": self.error, **(self.listing or {"firing": [], "recent": [], "silences": []})}


def read_all(inventory: Inventory, recent_s: float, ca_file: Path | None = None) -> list[CollectorAlerts]:
    """Every collector's alerts, in the inventory's order, asked at once; one that does not answer is named with why."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    opener = urllib.request.build_opener(_NO_PROXY, urllib.request.HTTPSHandler(context=context))
    nodes = list(inventory.collectors.items())
    with ThreadPoolExecutor(max_workers=max(1, min(len(nodes), 8))) as pool:
        return list(pool.map(lambda item: _read_one(opener, item[0], item[1].url, recent_s), nodes))


def _read_one(opener: urllib.request.OpenerDirector, name: str, url: str, recent_s: float) -> CollectorAlerts:
    try:
        with opener.open(f"{url}{ALERTS_PATH}?recent_s={recent_s:g}", timeout=READ_TIMEOUT_S) as resp:
            listing = json.load(resp)
    except urllib.error.HTTPError as exc:
        return CollectorAlerts(name, url, None, f"HTTP {exc.code}: {exc.read()[:300].decode('utf-8', 'replace')}")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return CollectorAlerts(name, url, None, f"no answer: {reason}")
    except ValueError as exc:
        return CollectorAlerts(name, url, None, f"not a JSON answer: {exc}")
    if not isinstance(listing, dict) or not all(isinstance(listing.get(key), list) for key in ("firing", "recent", "silences")):
        return CollectorAlerts(name, url, None, "not an alert listing (firing, recent, silences)")
    return CollectorAlerts(name, url, listing)
