"""Channels against real receivers: aiosmtpd (plain, and STARTTLS with AUTH) and one aiohttp server
on a loopback port for every HTTP kind (webhook, Teams, Slack, SMS gateway).

The HTTP receiver records and parses what arrives (JSON, form, query, basic auth), so each test
checks what a real provider would read; its answers are scripted per request (a status, or a
stall past the client's timeout) to drive the retry loop the HTTP kinds share.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.smtp import AuthResult, LoginPassword
from multidict import MultiDict

from agent.points import Point
from collector.alerting.channels import (
    SIGNATURE_HEADER,
    ChannelError,
    EmailSender,
    Locale,
    Sender,
    SlackSender,
    SmsSender,
    TeamsSender,
    WebhookSender,
    build_senders,
    sign,
    sms_text,
    verify,
)
from collector.alerting.config import AlertRule
from collector.alerting.engine import AlertEngine, AlertEvent, Notification
from collector.alerting.service import AlertService
from collector.config import InventoryError, load_inventory, parse_inventory
from collector.localservers import free_port
from collector.tls import make_self_signed
from inventories import InventoryBuilder
from serving import serving

SECRET = "hemmelig-nøkkel"


def notification(channel: str = "vakt", title: str = "[AKTIV] Vannvåg utilgjengelig") -> Notification:
    event = AlertEvent("firing", "site-unreachable", "site_unreachable", "critical", "vannvag", "vannvag", title, 1.0, ("PC1",))
    return Notification(channel, title, "AKTIV  kritisk  Vannvåg utilgjengelig\n", (event,), 1_764_486_840.0)


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only that server) for 127.0.0.1."""
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    make_self_signed(cert_path, key_path, ["127.0.0.1"], days=1)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def test_email_reaches_a_real_smtp_server(smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    port = inbox.port
    sender = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example", "leder@karlsoy.example"], "nettvakt@karlsoy.example")
    asyncio.run(sender.send(notification()))
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == "[AKTIV] Vannvåg utilgjengelig"
    assert "Vannvåg utilgjengelig" in msg.get_content()
    assert inbox.envelopes == [("nettvakt@karlsoy.example", ["vakt@karlsoy.example", "leder@karlsoy.example"])]


def test_email_starttls_and_login(smtp_inbox: Callable[..., Any], tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    passwords: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        passwords.append(password)
        # handled=False: aiosmtpd sends the 235/535 reply itself.
        return AuthResult(success=password == "riktig", handled=False)

    inbox = smtp_inbox(tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True)
    port = inbox.port
    good = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example"], "nettvakt@karlsoy.example",
                       username="nettvakt", password="riktig", starttls="always", ssl_context=client_tls)
    asyncio.run(good.send(notification()))
    bad = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example"], "nettvakt@karlsoy.example",
                      username="nettvakt", password="feil", starttls="always", ssl_context=client_tls, backoff_s=0.01)
    with pytest.raises(ChannelError, match="authentication refused"):
        asyncio.run(bad.send(notification()))
    assert len(inbox.messages) == 1
    # smtplib tries PLAIN then LOGIN in one session; three attempts would have made it six.
    assert passwords[0] == "riktig" and 1 <= passwords.count("feil") <= 2


def test_email_refuses_clear_text_when_starttls_always(smtp_inbox: Callable[..., Any]) -> None:
    inbox = smtp_inbox()
    port = inbox.port
    sender = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example"], "n@k.example", starttls="always", attempts=1)
    with pytest.raises(ChannelError, match="does not offer STARTTLS"):
        asyncio.run(sender.send(notification()))
    assert inbox.messages == []


SINCE = 1_796_023_200.0  # 30.11.2026 08:20 in Oslo
TRICKY = 'Sjø & fjæra "nå" = bra'  # æøå and the characters URL, form and JSON encodings must escape


def site_event(event: str = "firing", site: str = "hansnes", name: str = "Hansnes") -> AlertEvent:
    summary = f"{name} utilgjengelig siden 08:20, 7 maskiner bak den" if event == "firing" else f"{name} er tilgjengelig igjen"
    return AlertEvent(event, "site-unreachable", "site_unreachable", "critical", site, site, summary, SINCE,  # type: ignore[arg-type]
                      tuple(f"PC{i}" for i in range(1, 8)))


def cpu_event(host: str = "srv1", summary: str = "CPU på srv1 over 90 %", event: str = "firing") -> AlertEvent:
    return AlertEvent(event, "cpu", "cpu_high", "warning", "radhus", host, summary, SINCE - 600)  # type: ignore[arg-type]


def note(*events: AlertEvent, title: str | None = None, channel: str = "vakt") -> Notification:
    if title is None:
        title = f"[AKTIV] {events[0].summary}" if len(events) == 1 else f"[nettvakt] {len(events)} varsler"
    body = "".join(f"{e.event} {e.summary}\n" for e in events)
    return Notification(channel, title, body, events, SINCE + 30)


@dataclass
class Seen:
    method: str
    path: str
    query: MultiDict[str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


STALL = -1  # answer: hold the request past the client's timeout


@asynccontextmanager
async def receiver(
    answers: list[int] | None = None, refuse: Callable[[Seen], int | None] | None = None
) -> AsyncIterator[tuple[list[Seen], str]]:
    """Every request recorded (also the refused ones); `refuse` may answer first, else `answers` in turn, then 200."""
    seen: list[Seen] = []
    script = iter(answers or [])

    async def handle(request: web.Request) -> web.Response:
        seen.append(Seen(request.method, request.path, request.query.copy(), dict(request.headers), await request.read()))
        refused = refuse(seen[-1]) if refuse is not None else None
        if refused is not None:
            return web.Response(status=refused, text="nei")
        answer = next(script, 200)
        if answer == STALL:
            await asyncio.sleep(3.0)  # far past the client's timeout, even on a loaded machine
            answer = 200
        return web.Response(status=answer, text="ok" if answer < 400 else "nei")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serving(app, shutdown_timeout=0.1) as url:
        yield seen, url


def deliver(make: Callable[[str], Sender], notification: Notification, answers: list[int] | None = None,
            path: str = "/hook") -> tuple[list[Seen], Exception | None]:
    """Start a receiver, send one notification with the sender `make(url)` builds; what arrived and the error."""
    outcome: list[Exception | None] = [None]
    seen_out: list[Seen] = []

    async def main() -> None:
        async with receiver(answers) as (seen, base):
            sender = make(base + path)
            try:
                await sender.send(notification)
            except ChannelError as exc:
                outcome[0] = exc
            finally:
                await sender.close()
            seen_out.extend(seen)

    asyncio.run(main())
    return seen_out, outcome[0]


@asynccontextmanager
async def webhook_server(statuses: list[int]) -> AsyncIterator[tuple[list[Seen], str]]:
    """Receiver that refuses a bad signature with 401; answers `statuses` in turn, then 200."""

    def signed(seen: Seen) -> int | None:
        return None if verify(SECRET, seen.body, seen.headers.get(SIGNATURE_HEADER)) else 401

    async with receiver(statuses, refuse=signed) as (seen, base):
        yield seen, base + "/hook"


def test_webhook_signed_and_retried_after_server_errors() -> None:
    async def scenario() -> list[Seen]:
        async with webhook_server([503, 502]) as (seen, url):
            sender = WebhookSender("hook", url, SECRET, backoff_s=0.01)
            try:
                await sender.send(notification("hook"))
            finally:
                await sender.close()
            return seen

    seen = asyncio.run(scenario())
    assert len(seen) == 3 and seen[0].body == seen[2].body
    body = seen[2].json()
    assert body["title"] == "[AKTIV] Vannvåg utilgjengelig"
    assert body["alerts"][0] == {
        "event": "firing", "rule": "site-unreachable", "kind": "site_unreachable", "severity": "critical",
        "site": "vannvag", "subject": "vannvag", "summary": "[AKTIV] Vannvåg utilgjengelig", "since": 1.0, "affected": ["PC1"], "uplink": "",
    }


def test_webhook_wrong_secret_is_refused_without_retry() -> None:
    async def scenario() -> None:
        async with webhook_server([]) as (seen, url):
            sender = WebhookSender("hook", url, "en-annen-nøkkel", backoff_s=0.01)
            try:
                with pytest.raises(ChannelError, match="status 401"):
                    await sender.send(notification("hook"))
            finally:
                await sender.close()
            assert len(seen) == 1

    asyncio.run(scenario())


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # Known answer computed independently: printf '{}' | openssl dgst -sha256 -hmac key
    assert sign("key", b"{}") == "sha256=a777724d943eb48dc69bca8a4a6d57a04db3f9ec7e1de4e581e860265bdf3032"
    assert verify("key", b"{}", sign("key", b"{}"))
    assert not verify("key", b"{ }", sign("key", b"{}"))
    assert not verify("key", b"{}", None)


def notices_to_mail() -> AlertEngine:
    """An engine whose on-call route (the mail channel) takes notices about nettvakt itself."""
    return AlertEngine(parse_inventory({
        "channel": [{"id": "vakt-epost", "kind": "email", "to": ["vakt@karlsoy.example"], "smtp_host": "127.0.0.1"}],
        "route": [{"channels": ["vakt-epost"], "system_notices": True}],
    }), [])


def test_failing_channel_is_reported_through_the_others(smtp_inbox: Callable[..., Any]) -> None:
    dead_port = free_port()  # nothing listens here

    async def scenario(port: int) -> None:
        email_sender = EmailSender("vakt-epost", "127.0.0.1", port, ["vakt@karlsoy.example"], "n@karlsoy.example")
        hook = WebhookSender("vakt-webhook", f"http://127.0.0.1:{dead_port}/hook", SECRET, attempts=2, backoff_s=0.01)
        service = AlertService(notices_to_mail(), {"vakt-epost": email_sender, "vakt-webhook": hook})
        delivered = await service.deliver(notification("vakt-webhook"))
        await service.drain()
        await service.close()
        assert delivered is False
        assert service.failures[0][0] == "vakt-webhook"

    inbox = smtp_inbox()
    port = inbox.port
    asyncio.run(scenario(port))
    assert len(inbox.messages) == 1
    subject = inbox.messages[0]["Subject"]
    assert subject.startswith("[nettvakt] varslingskanal vakt-webhook feiler siden ") and "/ alert channel vakt-webhook failing since" in subject
    content = inbox.messages[0].get_content()
    assert "Siste feil / last error:" in content and "vakt-webhook" in content
    assert "[AKTIV] Vannvåg utilgjengelig" not in content  # the alert itself is not sent again


def test_failing_sms_gateway_is_reported_through_email(smtp_inbox: Callable[..., Any]) -> None:
    """The provider answers 503 to everything: the SMS channel gives up and the on-call mail says so."""
    seen: list[Seen] = []

    async def scenario(smtp_port: int) -> None:
        async with receiver([503] * 4) as (requests, base):
            sms = SmsSender("vakt-sms", base + "/send?to={to}&key={token}", ["+4791234567", "+4741234567"],
                            body={"text": "{message}"}, token="topp-hemmelig", attempts=2, backoff_s=0.01)
            email_sender = EmailSender("vakt-epost", "127.0.0.1", smtp_port, ["vakt@karlsoy.example"], "n@karlsoy.example")
            service = AlertService(notices_to_mail(), {"vakt-epost": email_sender, "vakt-sms": sms})
            delivered = await service.deliver(notification("vakt-sms"))
            await service.drain()
            await service.close()
            seen.extend(requests)
        assert delivered is False
        assert service.failures == [("vakt-sms", "sms vakt-sms: 2 of 2 numbers not reached: "
                                     "sms vakt-sms to +4791234567: status 503 after 2 attempts; "
                                     "sms vakt-sms to +4741234567: status 503 after 2 attempts")]

    inbox = smtp_inbox()
    port = inbox.port
    asyncio.run(scenario(port))
    assert [r.query["to"] for r in seen] == ["+4791234567", "+4791234567", "+4741234567", "+4741234567"]
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail["Subject"].startswith("[nettvakt] varslingskanal vakt-sms feiler siden ")
    content = mail.get_content()
    assert "sms vakt-sms to +4741234567: status 503 after 2 attempts" in content
    assert "[AKTIV] Vannvåg utilgjengelig" not in content
    assert "topp-hemmelig" not in content


def test_site_outage_end_to_end_to_smtp(smtp_inbox: Callable[..., Any], tmp_path: Path) -> None:
    """Engine on a fake clock, real delivery: exactly one mail when Vannvåg goes, one when it is back."""
    agents = [f"pc{i}" for i in range(1, 8)]

    async def scenario(port: int) -> None:
        built = InventoryBuilder(tmp_path).site("vannvag", "Teknisk utestasjon Vannvåg", uplink="sw-vannvag")
        built.device("sw-vannvag", name="Svitsj", host="10.9.0.2", hardware={"kind": "switch", "lifetime_years": 8})
        for agent in agents:
            built.agent(agent)
        inventory = built.email("vakt-epost", port).route("vakt-epost", severities=["critical"]).parse()
        rules = [AlertRule(id="silent", kind="agent_silent", severity="critical"), AlertRule(id="down", kind="device_down", severity="critical")]
        stored: list[Point] = []

        async def emit(points: list[Point]) -> None:
            stored.extend(points)

        service = AlertService.from_inventory(inventory, rules, [], emit=emit)
        assert isinstance(service.engine, AlertEngine)
        now = 1_764_486_840.0
        for step in range(240):  # 20 minutes of 5 s ticks: down from minute 2 to minute 10
            now += 5
            down = 120 <= step * 5 < 600
            points = [Point("availability", {"site": "vannvag", "host": a, "kind": "agent"},
                            {"up": 0.0 if down and step * 5 >= 210 else 1.0}, int(now * 1e9)) for a in agents]
            points.append(Point("availability", {"site": "vannvag", "device": "sw-vannvag", "kind": "device"},
                                {"up": 0.0 if down else 1.0}, int(now * 1e9)))
            service.observe(points)
            await service.tick(now)
        await service.drain()
        await service.close()
        assert [p.tags["state"] for p in stored if p.tags["rule"] == "site-unreachable"] == ["firing", "resolved"]

    inbox = smtp_inbox()
    port = inbox.port
    asyncio.run(scenario(port))
    subjects = [m["Subject"] for m in inbox.messages]
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith("[AKTIV] Teknisk utestasjon Vannvåg utilgjengelig siden ")
    assert subjects[0].endswith(", 7 maskiner bak den")
    assert subjects[1] == "[LØST] Teknisk utestasjon Vannvåg er tilgjengelig igjen"


# ---------------------------------------------------------------------- Teams
def test_teams_adaptive_card_for_a_site_outage() -> None:
    seen, error = deliver(lambda url: TeamsSender("teams", url), note(site_event(), cpu_event(summary=TRICKY)))
    assert error is None and len(seen) == 1
    req = seen[0]
    assert req.method == "POST" and req.headers["Content-Type"] == "application/json; charset=utf-8"
    assert TRICKY.encode("utf-8") in req.body.replace(b'\\"', b'"')  # UTF-8 as is, not \u00f8 escapes
    body = req.json()
    assert body["type"] == "message" and body["summary"] == "[nettvakt] 2 varsler"
    [attachment] = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    [container] = card["body"]
    assert container["style"] == "attention"  # the worst firing severity is critical
    items = container["items"]
    assert items[0] == {"type": "TextBlock", "text": "[nettvakt] 2 varsler", "weight": "Bolder", "size": "Medium",
                        "color": "attention", "wrap": True}
    texts = [i["text"] for i in items if i["type"] == "TextBlock"]
    assert "AKTIV (kritisk): Hansnes utilgjengelig siden 08:20, 7 maskiner bak den" in texts
    assert "Berørt: PC1, PC2, PC3, PC4, PC5, PC6, PC7" in texts
    assert f"AKTIV (advarsel): {TRICKY}" in texts
    facts = {f["title"]: f["value"] for f in items[-1]["facts"]}
    assert facts == {"Sted": "hansnes, radhus", "Siden": "30.11.2026 08:10 CET", "Berørte maskiner": "7"}


def test_teams_resolved_is_green_and_english_by_setting() -> None:
    seen, error = deliver(lambda url: TeamsSender("teams", url, locale=Locale("en", "UTC")),
                          note(site_event("resolved"), title="[RESOLVED] Hansnes er tilgjengelig igjen"))
    assert error is None
    container = seen[0].json()["attachments"][0]["content"]["body"][0]
    assert container["style"] == "good"
    texts = [i["text"] for i in container["items"] if i["type"] == "TextBlock"]
    assert "RESOLVED (critical): Hansnes er tilgjengelig igjen" in texts
    assert not any(t.startswith("Affected") for t in texts)  # a resolved site lists nobody
    facts = {f["title"]: f["value"] for f in container["items"][-1]["facts"]}
    assert facts == {"Site": "hansnes", "Since": "30.11.2026 07:20 UTC", "Machines affected": "7"}


# ---------------------------------------------------------------------- Slack
def test_slack_text_fallback_and_blocks() -> None:
    tricky = "Ruter <gw> & svitsj på Vannøya"
    seen, error = deliver(lambda url: SlackSender("slack", url), note(site_event(), cpu_event(summary=tricky)))
    assert error is None and len(seen) == 1
    body = seen[0].json()
    assert body["text"] == "[nettvakt] 2 varsler"
    header, section, context = body["blocks"]
    assert header == {"type": "header", "text": {"type": "plain_text", "text": ":red_circle: [nettvakt] 2 varsler", "emoji": True}}
    assert section["type"] == "section" and section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].splitlines() == [
        ":red_circle: *AKTIV* kritisk: Hansnes utilgjengelig siden 08:20, 7 maskiner bak den",
        "    _Berørt: PC1, PC2, PC3, PC4, PC5, PC6, PC7_",
        ":large_orange_circle: *AKTIV* advarsel: Ruter &lt;gw&gt; &amp; svitsj på Vannøya",
    ]
    assert context["elements"][0]["text"] == "*Sted:* hansnes, radhus  ·  *Siden:* 30.11.2026 08:10 CET  ·  *Berørte maskiner:* 7"


def test_slack_header_kept_within_slack_limit() -> None:
    long_title = "[AKTIV] " + "Teknisk utestasjon Vannvåg " * 10
    seen, error = deliver(lambda url: SlackSender("slack", url), note(site_event("resolved"), title=long_title))
    assert error is None
    header = seen[0].json()["blocks"][0]["text"]["text"]
    assert header.startswith(":white_check_mark: [AKTIV] Teknisk") and header.endswith("...") and len(header) <= 150


# ---------------------------------------------------------------------- retry, shared by the HTTP kinds
def test_retried_after_server_errors_then_delivered() -> None:
    seen, error = deliver(lambda url: TeamsSender("teams", url, backoff_s=0.01), note(site_event()), answers=[500, 503])
    assert error is None
    assert len(seen) == 3 and seen[0].body == seen[2].body


def test_retried_after_a_timeout_then_delivered() -> None:
    seen, error = deliver(lambda url: SlackSender("slack", url, timeout_s=0.5, backoff_s=0.01), note(site_event()),
                          answers=[STALL])
    assert error is None and len(seen) == 2


def test_gives_up_after_the_configured_attempts() -> None:
    seen, error = deliver(lambda url: SlackSender("slack", url, attempts=3, backoff_s=0.01), note(site_event()),
                          answers=[500, 502, 503, 200])
    assert isinstance(error, ChannelError)
    assert str(error) == "slack slack: status 503 after 3 attempts"
    assert len(seen) == 3


@pytest.mark.parametrize("status", [400, 403, 404])
def test_client_errors_are_not_retried(status: int) -> None:
    seen, error = deliver(lambda url: TeamsSender("teams", url, backoff_s=0.01), note(site_event()), answers=[status])
    assert str(error) == f"teams teams: status {status}"
    assert len(seen) == 1


def test_too_many_requests_is_retried() -> None:
    seen, error = deliver(lambda url: TeamsSender("teams", url, backoff_s=0.01), note(site_event()), answers=[429])
    assert error is None and len(seen) == 2


# ---------------------------------------------------------------------- SMS
NUMBERS = ["+4791234567", "+4741234567", "+4799999999"]


def test_sms_json_body_one_request_per_number_with_credentials() -> None:
    def make(url: str) -> SmsSender:
        return SmsSender(
            "sms", url + "?key={token}", list(NUMBERS),
            body={"from": "{sender}", "to": ["{to}"], "text": "{message}", "flash": False}, body_format="json",
            headers={"Accept": "application/json", "X-Api-Key": "{token}"},
            sender="Karlsoy", token="t+k&n=1", username="karlsøy", password="pass:ord",
        )

    seen, error = deliver(make, note(cpu_event(summary=TRICKY)), path="/sms/send")
    assert error is None
    assert len(seen) == 3
    assert [r.json()["to"] for r in seen] == [[n] for n in NUMBERS]
    for req in seen:
        assert req.method == "POST" and req.path == "/sms/send"
        assert req.query["key"] == "t+k&n=1"  # URL-encoded: survives "+", "&" and "="
        assert req.headers["Content-Type"] == "application/json; charset=utf-8"
        assert req.headers["Accept"] == "application/json" and req.headers["X-Api-Key"] == "t+k&n=1"
        assert base64.b64decode(req.headers["Authorization"].removeprefix("Basic ")).decode() == "karlsøy:pass:ord"
        assert req.json() == {"from": "Karlsoy", "to": [req.json()["to"][0]], "text": TRICKY, "flash": False}


def test_sms_form_template_encodes_norwegian_letters_and_separators() -> None:
    def make(url: str) -> SmsSender:
        return SmsSender("sms", url, NUMBERS[:2], body="to={to}&text={message}&from={sender}&lang=nb", sender="Karlsøy")

    seen, error = deliver(make, note(cpu_event(summary=TRICKY)))
    assert error is None and len(seen) == 2
    for req, number in zip(seen, NUMBERS):
        assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
        form = urllib.parse.parse_qsl(req.body.decode("ascii"), strict_parsing=True)
        assert dict(form) == {"to": number, "text": TRICKY, "from": "Karlsøy", "lang": "nb"}


def test_sms_form_table_and_get_with_url_template() -> None:
    def by_table(url: str) -> SmsSender:
        return SmsSender("sms", url, NUMBERS[:1], body={"to": "{to}", "msg": "{message}"})

    seen, error = deliver(by_table, note(cpu_event(summary=TRICKY)))
    assert error is None
    assert seen[0].body.decode("ascii").startswith("to=%2B4791234567&msg=Sj%C3%B8+%26+fj%C3%A6ra")

    def by_get(url: str) -> SmsSender:
        return SmsSender("sms", url + "?user=karlsoy&to={to}&msg={message}&from={sender}", NUMBERS[:2], method="GET",
                         sender="Karlsøy IT")

    seen, error = deliver(by_get, note(cpu_event(summary=TRICKY)))
    assert error is None and [r.method for r in seen] == ["GET", "GET"]
    assert [dict(r.query) for r in seen] == [
        {"user": "karlsoy", "to": n, "msg": TRICKY, "from": "Karlsøy IT"} for n in NUMBERS[:2]
    ]
    assert all(r.body == b"" for r in seen)


def test_sms_message_shortened_site_alert_first() -> None:
    many = note(cpu_event("srv1", "CPU på srv1 over 90 %"), cpu_event("srv2", "CPU på srv2 over 90 %"),
                site_event(), cpu_event("srv3", "Disk på srv3 over 95 %"),
                site_event("firing", "vannvag", "Teknisk utestasjon Vannvåg"))

    def make(url: str) -> SmsSender:
        return SmsSender("sms", url, NUMBERS[:1], body={"text": "{message}"}, body_format="json")

    seen, error = deliver(make, many)
    assert error is None
    text = seen[0].json()["text"]
    assert text == (
        "Hansnes utilgjengelig siden 08:20, 7 maskiner bak den; "
        "Teknisk utestasjon Vannvåg utilgjengelig siden 08:20, 7 maskiner bak den; CPU på srv1 over 90 % (+2)"
    )
    assert len(text) == 155


def test_sms_text_rules() -> None:
    nb = Locale()
    assert sms_text(note(site_event()), nb, 160) == "Hansnes utilgjengelig siden 08:20, 7 maskiner bak den"
    assert sms_text(note(site_event("resolved")), nb, 160) == "LØST: Hansnes er tilgjengelig igjen"
    assert sms_text(note(site_event("resolved")), Locale("en"), 160) == "RESOLVED: Hansnes er tilgjengelig igjen"
    # One alert too long: cut at a word, three dots (GSM 7-bit; "…" would halve what one SMS holds).
    cut = sms_text(note(site_event()), nb, 40)
    assert cut == "Hansnes utilgjengelig siden 08:20, 7..." and len(cut) <= 40
    two = sms_text(note(site_event(), cpu_event()), nb, 60)
    assert two == "Hansnes utilgjengelig siden 08:20, 7 maskiner bak den (+1)"
    # No events (a failure report): title and body on one line.
    bare = Notification("sms", "[nettvakt] kanal feiler", "webhook x: status 500\n\nmer tekst\n", (), SINCE)
    assert sms_text(bare, nb, 160) == "[nettvakt] kanal feiler: webhook x: status 500 mer tekst"


def test_sms_one_refusing_number_does_not_stop_the_others() -> None:
    def make(url: str) -> SmsSender:
        return SmsSender("sms", url + "?key={token}", NUMBERS, body={"to": "{to}", "text": "{message}"},
                         token="topp-hemmelig", backoff_s=0.01)

    seen, error = deliver(make, note(site_event()), answers=[200, 400, 200])
    assert len(seen) == 3  # the 400 is not retried; the third number still gets its message
    assert str(error) == "sms sms: 1 of 3 numbers not reached: sms sms to +4741234567: status 400"
    assert "topp-hemmelig" not in str(error)


def test_sms_gateway_down_gives_up_without_leaking_the_token() -> None:
    dead_port = free_port()  # nothing listens here: a connection error on every attempt

    def make(url: str) -> SmsSender:
        return SmsSender("sms", f"http://127.0.0.1:{dead_port}/send?key={{token}}", NUMBERS[:1], token="topp-hemmelig",
                         attempts=2, backoff_s=0.01)

    seen, error = deliver(make, note(site_event()))
    assert seen == []
    assert str(error).startswith("sms sms: 1 of 1 numbers not reached: sms sms to +4791234567: ClientConnectorError")
    assert str(error).endswith("after 2 attempts") and "topp-hemmelig" not in str(error)


# ---------------------------------------------------------------------- inventory
GOOD = """
[[channel]]
id = "vakt-teams"
kind = "teams"
url = "env:NETTVAKT_TEAMS_URL"

[[channel]]
id = "vakt-slack"
kind = "slack"
url = "https://hooks.slack.example/services/T0/B0/x"
attempts = 2
backoff_s = 0.5

[[channel]]
id = "vakt-sms"
kind = "sms"
url = "https://sms.example/api/send"
to = ["+4791234567", "+4741234567"]
sender = "Karlsoy"
sms_username = "karlsoy"
sms_password = "file:sms.pw"
sms_token = "env:NETTVAKT_SMS_KEY"
sms_headers = { Authorization = "Bearer {token}" }
sms_body_format = "json"
sms_body = { from = "{sender}", to = "{to}", text = "{message}" }
sms_max_length = 140
"""


def test_inventory_builds_each_new_channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text(GOOD, encoding="utf-8")
    (tmp_path / "sms.pw").write_text("pass:ord\n", encoding="utf-8")
    monkeypatch.setenv("NETTVAKT_TEAMS_URL", "https://teams.example/workflows/abc")
    monkeypatch.setenv("NETTVAKT_SMS_KEY", "nøkkel")
    inventory = load_inventory(inv)
    assert {path for path, _ in inventory.secret_refs()} == {"channel[0].url", "channel[2].sms_password", "channel[2].sms_token"}
    assert inventory.unresolved_secrets() == []
    senders, problems = build_senders(list(inventory.channel), inventory.secret, Locale("en"))
    assert problems == []
    teams, slack, sms = senders["vakt-teams"], senders["vakt-slack"], senders["vakt-sms"]
    assert isinstance(teams, TeamsSender) and teams.url == "https://teams.example/workflows/abc" and teams.locale.language == "en"
    assert isinstance(slack, SlackSender) and (slack.attempts, slack.backoff_s, slack.timeout_s) == (2, 0.5, 10.0)
    assert isinstance(sms, SmsSender)
    assert (sms.password, sms.token, sms.max_length, sms.to) == ("pass:ord", "nøkkel", 140, ["+4791234567", "+4741234567"])
    assert sms.requests(note(site_event()))[0][3] == {"Authorization": "Bearer nøkkel", "Content-Type": "application/json; charset=utf-8"}


def test_unset_secret_is_a_channel_problem_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inv = tmp_path / "inventory.toml"
    inv.write_text(GOOD, encoding="utf-8")
    monkeypatch.delenv("NETTVAKT_TEAMS_URL", raising=False)
    monkeypatch.setenv("NETTVAKT_SMS_KEY", "x")
    (tmp_path / "sms.pw").write_text("pw", encoding="utf-8")
    inventory = load_inventory(inv)
    senders, problems = build_senders(list(inventory.channel), inventory.secret)
    assert set(senders) == {"vakt-slack", "vakt-sms"}
    assert problems == ["channel[0] (vakt-teams): env:NETTVAKT_TEAMS_URL: environment variable NETTVAKT_TEAMS_URL is not set"]


SMS = 'id = "sms"\nkind = "sms"\nurl = "https://sms.example/send"\nto = ["+4791234567"]\n'
BAD_CHANNELS = [
    ('id = "t"\nkind = "teams"\n', "channel[1]: a teams channel needs `url`"),
    ('id = "s"\nkind = "slack"\nurl = "hooks.slack.com/x"\n',
     "channel[1].url: 'hooks.slack.com/x' is not an http:// or https:// URL or a secret reference (env:NAME, file:PATH)"),
    ('id = "s"\nkind = "slack"\nurl = "https://x.example/"\nto = ["a@b.example"]\n',
     "channel[1].to: does not apply to a slack channel (only to email and sms channels)"),
    ('id = "t"\nkind = "teams"\nurl = "https://x.example/"\nsecret = "env:HOOK_KEY"\n',
     "channel[1].secret: does not apply to a teams channel (only to webhook channels)"),
    ('id = "t"\nkind = "tems"\nurl = "https://x.example/"\n',
     "channel[1].kind: 'tems' is not one of 'email', 'webhook', 'teams', 'slack' or 'sms'; did you mean 'teams'?"),
    ('id = "t"\nurl = "https://x.example/"\n',
     "channel[1].kind: required key is missing (one of 'email', 'webhook', 'teams', 'slack' or 'sms')"),
    ('id = "e"\nkind = "email"\n', "channel[1]: an email channel needs `to` and `smtp_host`"),
    ('id = "e"\nkind = "email"\nto = []\nsmtp_host = "127.0.0.1"\n', "channel[1].to: needs at least one address"),
    ('id = "sms"\nkind = "sms"\n', "channel[1]: an sms channel needs `url` and `to`"),
    ('id = "sms"\nkind = "sms"\nurl = "https://sms.example/send"\n', "channel[1]: an sms channel needs `to`"),
    ('id = "sms"\nkind = "sms"\nurl = "https://sms.example/send"\nto = ["+4791234567", "91234567"]\n',
     "channel[1].to: '91234567' (entry 1) is not an E.164 number (+, country code and number, digits only, e.g. +4791234567)"),
    (SMS + 'sms_body = "to={to}&text={melding}"\n',
     "channel[1].sms_body: template uses unknown variable(s) melding; known: message, sender, title, to, token"),
    (SMS + 'sms_body_format = "json"\nsms_body = { data = { text = "{msg}" } }\n',
     "channel[1].sms_body: data.text: template uses unknown variable(s) msg; known: message, sender, title, to, token"),
    ('id = "sms"\nkind = "sms"\nto = ["+4791234567"]\nurl = "https://sms.example/send?to={to}&pw={password}"\n',
     "channel[1].url: template uses unknown variable(s) password; known: message, sender, title, to, token"),
    (SMS + 'sms_method = "GET"\nsms_body = "to={to}"\n',
     "channel[1]: sms_body is not sent with sms_method = 'GET': put the variables in the `url` template"),
    (SMS + 'sms_password = "hemmelig"\nsms_username = "u"\n',
     "channel[1].sms_password: secrets are never written inline: use env:NAME or file:PATH"),
    (SMS + 'sms_token = "abc123"\n', "channel[1].sms_token: secrets are never written inline: use env:NAME or file:PATH"),
    (SMS + 'sms_headers = { Authorization = "Bearer {api_key}" }\n',
     "channel[1].sms_headers: Authorization: template uses unknown variable(s) api_key; known: message, sender, title, to, token"),
    (SMS + 'sms_username = "u"\n', "channel[1]: sms_username and sms_password go together (HTTP basic authentication)"),
    (SMS + 'sms_body = { to = "{to}", n = 1 }\n',
     "channel[1].sms_body: n: a form field is text; nested values need sms_body_format = 'json'"),
    (SMS + 'sms_max_lenght = 70\n', "channel[1].sms_max_lenght: unknown key; did you mean 'sms_max_length'?"),
    (SMS + 'sms_headers = { X-Api-Key = "abc123" }\n',
     'channel[1].sms_headers: X-Api-Key: credentials are not written inline: set sms_token = "env:NAME" (or file:PATH) and write {token} here'),
    (SMS + 'sms_body = "key={token}&to={to}"\n', "channel[1]: the templates use {token} but `sms_token` is not set"),
    (SMS + 'sms_body_format = "json"\nsms_body = \'{"to": "{to}"}\'\n',
     'channel[1].sms_body: template uses unknown variable(s) "to"; known: message, sender, title, to, token '
     '(a JSON body is easiest written as a TOML table: sms_body = { text = "{message}" })'),
]


@pytest.mark.parametrize(("channel", "message"), BAD_CHANNELS, ids=[m.split(": ", 1)[1][:40] for _, m in BAD_CHANNELS])
def test_bad_channel_names_the_toml_path(tmp_path: Path, channel: str, message: str) -> None:
    # channel[0] is a good one, so the bad one's index shows in the path.
    inv = tmp_path / "inventory.toml"
    inv.write_text('[[channel]]\nid = "ok"\nkind = "webhook"\nurl = "https://x.example/"\n\n[[channel]]\n' + channel,
                   encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(inv)
    # As printed: the channel by its id, then the key within it (collector/problems.py).
    ident = re.search(r'id = "([^"]+)"', channel).group(1)  # type: ignore[union-attr]
    path, _, text = message.partition(": ")
    key = path[len("channel[1]"):].lstrip(".")
    expected = f"channel {ident!r}: {key}: {text}" if key else f"channel {ident!r}: {text}"
    assert info.value.problems == [expected]
    assert re.fullmatch(rf"{re.escape(str(inv))}:\d+: {re.escape(expected)}", str(info.value))


def test_sms_template_failing_at_run_time_is_a_channel_error() -> None:
    # `nettvakt check` knows the names, not whether a format spec suits a text: it must not crash delivery.
    sender = SmsSender("sms", f"http://127.0.0.1:{free_port()}/send?m={{message:d}}", NUMBERS[:1])
    with pytest.raises(ChannelError, match=r"^sms sms: request template: Unknown format code 'd'"):
        asyncio.run(sender.send(note(site_event())))


def test_chat_formats_show_the_body_when_there_are_no_alerts() -> None:
    bare = Notification("vakt", "[nettvakt] test", "Første linje\nAndre linje & mer\n", (), SINCE)
    card = TeamsSender("teams", "http://unused.invalid/").payload(bare)["attachments"][0]["content"]["body"][0]
    assert card["style"] == "good" and card["items"][1]["text"] == "Første linje\nAndre linje & mer\n"
    blocks = SlackSender("slack", "http://unused.invalid/").payload(bare)["blocks"]
    assert blocks[1]["text"]["text"] == "Første linje\nAndre linje &amp; mer\n"


def test_mail_server_down_each_phone_gets_the_alert_once_and_one_notice_and_managers_nothing(
    smtp_inbox: Callable[..., Any], tmp_path: Path
) -> None:
    """The on-call route sends mail and SMS; the mail server is down. Each phone gets each alert
    once, plus one notice that names the failing mail channel (not repeated for the next alert);
    the managers' channel, whose route takes no system notices, gets nothing."""
    managers = smtp_inbox()
    dead = free_port()  # the mail server that is down

    async def scenario() -> list[Seen]:
        async with receiver() as (requests, base):
            inventory = parse_inventory({
                "collector": {"data_dir": str(tmp_path / "data")},
                "site": [{"id": "radhus", "name": "Rådhuset"}, {"id": "hansnes", "name": "Hansnes"}],
                "device": [{"id": f"sw{i}", "name": f"Svitsj {i}", "site": site, "host": f"10.0.0.{i}",
                            "hardware": {"kind": "switch", "lifetime_years": 8}} for i, site in ((1, "radhus"), (2, "hansnes"))],
                "channel": [
                    {"id": "vakt-epost", "kind": "email", "to": ["vakt@karlsoy.example"], "smtp_host": "127.0.0.1",
                     "smtp_port": dead, "attempts": 1},
                    {"id": "vakt-sms", "kind": "sms", "url": base + "/send?to={to}", "to": ["+4791234567", "+4741234567"],
                     "sms_body": {"text": "{message}"}},
                    {"id": "ledelse", "kind": "email", "to": ["leder@karlsoy.example"], "smtp_host": "127.0.0.1", "smtp_port": managers.port},
                ],
                "route": [{"channels": ["vakt-epost", "vakt-sms"], "system_notices": True},
                          {"channels": ["ledelse"], "rules": ["lifecycle_digest"]}],
                "alert": [{"id": "device-down", "kind": "device_down", "severity": "critical"}],
            }, tmp_path / "inventory.toml")
            service = AlertService.from_inventory(inventory, group_wait_s=0)
            t0 = time.time()
            for i, site, t in ((1, "radhus", t0), (2, "hansnes", t0 + 600)):  # two outages ten minutes apart, mail down all along
                service.observe([Point("availability", {"site": site, "device": f"sw{i}", "kind": "device"}, {"up": 0.0}, int(t * 1e9))])
                await service.tick(t)
                await service.drain()
            await service.close()
            return requests

    requests = asyncio.run(scenario())
    texts: dict[str, list[str]] = {}
    for request in requests:
        texts.setdefault(request.query["to"], []).append(urllib.parse.parse_qs(request.body.decode())["text"][0])
    for phone in ("+4791234567", "+4741234567"):
        alerts = [t for t in texts[phone] if "svarer ikke" in t]
        notices = [t for t in texts[phone] if "vakt-epost" in t]
        assert len(alerts) == 2 and len(set(alerts)) == 2, texts[phone]  # each alert once
        assert len(notices) == 1 and "feiler siden" in notices[0], texts[phone]  # one notice, naming the mail channel
        assert len(texts[phone]) == 3
    assert managers.messages == []


def test_sms_names_the_biggest_site_first_when_it_must_shorten() -> None:
    """The town hall with five machines behind it is not the one hidden in "(+N)"."""
    small = AlertEvent("firing", "site-unreachable", "site_unreachable", "critical", "skole", "skole",  # type: ignore[arg-type]
                       "Skolen utilgjengelig siden 08:20, 1 maskin bak den", SINCE, ("PC1",))
    big = AlertEvent("firing", "site-unreachable", "site_unreachable", "critical", "radhus", "radhus",  # type: ignore[arg-type]
                     "Rådhuset utilgjengelig siden 08:20, 5 maskiner bak den", SINCE, tuple(f"PC{i}" for i in range(5)))
    text = sms_text(note(small, big, cpu_event()), Locale("nb"), 70)
    assert text.startswith("Rådhuset utilgjengelig siden 08:20, 5 maskiner bak den") and text.endswith("(+2)"), text
