"""`nettvakt demo --lab`: the simulated municipality starts, measures, prints where to look, and leaves nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.influxql import contract_problems, query
from collector.localservers import wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.lab


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def test_demo_lab_runs_the_municipality_and_cleans_up(lab_possible: None, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent.cli", "demo", "--lab", "--json", "--duration", "25", "--workdir", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=(tmp_path / "demo.log").open("w"),
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, (tmp_path / "demo.log").read_text()
        where = json.loads(line)
        assert set(where) >= {"collector", "health", "influxdb", "database", "namespaces"}
        def sites_measured() -> bool:
            rows = query(where["influxdb"], where["database"], "SELECT last(rtt_ms) FROM probe GROUP BY site")
            return {r["site"] for r in rows} >= {"helse", "hansnes", "vannvag"}

        wait_until(sites_measured, 40, "probe results from the lab's sites")
        devices = wait_until(
            lambda: query(where["influxdb"], where["database"], "SELECT last(up) FROM device WHERE device = 'fw'"), 30, "the firewall polled over SNMP"
        )
        assert devices[0]["last"] == 1.0
        # Everything the municipality wrote (agents, SNMP, alerting, liveness) is contract data.
        assert contract_problems(where["influxdb"], where["database"]) == []
    finally:
        assert proc.wait(90) == 0, (tmp_path / "demo.log").read_text()
    # Its own namespaces are gone (other runs on this machine may have labs of their own).
    assert not set(where["namespaces"].split()) & namespaces()
