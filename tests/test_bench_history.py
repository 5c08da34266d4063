"""The long-history benchmark's generator (bench/history_year.py) agrees with the contract and the rollups.

The benchmark itself runs by hand (docs/benchmarks.md); this proves, in seconds, what its figures
rest on: the estate is the example inventory copied (and the copy is a valid inventory the
reports can read), every raw point it writes fits the measurement contract, and the rollup rows it
computes with numpy for days it writes no raw points of are the rows the collector's backfill (the
continuous queries' own SELECT ... INTO) makes from the same raw points on a real influxd.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from agent.contract import MEASUREMENTS_SPEC, point_problems
from collector.config import StorageSettings, load_inventory
from collector.localservers import InfluxdServer
from collector.retention import BackfillState, InfluxAdmin, backfill, set_up

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("history_year", REPO / "bench" / "history_year.py")
assert _spec is not None and _spec.loader is not None
history = importlib.util.module_from_spec(_spec)
sys.modules["history_year"] = history  # dataclasses look their module up by name
_spec.loader.exec_module(history)

HOUR_S = 3600


def test_the_estate_is_the_example_inventory_copied(tmp_path: Path) -> None:
    example = load_inventory(REPO / "inventory.toml")
    estate = history.build_estate(REPO / "inventory.toml", 3)
    assert estate.summary() == {
        "sites": 3 * len(example.site), "agents": 3 * len(example.agent), "devices": 3 * (len(example.device) + 1),  # + a printer a copy
        "probe_series": 3 * sum(len([a for a in example.agent if a.site in p.sites]) for p in example.probe),
        "interfaces": 3 * (sum(len(history.MODEL_INTERFACES[d.hardware.model]) for d in example.device if d.hardware)
                           + len(history.MODEL_INTERFACES[history.PRINTER["hardware"]["model"]])),
    }
    interval_of = {a.id: a.interval_s for a in example.agent}
    assert all(a.interval_s == interval_of[a.id.rsplit("-", 1)[0]] for a in estate.agents)  # the inventory's, or the config's default
    path = tmp_path / "inventory.toml"
    path.write_text(history.toml_text(history.inventory_for(estate, "http://127.0.0.1:9", "after", tmp_path / "data")), encoding="utf-8")
    copy = load_inventory(path)  # what the reports read: valid, with every copy's sites, uplinks and probes
    assert [s.id for s in copy.site] == estate.sites
    assert all(s.uplink in {d.id for d in copy.device} for s in copy.site if s.uplink)
    assert len(copy.probe) == 3 * len(example.probe) and len(copy.alert) == len(example.alert)


def test_every_raw_point_fits_the_contract() -> None:
    estate = history.build_estate(REPO / "inventory.toml", 1)
    gen = history.Generator(estate, 1_700_000_000 // 86400 * 86400, 2)
    measurements = set()
    for before in (False, True):
        for rows in history.raw_rows(gen, 1, before):
            spec = MEASUREMENTS_SPEC[rows.measurement]
            writer = "agent" if "agent" in spec.writers else "collector"
            measurements.add(rows.measurement)
            # a sample of every series: its first and last points, and every point without some field
            picks = set(np.unique(rows.series, return_index=True)[1]) | set(len(rows.series) - 1 - np.unique(rows.series[::-1], return_index=True)[1])
            picks |= set(np.flatnonzero(np.isnan(np.column_stack(list(rows.fields.values()))).any(axis=1))[:200])
            for r in sorted(picks):
                fields = {k: float(v[r]) for k, v in rows.fields.items() if not np.isnan(v[r])}
                fields |= {k: v[r] for k, v in rows.strings.items() if v[r] is not None}
                assert point_problems(rows.measurement, rows.tags[rows.series[r]], fields, writer) == [], (rows.measurement, r)
    dashboards_read = {"probe", "host", "host_disk", "host_net", "device", "interface", "printer_supply", "availability", "alert",
                       "collector", "login", "lifecycle", "hardware"}
    assert dashboards_read <= measurements


def test_computed_rollups_are_the_backfills(influx_db: tuple[InfluxdServer, str], tmp_path: Path) -> None:
    server, database = influx_db
    settings = StorageSettings(kind="influxdb_v1", url=server.url, database=database)
    admin = InfluxAdmin(settings, None)
    plan = set_up(admin, settings, BackfillState(tmp_path / "rollup-backfill.json")).plan
    estate = history.build_estate(REPO / "inventory.toml", 1)
    # two days ending at the last whole hour; day 0's first two hours, long before any continuous query looks
    end_s = int(time.time()) // HOUR_S * HOUR_S
    gen = history.Generator(estate, end_s - 2 * 86400, 2)
    start_ns, end_ns = gen.day_start_ns(0), gen.day_start_ns(0) + 2 * HOUR_S * 10**9
    writer = history.Writer(server.url)
    for rows in history.raw_rows(gen, 0, before=False):
        writer.write(database, "autogen", rows.between(start_ns, end_ns))
    writer.close()
    assert backfill(admin, plan, start_ns, end_ns) > 0
    found = history.compare_with_backfill(server.url, database, gen, 0, hours=2)
    assert found["mismatches"] == 0, found["examples"]
    assert found["values_compared"] > 50_000 and found["max_relative_difference"] <= 1e-9, found


@pytest.mark.parametrize("range_s, width, floor, max_data_points, expected", [
    (86400, 24, 1, None, "1m"), (7 * 86400, 12, 300_000, None, "10m"), (30 * 86400, 24, 300_000, None, "20m"),
    (365 * 86400, 24, 3_600_000, None, "6h"),
    (3600, 24, 300_000, None, "5m"),  # never finer than the panel's min interval
    (30 * 86400, 16, 600_000, 200, "3h"), (86400, 16, 600_000, 200, "10m"),  # the panel's maxDataPoints, not its width
])
def test_the_interval_is_grafanas(range_s: int, width: int, floor: int, max_data_points: int | None, expected: str) -> None:
    assert history._interval_text(history.grafana_interval_ms(range_s * 1000, width, floor, max_data_points)) == expected
