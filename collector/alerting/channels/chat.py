"""What the chat kinds (teams, slack) share: a settings model that is one webhook URL, a sender
that POSTs the JSON payload its subclass formats, and the parts of that payload both show
(the colour of the message, one line per alert, the facts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from collector.alerting.channels.base import DEFAULT_LOCALE, ChannelSettings, Locale, SecretResolver
from collector.alerting.channels.http import JSON_HEADERS, HttpDelivery, WebhookUrl, json_body, resolve_url
from collector.alerting.notification import SEVERITY_RANK, AlertEvent, Notification
from collector.texts import Words


class ChatSettings(ChannelSettings):
    """A chat service's incoming webhook: its URL is the credential, so it may be a secret reference."""

    url: WebhookUrl


def state(events: tuple[AlertEvent, ...]) -> str:
    """What colours the message: "resolved" when nothing fires any more, else the worst severity firing."""
    live = [e for e in events if e.event != "resolved"]
    if not live:
        return "resolved"
    return max((e.severity for e in live), key=lambda s: SEVERITY_RANK.get(s, 0))


def facts(notification: Notification, locale: Locale) -> list[tuple[str, str]]:
    """(label, value): the sites, the earliest start, how many machines are affected."""
    labels = locale.catalog().chat_facts
    events = notification.events
    sites = sorted({e.site for e in events if e.site})
    found = []
    if sites:
        found.append((labels["site"], ", ".join(sites)))
    if events:
        found.append((labels["since"], locale.clock(min(e.since for e in events))))
    found.append((labels["affected"], str(sum(len(e.affected) for e in events))))
    return found


def line(event: AlertEvent, words: Words) -> str:
    return f"{words.get(event.event, event.event)} ({words.get(event.severity, event.severity)}): {event.summary}"


@dataclass
class ChatSender(HttpDelivery):
    """A chat service's incoming webhook: the subclass formats the JSON payload, this POSTs it."""

    id: str
    url: str = field(repr=False)  # Teams and Slack URLs are the credential
    locale: Locale = DEFAULT_LOCALE
    kind: ClassVar[str] = "chat"

    @classmethod
    def from_settings(cls, settings: ChatSettings, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "ChatSender":
        return cls(id=settings.id, url=resolve_url(settings.url, secret), locale=locale, **settings.delivery())

    def payload(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, notification: Notification) -> None:
        body = json_body(self.payload(notification))
        await self.request(f"{self.kind} {self.id}", "POST", self.url, data=body, headers=JSON_HEADERS, redact=(self.url,))
