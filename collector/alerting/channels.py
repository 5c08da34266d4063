"""Where messages go: one small interface (`send`) and one registry, kind → factory.

Email uses stdlib smtplib in a thread (blocking library, own adapter); webhooks POST JSON
signed with HMAC-SHA256 over the exact body bytes and retry with backoff. A channel raises
`ChannelError` when it gives up; the service then reports that through the other channels.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import smtplib
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Literal, Protocol

import aiohttp

from collector.alerting.engine import Notification
from collector.config import Channel

log = logging.getLogger("nettvakt.alerting")

SIGNATURE_HEADER = "X-Nettvakt-Signature"
USER_AGENT = "nettvakt-alerting/1"


class ChannelError(Exception):
    """The channel could not deliver after its retries; the message says why."""


class Sender(Protocol):
    id: str

    async def send(self, notification: Notification) -> None: ...

    async def close(self) -> None: ...


SecretResolver = Callable[[str], str]


def sign(secret: str, body: bytes) -> str:
    """Header value a receiver recomputes over the raw body to trust the message."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


@dataclass
class EmailSender:
    id: str
    host: str
    port: int
    to: list[str]
    sender: str
    username: str | None = None
    password: str | None = None
    # "auto": STARTTLS when the server offers it; "always": refuse to send in clear; "never".
    starttls: Literal["auto", "always", "never"] = "auto"
    ssl_context: ssl.SSLContext | None = None
    timeout_s: float = 20.0
    attempts: int = 3
    backoff_s: float = 2.0

    @classmethod
    def from_config(cls, channel: Channel, secret: SecretResolver) -> "EmailSender":
        assert channel.smtp_host is not None  # Channel validates this per kind
        return cls(
            id=channel.id,
            host=channel.smtp_host,
            port=channel.smtp_port,
            to=list(channel.to),
            sender=channel.sender or f"nettvakt@{socket.getfqdn()}",
            username=channel.smtp_username,
            password=secret(channel.smtp_password) if channel.smtp_password else None,
            starttls=channel.smtp_starttls,
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


@dataclass
class WebhookSender:
    id: str
    url: str
    secret: str | None = None
    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 1.0
    ssl_context: ssl.SSLContext | None = None
    _session: aiohttp.ClientSession | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, channel: Channel, secret: SecretResolver) -> "WebhookSender":
        assert channel.url is not None
        return cls(id=channel.id, url=channel.url, secret=secret(channel.secret) if channel.secret else None)

    def body(self, notification: Notification) -> bytes:
        return json.dumps(notification.to_json(), ensure_ascii=False).encode("utf-8")

    async def send(self, notification: Notification) -> None:
        body = self.body(notification)
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT}
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                async with self._session.post(self.url, data=body, headers=headers, ssl=self.ssl_context) as resp:
                    if 200 <= resp.status < 300:
                        return
                    problem = f"status {resp.status}"
                    # A receiver that refuses the message itself (bad signature, bad URL) will refuse it again.
                    if 400 <= resp.status < 500 and resp.status not in (408, 429):
                        raise ChannelError(f"webhook {self.id}: {problem}")
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = str(exc) or type(exc).__name__
            if attempt == self.attempts:
                raise ChannelError(f"webhook {self.id}: {problem} after {attempt} attempts")
            log.info("webhook %s attempt %d failed (%s); retrying in %.1f s", self.id, attempt, problem, delay)
            await asyncio.sleep(delay)
            delay *= 2

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


ChannelFactory = Callable[[Channel, SecretResolver], Sender]

CHANNELS: dict[str, ChannelFactory] = {
    "email": EmailSender.from_config,
    "webhook": WebhookSender.from_config,
}


def build_senders(channels: list[Channel], secret: SecretResolver) -> tuple[dict[str, Sender], list[str]]:
    """Senders by channel id, and a problem per channel that could not be built (logged, never fatal)."""
    senders: dict[str, Sender] = {}
    problems: list[str] = []
    for i, channel in enumerate(channels):
        try:
            senders[channel.id] = CHANNELS[channel.kind](channel, secret)
        except (KeyError, ValueError) as exc:  # SecretError is a ValueError
            problems.append(f"channel[{i}] ({channel.id}): {exc}")
    for problem in problems:
        log.error("alerting: %s", problem)
    return senders, problems
