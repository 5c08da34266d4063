"""`kind = "email"`: mail over SMTP with stdlib smtplib, in a thread (a blocking library in its own adapter).

STARTTLS when the server offers it (`smtp_starttls = "always"` refuses to send in clear), an
optional login; a refused login is not retried, other failures are, with doubling backoff.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import smtplib
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

from pydantic import Field, field_validator

from collector.alerting.channels.base import DEFAULT_LOCALE, ChannelError, ChannelKind, ChannelSettings, Locale, SecretResolver
from collector.alerting.notification import Notification
from collector.models import SecretRef

log = logging.getLogger("nettvakt.alerting")

Starttls = Literal["auto", "always", "never"]


class EmailSettings(ChannelSettings):
    kind: Literal["email"]
    to: list[str]
    smtp_host: str
    smtp_port: int = Field(default=25, gt=0, lt=65536)
    smtp_username: str | None = None
    smtp_password: SecretRef | None = None
    # auto: upgrade when the server offers it; always: refuse to send in clear; never: plain.
    smtp_starttls: Starttls = "auto"
    # The From address; unset: nettvakt@ this machine's name.
    sender: str | None = None

    @field_validator("to")
    @classmethod
    def _someone(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one address")
        return value


@dataclass
class EmailSender:
    id: str
    host: str
    port: int
    to: list[str]
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: Starttls = "auto"
    ssl_context: ssl.SSLContext | None = None
    timeout_s: float = 20.0
    attempts: int = 3
    backoff_s: float = 2.0

    @classmethod
    def from_settings(cls, settings: EmailSettings, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "EmailSender":
        return cls(
            id=settings.id,
            host=settings.smtp_host,
            port=settings.smtp_port,
            to=list(settings.to),
            sender=settings.sender or f"nettvakt@{socket.getfqdn()}",
            username=settings.smtp_username,
            password=secret(settings.smtp_password) if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            **settings.delivery(),
        )

    def message(self, notification: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = notification.title
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Date"] = email.utils.formatdate(notification.created, localtime=True)
        msg["Message-ID"] = email.utils.make_msgid(domain="nettvakt")
        msg.set_content(notification.body)
        return msg

    def _send_blocking(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            smtp.ehlo()
            offered = smtp.has_extn("starttls")
            if self.starttls == "always" and not offered:
                raise ChannelError(f"{self.host}:{self.port} does not offer STARTTLS and starttls = 'always'")
            if self.starttls != "never" and offered:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username is not None:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg)

    async def send(self, notification: Notification) -> None:
        msg = self.message(notification)
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                await asyncio.to_thread(self._send_blocking, msg)
                return
            except smtplib.SMTPAuthenticationError as exc:
                # Wrong credentials do not get better by retrying.
                raise ChannelError(f"email {self.id}: authentication refused by {self.host}:{self.port}: {exc.smtp_code}") from exc
            except (smtplib.SMTPException, OSError, ChannelError) as exc:
                if attempt == self.attempts:
                    raise ChannelError(f"email {self.id}: {self.host}:{self.port}: {exc}") from exc
                log.info("email %s attempt %d failed (%s); retrying in %.1f s", self.id, attempt, exc, delay)
                await asyncio.sleep(delay)
                delay *= 2

    async def close(self) -> None:
        return None


KIND = ChannelKind(
    name="email",
    settings=EmailSettings,
    sender=EmailSender.from_settings,
    help="SMTP, STARTTLS when offered (`smtp_starttls = \"always\"` refuses to send in clear), optional login",
    article="an",
)
