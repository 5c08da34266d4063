"""Where messages go: one small interface (`send`) and one registry, kind → factory.

Email uses stdlib smtplib in a thread (blocking library, own adapter). The HTTP kinds
(webhook, Teams, Slack, SMS gateway) only build their request; one helper sends it and
retries with backoff (server errors, 408/429, timeouts), never on another 4xx. Webhooks
are JSON signed with HMAC-SHA256 over the exact body bytes. A channel raises
`ChannelError` when it gives up; the service then reports that through the other channels.
Messages arrive rendered by the engine (title, body, events): channels only format them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import json
import logging
import smtplib
import socket
import ssl
import urllib.parse
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, ClassVar, Literal, Protocol

import aiohttp
import yarl

from agent.secrets import is_secret_ref
from collector import clock
from collector.alerting.engine import SEVERITY_RANK, WORDS, AlertEvent, Notification
from collector.alerting.rules import SITE_RULE
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


@dataclass(frozen=True, slots=True)
class Locale:
    """Language and clock of `[alerting]`, for the words and times a channel adds (fact labels, "since")."""

    language: str = "nb"
    timezone: str = "Europe/Oslo"

    def words(self) -> dict[str, str]:
        return WORDS.get(self.language, WORDS["nb"])

    def clock(self, t: float) -> str:
        return clock.local(t, self.timezone, "%d.%m.%Y %H:%M")


DEFAULT_LOCALE = Locale()


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
    def from_config(cls, channel: Channel, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "EmailSender":
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
            **_delivery(channel),
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


def _delivery(channel: Channel) -> dict[str, Any]:
    """The delivery settings the inventory sets; the rest keep the sender's defaults."""
    return {k: v for k in ("attempts", "backoff_s", "timeout_s") if (v := getattr(channel, k)) is not None}


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    # Errors travel to the other channels in the failure report: never with a token in them.
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


@dataclass(kw_only=True)
class HttpDelivery:
    """One aiohttp session and the retry loop every HTTP channel shares."""

    timeout_s: float = 10.0
    attempts: int = 4
    backoff_s: float = 1.0
    ssl_context: ssl.SSLContext | None = None
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    async def request(
        self,
        what: str,
        method: str,
        url: str | yarl.URL,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        redact: tuple[str, ...] = (),
    ) -> None:
        """Send until a 2xx; raise ChannelError naming `what` (never the URL) when giving up.

        Server errors, 408, 429 and network trouble are retried with doubling backoff; any other
        4xx is not, as a receiver that refuses the request itself (bad token, bad URL) will refuse it again.
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            wait = delay
            try:
                async with self._session.request(
                    method, url, data=data, headers=all_headers, ssl=self.ssl_context, allow_redirects=False
                ) as resp:
                    if 200 <= resp.status < 300:
                        return
                    problem = f"status {resp.status}"
                    # Redirects are not followed (a body or token must not go elsewhere) and, like a 4xx, not retried.
                    if resp.status < 500 and resp.status not in (408, 429):
                        raise ChannelError(_redact(f"{what}: {problem}", redact))
                    retry_after = resp.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        # Honour the receiver's pace, but never sleep longer than a minute on one message.
                        wait = max(delay, min(float(retry_after), 60.0))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt == self.attempts:
                raise ChannelError(_redact(f"{what}: {problem} after {attempt} attempts", redact))
            log.info("%s attempt %d failed (%s); retrying in %.1f s", what, attempt, _redact(problem, redact), wait)
            await asyncio.sleep(wait)
            delay *= 2

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _resolve_url(channel: Channel, secret: SecretResolver) -> str:
    assert channel.url is not None  # Channel validates this per kind
    return secret(channel.url) if is_secret_ref(channel.url) else channel.url


JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def _json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


@dataclass
class WebhookSender(HttpDelivery):
    id: str
    url: str = field(repr=False)  # may carry a token; kept out of logs
    secret: str | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, channel: Channel, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "WebhookSender":
        return cls(
            id=channel.id,
            url=_resolve_url(channel, secret),
            secret=secret(channel.secret) if channel.secret else None,
            **_delivery(channel),
        )

    def body(self, notification: Notification) -> bytes:
        return _json(notification.to_json())

    async def send(self, notification: Notification) -> None:
        body = self.body(notification)
        headers = dict(JSON_HEADERS)
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        await self.request(f"webhook {self.id}", "POST", self.url, data=body, headers=headers, redact=(self.url,))


# ---------------------------------------------------------------------- chat formats
def _state(events: tuple[AlertEvent, ...]) -> str:
    """What colours the message: "resolved" when nothing fires any more, else the worst severity firing."""
    live = [e for e in events if e.event != "resolved"]
    if not live:
        return "resolved"
    return max((e.severity for e in live), key=lambda s: SEVERITY_RANK.get(s, 0))


# Fact labels the engine has no word for; the rest come from its WORDS.
LABELS: dict[str, dict[str, str]] = {
    "nb": {"site": "Sted", "since": "Siden", "affected": "Berørte maskiner"},
    "en": {"site": "Site", "since": "Since", "affected": "Machines affected"},
}


def _facts(notification: Notification, locale: Locale) -> list[tuple[str, str]]:
    """(label, value): the sites, the earliest start, how many machines are affected."""
    labels = LABELS.get(locale.language, LABELS["nb"])
    events = notification.events
    sites = sorted({e.site for e in events if e.site})
    facts = []
    if sites:
        facts.append((labels["site"], ", ".join(sites)))
    if events:
        facts.append((labels["since"], locale.clock(min(e.since for e in events))))
    facts.append((labels["affected"], str(sum(len(e.affected) for e in events))))
    return facts


def _line(event: AlertEvent, words: dict[str, str]) -> str:
    return f"{words.get(event.event, event.event)} ({words.get(event.severity, event.severity)}): {event.summary}"


# Adaptive Card colours: the container style and the title colour by what the message says.
TEAMS_STYLE = {"critical": "attention", "warning": "warning", "info": "accent", "resolved": "good"}


@dataclass
class ChatSender(HttpDelivery):
    """A chat service's incoming webhook: the subclass formats the JSON payload, this POSTs it."""

    id: str
    url: str = field(repr=False)  # Teams and Slack URLs are the credential
    locale: Locale = DEFAULT_LOCALE
    kind: ClassVar[str] = "chat"

    @classmethod
    def from_config(cls, channel: Channel, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "ChatSender":
        return cls(id=channel.id, url=_resolve_url(channel, secret), locale=locale, **_delivery(channel))

    def payload(self, notification: Notification) -> dict[str, Any]:
        raise NotImplementedError

    async def send(self, notification: Notification) -> None:
        body = _json(self.payload(notification))
        await self.request(f"{self.kind} {self.id}", "POST", self.url, data=body, headers=JSON_HEADERS, redact=(self.url,))


@dataclass
class TeamsSender(ChatSender):
    """Microsoft Teams through a Workflows webhook ("Post to a channel when a webhook request is received").

    Workflows take only Adaptive Cards (the Office 365 connector MessageCard is retired), as an
    attachment of a `message` activity.
    """

    kind: ClassVar[str] = "teams"

    def payload(self, notification: Notification) -> dict[str, Any]:
        words = self.locale.words()
        style = TEAMS_STYLE.get(_state(notification.events), "default")
        items: list[dict[str, Any]] = [
            {"type": "TextBlock", "text": notification.title, "weight": "Bolder", "size": "Medium", "color": style, "wrap": True}
        ]
        for e in notification.events:
            items.append({"type": "TextBlock", "text": _line(e, words), "wrap": True, "spacing": "Small"})
            if e.affected and e.event != "resolved":
                items.append({"type": "TextBlock", "text": f"{words['affected']}: {', '.join(e.affected)}",
                              "wrap": True, "isSubtle": True, "spacing": "None"})
        if not notification.events:  # a failure report or test message: the body is all there is
            items.append({"type": "TextBlock", "text": notification.body, "wrap": True})
        items.append({"type": "FactSet", "facts": [{"title": k, "value": v} for k, v in _facts(notification, self.locale)]})
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [{"type": "Container", "style": style, "bleed": True, "items": items}],
            "msteams": {"width": "Full"},
        }
        return {
            "type": "message",
            "summary": notification.title,
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}],
        }


SLACK_EMOJI = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":large_blue_circle:",
               "resolved": ":white_check_mark:"}
SLACK_HEADER_MAX = 150  # Slack's limits for a header block and a section text
SLACK_SECTION_MAX = 3000


def slack_escape(text: str) -> str:
    """Slack reads &, < and > in mrkdwn as markup (links, mentions); these three are escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@dataclass
class SlackSender(ChatSender):
    """Slack incoming webhook: `text` (notifications, old clients) plus Block Kit blocks."""

    kind: ClassVar[str] = "slack"

    def payload(self, notification: Notification) -> dict[str, Any]:
        words = self.locale.words()
        header = f"{SLACK_EMOJI.get(_state(notification.events), '')} {notification.title}".strip()
        lines = []
        for e in notification.events:
            emoji = SLACK_EMOJI["resolved"] if e.event == "resolved" else SLACK_EMOJI.get(e.severity, "")
            state = f"*{slack_escape(words.get(e.event, e.event))}*"
            lines.append(f"{emoji} {state} {slack_escape(words.get(e.severity, e.severity))}: {slack_escape(e.summary)}")
            if e.affected and e.event != "resolved":
                lines.append(f"    _{slack_escape(words['affected'])}: {slack_escape(', '.join(e.affected))}_")
        section = "\n".join(lines) or slack_escape(notification.body)
        facts = "  ·  ".join(f"*{slack_escape(k)}:* {slack_escape(v)}" for k, v in _facts(notification, self.locale))
        return {
            "text": slack_escape(notification.title),
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": shorten(header, SLACK_HEADER_MAX), "emoji": True}},
                {"type": "section", "text": {"type": "mrkdwn", "text": shorten(section, SLACK_SECTION_MAX)}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": facts}]},
            ],
        }


# ---------------------------------------------------------------------- SMS
def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut at a word where one is near, marked with "...".

    Three dots, not "…": that character is outside the GSM 7-bit alphabet and would make
    the provider send UCS-2, which fits 70 characters per SMS instead of 160.
    """
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 3, 0)]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "..."


def sms_text(notification: Notification, locale: Locale, limit: int) -> str:
    """One line for a phone: site alerts first (the biggest first), whole alerts while they fit, then "(+N)".

    A firing alert is its summary alone ("Hansnes utilgjengelig siden 08:14, 7 maskiner bak den");
    anything else says what happened ("LØST: Hansnes er tilgjengelig igjen").
    """
    words = locale.words()
    # Site alerts first, the biggest site (most machines behind it) first; stable: engine order otherwise.
    events = sorted(notification.events, key=lambda e: (e.kind != SITE_RULE, -len(e.affected) if e.kind == SITE_RULE else 0))
    parts = [e.summary if e.event in ("firing", "repeat") else f"{words.get(e.event, e.event)}: {e.summary}" for e in events]
    if not parts:
        return shorten(" ".join(f"{notification.title}: {notification.body}".split()), limit)
    text = parts[0]
    for i, part in enumerate(parts[1:], 1):
        more = f" (+{len(parts) - i})"
        if len(f"{text}; {part}") + (len(more) if i < len(parts) - 1 else 0) > limit:
            text = shorten(text, limit - len(more)) + more
            break
        text = f"{text}; {part}"
    return shorten(text, limit)


def _fill(template: str, values: Mapping[str, str], escape: Callable[[str], str]) -> str:
    return template.format(**{k: escape(v) for k, v in values.items()})


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def _url_escape(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _render_json(node: Any, values: Mapping[str, str]) -> Any:
    # Every string of the table is a template; json.dumps escapes the result once, at the end.
    if isinstance(node, str):
        return node.format(**values)
    if isinstance(node, dict):
        return {k: _render_json(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_render_json(v, values) for v in node]
    return node


@dataclass
class SmsSender(HttpDelivery):
    """An SMS provider's HTTP API as a request template: one request per number.

    Variables ({to}, {message}, {sender}, {title}, {token}) are URL-encoded in the URL,
    form-encoded in a form body and JSON-escaped in a JSON body.
    """

    id: str
    url: str  # template
    to: list[str]
    method: Literal["GET", "POST"] = "POST"
    body: str | dict[str, Any] | None = None
    body_format: Literal["form", "json"] = "form"
    headers: dict[str, str] = field(default_factory=dict)  # values are templates too ("Bearer {token}")
    sender: str = ""
    token: str = field(default="", repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_length: int = 160
    locale: Locale = DEFAULT_LOCALE

    @classmethod
    def from_config(cls, channel: Channel, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "SmsSender":
        assert channel.url is not None
        return cls(
            id=channel.id,
            url=channel.url,
            to=list(channel.to),
            method=channel.sms_method,
            body=channel.sms_body,
            body_format=channel.sms_body_format,
            headers=dict(channel.sms_headers),
            sender=channel.sender or "",
            token=secret(channel.sms_token) if channel.sms_token else "",
            username=channel.sms_username,
            password=secret(channel.sms_password) if channel.sms_password else None,
            max_length=channel.sms_max_length,
            locale=locale,
            **_delivery(channel),
        )

    def requests(self, notification: Notification) -> list[tuple[str, yarl.URL, bytes | None, dict[str, str]]]:
        """(number, URL, body, headers) of each request, in the order of `to`."""
        message = sms_text(notification, self.locale, self.max_length)
        out = []
        for number in self.to:
            values = {"to": number, "message": message, "sender": self.sender, "title": notification.title, "token": self.token}
            # encoded=True: the URL is already percent-encoded; requoting could turn %2B back into a "+" (a space).
            url = yarl.URL(_fill(self.url, values, _url_escape), encoded=True)
            # A line break in a header value would end the header: none gets through.
            headers = {k: " ".join(v.format(**values).splitlines()) for k, v in self.headers.items()}
            if self.username is not None:
                # HTTP basic authentication (RFC 7617) with UTF-8, so "karlsøy" logs in as written.
                pair = f"{self.username}:{self.password or ''}".encode("utf-8")
                headers.setdefault("Authorization", "Basic " + base64.b64encode(pair).decode("ascii"))
            data: bytes | None = None
            if self.body is not None:
                if self.body_format == "json":
                    headers.setdefault("Content-Type", JSON_HEADERS["Content-Type"])
                    if isinstance(self.body, str):
                        data = _fill(self.body, values, _json_escape).encode("utf-8")
                    else:
                        data = _json(_render_json(self.body, values))
                else:
                    headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
                    if isinstance(self.body, str):
                        data = _fill(self.body, values, urllib.parse.quote_plus).encode("utf-8")
                    else:
                        data = urllib.parse.urlencode({k: str(v).format(**values) for k, v in self.body.items()}).encode("ascii")
            out.append((number, url, data, headers))
        return out

    async def send(self, notification: Notification) -> None:
        redact = (self.token, self.password or "")
        try:
            requests = self.requests(notification)
        except (ValueError, KeyError, IndexError) as exc:  # a format spec `nettvakt check` cannot judge, e.g. {message:d}
            raise ChannelError(f"sms {self.id}: request template: {exc}") from exc
        failed = []
        # One number failing (a provider refusing it) must not keep the message from the others.
        for number, url, data, headers in requests:
            try:
                await self.request(f"sms {self.id} to {number}", self.method, url, data=data, headers=headers, redact=redact)
            except ChannelError as exc:
                failed.append(str(exc))
        if failed:
            raise ChannelError(f"sms {self.id}: {len(failed)} of {len(self.to)} numbers not reached: " + "; ".join(failed))


ChannelFactory = Callable[[Channel, SecretResolver, Locale], Sender]

CHANNELS: dict[str, ChannelFactory] = {
    "email": EmailSender.from_config,
    "webhook": WebhookSender.from_config,
    "teams": TeamsSender.from_config,
    "slack": SlackSender.from_config,
    "sms": SmsSender.from_config,
}


def build_senders(
    channels: list[Channel], secret: SecretResolver, locale: Locale = DEFAULT_LOCALE
) -> tuple[dict[str, Sender], list[str]]:
    """Senders by channel id, and a problem per channel that could not be built (logged, never fatal)."""
    senders: dict[str, Sender] = {}
    problems: list[str] = []
    for i, channel in enumerate(channels):
        try:
            senders[channel.id] = CHANNELS[channel.kind](channel, secret, locale)
        except (KeyError, ValueError) as exc:  # SecretError is a ValueError
            problems.append(f"channel[{i}] ({channel.id}): {exc}")
    for problem in problems:
        log.error("alerting: %s", problem)
    return senders, problems
