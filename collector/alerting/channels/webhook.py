"""`kind = "webhook"`: the notification as JSON, POSTed; signed with HMAC-SHA256 over the exact
body bytes when `secret` is set, so the receiver can trust it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

from collector.alerting.channels.base import DEFAULT_LOCALE, ChannelKind, ChannelSettings, Locale, SecretResolver
from collector.alerting.channels.http import JSON_HEADERS, HttpDelivery, WebhookUrl, json_body, resolve_url
from collector.alerting.notification import Notification
from collector.models import SecretRef

SIGNATURE_HEADER = "X-Nettvakt-Signature"


class WebhookSettings(ChannelSettings):
    kind: Literal["webhook"]
    url: WebhookUrl
    secret: SecretRef | None = None


def sign(secret: str, body: bytes) -> str:
    """Header value a receiver recomputes over the raw body to trust the message."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass
class WebhookSender(HttpDelivery):
    id: str
    url: str = field(repr=False)  # may carry a token; kept out of logs
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, settings: WebhookSettings, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "WebhookSender":
        return cls(
            id=settings.id,
            url=resolve_url(settings.url, secret),
            secret=secret(settings.secret) if settings.secret else None,
            **settings.delivery(),
        )

    def body(self, notification: Notification) -> bytes:
        return json_body(notification.to_json())

    async def send(self, notification: Notification) -> None:
        body = self.body(notification)
        headers = dict(JSON_HEADERS)
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        await self.request(f"webhook {self.id}", "POST", self.url, data=body, headers=headers, redact=(self.url,))


KIND = ChannelKind(
    name="webhook",
    settings=WebhookSettings,
    sender=WebhookSender.from_settings,
    help=f"POST of the notification as JSON, signed `{SIGNATURE_HEADER}: sha256=<HMAC of the body>` when `secret` is set",
)
