"""`nettvakt report logins`: who was logged in on which machine, when, for how long, from where.

Built from the agents' `login` points (docs/metrics.md): a start point and, once the session is
gone, an end point carrying the same start time, so the two pair exactly on (host, user, kind,
terminal, start time). A session without an end point is still open as far as the agent knows.
Sessions overlapping the period are shown; one begun before it is found through its start
point up to OPEN_LOOKBACK_S back, or through its end point.

User names are as stored (`[logins] user_names`): names, or `h:` hashes; `--user` takes a
name (hashed with the collector's key to find it) or a hash. Accounts in `[logins]
shared_accounts` are marked, by name even when stored hashed.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from collector import texts
from collector.config import Inventory
from collector.logins import UserNames
from collector.reports import i18n
from collector.reports.render import Column, Document, Row, Table
from collector.timeseries import Sample

# How far back a start point is looked for, so a session begun before the period and still
# open is shown (the collector keeps no point older than an agent's spool could hold).
OPEN_LOOKBACK_S = 90 * 86400.0


@dataclass
class LoginSession:
    host: str
    user: str
    kind: str
    terminal: str | None
    from_host: str | None
    start_s: float
    end_s: float | None  # None: still logged in
    end_unseen: bool  # ended while the agent was not running: end_s is when it was last seen
    shared_account: str | None  # the inventory's name of it, when it is a shared account

    @property
    def duration_s(self) -> float | None:
        return None if self.end_s is None else max(0.0, self.end_s - self.start_s)

    def to_json(self, zone: zoneinfo.ZoneInfo) -> dict[str, Any]:
        iso = lambda t: None if t is None else dt.datetime.fromtimestamp(t, zone).isoformat(timespec="seconds")  # noqa: E731
        return {
            "host": self.host, "user": self.user, "kind": self.kind, "terminal": self.terminal, "from": self.from_host,
            "start": iso(self.start_s), "end": iso(self.end_s), "still_logged_in": self.end_s is None,
            "end_unseen": self.end_unseen, "duration_s": self.duration_s, "shared_account": self.shared_account,
        }


@dataclass
class LoginsReport:
    organisation: str
    start: dt.datetime
    end: dt.datetime
    sessions: list[LoginSession]  # newest first
    host_names: dict[str, str]  # agent id -> "name (site name)"
    user_names: str  # "plain" or "hashed"
    interval_s: float | None
    host: str | None = None
    user: str | None = None
    timezone: str = "UTC"

    def to_json(self) -> dict[str, Any]:
        zone = zoneinfo.ZoneInfo(self.timezone)
        return {
            "report": "logins", "organisation": self.organisation,
            "start": self.start.isoformat(), "end": self.end.isoformat(),
            "user_names": self.user_names, "host": self.host, "user": self.user,
            "sessions": [s.to_json(zone) for s in self.sessions],
        }


def _key(sample: Sample) -> tuple[str, str, str, str, float] | None:
    started = sample.fields.get("start_time_s")
    if not isinstance(started, float):
        return None
    t = sample.tags
    return (t.get("host", ""), t.get("user", ""), t.get("kind", ""), t.get("terminal", ""), started)


def paired_sessions(samples: Iterable[Sample], names: UserNames) -> list[LoginSession]:
    """Start and end points paired into sessions (oldest first, as the samples come)."""
    sessions: dict[tuple[str, str, str, str, float], LoginSession] = {}
    for sample in samples:
        key = _key(sample)
        if key is None:
            continue
        host, user, kind, terminal, started = key
        session = sessions.get(key)
        if session is None:
            origin = sample.fields.get("from_host")
            session = sessions[key] = LoginSession(
                host, user, kind, terminal or None, origin if isinstance(origin, str) else None, started,
                None, False, names.shared_account(user),
            )
        if sample.tags.get("event") == "end":
            ended = sample.fields.get("end_time_s")
            session.end_s = ended if isinstance(ended, float) else sample.time_ns / 1e9
            session.end_unseen = sample.fields.get("end_unseen") == 1.0
    return list(sessions.values())


def build_logins_report(
    inventory: Inventory, samples: Iterable[Sample], start_ns: int, end_ns: int, names: UserNames,
    *, host: str | None = None, user: str | None = None,
) -> LoginsReport:
    """`samples`: the `login` points from OPEN_LOOKBACK_S before `start_ns` to `end_ns` (of `host`, when given)."""
    start_s, end_s = start_ns / 1e9, end_ns / 1e9
    sessions = [
        s for s in paired_sessions(samples, names)
        if s.start_s < end_s and (s.end_s is None or s.end_s >= start_s) and (user is None or names.matches(s.user, user))
    ]
    sessions.sort(key=lambda s: (s.host, -s.start_s))
    sites = {s.id: s.name for s in inventory.site}
    settings = inventory.logins
    return LoginsReport(
        organisation=inventory.organisation,
        start=dt.datetime.fromtimestamp(start_s, dt.timezone.utc),
        end=dt.datetime.fromtimestamp(end_s, dt.timezone.utc),
        sessions=sessions,
        host_names={a.id: f"{a.id} \u2013 {a.name} ({sites.get(a.site, a.site)})" for a in inventory.agent},
        user_names=settings.user_names if settings is not None else "plain",
        interval_s=settings.interval_s if settings is not None else None,
        host=host, user=user, timezone=inventory.alerting.timezone,
    )


def logins_document(report: LoginsReport, lang: str) -> Document:
    w = texts.of(lang).logins_report
    zone = zoneinfo.ZoneInfo(report.timezone)
    at = lambda t: i18n.timestamp(dt.datetime.fromtimestamp(t, zone), lang)  # noqa: E731
    sessions = report.sessions
    users = sorted({s.user for s in sessions})
    summary = [w["s_counts"].format(sessions=len(sessions), users=len(users), hosts=len({s.host for s in sessions}))]
    still = [s for s in sessions if s.end_s is None]
    if still:
        summary.append(w["s_open"].format(n=len(still)))
    shared = [s for s in sessions if s.shared_account]
    if shared:
        summary.append(w["s_shared"].format(n=len(shared), names=", ".join(sorted({s.shared_account or "" for s in shared}))))
    else:
        summary.append(w["s_no_shared"])
    if report.host:
        summary.append(w["s_host"].format(host=report.host))
    if report.user:
        summary.append(w["s_user"].format(user=report.user))
    if report.user_names == "hashed":
        summary.append(w["s_hashed"])

    rows = []
    for s in sessions:
        if s.end_s is None:
            ended = w["still"]
        else:
            ended = w["unseen"].format(time=at(s.end_s)) if s.end_unseen else at(s.end_s)
        rows.append(Row(
            [s.user, w[s.kind] if s.kind in ("console", "remote") else s.kind, s.from_host, s.terminal, at(s.start_s), ended,
             i18n.duration(s.duration_s, w), s.shared_account],
            group=s.host, strong=s.shared_account is not None,
        ))
    by_session = Table(
        title=w["sessions"],
        columns=[Column(w["user"]), Column(w["kind"]), Column(w["from"]), Column(w["terminal"]), Column(w["start"]),
                 Column(w["end"]), Column(w["duration"]), Column(w["shared"])],
        rows=rows, group_title=w["host"], group_labels=report.host_names, empty_text=w["none"],
    )
    account_rows = []
    for name in users:
        mine = [s for s in sessions if s.user == name]
        total = sum(s.duration_s or 0.0 for s in mine)
        account_rows.append(Row(
            [name, len(mine), ", ".join(sorted({s.host for s in mine})), i18n.duration(total, w), mine[0].shared_account],
            strong=mine[0].shared_account is not None,
        ))
    by_account = Table(
        title=w["accounts"],
        columns=[Column(w["user"]), Column(w["count"], "int"), Column(w["hosts"]), Column(w["total"]), Column(w["shared"])],
        rows=account_rows, empty_text=w["none"],
    )
    notes = [w["n_pairs"]]
    if report.interval_s is not None:
        notes.append(w["n_interval"].format(interval=i18n.number(report.interval_s, lang)))
    return Document(
        lang=lang,
        title=w["title"],
        subtitle=w["subtitle"].format(org=report.organisation, start=at(report.start.timestamp()), end=at(report.end.timestamp())),
        summary=summary,
        blocks=[by_session, by_account],
        notes=notes,
        generated=report.end.date(),
    )
