"""The scale simulator (bench/scale_sim.py) in small and fast: twelve agents, one device, one
collector on a real influxd, every interval a tenth of the inventory's defaults.

It must lose nothing (each measurement counted in InfluxDB equals what the collector
acknowledged), time every ingest request, send the cut agent's backlog in batches timed apart,
and see an alert at the webhook receiver for the cut agent and the stopped device.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from bench.scale_sim import Layout, RunSettings, simulate


def test_a_small_simulation_loses_nothing_and_times_what_it_sends(tmp_path: Path) -> None:
    settings = RunSettings(steady_s=3.0, cut_share=0.0, backlog_h=0.2, time_scale=0.1, floor=False)
    result = asyncio.run(simulate(Layout(collectors=1, agents=12, devices=1), settings, tmp_path, log=lambda line: None))

    acked, stored = result["acknowledged_points"], result["stored_points"]
    assert set(acked) == {"host", "host_disk", "host_net", "probe", "hardware"}
    assert stored == acked and result["lost_points"] == {} and result["criteria"]["no_loss"]
    assert result["duplicates"] == {"main": 0} and result["rate_limited"] == {"main": 0}

    ingest = result["ingest"]
    assert ingest["requests"] > 12 and 0 < ingest["p50_ms"] <= ingest["p99_ms"] <= ingest["max_ms"]
    assert result["ingest_by_phase"]["steady"]["requests"] > 0
    # One agent cut (at least one per collector), back with 0.2 h of older points: their batches are
    # timed apart from the regular reports (with what it measured while cut, in the same batches).
    assert result["cut_agents"] == 1 and result["backlog_points"] > 0
    assert result["backlog_batches"]["requests"] >= 1 and result["backlog_batches"]["points"] >= result["backlog_points"]
    # The cut agent's silence and the stopped device, each an alert at the receiver, after the cut.
    delays = result["alert_delays_s"]
    assert {key.split(":")[0] for key in delays} == {"agent_silent", "device_down"} and len(delays) == 2
    assert all(0 < d < 3 * result["alert_aim_s"] + 60 for d in delays.values())
    # CPU per phase for every process that matters, and the generator's own lag.
    assert set(result["cores_used_by_phase"]["steady"]) == {"collector:main", "storage", "snmpsim", "generator", "cpu_pressure_pct", "wall_s"}
    assert result["generator_loop_lag"]["steady"]["p99_ms"] is not None
