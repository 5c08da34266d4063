"""Generates the Grafana dashboards in this folder from one description per dashboard.

Run `python dashboards/generate.py` after changing it; tests/test_dashboards.py proves the
committed JSON is what this script writes, checks the structure, and runs every query
against a real InfluxDB holding data from the lab municipality.

Queries are InfluxQL over the measurement contract (docs/metrics.md). The data source is
the template variable `DS` (type influxdb), defaulting to the provisioned uid
`nettvakt-influxdb`, so an import works on any Grafana 10/11.

Resolution (docs/storage.md, "How the dashboards pick a resolution"): hidden variables read the
`rp_config` rows the collector's retention set-up writes, with Grafana's `${__from}`/`${__to}`,
and refresh on every time range change. A panel over sampled data reads `FROM "$rp"."m"` and the
field kept for its aggregate: `mean(F)`, `min(F${min_sfx})`, `max(F${max_sfx})`,
`${p95_fn}(F${p95_args})`, `sum` of an additive field, `max` of a cumulative one: raw points for
ranges up to 2 days, 5-minute rollups below 30 days, hourly ones beyond (a table over the period,
and the outages timeline, read `"$coarse_rp"`: hourly from 7 days). Events read `"$events_rp"`
(raw, or `nettvakt_events` where they are kept whole), and "now" panels and string fields, which
are not rolled up, read the raw policy `"$raw_rp"`.

Dashboards over a site or a device (links, hosts, network devices) open on one: a panel draws
what one looks at, not every series of the estate (docs/benchmarks.md, "Dashboards opened on one
device or site").
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from collector.rollups import FIVE_MINUTES, META_RETENTION_POLICY, RAW, RP_CONFIG

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "influxdb", "uid": "${DS}"}
PROVISIONED_UID = "nettvakt-influxdb"
SCHEMA_VERSION = 39


class Dashboard:
    """Panels are laid out left to right in rows of 24 columns."""

    def __init__(self, uid: str, title: str, description: str, tags: list[str]):
        self.uid, self.title, self.description, self.tags = uid, title, description, tags
        self.panels: list[dict[str, Any]] = []
        self.variables: list[dict[str, Any]] = [_datasource_variable()]
        self.annotations: list[dict[str, Any]] = []
        self._x = self._y = self._row_h = 0

    def _queries(self) -> list[str]:
        return [t["query"] for p in self.panels for t in p["targets"]] + [a["query"] for a in self.annotations]

    def variable(self, name: str, label: str, query: str, multi: bool = True, opens_on_all: bool = True) -> "Dashboard":
        """opens_on_all=False: the dashboard opens on the variable's first value (sorted), so its
        panels draw one device or site, not the whole estate; several values, or every one, are
        ticked in the picker (Grafana's multi-value picker selects all at once). Grafana falls back
        to the first option when the stored value is not among them, and with an All option that
        first option is All: so such a variable has none, and no stored value."""
        opening: dict[str, Any] = (
            {"includeAll": True, "allValue": ".*", "current": {"selected": True, "text": ["All"], "value": ["$__all"]}}
            if opens_on_all else {"includeAll": False, "current": {}})
        self.variables.append(
            {
                "name": name,
                "label": label,
                "type": "query",
                "datasource": DATASOURCE,
                "query": query,
                "definition": query,
                "refresh": 2,
                "multi": multi,
                **opening,
                "sort": 1,
            }
        )
        return self

    def panel(self, kind: str, title: str, queries: list[str], w: int = 12, h: int = 8, unit: str | None = None,
              description: str = "", **options: Any) -> "Dashboard":
        if self._x + w > 24:
            self._x, self._y, self._row_h = 0, self._y + self._row_h, 0
        if any("$rp" in q and "$__interval" in q for q in queries):
            options.setdefault("interval", "${min_interval}")  # never finer than the resolution's buckets
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": kind,
            "title": title,
            "description": description,
            "datasource": DATASOURCE,
            "gridPos": {"x": self._x, "y": self._y, "w": w, "h": h},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "rawQuery": True, "resultFormat": "table" if kind == "table" else "time_series", "query": q}
                for i, q in enumerate(queries)
            ],
            "fieldConfig": {"defaults": {"unit": unit} if unit else {}, "overrides": options.pop("overrides", [])},
            "options": options.pop("panel_options", {}),
        }
        panel.update(options)
        self.panels.append(panel)
        self._x += w
        self._row_h = max(self._row_h, h)
        return self

    def annotation(self, name: str, query: str) -> "Dashboard":
        self.annotations.append({"name": name, "datasource": DATASOURCE, "enable": True, "iconColor": "red", "query": query})
        return self

    def to_json(self) -> dict[str, Any]:
        used = {name for q in self._queries() for name in _VARIABLE_RE.findall(q)}
        used |= {name for p in self.panels for name in _VARIABLE_RE.findall(p.get("interval", ""))}
        hidden = [_hidden_variable(name, query, refresh) for name, (query, refresh) in HIDDEN_VARIABLES.items() if name in used]
        description = self.description
        if "rp" in used or "coarse_rp" in used:
            description += (" Raw points for ranges up to 2 days, 5-minute rollups below 30 days (tables over the period and"
                            " the outages timeline: below 7 days), hourly ones beyond (hidden variables; docs/storage.md).")
        return {
            "uid": self.uid,
            "title": self.title,
            "description": description,
            "tags": ["nettvakt", *self.tags],
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "editable": True,
            "timezone": "browser",
            "time": {"from": "now-24h", "to": "now"},
            "refresh": "1m",
            "templating": {"list": self.variables + hidden},
            "annotations": {"list": self.annotations},
            "panels": self.panels,
        }


def _datasource_variable() -> dict[str, Any]:
    return {
        "name": "DS",
        "label": "InfluxDB",
        "type": "datasource",
        "query": "influxdb",
        "current": {"selected": True, "text": PROVISIONED_UID, "value": PROVISIONED_UID},
        "hide": 0,
    }


_VARIABLE_RE = re.compile(r"\$\{?(\w+)")
ROWS = f'"{META_RETENTION_POLICY}"."{RP_CONFIG}"'
DAY_MS = 86_400_000
# The dashboards read hourly rollups sooner than collector.rollups.resolution_for, which keeps
# 5-minute ones up to 60 days: the cost of a panel is the rows it reads and returns (a month of
# 5-minute rows is 8 640 a series, of hourly ones 720).
# - A time series from 30 days: there Grafana's buckets are an hour for a panel of half the width
#   or less on a 1920-pixel screen, so it draws what it drew (wider panels: hourly instead of 20- or
#   30-minute buckets).
# - "$coarse_rp" from 7 days, for a panel that needs no finer rows there: a table over the whole
#   period (no buckets), which then leaves out at most the range's first and last hour (the hourly
#   continuous query runs at the end of each hour): 1.2 % of 7 days; and the outages timeline,
#   whose buckets are an hour or more from 7 days (its maxDataPoints).
SERIES_HOURLY_FROM_MS = 30 * DAY_MS
COARSE_HOURLY_FROM_MS = 7 * DAY_MS


def for_the_range(hourly_from_ms: int) -> str:
    """The first rp_config row (by time: by retention) that keeps the range's start and serves its
    length (the resolution collector.rollups.resolution_for would choose: docs/storage.md), the
    5-minute row only for a range shorter than hourly_from_ms."""
    return ('${__to} - ${__from} <= "max_ms" AND time >= now() - ${__from}ms'
            f' AND ("resolution" != \'{FIVE_MINUTES}\' OR ${{__to}} - ${{__from}} < {hourly_from_ms})')


# name -> (query, refresh: 2 on every time range change, 1 on load). A panel reading "$coarse_rp"
# takes the suffixes of "$rp": both are raw up to the same 2 days, and every rollup names its fields
# alike (tests/test_dashboards_resolution.py).
HIDDEN_VARIABLES: dict[str, tuple[str, int]] = {
    **{name: (f'SELECT "{name}" FROM {ROWS} WHERE {for_the_range(SERIES_HOURLY_FROM_MS)} LIMIT 1', 2)
       for name in ("rp", "min_sfx", "max_sfx", "p95_fn", "p95_args", "events_rp", "min_interval")},
    "coarse_rp": (f'SELECT "rp" FROM {ROWS} WHERE {for_the_range(COARSE_HOURLY_FROM_MS)} LIMIT 1', 2),
    "raw_rp": (f'SELECT "rp" FROM {ROWS} WHERE "resolution" = \'{RAW}\'', 1),
}


def _hidden_variable(name: str, query: str, refresh: int) -> dict[str, Any]:
    return {
        "name": name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query,
        "definition": query,
        "refresh": refresh,
        "hide": 2,
        "includeAll": False,
        "multi": False,
        "current": {},
        "options": [],
        "sort": 0,
    }


SITE_VAR = ('site', 'Site', 'SHOW TAG VALUES FROM "availability" WITH KEY = "site"')
SITE = "\"site\" =~ /^$site$/"


def overview() -> Dashboard:
    d = Dashboard("nettvakt-overview", "Oversikt / Overview", "What is down right now, and where are links slow.", ["on-call"])
    d.variable(*SITE_VAR)
    d.panel("stat", "Agents up", ['SELECT last("agents_up") FROM "$raw_rp"."collector" WHERE $timeFilter'], w=4, h=4)
    d.panel("stat", "Agents total", ['SELECT last("agents_total") FROM "$raw_rp"."collector" WHERE $timeFilter'], w=4, h=4)
    d.panel("stat", "Points waiting in the collector queue", ['SELECT last("queue_points") FROM "$raw_rp"."collector" WHERE $timeFilter'], w=4, h=4)
    d.panel("stat", "Points dropped (queue full)", ['SELECT last("dropped_points") FROM "$raw_rp"."collector" WHERE $timeFilter'], w=4, h=4)
    d.panel("stat", "Devices down now", ['SELECT sum("down") FROM (SELECT 1 - last("up") AS "down" FROM "$raw_rp"."availability" WHERE $timeFilter AND "kind" = \'device\' GROUP BY "device")'], w=4, h=4,
            description="Network devices whose latest availability is down.")
    d.panel("stat", "Agents down now", ['SELECT sum("down") FROM (SELECT 1 - last("up") AS "down" FROM "$raw_rp"."availability" WHERE $timeFilter AND "kind" = \'agent\' GROUP BY "host")'], w=4, h=4,
            description="Agents silent for longer than their allowed intervals.")
    # `availability` is stored on change and once per beat (docs/metrics.md): each point accounts
    # for its series' time since the previous one, and a verdict holds until the series' next point.
    d.panel("table", "Sites: availability in the period (worst first)", [f'SELECT sum("up_s") / sum("judged_s") * 100 AS "availability %" FROM "$coarse_rp"."availability" WHERE $timeFilter AND {SITE} GROUP BY "site"'], w=8, unit="percent",
            description="Time judged up over time judged (agents, probe targets, devices); time nobody judged is left out.",
            panel_options={"sortBy": [{"displayName": "availability %", "desc": False}]})
    # Only the series with a down verdict in the period: every other series would be a row of
    # green, and at 430 series that is what made the panel slow (docs/benchmarks.md). A bucket of at
    # least 10 minutes holds a verdict of every series judged in it (a beat at most every 5
    # minutes), so one with no down verdict is up (fill(1)); at most 100 buckets (a day in quarter
    # hours) keep them an hour or more wherever "$coarse_rp" reads hourly rollups (from 7 days), on
    # any screen.
    d.panel("state-timeline", "Outages per agent, device and probe target (only those down in the period)",
            [f'SELECT min(up${{min_sfx}}) FROM "$coarse_rp"."availability" WHERE $timeFilter AND {SITE} AND up${{min_sfx}} < 1 GROUP BY time($__interval), "site", "host", "device", "target" fill(1)'], w=16,
            description="A row for each agent, device and probe target that was judged down at some time in the period; a time bucket "
                        "(10 minutes or more) with a down verdict shows it, one without shows up. Those up throughout are left out: "
                        "the sites' table and the per-site dashboards have them.",
            interval="10m", maxDataPoints=100)
    d.annotation("Alerts", 'SELECT "summary" FROM "$events_rp"."alert" WHERE $timeFilter AND "state" = \'firing\'')
    d.panel("table", "Alerts in the period (latest state per site and rule)",
            [f'SELECT last("active") AS "active", last("summary") AS "summary", last("affected") AS "affected" FROM "$events_rp"."alert" WHERE $timeFilter AND {SITE} GROUP BY "site", "rule", "severity", "subject"'], w=24,
            description="active = 1: firing now. Alerts reach people by mail and webhook even when InfluxDB and Grafana are down.")
    d.panel("table", "Worst links now (latest ICMP per site, host, target)",
            [f'SELECT last("rtt_ms") AS "rtt ms", last("loss_pct") AS "loss %", last("jitter_ms") AS "jitter ms" FROM "$raw_rp"."probe" WHERE $timeFilter AND "kind" = \'icmp\' AND {SITE} GROUP BY "site", "host", "target"'], w=24,
            panel_options={"sortBy": [{"displayName": "rtt ms", "desc": True}]})
    return d


def links() -> Dashboard:
    d = Dashboard("nettvakt-links", "Links and latency", "Smokeping-style latency and loss per site, host and target; the same target from every site."
                  " Opens on the first site and its first ICMP target (tick more in the pickers); the targets offered are those the chosen"
                  " sites probe.", ["consultant"])
    d.variable(*SITE_VAR, opens_on_all=False)
    d.variable("host", "Host", 'SHOW TAG VALUES FROM "probe" WITH KEY = "host" WHERE "site" =~ /^$site$/')
    d.variable("target", "Target", 'SHOW TAG VALUES FROM "probe" WITH KEY = "target" WHERE "kind" = \'icmp\' AND "site" =~ /^$site$/', opens_on_all=False)
    sel = f'{SITE} AND "host" =~ /^$host$/ AND "target" =~ /^$target$/ AND "kind" = \'icmp\''
    d.panel("timeseries", "RTT: median with min–max band and p95", [
        f'SELECT median("rtt_ms") AS "median", min(rtt_min_ms${{min_sfx}}) AS "min", max(rtt_max_ms${{max_sfx}}) AS "max", mean("rtt_p95_ms") AS "p95" FROM "$rp"."probe" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host", "target" fill(null)'
    ], w=24, h=10, unit="ms", description="Min and max are exact at every range. Over 2 days the median is of 5-minute (or hourly) means: "
                                          "smoother than the median of the pings, always between their min and max.")
    d.panel("timeseries", "Loss", [f'SELECT mean("loss_pct") FROM "$rp"."probe" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host", "target" fill(null)'], unit="percent")
    d.panel("timeseries", "Jitter", [f'SELECT mean("jitter_ms") FROM "$rp"."probe" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host", "target" fill(null)'], unit="ms")
    d.panel("timeseries", "Same target from every site (median RTT)", [
        'SELECT median("rtt_ms") FROM "$rp"."probe" WHERE $timeFilter AND "target" =~ /^$target$/ AND "kind" = \'icmp\' GROUP BY time($__interval), "site" fill(null)'
    ], w=24, unit="ms", description="The chosen target from every site that probes it. A slow segment stands out: sites behind it are slow to every target beyond it.")
    d.panel("table", "Availability per target", [f'SELECT mean("up") * 100 AS "up %" FROM "$coarse_rp"."probe" WHERE $timeFilter AND {SITE} GROUP BY "site", "kind", "target"'], w=24, unit="percent")
    return d


def network_devices() -> Dashboard:
    d = Dashboard("nettvakt-network", "Network devices", "Firewall and switches over SNMP: load, sessions, tunnels, interfaces."
                  " Opens on the first device (tick more in the picker).", ["consultant"])
    d.variable(*SITE_VAR)
    d.variable("device", "Device", 'SHOW TAG VALUES FROM "device" WITH KEY = "device" WHERE "site" =~ /^$site$/', opens_on_all=False)
    d.variable("ifname", "Interface", 'SHOW TAG VALUES FROM "interface" WITH KEY = "ifname" WHERE "device" =~ /^$device$/')
    dev = '"device" =~ /^$device$/'
    d.panel("timeseries", "CPU", [f'SELECT mean("cpu_pct") FROM "$rp"."device" WHERE $timeFilter AND {dev} GROUP BY time($__interval), "device" fill(null)'], w=8, unit="percent")
    d.panel("timeseries", "Memory", [f'SELECT mean("mem_used_pct") FROM "$rp"."device" WHERE $timeFilter AND {dev} GROUP BY time($__interval), "device" fill(null)'], w=8, unit="percent")
    d.panel("timeseries", "Firewall sessions", [f'SELECT mean("sessions") FROM "$rp"."device" WHERE $timeFilter AND {dev} GROUP BY time($__interval), "device" fill(null)'], w=8)
    d.panel("timeseries", "IPsec tunnels up", [f'SELECT min(vpn_tunnels_up${{min_sfx}}) AS "up", max(vpn_tunnels_total${{max_sfx}}) AS "total" FROM "$rp"."device" WHERE $timeFilter AND {dev} GROUP BY time($__interval), "device" fill(previous)'], w=8)
    d.panel("state-timeline", "Device reachable", [f'SELECT min(up${{min_sfx}}) FROM "$rp"."device" WHERE $timeFilter AND {dev} GROUP BY time($__interval), "device" fill(null)'], w=16)
    ifsel = f'{dev} AND "ifname" =~ /^$ifname$/'
    # A device's every interface in one panel: at most 500 points a series, so a week is drawn in
    # 20-minute buckets and a year in days (MRTG: 30 minutes and a day), half the rows Grafana would
    # ask on a 1920-pixel screen; a day and a month as it would.
    per_interface = {"w": 12, "maxDataPoints": 500}
    d.panel("timeseries", "Traffic in/out", [
        f'SELECT mean("in_bps") AS "in", mean("out_bps") AS "out" FROM "$rp"."interface" WHERE $timeFilter AND {ifsel} GROUP BY time($__interval), "device", "ifname" fill(null)'
    ], **per_interface, unit="bps")
    d.panel("timeseries", "Utilisation in/out", [
        f'SELECT mean("in_util_pct") AS "in", mean("out_util_pct") AS "out", ${{p95_fn}}(in_util_pct${{p95_args}}) AS "in p95", ${{p95_fn}}(out_util_pct${{p95_args}}) AS "out p95" FROM "$rp"."interface" WHERE $timeFilter AND {ifsel} GROUP BY time($__interval), "device", "ifname" fill(null)'
    ], **per_interface, unit="percent",
            description="p95: of the samples up to 2 days; beyond, the largest 5-minute (or hourly) p95 in each point: an upper bound, at most the peak.")
    d.panel("timeseries", "Errors and discards", [
        f'SELECT mean("in_errors_ps") AS "in errors", mean("out_errors_ps") AS "out errors", mean("in_discards_ps") AS "in discards", mean("out_discards_ps") AS "out discards" FROM "$rp"."interface" WHERE $timeFilter AND {ifsel} GROUP BY time($__interval), "device", "ifname" fill(null)'
    ], **per_interface, unit="pps")
    d.panel("table", "Busiest interfaces (peak in the period)", [
        f'SELECT max(out_bps${{max_sfx}}) AS "peak out bps", max(in_bps${{max_sfx}}) AS "peak in bps", max(out_util_pct${{max_sfx}}) AS "peak out %" FROM "$coarse_rp"."interface" WHERE $timeFilter AND {dev} GROUP BY "device", "ifname"'
    ], w=12, panel_options={"sortBy": [{"displayName": "peak out bps", "desc": True}]})
    return d


def hosts() -> Dashboard:
    d = Dashboard("nettvakt-hosts", "Hosts", "CPU, memory, disk and network per machine, from the agents."
                  " Opens on the first site (tick more in the picker).", ["consultant"])
    d.variable(*SITE_VAR, opens_on_all=False)
    d.variable("host", "Host", 'SHOW TAG VALUES FROM "host" WITH KEY = "host" WHERE "site" =~ /^$site$/')
    sel = f'{SITE} AND "host" =~ /^$host$/'
    d.panel("timeseries", "CPU", [f'SELECT mean("cpu_pct") FROM "$rp"."host" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host" fill(null)'], unit="percent")
    d.panel("timeseries", "Memory", [f'SELECT mean("mem_used_pct") FROM "$rp"."host" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host" fill(null)'], unit="percent")
    d.panel("timeseries", "Disk used per mount", [f'SELECT max(used_pct${{max_sfx}}) FROM "$rp"."host_disk" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host", "mount" fill(previous)'], unit="percent")
    d.panel("timeseries", "Network in/out", [
        f'SELECT mean("in_bps") AS "in", mean("out_bps") AS "out" FROM "$rp"."host_net" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host", "nic" fill(null)'
    ], unit="bps")
    d.panel("timeseries", "Load (1 min)", [f'SELECT mean("load1") FROM "$rp"."host" WHERE $timeFilter AND {sel} GROUP BY time($__interval), "host" fill(null)'])
    d.panel("table", "Uptime", [f'SELECT last("uptime_s") AS "uptime" FROM "$raw_rp"."host" WHERE $timeFilter AND {sel} GROUP BY "site", "host"'], unit="s")
    # start_time_s is Unix seconds; Grafana's date units take milliseconds.
    d.panel("table", "Logins (newest first)", [
        f'SELECT "start_time_s" * 1000 AS "started", "duration_s" AS "duration", "from_host" AS "from", "end_unseen" AS "ended unseen" '
        f'FROM "$events_rp"."login" WHERE $timeFilter AND {sel} GROUP BY "host", "user", "kind", "event", "terminal" ORDER BY time DESC'
    ], w=24, h=10, description="Who logged in on each machine: a row when a session starts (event start) and when it ends "
                               "(event end, with its duration). Machines record logins where inventory [logins] says (docs/logins.md).",
        overrides=[{"matcher": {"id": "byName", "options": "started"}, "properties": [{"id": "unit", "value": "dateTimeAsIso"}]},
                   {"matcher": {"id": "byName", "options": "duration"}, "properties": [{"id": "unit", "value": "s"}]}])
    return d


def lifecycle() -> Dashboard:
    d = Dashboard("nettvakt-lifecycle", "Hardware lifecycle", "What must be replaced, when, and what it costs (from inventory.toml).", ["manager"])
    d.variable(*SITE_VAR)
    d.panel("table", "Every machine and network device", [
        f'SELECT last("model") AS "model", last("age_years") AS "age (years)", last("lifetime_years") AS "lifetime (years)", last("remaining_years") AS "remaining (years)", last("due_calendar_year") AS "due", last("replacement_cost_nok") AS "cost (NOK)" FROM "$raw_rp"."lifecycle" WHERE $timeFilter AND {SITE} GROUP BY "site", "department", "kind", "host", "device"'
    ], w=24, h=12, panel_options={"sortBy": [{"displayName": "remaining (years)", "desc": False}]},
        overrides=[{"matcher": {"id": "byName", "options": "remaining (years)"},
                    "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background"}},
                                   {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                       {"color": "red", "value": None}, {"color": "orange", "value": 0}, {"color": "green", "value": 1}]}}]}])
    d.panel("barchart", "Replacement cost per due year", [
        f'SELECT sum("cost") FROM (SELECT last("replacement_cost_nok") AS "cost" FROM "$raw_rp"."lifecycle" WHERE $timeFilter AND {SITE} GROUP BY "host", "device", "kind", "due_year") GROUP BY "due_year"'
    ], unit="currencyNOK", description="Overdue equipment counts in the year it fell due.")
    d.panel("barchart", "Replacement cost per site", [
        f'SELECT sum("cost") FROM (SELECT last("replacement_cost_nok") AS "cost" FROM "$raw_rp"."lifecycle" WHERE $timeFilter AND {SITE} GROUP BY "host", "device", "kind", "site") GROUP BY "site"'
    ], unit="currencyNOK")
    d.panel("barchart", "Replacement cost per department", [
        f'SELECT sum("cost") FROM (SELECT last("replacement_cost_nok") AS "cost" FROM "$raw_rp"."lifecycle" WHERE $timeFilter AND {SITE} GROUP BY "host", "device", "kind", "department") GROUP BY "department"'
    ], unit="currencyNOK", description="The department named in inventory.toml's [hardware]; empty where none is named.")
    d.panel("table", "Hardware facts reported by the machines", [
        f'SELECT last("vendor") AS "vendor", last("model") AS "model", last("serial") AS "serial", last("os_name") AS "os" FROM "$raw_rp"."hardware" WHERE $timeFilter AND {SITE} GROUP BY "site", "host", "device"'
    ], w=24)
    return d


def printers_ups() -> Dashboard:
    d = Dashboard("nettvakt-printers-ups", "Printers and UPSes",
                  "Printer supplies, pages and errors (Printer-MIB); UPS power, runtime and batteries (UPS-MIB, APC PowerNet).",
                  ["consultant", "manager"])
    d.variable(*SITE_VAR)
    d.variable("printer", "Printer", 'SHOW TAG VALUES FROM "printer_supply" WITH KEY = "device" WHERE "site" =~ /^$site$/')
    printer = f'{SITE} AND "device" =~ /^$printer$/'
    d.panel("table", "Supplies: what is left", [
        f'SELECT last("left_pct") AS "left %", last("state") AS "state" FROM "$raw_rp"."printer_supply" WHERE $timeFilter AND {printer} GROUP BY "device", "supply", "type"'
    ], w=12, h=10, panel_options={"sortBy": [{"displayName": "left %", "desc": False}]},
        description="A waste box's level is the space left in it. No number: the printer says only 'some remaining' or 'unknown'.",
        overrides=[{"matcher": {"id": "byName", "options": "left %"},
                    "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background"}},
                                   {"id": "thresholds", "value": {"mode": "absolute", "steps": [
                                       {"color": "red", "value": None}, {"color": "orange", "value": 10}, {"color": "green", "value": 25}]}}]}])
    # Pages per day: a counter reset (service, new mainboard) drops one interval instead of a negative spike.
    d.panel("timeseries", "Pages per day", [
        f'SELECT non_negative_derivative(max("pages_total"), 1d) FROM "$rp"."device" WHERE $timeFilter AND {printer} GROUP BY time($__interval), "device" fill(null)'
    ], w=12, h=10)
    d.panel("table", "Printer errors now", [
        f'SELECT last("printer_error") AS "error", last("printer_errors") AS "conditions", last("pages_total") AS "pages" FROM "$raw_rp"."device" WHERE $timeFilter AND {printer} GROUP BY "device"'
    ], w=24, h=6)
    # Only UPSes write the ups_* fields, so no device variable is needed to pick them out.
    d.panel("state-timeline", "UPS on battery", [
        f'SELECT max(ups_on_battery${{max_sfx}}) FROM "$rp"."device" WHERE $timeFilter AND {SITE} GROUP BY time($__interval), "device" fill(null)'
    ], w=24, h=6, description="1: running on battery (a power cut, or a fault on its input).")
    d.panel("timeseries", "UPS runtime left", [
        f'SELECT min(ups_minutes_left${{min_sfx}}) FROM "$rp"."device" WHERE $timeFilter AND {SITE} GROUP BY time($__interval), "device" fill(null)'
    ], w=12, unit="m")
    d.panel("timeseries", "UPS battery charge", [
        f'SELECT min(ups_charge_pct${{min_sfx}}) FROM "$rp"."device" WHERE $timeFilter AND {SITE} GROUP BY time($__interval), "device" fill(null)'
    ], w=12, unit="percent")
    d.panel("table", "UPS batteries", [
        f'SELECT last("ups_battery_status") AS "battery", last("ups_minutes_left") AS "minutes left", last("battery_last_replaced") AS "last replaced", last("battery_replace_date") AS "replace by" FROM "$raw_rp"."device" WHERE $timeFilter AND {SITE} AND "ups_battery_status" =~ /./ GROUP BY "site", "device"'
    ], w=24, h=6, description="Replacement dates where the UPS says (APC); the plan for every battery is on the Hardware lifecycle dashboard.")
    return d


def collector_health() -> Dashboard:
    d = Dashboard("nettvakt-collector", "Collector health", "Is the monitoring itself healthy: points in and out, queue, errors, agents.", ["on-call"])
    d.panel("timeseries", "Points in / written per second", [
        'SELECT non_negative_derivative(max("points_in"), 1s) AS "in", non_negative_derivative(max("written_points"), 1s) AS "written" FROM "$rp"."collector" WHERE $timeFilter GROUP BY time($__interval) fill(null)'
    ], unit="pps")
    d.panel("timeseries", "Queue depth", ['SELECT max(queue_points${max_sfx}) FROM "$rp"."collector" WHERE $timeFilter GROUP BY time($__interval) fill(previous)'])
    d.panel("timeseries", "Write errors, dropped and rejected points (cumulative)", [
        'SELECT max("write_errors") AS "write errors", max("dropped_points") AS "dropped", max("rejected_points") AS "rejected" FROM "$rp"."collector" WHERE $timeFilter GROUP BY time($__interval) fill(previous)'
    ])
    d.panel("timeseries", "Agents up", ['SELECT min(agents_up${min_sfx}) AS "up", max(agents_total${max_sfx}) AS "total" FROM "$rp"."collector" WHERE $timeFilter GROUP BY time($__interval) fill(previous)'])
    return d


DASHBOARDS = {"overview": overview, "links": links, "network-devices": network_devices, "hosts": hosts, "lifecycle": lifecycle, "printers-ups": printers_ups, "collector": collector_health}


def render() -> dict[str, str]:
    """File name → JSON text, exactly as committed."""
    return {f"{name}.json": json.dumps(build().to_json(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    for name, text in render().items():
        (HERE / name).write_text(text, encoding="utf-8")
        print(f"wrote dashboards/{name}")


if __name__ == "__main__":
    main()
