"""`nettvakt report servers`: what runs on each server, how much it is used, which could go.

A server is an agent whose inventory hardware kind is `server`, or that has service checks
(inventory `[[agent]].services`). Its applications
are the programs the agent saw listening (`service` points with `kind=listen`, latest per
program); its use is the average and peak of `host.cpu_pct`, `host.mem_used_pct` and
`host_disk.used_pct` (per mount; the fullest is shown) over the period. A server whose CPU stays
under `LowUse` is a candidate for consolidation or phasing out, with the numbers as evidence.

Over a long period (`--since 30d`) `host` and `host_disk` are read at the resolution the store
names (`SeriesSource.resolution_for`: 5-minute buckets up to 60 days, hours beyond): the average
is then the mean of the buckets' means (the mean of the readings when every bucket holds as many,
docs/storage.md), the peak the largest `_max` (exact), and `samples` counts buckets. Listening
programs and hardware facts are strings, never rolled up: they stay raw (the last day).

From InfluxDB the use is not read point by point: `read_use` asks for the mean, count and
maximum of each field per server (and per mount), and the memory size last read, in one request
(a month of 5-minute buckets of ten servers is 170 000 rows otherwise). Other stores give their
points, and `use_from_points` folds them the same way.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from collector import texts
from collector.config import AgentEntry, Inventory
from collector.reports import i18n
from collector.reports.render import Column, Document, Row, Table
from collector.rollups import RAW, stored_field
from collector.timeseries import InfluxSource, _ident, any_of

Points = Iterable[tuple[Mapping[str, str], Mapping[str, Any]]]


@dataclass(frozen=True)
class LowUse:
    """Below all of these over the period, with at least `min_samples` host samples: a candidate."""

    cpu_avg_pct: float = 5.0
    cpu_peak_pct: float = 20.0
    min_samples: int = 10


LOW_USE = LowUse()
# Listening programs are reported every few minutes by every agent; the last day says what runs now.
APPS_LOOKBACK_S = 86400.0

Verdict = Literal["candidate", "in_use", "no_data"]


@dataclass
class Stat:
    avg: float | None = None
    peak: float | None = None
    samples: int = 0

    @classmethod
    def of(cls, values: list[float], peaks: list[float] | None = None) -> "Stat":
        """`values`: readings, or rollup buckets' means; `peaks`: the buckets' maxima (None: the readings')."""
        if not values:
            return cls()
        return cls(avg=sum(values) / len(values), peak=max(peaks or values), samples=len(values))

    @classmethod
    def of_aggregates(cls, row: Mapping[str, Any], name: str) -> "Stat":
        """From InfluxDB's `{name}_avg`, `{name}_n`, `{name}_peak` (the peak field's maximum) and
        `{name}_top` (the values' own, the peak where no peak field was kept), as `of` folds them."""
        n = int(row.get(f"{name}_n") or 0)
        if n == 0:
            return cls()
        peak = row.get(f"{name}_peak")
        return cls(avg=float(row[f"{name}_avg"]), peak=float(peak if peak is not None else row[f"{name}_top"]), samples=n)

    def to_json(self) -> dict[str, Any]:
        return {"avg": self.avg, "peak": self.peak, "samples": self.samples}


@dataclass
class App:
    name: str
    ports: list[int]
    listen: str
    kind: Literal["listen", "configured"]
    up: bool | None = None
    status: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ports": self.ports, "listen": self.listen, "kind": self.kind, "up": self.up, "status": self.status}


@dataclass
class ServerUse:
    id: str
    name: str
    site: str
    site_name: str
    model: str | None
    why: Literal["kind", "services"]
    apps: list[App]
    cpu: Stat
    mem: Stat
    disks: dict[str, Stat]
    mem_total_bytes: float | None
    verdict: Verdict
    evidence: list[str] = field(default_factory=list)  # codes with numbers, worded by the document

    @property
    def fullest_disk(self) -> tuple[str, Stat] | None:
        measured = [(m, s) for m, s in self.disks.items() if s.peak is not None]
        return max(measured, key=lambda ms: ms[1].peak or 0.0) if measured else None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "site": self.site, "site_name": self.site_name, "model": self.model,
            "why": self.why, "apps": [a.to_json() for a in self.apps],
            "cpu_pct": self.cpu.to_json(), "mem_used_pct": self.mem.to_json(),
            "disk_used_pct": {m: s.to_json() for m, s in sorted(self.disks.items())},
            "mem_total_bytes": self.mem_total_bytes, "verdict": self.verdict,
        }


@dataclass
class ServersReport:
    organisation: str
    start: dt.datetime
    end: dt.datetime
    servers: list[ServerUse]
    low_use: LowUse
    timezone: str = "UTC"  # of the times people read (the inventory's [alerting] timezone)
    resolution: str = RAW  # what `host` and `host_disk` were read at (collector.rollups)

    @property
    def candidates(self) -> list[ServerUse]:
        return [s for s in self.servers if s.verdict == "candidate"]

    def to_json(self) -> dict[str, Any]:
        return {
            "report": "servers",
            "organisation": self.organisation,
            "resolution": self.resolution,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "low_use": {"cpu_avg_pct": self.low_use.cpu_avg_pct, "cpu_peak_pct": self.low_use.cpu_peak_pct, "min_samples": self.low_use.min_samples},
            "candidates": [s.id for s in self.candidates],
            "servers": [s.to_json() for s in self.servers],
        }


def _ports(text: Any) -> list[int]:
    # The agent writes "22,443"; docs/metrics.md once said space-separated: take both.
    return sorted({int(p) for p in re.split(r"[,\s]+", str(text or "")) if p.isdigit()})


def _numbers(points: Points, name: str) -> list[float]:
    return [float(f[name]) for _, f in points if isinstance(f.get(name), (int, float))]


@dataclass
class HostUse:
    """One server's use over the period."""

    cpu: Stat = field(default_factory=Stat)
    mem: Stat = field(default_factory=Stat)
    mem_total_bytes: float | None = None  # as last read
    disks: dict[str, Stat] = field(default_factory=dict)  # per mount, those with readings


def use_from_points(points: Mapping[str, list[tuple[Mapping[str, str], Mapping[str, Any]]]], resolution: str = RAW) -> dict[str, HostUse]:
    """Per host, its use from `host` and `host_disk` points (oldest first) at `resolution`."""
    def peak(name: str, measurement: str = "host") -> str:
        return stored_field(measurement, name, "max", resolution)

    by_host: dict[str, dict[str, list[tuple[Mapping[str, str], Mapping[str, Any]]]]] = {}
    for measurement in ("host", "host_disk"):
        for tags, fields in points.get(measurement, []):
            by_host.setdefault(tags.get("host", ""), {}).setdefault(measurement, []).append((tags, fields))
    out = {}
    for host_id, mine in by_host.items():
        per_mount: dict[str, list[tuple[Mapping[str, str], Mapping[str, Any]]]] = {}
        for tags, fields in mine.get("host_disk", []):
            per_mount.setdefault(tags.get("mount", ""), []).append((tags, fields))
        disks = {m: Stat.of(_numbers(v, "used_pct"), _numbers(v, peak("used_pct", "host_disk"))) for m, v in sorted(per_mount.items())}
        host = mine.get("host", [])
        mem_total = _numbers(host, "mem_total_bytes")
        out[host_id] = HostUse(Stat.of(_numbers(host, "cpu_pct"), _numbers(host, peak("cpu_pct"))),
                               Stat.of(_numbers(host, "mem_used_pct"), _numbers(host, peak("mem_used_pct"))),
                               mem_total[-1] if mem_total else None, {m: stat for m, stat in disks.items() if stat.samples})
    return out


def read_use(source: InfluxSource, hosts: list[str], start_ns: int, end_ns: int, resolution: str) -> dict[str, HostUse]:
    """Per host, its use as `use_from_points` would fold the points, folded by InfluxDB: the mean
    and count of each field, the maximum of its peak field (and of the field itself, the peak where
    a bucket kept no maximum), the memory size with the newest time. One request, two statements.
    Means agree with Python's within float rounding (tests/test_reports_fast.py)."""
    if not hosts:
        return {}
    where = f"time >= {int(start_ns)} AND time < {int(end_ns)} AND {any_of({'host': h} for h in hosts)}"

    def stats(measurement: str, name: str) -> list[str]:
        value, top = _ident(stored_field(measurement, name, "mean", resolution)), _ident(stored_field(measurement, name, "max", resolution))
        return [f"MEAN({value}) AS {name}_avg", f"COUNT({value}) AS {name}_n", f"MAX({top}) AS {name}_peak", f"MAX({value}) AS {name}_top"]

    host_columns = [*stats("host", "cpu_pct"), *stats("host", "mem_used_pct"), 'LAST("mem_total_bytes") AS mem_total']
    host_rows, disk_rows = source.select_each([
        f"SELECT {', '.join(host_columns)} FROM {source.from_clause('host', resolution)} WHERE {where} GROUP BY \"host\"",
        f"SELECT {', '.join(stats('host_disk', 'used_pct'))} FROM {source.from_clause('host_disk', resolution)} WHERE {where} "
        f"GROUP BY \"host\", \"mount\"",
    ])
    out: dict[str, HostUse] = {}
    for row in host_rows:
        total = row.get("mem_total")
        out[str(row.get("host") or "")] = HostUse(Stat.of_aggregates(row, "cpu_pct"), Stat.of_aggregates(row, "mem_used_pct"),
                                                  float(total) if total is not None else None)
    for row in sorted(disk_rows, key=lambda r: str(r.get("mount") or "")):
        stat = Stat.of_aggregates(row, "used_pct")
        if stat.samples:
            out.setdefault(str(row.get("host") or ""), HostUse()).disks[str(row.get("mount") or "")] = stat
    return out


def server_agents(inventory: Inventory) -> list[AgentEntry]:
    """Agents of hardware kind `server`, and agents with service checks (what runs there matters)."""
    return [a for a in inventory.agent if (a.hardware is not None and a.hardware.kind == "server") or a.services]


def build_servers_report(
    inventory: Inventory,
    points: Mapping[str, list[tuple[Mapping[str, str], Mapping[str, Any]]]],
    start_ns: int,
    end_ns: int,
    low_use: LowUse = LOW_USE,
    resolution: str = RAW,
    use: Mapping[str, HostUse] | None = None,
) -> ServersReport:
    """`points`: (tags, fields) per measurement (`host`, `host_disk`, `service`, `hardware`), oldest first;
    `host` and `host_disk` at `resolution` (a rollup's buckets over a long period: the average is the
    mean of the buckets' means, the peak the largest bucket maximum, the samples the buckets).
    `use`: per host, what `read_use` folded in the store (then `host` and `host_disk` are not needed)."""
    if use is None:
        use = use_from_points(points, resolution)
    # One pass over each measurement, by host.
    by_host: dict[str, dict[str, list[tuple[Mapping[str, str], Mapping[str, Any]]]]] = {}
    for measurement in ("service", "hardware"):
        for tags, fields in points.get(measurement, []):
            by_host.setdefault(tags.get("host", ""), {}).setdefault(measurement, []).append((tags, fields))
    sites = {s.id: s.name for s in inventory.site}
    servers = []
    for agent in server_agents(inventory):
        is_server = agent.hardware is not None and agent.hardware.kind == "server"
        mine = by_host.get(agent.id, {})
        # The latest point per program (listening) or per service (configured) describes it now.
        latest: dict[tuple[str, str], Mapping[str, Any]] = {}
        for tags, fields in mine.get("service", []):
            if tags.get("service"):
                latest[(tags.get("kind", "configured"), tags["service"])] = fields
        apps = []
        for (kind, name), fields in latest.items():
            if kind == "listen":
                apps.append(App(name, _ports(fields.get("ports")), str(fields.get("listen") or ""), "listen"))
            else:
                up = fields.get("up")
                apps.append(App(name, [], "", "configured", up == 1.0 if up is not None else None, fields.get("status")))
        for name in agent.services:  # configured in the inventory but never reported: say so
            if ("configured", name) not in latest:
                apps.append(App(name, [], "", "configured"))
        apps.sort(key=lambda a: (a.kind != "configured", a.name.lower()))
        facts: dict[str, Any] = {}
        for _, fields in mine.get("hardware", []):
            facts.update(fields)
        used = use.get(agent.id) or HostUse()
        cpu = used.cpu
        if cpu.samples < low_use.min_samples:
            verdict: Verdict = "no_data"
        elif (cpu.avg or 0.0) < low_use.cpu_avg_pct and (cpu.peak or 0.0) < low_use.cpu_peak_pct:
            verdict = "candidate"
        else:
            verdict = "in_use"
        servers.append(ServerUse(
            id=agent.id, name=agent.name, site=agent.site, site_name=sites.get(agent.site, agent.site),
            model=(agent.hardware.model if agent.hardware else None) or (str(facts["model"]) if facts.get("model") else None),
            why="kind" if is_server else "services", apps=apps, cpu=cpu, mem=used.mem, disks=used.disks,
            mem_total_bytes=used.mem_total_bytes, verdict=verdict,
        ))
    servers.sort(key=lambda s: (s.verdict != "candidate", s.site, s.id))
    return ServersReport(
        organisation=inventory.organisation,
        start=dt.datetime.fromtimestamp(start_ns / 1e9, dt.timezone.utc),
        end=dt.datetime.fromtimestamp(end_ns / 1e9, dt.timezone.utc),
        servers=servers, low_use=low_use, timezone=inventory.alerting.timezone, resolution=resolution,
    )


def _app_list(server: ServerUse) -> str:
    return ", ".join(f"{a.name} ({' '.join(map(str, a.ports))})" if a.ports else a.name for a in server.apps if a.kind == "listen")


def servers_document(report: ServersReport, lang: str) -> Document:
    w = texts.of(lang).servers_report
    days = (report.end - report.start).total_seconds() / 86400
    num = lambda v: i18n.number(v, lang, 1)  # noqa: E731
    summary = [w["s_servers"].format(n=len(report.servers))]
    candidates = report.candidates
    if candidates:
        summary.append(w["s_candidates"].format(n=len(candidates), names=", ".join(s.id for s in candidates)))
    else:
        summary.append(w["s_no_candidates"])
    no_data = [s.id for s in report.servers if s.verdict == "no_data"]
    if no_data:
        summary.append(w["s_no_data"].format(names=", ".join(no_data)))

    use_rows = []
    for s in report.servers:
        disk = s.fullest_disk
        use_rows.append(Row(
            [s.site_name, s.id, s.model, s.cpu.avg, s.cpu.peak, s.mem.avg, s.mem.peak,
             disk[0] if disk else None, disk[1].avg if disk else None, disk[1].peak if disk else None,
             s.cpu.samples, w[f"v_{s.verdict}"]],
            strong=s.verdict == "candidate",
        ))
    use = Table(
        title=w["use"],
        columns=[
            Column(w["site"]), Column(w["id"]), Column(w["model"]), Column(w["cpu_avg"], "pct"), Column(w["cpu_peak"], "pct"),
            Column(w["mem_avg"], "pct"), Column(w["mem_peak"], "pct"), Column(w["disk"]), Column(w["disk_avg"], "pct"),
            Column(w["disk_peak"], "pct"), Column(w["samples"], "int"), Column(w["verdict"]),
        ],
        rows=use_rows,
        empty_text=w["none"],
    )
    app_rows = []
    for s in report.servers:
        for a in s.apps:
            status = a.status or ("" if a.kind == "listen" else w["unreported"] if a.up is None else w["up"] if a.up else w["down"])
            app_rows.append(Row([a.name, " ".join(map(str, a.ports)), a.listen, w[f"t_{a.kind}"], status], group=s.id))
    apps = Table(
        title=w["apps"],
        columns=[Column(w["app"]), Column(w["ports"]), Column(w["listen"]), Column(w["type"]), Column(w["status"])],
        rows=app_rows,
        group_title=w["server"],
        group_labels={s.id: f"{s.id} \u2013 {s.name} ({s.site_name})" for s in report.servers},
        empty_text=w["none"],
    )
    lim = report.low_use
    cand = Table(
        title=w["candidates"],
        columns=[Column(w["site"]), Column(w["id"]), Column(w["name"]), Column(w["evidence"])],
        rows=[
            Row([s.site_name, s.id, s.name, w["evidence_text"].format(
                cpu_avg=num(s.cpu.avg), avg_limit=num(lim.cpu_avg_pct), cpu_peak=num(s.cpu.peak), peak_limit=num(lim.cpu_peak_pct),
                samples=i18n.number(s.cpu.samples, lang), mem_avg=num(s.mem.avg), apps=_app_list(s) or w["no_apps"],
            )], strong=True)
            for s in candidates
        ],
        empty_text=w["none"],
    )
    notes = [
        w["n_threshold"].format(avg=num(lim.cpu_avg_pct), peak=num(lim.cpu_peak_pct), samples=lim.min_samples),
        w["n_servers"],
    ]
    zone = zoneinfo.ZoneInfo(report.timezone)
    return Document(
        lang=lang,
        title=w["title"],
        subtitle=w["subtitle"].format(
            org=report.organisation, start=i18n.timestamp(report.start.astimezone(zone), lang),
            end=i18n.timestamp(report.end.astimezone(zone), lang),
            length=w["days"].format(n=i18n.number(days, lang, 1)) if days >= 2 else w["hours"].format(n=i18n.number(days * 24, lang, 1)),
        ),
        summary=summary,
        blocks=[cand, use, apps],
        notes=notes,
        generated=report.end.date(),
    )
