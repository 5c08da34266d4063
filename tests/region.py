"""Several collectors sharded by site, as the tests run them (docs/scaling.md): the region's
inventory, real collector and agent processes by name, what a stopped agent's spool says.

    built = region_inventory(tmp_path, lambda b: b.influxdb(url, db), ports, snmpd.port)
    procs = {name: start_collector(nettvakt, built.write(), name, tmp_path) for name in SITES}

The region: collector a owns nord (two agents) and sentrum (one), b owns sor (two agents), c
owns aust (one agent behind the firewall fw-aust, polled over SNMP). Agents heartbeat every
second; alerts without delay. Used by tests/test_shards_e2e.py (one InfluxDB) and
tests/test_shards_victoriametrics.py (one VictoriaMetrics beside one InfluxDB).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from collector.alerting.rules import SITE_RULE
from inventories import InventoryBuilder

SNMP_COMMUNITY = "aust-ro"
SITES = {"a": ("nord", "sentrum"), "b": ("sor",), "c": ("aust",)}
AGENTS = {"n1": "nord", "n2": "nord", "m1": "sentrum", "s1": "sor", "s2": "sor", "e1": "aust"}


def start_collector(nettvakt: Any, inventory: Path, name: str, folder: Path) -> Any:
    return nettvakt.start(["collector", "run", "--inventory", str(inventory), "--name", name], folder / f"collector-{name}.log")


def start_agent(nettvakt: Any, built: InventoryBuilder, agent: str, collector_url: str) -> Any:
    return nettvakt.start(
        ["agent", "run", "--collector", collector_url, "--agent-id", agent, "--spool", str(built.folder / f"{agent}.sqlite3")],
        built.folder / f"agent-{agent}.log", {"NETTVAKT_AGENT_TOKEN": built.tokens[agent]},
    )


def spool_counts(spool: Path) -> tuple[int, int, int]:
    """(points the agent ever spooled, still pending, dropped by the spool's bound), of a stopped agent."""
    db = sqlite3.connect(spool)
    try:
        made = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'point'").fetchone()[0]
        pending = db.execute("SELECT COUNT(*) FROM point").fetchone()[0]
        dropped = db.execute("SELECT value FROM meta WHERE name = 'dropped_points'").fetchone()[0]
    finally:
        db.close()
    return made, pending, dropped


def region_inventory(folder: Path, storage: Callable[[InventoryBuilder], InventoryBuilder], ports: dict[str, int],
                     snmp_port: int, **agent_keys: Any) -> InventoryBuilder:
    """The region (above), writing to the storage `storage` sets on the builder; `agent_keys` go
    on every `[[agent]]` (e.g. hardware)."""
    built = storage(InventoryBuilder(folder))
    built.alerting(group_wait_s=0, recovery_grace_s=0)
    built.alert("agent-silent", "agent_silent", severity="critical").alert("device-down", "device_down", severity="critical")
    for site in ("nord", "sentrum", "sor"):
        built.site(site)
    built.site("aust", uplink="fw-aust")
    for name, sites in SITES.items():
        built.collectors(name, f"http://127.0.0.1:{ports[name]}", sites, listen=f"127.0.0.1:{ports[name]}")
    for agent, site in AGENTS.items():
        built.agent(agent, site=site, interval_s=2, heartbeat_s=1, **agent_keys)
    built.device("fw-aust", site="aust", hardware="firewall",
                 snmp={"version": "2c", "port": snmp_port, "community": built.secret_file("aust-community", SNMP_COMMUNITY),
                       "interval_s": 1, "timeout_s": 0.5, "retries": 0})
    return built


def site_alerts(listing: dict[str, Any]) -> set[str]:
    """The sites with a site alert firing in one collector's alert listing."""
    return {a["site"] for a in listing["firing"] if a.get("kind") == SITE_RULE}
