"""Several collectors sharded by site (inventory [collectors], docs/scaling.md), in-process parts.

The view each collector runs, the names on the command line, the 421 answer that sends an
agent to the collector owning its site, the agent's following of it, and a reload that moves
a site. The real processes (three collectors, agents, influxd) are in test_shards_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import pytest

from agent.cli import main
from agent.collectoraddress import MOVE_BACKOFF_MAX_S, MOVES_AT_ONCE, CollectorAddress
from collector.app import create_app
from collector.appkeys import SERVICE
from collector.config import CollectorNameError, Inventory
from collector.reload import InventoryReloader
from inventories import InventoryBuilder
from serving import serving

URL_A, URL_B = "http://10.20.0.5:8650", "https://nettvakt-b.region.local:8650"


def region(folder: Path) -> InventoryBuilder:
    """Collector a owns radhus and helse, b owns hansnes; an agent and a device at each site."""
    built = (
        InventoryBuilder(folder)
        .site("radhus").site("helse", "Helse").site("hansnes", "Hansnes", uplink="sw-hansnes")
        .collectors("a", URL_A, ["radhus", "helse"])
        .collectors("b", URL_B, ["hansnes"], listen="127.0.0.1:8652", data_dir="data-b")
    )
    for site in ("radhus", "helse", "hansnes"):
        built.agent(f"pc-{site}", site=site).device(f"sw-{site}", site=site)
    return built


def test_each_collector_runs_its_own_sites(tmp_path: Path) -> None:
    inventory = region(tmp_path).load(startup=True)
    a, b = inventory.for_collector("a"), inventory.for_collector("b")
    assert [s.id for s in a.site] == ["radhus", "helse"] and [s.id for s in b.site] == ["hansnes"]
    assert [d.id for d in a.device] == ["sw-radhus", "sw-helse"] and [d.id for d in b.device] == ["sw-hansnes"]
    assert [x.id for x in a.agent] == ["pc-radhus", "pc-helse"] and [x.id for x in a.elsewhere] == ["pc-hansnes"]
    assert [x.id for x in b.agent] == ["pc-hansnes"] and [x.id for x in b.elsewhere] == ["pc-radhus", "pc-helse"]
    # Each its own folder (a beside the shared one by default), its own address; the same storage.
    assert a.data_dir() == tmp_path / "data" / "a" and b.data_dir() == tmp_path / "data-b"
    assert (a.collector.listen, a.collector.public_url) == ("127.0.0.1:8650", URL_A)
    assert (b.collector.listen, b.collector.public_url) == ("127.0.0.1:8652", URL_B)
    assert a.storage == b.storage == inventory.storage
    assert (a.collector_name, b.collector_name) == ("a", "b")
    assert inventory.collector_of("helse") == "a" and inventory.collector_of("hansnes") == "b"
    # The names are the loader's, never the file's.
    path = region(tmp_path).write()
    path.write_text('collector_name = "b"\n' + path.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["check", str(path)]) == 2


def test_one_collector_inventory_runs_as_before(tmp_path: Path) -> None:
    inventory = InventoryBuilder(tmp_path).agent("pc1").load(startup=True)
    assert inventory.for_collector(None) is inventory and inventory.collector_of("radhus") is None
    with pytest.raises(CollectorNameError, match=r"--name 'a': this inventory names no collectors"):
        inventory.for_collector("a")


@pytest.mark.parametrize(("argv", "message"), [
    ([], "this inventory names 2 collectors (a, b): say which one with --name NAME"),
    (["--name", "c"], "--name 'c': no such collector in [collectors] (known: a, b)"),
])
def test_collector_run_needs_a_name_it_knows(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    path = region(tmp_path).write()
    assert main(["collector", "run", "--inventory", str(path), *argv]) == 2
    assert capsys.readouterr().err.strip() == f"nettvakt collector run: {path}: {message}"


def test_collector_run_of_one_collector_takes_no_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = InventoryBuilder(tmp_path).write()
    assert main(["collector", "run", "--inventory", str(path), "--name", "a"]) == 2
    assert "--name 'a': this inventory names no collectors" in capsys.readouterr().err


def test_data_folder_commands_say_which_collector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = region(tmp_path).write()
    assert main(["alerts", "--inventory", str(path)]) == 2
    assert "say which one with --collector NAME" in capsys.readouterr().err
    assert main(["silence", "list", "--inventory", str(path), "--collector", "b", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_an_agent_of_another_collectors_site_is_sent_there(tmp_path: Path) -> None:
    """Collector a is asked by hansnes' agent (b's): 421 naming b for its points, heartbeats and
    configuration; nothing of it is taken. a's own agent is served as ever; a stranger is 401."""
    built = region(tmp_path)
    view = built.parse().for_collector("a")

    async def scenario() -> None:
        app = create_app(view, alerting=None)
        async with serving(app, shutdown_timeout=0.1) as url, aiohttp.ClientSession(url) as http:
            def auth(agent: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {built.tokens[agent]}"}

            point = {"measurement": "host", "tags": {}, "fields": {"cpu_pct": 5.0}, "time": 1_700_000_000_000_000_000}
            requests = [
                ("POST", "/api/v1/ingest", {"agent": "pc-hansnes", "seq": 1, "points": [point]}),
                ("POST", "/api/v1/agents/pc-hansnes/heartbeat", {}),
                ("GET", "/api/v1/agents/pc-hansnes/config", None),
            ]
            for method, path, body in requests:
                async with http.request(method, path, json=body, headers=auth("pc-hansnes")) as resp:
                    answer = await resp.json()
                    assert resp.status == 421, (path, answer)
                assert answer == {
                    "error": f"agent 'pc-hansnes' (site 'hansnes') reports to collector 'b' at {URL_B}; collector 'a' takes "
                             "no points, heartbeats or configuration requests for it",
                    "collector": "b", "collector_url": URL_B,
                }
            service = app[SERVICE]
            assert (service.batches_in, service.points_in, service.duplicates) == (0, 0, 0)
            assert "pc-hansnes" not in service.health()["agents"]
            async with http.get("/api/v1/agents/pc-helse/config", headers=auth("pc-helse")) as resp:
                assert resp.status == 200 and (await resp.json())["site"] == "helse"
            async with http.post("/api/v1/agents/pc-helse/heartbeat", json={}, headers={"Authorization": "Bearer nobody"}) as resp:
                assert resp.status == 401

    asyncio.run(scenario())


def test_the_agent_follows_and_keeps_where_it_was_sent(tmp_path: Path) -> None:
    state = tmp_path / "spool.collector.json"
    address = CollectorAddress("http://a:8650/", state)
    assert address.url == "http://a:8650"
    assert address.follow(json.dumps({"collector_url": "http://b:8650"})) == 0.0
    assert address.endpoint("/api/v1/ingest") == "http://b:8650/api/v1/ingest" and address.moves == 1
    # A restart goes straight to b; installed with another --collector, it starts there again.
    assert CollectorAddress("http://a:8650", state).url == "http://b:8650"
    assert CollectorAddress("http://c:8650", state).url == "http://c:8650"
    # Collectors that keep sending it round (an inventory change not yet everywhere): the first
    # moves at once, then each waits longer; an answered request ends the run.
    waits = [address.follow(json.dumps({"collector_url": url})) for url in ["http://a:8650", "http://b:8650"] * 3]
    assert waits[:MOVES_AT_ONCE - 1] == [0.0] * (MOVES_AT_ONCE - 1) and waits[MOVES_AT_ONCE - 1:] == [2.0, 4.0, 8.0, 16.0]
    address.answered()
    assert address.follow(json.dumps({"collector_url": "http://a:8650"})) == 0.0
    # Never out of TLS, never to no address: it stays and waits.
    secure = CollectorAddress("https://a:8650", tmp_path / "other.json")
    assert secure.follow(json.dumps({"collector_url": "http://b:8650"})) == MOVE_BACKOFF_MAX_S and secure.url == "https://a:8650"
    for body in ("not json", json.dumps({"collector_url": "b:8650"}), json.dumps(["x"])):
        assert secure.follow(body) == MOVE_BACKOFF_MAX_S and secure.url == "https://a:8650"


def test_a_reload_moves_a_site_and_refuses_a_file_without_this_collector(tmp_path: Path) -> None:
    built = region(tmp_path)
    path = built.write()
    view = built.load(startup=True).for_collector("a")

    async def scenario() -> None:
        reloader = InventoryReloader(path, view)
        taken: list[Inventory] = []

        async def hook(old: Inventory, new: Inventory) -> None:
            taken.append(new)

        reloader.hooks.append(hook)
        moved = region(tmp_path)
        moved._collectors["a"]["sites"] = ["radhus"]
        moved._collectors["b"]["sites"] = ["hansnes", "helse"]
        moved.write()
        assert await reloader.reload("test") is True
        assert [s.id for s in taken[-1].site] == ["radhus"] and "pc-helse" in {x.id for x in taken[-1].elsewhere}
        assert taken[-1].collector_name == "a"
        InventoryBuilder(tmp_path).collectors("b", URL_B, ["radhus"]).write()
        assert await reloader.reload("test") is False
        assert reloader.last_error is not None and "--name 'a': no such collector in [collectors] (known: b)" in reloader.last_error
        assert reloader.inventory is taken[-1]

    asyncio.run(scenario())


def test_a_batch_under_way_when_its_site_moves_is_kept_and_acknowledged(tmp_path: Path) -> None:
    """The reload that moves helse to b lands while a batch of helse's agent is being stored at a:
    the batch is kept and acknowledged (a 500 would make the agent send it again, to b)."""
    from collector.queue import DurableQueue
    from collector.service import CollectorService

    built = region(tmp_path)
    view = built.parse().for_collector("a")
    moved = region(tmp_path)
    moved._collectors["a"]["sites"] = ["radhus"]
    moved._collectors["b"]["sites"] = ["hansnes", "helse"]
    queue = DurableQueue(tmp_path / "queue.sqlite3", 10**8)
    service = CollectorService(view, queue)
    agent = service.authenticate(f"Bearer {built.tokens['pc-helse']}")
    point = {"measurement": "host", "tags": {}, "fields": {"cpu_pct": 5.0}, "time": time.time_ns()}
    service.reload(moved.parse().for_collector("a"))
    try:
        answer = asyncio.run(service.ingest(agent, {"agent": "pc-helse", "seq": 7, "points": [point]}))
        assert answer == {"seq": 7, "accepted": 1, "duplicate": False, "too_old": 0}
        assert service.heartbeat(agent, {}) == {"agent": "pc-helse", "heartbeat_s": 10.0}
        assert "pc-helse" not in service.agents and queue.stats()["queue_points"] == 1
    finally:
        queue.close()
