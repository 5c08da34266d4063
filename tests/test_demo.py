"""`nettvakt demo`: a collector and an agent on this machine, with and without a local InfluxDB."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil

from collector.influxql import query
from collector.localservers import wait_until

ROOT = Path(__file__).resolve().parents[1]


def start_demo(workdir: Path, duration_s: int, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "demo", "--json", "--duration", str(duration_s), "--workdir", str(workdir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(workdir.parent / f"{workdir.name}.log").open("w"),
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(10)
        raise AssertionError(f"demo printed nothing; log: {(workdir.parent / f'{workdir.name}.log').read_text()}")
    return proc, json.loads(line)


def test_demo_writes_to_a_local_influxdb(tmp_path: Path) -> None:
    proc, where = start_demo(tmp_path / "demo", 25)
    try:
        assert where["storage"] == "influxdb" and where["database"] == "nettvakt"
        rows = wait_until(
            lambda: query(where["influxdb"], "nettvakt", "SELECT up, kind, target FROM probe WHERE host = 'demo-agent' AND up = 1"),
            20,
            "demo probe points",
        )
        assert {r["kind"] for r in rows} & {"icmp", "tcp", "http"}
    finally:
        assert proc.wait(60) == 0
    # The demo stops the influxd it started.
    leftovers = [p for p in psutil.process_iter(["name", "cmdline"]) if p.info["name"] == "influxd" and str(tmp_path) in " ".join(p.info["cmdline"] or [])]
    assert not leftovers


def test_demo_without_influxdb_keeps_points_in_the_local_store(tmp_path: Path) -> None:
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    proc, where = start_demo(tmp_path / "demo", 8, env={"PATH": str(empty_path)})
    assert proc.wait(60) == 0
    assert where["storage"].startswith("local store ")
    queue = Path(where["storage"].removeprefix("local store "))
    with sqlite3.connect(queue) as db:
        stored = db.execute("SELECT COALESCE(SUM(n_points), 0) FROM batch WHERE source = 'agent:demo-agent'").fetchone()[0]
    assert stored > 0
