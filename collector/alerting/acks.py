"""Acknowledgements: "I am on it" for one firing alert (`nettvakt ack`, POST /api/v1/alerts/ack).

An acknowledged alert is not repeated; it still resolves, and its "resolved" still goes out.
An ack belongs to one firing episode (the alert's `since`): when the alert fires again later,
nobody is on it until someone says so again. Kept in a small JSON file in the collector's data
folder, written by the CLI and the API and re-read by the engine when it changes, like silences.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from collector.alerting.silences import file_stamp

log = logging.getLogger("nettvakt.alerting")

ACKS_FILE = "acks.json"
MAX_COMMENT_LEN = 1000
MAX_AUTHOR_LEN = 100


@dataclass(frozen=True, slots=True)
class Ack:
    rule: str
    subject: str
    since: float  # the firing episode it is about
    by: str
    at: float
    comment: str = ""


def ack_json(ack: Ack | None) -> dict[str, object]:
    """The fields a firing alert carries in listings when someone is on it (none when nobody is)."""
    return {} if ack is None else {"acked_by": ack.by, "acked_at": ack.at, "ack_comment": ack.comment}


class AckStore:
    def __init__(self, path: Path | None = None):
        self.path = path
        self._acks: dict[tuple[str, str], Ack] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()
        self._reload()

    def _reload(self) -> None:
        if self.path is None:
            return
        try:
            stamp = file_stamp(self.path)
        except FileNotFoundError:
            self._acks, self._stamp = {}, None
            return
        except OSError as exc:
            log.error("acks: cannot read %s: %s", self.path, exc)
            return
        if stamp == self._stamp:
            return
        try:
            items = json.loads(self.path.read_text(encoding="utf-8"))
            self._acks = {(a["rule"], a["subject"]): Ack(**a) for a in items}
        except (OSError, ValueError, TypeError, KeyError) as exc:
            log.error("acks: cannot read %s (%s); keeping the %d known", self.path, exc, len(self._acks))
        self._stamp = stamp

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([asdict(a) for a in self._acks.values()], ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)
        self._stamp = file_stamp(self.path)

    def add(self, ack: Ack) -> Ack:
        if len(ack.comment) > MAX_COMMENT_LEN or len(ack.by) > MAX_AUTHOR_LEN:
            raise ValueError(f"comment at most {MAX_COMMENT_LEN} characters, author at most {MAX_AUTHOR_LEN}")
        with self._lock:
            self._reload()
            self._acks[(ack.rule, ack.subject)] = ack
            self._save()
        return ack

    def get(self, rule: str, subject: str, since: float) -> Ack | None:
        """The ack of this firing episode, if someone is on it."""
        with self._lock:
            self._reload()
            ack = self._acks.get((rule, subject))
        return ack if ack is not None and ack.since == since else None

    def remove(self, rule: str, subject: str) -> None:
        with self._lock:
            self._reload()
            if self._acks.pop((rule, subject), None) is not None:
                self._save()
