"""Three collectors sharded by site, writing to one real VictoriaMetrics: the storage for more
than one machine's worth of data (docs/scaling.md, "Storage on a distributed engine").

The region of tests/region.py is deployed twice: three collectors on VictoriaMetrics, three on
InfluxDB 1.x. Simulated agents (bench/scale_sim.py: reports shaped by the contract, heartbeats,
hardware facts, a backlog after a cut) send every request byte for byte to both, each starting
at collector a and sent on by 421 to the one owning its site. The site sor (collector b) loses
its line for a while: both its agents are down at both deployments, then back with their
backlog. Then:

1. every point the VictoriaMetrics collectors acknowledged is there exactly once: its export
   counts every sample written, so a point written twice would count twice (InfluxDB, beside it,
   holds each once too);
2. `report servers` and `report availability` read through VictoriaMetricsSource give what they
   give on InfluxDB for the same points: the servers' use exactly (the same points); every
   site's time up and down, and sor's one outage, within the collectors' own judging (below);
3. what VictoriaMetrics cannot keep is named: string fields (a server's model from its hardware
   facts) are on InfluxDB and not there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from datetime import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from bench.scale_sim import SimAgent, SimError, Storage, health, raise_failed, wait_for
from collector.config import load_inventory
from collector.localservers import free_port, start_snmpd
from collector.timeseries import open_source
from inventories import InventoryBuilder
from region import AGENTS, SITES, SNMP_COMMUNITY, region_inventory, start_collector

STORES = ("victoriametrics", "influxdb")
CUT_SITE = "sor"
CUT_AGENTS = tuple(agent for agent, site in AGENTS.items() if site == CUT_SITE)
BACKLOG_H = 0.05  # three minutes of older points each cut agent comes back with
# Each deployment judges liveness by its own clock: an agent's down verdict comes at the first
# housekeeping round after `down_after_intervals` heartbeats are missed (collector/app.py,
# HOUSEKEEPING_INTERVAL_S = 5 s) and its up verdict at the next request, so the two deployments'
# outages of one cut may differ by up to a round at either end (measured: 0.01 s apart, time up 0.5 s).
OUTAGE_TOLERANCE_S = 2 * 5.0


def report_json(command: str, inventory: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["report", command, "--inventory", str(inventory), "--since", "1h", "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def until_stopped(site: dict[str, Any], back_at: float) -> tuple[list[dict[str, Any]], float]:
    """A site's outages (and time down) in `report availability --format json` before the test stopped
    the agents: those starting after CUT_SITE was back are the stop's, and must be open."""
    stop = [o for o in site["outages"] if datetime.fromisoformat(o["start"]).timestamp() > back_at]
    assert all(o["open"] for o in stop), stop
    return [o for o in site["outages"] if o not in stop], site["down_s"] - sum(o["duration_s"] for o in stop)


def stored_verdicts(inventories: dict[str, Path]) -> list[float | None]:
    """The newest stored `availability` verdict of each cut agent, in each storage, read as the reports read it."""
    now = time.time_ns()
    out: list[float | None] = []
    for store in STORES:
        source = open_source(load_inventory(inventories[store]))
        for agent in CUT_AGENTS:
            verdicts = [s.fields["up"] for s in source.samples("availability", now - 600 * 10**9, now + 10**9, {"host": agent, "kind": "agent"})
                        if "up" in s.fields]
            out.append(verdicts[-1] if verdicts else None)
    return out


async def run_agents(urls: dict[str, dict[str, str]], tokens: dict[str, str], folder: Path,
                     inventories: dict[str, Path]) -> tuple[dict[str, SimAgent], float]:
    """The region's agents, each to both deployments (installed with collector a's address), CUT_SITE's
    cut for a while and back with their backlog; returns them stopped, everything sent, and when
    CUT_SITE was stored as up again."""
    folder.mkdir()
    primary, mirror = STORES
    agents = {agent: SimAgent(agent, tokens[agent], urls[primary]["a"], folder, i, seed=i, mirrors=[urls[mirror]["a"]])
              for i, agent in enumerate(AGENTS)}
    tasks = [asyncio.create_task(agent.run(lambda: "run", asyncio.Event())) for agent in agents.values()]

    def verdicts() -> list[bool | None]:
        """Each collector's verdict on each of its agents."""
        return [a["up"] for store in STORES for url in urls[store].values() for a in health(url)["agents"].values()]

    try:
        await wait_for(lambda: all(verdicts()) or any(t.done() for t in tasks), 60, "every agent up at both deployments")
        raise_failed(tasks)
        await asyncio.sleep(4)
        for agent in CUT_AGENTS:
            agents[agent].cut = True
        # Down, and so written by every collector at its next housekeeping round, in both storages.
        await wait_for(lambda: stored_verdicts(inventories) == [0.0] * 2 * len(CUT_AGENTS) or any(t.done() for t in tasks), 60,
                       f"{CUT_SITE}'s agents stored as down in both storages")
        raise_failed(tasks)
        for agent in CUT_AGENTS:
            agents[agent].restore(BACKLOG_H)
        await wait_for(lambda: stored_verdicts(inventories) == [1.0] * 2 * len(CUT_AGENTS) or any(t.done() for t in tasks), 60,
                       f"{CUT_SITE}'s agents stored as up again in both storages")
        raise_failed(tasks)
        back_at = time.time()
        await asyncio.sleep(4)
        for agent in agents.values():
            agent.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return agents, back_at


def test_three_collectors_on_victoriametrics_store_every_point_once_and_report_as_on_influxdb(
    victoria_metrics, influx_db, nettvakt, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    influx, influx_database = influx_db
    storages = {"victoriametrics": Storage("victoriametrics", victoria_metrics.url, f"test_{uuid.uuid4().hex[:12]}"),
                "influxdb": Storage("influxdb_v1", influx.url, influx_database)}
    setters: dict[str, Callable[[InventoryBuilder], InventoryBuilder]] = {
        "victoriametrics": lambda b: b.storage("victoriametrics", url=victoria_metrics.url, database=storages["victoriametrics"].database,
                                               flush_interval_s=0.2),
        "influxdb": lambda b: b.influxdb(influx.url, influx_database, flush_interval_s=0.2),
    }
    snmpd = start_snmpd(tmp_path / "snmpd", community=SNMP_COMMUNITY, sys_name="fw-aust")
    try:
        inventories: dict[str, Path] = {}
        urls: dict[str, dict[str, str]] = {}
        tokens: dict[str, str] = {}
        for store in STORES:
            ports = {name: free_port() for name in SITES}
            built = region_inventory(tmp_path / store, setters[store], ports, snmpd.port, hardware="server")
            inventories[store] = built.write()
            urls[store] = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
            tokens = built.tokens
            for name in SITES:
                start_collector(nettvakt, inventories[store], name, tmp_path / store)
        for store in STORES:
            for name, url in urls[store].items():
                asyncio.run(wait_for(lambda url=url: health(url), 30, f"collector {name} on {store}"))
        agents, back_at = asyncio.run(run_agents(urls, tokens, tmp_path / "agents", inventories))

        # Everything acknowledged has left every collector's queue ...
        def drained() -> bool:
            return all(health(url)["queue"]["queue_points"] == 0 for store in STORES for url in urls[store].values())

        asyncio.run(wait_for(drained, 60, "every collector's queue empty"))
        # ... and is in each storage once: per agent and measurement, the count is what was acknowledged
        # (VictoriaMetrics makes what it took searchable within seconds: counted until equal, or a deadline).
        def counts() -> dict[tuple[str, str], dict[str, int]]:
            return {(store, name): {m: storages[store].count(m, name) for m in agent.acked} for store in STORES for name, agent in agents.items()}

        acked = {(store, name): dict(agent.acked) for store in STORES for name, agent in agents.items()}
        assert all(set(a) == {"host", "host_disk", "host_net", "hardware"} for a in acked.values())
        with contextlib.suppress(SimError):  # a difference left at the deadline is shown just below
            asyncio.run(wait_for(lambda: counts() == acked, 30, "every acknowledged point stored"))
        assert counts() == acked
        for agent in CUT_AGENTS:  # the backlog went out and was counted above
            assert agents[agent].backlog_left == 0 and agents[agent].acked["host"] > agents["n2"].acked["host"]
        for store in STORES:
            for url in urls[store].values():
                assert health(url)["ingest"]["duplicates"] == 0

        servers = {store: report_json("servers", inventories[store], capsys) for store in STORES}
        by_id = {store: {s["id"]: s for s in servers[store]["servers"]} for store in STORES}
        assert set(by_id["victoriametrics"]) == set(AGENTS)
        for agent in AGENTS:
            vm, ix = by_id["victoriametrics"][agent], by_id["influxdb"][agent]
            # The same points, the same numbers: averages, peaks and sample counts of CPU, memory, disks.
            for key in ("cpu_pct", "mem_used_pct"):
                assert vm[key] == pytest.approx(ix[key], rel=1e-9), (agent, key)
            assert set(vm["disk_used_pct"]) == set(ix["disk_used_pct"]) == {"C:", "D:"}
            for mount, stat in ix["disk_used_pct"].items():
                assert vm["disk_used_pct"][mount] == pytest.approx(stat, rel=1e-9), (agent, mount)
            # A string field is not kept by VictoriaMetrics: the model from the hardware facts is missing there.
            assert ix["model"] == "ThinkSystem SR250" and vm["model"] != ix["model"]

        availability = {store: report_json("availability", inventories[store], capsys) for store in STORES}
        sites = {store: {s["id"]: s for s in availability[store]["sites"]} for store in STORES}
        assert set(sites["victoriametrics"]) == set(sites["influxdb"]) == {s for ss in SITES.values() for s in ss}
        for site, ix in sites["influxdb"].items():
            vm = sites["victoriametrics"][site]
            # The test stops every agent at the end: once a collector misses their heartbeats it rightly
            # judges them down, an outage still open when the report is made, at each report's own time
            # (how long after the stop depends on this machine's load). Left out, with their time.
            vm_outages, ix_outages = until_stopped(vm, back_at), until_stopped(ix, back_at)
            assert vm["up_s"] == pytest.approx(ix["up_s"], abs=OUTAGE_TOLERANCE_S), (site, "up_s")
            assert vm_outages[1] == pytest.approx(ix_outages[1], abs=OUTAGE_TOLERANCE_S), (site, "down_s")
            # One outage at the cut site, of about the same length at both; none elsewhere.
            assert len(vm_outages[0]) == len(ix_outages[0]) == (1 if site == CUT_SITE else 0), (site, vm["outages"], ix["outages"])
            for vm_outage, ix_outage in zip(vm_outages[0], ix_outages[0]):
                assert vm_outage["duration_s"] == pytest.approx(ix_outage["duration_s"], abs=OUTAGE_TOLERANCE_S)
                assert not vm_outage["open"] and not ix_outage["open"]
    finally:
        snmpd.stop()
