"""Who logs in on this machine -> a `login` point when a session starts and one when it ends.

psutil.users() lists the sessions open now; the agent looks every `[logins] interval_s` and
compares with what it saw the time before. A session is (user, terminal, from where, start
time, process), as psutil gives it:

- Linux: the USER_PROCESS entries of utmp (/run/utmp): `login` on a text console, the display
  manager, sshd for a session with a terminal. `host` is where a remote session came from
  (empty on a console, `:0` for a local graphical display).
- Windows (psutil/arch/windows/sys.c, psutil_users): every Remote Desktop Services session
  with a user name, console included, with no terminal and no process; `host` is the
  client's IPv4 address (WTSClientAddress, AF_INET only: an IPv6 client shows None, like the
  console) and `started` the session's last connect time (WTSSessionInfo.ConnectTime), so a
  reconnect to a disconnected remote-desktop session is a new session.

A session the OS gives no start time for (none, or 0) starts when the agent first saw it.
Sessions are kept in a small state file beside the spool, so an agent
that restarts does not report the sessions it already reported as new logins; sessions gone
while it was stopped (a reboot empties utmp) end with `end_unseen = 1` at the last time it
saw them. Without the file (a new install, a lost disk) every open session is reported as a
start, with its real start time.

Blocking (reads utmp, writes the state file): the caller runs it in a thread.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import psutil

from agent.hostmetrics import tag_value
from agent.points import Point

log = logging.getLogger("nettvakt.agent.logins")

Kind = Literal["console", "remote"]
Users = Callable[[], Iterable[Any]]  # psutil.users(): suser(name, terminal, host, started, pid)

# A start point is stored at the session's start time, so a start reported twice (the state
# file lost between spooling and saving) lands on the same point. A session older than this
# when first seen is stored at the time it was seen instead: the collector stores no point older
# than InfluxDB's raw retention (30 days by default, less an hour: docs/api.md) and refuses those
# older than its max_point_age_days (90), where one refused point costs the batch.
START_POINT_MAX_AGE_S = 29 * 86400.0
# The state file is written when the sessions change, and at least this often while they do
# not, so an end after a crash (`end_unseen`) is at most this much before the truth.
STATE_REFRESH_S = 600.0
STATE_VERSION = 1

# A remote session's origin: an address or host name, with `:display` for remote X
# (`10.0.0.5:0`); mosh writes `10.0.0.5 via mosh [1234]`, so the first word counts.
# A local display (`:0`) or a terminal multiplexer's note (`tmux(1234).%0`) is no origin.
_ORIGIN = re.compile(r"[A-Za-z0-9\[][A-Za-z0-9.:%\[\]_-]*")


def session_kind(from_host: str | None) -> Kind:
    """`remote` when the OS names where the session came from, else `console`."""
    first = (from_host or "").split(" ", 1)[0]
    return "remote" if first and _ORIGIN.fullmatch(first) else "console"


@dataclass(frozen=True, slots=True)
class Session:
    user: str
    terminal: str | None  # None on Windows
    from_host: str | None  # None on a console
    started_s: float | None  # None when the OS gives no usable start time (until the tracker fills it in)
    pid: int | None  # None on Windows
    start_guessed: bool = False  # started_s is when the agent first saw it: the OS gave none

    @property
    def kind(self) -> Kind:
        return session_kind(self.from_host)

    @property
    def key(self) -> tuple[str, str, str, float, int]:
        """What the OS says about it: the same session at every look (a guessed start is not the OS's)."""
        started = 0.0 if self.start_guessed or self.started_s is None else self.started_s
        return (self.user, self.terminal or "", self.from_host or "", started, self.pid or 0)

    def to_json(self) -> dict[str, Any]:
        return {"user": self.user, "terminal": self.terminal, "from_host": self.from_host, "started_s": self.started_s,
                "pid": self.pid, "start_guessed": self.start_guessed}

    @classmethod
    def from_json(cls, data: Any) -> "Session":
        if not isinstance(data, dict) or not isinstance(data.get("user"), str) or not data["user"]:
            raise ValueError(f"not a session: {data!r:.80}")
        started, pid = data.get("started_s"), data.get("pid")
        return cls(
            data["user"],
            data.get("terminal") if isinstance(data.get("terminal"), str) else None,
            data.get("from_host") if isinstance(data.get("from_host"), str) else None,
            float(started) if isinstance(started, (int, float)) and not isinstance(started, bool) else None,
            pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
            data.get("start_guessed") is True,
        )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def sessions_of(users: Iterable[Any]) -> list[Session]:
    """The sessions in psutil.users()' answer, in either platform's shape; entries without a user are skipped."""
    sessions = []
    for entry in users:
        user = _text(getattr(entry, "name", None))
        if user is None:
            continue
        started = getattr(entry, "started", None)
        usable = isinstance(started, (int, float)) and math.isfinite(started) and started > 0
        pid = getattr(entry, "pid", None)
        sessions.append(Session(
            user=user,
            terminal=_text(getattr(entry, "terminal", None)),
            from_host=_text(getattr(entry, "host", None)),
            started_s=float(started) if usable else None,
            pid=pid if isinstance(pid, int) and pid > 0 else None,
        ))
    return sessions


def _tags(session: Session, base: Mapping[str, str], event: str) -> dict[str, str]:
    tags = {**base, "user": tag_value(session.user), "kind": session.kind, "event": event}
    if session.terminal:
        tags["terminal"] = tag_value(session.terminal)
    return tags


def _common_fields(session: Session) -> dict[str, float | str]:
    assert session.started_s is not None, "the tracker gives every session it reports a start"
    fields: dict[str, float | str] = {"start_time_s": session.started_s}
    if session.from_host:
        fields["from_host"] = session.from_host[:4096]
    return fields


def start_point(session: Session, tags: Mapping[str, str], seen_ns: int) -> Point:
    fields = _common_fields(session)
    started_ns = int(float(fields["start_time_s"]) * 1e9)
    recent = seen_ns - START_POINT_MAX_AGE_S * 1e9 <= started_ns <= seen_ns
    return Point("login", _tags(session, tags, "start"), fields, started_ns if recent else seen_ns)


def end_point(session: Session, tags: Mapping[str, str], end_ns: int, unseen: bool) -> Point:
    fields = _common_fields(session)
    duration_s = max(0.0, end_ns / 1e9 - float(fields["start_time_s"]))
    return Point("login", _tags(session, tags, "end"), {**fields, "end_time_s": end_ns / 1e9, "duration_s": duration_s,
                                                        "end_unseen": 1.0 if unseen else 0.0}, end_ns)


@dataclass(frozen=True, slots=True)
class SavedSessions:
    sessions: dict[tuple[str, str, str, float, int], Session]
    seen_ns: int  # the last time the agent looked and saw exactly these


class LoginTracker:
    """Sessions seen at the previous look, and the points for what changed since."""

    def __init__(self, state_path: Path, users: Users = psutil.users):
        self.state_path = state_path
        self._users = users
        self.open: dict[tuple[str, str, str, float, int], Session] | None = None  # None before the first look
        self._looked_ns = 0  # when the sessions in `open` were seen
        self._saved_ns = 0
        self._dirty = False

    def load(self) -> SavedSessions | None:
        """What the previous run of the agent saw last; None without a readable state file."""
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {STATE_VERSION}")
            sessions = [Session.from_json(s) for s in data["sessions"]]
            seen_ns = int(data["seen_ns"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("login sessions: ignoring unreadable state %s (%s); the open sessions are reported as new", self.state_path, exc)
            return None
        return SavedSessions({s.key: s for s in sessions}, seen_ns)

    def look(self, tags: Mapping[str, str], now_ns: int) -> list[Point]:
        """The points for sessions begun and ended since the last look (at the first: since the saved state)."""
        previous, end_ns, unseen = self.open, now_ns, False
        if previous is None:
            saved = self.load()
            previous = saved.sessions if saved is not None else {}
            end_ns, unseen = (saved.seen_ns, True) if saved is not None else (now_ns, False)
        current = {}
        for session in sessions_of(self._users()):
            known = previous.get(session.key)
            if known is None and session.started_s is None:
                known = replace(session, started_s=now_ns / 1e9, start_guessed=True)
            current[session.key] = known or session
        points: list[Point] = []
        points += [start_point(s, tags, now_ns) for key, s in current.items() if key not in previous]
        points += [end_point(s, tags, end_ns, unseen) for key, s in previous.items() if key not in current]
        self._dirty = self._dirty or self.open is None or current.keys() != previous.keys()
        self.open, self._looked_ns = current, now_ns
        return points

    def save(self, *, force: bool = False) -> None:
        """Write what the last look saw, when it changed, every STATE_REFRESH_S, or when forced (at stop).

        Called after the look's points are spooled: a crash in between reports its starts again
        (onto the same points) rather than never."""
        if self.open is None or not (force or self._dirty or self._looked_ns - self._saved_ns >= STATE_REFRESH_S * 1e9):
            return
        data = {"version": STATE_VERSION, "seen_ns": self._looked_ns, "sessions": [s.to_json() for s in self.open.values()]}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.state_path)
        self._saved_ns, self._dirty = self._looked_ns, False
