"""End to end: a real collector process and a real agent process, a real influxd, checked by InfluxQL."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from collector.influxql import query
from collector.localservers import free_port, wait_until
from inventories import InventoryBuilder

TOKEN = "e2e-agent-token-0123456789"


def write_inventory(folder: Path, influx_url: str, database: str, collector_port: int) -> Path:
    """Agent plo-pc at helse, every second: a tcp probe of the collector (for its site) and an icmp one of its own."""
    return (
        InventoryBuilder(folder)
        .influxdb(influx_url, database, flush_interval_s=0.2)
        .site("helse")
        .agent("plo-pc", TOKEN, interval_s=1)
        .probe("collector-port", "tcp", f"127.0.0.1:{collector_port}", sites=["helse"], interval_s=1)
        .probe("loopback", "icmp", "127.0.0.1", agents=["plo-pc"], interval_s=1, params={"count": 3, "interval_ms": 20})
        .write()
    )


def post_json(url: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_agent_to_influxdb_end_to_end(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    port = free_port()
    inventory = write_inventory(tmp_path, server.url, database, port)
    base = f"http://127.0.0.1:{port}"
    collector = nettvakt.start(["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"], tmp_path / "collector.log")
    agent = None
    try:
        wait_until(lambda: urllib.request.urlopen(f"{base}/api/v1/health", timeout=2).status == 200, 30, "collector health")
        agent = nettvakt.start(
            ["agent", "run", "--collector", base, "--agent-id", "plo-pc", "--spool", str(tmp_path / "spool.sqlite3")],
            tmp_path / "agent.log",
            {"NETTVAKT_AGENT_TOKEN": TOKEN},
        )

        def probe_rows() -> list[dict[str, Any]]:
            rows = query(server.url, database, "SELECT * FROM probe WHERE host = 'plo-pc'")
            kinds = {r["kind"] for r in rows if r["up"] == 1.0}
            return rows if kinds >= {"icmp", "tcp"} else []

        rows = wait_until(probe_rows, 60, "icmp and tcp probe points in InfluxDB")
        icmp = [r for r in rows if r["kind"] == "icmp" and r["up"] == 1.0][0]
        assert icmp["site"] == "helse" and icmp["target"] == "loopback"
        assert icmp["sent"] == 3.0 and icmp["received"] == 3.0 and icmp["loss_pct"] == 0.0
        assert 0 < icmp["rtt_min_ms"] <= icmp["rtt_ms"] <= icmp["rtt_max_ms"] < 100
        tcp = [r for r in rows if r["kind"] == "tcp" and r["up"] == 1.0][0]
        assert tcp["target"] == "collector-port" and tcp["connect_ms"] >= 0

        host = wait_until(lambda: query(server.url, database, "SELECT * FROM host WHERE host = 'plo-pc'"), 30, "host points")
        assert 0 <= host[-1]["cpu_pct"] <= 100 and 0 < host[-1]["mem_used_pct"] < 100
        disks = query(server.url, database, "SELECT used_pct FROM host_disk WHERE host = 'plo-pc' GROUP BY mount")
        assert disks and all(0 <= d["used_pct"] <= 100 for d in disks)

        availability = wait_until(
            lambda: query(server.url, database, "SELECT up, kind FROM availability WHERE host = 'plo-pc' AND up = 1"), 30, "availability"
        )
        assert availability[0]["kind"] == "agent"

        # Escaping round trip through the real ingest API, queue, writer and influxd.
        awkward_tag = 'PLO pc, 2. etg "x=1"\\Vannvåg'
        awkward_text = 'line one\nline "two", a=b\\c æøå ÆØÅ'
        t_ns = time.time_ns()
        status, answer = post_json(
            f"{base}/api/v1/ingest",
            {
                "agent": "plo-pc",
                "seq": 1,
                "points": [
                    {"measurement": "hardware", "tags": {"kind": awkward_tag}, "fields": {"model": awkward_text, "age_years": 3}, "time": t_ns}
                ],
            },
            TOKEN,
        )
        assert status == 200 and answer["accepted"] == 1
        stored = wait_until(lambda: query(server.url, database, f"SELECT * FROM hardware WHERE host = 'plo-pc' AND time = {t_ns}"), 20, "hardware point")
        assert stored[0]["kind"] == awkward_tag
        assert stored[0]["model"] == awkward_text
        assert stored[0]["time"] == t_ns and stored[0]["age_years"] == 3.0
        tag_values = query(server.url, database, 'SHOW TAG VALUES FROM "hardware" WITH KEY = "kind"')
        assert [t["value"] for t in tag_values] == [awkward_tag]
        # A resend of the same (agent, seq) is acknowledged and not stored twice.
        status, answer = post_json(f"{base}/api/v1/ingest", {"agent": "plo-pc", "seq": 1, "points": []}, TOKEN)
        assert status == 200 and answer["duplicate"] is True
    finally:
        if agent is not None:
            nettvakt.stop(agent)
        nettvakt.stop(collector)
    assert collector.returncode == 0, (tmp_path / "collector.log").read_text()
