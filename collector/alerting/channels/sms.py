"""`kind = "sms"`: an SMS provider's HTTP API as a request template, one request per number.

Variables ({to}, {message}, {sender}, {title}, {token}) are URL-encoded in the URL,
form-encoded in a form body and JSON-escaped in a JSON body. The message is made for a phone:
site alerts first, whole alerts while they fit, then "(+N)".
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import yarl
from pydantic import Field, ValidationInfo, field_validator, model_validator

from agent.secrets import is_secret_ref
from collector.alerting.channels.base import DEFAULT_LOCALE, ChannelError, ChannelKind, ChannelSettings, Locale, SecretResolver
from collector.alerting.channels.http import HTTP_SCHEMES, JSON_HEADERS, HttpDelivery, json_body
from collector.alerting.channels.text import shorten
from collector.alerting.config import template_problem, template_variables
from collector.alerting.notification import Notification
from collector.alerting.rules import SITE_RULE
from collector.models import SecretRef

# What a template may use: SmsSender.requests fills exactly these.
SMS_VARIABLES = frozenset({"to", "message", "sender", "title", "token"})


def check_template(template: str, where: str = "") -> None:
    problem = template_problem(template, SMS_VARIABLES)
    if problem is not None:
        raise ValueError(f"{where}{problem}")


class SmsSettings(ChannelSettings):
    """The provider's HTTP API as a request template. Credentials only as secret references:
    basic auth (sms_username + sms_password) and/or sms_token, used as {token} in the URL,
    body or a header value (sms_headers = { Authorization = "Bearer {token}" })."""

    kind: Literal["sms"]
    # The provider's URL template ({to}, {message}, ... URL-encoded).
    url: str
    # E.164 numbers (+4791234567), one request per number.
    to: list[str]
    # The sender name or number the provider shows ({sender}).
    sender: str | None = None
    sms_method: Literal["GET", "POST"] = "POST"
    sms_headers: dict[str, str] = Field(default_factory=dict)
    sms_username: str | None = None
    sms_password: SecretRef | None = None
    sms_token: SecretRef | None = None
    sms_body_format: Literal["form", "json"] = "form"
    # A table (form fields, or a JSON object whose strings are templates) or one template string.
    sms_body: str | dict[str, Any] | None = None
    sms_max_length: int = Field(default=160, ge=20, le=1600)

    def templates(self) -> list[str]:
        """Every template string: URL, header values, body strings."""
        found = [self.url, *self.sms_headers.values()]

        def walk(node: Any) -> None:
            if isinstance(node, str):
                found.append(node)
            elif isinstance(node, dict):
                for item in node.values():
                    walk(item)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(self.sms_body)
        return found

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(HTTP_SCHEMES):
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        check_template(value)
        return value

    @field_validator("to")
    @classmethod
    def _numbers(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one number (E.164, e.g. +4791234567)")
        for i, number in enumerate(value):
            if not re.fullmatch(r"\+[1-9][0-9]{6,14}", number):
                raise ValueError(
                    f"{number!r} (entry {i}) is not an E.164 number (+, country code and number, digits only, e.g. +4791234567)"
                )
        return value

    @field_validator("sms_headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            check_template(template, f"{name}: ")
            # A credential written here would sit inline in the inventory; it belongs in sms_token.
            looks_secret = any(word in name.lower() for word in ("auth", "token", "key", "secret", "password"))
            if (looks_secret or is_secret_ref(template)) and "{token}" not in template:
                raise ValueError(
                    f"{name}: credentials are not written inline: set sms_token = \"env:NAME\" (or file:PATH) and write {{token}} here"
                )
        return value

    @field_validator("sms_body")
    @classmethod
    def _body(cls, value: str | dict[str, Any] | None, info: ValidationInfo) -> str | dict[str, Any] | None:
        if isinstance(value, str):
            try:
                check_template(value)
            except ValueError as exc:
                if info.data.get("sms_body_format") != "json":
                    raise
                raise ValueError(f"{exc} (a JSON body is easiest written as a TOML table: sms_body = {{ text = \"{{message}}\" }})") from None
        elif isinstance(value, dict):
            form = info.data.get("sms_body_format") == "form"

            def walk(node: Any, path: str) -> None:
                if isinstance(node, str):
                    check_template(node, f"{path}: ")
                elif isinstance(node, dict):
                    for key, item in node.items():
                        if form and not isinstance(item, str):
                            raise ValueError(f"{path}{key}: a form field is text; nested values need sms_body_format = 'json'")
                        walk(item, f"{path}.{key}" if path else key)
                elif isinstance(node, list):
                    for i, item in enumerate(node):
                        walk(item, f"{path}[{i}]")

            walk(value, "")
        return value

    @model_validator(mode="after")
    def _request(self) -> "SmsSettings":
        if self.sms_method == "GET" and self.sms_body is not None:
            raise ValueError("sms_body is not sent with sms_method = 'GET': put the variables in the `url` template")
        if (self.sms_username is None) != (self.sms_password is None):
            raise ValueError("sms_username and sms_password go together (HTTP basic authentication)")
        used = set().union(*(template_variables(t) for t in self.templates()))
        for variable, key in (("token", "sms_token"), ("sender", "sender")):
            if variable in used and getattr(self, key) is None:
                raise ValueError(f"the templates use {{{variable}}} but `{key}` is not set")
        return self


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
    def from_settings(cls, settings: SmsSettings, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "SmsSender":
        return cls(
            id=settings.id,
            url=settings.url,
            to=list(settings.to),
            method=settings.sms_method,
            body=settings.sms_body,
            body_format=settings.sms_body_format,
            headers=dict(settings.sms_headers),
            sender=settings.sender or "",
            token=secret(settings.sms_token) if settings.sms_token else "",
            username=settings.sms_username,
            password=secret(settings.sms_password) if settings.sms_password else None,
            max_length=settings.sms_max_length,
            locale=locale,
            **settings.delivery(),
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
                        data = json_body(_render_json(self.body, values))
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


KIND = ChannelKind(
    name="sms",
    settings=SmsSettings,
    sender=SmsSender.from_settings,
    help="an SMS provider's HTTP API, described as a request template",
    article="an",
)
