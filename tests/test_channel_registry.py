"""A channel kind registered at test time is picked up everywhere, with no other edit.

The toy kind "toy" posts one line of plain text to a URL; its descriptor (settings model, sender,
help) lives only in this file. Registered for one test at a time
(`collector.alerting.channels.registered`), an inventory using it validates and a mistake in it
is named with its line, `nettvakt check` accepts it, and an alert routed to it reaches a real
HTTP receiver on loopback through the alert service. Afterwards the registry is as it was.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
from aiohttp import web

from agent.cli import main
from agent.points import Point
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
from collector.alerting.notification import Notification
from collector.alerting.service import AlertService
from collector.config import InventoryError, load_inventory, parse_inventory

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


def test_an_alert_routed_to_the_toy_channel_is_delivered_through_it(toy: ChannelKind[ToySettings], tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        received: list[str] = []

        async def hook(request: web.Request) -> web.Response:
            received.append(await request.text())
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_post("/hook", hook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        try:
            port = runner.addresses[0][1]
            inventory = parse_inventory({
                "collector": {"data_dir": str(tmp_path / "data")},
                "site": [{"id": "radhus", "name": "Rådhuset"}],
                "device": [{"id": "sw-radhus", "name": "Kjernesvitsj", "site": "radhus", "host": "10.0.0.2",
                            "hardware": {"kind": "switch", "lifetime_years": 8}}],
                "channel": [{"id": "vakt-toy", "kind": "toy", "url": f"http://127.0.0.1:{port}/hook", "prefix": "LEKE"}],
                "route": [{"channels": ["vakt-toy"]}],
                "alert": [{"id": "device-down", "kind": "device_down", "severity": "critical"}],
            }, tmp_path / "inventory.toml")
            service = AlertService.from_inventory(inventory, group_wait_s=0)
            assert isinstance(service.senders["vakt-toy"], ToySender)
            now = time.time()
            service.observe([Point("availability", {"site": "radhus", "device": "sw-radhus", "kind": "device"}, {"up": 0.0},
                                   int(now * 1e9))])
            await service.tick(now)
            await service.drain()
            await service.close()
            assert service.failures == []
        finally:
            await runner.cleanup()
        return received

    assert asyncio.run(scenario()) == ["LEKE: [AKTIV] Kjernesvitsj svarer ikke på SNMP"]


def test_the_docs_table_of_kinds_is_the_registry() -> None:
    """docs/alerting.md lists each kind with its help and the keys its model requires."""
    docs = (REPO / "docs" / "alerting.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \|.*\|$", docs.split("## Channels", 1)[1].split("###", 1)[0], re.M)
    assert rows == list(CHANNELS)
    for kind in CHANNELS.values():
        assert f"| `{kind.name}` | {kind.help} | {', '.join(f'`{key}`' for key in kind.needs)} |" in docs
