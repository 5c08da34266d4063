"""Every dashboard panel reads raw points for short ranges and rollups for long ones, on a real influxd.

The collector's retention set-up (collector/retention.py) makes the policies, the continuous
queries and the rp_config rows; three days of raw points shaped like the contract (probes with an
outage, availability stored on change plus a 5-minute beat, a firewall with interfaces, a printer
and a UPS, hosts, the collector's own counters, alerts and logins) are rolled up by the same
backfill the collector runs. Then, with Grafana's substitution (dashboards/check.py):

- the hidden variables resolve, from `${__from}`/`${__to}` alone, to what
  collector.rollups.resolution_for chooses, but hourly rollups where it would take 5-minute ones
  for 30 days or more (`$rp`, time series) or 7 days or more (`$coarse_rp`, tables over the
  period and the outages timeline): raw for 24 h, nettvakt_5m for 7 days (`$coarse_rp`: nettvakt_1h), nettvakt_1h for 30 days and
  a year (and 5m for a short range older than the raw retention);
- each panel that reads `"$rp"`, `"$coarse_rp"` or `"$events_rp"` gives over the same three days,
  with the variables of each resolution, the same answer from the rollups as from the raw points at matching
  bucket sizes (GROUP BY time(1h): raw, 5m and 1h; time(5m): raw and 5m), within TOLERANCE for
  means (regular sampling), sums, min, max, increases of counters and events; a median from the
  rollups (the median of bucket means) lies between the raw minimum and maximum of its bucket; a
  p95 from the rollups (the largest bucket p95) lies between the raw p95 and the raw maximum;
- each panel that reads `"$raw_rp"` (a "now" value or strings, not rolled up) runs.
"""

from __future__ import annotations

import math
import random
import re
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import pytest

from collector.config import StorageSettings
from collector.influxql import query
from collector.localservers import InfluxdServer
from collector.retention import BackfillState, InfluxAdmin, backfill, set_up
from collector.rollups import FIVE_MINUTES, HOURLY, RESOLUTIONS, resolution_for
from dashboards import check, generate

NS = 1_000_000_000
MIN = 60 * NS
HOUR = 3600 * NS
DAY = 24 * HOUR
# Means over regular sampling, sums, min, max, counter increases: the same numbers summed in
# another order (InfluxDB's float sums).
TOLERANCE = 1e-9
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Estate:
    def __init__(self, server: InfluxdServer, database: str, start_ns: int, end_ns: int):
        self.server, self.database, self.start_ns, self.end_ns = server, database, start_ns, end_ns

    def run(self, statement: str) -> list[dict[str, Any]]:
        return query(self.server.url, self.database, statement, timeout_s=30)

    def write(self, lines: list[str]) -> None:
        for i in range(0, len(lines), 10_000):
            body = ("\n".join(lines[i:i + 10_000]) + "\n").encode()
            request = urllib.request.Request(f"{self.server.url}/write?db={self.database}&precision=ns", data=body)
            with _NO_PROXY.open(request, timeout=30) as resp:
                assert resp.status == 204


def raw_points(start: int, end: int) -> list[str]:
    """Three days of an estate shaped like the contract, at regular cadences aligned to 5 minutes."""
    rnd = random.Random(19)
    lines = []
    outage = (start + DAY + 2 * HOUR, start + DAY + 2 * HOUR + 25 * MIN)  # whole 5-minute buckets
    for site, host in (("radhus", "pc1"), ("skole", "pc2")):
        for target in ("gw", "dns"):
            for t in range(start, end, 30 * NS):
                tags = f"probe,site={site},host={host},kind=icmp,target={target}"
                if outage[0] <= t < outage[1] and target == "gw" and host == "pc2":
                    lines.append(f'{tags} up=0,loss_pct=100,method="icmp" {t}')
                    continue
                rtt = 4 + 3 * math.sin(t / (6 * HOUR)) + rnd.expovariate(1.5)
                lines.append(f"{tags} up=1,rtt_ms={rtt:.3f},rtt_min_ms={rtt * 0.8:.3f},rtt_max_ms={rtt * 1.6:.3f},rtt_p95_ms={rtt * 1.4:.3f},"
                             f'loss_pct={20.0 if rnd.random() < 0.03 else 0.0},jitter_ms={rnd.uniform(0.1, 2):.3f},method="icmp" {t}')
        # availability: on every change and a 5-minute beat; up_s and judged_s since the series' previous point.
        for kind, extra in (("agent", ""), ("target", ",target=gw")):
            down = outage if (kind == "target" and host == "pc2") else (start + 2 * DAY + 7 * MIN + 13 * NS, start + 2 * DAY + 31 * MIN)
            times = sorted(set(range(start, end, 300 * NS)) | {down[0], down[1]})
            previous = start - 300 * NS
            for t in times:
                up = 0 if down[0] <= t < down[1] else 1
                was_up = not (down[0] <= previous < down[1])
                span_s = (t - previous) / NS
                lines.append(f"availability,site={site},kind={kind},host={host}{extra} up={up},up_s={span_s if was_up else 0.0},judged_s={span_s} {t}")
                previous = t
        lines += [f"host,site={site},host={host} cpu_pct={rnd.uniform(2, 90):.2f},mem_used_pct={40 + 20 * math.sin(t / DAY):.2f},"
                  f"load1={rnd.uniform(0, 4):.2f},uptime_s={(t - start) / NS} {t}" for t in range(start, end, MIN)]
        lines += [f"host_disk,site={site},host={host},mount=/ used_pct={50 + 10 * (t - start) / (end - start) + rnd.uniform(-0.5, 0.5):.3f} {t}"
                  for t in range(start, end, MIN)]
        lines += [f"host_net,site={site},host={host},nic=eth0 in_bps={rnd.uniform(1e4, 1e7):.0f},out_bps={rnd.uniform(1e4, 1e6):.0f} {t}"
                  for t in range(start, end, MIN)]
    for t in range(start, end, MIN):
        busy = 0.5 + 0.5 * math.sin(t / (4 * HOUR))
        lines.append(f"device,site=radhus,device=fw-radhus,kind=firewall up={0 if outage[0] <= t < outage[1] else 1},cpu_pct={busy * 60 + rnd.uniform(0, 10):.2f},"
                     f"mem_used_pct={55 + rnd.uniform(-3, 3):.2f},sessions={int(200 + busy * 800 + rnd.uniform(0, 50))},"
                     f"vpn_tunnels_up={3 if rnd.random() > 0.01 else 2},vpn_tunnels_total=3 {t}")
        for ifname, speed in (("wan1", 1e8), ("lan1", 1e9)):
            in_bps, out_bps = speed * busy * rnd.uniform(0.2, 0.9), speed * busy * rnd.uniform(0.05, 0.5)
            lines.append(f"interface,site=radhus,device=fw-radhus,ifname={ifname} in_bps={in_bps:.0f},out_bps={out_bps:.0f},"
                         f"in_util_pct={100 * in_bps / speed:.3f},out_util_pct={100 * out_bps / speed:.3f},in_errors_ps={rnd.choice((0, 0, 0, 0.5))},"
                         f"out_errors_ps=0,in_discards_ps={rnd.choice((0, 0, 1.5))},out_discards_ps=0 {t}")
        pages = (t - start) // (7 * MIN) if t < start + DAY else (t - start - DAY) // (5 * MIN)  # the counter restarts after a day (service)
        lines.append(f"device,site=radhus,device=pr-1,kind=printer up=1,pages_total={pages},printer_error=0,printer_errors=\"\" {t}")
        on_battery = start + 36 * HOUR <= t < start + 36 * HOUR + 40 * MIN
        lines.append(f"device,site=radhus,device=ups-1,kind=ups up=1,ups_on_battery={int(on_battery)},"
                     f"ups_minutes_left={(60 - (t - start - 36 * HOUR) / MIN) if on_battery else 60.0},ups_charge_pct={70.0 if on_battery else 100.0},"
                     f'ups_battery_status="normal" {t}')
        n = (t - start) // MIN
        lines.append(f"collector points_in={n * 90},written_points={n * 90 - (n % 7)},write_errors={n // 1000},dropped_points=0,rejected_points={n // 2000},"
                     f"queue_points={rnd.randint(0, 400)},agents_up={2 if not outage[0] <= t < outage[1] else 1},agents_total=2 {t}")
    for t in range(start, end, 6 * HOUR):
        lines.append(f'printer_supply,site=radhus,device=pr-1,supply=black,type=toner left_pct={100 - (t - start) / DAY * 5:.1f},state="ok" {t}')
    for i, t in enumerate(range(start + 3 * HOUR, end, 9 * HOUR)):
        lines.append(f'alert,site=radhus,rule=device_down,severity=critical,state=firing,subject=fw-radhus active=1,summary="fw-radhus svarer ikke {i}",affected=4 {t}')
        lines.append(f'alert,site=radhus,rule=device_down,severity=critical,state=resolved,subject=fw-radhus active=0,summary="fw-radhus svarer igjen {i}",affected=0 {t + 20 * MIN}')
        lines.append(f'login,site=radhus,host=pc1,user=kari,kind=ssh,event=start,terminal=pts/{i} start_time_s={t / NS},duration_s=0,from_host="10.0.0.{i}",end_unseen=0 {t}')
    return lines


@pytest.fixture(scope="module")
def estate(influx_db_module: tuple[InfluxdServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estate]:
    server, database = influx_db_module
    settings = StorageSettings(kind="influxdb_v1", url=server.url, database=database)
    admin = InfluxAdmin(settings, None)
    state = BackfillState(tmp_path_factory.mktemp("backfill") / "rollup-backfill.json")
    result = set_up(admin, settings, state)  # as the collector does at its start: policies, queries, rp_config
    now = time.time_ns()
    start = now - now % HOUR - 4 * DAY  # three whole days, ending a day ago (no continuous query reaches them)
    end = start + 3 * DAY
    found = Estate(server, database, start, end)
    found.write(raw_points(start, end))
    assert backfill(admin, result.plan, start, end) > 0
    yield found


def _dashboards_choice(chosen: str, span: check.TimeRange, hourly_from_ms: int) -> str:
    """resolution_for's choice, hourly instead of 5-minute rollups for a range of hourly_from_ms or more."""
    return HOURLY if chosen == FIVE_MINUTES and span.to_ms - span.from_ms >= hourly_from_ms else chosen


def test_the_hidden_variables_choose_what_resolution_for_chooses_hourly_sooner(estate: Estate) -> None:
    storage = StorageSettings(kind="influxdb_v1", url=estate.server.url, database=estate.database)
    policy = {name: r.retention_policy or "autogen" for name, r in RESOLUTIONS.items()}
    now_ms = int(time.time() * 1000)
    day_ms = 86_400_000
    # what, span, policy of "$rp", policy of "$coarse_rp"
    spans = {
        "24 h": (check.TimeRange.last(86400, now_ms), "autogen", "autogen"),
        "exactly 2 days": (check.TimeRange(now_ms - 2 * day_ms, now_ms), "autogen", "autogen"),
        "2 days and 1 ms": (check.TimeRange(now_ms - 2 * day_ms - 1, now_ms), "nettvakt_5m", "nettvakt_5m"),
        "7 d less 1 ms": (check.TimeRange(now_ms - 7 * day_ms + 1, now_ms), "nettvakt_5m", "nettvakt_5m"),
        "7 d": (check.TimeRange.last(7 * 86400, now_ms), "nettvakt_5m", "nettvakt_1h"),
        "30 d less 1 ms": (check.TimeRange(now_ms - 30 * day_ms + 1, now_ms), "nettvakt_5m", "nettvakt_1h"),
        "30 d": (check.TimeRange.last(30 * 86400, now_ms), "nettvakt_1h", "nettvakt_1h"),
        "a day, 40 days ago (raw points gone)": (check.TimeRange(now_ms - 40 * day_ms, now_ms - 39 * day_ms), "nettvakt_5m", "nettvakt_5m"),
        "1 year": (check.TimeRange.last(365 * 86400, now_ms), "nettvakt_1h", "nettvakt_1h"),
        "a week, 3 years ago (5-minute rollups gone)": (check.TimeRange(now_ms - 3 * 365 * day_ms, now_ms - 3 * 365 * day_ms + 7 * day_ms), "nettvakt_1h", "nettvakt_1h"),
    }
    variables = {name: {v["name"] for v in build().to_json()["templating"]["list"]} for name, build in generate.DASHBOARDS.items()}
    # every dashboard with time series
    assert {name for name, used in variables.items() if used & {"rp", "coarse_rp"}} == set(generate.DASHBOARDS) - {"lifecycle"}
    assert {name for name, used in variables.items() if "coarse_rp" in used} == {"overview", "links", "network-devices"}
    for name in generate.DASHBOARDS:
        dashboard = generate.DASHBOARDS[name]().to_json()
        if not variables[name] & {"rp", "coarse_rp"}:
            continue
        for what, (span, expected, expected_period) in spans.items():
            values = check.resolve_variables(dashboard, estate.run, span.time_filter, span)
            chosen = resolution_for(span.from_ms * 1_000_000, span.to_ms * 1_000_000, now_ms * 1_000_000, storage).name
            assert values.get("rp", expected) == expected == policy[_dashboards_choice(chosen, span, generate.SERIES_HOURLY_FROM_MS)], (name, what, values)
            assert values.get("coarse_rp", expected_period) == expected_period == policy[_dashboards_choice(chosen, span, generate.COARSE_HOURLY_FROM_MS)], (name, what, values)
            rollup = expected != "autogen"
            # A table over the period takes the suffixes of "$rp": raw for both or a rollup for both,
            # and every rollup names its fields alike.
            assert (expected_period != "autogen") == rollup
            assert values.get("events_rp", "nettvakt_events" if rollup else "autogen") == ("nettvakt_events" if rollup else "autogen")
            assert values.get("min_sfx", "_min::field" if rollup else "::field") == ("_min::field" if rollup else "::field")
            assert values.get("max_sfx", "_max::field" if rollup else "::field") == ("_max::field" if rollup else "::field")
            assert values.get("p95_fn", "max" if rollup else "percentile") == ("max" if rollup else "percentile")
            assert values.get("p95_args", "_p95::field" if rollup else "::field, 95") == ("_p95::field" if rollup else "::field, 95")
            floor = {"autogen": "1s", "nettvakt_5m": "5m", "nettvakt_1h": "1h"}[expected]
            assert values.get("min_interval", floor) == floor
            assert values.get("raw_rp", "autogen") == "autogen"


def _select_items(statement: str) -> list[str]:
    """The outer SELECT's expressions, in order (split at top-level commas)."""
    body = statement[len("SELECT "):]
    depth, items, current = 0, [], ""
    for i, ch in enumerate(body):
        if depth == 0 and body.startswith(" FROM ", i):
            break
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += ch
    return items + [current.strip()]


def _by_bucket(rows: list[dict[str, Any]], statement: str, columns: int) -> dict[tuple[Any, ...], list[Any]]:
    group = statement.rpartition(" GROUP BY ")[2] if " GROUP BY " in statement.rpartition(" FROM ")[2] else ""
    tags = re.findall(r'"(\w+)"', group)
    out = {}
    for row in rows:
        key = (row["time"], *(row.get(t) for t in tags))
        assert key not in out, key
        out[key] = list(row.values())[1:1 + columns]
    return out


def _bound(estate: Estate, statement: str, pattern: str, replacement: str, columns: int) -> dict[tuple[Any, ...], list[Any]]:
    """The raw answer with one aggregate replaced (median -> min, ...): the bound a rollup answer must keep to."""
    changed = re.sub(pattern, replacement, statement)
    assert changed != statement
    return _by_bucket(estate.run(changed), changed, columns)


def _panels(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for where, q in check.iter_queries(dashboard):
        if not where.startswith("variable"):
            yield where, q


def test_every_panel_gives_the_same_answer_from_rollups_as_from_raw_points(estate: Estate) -> None:
    window = check.TimeRange(estate.start_ns // 1_000_000, estate.end_ns // 1_000_000 - 1)
    # Spans where both "$rp" and "$coarse_rp" take the resolution.
    spans = {"raw": check.TimeRange.last(86400), "5m": check.TimeRange.last(3 * 86400), "1h": check.TimeRange.last(365 * 86400)}
    compared = bounded = 0
    for name, build in generate.DASHBOARDS.items():
        dashboard = build().to_json()
        values = {res: check.resolve_variables(dashboard, estate.run, span.time_filter, span) for res, span in spans.items()}
        for where, panel_query in _panels(dashboard):
            reads = set(re.findall(r'FROM "\$(\w+)"\.', panel_query))
            assert len(reads) == 1 and reads <= {"rp", "coarse_rp", "raw_rp", "events_rp"}, (name, where, panel_query)
            if reads == {"raw_rp"}:  # "now" and strings: the raw policy at every range
                for res in spans:
                    estate.run(check.substitute(panel_query, values[res], window.time_filter, "1h", window))
                continue
            for interval, resolutions in (("1h", ("raw", "5m", "1h")), ("5m", ("raw", "5m"))):
                statements = {res: check.substitute(panel_query, values[res], window.time_filter, interval, window) for res in resolutions}
                items = _select_items(statements["raw"])
                answers = {res: _by_bucket(estate.run(s), s, len(items)) for res, s in statements.items()}
                raw = answers["raw"]
                assert raw, (name, where, statements["raw"])
                kinds = [re.match(r"(\w+)\(", item).group(1) if re.match(r"\w+\(", item) else "field" for item in items]
                low = high = None
                if "median" in kinds:
                    low = _bound(estate, statements["raw"], r"\bmedian\(", "min(", len(items))
                    high = _bound(estate, statements["raw"], r"\bmedian\(", "max(", len(items))
                if "percentile" in kinds:
                    low = raw
                    high = _bound(estate, statements["raw"], r"\bpercentile\(([^,()]+), 95\)", r"max(\1)", len(items))
                for res in resolutions[1:]:
                    assert f'"{RESOLUTIONS[res].retention_policy}".' in statements[res] or '"nettvakt_events".' in statements[res], statements[res]
                    got = answers[res]
                    assert set(got) == set(raw), (name, where, res, sorted(set(got) ^ set(raw))[:5])
                    for key, raw_row in raw.items():
                        for i, kind in enumerate(kinds):
                            mine, truth = got[key][i], raw_row[i]
                            context = (name, where, res, interval, key, items[i], mine, truth)
                            if kind in ("median", "percentile") and truth is not None:
                                assert low is not None and high is not None
                                assert low[key][i] - TOLERANCE <= mine <= high[key][i] + TOLERANCE, (*context, low[key][i], high[key][i])
                                bounded += 1
                            elif isinstance(truth, (int, float)) and not isinstance(truth, bool):
                                assert mine == pytest.approx(truth, rel=TOLERANCE, abs=TOLERANCE), context
                                compared += 1
                            else:
                                assert mine == truth, context
    assert compared > 5000 and bounded > 500, (compared, bounded)
