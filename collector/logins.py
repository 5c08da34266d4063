"""Logins at the collector: user names kept as given or as a keyed hash, and shared accounts told about.

Agents report user names as the OS gives them. With `[logins] user_names = "hashed"` the
collector's ingest replaces each `login` point's `user` tag by `h:` and the first 16 hex digits
of HMAC-SHA256(key, name casefolded) before the batch is queued, so no plain name is stored at
the collector, in InfluxDB or in the local store. The key stays at the collector: agents run
on PCs anyone may sit at, and an agent holding the key could turn the (few, guessable) account
names of the municipality into their hashes and back. The same key gives the same hash, so
patterns and shared accounts still show; whoever holds the key can link a hash to a name
(`nettvakt report logins --user NAME` does). Neither Linux nor Windows allows `:` in an account
name, so an `h:` tag is always a hash.

Names are compared casefolded (Windows account names are case-insensitive); plain names are
stored as given.

`[logins] shared_accounts` lists accounts several people use; a `login` start point of one of
them is announced as the one-off event `shared_account_login` (an `alert` point with
`state=event`, and a message to the channels its routes choose).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from agent.points import Point, now_ns
from collector import clock, texts
from collector.config import Inventory

log = logging.getLogger("nettvakt.logins")

HASH_PREFIX = "h:"
HASH_HEX_DIGITS = 16  # 64 bits: no two of a municipality's accounts collide
SHARED_ACCOUNT_RULE = "shared_account_login"

_WORDS = texts.in_each_language(lambda catalog: catalog.login_events)


def hashed_user(name: str, key: bytes) -> str:
    """`h:` and HMAC-SHA256(key, name casefolded), truncated: stable per key, one per account."""
    digest = hmac.new(key, name.casefold().encode("utf-8"), hashlib.sha256).hexdigest()
    return HASH_PREFIX + digest[:HASH_HEX_DIGITS]


@dataclass(frozen=True)
class UserNames:
    """How the inventory wants user names kept, and the shared accounts in that form."""

    key: bytes | None = None  # None: plain names
    # The stored form of each shared account (casefolded when plain) -> the name the inventory gives it.
    shared: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_inventory(cls, inventory: Inventory) -> "UserNames":
        """Raises SecretError when the key does not resolve (the startup checks find that first)."""
        settings = inventory.logins
        if settings is None:
            return cls()
        key = inventory.secret(settings.key).encode("utf-8") if settings.key is not None else None
        names = cls(key)
        return cls(key, {names._matchable(names.stored(name)): name for name in settings.shared_accounts})

    def stored(self, name: str) -> str:
        """The user tag as it is stored: the name as given, or its keyed hash."""
        return name if self.key is None else hashed_user(name, self.key)

    def _matchable(self, stored: str) -> str:
        return stored.casefold() if self.key is None else stored

    def matches(self, stored: str, asked: str) -> bool:
        """Whether a stored user tag is the account `asked` (a name, or a hash as the reports show it)."""
        return self._matchable(stored) == self._matchable(self.stored(asked)) or stored == asked

    def shared_account(self, stored: str) -> str | None:
        """The inventory's name of the shared account this stored user tag is, or None."""
        return self.shared.get(self._matchable(stored))

    def stored_points(self, points: list[Point]) -> list[Point]:
        """The points with every `login` user tag in its stored form (unchanged for plain names)."""
        if self.key is None:
            return points
        return [
            Point(p.measurement, {**p.tags, "user": self.stored(p.tags["user"])}, p.fields, p.time_ns)
            if p.measurement == "login" and "user" in p.tags else p
            for p in points
        ]

    def shared_logins(self, points: Iterable[Point]) -> list[tuple[str, Point]]:
        """(account name, point) for each login start of a shared account."""
        found = []
        for point in points:
            if point.measurement == "login" and point.tags.get("event") == "start":
                account = self.shared_account(point.tags.get("user", ""))
                if account is not None:
                    found.append((account, point))
        return found


Announce = Callable[..., Awaitable[int]]  # AlertService.announce
Emit = Callable[[list[Point]], Awaitable[None]]


def shared_login_event(inventory: Inventory, account: str, login: Point) -> tuple[Point, dict[str, str]]:
    """The `alert` event point for a login to a shared account, and the message (announce's keywords)."""
    words = _WORDS[inventory.alerting.language]
    host_id, site_id = login.tags.get("host", ""), login.tags.get("site", "")
    agent = inventory.agent_by_id(host_id)
    host = agent.name if agent is not None else host_id
    site = next((s.name for s in inventory.site if s.id == site_id), site_id)
    started = login.fields.get("start_time_s")
    known = isinstance(started, (int, float)) and not isinstance(started, bool)
    when = words["when"].format(time=clock.local(float(started), inventory.alerting.timezone)) if known else words["unknown_time"]
    origin = login.fields.get("from_host")
    title = words["title"].format(account=account, host=host, site=site)
    body = words["body"].format(
        account=account, host=host, site=site, when=when, kind=words[login.tags.get("kind", "console")],
        origin=words["from"].format(origin=origin) if isinstance(origin, str) else "",
    )
    tags = {"site": site_id, "rule": SHARED_ACCOUNT_RULE, "severity": "info", "state": "event", "subject": host_id}
    event = Point("alert", tags, {"active": 0.0, "summary": title}, now_ns())
    return event, {"rule": SHARED_ACCOUNT_RULE, "site": site_id, "subject": host_id, "severity": "info", "title": title, "body": body}


class SharedAccountWatch:
    """Told of agents' points; announces each login to a shared account once, as it is committed.

    Called in the event loop (a collector subscriber must not block): each event is a task,
    awaited at close.
    """

    def __init__(self, inventory: Inventory, user_names: Callable[[], UserNames], announce: Announce, emit: Emit):
        self.inventory = inventory
        self._user_names = user_names  # the collector's current ones (they follow reloads)
        self._announce = announce
        self._emit = emit
        self._tasks: set[asyncio.Task[None]] = set()

    def observe(self, points: Iterable[Point]) -> None:
        for account, login in self._user_names().shared_logins(points):
            task = asyncio.ensure_future(self._tell(account, login))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _tell(self, account: str, login: Point) -> None:
        event, message = shared_login_event(self.inventory, account, login)
        log.info("login to shared account %s on %s", account, login.tags.get("host"))
        try:
            await self._announce(**message)
        except Exception:  # noqa: BLE001 - announce reports channel failures itself; this is a bug, and the event point still goes out
            log.exception("shared account %s: message not delivered", account)
        await self._emit([event])

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
