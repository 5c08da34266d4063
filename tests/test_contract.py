"""The measurement contract as data: sound in itself, the docs made from it, and what our own code writes fits it."""

from __future__ import annotations

import datetime as dt
import socket
import time
from pathlib import Path

import pytest

from agent.contract import AGENT_MEASUREMENTS, MEASUREMENTS_SPEC, PROBE_KINDS, contract_errors, point_problems, render_metrics_doc
from agent.hostmetrics import HostMetrics
from agent.hwfacts import collect_hardware
from agent.listening import collect_listening
from agent.points import Point
from agent.probes import PROBES
from agent.services import collect_services
from collector.config import load_inventory
from collector.ingest import IngestError, TimeWindow, agent_point
from collector.lifecycle import lifecycle_points

REPO = Path(__file__).resolve().parents[1]
TAGS = {"site": "radhus", "host": "pc1"}
WINDOW = TimeWindow(max_ahead_s=300, max_age_s=90 * 86400)


def test_the_schema_is_sound() -> None:
    assert contract_errors() == []
    assert AGENT_MEASUREMENTS == {"probe", "host", "host_disk", "host_net", "hardware", "service", "login"}
    # Every field a boolean or a number becomes is a float; nothing else is stored but strings.
    assert {f.type for m in MEASUREMENTS_SPEC.values() for f in m.fields.values()} == {"float", "string"}


def test_docs_metrics_md_is_generated_from_the_schema() -> None:
    text = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert render_metrics_doc(text) == text, "run: python -m agent.contract --write docs/metrics.md"


def test_probe_kinds_of_the_contract_are_the_agents_probes() -> None:
    assert set(PROBE_KINDS) == set(PROBES)


def _through_ingest(points: list[Point]) -> None:
    """Each point as the agent would post it passes the collector's ingest check, and fits the schema."""
    now = time.time_ns()
    for i, point in enumerate(points):
        assert point_problems(point.measurement, point.tags, point.fields, "agent") == [], point
        agent_point(point.to_json(), i, "pc1", "radhus", now, WINDOW)


def test_what_the_agent_measures_on_this_machine_passes_ingest() -> None:
    metrics = HostMetrics(TAGS)
    metrics.collect(time.time_ns())
    points = metrics.collect(time.time_ns())  # the second sample has the network rates
    assert {p.measurement for p in points} >= {"host", "host_disk"}
    hardware = collect_hardware(TAGS, kind="server", purchased="2020-01-15")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        listening = collect_listening(TAGS)
    finally:
        listener.close()
    services = collect_services(["sshd", "no-such-service"], TAGS)
    assert listening and services and hardware is not None
    _through_ingest(points + listening + services + [hardware])


def test_ingest_refuses_what_the_schema_refuses() -> None:
    now = time.time_ns()
    good = {"measurement": "probe", "tags": {"kind": "icmp", "target": "gw"}, "fields": {"up": 1.0}, "time": now}
    point = agent_point(good, 0, "pc1", "radhus", now, WINDOW)
    assert dict(point.tags) == {"kind": "icmp", "target": "gw", "site": "radhus", "host": "pc1"}
    bool_up = agent_point({**good, "fields": {"up": True, "sent": 3}}, 0, "pc1", "radhus", now, WINDOW)
    assert bool_up.fields == {"up": 1.0, "sent": 3.0} and all(type(v) is float for v in bool_up.fields.values())
    for change, where in [
        ({"fields": {"up": 1.0, "host": "pc2"}}, "points[0].fields"),
        ({"fields": {"up": "1"}}, "points[0].fields.up"),
        ({"tags": {"kind": "icmp"}}, "points[0].tags.target"),
        ({"time": now + 301 * 10**9}, "points[0].time"),
        ({"time": now - 91 * 86400 * 10**9}, "points[0].time"),
    ]:
        with pytest.raises(IngestError) as caught:
            agent_point({**good, **change}, 0, "pc1", "radhus", now, WINDOW)
        assert caught.value.where == where and caught.value.status == 400


def test_the_collectors_own_points_fit_the_contract() -> None:
    inventory = load_inventory(REPO / "inventory.toml")
    points = lifecycle_points(inventory, time.time_ns(), dt.date(2026, 12, 6))
    assert points
    for point in points:
        assert point_problems(point.measurement, point.tags, point.fields, "collector") == [], point
