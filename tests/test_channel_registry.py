"""A channel kind registered at test time is picked up everywhere, with no other edit.

The toy kind "toy" posts one line of plain text to a URL; its descriptor (settings model, sender,
help) lives only in this file. Registered for one test at a time
(`collector.alerting.channels.registered`), an inventory using it validates and a mistake in it
is named with its line, `nettvakt check` accepts it, and an `[[alert]]` rule firing on an agent's
report to the real collector app reaches a real HTTP receiver on loopback through it, routed by
the `[[route]]` that names the rule. The status page shows no channels (nor failing channels: those
are notices to the routes with `system_notices`), so there is nothing there for a kind to be
missing from. Afterwards the registry is as it was.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import aiohttp
import pytest
from aiohttp import web

from agent.cli import main
from collector.alerting.channels import (
    CHANNELS,
    DEFAULT_LOCALE,
    ChannelKind,
    ChannelSettings,
    HttpDelivery,
    Locale,
    SecretResolver,
    registered,
)
from collector.alerting.context import AlertingOptions
from collector.alerting.notification import Notification
from collector.app import create_app
from collector.appkeys import ALERTS
from collector.config import InventoryError, load_inventory
from collector.localservers import wait_until_async
from inventories import InventoryBuilder
from serving import serving

REPO = Path(__file__).resolve().parents[1]


class ToySettings(ChannelSettings):
    kind: Literal["toy"]
    url: str
    prefix: str = "TOY"


@dataclass
class ToySender(HttpDelivery):
    """One line of text per notification, through the HTTP delivery the real kinds share."""

    id: str
    url: str = field(repr=False)
    prefix: str = "TOY"

    @classmethod
    def from_settings(cls, settings: ToySettings, secret: SecretResolver, locale: Locale = DEFAULT_LOCALE) -> "ToySender":
        return cls(id=settings.id, url=settings.url, prefix=settings.prefix, **settings.delivery())

    async def send(self, notification: Notification) -> None:
        await self.request(f"toy {self.id}", "POST", self.url, data=f"{self.prefix}: {notification.title}".encode(),
                           headers={"Content-Type": "text/plain; charset=utf-8"})


TOY = ChannelKind(name="toy", settings=ToySettings, sender=ToySender.from_settings, help="one line of text, POSTed")


@pytest.fixture
def toy() -> Iterator[ChannelKind[ToySettings]]:
    """The toy kind registered for this test; afterwards the registry is as before."""
    before = dict(CHANNELS)
    with registered(TOY):
        yield TOY
    assert dict(CHANNELS) == before


def toy_inventory(url: str = "http://127.0.0.1:9/hook", extra: str = "") -> str:
    return f"""
[[site]]
id = "radhus"
name = "Rådhuset"

[[channel]]
id = "vakt-toy"
kind = "toy"
url = "{url}"
prefix = "LEKE"
{extra}
[[route]]
channels = ["vakt-toy"]
"""


def line_of(text: str, key: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(f"{key} ="))


def test_the_registry_is_read_only_and_each_descriptor_names_its_model() -> None:
    with pytest.raises(TypeError):
        CHANNELS["toy"] = TOY  # type: ignore[index]
    with pytest.raises(ValueError, match="registered already"), registered(CHANNELS["email"]):
        pass
    assert set(CHANNELS) == {"email", "webhook", "teams", "slack", "sms"}
    # A descriptor whose model answers to another kind is refused where it is written, not found later.
    with pytest.raises(TypeError, match=r"ToySettings.kind must be Literal\['pager'\]"):
        ChannelKind(name="pager", settings=ToySettings, sender=ToySender.from_settings, help="")


def test_an_inventory_with_the_toy_kind_validates(toy: ChannelKind[ToySettings], tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(toy_inventory(), encoding="utf-8")
    [channel] = load_inventory(path, startup=True).channel
    assert isinstance(channel, ToySettings) and (channel.id, channel.url, channel.prefix) == ("vakt-toy", "http://127.0.0.1:9/hook", "LEKE")


def test_without_its_registry_line_the_toy_kind_is_unknown(tmp_path: Path) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(toy_inventory(), encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.lines() == [
        f"{path}:{line_of(toy_inventory(), 'kind')}: channel 'vakt-toy': kind: 'toy' is not one of 'email', 'webhook', 'teams', 'slack' or 'sms'"
    ]


@pytest.mark.parametrize(("extra", "key", "message"), [
    ('urll = "http://127.0.0.1:9/"\n', "urll", "urll: unknown key; did you mean 'url'?"),
    ('smtp_host = "127.0.0.1"\n', "smtp_host", "smtp_host: does not apply to a toy channel (only to email channels)"),
    ("attempts = 0\n", "attempts", "attempts: must be at least 1, got 0"),
])
def test_a_bad_key_in_a_toy_channel_is_named_with_its_line(
    toy: ChannelKind[ToySettings], tmp_path: Path, extra: str, key: str, message: str
) -> None:
    text = toy_inventory(extra=extra)
    path = tmp_path / "inventory.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.lines() == [f"{path}:{line_of(text, key)}: channel 'vakt-toy': {message}"]


def test_a_toy_channel_without_its_required_key_says_what_it_needs(toy: ChannelKind[ToySettings], tmp_path: Path) -> None:
    text = toy_inventory().replace('url = "http://127.0.0.1:9/hook"\n', "")
    path = tmp_path / "inventory.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    header = next(n for n, line in enumerate(text.splitlines(), 1) if line == "[[channel]]")
    assert info.value.lines() == [f"{path}:{header}: channel 'vakt-toy': a toy channel needs `url`"]


def test_check_accepts_the_toy_kind_and_names_its_mistakes(
    toy: ChannelKind[ToySettings], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "inventory.toml"
    path.write_text(toy_inventory(), encoding="utf-8")
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (1 sites, 0 devices, 0 agents, 0 probes, 1 channels)"
    text = toy_inventory(extra="prefiks = \"X\"\n")
    path.write_text(text, encoding="utf-8")
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(text, 'prefiks')}: channel 'vakt-toy': prefiks: unknown key; did you mean 'prefix'?" in err.splitlines(), err


def test_a_rule_routed_to_the_toy_channel_reaches_it_through_the_collector(toy: ChannelKind[ToySettings], tmp_path: Path) -> None:
    """An agent's report to the real collector app fires an `[[alert]]` rule; the `[[route]]` naming
    that rule sends it through the toy channel to a real HTTP receiver, and only there."""

    async def scenario() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        received: list[tuple[str, str]] = []

        async def hook(request: web.Request) -> web.Response:
            received.append((request.match_info["channel"], await request.text()))
            return web.Response(text="ok")

        receiver = web.Application()
        receiver.router.add_post("/hook/{channel}", hook)
        async with serving(receiver) as hooks:
            base = f"{hooks}/hook"
            inventory = (
                InventoryBuilder(tmp_path)
                .agent("radhus-srv", name="Server rådhus", interval_s=3600)
                .probe("web", "tcp", "192.0.2.2:443", sites=["radhus"])
                .channel("vakt-toy", "toy", url=f"{base}/vakt", prefix="LEKE")
                .channel("drift-toy", "toy", url=f"{base}/drift", prefix="DRIFT")
                .alert("web-down", "target_unreachable", severity="critical")
                .alert("web-slow", "probe_latency")
                .route("vakt-toy", rules=["web-down"])
                .route("drift-toy", rules=["web-slow"])
            )
            app = create_app(inventory.parse(), alerting=AlertingOptions(interval_s=0.05, engine_overrides={"group_wait_s": 0}))
            async with serving(app, shutdown_timeout=0.1) as url:
                alerts = app[ALERTS]
                assert isinstance(alerts.senders["vakt-toy"], ToySender) and isinstance(alerts.senders["drift-toy"], ToySender)
                point = {"measurement": "probe", "tags": {"kind": "tcp", "target": "web"}, "fields": {"up": 0.0, "reason": "timeout"},
                         "time": time.time_ns()}
                async with aiohttp.ClientSession(url) as http:
                    async with http.post("/api/v1/ingest", json={"agent": "radhus-srv", "seq": 1, "points": [point]},
                                         headers={"Authorization": f"Bearer {inventory.tokens['radhus-srv']}"}) as resp:
                        assert resp.status == 200, await resp.text()
                await wait_until_async(lambda: received, 10, "the alert at the toy channel's receiver")
                await alerts.drain()  # every message of that round is delivered or failed now
                failures = list(alerts.failures)
        return received, failures

    received, failures = asyncio.run(scenario())
    assert failures == []
    assert received == [("vakt", "LEKE: [AKTIV] web@radhus-srv svarer ikke")]  # drift-toy routes web-slow only


def test_the_docs_table_of_kinds_is_the_registry() -> None:
    """docs/alerting.md lists each kind with its help and the keys its model requires."""
    docs = (REPO / "docs" / "alerting.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|.*\|$", docs.split("## Channels", 1)[1].split("###", 1)[0], re.M)
    assert rows == list(CHANNELS)
    for kind in CHANNELS.values():
        assert f"| `{kind.name}` | {kind.help} | {', '.join(f'`{key}`' for key in kind.needs)} |" in docs
