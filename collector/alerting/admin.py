"""What `nettvakt alerts`/`silence` and the HTTP API share: the alert listing and name checks.

Both read the collector's data folder (alert state, history and silences files), so the
listing works whether or not the collector runs, and agrees with what the collector does.
"""

from __future__ import annotations

import time
from typing import Any

from collector.alerting.config import rule_names, subject_id
from collector import clock
from collector.alerting.acks import ACKS_FILE, Ack, AckStore, ack_json
from collector.alerting.history import HISTORY_FILE, STATE_FILE, AlertHistory, firing_from_state
from collector.alerting.silences import SILENCES_FILE, SilenceStore
from collector.config import Inventory


def alert_listing(inventory: Inventory, recent_s: float, now: float | None = None) -> dict[str, Any]:
    """What fires, what changed in the last `recent_s`, and the active silences (CLI and HTTP API)."""
    data = inventory.data_dir()
    now = time.time() if now is None else now
    acks = AckStore(data / ACKS_FILE)
    zone = inventory.alerting.timezone
    # Unix times for programs, and ISO 8601 with the municipality's offset beside them for people.
    return {
        "firing": [
            {**a, "since_iso": clock.iso(float(a["since"] or 0), zone), **ack_json(acks.get(a["rule"], a["subject"], a["since"]))}
            for a in firing_from_state(data / STATE_FILE)
        ],
        "recent": [{**e, "time_iso": clock.iso(float(e["time"]), zone)} for e in AlertHistory(data / HISTORY_FILE).read(since=now - recent_s)],
        "silences": [s.to_json() for s in SilenceStore.load(data / SILENCES_FILE).active(now)],
    }


class AckError(LookupError):
    """No such firing alert to acknowledge (a usage error: the name says nothing that fires)."""


def acknowledge(inventory: Inventory, rule: str, subject: str, by: str, comment: str, now: float | None = None) -> Ack:
    """Mark one firing alert as being worked on: its repeats stop, and the history says who and when.

    Shared by `nettvakt ack` and POST /api/v1/alerts/ack. Raises AckError when it does not fire,
    ValueError for a comment or author too long.
    """
    data = inventory.data_dir()
    now = time.time() if now is None else now
    firing = next((a for a in firing_from_state(data / STATE_FILE) if a["rule"] == rule and a["subject"] == subject), None)
    if firing is None:
        raise AckError(f"no firing alert {rule} for {subject!r} (see: nettvakt alerts)")
    ack = AckStore(data / ACKS_FILE).add(Ack(rule, subject, float(firing["since"]), by or "?", now, comment))
    who = f"{ack.by}: {comment}" if comment else ack.by
    AlertHistory(data / HISTORY_FILE).append([{
        "time": now, "rule": rule, "severity": firing.get("severity"), "state": "acknowledged", "site": firing.get("site") or "",
        "subject": subject, "summary": f"{firing.get('summary') or rule} (acknowledged by {who})", "affected": 0,
        "by": ack.by,  # who, on its own: the status page's alert timeline shows it
    }])
    return ack


def unknown_names(inventory: Inventory, sites: list[str], rules: list[str], subjects: list[str]) -> list[str]:
    """A typo in a silence silences nothing while people think it does: refuse it."""
    site_ids = {s.id for s in inventory.site}
    subject_ids = {a.id for a in inventory.agent} | {d.id for d in inventory.device} | {p.name for p in inventory.probe} | site_ids
    problems = [f"site {s!r}: no such site (known: {', '.join(sorted(site_ids))})" for s in sites if s not in site_ids]
    known_rules = rule_names(list(inventory.alert))
    problems += [f"rule {r!r}: no alert rule or rule kind of that name" for r in rules if r not in known_rules]
    for subject in subjects:
        if subject_id(subject) not in subject_ids:
            problems.append(f"subject {subject!r}: no agent, device, probe or site {subject_id(subject)!r}")
    return problems
