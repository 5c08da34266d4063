"""Channels against real receivers: aiosmtpd (plain, and STARTTLS with AUTH) and an aiohttp webhook server."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import typing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.points import Point
from collector.alerting.channels import CHANNELS, SIGNATURE_HEADER, ChannelError, EmailSender, WebhookSender, sign, verify
from collector.alerting.config import AlertRule
from collector.alerting.engine import AlertEngine, AlertEvent, Notification
from collector.alerting.service import AlertService
from collector.config import Channel, parse_inventory
from collector.services import free_port

SECRET = "hemmelig-nøkkel"


def notification(channel: str = "vakt", title: str = "[AKTIV] Vannvåg utilgjengelig") -> Notification:
    event = AlertEvent("firing", "site-unreachable", "site_unreachable", "critical", "vannvag", "vannvag", title, 1.0, ("PC1",))
    return Notification(channel, title, "AKTIV  kritisk  Vannvåg utilgjengelig\n", (event,), 1_764_486_840.0)


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))
        return "250 OK"


@contextmanager
def smtp_server(**kwargs: Any) -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context trusting only that server) for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


def test_email_reaches_a_real_smtp_server() -> None:
    with smtp_server() as (inbox, port):
        sender = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example", "leder@karlsoy.example"], "nettvakt@karlsoy.example")
        asyncio.run(sender.send(notification()))
    assert len(inbox.messages) == 1
    msg = inbox.messages[0]
    assert msg["Subject"] == "[AKTIV] Vannvåg utilgjengelig"
    assert "Vannvåg utilgjengelig" in msg.get_content()
    assert inbox.envelopes == [("nettvakt@karlsoy.example", ["vakt@karlsoy.example", "leder@karlsoy.example"])]


def test_email_starttls_and_login(tmp_path: Path) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    passwords: list[str] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        password = auth_data.password.decode() if isinstance(auth_data.password, bytes) else auth_data.password
        passwords.append(password)
        # handled=False: aiosmtpd sends the 235/535 reply itself.
        return AuthResult(success=password == "riktig", handled=False)

    with smtp_server(tls_context=server_tls, require_starttls=True, authenticator=authenticator, auth_required=True) as (inbox, port):
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


def test_email_refuses_clear_text_when_starttls_always() -> None:
    with smtp_server() as (inbox, port):
        sender = EmailSender("vakt", "127.0.0.1", port, ["vakt@karlsoy.example"], "n@k.example", starttls="always", attempts=1)
        with pytest.raises(ChannelError, match="does not offer STARTTLS"):
            asyncio.run(sender.send(notification()))
    assert inbox.messages == []


@asynccontextmanager
async def webhook_server(statuses: list[int]) -> AsyncIterator[tuple[list[dict[str, Any]], str]]:
    """Receiver that checks the signature; answers `statuses` in turn, then 200."""
    received: list[dict[str, Any]] = []
    answers = iter(statuses)

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, body, request.headers.get(SIGNATURE_HEADER)):
            return web.Response(status=401, text="bad signature")
        status = next(answers, 200)
        if status == 200:
            received.append(await request.json())
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield received, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def test_webhook_signed_and_retried_after_server_errors() -> None:
    async def scenario() -> list[dict[str, Any]]:
        async with webhook_server([503, 502]) as (received, url):
            sender = WebhookSender("hook", url, SECRET, backoff_s=0.01)
            try:
                await sender.send(notification("hook"))
            finally:
                await sender.close()
            return received

    received = asyncio.run(scenario())
    assert len(received) == 1
    body = received[0]
    assert body["title"] == "[AKTIV] Vannvåg utilgjengelig"
    assert body["alerts"][0] == {
        "event": "firing", "rule": "site-unreachable", "kind": "site_unreachable", "severity": "critical",
        "site": "vannvag", "subject": "vannvag", "summary": "[AKTIV] Vannvåg utilgjengelig", "since": 1.0, "affected": ["PC1"],
    }


def test_webhook_wrong_secret_is_refused_without_retry() -> None:
    async def scenario() -> None:
        async with webhook_server([]) as (received, url):
            sender = WebhookSender("hook", url, "en-annen-nøkkel", backoff_s=0.01)
            try:
                with pytest.raises(ChannelError, match="status 401"):
                    await sender.send(notification("hook"))
            finally:
                await sender.close()
            assert received == []

    asyncio.run(scenario())


def test_channel_registry_matches_the_inventory_kinds() -> None:
    # collector/config.py cannot import the registry (it would import itself back): one test keeps them equal.
    assert set(CHANNELS) == set(typing.get_args(Channel.model_fields["kind"].annotation))


def test_signature_is_hmac_sha256_of_the_body() -> None:
    # Known answer computed independently: printf '{}' | openssl dgst -sha256 -hmac key
    assert sign("key", b"{}") == "sha256=a777724d943eb48dc69bca8a4a6d57a04db3f9ec7e1de4e581e860265bdf3032"
    assert verify("key", b"{}", sign("key", b"{}"))
    assert not verify("key", b"{ }", sign("key", b"{}"))
    assert not verify("key", b"{}", None)


def test_failing_channel_is_reported_through_the_others() -> None:
    dead_port = free_port()  # nothing listens here

    async def scenario(port: int) -> None:
        email_sender = EmailSender("vakt-epost", "127.0.0.1", port, ["vakt@karlsoy.example"], "n@karlsoy.example")
        hook = WebhookSender("vakt-webhook", f"http://127.0.0.1:{dead_port}/hook", SECRET, attempts=2, backoff_s=0.01)
        service = AlertService(AlertEngine(parse_inventory({}), []), {"vakt-epost": email_sender, "vakt-webhook": hook})
        delivered = await service.deliver(notification("vakt-webhook"))
        await service.drain()
        await service.close()
        assert delivered is False
        assert service.failures[0][0] == "vakt-webhook"

    with smtp_server() as (inbox, port):
        asyncio.run(scenario(port))
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["Subject"] == "[nettvakt] varslingskanal vakt-webhook feiler / alert channel failing"
    assert "[AKTIV] Vannvåg utilgjengelig" in inbox.messages[0].get_content()


def test_site_outage_end_to_end_to_smtp(tmp_path: Path) -> None:
    """Engine on a fake clock, real delivery: exactly one mail when Vannvåg goes, one when it is back."""
    agents = [f"pc{i}" for i in range(1, 8)]

    async def scenario(port: int) -> None:
        inventory = parse_inventory({
            "collector": {"data_dir": str(tmp_path / "data")},
            "site": [{"id": "vannvag", "name": "Teknisk utestasjon Vannvåg", "uplink": "sw-vannvag"}],
            "device": [{"id": "sw-vannvag", "name": "Svitsj", "site": "vannvag", "host": "10.9.0.2",
                        "hardware": {"kind": "switch", "lifetime_years": 8}}],
            "agent": [{"id": a, "name": a, "site": "vannvag", "token_sha256": f"{i:064x}"} for i, a in enumerate(agents, 1)],
            "channel": [{"id": "vakt-epost", "kind": "email", "to": ["vakt@karlsoy.example"], "smtp_host": "127.0.0.1", "smtp_port": port}],
            "route": [{"channels": ["vakt-epost"], "severities": ["critical"]}],
        })
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

    with smtp_server() as (inbox, port):
        asyncio.run(scenario(port))
    subjects = [m["Subject"] for m in inbox.messages]
    assert len(subjects) == 2, subjects
    assert subjects[0].startswith("[AKTIV] Teknisk utestasjon Vannvåg utilgjengelig siden ")
    assert subjects[0].endswith(", 7 maskiner bak den")
    assert subjects[1] == "[LØST] Teknisk utestasjon Vannvåg er tilgjengelig igjen"
