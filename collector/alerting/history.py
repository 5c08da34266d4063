"""Alert history in the collector's data folder, for `nettvakt alerts` and /api/v1/alerts.

Every state change (the same facts as the `alert` points sent to InfluxDB) is appended as one
JSON line, so the history is there when InfluxDB is down or not configured. The file is
bounded: past `max_bytes` the oldest half is dropped (a month of a busy site's changes fits
many times over).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agent.points import Point

log = logging.getLogger("nettvakt.alerting")

HISTORY_FILE = "alert-history.jsonl"
STATE_FILE = "alerts.json"
DEFAULT_MAX_BYTES = 4 * 1024 * 1024


def entry_from_point(point: Point) -> dict[str, Any]:
    """One history line from one `alert` point (docs/metrics.md)."""
    return {
        "time": point.time_ns / 1e9,
        "rule": point.tags.get("rule", ""),
        "severity": point.tags.get("severity", ""),
        "state": point.tags.get("state", ""),
        "site": point.tags.get("site", ""),
        "subject": point.tags.get("subject", ""),
        "summary": point.fields.get("summary", ""),
        "affected": int(point.fields.get("affected", 0.0) or 0),  # type: ignore[arg-type]
    }


class AlertHistory:
    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries)
        if not lines:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as f:
                f.write(lines)
            if self.path.stat().st_size > self.max_bytes:
                self._trim()

    def _trim(self) -> None:
        kept = self.path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = kept[len(kept) // 2:]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.replace(tmp, self.path)

    def read(self, since: float = 0.0) -> list[dict[str, Any]]:
        """Entries at or after `since`, oldest first; a damaged line is skipped and logged."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if float(entry["time"]) >= since:
                    out.append(entry)
            except (ValueError, KeyError, TypeError):
                log.warning("alert history %s:%d: not a history line; skipped", self.path, number)
        return out


def firing_from_state(path: Path) -> list[dict[str, Any]]:
    """Alerts firing (or flapping) per the engine's saved state file (written on every change)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    alerts = data.get("alerts", []) if isinstance(data, dict) else None
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        raise ValueError(f"{path}: not the alert state the collector writes")
    return [
        {k: a.get(k) for k in ("rule", "kind", "severity", "site", "subject", "since", "summary", "flapping", "affected")}
        for a in alerts
        if a.get("state") == "firing" or a.get("flapping")
    ]
