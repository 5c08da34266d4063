"""Several collectors sharded by site, as real processes: `nettvakt collector run --name`, real
agents, one real influxd (docs/scaling.md).

1. A site moves from collector a to b in the inventory: both take the change, the agent is sent
   on and ends up sending to b, and every point it made is in InfluxDB once (counted there).
2. Three collectors (a owns two sites, b one, c one), every agent started against a: an outage
   at a site of each folds into one site alert on the collector that owns it and nowhere else,
   and `nettvakt alerts --all` shows all three.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.contract import AGENT_MEASUREMENTS
from collector.alerting.overview import read_all
from collector.config import load_inventory
from collector.influxql import query
from collector.localservers import free_port, start_snmpd, wait_until
from inventories import InventoryBuilder
from region import AGENTS, SITES, SNMP_COMMUNITY, region_inventory, site_alerts, spool_counts, start_agent, start_collector


def healthy(nettvakt: Any, url: str) -> dict[str, Any]:
    return nettvakt.health(url)


def stored_points(url: str, database: str, host: str) -> int:
    """How many points of this agent InfluxDB holds: one row per series and time, every agent measurement."""
    return sum(len(query(url, database, f"SELECT * FROM \"{m}\" WHERE host = '{host}'")) for m in sorted(AGENT_MEASUREMENTS))


# --- 1. a site moves -------------------------------------------------------------------------------
def move_inventory(folder: Path, influx_url: str, database: str, ports: dict[str, int], helse_at: str) -> InventoryBuilder:
    other = {"a": "b", "b": "a"}[helse_at]
    return (
        InventoryBuilder(folder)
        .influxdb(influx_url, database, flush_interval_s=0.2)
        .site("radhus").site("helse", "Helse")
        .collectors(helse_at, f"http://127.0.0.1:{ports[helse_at]}", ["helse"], listen=f"127.0.0.1:{ports[helse_at]}")
        .collectors(other, f"http://127.0.0.1:{ports[other]}", ["radhus"], listen=f"127.0.0.1:{ports[other]}")
        .agent("pc-helse", site="helse", interval_s=1, heartbeat_s=1)
    )


def test_an_agent_follows_its_site_to_another_collector_and_loses_nothing(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    ports = {"a": free_port(), "b": free_port()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    built = move_inventory(tmp_path, server.url, database, ports, helse_at="a")
    path = built.write()
    collectors = {name: start_collector(nettvakt, path, name, tmp_path) for name in ("a", "b")}
    for name in collectors:
        wait_until(lambda name=name: healthy(nettvakt, urls[name]), 30, f"collector {name}'s health")
    agent = start_agent(nettvakt, built, "pc-helse", urls["a"])

    def ingested(name: str) -> int:
        return healthy(nettvakt, urls[name])["ingest"]["batches"]

    wait_until(lambda: ingested("a") >= 3, 60, "batches from pc-helse at collector a")
    assert "pc-helse" not in healthy(nettvakt, urls["b"])["agents"]
    # The site moves to b. Both collectors watch the file and take it; the agent is sent on.
    move_inventory(tmp_path, server.url, database, ports, helse_at="b").write()
    wait_until(lambda: "pc-helse" not in healthy(nettvakt, urls["a"])["agents"], 30, "collector a giving up helse")
    wait_until(lambda: ingested("b") >= 3, 60, "batches from pc-helse at collector b")
    # The agent sends one batch at a time: with b taking them, nothing is under way at a any more.
    at_move = ingested("a")
    nettvakt.stop(agent)
    assert json.loads((tmp_path / "pc-helse.collector.json").read_text()) == {"configured": urls["a"], "url": urls["b"]}

    made, pending, dropped = spool_counts(tmp_path / "pc-helse.sqlite3")
    sent = made - pending
    assert dropped == 0 and sent > 0
    health = {name: healthy(nettvakt, urls[name]) for name in collectors}
    # Every point the agent got acknowledged was taken once, by one of the two (none twice) ...
    assert health["a"]["ingest"]["points"] + health["b"]["ingest"]["points"] == sent
    assert health["a"]["ingest"]["duplicates"] == health["b"]["ingest"]["duplicates"] == 0
    # ... and is in InfluxDB once: the count there is exactly what was sent.
    wait_until(lambda: stored_points(server.url, database, "pc-helse") == sent, 30, f"{sent} points of pc-helse in InfluxDB")
    # The pending rest goes to b at the agent's next start, straight there.
    agent = start_agent(nettvakt, built, "pc-helse", urls["a"])
    wait_until(lambda: stored_points(server.url, database, "pc-helse") >= made, 60, "the pending points, from b")
    nettvakt.stop(agent)
    assert ingested("a") == at_move  # nothing taken at a since it let the site go, also after a restart
    for name, proc in collectors.items():
        nettvakt.stop(proc)
        assert proc.returncode == 0, (tmp_path / f"collector-{name}.log").read_text()


# --- 2. three collectors, an outage at each -------------------------------------------------------
def test_three_collectors_each_fold_their_own_outage_and_the_overview_shows_all(
    influx_db, nettvakt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server, database = influx_db
    snmpd = start_snmpd(tmp_path / "snmpd", community=SNMP_COMMUNITY, sys_name="fw-aust")
    try:
        ports = {name: free_port() for name in SITES}
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        built = region_inventory(tmp_path, lambda b: b.influxdb(server.url, database, flush_interval_s=0.2), ports, snmpd.port)
        path = built.write()
        inventory = load_inventory(path)
        collectors = {name: start_collector(nettvakt, path, name, tmp_path) for name in SITES}
        for name in SITES:
            wait_until(lambda name=name: healthy(nettvakt, urls[name]), 30, f"collector {name}'s health")
        # Every agent is installed pointing at a: those of b's and c's sites are sent on.
        agents = {agent: start_agent(nettvakt, built, agent, urls["a"]) for agent in AGENTS}

        def all_up() -> bool:
            for name, sites in SITES.items():
                own = healthy(nettvakt, urls[name])["agents"]
                if set(own) != {a for a, s in AGENTS.items() if s in sites} or not all(v["up"] for v in own.values()):
                    return False
            return bool(query(server.url, database, "SELECT up FROM availability WHERE device = 'fw-aust' AND up = 1"))

        wait_until(all_up, 90, "every agent up at the collector owning its site, fw-aust answering SNMP")
        assert all(not site_alerts(answer.listing) for answer in read_all(inventory, 3600))

        # An outage at a site of each collector: nord's and sor's machines stop, aust's firewall stops answering.
        for agent in ("n1", "n2", "s1", "s2"):
            nettvakt.stop(agents[agent])
        snmpd.stop()

        def folded() -> dict[str, set[str]] | None:
            found = {answer.name: site_alerts(answer.listing) for answer in read_all(inventory, 3600) if answer.listing is not None}
            return found if all(found.get(name) for name in SITES) else None

        by_collector = wait_until(folded, 90, "a site alert at each collector")
        assert by_collector == {"a": {"nord"}, "b": {"sor"}, "c": {"aust"}}
        # Nowhere else: each collector's alerts are about its own sites only.
        for answer in read_all(inventory, 3600):
            assert answer.listing is not None, answer.error
            assert {a["site"] for a in answer.listing["firing"]} <= set(SITES[answer.name]) | {""}, (answer.name, answer.listing["firing"])
        # The overview, as people read it and as programs do.
        assert main(["alerts", "--all", "--inventory", str(path)]) == 0
        text = capsys.readouterr().out
        for name in SITES:
            assert f"== collector {name} ({urls[name]}): sites {', '.join(SITES[name])}" in text
        for site in ("nord", "sor", "aust"):
            assert f"  {site} ({site})" in text  # each outage under its site, in its collector's section
        assert main(["alerts", "--all", "--json", "--inventory", str(path)]) == 0
        overview = json.loads(capsys.readouterr().out)["collectors"]
        assert {name: site_alerts(listing) for name, listing in overview.items()} == by_collector
        # All three wrote to the one InfluxDB.
        tags = query(server.url, database, 'SHOW TAG VALUES FROM "collector" WITH KEY = "collector"')
        assert {t["value"] for t in tags} == {"a", "b", "c"}
        # One collector down: the overview still shows the others and says which it could not read.
        nettvakt.stop(collectors["c"])
        assert main(["alerts", "--all", "--inventory", str(path)]) == 1
        captured = capsys.readouterr()
        assert "== collector a" in captured.out and f"nettvakt alerts: collector 'c' at {urls['c']}: no answer" in captured.err
    finally:
        snmpd.stop()
