"""Years of history that stay fast (issue 19): a year of a 10x estate, before and after the rollups.

    .venv/bin/python bench/history_year.py [--scale 10] [--days 365] [--raw-days 7] [--days-5m 60]
                                           [--before-days 7] [--data-dir /work/bench-data/history]
                                           [--runs 5] [--keep] [--measure-only] [--only panels|reports] [--json FILE]

One influxd (the Debian package's, on a free loopback port, its data under --data-dir) holds two
databases of the same synthetic estate: the example inventory.toml copied --scale times (sites,
agents, probe targets, devices with the interfaces of their models; the intervals the inventory
gives or the config's defaults), every point shaped like the contract (docs/metrics.md).

- `after` (nettvakt now): set up by the collector's own `retention.set_up` (policies, continuous
  queries, rp_config). The newest --raw-days are raw points in the raw policy, availability on
  change plus the 5-minute beat, rolled up by `retention.backfill` (the continuous queries' own
  SELECT ... INTO). Older days have no raw points (a real collector would have dropped them):
  their 5-minute rows (for --days-5m days back) and hourly rows (the whole --days) are computed
  here with numpy by the definitions of collector/rollups.py from the same generated raw values,
  and written into nettvakt_5m / nettvakt_1h; events (alerts, logins) into nettvakt_events. That
  the computed rows equal the backfill's is checked on a sample of the oldest raw day, in the run.
- `before` (nettvakt before issue 19): --before-days of raw points in `autogen` only, the same
  values, availability judged and stored every 5 s (devices at each poll).

Then, in the same run: every panel query of every dashboard for 24 h, 7 d, 30 d and 1 year (the
variables resolved as Grafana does, dashboards/check.py; `before` with the dashboards of commit
BEFORE_COMMIT, the last before issue 19 changed them), best and median of --runs; `report
servers --since 30d`, `report availability --since 12mo`, `report capacity` (the real CLI, in a
process of its own, against an inventory copy pointed at this influxd); and the data folder per
retention policy after InfluxDB's full compaction of cold shards, bytes per point and value.

--measure-only measures what --keep left, after writing the dashboards' rp_config rows where they
differ, as the collector's start would; --only panels measures only the current dashboards' panels, --only reports only the reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import math
import os
import queue
import shutil
import statistics
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from agent.contract import MEASUREMENTS_SPEC  # noqa: E402
from collector.config import Inventory, StorageSettings, load_inventory  # noqa: E402
from collector.influxql import query  # noqa: E402
from collector.localservers import InfluxdServer, start_influxd, wait_until  # noqa: E402
from collector.retention import (  # noqa: E402
    BackfillState,
    InfluxAdmin,
    backfill,
    read_existing,
    retention_seconds,
    row_differences,
    set_up,
    storage_plan,
)
from collector.rollups import (  # noqa: E402
    EVENTS_RETENTION_POLICY,
    OF_ROLLUPS,
    RESOLUTIONS,
    is_rolled_up,
    rollup_fields,
)
from dashboards import check  # noqa: E402

DAY_S = 86400
NS = 1_000_000_000
BUCKET_S = {"5m": 300, "1h": 3600}
SEED = 19
# The last commit before issue 19 changed the dashboards: `before` is measured with its panels.
BEFORE_COMMIT = "759cf85"
# Judged every 5 s before issue 19 (agents and probe targets; devices at each poll).
BEFORE_AVAILABILITY_S = 5
BEAT_S = 300  # [collector] availability_beat_s default
COLLECTOR_SELF_S = 10  # collector/app.py SELF_MONITOR_INTERVAL_S
AGENT_HARDWARE_S = 3600  # agent/runner.py hardware_interval_s
AGENT_LISTEN_S = 300  # agent/runner.py listen_interval_s
LIFECYCLE_S = 3600  # collector/app.py LIFECYCLE_INTERVAL_S

# Interfaces per hardware model: the ifName rows of the shared/snmprec recording of that model
# where there is one (FortiGate 60F 17, ProCurve E2910 39, EdgeSwitch 24 33, APC UPS card 2,
# Brother printer 3); else the model's ports and its usual virtual interfaces.
MODEL_INTERFACES: Mapping[str, tuple[str, ...]] = {
    "FortiGate 60F": ("wan1", "wan2", "dmz", *(f"internal{i}" for i in range(1, 8)), "a", "b", "modem", "ssl.root", "fortilink", "npu0_vlink0", "npu0_vlink1"),
    "Cisco ASA 5505": (*(f"Ethernet0/{i}" for i in range(8)), "Vlan1", "Vlan2", "Null0"),
    "HP ProCurve E2910al-24G-PoE": (*(str(i) for i in range(1, 25)), *(f"A{i}" for i in range(1, 5)), "Trk1", "Trk2", *(f"VLAN{i}" for i in (1, 10, 20, 30, 40, 50)), "lo0", "lo1", "DEFAULT_VLAN"),
    "Cisco Catalyst 2960X-24PS-L": (*(f"Gi1/0/{i}" for i in range(1, 29)), "Vl1", "Nu0"),
    "Cisco Catalyst 2960X-48FPS-L": (*(f"Gi1/0/{i}" for i in range(1, 53)), "Vl1", "Nu0"),
    "HP 1820-8G": (*(str(i) for i in range(1, 9)), "DEFAULT_VLAN", "lo0"),
    "Ubiquiti EdgeSwitch 24 250W": (*(f"0/{i}" for i in range(1, 27)), "3/1", "3/2", "3/3", "3/4", "3/5", "3/6", "lo"),
    "APC Smart-UPS X 750": ("eth0", "lo"),
    "Brother HL-5370DW": ("eth0", "lo", "wlan0"),
}
# The example inventory has no printer; one per copy, at its town hall, so the printer panels
# have data (the only device not in inventory.toml).
PRINTER = {"id": "pr-radhus", "name": "Skriver servicetorget", "site": "radhus", "host": "10.20.0.30",
           "hardware": {"department": "Servicetorget", "kind": "printer", "model": "Brother HL-5370DW", "purchased": dt.date(2019, 3, 1),
                        "lifetime_years": 6, "cost_nok": 6000},
           "snmp": {"version": "2c", "community": "env:NETTVAKT_SNMP_COMMUNITY"}}


# --- the estate -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class AgentSeries:
    id: str
    site: str
    interval_s: int
    kind: str  # hardware kind: server, pc, laptop
    mounts: tuple[str, ...]
    nics: tuple[str, ...]
    services: tuple[str, ...]
    logins: bool


@dataclass(frozen=True)
class ProbeSeries:
    host: str
    site: str
    target: str
    kind: str
    interval_s: int


@dataclass(frozen=True)
class DeviceSeries:
    id: str
    site: str
    kind: str  # firewall, switch, ups, printer
    interval_s: int
    interfaces: tuple[str, ...]
    speeds: Mapping[str, float]
    uplinks: tuple[str, ...]  # the interfaces that carry the site's line (busy, growing)


@dataclass
class Estate:
    inventory_data: dict[str, Any]  # the scaled inventory as TOML data (reports read it)
    sites: list[str]
    agents: list[AgentSeries]
    probes: list[ProbeSeries]
    devices: list[DeviceSeries]

    def summary(self) -> dict[str, int]:
        return {"sites": len(self.sites), "agents": len(self.agents), "probe_series": len(self.probes), "devices": len(self.devices),
                "interfaces": sum(len(d.interfaces) for d in self.devices)}


def _copy_id(value: str, k: int, scale: int) -> str:
    return value if scale == 1 else f"{value}-{k:02d}"


def build_estate(inventory_path: Path, scale: int) -> Estate:
    """inventory.toml copied `scale` times (ids get -01, -02, ...), with its defaults resolved by the
    collector's own config model, plus one printer per copy."""
    data = tomllib.loads(inventory_path.read_text(encoding="utf-8"))
    data["device"] = [*data["device"], PRINTER]
    inventory = load_inventory(inventory_path)  # intervals: as written, else the config's defaults
    probe_of = {p.name: p for p in inventory.probe}
    agent_of = {a.id: a for a in inventory.agent}
    device_interval = {d.id: int(d.snmp.interval_s) for d in inventory.device if d.snmp}
    device_interval[PRINTER["id"]] = 60
    login_agents = set(inventory.logins.agents) if inventory.logins else set()
    out = Estate({}, [], [], [], [])
    scaled: dict[str, list[dict[str, Any]]] = {"site": [], "device": [], "agent": [], "probe": []}
    for k in range(1, scale + 1):
        cid = lambda v: _copy_id(v, k, scale)  # noqa: E731
        for site in data["site"]:
            scaled["site"].append({**site, "id": cid(site["id"]), "name": f"{site['name']} {k:02d}" if scale > 1 else site["name"],
                                   **({"uplink": cid(site["uplink"])} if "uplink" in site else {})})
            out.sites.append(cid(site["id"]))
        for dev in data["device"]:
            # Addresses of copy k in 10.(20+k).x.y: no two devices share one.
            host = dev["host"].replace("10.20.", f"10.{20 + k}.", 1) if scale > 1 else dev["host"]
            scaled["device"].append({**dev, "id": cid(dev["id"]), "site": cid(dev["site"]), "host": host})
            kind = dev["hardware"]["kind"]
            names = MODEL_INTERFACES[dev["hardware"]["model"]]
            snmp = dev.get("snmp", {})
            speeds = {n: float(v) for n, v in snmp.get("interface_speed_bps", {}).items()}
            uplinks = tuple(snmp.get("important_interfaces", ())) or (names[0],)
            out.devices.append(DeviceSeries(cid(dev["id"]), cid(dev["site"]), kind, device_interval[dev["id"]], names, speeds, uplinks))
        for agent in data["agent"]:
            token = hashlib.sha256(f"bench-{cid(agent['id'])}".encode()).hexdigest()  # each agent its own token
            scaled["agent"].append({**agent, "id": cid(agent["id"]), "site": cid(agent["site"]), "token_sha256": token})
            entry = agent_of[agent["id"]]
            kind = entry.hardware.kind if entry.hardware else "pc"
            server = kind == "server"
            out.agents.append(AgentSeries(cid(entry.id), cid(entry.site), int(entry.interval_s), kind,
                                          ("C:", "D:") if server else ("C:",), ("Ethernet0", "Ethernet1") if server else ("Ethernet0",),
                                          tuple(entry.services), entry.id in login_agents))
        for probe in data["probe"]:
            scaled["probe"].append({**probe, "name": cid(probe["name"]), "sites": [cid(s) for s in probe.get("sites", [])]})
    for probe in scaled["probe"]:
        spec = probe_of[probe["name"].rsplit("-", 1)[0] if scale > 1 else probe["name"]]
        for agent in out.agents:
            # Each copy's agents run their own copy's probes: as many series per copy as the example has.
            if agent.site in probe["sites"]:
                out.probes.append(ProbeSeries(agent.id, agent.site, probe["name"], spec.kind, int(spec.interval_s)))
    inv = {k: v for k, v in data.items() if k not in ("channel", "route", "maintenance")}
    inv.update(scaled)
    inv["logins"] = {**data.get("logins", {}), "agents": [a.id for a in out.agents if a.logins]}
    out.inventory_data = inv
    return out


def inventory_for(estate: Estate, url: str, database: str, data_dir: Path) -> dict[str, Any]:
    """The scaled inventory pointed at the bench's influxd (no TLS, no channels: nothing is sent)."""
    inv = {k: v for k, v in estate.inventory_data.items()}
    inv["collector"] = {"listen": "127.0.0.1:8650", "data_dir": str(data_dir)}  # never started: reports read the inventory only
    inv["storage"] = {"kind": "influxdb_v1", "url": url, "database": database, "retention_policy": "autogen"}
    return inv


def toml_text(data: Mapping[str, Any]) -> str:
    """TOML for the inventory's shapes: scalars, lists of scalars, tables and arrays of tables."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (dt.date, dt.time)):
            return v.isoformat()
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {type(v).__name__}: {v!r}")

    def table(prefix: str, body: Mapping[str, Any], header: str) -> list[str]:
        lines = [header] if header else []
        nested = []
        for k, v in body.items():
            if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
                nested.append((k, v))
            else:
                lines.append(f"{json.dumps(k) if not k.replace('_', '').replace('-', '').isalnum() else k} = {value(v)}")
        for k, v in nested:
            name = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                lines += ["", *table(name, v, f"[{name}]")]
            else:
                for item in v:
                    lines += ["", *table(name, item, f"[[{name}]]")]
        return lines

    return "\n".join(table("", data, "")) + "\n"


# --- the values --------------------------------------------------------------------------------
@dataclass
class Rows:
    """Points of one measurement: series i has tags[i]; row r is series[r] at times[r] (ns) with
    fields[name][r] (NaN: absent) and the strings of strings[name][r] (None: absent)."""

    measurement: str
    tags: list[dict[str, str]]
    series: np.ndarray
    times: np.ndarray
    fields: dict[str, np.ndarray]
    strings: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.times)

    def between(self, start_ns: int, end_ns: int) -> "Rows":
        keep = (self.times >= start_ns) & (self.times < end_ns)
        return Rows(self.measurement, self.tags, self.series[keep], self.times[keep], {k: v[keep] for k, v in self.fields.items()},
                    {k: v[keep] for k, v in self.strings.items()})


@dataclass
class Block:
    """Regular points: series i sampled every interval_s from offsets_s[i]; fields[name] is
    (series, samples) with NaN where a point lacks the field."""

    measurement: str
    tags: list[dict[str, str]]
    interval_s: int
    start_ns: int
    offsets_ns: np.ndarray
    fields: dict[str, np.ndarray]
    strings: dict[str, np.ndarray] = field(default_factory=dict)  # (series, samples) object arrays, None: absent

    def rows(self) -> Rows:
        n_series, n_t = next(iter(self.fields.values())).shape
        times = self.start_ns + self.offsets_ns[:, None] + np.arange(n_t, dtype=np.int64)[None, :] * self.interval_s * NS
        series = np.repeat(np.arange(n_series), n_t)
        return Rows(self.measurement, self.tags, series, times.ravel(), {k: v.ravel() for k, v in self.fields.items()},
                    {k: v.ravel() for k, v in self.strings.items()})


def _rng(*key: object) -> np.random.Generator:
    return np.random.default_rng([SEED, *(abs(hash_text(str(k))) for k in key)])


def hash_text(text: str) -> int:
    """A stable hash (Python's own is salted per process)."""
    h = 1469598103934665603
    for ch in text.encode():
        h = ((h ^ ch) * 1099511628211) % (1 << 63)
    return h


def _offsets(tags: Sequence[Mapping[str, str]], interval_s: int) -> np.ndarray:
    """Each series samples at its own second within its interval (agents and pollers are not in step)."""
    return np.array([hash_text(json.dumps(t, sort_keys=True)) % interval_s for t in tags], dtype=np.int64) * NS


def _daily(t_s: np.ndarray, phase: np.ndarray | float = 0.0) -> np.ndarray:
    """0..1 over the day, highest in the early afternoon."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * ((t_s % DAY_S) / DAY_S - 0.1) + phase)


def _r(x: np.ndarray, decimals: int) -> np.ndarray:
    return np.round(x, decimals)


class Outages:
    """Each series' outages over the whole period, drawn once: about `per_month`, lasting minutes to hours."""

    def __init__(self, start_s: int, end_s: int, per_month: float = 1.5):
        self.start_s, self.end_s, self.per_month = start_s, end_s, per_month
        self._cache: dict[str, np.ndarray] = {}

    def of(self, key: str) -> np.ndarray:
        if key not in self._cache:
            rng = _rng("outages", key)
            n = rng.poisson(self.per_month * (self.end_s - self.start_s) / (30 * DAY_S))
            starts = np.sort(rng.integers(self.start_s, self.end_s, n))
            lengths = np.clip(rng.lognormal(np.log(600), 1.0, n), 60, 6 * 3600).astype(np.int64)
            spans = np.stack([starts, starts + lengths], axis=1) if n else np.zeros((0, 2), dtype=np.int64)
            keep = [0] if n else []  # no overlaps
            for i in range(1, n):
                if spans[i, 0] > spans[keep[-1], 1]:
                    keep.append(i)
            self._cache[key] = spans[keep]
        return self._cache[key]

    def down(self, key: str, t_s: np.ndarray) -> np.ndarray:
        spans = self.of(key)
        if not len(spans):
            return np.zeros(t_s.shape, dtype=bool)
        i = np.searchsorted(spans[:, 0], t_s, side="right") - 1
        return (i >= 0) & (t_s < spans[np.maximum(i, 0), 1])


class Generator:
    """The estate's raw points, a day at a time, the same values for every run (seeded by day and series)."""

    def __init__(self, estate: Estate, start_s: int, days: int):
        self.estate, self.start_s, self.days = estate, start_s, days
        self.outages = Outages(start_s - DAY_S, start_s + (days + 1) * DAY_S)
        self.site_of_agent = {a.id: a.site for a in estate.agents}
        self.device_by_id = {d.id: d for d in estate.devices}

    def day_start_ns(self, day: int) -> int:
        return (self.start_s + day * DAY_S) * NS

    def _times_s(self, day: int, tags: list[dict[str, str]], interval_s: int) -> tuple[np.ndarray, np.ndarray]:
        offsets = _offsets(tags, interval_s)
        n_t = DAY_S // interval_s
        t_s = (self.start_s + day * DAY_S) + offsets[:, None] // NS + np.arange(n_t)[None, :] * interval_s
        return offsets, t_s.astype(np.float64)

    def _block(self, measurement: str, day: int, tags: list[dict[str, str]], interval_s: int,
               values: Callable[[np.random.Generator, np.ndarray], tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], key: str) -> Block:
        offsets, t_s = self._times_s(day, tags, interval_s)
        numbers, strings = values(_rng(key, day), t_s)
        return Block(measurement, tags, interval_s, self.day_start_ns(day), offsets, numbers, strings)

    # Each group: (name, measurement, tags, interval, value function). Groups of one interval.
    def groups(self, before: bool) -> Iterator[tuple[str, str, list[dict[str, str]], int, Callable[..., Any]]]:
        est = self.estate
        for kind in sorted({p.kind for p in est.probes}):
            for interval in sorted({p.interval_s for p in est.probes if p.kind == kind}):
                series = [p for p in est.probes if p.kind == kind and p.interval_s == interval]
                tags = [{"site": p.site, "host": p.host, "kind": p.kind, "target": p.target} for p in series]
                yield f"probe/{kind}/{interval}", "probe", tags, interval, self._probe_values(kind, series)
        for interval in sorted({a.interval_s for a in est.agents}):
            agents = [a for a in est.agents if a.interval_s == interval]
            yield f"host/{interval}", "host", [{"site": a.site, "host": a.id} for a in agents], interval, self._host_values(agents)
            disks = [(a, m) for a in agents for m in a.mounts]
            yield f"host_disk/{interval}", "host_disk", [{"site": a.site, "host": a.id, "mount": m} for a, m in disks], interval, self._disk_values(disks)
            nics = [(a, n) for a in agents for n in a.nics]
            yield f"host_net/{interval}", "host_net", [{"site": a.site, "host": a.id, "nic": n} for a, n in nics], interval, self._net_values(nics)
            configured = [(a, s) for a in agents for s in a.services]
            if configured:
                yield (f"service/{interval}", "service", [{"site": a.site, "host": a.id, "service": s, "kind": "configured"} for a, s in configured],
                       interval, self._service_values(configured))
        listen = [(a, p) for a in est.agents if a.kind == "server" for p in ("sqlservr", "w3wp", "lsass", "svchost", "sshd")]
        yield ("service/listen", "service", [{"site": a.site, "host": a.id, "service": p, "kind": "listen"} for a, p in listen],
               AGENT_LISTEN_S, self._listen_values(listen))
        for kind in ("firewall", "switch", "ups", "printer"):
            for interval in sorted({d.interval_s for d in est.devices if d.kind == kind}):
                devices = [d for d in est.devices if d.kind == kind and d.interval_s == interval]
                yield (f"device/{kind}/{interval}", "device", [{"site": d.site, "device": d.id} for d in devices],
                       interval, self._device_values(kind, devices))
        for interval in sorted({d.interval_s for d in est.devices}):
            ifs = [(d, n) for d in est.devices if d.interval_s == interval for n in d.interfaces]
            yield (f"interface/{interval}", "interface", [{"site": d.site, "device": d.id, "ifname": n} for d, n in ifs],
                   interval, self._interface_values(ifs))
        printers = [d for d in est.devices if d.kind == "printer"]
        supplies = [(d, s, t) for d in printers for s, t in (("black", "toner"), ("drum", "drum"), ("waste", "waste_toner"), ("fuser", "fuser"))]
        yield ("printer_supply", "printer_supply", [{"site": d.site, "device": d.id, "supply": s, "type": t} for d, s, t in supplies],
               60, self._supply_values(supplies))
        yield "collector", "collector", [{"collector": "main"}], COLLECTOR_SELF_S, self._collector_values()
        if before:
            yield from self._before_availability()

    # -- value functions: (rng, t_s (series, samples)) -> (numbers, strings) ------------------------
    def _probe_values(self, kind: str, series: list[ProbeSeries]) -> Callable[..., Any]:
        base = np.array([2 + hash_text(p.host + p.target) % 40 for p in series], dtype=float)[:, None]

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            down = np.stack([self.outages.down(f"target/{p.host}/{p.target}", t_s[i]) for i, p in enumerate(series)])
            load = _daily(t_s)
            latency = _r(base * (1 + 0.6 * load) + rng.exponential(1.5, t_s.shape), 3)
            up = np.where(down, 0.0, 1.0)
            ok = lambda x: np.where(down, np.nan, x)  # noqa: E731
            out = {"up": up, "duration_ms": _r(np.where(down, 5000.0, latency * 1.2 + 0.5), 3)}
            strings = {"reason": np.where(down, "timeout", None)}
            if kind == "icmp":
                lost = np.where(rng.random(t_s.shape) < 0.03, rng.integers(1, 3, t_s.shape), 0).astype(float)
                sent = np.full(t_s.shape, 10.0)
                out.update(rtt_ms=ok(latency), rtt_min_ms=ok(_r(latency * 0.8, 3)), rtt_max_ms=ok(_r(latency * 1.7, 3)),
                           rtt_p95_ms=ok(_r(latency * 1.5, 3)), jitter_ms=ok(_r(rng.uniform(0.05, 2.5, t_s.shape), 3)),
                           loss_pct=np.where(down, 100.0, lost * 10), sent=sent, received=np.where(down, 0.0, sent - lost))
                strings["method"] = np.full(t_s.shape, "icmp", dtype=object)
            elif kind == "tcp":
                out["connect_ms"] = ok(latency)
            elif kind == "http":
                out.update(status_code=ok(np.full(t_s.shape, 200.0)), ttfb_ms=ok(_r(latency * 4 + 30, 3)), total_ms=ok(_r(latency * 5 + 45, 3)),
                           bytes=ok(np.full(t_s.shape, 48213.0)), cert_days_left=ok(np.floor(200 - (t_s - self.start_s) / DAY_S % 90)))
            elif kind == "dns":
                out.update(resolve_ms=ok(_r(latency * 0.5 + 0.3, 3)), answers=ok(np.full(t_s.shape, 1.0)), rcode=ok(np.zeros(t_s.shape)))
            return out, strings

        return values

    def _host_values(self, agents: list[AgentSeries]) -> Callable[..., Any]:
        server = np.array([a.kind == "server" for a in agents])[:, None]
        mem_total = np.where(server, 64 * 2.0**30, 8 * 2.0**30)
        boot = np.array([self.start_s - hash_text(a.id) % (30 * DAY_S) for a in agents], dtype=float)[:, None]

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            load = _daily(t_s)
            cpu = _r(np.clip(5 + 55 * load * rng.random(t_s.shape) + rng.exponential(3, t_s.shape), 0, 100), 2)
            mem = _r(np.clip(45 + 20 * load + rng.normal(0, 2, t_s.shape), 0, 100), 2)
            l1 = _r(cpu / 25 + rng.random(t_s.shape) * 0.3, 2)
            # weekly reboots (patch Sunday): uptime restarts
            since = (t_s - boot) % (7 * DAY_S)
            return {"cpu_pct": cpu, "mem_used_pct": mem, "mem_total_bytes": np.broadcast_to(mem_total, t_s.shape).copy(),
                    "mem_available_bytes": np.round(mem_total * (1 - mem / 100)), "swap_used_pct": _r(mem / 10, 2),
                    "load1": l1, "load5": _r(l1 * 0.9, 2), "load15": _r(l1 * 0.8, 2), "uptime_s": np.floor(since), "boot_time_s": np.floor(t_s - since),
                    "procs": np.round(120 + 60 * load), "spool_pending_points": np.zeros(t_s.shape), "spool_dropped_points": np.zeros(t_s.shape),
                    "spool_bytes": np.full(t_s.shape, 24576.0)}, {}

        return values

    def _disk_values(self, disks: list[tuple[AgentSeries, str]]) -> Callable[..., Any]:
        total = np.array([512e9 if a.kind == "server" else 256e9 for a, _ in disks])[:, None]
        first = np.array([0.3 + (hash_text(a.id + m) % 50) / 100 for a, m in disks])[:, None]

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            share = np.clip(first + 0.1 * (t_s - self.start_s) / (365 * DAY_S) + rng.normal(0, 0.0005, t_s.shape), 0, 1)
            used = np.round(total * share)
            return {"used_pct": _r(100 * share, 3), "total_bytes": np.broadcast_to(total, t_s.shape).copy(), "used_bytes": used,
                    "free_bytes": total - used}, {}

        return values

    def _net_values(self, nics: list[tuple[AgentSeries, str]]) -> Callable[..., Any]:
        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            load = _daily(t_s)
            zero = np.zeros(t_s.shape)
            return {"in_bps": _r(2e4 + 4e6 * load * rng.random(t_s.shape), 1), "out_bps": _r(1e4 + 1e6 * load * rng.random(t_s.shape), 1),
                    "in_errors_ps": zero, "out_errors_ps": zero, "in_drops_ps": _r(np.where(rng.random(t_s.shape) < 0.01, 0.5, 0.0), 3),
                    "out_drops_ps": zero}, {}

        return values

    def _service_values(self, configured: list[tuple[AgentSeries, str]]) -> Callable[..., Any]:
        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            return {"up": np.ones(t_s.shape)}, {"status": np.full(t_s.shape, "running", dtype=object)}

        return values

    def _listen_values(self, listen: list[tuple[AgentSeries, str]]) -> Callable[..., Any]:
        ports = {"sqlservr": "1433", "w3wp": "80,443", "lsass": "49664", "svchost": "135,3389", "sshd": "22"}
        text = np.array([ports[p] for _, p in listen], dtype=object)[:, None]

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            port_text = np.broadcast_to(text, t_s.shape)
            listen_text = np.vectorize(lambda p: " ".join(f"tcp:0.0.0.0:{x}" for x in p.split(",")), otypes=[object])(port_text)
            return ({"up": np.ones(t_s.shape), "sockets": np.full(t_s.shape, 2.0), "processes": np.ones(t_s.shape)},
                    {"ports": port_text.copy(), "listen": listen_text})

        return values

    def _device_values(self, kind: str, devices: list[DeviceSeries]) -> Callable[..., Any]:
        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            down = np.stack([self.outages.down(f"device/{d.id}", t_s[i]) for i, d in enumerate(devices)])
            load = _daily(t_s)
            ok = lambda x: np.where(down, np.nan, x)  # noqa: E731
            booted = np.array([self.start_s - 40 * DAY_S - hash_text(d.id) % (90 * DAY_S) for d in devices], dtype=float)[:, None]
            out = {"up": np.where(down, 0.0, 1.0), "uptime_s": ok(np.floor(t_s - booted)), "poll_ms": _r(rng.uniform(80, 600, t_s.shape), 1),
                   "partial": ok(np.zeros(t_s.shape))}
            strings: dict[str, np.ndarray] = {}
            if kind in ("firewall", "switch"):
                out.update(cpu_pct=ok(_r(5 + 40 * load * rng.random(t_s.shape), 1)), mem_used_pct=ok(_r(40 + 10 * load + rng.normal(0, 1, t_s.shape), 1)),
                           temperature_c=ok(_r(38 + 6 * load + rng.normal(0, 0.5, t_s.shape), 1)), rebooted=ok(np.zeros(t_s.shape)))
            if kind == "firewall":
                out.update(sessions=ok(np.round(200 + 1500 * load * rng.uniform(0.8, 1.2, t_s.shape))),
                           vpn_tunnels_up=ok(np.where(rng.random(t_s.shape) < 0.002, 2.0, 3.0)), vpn_tunnels_total=ok(np.full(t_s.shape, 3.0)))
            if kind == "ups":
                battery = np.stack([self.outages.down(f"power/{d.site}", t_s[i]) for i, d in enumerate(devices)])
                out.update(ups_on_battery=ok(battery.astype(float)), ups_seconds_on_battery=ok(np.where(battery, 120.0, 0.0)),
                           ups_minutes_left=ok(np.where(battery, 25.0, 42.0)), ups_charge_pct=ok(np.where(battery, 80.0, 100.0)),
                           ups_battery_low=ok(np.zeros(t_s.shape)), battery_replace_needed=ok(np.zeros(t_s.shape)))
                strings.update(ups_battery_status=np.where(down, None, "normal"), ups_output_source=np.where(down, None, np.where(battery, "battery", "normal")))
            if kind == "printer":
                out.update(pages_total=ok(np.floor(50000 + (t_s - self.start_s) / 600)), printer_error=ok(np.zeros(t_s.shape)))
            return out, strings

        return values

    def _interface_values(self, ifs: list[tuple[DeviceSeries, str]]) -> Callable[..., Any]:
        uplink = np.array([n in d.uplinks for d, n in ifs])[:, None]
        speed = np.array([d.speeds.get(n, 1e8 if uplink[i, 0] and d.kind == "firewall" else 1e9) for i, (d, n) in enumerate(ifs)])[:, None]
        virtual = np.array([n.lower().startswith(("lo", "null", "nu0", "vl", "vlan", "trk", "ssl", "npu", "default")) for _, n in ifs])[:, None]
        # Uplinks are busy and grow: from 20-50 % of the line at peak toward 60-95 % a year later.
        peak = np.where(uplink, 0.2 + np.array([hash_text(d.id) % 30 / 100 for d, _ in ifs])[:, None], 0.002 + 0.02 * ~virtual)

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            down = np.stack([self.outages.down(f"device/{d.id}", t_s[i]) for i, (d, _) in enumerate(ifs)])
            growth = 1 + 1.2 * (t_s - self.start_s) / (365 * DAY_S)
            use = np.clip(peak * growth * (0.1 + 0.9 * _daily(t_s)) * rng.uniform(0.7, 1.1, t_s.shape), 0, 1.2)
            in_bps = _r(speed * use, 1)
            out_bps = _r(speed * use * rng.uniform(0.2, 0.6, t_s.shape), 1)
            ok = lambda x: np.where(down, np.nan, x)  # noqa: E731
            zero = np.zeros(t_s.shape)
            return ({"in_bps": ok(in_bps), "out_bps": ok(out_bps), "in_util_pct": ok(_r(100 * in_bps / speed, 4)),
                     "out_util_pct": ok(_r(100 * out_bps / speed, 4)),
                     "in_errors_ps": ok(np.where(rng.random(t_s.shape) < 0.005, 0.1, 0.0)), "out_errors_ps": ok(zero),
                     "in_discards_ps": ok(np.where(uplink & (use > 0.9), 1.5, 0.0)), "out_discards_ps": ok(zero),
                     "oper_up": ok(np.ones(t_s.shape)), "admin_up": ok(np.ones(t_s.shape)),
                     "speed_bps": ok(np.broadcast_to(speed, t_s.shape).copy())},
                    {"alias": np.where(down | ~uplink, None, "Linje ut")})

        return values

    def _supply_values(self, supplies: list[tuple[DeviceSeries, str, str]]) -> Callable[..., Any]:
        receptacle = np.array([t == "waste_toner" for _, _, t in supplies], dtype=float)[:, None]
        life_days = np.array([{"toner": 60, "drum": 240, "waste_toner": 120, "fuser": 720}[t] for _, _, t in supplies], dtype=float)[:, None]

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            left = _r(100 - 100 * ((t_s - self.start_s) / DAY_S % life_days) / life_days, 1)
            return ({"left_pct": left, "receptacle": np.broadcast_to(receptacle, t_s.shape).copy(), "level": np.round(left * 30),
                     "max_capacity": np.full(t_s.shape, 3000.0)}, {"state": np.where(left < 2, "empty", "ok").astype(object)})

        return values

    def _collector_values(self) -> Callable[..., Any]:
        agents = float(len(self.estate.agents))

        def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
            since = t_s - self.start_s
            points = np.floor(since * 60)
            zero = np.zeros(t_s.shape)
            return {"points_in": points, "batches_in": np.floor(points / 90), "duplicates": np.floor(points / 1e6), "queue_points": np.round(rng.uniform(0, 400, t_s.shape)),
                    "queue_bytes": np.round(rng.uniform(0, 4e5, t_s.shape)), "queue_age_s": _r(rng.uniform(0, 2, t_s.shape), 3), "written_points": points,
                    "dropped_points": zero, "rejected_points": zero, "write_errors": np.floor(since / (9 * DAY_S)),
                    "agents_up": np.full(t_s.shape, agents), "agents_down": zero, "agents_waiting": zero,
                    "agents_total": np.full(t_s.shape, agents), "rate_limited": zero}, {}

        return values

    # -- availability, alerts, logins, facts -----------------------------------------------------
    def _judged(self) -> list[tuple[dict[str, str], str, dict[str, float]]]:
        """(tags, outage key, constant fields) of every availability series."""
        out = [({"site": a.site, "kind": "agent", "host": a.id}, f"agent/{a.id}", {"expected_s": 10.0}) for a in self.estate.agents]
        out += [({"site": p.site, "kind": "target", "host": p.host, "target": p.target}, f"target/{p.host}/{p.target}", {}) for p in self.estate.probes]
        out += [({"site": d.site, "kind": "device", "device": d.id}, f"device/{d.id}", {}) for d in self.estate.devices]
        return out

    def _before_availability(self) -> Iterator[tuple[str, str, list[dict[str, str]], int, Callable[..., Any]]]:
        """Before issue 19: every judgement stored (agents and targets every 5 s, devices at each poll)."""
        judged = self._judged()
        timed = [j for j in judged if j[0]["kind"] != "device"]

        def values_of(series: list[tuple[dict[str, str], str, dict[str, float]]]) -> Callable[..., Any]:
            def values(rng: np.random.Generator, t_s: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
                down = np.stack([self.outages.down(key, t_s[i]) for i, (_, key, _) in enumerate(series)])
                out = {"up": np.where(down, 0.0, 1.0)}
                if series[0][0]["kind"] != "device":  # silent_s: agents and targets only
                    out["silent_s"] = _r(np.where(down, 60.0, rng.uniform(0, 10, t_s.shape)), 3)
                if any("expected_s" in c for _, _, c in series):
                    out["expected_s"] = np.array([c.get("expected_s", np.nan) for _, _, c in series])[:, None] + np.zeros(t_s.shape)
                return out, {}
            return values

        yield "availability/5s", "availability", [t for t, _, _ in timed], BEFORE_AVAILABILITY_S, values_of(timed)
        for interval in sorted({d.interval_s for d in self.estate.devices}):
            devices = [j for j in judged if j[0]["kind"] == "device" and self.device_by_id[j[0]["device"]].interval_s == interval]
            yield f"availability/device/{interval}", "availability", [t for t, _, _ in devices], interval, values_of(devices)

    def availability(self, day: int) -> Rows:
        """Now: a point per series on every change of its verdict and once per beat, with up_s and
        judged_s since the series' previous point (collector/availability.py)."""
        start, end = self.start_s + day * DAY_S, self.start_s + (day + 1) * DAY_S
        judged = self._judged()
        rng = _rng("availability", day)
        series, times, up, up_s, judged_s, silent = [], [], [], [], [], []
        expected = []
        for i, (tags, key, const) in enumerate(judged):
            offset = hash_text(key) % BEAT_S
            beats = np.arange(start - BEAT_S + offset, end, BEAT_S)
            spans = self.outages.of(key)
            changes = spans.ravel()
            changes = changes[(changes >= start - BEAT_S) & (changes < end)]
            t = np.unique(np.concatenate([beats, changes]))
            state = ~self.outages.down(key, t.astype(np.float64))
            held = np.diff(t).astype(float)
            t, was_up, state = t[1:], state[:-1], state[1:]
            keep = t >= start
            t, held, was_up, state = t[keep], held[keep], was_up[keep], state[keep]
            series.append(np.full(len(t), i))
            times.append(t * NS)
            up.append(state.astype(float))
            judged_s.append(held)
            up_s.append(np.where(was_up, held, 0.0))
            # silent_s: agents and targets only (a device's verdict is its poll's)
            silent.append(np.full(len(t), np.nan) if tags["kind"] == "device" else _r(np.where(state, rng.uniform(0, 10, len(t)), 60.0), 3))
            expected.append(np.full(len(t), const.get("expected_s", np.nan)))
        return Rows("availability", [t for t, _, _ in judged], np.concatenate(series), np.concatenate(times),
                    {"up": np.concatenate(up), "silent_s": np.concatenate(silent), "expected_s": np.concatenate(expected),
                     "up_s": np.concatenate(up_s), "judged_s": np.concatenate(judged_s)})

    def events(self, day: int) -> list[Rows]:
        """The alert history of the day's outages (pending, firing after the rule's for_s, resolved) and logins."""
        start, end = self.start_s + day * DAY_S, self.start_s + (day + 1) * DAY_S
        rules = {"agent": ("agent-silent", 40), "target": ("target-lost", 35), "device": ("device-down", 0)}
        tags, times, active, summary, affected = [], [], [], [], []
        for series_tags, key, _ in self._judged():
            rule, for_s = rules[series_tags["kind"]]
            subject = series_tags.get("target") or series_tags.get("device") or series_tags["host"]
            if series_tags["kind"] == "target":
                subject = f"{series_tags['host']}/{subject}"
            for s, e in self.outages.of(key):
                for state, t, act in (("pending", s, 0.0), ("firing", s + for_s, 1.0), ("resolved", e, 0.0)):
                    if start <= t < end and (state != "pending" or for_s) and e - s > for_s:
                        tags.append({"site": series_tags["site"], "rule": rule, "severity": "critical", "state": state, "subject": subject})
                        times.append(t * NS)
                        active.append(act)
                        summary.append(f"{subject}: {state}")
                        affected.append(0.0)
        idx = np.arange(len(tags))
        alerts = Rows("alert", tags, idx, np.array(times, dtype=np.int64), {"active": np.array(active), "affected": np.array(affected)},
                      {"summary": np.array(summary, dtype=object)})
        rng = _rng("logins", day)
        ltags, ltimes, lstart, ldur = [], [], [], []
        for agent in (a for a in self.estate.agents if a.logins):
            for n in range(int(rng.integers(2, 6))):
                t0 = start + int(rng.integers(6 * 3600, 18 * 3600))
                length = int(rng.integers(300, 4 * 3600))
                user = ("kari", "ola", "helse", "admin")[n % 4]
                base = {"site": agent.site, "host": agent.id, "user": user, "kind": "remote", "terminal": f"rdp-tcp#{n}"}
                for event, t, dur in (("start", t0, np.nan), ("end", t0 + length, float(length))):
                    if t < end:
                        ltags.append({**base, "event": event})
                        ltimes.append(t * NS)
                        lstart.append(float(t0))
                        ldur.append(dur)
        logins = Rows("login", ltags, np.arange(len(ltags)), np.array(ltimes, dtype=np.int64),
                      {"start_time_s": np.array(lstart), "duration_s": np.array(ldur), "end_unseen": np.zeros(len(ltags))},
                      {"from_host": np.full(len(ltags), "10.20.0.50", dtype=object)})
        return [alerts, logins]

    def facts(self, day: int) -> list[Rows]:
        """Hourly hardware facts of agents and the collector's hourly lifecycle points (raw only: strings)."""
        start = self.start_s + day * DAY_S
        hours = np.arange(start, start + DAY_S, 3600)
        hw_tags = [{"site": a.site, "host": a.id, "kind": a.kind} for a in self.estate.agents]
        n = len(hw_tags)
        hw = Rows("hardware", hw_tags, np.repeat(np.arange(n), len(hours)), np.tile(hours * NS, n),
                  {"cpu_cores": np.full(n * len(hours), 4.0), "mem_total_bytes": np.full(n * len(hours), 8 * 2.0**30)},
                  {"vendor": np.full(n * len(hours), "Dell Inc.", dtype=object), "model": np.full(n * len(hours), "OptiPlex 7050", dtype=object),
                   "serial": np.repeat(np.array([f"SN{hash_text(t['host']) % 10**8:08d}" for t in hw_tags], dtype=object), len(hours)),
                   "os_name": np.full(n * len(hours), "Windows 10 Pro", dtype=object)})
        things = [("host", a.id, a.site, a.kind) for a in self.estate.agents] + [("device", d.id, d.site, d.kind) for d in self.estate.devices]
        lc_tags = [{"site": s, key: i, "kind": k, "due_year": str(2020 + hash_text(i) % 8), "department": "IT"} for key, i, s, k in things]
        m = len(lc_tags)
        age = 3.0 + (hours - self.start_s) / (365.0 * DAY_S)
        lc = Rows("lifecycle", lc_tags, np.repeat(np.arange(m), len(hours)), np.tile(hours * NS, m),
                  {"age_years": np.tile(_r(age, 4), m), "lifetime_years": np.full(m * len(hours), 6.0),
                   "remaining_years": np.tile(_r(6.0 - age, 4), m),
                   "due_calendar_year": np.repeat(np.array([float(t["due_year"]) for t in lc_tags]), len(hours)),
                   "replacement_cost_nok": np.full(m * len(hours), 11000.0)},
                  {"model": np.full(m * len(hours), "as in the inventory", dtype=object)})
        return [hw, lc]

    def day_blocks(self, day: int, before: bool) -> Iterator[Block]:
        for key, measurement, tags, interval, values in self.groups(before):
            yield self._block(measurement, day, tags, interval, values, key)


# --- rollups by the definitions of collector/rollups.py ---------------------------------------------
def _nearest_rank_p95(sorted_values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """InfluxDB's percentile(F, 95) of each row of (..., k) values sorted with NaNs last:
    the value at rank floor(n*0.95 + 0.5) of the n present; NaN when none."""
    n = valid.sum(axis=-1)
    idx = np.floor(n * 0.95 + 0.5).astype(np.int64) - 1
    picked = np.take_along_axis(sorted_values, np.clip(idx, 0, sorted_values.shape[-1] - 1)[..., None], axis=-1)[..., 0]
    return np.where(idx >= 0, picked, np.nan)


def _reduce(values: np.ndarray, aggregate: str) -> np.ndarray:
    """One aggregate over the last axis, ignoring NaN (absent); NaN where nothing is present."""
    if aggregate == "min":
        return np.fmin.reduce(values, axis=-1)  # fmin/fmax skip NaN, and give NaN only when all are
    if aggregate == "max":
        return np.fmax.reduce(values, axis=-1)
    valid = ~np.isnan(values)
    if aggregate == "p95":
        return _nearest_rank_p95(np.sort(values, axis=-1), valid)
    count = valid.sum(axis=-1)
    total = np.nansum(values, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if aggregate == "mean":
            return np.where(count > 0, total / count, np.nan)
        if aggregate == "sum":
            return np.where(count > 0, total, np.nan)
    raise ValueError(f"no such aggregate: {aggregate}")


@dataclass
class Dense:
    """Rollup rows of every series of a block: fields[name] is (series, buckets), NaN where absent."""

    measurement: str
    tags: list[dict[str, str]]
    start_ns: int
    bucket_s: int
    fields: dict[str, np.ndarray]

    def rows(self) -> Rows:
        n_series, n_b = next(iter(self.fields.values())).shape
        present = np.zeros((n_series, n_b), dtype=bool)
        for v in self.fields.values():
            present |= ~np.isnan(v)
        s_idx, b_idx = np.nonzero(present)
        return Rows(self.measurement, self.tags, s_idx, self.start_ns + b_idx.astype(np.int64) * self.bucket_s * NS,
                    {k: v[s_idx, b_idx] for k, v in self.fields.items()})


def five_minute(block: Block) -> Dense:
    """The 5-minute rollup of a block of regular points (its interval divides 5 minutes)."""
    assert BUCKET_S["5m"] % block.interval_s == 0, block.interval_s
    per = BUCKET_S["5m"] // block.interval_s
    spec = MEASUREMENTS_SPEC[block.measurement]
    out = {}
    for rf in rollup_fields(spec):
        source = block.fields.get(rf.source)
        if source is None:
            continue
        n_series, n_t = source.shape
        out[rf.name] = _reduce(source.reshape(n_series, n_t // per, per), rf.aggregate)
    return Dense(block.measurement, block.tags, block.start_ns, BUCKET_S["5m"], out)


def hourly(five: Dense) -> Dense:
    """The hourly rollup from 5-minute rows, each field by OF_ROLLUPS (as the 1h continuous query)."""
    spec = MEASUREMENTS_SPEC[five.measurement]
    per = BUCKET_S["1h"] // five.bucket_s
    out = {}
    for rf in rollup_fields(spec):
        values = five.fields.get(rf.name)
        if values is not None:
            n_series, n_b = values.shape
            out[rf.name] = _reduce(values.reshape(n_series, n_b // per, per), OF_ROLLUPS[rf.aggregate])
    return Dense(five.measurement, five.tags, five.start_ns, BUCKET_S["1h"], out)


def rollup_rows(rows: Rows, bucket_s: int, from_rollup: bool) -> Rows:
    """Rollup of irregular points (availability, hourly facts) by series and bucket: raw points by
    the rollup fields' aggregates, or 5-minute rows into hours by OF_ROLLUPS."""
    spec = MEASUREMENTS_SPEC[rows.measurement]
    bucket = rows.times // (bucket_s * NS)
    order = np.lexsort((rows.times, rows.series))
    series, bucket = rows.series[order], bucket[order]
    keys = series.astype(np.int64) * (1 << 40) + bucket
    uniq, inverse = np.unique(keys, return_inverse=True)
    fields = {}
    for rf in rollup_fields(spec):
        name = rf.name if from_rollup else rf.source
        if name not in rows.fields:
            continue
        aggregate = OF_ROLLUPS[rf.aggregate] if from_rollup else rf.aggregate
        values = rows.fields[name][order]
        valid = ~np.isnan(values)
        result = np.full(len(uniq), np.nan)
        k, v = inverse[valid], values[valid]
        if len(k):
            starts = np.r_[0, np.flatnonzero(np.diff(k)) + 1]
            groups = k[starts]
            counts = np.diff(np.r_[starts, len(k)])
            if aggregate == "mean":
                result[groups] = np.add.reduceat(v, starts) / counts
            elif aggregate == "sum":
                result[groups] = np.add.reduceat(v, starts)
            elif aggregate == "min":
                result[groups] = np.minimum.reduceat(v, starts)
            elif aggregate == "max":
                result[groups] = np.maximum.reduceat(v, starts)
            else:  # p95: sort each group's values
                by_value = np.lexsort((v, k))
                sorted_v = v[by_value]
                idx = np.floor(counts * 0.95 + 0.5).astype(np.int64) - 1
                result[groups] = np.where(idx >= 0, sorted_v[starts + np.maximum(idx, 0)], np.nan)
        fields[rf.name] = result
    return Rows(rows.measurement, rows.tags, (uniq >> 40).astype(np.int64), (uniq & ((1 << 40) - 1)) * bucket_s * NS, fields)


# --- writing ------------------------------------------------------------------------------------
def _tag_text(tags: Mapping[str, str]) -> str:
    def esc(s: str) -> str:
        return s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
    return ",".join(f"{esc(k)}={esc(v)}" for k, v in sorted(tags.items()))


def _str_field(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def lines_of(rows: Rows) -> Iterator[str]:
    """Line protocol of the rows: floats as repr (exact), strings quoted, absent fields left out."""
    prefixes = [f"{rows.measurement},{_tag_text(t)} " if t else f"{rows.measurement} " for t in rows.tags]
    names = list(rows.fields)
    matrix = np.column_stack([rows.fields[n] for n in names]) if names else np.zeros((len(rows), 0))
    full = ~np.isnan(matrix).any(axis=1)
    strings = {k: v for k, v in rows.strings.items()}
    template = ",".join(f"{n}=%r" for n in names)
    values = matrix.tolist()
    series = rows.series.tolist()
    times = rows.times.tolist()
    string_cols = [(k, v.tolist()) for k, v in strings.items()]
    full_list = full.tolist()
    for r in range(len(times)):
        extra = "".join(f",{k}={_str_field(col[r])}" for k, col in string_cols if col[r] is not None)
        if full_list[r] and names:
            body = template % tuple(values[r]) + extra
        else:
            parts = [f"{n}={v!r}" for n, v in zip(names, values[r]) if not math.isnan(v)]
            body = ",".join(parts) + extra if parts else extra[1:]
        if body:
            yield f"{prefixes[series[r]]}{body} {times[r]}"


class Writer:
    """Posts line protocol to influxd's /write from two threads while the caller makes more;
    counts points and field values per (database, policy, measurement)."""

    BATCH = 5000

    def __init__(self, url: str):
        self.url = url
        self.counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
        self._queue: queue.Queue[tuple[str, str, bytes] | None] = queue.Queue(maxsize=8)
        self._errors: list[str] = []
        self._threads = [threading.Thread(target=self._post_loop, daemon=True) for _ in range(2)]
        for t in self._threads:
            t.start()

    def _post_loop(self) -> None:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while (item := self._queue.get()) is not None:
            db, rp, body = item
            request = urllib.request.Request(f"{self.url}/write?db={db}&rp={rp}&precision=ns", data=body)
            try:
                with opener.open(request, timeout=600) as resp:
                    if resp.status != 204:
                        self._errors.append(f"/write {db}.{rp}: HTTP {resp.status}")
            except Exception as exc:  # noqa: BLE001 - reported by close(), which fails the run
                self._errors.append(f"/write {db}.{rp}: {exc}")

    def write(self, db: str, rp: str, rows: Rows) -> None:
        if self._errors:
            raise RuntimeError("; ".join(self._errors[:3]))
        batch: list[str] = []
        values = 0
        for line in lines_of(rows):
            batch.append(line)
            if len(batch) >= self.BATCH:
                self._queue.put((db, rp, ("\n".join(batch) + "\n").encode()))
                batch = []
        if batch:
            self._queue.put((db, rp, ("\n".join(batch) + "\n").encode()))
        for v in rows.fields.values():
            values += int((~np.isnan(v)).sum())
        for v in rows.strings.values():
            values += int(sum(x is not None for x in v))
        count = self.counts[db, rp, rows.measurement]
        count[0] += len(rows)
        count[1] += values

    def flush(self) -> None:
        """Wait until everything queued is written (new threads carry on afterwards)."""
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()
        if self._errors:
            raise RuntimeError("; ".join(self._errors[:3]))
        self._threads = [threading.Thread(target=self._post_loop, daemon=True) for _ in range(2)]
        for t in self._threads:
            t.start()

    def close(self) -> None:
        self.flush()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


# --- generating both databases -------------------------------------------------------------------
AFTER, BEFORE = "after", "before"


def run_statement(url: str, statement: str, db: str | None = None) -> list[dict[str, Any]]:
    return query(url, db or "", statement, timeout_s=3600, post=True)


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def after_settings(url: str) -> StorageSettings:
    return StorageSettings(kind="influxdb_v1", url=url, database=AFTER, retention_policy="autogen")


def refresh_resolution_rows(url: str) -> int:
    """The dashboards' rp_config rows as the collector's start writes them where they differ (the
    dashboards may have changed since the data was written: docs/storage.md); returns how many."""
    settings = after_settings(url)
    admin = InfluxAdmin(settings, None)
    found = read_existing(admin)
    changed = row_differences(storage_plan(AFTER, "autogen", retention_seconds(settings)), found)
    for difference in changed:
        for statement in difference.fix:
            admin.execute(statement)
    return len(changed)


def write_after(server: InfluxdServer, writer: Writer, gen: Generator, args: argparse.Namespace, state_dir: Path) -> dict[str, Any]:
    """nettvakt now: policies and queries by the collector's set-up; old days as computed rollups,
    the newest raw days as raw points rolled up by the collector's backfill."""
    run_statement(server.url, f'CREATE DATABASE "{AFTER}"')
    settings = after_settings(server.url)
    admin = InfluxAdmin(settings, None, timeout_s=3600)
    plan = set_up(admin, settings, BackfillState(state_dir / "rollup-backfill.json")).plan
    timings: dict[str, float] = {}
    first_raw = args.days - args.raw_days
    started = time.perf_counter()
    for day in range(first_raw):
        five_m = day >= args.days - args.days_5m
        for block in gen.day_blocks(day, before=False):
            if not is_rolled_up(MEASUREMENTS_SPEC[block.measurement]):
                continue
            five = five_minute(block)
            if five_m:
                writer.write(AFTER, "nettvakt_5m", five.rows())
            writer.write(AFTER, "nettvakt_1h", hourly(five).rows())
        avail5 = rollup_rows(gen.availability(day), BUCKET_S["5m"], from_rollup=False)
        if five_m:
            writer.write(AFTER, "nettvakt_5m", avail5)
        writer.write(AFTER, "nettvakt_1h", rollup_rows(avail5, BUCKET_S["1h"], from_rollup=True))
        for facts in gen.facts(day):
            facts5 = rollup_rows(facts, BUCKET_S["5m"], from_rollup=False)
            if five_m:
                writer.write(AFTER, "nettvakt_5m", facts5)
            writer.write(AFTER, "nettvakt_1h", rollup_rows(facts5, BUCKET_S["1h"], from_rollup=True))
        for events in gen.events(day):
            writer.write(AFTER, EVENTS_RETENTION_POLICY, events)
        if day % 10 == 0 or day == first_raw - 1:
            log(f"after: rollup day {day + 1}/{first_raw} ({'5m+1h' if five_m else '1h'}), {time.perf_counter() - started:.0f} s")
    writer.flush()
    timings["rollup_days_s"] = time.perf_counter() - started
    started = time.perf_counter()
    for day in range(first_raw, args.days):
        write_raw_day(writer, gen, day, AFTER)
        log(f"after: raw day {day + 1 - first_raw}/{args.raw_days}, {time.perf_counter() - started:.0f} s")
    writer.flush()
    timings["raw_days_s"] = time.perf_counter() - started
    started = time.perf_counter()
    statements = backfill(admin, plan, gen.day_start_ns(first_raw), gen.day_start_ns(args.days),
                          progress=lambda done: log(f"after: backfill up to {_iso(done)}"))
    timings["backfill_s"] = time.perf_counter() - started
    timings["backfill_statements"] = statements
    return timings


def raw_rows(gen: Generator, day: int, before: bool) -> Iterator[Rows]:
    """Every raw point of a day: before issue 19 availability is a judgement every 5 s, now on change and beat."""
    for block in gen.day_blocks(day, before=before):
        yield block.rows()
    if not before:
        yield gen.availability(day)
    yield from gen.events(day)
    yield from gen.facts(day)


def write_raw_day(writer: Writer, gen: Generator, day: int, db: str) -> None:
    for rows in raw_rows(gen, day, before=db == BEFORE):
        writer.write(db, "autogen", rows)


def write_before(server: InfluxdServer, writer: Writer, gen: Generator, args: argparse.Namespace) -> dict[str, float]:
    run_statement(server.url, f'CREATE DATABASE "{BEFORE}"')
    started = time.perf_counter()
    for day in range(args.days - args.before_days, args.days):
        write_raw_day(writer, gen, day, BEFORE)
        log(f"before: raw day {day + 1 - args.days + args.before_days}/{args.before_days}, {time.perf_counter() - started:.0f} s")
    writer.flush()
    return {"raw_days_s": time.perf_counter() - started}


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / NS, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def compare_with_backfill(url: str, database: str, gen: Generator, day: int, hours: int = 2) -> dict[str, Any]:
    """Rows computed here for the first `hours` of `day` against those the backfill wrote from the
    same raw points: every field of every series, relative 1e-9 (InfluxDB sums in another order)."""
    start_ns = gen.day_start_ns(day)
    end_ns = start_ns + hours * 3600 * NS
    computed: dict[str, list[Rows]] = {"5m": [], "1h": []}
    for block in gen.day_blocks(day, before=False):
        if is_rolled_up(MEASUREMENTS_SPEC[block.measurement]):
            five = five_minute(block)
            computed["5m"].append(five.rows())
            computed["1h"].append(hourly(five).rows())
    for rows in (gen.availability(day), *gen.facts(day)):
        five_rows = rollup_rows(rows, BUCKET_S["5m"], from_rollup=False)
        computed["5m"].append(five_rows)
        computed["1h"].append(rollup_rows(five_rows, BUCKET_S["1h"], from_rollup=True))
    compared = mismatches = 0
    worst = 0.0
    examples: list[str] = []
    for resolution, all_rows in computed.items():
        policy = RESOLUTIONS[resolution].retention_policy
        by_measurement: dict[str, dict[tuple[Any, ...], dict[str, float]]] = defaultdict(dict)
        for rows in all_rows:
            keep = (rows.times >= start_ns) & (rows.times < end_ns)
            for r in np.flatnonzero(keep):
                key = (int(rows.times[r]), tuple(sorted(rows.tags[rows.series[r]].items())))
                by_measurement[rows.measurement].setdefault(key, {}).update(
                    {k: float(v[r]) for k, v in rows.fields.items() if not math.isnan(v[r])})
        for measurement, mine in by_measurement.items():
            found = query(url, database, f'SELECT * FROM "{policy}"."{measurement}" WHERE time >= {start_ns} AND time < {end_ns} GROUP BY *',
                          timeout_s=600)
            theirs = {(int(row["time"]), tuple(sorted((k, v) for k, v in row.items() if k in _tag_keys(measurement) and v not in (None, "")))):
                      {k: v for k, v in row.items() if k != "time" and k not in _tag_keys(measurement) and k != "_measurement" and v is not None}
                      for row in found}
            if set(mine) != set(theirs):
                mismatches += 1
                examples.append(f"{resolution} {measurement}: rows only computed: {sorted(set(mine) - set(theirs))[:3]}, only backfilled: {sorted(set(theirs) - set(mine))[:3]}")
                continue
            for key, fields in mine.items():
                other = theirs[key]
                if set(fields) != set(other):
                    mismatches += 1
                    examples.append(f"{resolution} {measurement} {key}: fields {sorted(set(fields) ^ set(other))}")
                    continue
                for name, value in fields.items():
                    compared += 1
                    diff = abs(value - other[name]) / max(1.0, abs(value))
                    worst = max(worst, diff)
                    if diff > 1e-9:
                        mismatches += 1
                        examples.append(f"{resolution} {measurement} {key} {name}: computed {value!r}, backfill {other[name]!r}")
    return {"values_compared": compared, "mismatches": mismatches, "max_relative_difference": worst, "examples": examples[:5]}


def _tag_keys(measurement: str) -> set[str]:
    return set(MEASUREMENTS_SPEC[measurement].tags)


# --- measuring ----------------------------------------------------------------------------------
RANGES = {"24h": DAY_S, "7d": 7 * DAY_S, "30d": 30 * DAY_S, "1y": 365 * DAY_S}
# Grafana's $__interval: the range over the panel's maxDataPoints (else its width in pixels), rounded as
# Grafana's rangeutil.roundInterval does, never below the panel's min interval.
_ROUND = [(15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000), (3500, 2000), (7500, 5000),
          (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000), (90000, 60000), (210000, 120000), (450000, 300000),
          (750000, 600000), (1050000, 900000), (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
          (16200000, 10800000), (24300000, 21600000), (54000000, 43200000), (129600000, 86400000), (864000000, 604800000)]
SCREEN_PX = 1920  # a panel of w grid columns is about w/24 of it wide


def grafana_interval_ms(range_ms: int, width_columns: int, min_interval_ms: int, max_data_points: int | None = None) -> int:
    raw = range_ms / (max_data_points or max(1, width_columns * SCREEN_PX // 24 - 16))
    rounded = next((r for limit, r in _ROUND if raw < limit), 31536000000)
    return max(rounded, min_interval_ms)


def _duration_ms(text: str) -> int:
    units = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[: -len(unit)].isdigit():
            return int(text[: -len(unit)]) * units[unit]
    raise ValueError(f"not a duration: {text!r}")


def _interval_text(ms: int) -> str:
    for unit, size in (("d", 86400000), ("h", 3600000), ("m", 60000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def load_before_dashboards(work: Path) -> dict[str, Callable[[], Any]]:
    """The dashboards as of BEFORE_COMMIT (raw points at every range, availability from mean("up"))."""
    text = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:dashboards/generate.py"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = work / "dashboards_before.py"
    path.write_text(text, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("dashboards_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DASHBOARDS


def panel_statements(dashboard: dict[str, Any], run: Callable[[str], list[dict[str, Any]]], span: check.TimeRange) -> list[tuple[str, str]]:
    """(panel, query) as Grafana sends each for `span` when the dashboard opens: variables resolved
    by check.resolve_variables as Grafana selects them on opening (All, or the first value)."""
    values = check.resolve_variables(dashboard, run, span.time_filter, span, opened=True)
    min_interval = values.get("min_interval")
    out = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            floor = panel.get("interval")
            floor_ms = _duration_ms(min_interval) if floor == "${min_interval}" and isinstance(min_interval, str) else (_duration_ms(floor) if floor else 1)
            interval = _interval_text(grafana_interval_ms(span.to_ms - span.from_ms, panel["gridPos"]["w"], floor_ms, panel.get("maxDataPoints")))
            out.append((f"{panel['id']} {panel['title']}", check.substitute(target["query"], values, span.time_filter, interval, span)))
    for annotation in dashboard["annotations"]["list"]:
        out.append((f"annotation {annotation['name']}", check.substitute(annotation["query"], values, span.time_filter, "1m", span)))
    return out


# Grafana's data proxy gives up on a query after 30 s: a panel slower than that shows an error.
GRAFANA_TIMEOUT_S = 30.0
# A query slower than this is run once: its figure is clear, and repeats would cost the run minutes.
SLOW_MS = 3000.0


def timed(fn: Callable[[], object], runs: int, slow_ms: float = float("inf")) -> dict[str, float]:
    """Best and median of `runs` runs (one only when the first is slower than slow_ms)."""
    times: list[float] = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
        if times[0] > slow_ms:
            break
    return {"best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1), "runs": len(times)}


def measure_panels(url: str, db: str, dashboards: Mapping[str, Callable[[], Any]], now_ms: int, runs: int,
                   ranges: Mapping[str, int]) -> dict[str, dict[str, Any]]:
    def run(statement: str, timeout_s: float = 120) -> list[dict[str, Any]]:
        return query(url, db, statement, timeout_s=timeout_s)

    results: dict[str, dict[str, Any]] = {}
    for name, build in dashboards.items():
        dashboard = build().to_json()
        for range_name, seconds in ranges.items():
            span = check.TimeRange(now_ms - seconds * 1000, now_ms)
            for panel, statement in panel_statements(dashboard, run, span):
                key = f"{name} | {panel}"
                answer: list[list[dict[str, Any]]] = []
                try:
                    figures: dict[str, Any] = timed(lambda: answer.append(run(statement, GRAFANA_TIMEOUT_S)), runs, SLOW_MS)
                    figures["rows"] = len(answer[-1])
                except Exception as exc:  # noqa: BLE001 - a query that fails or passes Grafana's timeout is a result too
                    over = "timed out" in str(exc) or "timeout" in str(exc).lower()
                    figures = {"error": f"over {GRAFANA_TIMEOUT_S:.0f} s (Grafana's data-proxy timeout)" if over else str(exc)[:200]}
                results.setdefault(key, {})[range_name] = figures
                log(f"{db} {range_name:>4} {key}: {figures}")
    return results


def measure_reports(url: str, db: str, estate: Estate, work: Path, runs: int, other_code: Path | None = None) -> dict[str, Any]:
    """The real CLI, each report in a process of its own (what someone waits for), best and median.
    `other_code`: a checkout whose CLI runs each report too, right after this one's (same data, same
    moment's load), as `<report> (<folder name>)`: another version of the reports against these."""
    inventory = work / f"inventory-{db}.toml"
    inventory.write_text(toml_text(inventory_for(estate, url, db, work / f"collector-{db}")), encoding="utf-8")
    out: dict[str, Any] = {}
    trees = [("", ROOT)] + ([(other_code.name, other_code.resolve())] if other_code else [])
    for name, args in (("servers --since 30d", ["servers", "--since", "30d"]), ("availability --since 12mo", ["availability", "--since", "12mo"]),
                       ("capacity", ["capacity"])):
        for tree_name, tree in trees:
            label = f" ({tree_name})" if tree_name else ""
            output = work / f"report-{db}-{args[0]}{'-' + tree_name if tree_name else ''}.json"
            command = [sys.executable, "-m", "agent.cli", "report", *args, "--inventory", str(inventory), "--format", "json", "--output", str(output)]
            failure: list[str] = []
            env = {**os.environ, "PYTHONPATH": str(tree)}

            def once() -> None:
                proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=1800)
                if proc.returncode != 0:
                    failure.append(proc.stderr[-500:])

            figures = timed(once, runs)
            if failure:
                figures["error"] = failure[0]
            else:
                figures["output_bytes"] = output.stat().st_size
            out[name + label] = figures
            log(f"{db} report {name}{label}: {figures}")
    return out


def wait_for_compaction(server: InfluxdServer, deadline_s: float = 3600) -> float:
    """Until InfluxDB has fully compacted the cold shards: no compaction files and the folder's size
    unchanged for a minute (influxd runs with a short compact-full-write-cold-duration)."""
    data = server.data_dir / "data"
    started = time.monotonic()
    last, stable_since = -1, time.monotonic()
    while time.monotonic() - started < deadline_s:
        busy = any(data.rglob("*.tmp"))
        size = _du(data)
        if size != last or busy:
            last, stable_since = size, time.monotonic()
        elif time.monotonic() - stable_since >= 60:
            return time.monotonic() - started
        time.sleep(5)
    raise TimeoutError(f"influxd still compacting after {deadline_s:.0f} s")


def _du(path: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in path.rglob("*") if p.is_file())


def disk_report(server: InfluxdServer, writer: Writer, args: argparse.Namespace) -> dict[str, Any]:
    """Bytes on disk per database and policy (TSM files and index; the WAL is empty once compacted),
    with the points and field values written there (rollups by the backfill counted by query)."""
    out: dict[str, Any] = {}
    for db in (AFTER, BEFORE):
        for policy_dir in sorted((server.data_dir / "data" / db).iterdir()):
            if not policy_dir.is_dir() or policy_dir.name == "_series":
                continue
            points = sum(c[0] for (d, rp, _), c in writer.counts.items() if d == db and rp == policy_dir.name)
            values = sum(c[1] for (d, rp, _), c in writer.counts.items() if d == db and rp == policy_dir.name)
            out[f"{db}.{policy_dir.name}"] = {"bytes": _du(policy_dir), "points_written": points, "values_written": values}
        series_dir = server.data_dir / "data" / db / "_series"
        if series_dir.exists():
            out[f"{db}._series"] = {"bytes": _du(series_dir)}
    return out


def count_rows(url: str, db: str, policy: str, start_ns: int, end_ns: int) -> dict[str, int]:
    """Points per measurement of a policy over a range (what the backfill wrote)."""
    out = {}
    for row in query(url, db, 'SHOW MEASUREMENTS', timeout_s=60):
        measurement = row["name"]
        spec = MEASUREMENTS_SPEC.get(measurement)
        if spec is None:
            continue
        fields = [f.name for f in rollup_fields(spec)] if policy.startswith("nettvakt_") and is_rolled_up(spec) else [f for f in spec.fields]
        if not fields:
            continue
        result = query(url, db, f'SELECT count("{fields[0]}") FROM "{policy}"."{measurement}" WHERE time >= {start_ns} AND time < {end_ns}', timeout_s=600)
        if result:
            out[measurement] = int(result[0].get("count") or 0)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=10, help="copies of the example inventory")
    parser.add_argument("--days", type=int, default=365, help="days of history, ending at the last whole hour")
    parser.add_argument("--raw-days", type=int, default=7, help="newest days written raw and rolled up by the backfill (after)")
    parser.add_argument("--days-5m", type=int, default=60, help="newest days that keep 5-minute rows (after)")
    parser.add_argument("--before-days", type=int, default=7, help="newest days written raw, everything in autogen (before)")
    parser.add_argument("--data-dir", type=Path, default=Path("/work/bench-data/history"))
    parser.add_argument("--runs", type=int, default=5, help="runs of each query and report (best and median)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (e.g. for --measure-only later)")
    parser.add_argument("--measure-only", action="store_true", help="measure what --keep left in --data-dir")
    parser.add_argument("--json", type=Path, help="write every figure here too")
    parser.add_argument("--markdown", type=Path, help="print the tables of docs/benchmarks.md from this --json file, and exit")
    parser.add_argument("--only", choices=("panels", "reports"),
                        help="measure only the current dashboards' panels (after: no before), or only the reports (of after)")
    parser.add_argument("--reports-also-from", type=Path, metavar="CHECKOUT",
                        help="run each report with this checkout's code too, right after this one's (e.g. main's, to compare)")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())))
        return 0
    if not 1 <= args.raw_days <= args.days or not args.raw_days <= args.days_5m <= args.days or not 1 <= args.before_days <= args.days:
        parser.error("need 1 <= --raw-days <= --days-5m <= --days and 1 <= --before-days <= --days")
    work = args.data_dir.resolve()
    meta_path = work / "generated.json"
    if not args.measure_only:
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
    estate = build_estate(ROOT / "inventory.toml", args.scale)
    results: dict[str, Any] = {"command": " ".join(sys.argv), "estate": estate.summary(), "uptime_before": _uptime()}
    server = start_influxd(work / "influxd", compact_full_cold_s=30.0)
    try:
        if args.measure_only:
            generated = json.loads(meta_path.read_text())
            end_s = generated["end_s"]
            results["resolution_rows_rewritten"] = refresh_resolution_rows(server.url)
        else:
            end_s = int(time.time()) // 3600 * 3600
            gen = Generator(estate, end_s - args.days * DAY_S, args.days)
            writer = Writer(server.url)
            log(f"estate: {estate.summary()}; history {_iso(gen.start_s * NS)} to {_iso(end_s * NS)}")
            generated = {"end_s": end_s, "after": write_after(server, writer, gen, args, work)}
            generated["rollups_equal_backfill"] = compare_with_backfill(server.url, AFTER, gen, args.days - args.raw_days)
            log(f"computed rollups against the backfill's: {generated['rollups_equal_backfill']}")
            generated["before"] = write_before(server, writer, gen, args)
            writer.close()
            generated["written"] = {"/".join(k): {"points": v[0], "values": v[1]} for k, v in sorted(writer.counts.items())}
            first_raw_ns = gen.day_start_ns(args.days - args.raw_days)
            generated["backfilled"] = {p: count_rows(server.url, AFTER, p, first_raw_ns, end_s * NS) for p in ("nettvakt_5m", "nettvakt_1h")}
            generated["compaction_wait_s"] = wait_for_compaction(server)
            generated["disk"] = disk_report(server, writer, args)
            meta_path.write_text(json.dumps(generated, indent=1))
        results["generated"] = generated
        now_ms = end_s * 1000  # the history ends here: every range is measured as if it were now
        results["uptime_measuring"] = _uptime()
        if args.only != "reports":
            results["panels"] = {AFTER: measure_panels(server.url, AFTER, _current_dashboards(), now_ms, args.runs, RANGES)}
        if args.only is None:
            # before: only the ranges its raw days cover (longer ones are extrapolated from these in docs/benchmarks.md)
            results["panels"][BEFORE] = measure_panels(server.url, BEFORE, load_before_dashboards(work), now_ms, args.runs,
                                                       {k: v for k, v in RANGES.items() if v <= args.before_days * DAY_S})
        if args.only != "panels":
            databases = (AFTER,) if args.only == "reports" else (AFTER, BEFORE)
            results["reports"] = {db: measure_reports(server.url, db, estate, work, max(1, args.runs // 2), args.reports_also_from)
                                  for db in databases}
        results["uptime_after"] = _uptime()
    finally:
        server.stop()
        if args.json:
            args.json.write_text(json.dumps(results, indent=1))
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in results.items() if k not in ("panels",)}, indent=1))
    return 0


def markdown(results: Mapping[str, Any]) -> str:
    """The tables of docs/benchmarks.md from a --json file: panels (median ms after / before per
    range), reports, disk per policy with bytes per point and value."""
    panels = results.get("panels", {})  # none with --only reports
    after, before = panels.get(AFTER, {}), panels.get(BEFORE, {})

    def cell(figures: Mapping[str, Any] | None) -> str:
        if figures is None:
            return ""
        if "error" in figures:
            return "> 30 s" if "timeout" in figures["error"] else "error"
        return f"{figures['median_ms']:.0f}" if figures["median_ms"] >= 10 else f"{figures['median_ms']:.1f}"

    columns = [(r, "after") for r in RANGES] + ([(r, "before") for r in RANGES] if before else [])
    columns.sort(key=lambda c: list(RANGES).index(c[0]))
    lines = ["| dashboard | panel | " + " | ".join(f"{r} {which}" for r, which in columns) + " |",
             "|---|---|" + "---:|" * len(columns)]
    for key, by_range in after.items():
        dashboard, panel = key.split(" | ", 1)
        figures = {"after": by_range, "before": before.get(key, {})}
        lines.append(f"| {dashboard} | {panel} | " + " | ".join(cell(figures[which].get(r)) for r, which in columns) + " |")
    if after:
        slowest = {r: max((v.get(r, {}).get("median_ms", 0.0), k) for k, v in after.items()) for r in RANGES}
        lines += ["", "Slowest panel after, per range: " + "; ".join(f"{r} {ms:.0f} ms ({k})" for r, (ms, k) in slowest.items())]
    else:  # --only reports
        lines = []
    if "reports" not in results:  # --only panels
        return "\n".join(lines)
    lines += ["", "| report | after best / median s | before best / median s |", "|---|---:|---:|"]
    for name, figures in results["reports"][AFTER].items():
        old = results["reports"].get(BEFORE, {}).get(name, {})
        show = lambda f: "error" if "error" in f else f"{f['best_ms'] / 1000:.2f} / {f['median_ms'] / 1000:.2f}"  # noqa: E731
        lines.append(f"| `{name}` | {show(figures)} | {show(old) if old else ''} |")
    lines += ["", "| database.policy | bytes | points | values | bytes/point | bytes/value |", "|---|---:|---:|---:|---:|---:|"]
    backfilled = results["generated"].get("backfilled", {})
    for name, d in results["generated"]["disk"].items():
        points, values = d.get("points_written", 0), d.get("values_written", 0)
        extra = sum(backfilled.get(name.split(".", 1)[1], {}).values()) if name.startswith(f"{AFTER}.") else 0
        if extra and points:  # the raw days' rows the backfill wrote, at the computed rows' values per point
            points, values = points + extra, values + round(extra * values / points)
        per = lambda n: f"{d['bytes'] / n:.2f}" if n else ""  # noqa: E731
        lines.append(f"| {name} | {d['bytes']:,} | {points:,} | {values:,} | {per(points)} | {per(values)} |")
    return "\n".join(lines)


def _current_dashboards() -> dict[str, Callable[[], Any]]:
    from dashboards import generate
    return dict(generate.DASHBOARDS)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
