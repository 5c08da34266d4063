"""Dashboards: the committed JSON is what the generator writes, and each passes the structural check.

That every query returns data is proven on real lab data in tests/lab/test_scenarios.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dashboards import check, generate

DASHBOARDS = Path(__file__).resolve().parents[1] / "dashboards"


FILES = sorted(generate.render())


def test_committed_dashboards_are_what_the_generator_writes() -> None:
    committed = sorted(p.name for p in DASHBOARDS.glob("*.json"))
    assert committed == FILES
    for name, text in generate.render().items():
        assert (DASHBOARDS / name).read_text(encoding="utf-8") == text, f"{name} is stale: run python dashboards/generate.py"


@pytest.mark.parametrize("name", FILES)
def test_dashboard_structure(name: str) -> None:
    dashboard = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    assert check.structural_problems(dashboard) == []
    assert dashboard["templating"]["list"][0]["name"] == "DS"
    assert all(p["datasource"]["uid"] == "${DS}" for p in dashboard["panels"])


def test_structural_check_catches_mistakes() -> None:
    dashboard = generate.overview().to_json()
    dashboard["panels"][1]["gridPos"]["x"] = 0  # on top of panel 1
    dashboard["panels"][2]["id"] = 1
    dashboard["panels"][3]["targets"][0]["query"] += ' AND "host" =~ /^$nosuch$/'
    problems = check.structural_problems(dashboard)
    assert any("overlaps" in p for p in problems)
    assert any("not unique" in p for p in problems)
    assert any("$nosuch" in p for p in problems)


def test_grafana_style_substitution() -> None:
    query = 'SELECT x FROM "probe" WHERE $timeFilter AND "site" =~ /^$site$/ GROUP BY time($__interval)'
    out = check.substitute(query, {"site": ["helse", "vannvag"]}, "time > now() - 1h", "10s")
    assert out == 'SELECT x FROM "probe" WHERE time > now() - 1h AND "site" =~ /^(helse|vannvag)$/ GROUP BY time(10s)'
    assert check.grafana_regex(["a.b/c"]) == r"a\.b\/c"
    # Grafana's time range in ms, and a single-valued (hidden) variable as it is, not as a regex.
    span = check.TimeRange(1_700_000_000_000, 1_700_086_400_000)
    hidden = 'SELECT "rp" FROM "nettvakt_meta"."rp_config" WHERE ${__to} - ${__from} <= "max_ms" AND time >= now() - $__from' + "ms"
    assert check.substitute(hidden, {}, span.time_filter, "1m", span) == (
        'SELECT "rp" FROM "nettvakt_meta"."rp_config" WHERE 1700086400000 - 1700000000000 <= "max_ms" AND time >= now() - 1700000000000ms')
    assert check.substitute('SELECT max(x${max_sfx}) FROM "$rp"."m" WHERE $timeFilter', {"rp": "nettvakt_5m", "max_sfx": "_max::field"}, span.time_filter, "5m") == (
        'SELECT max(x_max::field) FROM "nettvakt_5m"."m" WHERE time >= 1700000000000ms and time <= 1700086400000ms')
    with pytest.raises(ValueError, match="no range was given"):
        check.substitute(hidden, {}, span.time_filter, "1m")


def test_a_dashboard_opens_as_grafana_opens_it() -> None:
    """All where the variable has it and stores it; else the stored value where it is still an option;
    else the first option (Grafana lists All first, so a variable meant to open on one value has none)."""
    links = {v["name"]: v for v in generate.links().to_json()["templating"]["list"]}
    network = {v["name"]: v for v in generate.network_devices().to_json()["templating"]["list"]}
    assert check.opening_value(links["site"], sorted(["b-site", "a-site"])) == ["a-site"]  # the first site
    assert check.opening_value(links["host"], ["h1", "h2"]) == ".*"  # All, as the query gets it
    assert check.opening_value(network["site"], ["a-site", "b-site"]) == ".*"
    assert check.opening_value(network["device"], ["fw-1", "sw-1"]) == ["fw-1"]
    stored = {**network["device"], "current": {"text": ["sw-1"], "value": ["sw-1"]}}
    assert check.opening_value(stored, ["fw-1", "sw-1"]) == ["sw-1"]
    assert check.opening_value({**stored, "multi": False}, ["fw-1", "gone"]) == "fw-1"
    assert check.opening_value({**links["host"], "allValue": None}, ["h1", "h2"]) == ["h1", "h2"]
    assert not any(v.get("includeAll") for v in generate.hosts().to_json()["templating"]["list"] if v["name"] == "site")


def test_every_panel_reads_a_resolution_variable_never_a_fixed_policy() -> None:
    """Sampled data from "$rp" (a table over the period from "$coarse_rp"), events from "$events_rp",
    now-values and strings from "$raw_rp": proven on a real influxd in tests/test_dashboards_resolution.py."""
    for name, build in generate.DASHBOARDS.items():
        for where, query in check.iter_queries(build().to_json()):
            if where.startswith("variable"):
                continue
            sources = re.findall(r'FROM\s+("[^"]*"(?:\."[^"]*")*|\w+)', query)
            assert sources and all(s.startswith(('"$rp".', '"$coarse_rp".', '"$raw_rp".', '"$events_rp".')) for s in sources), (name, where, sources)


def test_a_panel_with_its_own_interval_floor_asks_for_no_bucket_finer_than_the_rollups_it_reads() -> None:
    """A panel reading "$rp" by time buckets takes the resolution's own floor, `${min_interval}`;
    one with a fixed floor (the outages timeline: 10 minutes, two availability beats) keeps it at
    least the 5-minute rollups' bucket, and its maxDataPoints makes Grafana's buckets an hour or
    more wherever it reads hourly rollups, whatever the screen's width."""
    fixed = []
    for name, build in generate.DASHBOARDS.items():
        for panel in build().to_json()["panels"]:
            queries = [t["query"] for t in panel["targets"]]
            if not any(re.search(r'"\$(rp|coarse_rp)"\.', q) and "$__interval" in q for q in queries):
                continue
            if panel.get("interval") == "${min_interval}":
                continue
            fixed.append((name, panel["title"]))
            floor_min = int(re.fullmatch(r"(\d+)m", panel["interval"]).group(1))
            assert floor_min >= 5, (name, panel["title"], panel["interval"])
            hourly_from = generate.COARSE_HOURLY_FROM_MS if any('"$coarse_rp".' in q for q in queries) else generate.SERIES_HOURLY_FROM_MS
            assert hourly_from / panel["maxDataPoints"] >= 3_600_000, (name, panel["title"])
    assert fixed == [("overview", "Outages per agent, device and probe target (only those down in the period)")]
