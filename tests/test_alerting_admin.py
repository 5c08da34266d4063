"""`nettvakt alerts`, `nettvakt silence`, the alerts/silences HTTP API, one-off events (`announce`)
and alerting following an inventory reload — against a real SMTP server and the real collector app."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from agent.cli import main as nettvakt
from agent.points import Point
from collector.alerting.context import AlertingOptions
from collector.alerting.history import HISTORY_FILE, AlertHistory
from collector.alerting.service import AlertService
from collector.alerting.silences import SILENCES_FILE, SilenceStore
from collector.app import create_app
from collector.appkeys import ALERTS, RELOADER
from collector.config import load_inventory
from collector.localservers import free_port, wait_until_async
from collector.service import token_hash
from inventories import InventoryBuilder

ADMIN_TOKEN = "karlsoy-admin-token-for-tests"


@pytest.fixture
def smtp(smtp_inbox: Callable[..., Any]) -> tuple[Any, int]:
    inbox = smtp_inbox()
    return inbox, inbox.port


def admin_inventory(folder: Path, smtp_port: int, *, admin: bool = True) -> InventoryBuilder:
    """Kjernesvitsj at radhus and Ruter Hansnes at hansnes; device-down mailed to vakt at once; the admin token's hash."""
    inv = InventoryBuilder(folder).storage("local").alerting(group_wait_s=0)
    if admin:
        inv.collector(admin_token_sha256=token_hash(ADMIN_TOKEN))
    return (
        inv.site("radhus")
        .site("hansnes", "Teknisk utestasjon Hansnes")
        .device("sw-radhus", name="Kjernesvitsj", host="10.0.0.2", hardware={"kind": "switch", "lifetime_years": 8})
        .device("rtr-hansnes", name="Ruter Hansnes", site="hansnes", host="10.0.3.1", hardware={"kind": "router", "lifetime_years": 8})
        .email("vakt", smtp_port)
        .route("vakt")
        .alert("device-down", "device_down", severity="critical")
    )


def write_inventory(folder: Path, smtp_port: int, *, admin: bool = True) -> Path:
    return admin_inventory(folder, smtp_port, admin=admin).write()


def down(device: str, site: str) -> Point:
    return Point("availability", {"site": site, "device": device, "kind": "device"}, {"up": 0.0})


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = nettvakt(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_alerts_lists_firing_and_history_and_silences_mute(tmp_path: Path, smtp: Any, capsys: pytest.CaptureFixture[str]) -> None:
    inbox, port = smtp
    path = write_inventory(tmp_path, port)
    inventory = load_inventory(path)

    async def fire() -> None:
        service = AlertService.from_inventory(inventory)
        service.observe([down("sw-radhus", "radhus")])
        await service.tick()
        await service.drain()
        await service.close()

    asyncio.run(fire())
    assert inbox.subjects == ["[AKTIV] Kjernesvitsj svarer ikke på SNMP"]

    code, out, _ = run_cli(capsys, "alerts", "--inventory", str(path), "--json")
    assert code == 0
    listing = json.loads(out)
    assert [(a["rule"], a["subject"], a["severity"]) for a in listing["firing"]] == [("device-down", "sw-radhus", "critical")]
    assert [(e["rule"], e["state"], e["summary"]) for e in listing["recent"]] == [
        ("device-down", "firing", "Kjernesvitsj svarer ikke på SNMP")
    ]
    code, out, _ = run_cli(capsys, "alerts", "--inventory", str(path))
    assert code == 0 and "Firing (1):" in out and "sw-radhus" in out and "State changes in the last 1d (1):" in out

    # A silence set with the CLI is obeyed by a running engine (it re-reads the file).
    code, out, err = run_cli(capsys, "silence", "add", "--inventory", str(path), "--site", "hansnes", "--for", "2h",
                             "--comment", "bytter ruter", "--author", "ola", "--json")
    assert code == 0, err
    silence = json.loads(out)
    assert silence["sites"] == ["hansnes"] and silence["until"] - time.time() == pytest.approx(7200, abs=60)

    async def hansnes_down() -> int:
        service = AlertService.from_inventory(inventory)
        service.observe([down("rtr-hansnes", "hansnes")])
        await service.tick()
        await service.drain()
        firing = service.engine.firing(time.time())
        await service.close()
        assert [a["muted"] for a in firing if a["subject"] == "rtr-hansnes"] == [f"silence:{silence['id']}"]
        return len(firing)

    assert asyncio.run(hansnes_down()) == 2
    assert len(inbox.messages) == 1  # nobody told of the silenced router

    code, out, _ = run_cli(capsys, "silence", "list", "--inventory", str(path))
    assert code == 0 and silence["id"] in out and "bytter ruter" in out and "by ola" in out
    code, out, _ = run_cli(capsys, "silence", "remove", silence["id"], "--inventory", str(path))
    assert code == 0
    assert SilenceStore.load(inventory.data_dir() / SILENCES_FILE).active(time.time()) == []
    code, _, err = run_cli(capsys, "silence", "remove", silence["id"], "--inventory", str(path))
    assert code == 2 and "no active silence" in err  # an id that names nothing: a usage error


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--site", "skole", "--for", "1h"], "site 'skole': no such site (known: hansnes, radhus)"),
        (["--rule", "disk-ful", "--for", "1h"], "rule 'disk-ful': no alert rule or rule kind"),
        (["--subject", "sw-skole/Gi0/1", "--for", "1h"], "no agent, device, probe or site 'sw-skole'"),
        (["--site", "radhus", "--until", "2020-01-01T10:00"], "a silence needs an expiry in the future"),
        (["--site", "radhus", "--until", "neste fredag"], "is not an ISO time"),
        (["--for", "1h"], "at least one of sites, rules or subjects"),
    ],
)
def test_silence_add_refuses_what_would_silence_nothing_or_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    path = write_inventory(tmp_path, free_port())
    code, _, err = run_cli(capsys, "silence", "add", "--inventory", str(path), *argv)
    assert code == 2
    assert message in err
    assert not (tmp_path / "data" / SILENCES_FILE).exists()


def test_announce_routes_one_off_events_and_keeps_them_in_history(tmp_path: Path, smtp: Any) -> None:
    inbox, port = smtp
    inventory = (
        admin_inventory(tmp_path, port)
        .email("drift", port, to=["drift@karlsoy.example"])
        .route("drift", rules=["config_change"], sites=["hansnes"])
        .load()
    )

    async def scenario() -> tuple[int, int, int]:
        service = AlertService.from_inventory(inventory)
        radhus = await service.announce(rule="config_change", site="radhus", subject="sw-radhus", severity="info",
                                        title="Konfigurasjon endret: Kjernesvitsj", body="+ vlan 30\n")
        hansnes = await service.announce(rule="config_change", site="hansnes", subject="rtr-hansnes", severity="info",
                                         title="Konfigurasjon endret: Ruter Hansnes", body="- ip route 0.0.0.0 0.0.0.0 10.0.3.254\n")
        await service.drain()
        service.engine.silences.add(time.time(), time.time() + 600, subjects=["sw-radhus"])
        silenced = await service.announce(rule="config_change", site="radhus", subject="sw-radhus", severity="info",
                                          title="Konfigurasjon endret igjen", body="")
        await service.drain()
        await service.close()
        return radhus, hansnes, silenced

    assert asyncio.run(scenario()) == (1, 2, 0)
    got = sorted((str(m["To"]), str(m["Subject"])) for m in inbox.messages)
    assert got == [
        ("drift@karlsoy.example", "Konfigurasjon endret: Ruter Hansnes"),
        ("vakt@karlsoy.example", "Konfigurasjon endret: Kjernesvitsj"),
        ("vakt@karlsoy.example", "Konfigurasjon endret: Ruter Hansnes"),
    ]
    assert "10.0.3.254" in next(m for m in inbox.messages if str(m["To"]).startswith("drift")).get_content()
    history = AlertHistory(inventory.data_dir() / HISTORY_FILE).read()
    assert [(e["state"], e["subject"], e["summary"]) for e in history] == [
        ("event", "sw-radhus", "Konfigurasjon endret: Kjernesvitsj"),
        ("event", "rtr-hansnes", "Konfigurasjon endret: Ruter Hansnes"),
        ("event", "sw-radhus", "Konfigurasjon endret igjen"),  # silenced, still on record
    ]


def test_history_file_stays_bounded(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / HISTORY_FILE, max_bytes=20_000)
    for i in range(2000):
        history.append([{"time": float(i), "rule": "r", "state": "firing", "subject": f"pc-{i}", "summary": "x" * 40}])
    size = (tmp_path / HISTORY_FILE).stat().st_size
    entries = history.read()
    assert size <= 20_000
    assert entries[-1]["subject"] == "pc-1999"  # the newest are kept
    assert history.read(since=1990.0) == entries[-10:]


def test_http_api_lists_alerts_and_sets_silences_with_the_admin_token(tmp_path: Path, smtp: Any) -> None:
    _, port = smtp
    inventory = load_inventory(write_inventory(tmp_path, port))
    (tmp_path / "other").mkdir()
    no_admin = load_inventory(write_inventory(tmp_path / "other", port, admin=False))

    async def scenario() -> None:
        app = create_app(inventory, alerting=AlertingOptions(interval_s=0.05, engine_overrides={"group_wait_s": 0}))
        async with TestClient(TestServer(app)) as client:
            app[ALERTS].observe([down("sw-radhus", "radhus")])
            await wait_until_async(lambda: app[ALERTS].engine.firing(time.time()), 10, "the alert to fire")
            await wait_until_async(lambda: (tmp_path / "data" / HISTORY_FILE).exists(), 10, "the history line")
            resp = await client.get("/api/v1/alerts?recent_s=3600")
            assert resp.status == 200
            listing = await resp.json()
            assert [a["subject"] for a in listing["firing"]] == ["sw-radhus"]
            assert [e["state"] for e in listing["recent"]] == ["firing"]
            resp = await client.get("/api/v1/alerts?recent_s=-1")
            assert resp.status == 400 and "recent_s" in (await resp.json())["error"]

            body = {"sites": ["radhus"], "duration_s": 3600, "comment": "bytter svitsj", "author": "kari"}
            resp = await client.post("/api/v1/silences", json=body)
            assert resp.status == 401 and "bearer" in (await resp.json())["error"]
            resp = await client.post("/api/v1/silences", json=body, headers={"Authorization": "Bearer feil"})
            assert resp.status == 401 and (await resp.json())["error"] == "not the admin token"
            admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            resp = await client.post("/api/v1/silences", json={**body, "sites": ["skole"]}, headers=admin)
            assert resp.status == 400 and (await resp.json())["problems"] == ["site 'skole': no such site (known: hansnes, radhus)"]
            resp = await client.post("/api/v1/silences", json={**body, "ttl": 5}, headers=admin)
            assert resp.status == 400 and "unknown field(s): ttl" in (await resp.json())["error"]
            resp = await client.post("/api/v1/silences", json=body, headers=admin)
            assert resp.status == 201
            silence = await resp.json()
            await wait_until_async(lambda: all(a["muted"] for a in app[ALERTS].engine.firing(time.time())), 10, "the silence to apply")
            resp = await client.get("/api/v1/silences")
            assert [s["id"] for s in await resp.json()] == [silence["id"]]
            resp = await client.delete(f"/api/v1/silences/{silence['id']}", headers=admin)
            assert resp.status == 204
            resp = await client.delete(f"/api/v1/silences/{silence['id']}", headers=admin)
            assert resp.status == 404

        app = create_app(no_admin)
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/api/v1/silences", json={"sites": ["radhus"], "duration_s": 60}, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
            assert resp.status == 403 and "admin_token_sha256" in (await resp.json())["error"]

    asyncio.run(scenario())


def test_alerting_follows_an_inventory_reload_without_repeating_or_losing_messages(tmp_path: Path, smtp: Any) -> None:
    inbox, port = smtp
    path = write_inventory(tmp_path, port)
    inventory = load_inventory(path)

    async def scenario() -> None:
        app = create_app(inventory, alerting=AlertingOptions(interval_s=0.05), inventory_path=path)
        async with TestClient(TestServer(app)):
            alerts = app[ALERTS]
            alerts.observe([down("sw-radhus", "radhus")])
            await wait_until_async(lambda: len(inbox.messages) == 1, 10, "the firing mail")
            # The new inventory adds a rule and sends critical alerts to a second channel too.
            (
                admin_inventory(tmp_path, port)
                .alert("cpu-high", "host_cpu", threshold=95)
                .email("ledelse", port, to=["it-leder@karlsoy.example"])
                .route("ledelse", severities=["critical"])
                .write()
            )
            assert await app[RELOADER].reload("test") is True
            assert app[ALERTS] is alerts
            assert sorted(r.id for r in alerts.engine.rules) == ["cpu-high", "device-down"]
            assert sorted(alerts.senders) == ["ledelse", "vakt"]
            # Still firing after the reload, and nobody told a second time.
            await asyncio.sleep(0.3)
            alerts.observe([down("sw-radhus", "radhus")])
            await asyncio.sleep(0.3)
            assert [a["subject"] for a in alerts.engine.firing(time.time())] == ["sw-radhus"]
            assert len(inbox.messages) == 1
            # It ends: the resolved message goes to whoever the current routes name.
            alerts.observe([Point("availability", {"site": "radhus", "device": "sw-radhus", "kind": "device"}, {"up": 1.0})])
            await wait_until_async(lambda: len(inbox.messages) == 2, 10, "the resolved mail")
            # A new outage goes to every channel the new routes name.
            alerts.observe([down("sw-radhus", "radhus")])
            await wait_until_async(lambda: len(inbox.messages) == 4, 10, "the second firing mails")
            await asyncio.sleep(0.3)

    asyncio.run(scenario())
    got = [(str(m["To"]), str(m["Subject"])) for m in inbox.messages]
    # Resolved only to who was told it fired; nothing repeated by the reload.
    assert got[:2] == [
        ("vakt@karlsoy.example", "[AKTIV] Kjernesvitsj svarer ikke på SNMP"),
        ("vakt@karlsoy.example", "[LØST] Kjernesvitsj svarer ikke på SNMP"),
    ]
    assert sorted(got[2:]) == [
        ("it-leder@karlsoy.example", "[AKTIV] Kjernesvitsj svarer ikke på SNMP"),
        ("vakt@karlsoy.example", "[AKTIV] Kjernesvitsj svarer ikke på SNMP"),
    ]


def test_alerts_are_listed_by_site_with_what_a_site_outage_folds_under_it() -> None:
    import zoneinfo

    from collector.alerting.cli import firing_lines
    from collector.config import parse_inventory

    inventory = parse_inventory({
        "site": [{"id": "radhus", "name": "Rådhuset"}, {"id": "hansnes", "name": "Hansnes"}, {"id": "skole", "name": "Skolen"}],
        "device": [{"id": "sw-hansnes", "name": "Svitsj Hansnes", "site": "hansnes", "host": "10.0.0.2",
                    "hardware": {"kind": "switch", "lifetime_years": 8}}],
        "agent": [{"id": a, "name": f"PC {a}", "site": s, "token_sha256": f"{i:064x}"}
                  for i, (a, s) in enumerate([("pc-h1", "hansnes"), ("pc-r1", "radhus"), ("pc-s1", "skole")], 1)],
    })
    t = 1_796_000_000.0
    firing = [
        {"rule": "cpu", "kind": "host_cpu", "severity": "warning", "site": "radhus", "subject": "pc-r1", "since": t, "summary": "CPU 95 %"},
        {"rule": "agent-silent", "kind": "agent_silent", "severity": "critical", "site": "skole", "subject": "pc-s1", "since": t + 1, "summary": "stille"},
        {"rule": "device-down", "kind": "device_down", "severity": "critical", "site": "hansnes", "subject": "sw-hansnes", "since": t + 5, "summary": "svarer ikke"},
        {"rule": "site-down", "kind": "site_unreachable", "severity": "critical", "site": "hansnes", "subject": "hansnes",
         "since": t + 10, "summary": "Hansnes utilgjengelig", "affected": ["PC pc-h1", "Svitsj Hansnes"]},
        {"rule": "agent-silent", "kind": "agent_silent", "severity": "critical", "site": "hansnes", "subject": "pc-h1", "since": t + 12, "summary": "stille"},
    ]
    lines = firing_lines(inventory, firing, zoneinfo.ZoneInfo("Europe/Oslo"))
    text = "\n".join(lines)
    # The site outage first, what it folds under it (oldest first, names before ids), then the other sites.
    assert [line.strip() for line in lines if not line.startswith("    ")] == ["Hansnes (hansnes)", "Rådhuset (radhus)", "Skolen (skole)"]
    assert text.index("Hansnes utilgjengelig") < text.index("Svitsj Hansnes (sw-hansnes): svarer ikke") < text.index("PC pc-h1 (pc-h1): stille")
    assert text.count("[folded into the site outage]") == 2 and "CPU 95 %" in text and "PC pc-r1 (pc-r1)" in text


def test_ack_from_the_cli_and_the_api_shows_who_and_stops_repeats(tmp_path: Path, smtp: Any, capsys: pytest.CaptureFixture[str]) -> None:
    inbox, port = smtp
    path = write_inventory(tmp_path, port)
    inventory = load_inventory(path)

    async def fire() -> None:
        service = AlertService.from_inventory(inventory)
        service.observe([down("sw-radhus", "radhus"), down("rtr-hansnes", "hansnes")])
        await service.tick()
        await service.drain()
        await service.close()

    asyncio.run(fire())
    assert len(inbox.subjects) == 1  # both in one message
    code, out, _ = run_cli(capsys, "ack", "device-down", "sw-radhus", "--comment", "bytter strømforsyning", "--author", "ola",
                           "--inventory", str(path))
    assert code == 0 and "acknowledged device-down sw-radhus by ola" in out
    code, _, err = run_cli(capsys, "ack", "device-down", "sw-nope", "--inventory", str(path))
    assert code == 2 and "no firing alert device-down for 'sw-nope'" in err
    code, out, _ = run_cli(capsys, "alerts", "--inventory", str(path))
    assert "Kjernesvitsj (sw-radhus): Kjernesvitsj svarer ikke på SNMP (acknowledged by ola " in out
    recent = AlertHistory(tmp_path / "data" / HISTORY_FILE).read(since=0)
    assert [e["summary"] for e in recent if e["state"] == "acknowledged"] == [
        "Kjernesvitsj svarer ikke på SNMP (acknowledged by ola: bytter strømforsyning)"]

    async def api() -> None:
        app = create_app(inventory)
        async with TestClient(TestServer(app)) as client:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            resp = await client.post("/api/v1/alerts/ack", json={"rule": "device-down", "subject": "rtr-hansnes", "author": "kari"}, headers=headers)
            assert resp.status == 201 and (await resp.json())["by"] == "kari"
            resp = await client.post("/api/v1/alerts/ack", json={"rule": "device-down", "subject": "nope"}, headers=headers)
            assert resp.status == 404 and "no firing alert" in (await resp.json())["error"]
            resp = await client.post("/api/v1/alerts/ack", json={"rule": "device-down", "subject": "rtr-hansnes"})
            assert resp.status == 401
            listing = await (await client.get("/api/v1/alerts")).json()
            assert {a["subject"]: a.get("acked_by") for a in listing["firing"]} == {"sw-radhus": "ola", "rtr-hansnes": "kari"}

    asyncio.run(api())

    async def later() -> None:  # five hours later (past the 4 h repeat), both still down: nobody is told again
        at = time.time() + 5 * 3600
        service = AlertService.from_inventory(inventory)
        service.observe([Point(p.measurement, p.tags, p.fields, int(at * 1e9)) for p in (down("sw-radhus", "radhus"), down("rtr-hansnes", "hansnes"))])
        await service.tick(at)
        await service.drain()
        await service.close()

    asyncio.run(later())
    assert len(inbox.subjects) == 1
