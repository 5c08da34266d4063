"""Silences: "be quiet about this until then", set at run time (`nettvakt silence add ...`).

Kept in a small JSON file in the collector's data dir so they survive a restart; expired
silences are dropped when listed. The engine only asks `muting(...)`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("nettvakt.alerting")

SILENCES_FILE = "silences.json"  # in the collector's data folder
# A silence is for a planned job or an outage being worked on, not a way to switch alerting off.
MAX_SILENCE_S = 366 * 86400.0
MAX_COMMENT_LEN = 1000
MAX_AUTHOR_LEN = 100
MAX_MATCHERS = 200  # sites + rules + subjects


class SilenceError(ValueError):
    """A silence that cannot be set (no expiry in the future, no matcher)."""


class SilenceStoreError(OSError):
    """The silences file cannot be read; it is not written over (the silences in it would be lost)."""


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(inode, mtime, size): what changes on every write, since writers replace the file. OSError if unreadable."""
    st = path.stat()
    return (st.st_ino, st.st_mtime_ns, st.st_size)


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    until: float  # Unix time the silence expires
    created: float
    sites: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()
    subjects: tuple[str, ...] = ()
    comment: str = ""
    author: str = ""

    def matches(self, site: str, rule: str, kind: str, subject: str) -> bool:
        return (
            (not self.sites or site in self.sites)
            and (not self.rules or rule in self.rules or kind in self.rules)
            and (not self.subjects or subject in self.subjects)
        )

    @classmethod
    def from_json(cls, item: dict[str, Any]) -> "Silence":
        return cls(**{**item, **{k: tuple(item.get(k, ())) for k in ("sites", "rules", "subjects")}})

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("sites", "rules", "subjects"):
            data[key] = list(data[key])
        return data


@dataclass
class SilenceStore:
    """Silences in memory, mirrored to `path`; a change to the file (the CLI) is picked up."""

    path: Path | None = None
    _silences: dict[str, Silence] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # (inode, mtime, size): the CLI replaces the file, so a new inode marks every write.
    _stamp: tuple[int, int, int] | None = None
    read_error: str | None = None  # why the file could not be read, while it cannot

    @classmethod
    def load(cls, path: Path) -> "SilenceStore":
        store = cls(path)
        with store._lock:
            store._reload_if_changed()
        return store

    def _reload_if_changed(self) -> None:
        if self.path is None:
            return
        try:
            stamp = file_stamp(self.path)
        except FileNotFoundError:
            self.read_error = None
            return
        except OSError as exc:
            self.read_error = f"cannot read {self.path}: {exc.strerror or exc}"
            return
        if stamp == self._stamp:
            return
        try:
            items = json.loads(self.path.read_text(encoding="utf-8"))
            loaded = {}
            for item in items:
                silence = Silence.from_json(item)
                loaded[silence.id] = silence
        except (OSError, ValueError, TypeError) as exc:
            # A half-edited file must not end alerting: keep the silences we had, say why.
            log.error("silences: cannot read %s (%s); keeping the %d known", self.path, exc, len(self._silences))
            self._stamp = stamp
            self.read_error = f"cannot read {self.path}: {exc}"
            return
        self._silences = loaded
        self.read_error = None
        self._stamp = stamp

    def _writable(self) -> None:
        if self.read_error is not None:
            raise SilenceStoreError(f"{self.read_error}; not written over: fix or remove the file first")

    def add(
        self,
        now: float,
        until: float,
        *,
        sites: list[str] | None = None,
        rules: list[str] | None = None,
        subjects: list[str] | None = None,
        comment: str = "",
        author: str = "",
    ) -> Silence:
        if not math.isfinite(until) or until <= now:
            raise SilenceError("a silence needs an expiry in the future (a finite time)")
        if until - now > MAX_SILENCE_S:
            raise SilenceError(f"a silence lasts at most {MAX_SILENCE_S / 86400:.0f} days")
        if len(comment) > MAX_COMMENT_LEN or len(author) > MAX_AUTHOR_LEN:
            raise SilenceError(f"comment at most {MAX_COMMENT_LEN} characters, author at most {MAX_AUTHOR_LEN}")
        if len(sites or ()) + len(rules or ()) + len(subjects or ()) > MAX_MATCHERS:
            raise SilenceError(f"at most {MAX_MATCHERS} sites, rules and subjects in one silence")
        if not (sites or rules or subjects):
            # Silencing everything by accident is how real outages go unseen.
            raise SilenceError("a silence needs at least one of sites, rules or subjects")
        silence = Silence(
            id=secrets.token_hex(4),
            until=until,
            created=now,
            sites=tuple(sites or ()),
            rules=tuple(rules or ()),
            subjects=tuple(subjects or ()),
            comment=comment,
            author=author,
        )
        with self._lock:
            self._reload_if_changed()
            self._writable()
            self._silences[silence.id] = silence
            self._save()
        return silence

    def remove(self, silence_id: str) -> bool:
        with self._lock:
            self._reload_if_changed()
            self._writable()
            found = self._silences.pop(silence_id, None) is not None
            if found:
                self._save()
        return found

    def active(self, now: float) -> list[Silence]:
        with self._lock:
            self._reload_if_changed()
            # A non-finite expiry (a hand-edited file) is no expiry at all: dropped, never "forever".
            expired = [s.id for s in self._silences.values() if not s.until > now or not math.isfinite(s.until)]
            for sid in expired:
                del self._silences[sid]
            if expired and self.read_error is None:
                self._save()
            return sorted(self._silences.values(), key=lambda s: s.until)

    def muting(self, now: float, site: str, rule: str, kind: str, subject: str) -> Silence | None:
        return next((s for s in self.active(now) if s.matches(site, rule, kind, subject)), None)

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([s.to_json() for s in self._silences.values()], ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8")
        os.replace(tmp, self.path)
        self._stamp = file_stamp(self.path)
