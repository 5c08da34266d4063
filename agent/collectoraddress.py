"""Which collector an agent reports to: the one it was installed with, or the one it was sent to.

Where several collectors share a region, each owns some sites (inventory `[collectors]`). A
collector asked by an agent of a site it does not own answers 421 Misdirected Request with
`collector_url`, the owner's address; the agent follows and keeps that address beside its
spool, so a restart goes straight there. The address it was installed with (`--collector`)
is where it starts; a different `--collector` at the next start drops what it followed.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("nettvakt.agent")

# Collectors that keep sending an agent round (while an inventory change reaches them one by one)
# get this many moves at once; after that each move waits longer, up to MOVE_BACKOFF_MAX_S.
MOVES_AT_ONCE = 3
MOVE_BACKOFF_MAX_S = 60.0
_URL = re.compile(r"^https?://[^/\s]+$")


class CollectorAddress:
    def __init__(self, configured: str, state_path: Path):
        self.configured = configured.rstrip("/")
        self.state_path = state_path
        self.url = self.configured
        self.moves = 0  # since start: how often a collector sent this agent on
        self._moves_in_a_row = 0
        self._load()

    def _load(self) -> None:
        try:
            saved = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s (%s); reporting to %s", self.state_path, exc, self.configured)
            return
        if not isinstance(saved, dict) or saved.get("configured") != self.configured or not _URL.match(str(saved.get("url"))):
            return  # installed with another --collector since: that one is asked first again
        self.url = str(saved["url"])
        if self.url != self.configured:
            log.info("reporting to %s, where collector %s sent this agent", self.url, self.configured)

    def endpoint(self, path: str) -> str:
        return self.url + path

    def answered(self) -> None:
        """The collector took a request: the moves in a row end."""
        self._moves_in_a_row = 0

    def follow(self, body: str) -> float:
        """A 421 answer: go where it says. Returns the seconds to wait before asking there.

        An answer without a usable `collector_url`, or one from https to plain http (the token
        would travel in the clear), is not followed: the agent waits and asks again where it is.
        """
        try:
            url = json.loads(body).get("collector_url")
        except (ValueError, AttributeError):
            url = None
        if not isinstance(url, str) or not _URL.match(url.rstrip("/")):
            log.error("collector %s sent this agent elsewhere without a usable collector_url: %s", self.url, body[:300])
            return MOVE_BACKOFF_MAX_S
        url = url.rstrip("/")
        if self.url.startswith("https://") and url.startswith("http://"):
            log.error("collector %s sent this agent to %s: not followed, the token would leave TLS", self.url, url)
            return MOVE_BACKOFF_MAX_S
        if url != self.url:
            log.warning("collector %s says this agent's site is served at %s; reporting there from now on", self.url, url)
            self.url = url
            self.moves += 1
            self._save()
        self._moves_in_a_row += 1
        extra = self._moves_in_a_row - MOVES_AT_ONCE
        return 0.0 if extra <= 0 else min(2.0 ** extra, MOVE_BACKOFF_MAX_S)

    def _save(self) -> None:
        tmp = self.state_path.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps({"configured": self.configured, "url": self.url}), encoding="utf-8")
            os.replace(tmp, self.state_path)
        except OSError as exc:  # followed all the same; a restart asks the configured collector first
            log.warning("cannot keep the collector address in %s: %s", self.state_path, exc)
