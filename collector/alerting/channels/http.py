"""Delivery over HTTP, shared by every kind that posts (webhook, teams, slack, sms).

One aiohttp session per sender and one retry loop: server errors, 408/429 and network trouble
are retried with doubling backoff; any other 4xx is not. Errors never carry a URL or token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

import aiohttp
import yarl
from pydantic import AfterValidator

from agent.secrets import is_secret_ref
from collector.alerting.channels.base import ChannelError, SecretResolver

log = logging.getLogger("nettvakt.alerting")

USER_AGENT = "nettvakt-alerting/1"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
HTTP_SCHEMES = ("http://", "https://")


def json_body(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def redacted(text: str, secrets: tuple[str, ...]) -> str:
    # Errors travel to the other channels in the failure report: never with a token in them.
    for value in secrets:
        if value:
            text = text.replace(value, "***")
    return text


def _url_or_secret_ref(value: str) -> str:
    if not value.startswith(HTTP_SCHEMES) and not is_secret_ref(value):
        raise ValueError(f"{value!r} is not an http:// or https:// URL or a secret reference (env:NAME, file:PATH)")
    return value


# Where a webhook, Teams or Slack channel posts; may be a secret reference, as such URLs carry a token.
WebhookUrl = Annotated[str, AfterValidator(_url_or_secret_ref)]


def resolve_url(url: str, secret: SecretResolver) -> str:
    return secret(url) if is_secret_ref(url) else url


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
                        raise ChannelError(redacted(f"{what}: {problem}", redact))
                    retry_after = resp.headers.get("Retry-After", "")
                    if retry_after.isdigit():
                        # Honour the receiver's pace, but never sleep longer than a minute on one message.
                        wait = max(delay, min(float(retry_after), 60.0))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                problem = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt == self.attempts:
                raise ChannelError(redacted(f"{what}: {problem} after {attempt} attempts", redact))
            log.info("%s attempt %d failed (%s); retrying in %.1f s", what, attempt, redacted(problem, redact), wait)
            await asyncio.sleep(wait)
            delay *= 2

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
