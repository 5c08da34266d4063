"""What every channel kind is made of: a settings model, a sender, and the descriptor joining them.

A kind is one module of this package declaring one `ChannelKind`; registry.py lists them once.
The inventory's `[[channel]]` model (collector/config.py), the senders the alert service builds,
the inventory errors and docs/alerting.md's table all read that descriptor.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from pydantic import Field

from collector import clock, texts
from collector.alerting.notification import Notification
from collector.models import Model, Slug


class ChannelError(Exception):
    """The channel could not deliver after its retries; the message says why."""


class Sender(Protocol):
    id: str

    async def send(self, notification: Notification) -> None: ...

    async def close(self) -> None: ...


SecretResolver = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class Locale:
    """Language and clock of `[alerting]`, for the words and times a channel adds (fact labels, "since")."""

    language: str = "nb"
    timezone: str = "Europe/Oslo"

    def catalog(self) -> texts.Catalog:
        """The texts of this language; Norwegian, the default, for one there are no texts in."""
        return texts.of(self.language if self.language in texts.LANGUAGES else texts.DEFAULT_LANGUAGE)

    def words(self) -> texts.Words:
        """The words of alert messages: states, severities, "Affected"."""
        return self.catalog().alert

    def clock(self, t: float) -> str:
        return clock.local(t, self.timezone, "%d.%m.%Y %H:%M")


DEFAULT_LOCALE = Locale()


class ChannelSettings(Model):
    """The keys every `[[channel]]` table has; each kind's model adds its own and narrows `kind` to its name."""

    id: Slug
    kind: str
    # Delivery; unset: the kind's own default (email 3 attempts from 2 s, HTTP kinds 4 from 1 s).
    attempts: int | None = Field(default=None, ge=1, le=20)
    backoff_s: float | None = Field(default=None, gt=0, le=600)
    timeout_s: float | None = Field(default=None, gt=0, le=300)

    def delivery(self) -> dict[str, Any]:
        """The delivery settings the inventory sets; the rest keep the sender's defaults."""
        return {k: v for k in ("attempts", "backoff_s", "timeout_s") if (v := getattr(self, k)) is not None}


SettingsT = TypeVar("SettingsT", bound=ChannelSettings)


@dataclass(frozen=True)
class ChannelKind(Generic[SettingsT]):
    """One kind of channel, all that is known of it in one place.

    `settings` validates its `[[channel]]` table (its `kind` field is `Literal[name]`, which is how
    the inventory's union tells the kinds apart); `sender` builds the sender from valid settings,
    resolving secrets; `help` says in a line where messages go.
    """

    name: str
    settings: type[SettingsT]
    sender: Callable[[SettingsT, SecretResolver, Locale], Sender]
    help: str
    article: Literal["a", "an"] = "a"  # for the messages: "an sms channel", "a slack channel"

    def __post_init__(self) -> None:
        tag = typing.get_args(self.settings.model_fields["kind"].annotation)
        if tag != (self.name,):
            raise TypeError(f"channel kind {self.name!r}: {self.settings.__name__}.kind must be Literal[{self.name!r}], is {tag}")

    @property
    def called(self) -> str:
        """How messages name a channel of this kind: "an email channel"."""
        return f"{self.article} {self.name} channel"

    @property
    def needs(self) -> tuple[str, ...]:
        """The keys a channel of this kind must set besides `id` and `kind`, in the model's order."""
        return tuple(name for name, f in self.settings.model_fields.items() if f.is_required() and name not in ("id", "kind"))
