"""Done-when of issue 3: SIGKILL the agent mid-send, stop the collector for a while, and still
every point arrives in InfluxDB exactly once.

Real processes all the way: `nettvakt collector run`, `nettvakt agent run`, influxd. The
collector is frozen with SIGSTOP so that the agent's POST sits unread in the collector's
socket; the agent is killed with SIGKILL right then. The collector, thawed, stores that batch
although nobody can receive its answer: the agent, restarted while the collector is stopped,
keeps measuring into its spool and later resends the batch under the same seq, which the
second collector run must recognise as a duplicate.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

from collector.influxql import query
from collector.localservers import free_port, wait_until
from inventories import InventoryBuilder

TOKEN = "kill-test-agent-token-0123456789"
AGENT = "plo-pc"
TOKEN_ENV = {"NETTVAKT_AGENT_TOKEN": TOKEN}
AGENT_MEASUREMENTS = ("probe", "host", "host_disk", "host_net", "hardware", "service")


def kill_test_inventory(folder: Path, influx_url: str, database: str, port: int) -> InventoryBuilder:
    """One agent reporting every half second, probing the collector's own port."""
    return (
        InventoryBuilder(folder)
        .influxdb(influx_url, database, flush_interval_s=0.2)
        .site("helse")
        .agent(AGENT, TOKEN, interval_s=0.5)
        .probe("collector-port", "tcp", f"127.0.0.1:{port}", agents=[AGENT], interval_s=0.5, timeout_s=1)
    )


def spool_state(path: Path) -> tuple[list[tuple[int, dict[str, Any]]], list[int]]:
    """(id, point) of every spooled point and the unacknowledged seqs, read beside the agent."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        points = [(i, json.loads(b)) for i, b in db.execute("SELECT id, body FROM point ORDER BY id")]
        seqs = [s for (s,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    finally:
        db.close()
    return points, seqs


def seen_seqs(queue_path: Path) -> list[int]:
    db = sqlite3.connect(f"file:{queue_path}?mode=ro", uri=True, timeout=10)
    try:
        return [s for (s,) in db.execute("SELECT seq FROM seen WHERE source = ?", (f"agent:{AGENT}",))]
    finally:
        db.close()


def unread_request_on(port: int) -> bool:
    """An established connection to `port` with bytes the (frozen) server has not read."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            rx_queue = int(cols[4].split(":")[1], 16)
            if local_port == port and cols[3] == "01" and rx_queue > 0:
                return True
    return False


def point_key(measurement: str, tags: dict[str, Any], time_ns: int) -> tuple[Any, ...]:
    own = tuple(sorted((k, v) for k, v in tags.items() if k not in ("site", "host")))
    return measurement, own, time_ns


def stored_points(url: str, database: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Every agent point in InfluxDB, keyed like `point_key` (tags of the measurement that are set)."""
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for measurement in AGENT_MEASUREMENTS:
        tag_keys = [row["tagKey"] for row in query(url, database, f'SHOW TAG KEYS FROM "{measurement}"')]
        for row in query(url, database, f"SELECT * FROM \"{measurement}\" WHERE host = '{AGENT}'"):
            tags = {k: row[k] for k in tag_keys if row.get(k) not in (None, "")}
            key = point_key(measurement, tags, row["time"])
            assert key not in found, f"two rows for one point: {key}"
            found[key] = row
    return found


def test_sigkill_mid_send_and_collector_outage_lose_and_duplicate_nothing(influx_db, nettvakt, tmp_path: Path) -> None:
    server, database = influx_db
    port = free_port()
    built = kill_test_inventory(tmp_path, server.url, database, port)
    inventory = built.write()
    base = f"http://127.0.0.1:{port}"
    spool = tmp_path / "agent" / "spool.sqlite3"
    queue_db = built.data_dir / "queue.sqlite3"
    collector_args = ["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"]
    agent_args = ["agent", "run", "--collector", base, "--agent-id", AGENT, "--spool", str(spool)]
    collector_log, agent_log = tmp_path / "collector.log", tmp_path / "agent.log"
    collector = nettvakt.start(collector_args, collector_log, TOKEN_ENV)
    wait_until(lambda: nettvakt.health(base)["status"] == "ok", 30, "collector health")
    agent = nettvakt.start(agent_args, agent_log, TOKEN_ENV)
    wait_until(lambda: query(server.url, database, f"SELECT * FROM host WHERE host = '{AGENT}'"), 30, "first host points")

    # 1. Freeze the collector; the agent's next POST stays unread in its socket. Kill the agent then.
    os.kill(collector.pid, signal.SIGSTOP)
    wait_until(lambda: unread_request_on(port), 30, "a POST sitting unread at the frozen collector")
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(10)
    at_kill, in_flight = spool_state(spool)
    assert len(in_flight) == 1 and at_kill, (in_flight, len(at_kill))
    in_flight_seq = in_flight[0]

    # 2. Thaw the collector: it stores the orphaned batch (the answer goes nowhere). Then stop it.
    os.kill(collector.pid, signal.SIGCONT)
    wait_until(lambda: in_flight_seq in seen_seqs(queue_db), 30, "the orphaned batch stored by the collector")
    wait_until(lambda: nettvakt.health(base)["queue"]["queue_points"] == 0, 30, "first collector run drained to InfluxDB")
    first_run = nettvakt.health(base)["ingest"]
    nettvakt.stop(collector)
    assert collector.returncode == 0, collector_log.read_text()

    # 3. The agent comes back while the collector is away: cached config, measuring into the spool.
    agent = nettvakt.start(agent_args, agent_log, TOKEN_ENV)
    highest_at_kill = at_kill[-1][0]
    wait_until(lambda: len([i for i, _ in spool_state(spool)[0] if i > highest_at_kill]) >= 30, 60, "points measured during the outage")
    during_outage, _ = spool_state(spool)

    # 4. The collector returns; wait until everything measured so far has been acknowledged.
    collector = nettvakt.start(collector_args, collector_log, TOKEN_ENV)
    highest_outage = during_outage[-1][0]
    wait_until(lambda: all(i > highest_outage for i, _ in spool_state(spool)[0]), 90, "outage backlog acknowledged")
    nettvakt.stop(agent)
    assert agent.returncode == 0, agent_log.read_text()
    leftover, leftover_seqs = spool_state(spool)
    assert not leftover_seqs  # a clean stop leaves no half-sent batch
    wait_until(lambda: nettvakt.health(base)["queue"]["queue_points"] == 0, 30, "second collector run drained to InfluxDB")
    second_run = nettvakt.health(base)["ingest"]

    stored = stored_points(server.url, database)
    # Every point that was in the spool when the agent died, or measured while the collector was
    # away, is in InfluxDB with its own time and the same fields.
    for _, point in at_kill + during_outage:
        key = point_key(point["measurement"], point["tags"], point["time"])
        assert key in stored, f"lost: {key}"
        row = stored[key]
        for name, value in point["fields"].items():
            assert row[name] == (float(value) if isinstance(value, (int, float)) else value), (key, name)
    # Exactly once: the collector accepted each point once over both runs (the resent batch was
    # a duplicate, not accepted twice), and InfluxDB holds exactly what was accepted. Points
    # still in the stopped agent's spool have not been sent yet.
    assert second_run["duplicates"] >= 1
    assert first_run["points"] + second_run["points"] == len(stored)
    assert not any(point_key(p["measurement"], p["tags"], p["time"]) in stored for _, p in leftover)
    seqs = seen_seqs(queue_db)
    assert len(seqs) == len(set(seqs)) and in_flight_seq in seqs
    assert first_run["batches"] + second_run["batches"] == len(seqs)
