"""Collectors at scale (issue 21): N simulated agents and M simulated devices against one
collector, or three collectors sharded by site, on this machine.

    .venv/bin/python bench/scale_sim.py --agents 100 200 400 [--collectors 1 3] [--devices 24] [--json]
    .venv/bin/python bench/scale_sim.py --search 100 --collectors 1 3 --json   # the largest N that holds

One run: a fresh storage (influxd, or VictoriaMetrics with --storage victoriametrics), snmpsim
serving M devices, a webhook receiver, and the collectors (`nettvakt collector run`, real
processes) with an inventory made for N agents, each with its own token (its sha256 in the
file), spread over six sites (three collectors: two sites each). Then:

1. warm-up: every agent fetches its configuration (a collector that does not own its site
   sends it on with 421, as it does a real agent) and reports until each collector has all
   its agents up;
2. steady (--steady-s): each agent does what the real one does at the inventory's defaults:
   host metrics every 30 s (`host`, two `host_disk`, one `host_net`), four probes (icmp and
   tcp every 30 s, http and dns every 60 s), hardware facts at start and hourly, a heartbeat
   every 10 s, its configuration every 300 s, and every 2 s it posts what it measured since (one batch at a time, at most 5,000
   points, the agent's own batch size). Points are shaped by the contract (agent/contract.py,
   the probe kinds' descriptors) and posted as agent/report.py encodes them;
3. outage: some agents (--cut-share, at least one per collector) lose their link: no reports,
   no heartbeats, measuring goes on; one device per collector stops answering SNMP (its own
   snmpsim is stopped). The time from the cut to each alert at the webhook receiver is the
   alert latency (rules agent_silent and device_down, [alerting] at its defaults);
4. burst: the cut agents come back with what they measured meanwhile and a backlog of
   --backlog-h hours from before (an outstation whose line was down overnight), sent as the
   agent sends it: 5,000-point batches, one after the other;
5. drain: every agent posts what it still holds and stops; once the collectors' queues are
   empty, every measurement's points are counted in the storage against the points the
   collectors acknowledged (no loss: equal).

Ingest latency is each POST /api/v1/ingest from before it is sent until its answer is read,
as the agent sees it. A run **holds** when the p99 of the regular reports (every phase after
the warm-up; the backlog batches are reported on their own) is under 100 ms, every alert came
within two probe intervals (60 s), and the storage holds every acknowledged point. CPU seconds
per wall second of each process (collectors, storage, snmpsim, this generator) are measured
per phase with psutil: the generator shares the machine's cores with what it measures; so do
other users of the machine, whose load shows as the CPU pressure (Linux PSI: the share of the
time some runnable task waited for a core) per phase. Before each run the same agents post for
half the steady time to a server that answers and does nothing (`floor`): the answer times any
process gets on this machine at that moment, the floor under the collector's (--no-floor skips it).
--time-scale 0.1 runs every interval ten times faster (the suite's smoke test does).

--search N0 runs N0, doubles N until a run fails, then halves the gap until it is within 10 %
(or --search-runs runs), per collector count (three collectors start at three times the N one
collector held); the JSON has every run and the largest N that held.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# tests/ for its InventoryBuilder: one writer of inventories, the one the tests use, not a second here.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402

from agent.collectoraddress import CollectorAddress  # noqa: E402
from agent.contract import MEASUREMENTS_SPEC, UNITS  # noqa: E402
from agent.points import Point  # noqa: E402
from agent.probes.registry import PROBES  # noqa: E402
from agent.report import HEARTBEAT_PATH, INGEST_PATH, encode_batch  # noqa: E402
from agent.runner import CONFIG_PATH, MISDIRECTED, AgentSettings, RemoteConfig  # noqa: E402
from agent.schema import FieldSpec  # noqa: E402
from agent.spool import point_json  # noqa: E402
from collector.alerting.config import AlertingSettings  # noqa: E402
from collector.config import AgentEntry, ProbeTarget, SnmpSettings  # noqa: E402
from collector.influxql import query  # noqa: E402
from collector.localservers import (  # noqa: E402
    ManagedProcess,
    ServiceError,
    free_port,
    start_influxd,
    start_snmpsim,
    start_victoria_metrics,
)
from collector.demo_inventory import RECORDINGS  # noqa: E402
from inventories import InventoryBuilder  # noqa: E402

SITE_COUNT = 6  # both layouts have the same six sites: one collector owns all, three own two each
COLLECTOR_NAMES = ("nord", "midt", "sor")
DATABASE = "nettvakt"
P99_AIM_MS = 100.0
# The agent's own settings (agent/runner.py): it posts what it holds every 2 s, 5,000 points at most.
SEND_INTERVAL_S = AgentSettings.send_interval_s
BATCH_POINTS = AgentSettings.batch_points
CONFIG_REFRESH_S = AgentSettings.config_refresh_s
# The inventory's defaults for an agent, a probe, SNMP and alerting; the devices are polled at the
# probe interval, so "two probe intervals" bounds every alert. --time-scale multiplies them all.
AGENT_INTERVAL_S = AgentEntry.model_fields["interval_s"].default
HEARTBEAT_S = AgentEntry.model_fields["heartbeat_s"].default
PROBE_INTERVAL_S = ProbeTarget.model_fields["interval_s"].default
SNMP_TIMEOUT_S = SnmpSettings.model_fields["timeout_s"].default
SNMP_RETRIES = SnmpSettings.model_fields["retries"].default
GROUP_WAIT_S = AlertingSettings.model_fields["group_wait_s"].default
# (name, kind, target, interval in probe intervals, params): the probes every site's agents run, as
# the example inventory has them (the simulated agents never send a packet: only the collector reads these).
PROBE_SET = (
    ("gw", "icmp", "10.0.0.1", 1, {}),
    ("fil", "tcp", "10.0.0.10:445", 1, {}),
    ("web", "http", "https://www.karlsoy.kommune.no/", 2, {}),
    ("dns", "dns", "karlsoy.kommune.no", 2, {"resolver": "10.0.0.53"}),
)
MOUNTS = ("C:", "D:")
NICS = ("Ethernet",)
# A field present in every point of the measurement: what the storage's count is taken of.
COUNTED_FIELD = {"host": "cpu_pct", "host_disk": "used_pct", "host_net": "in_bps", "probe": "duration_ms", "hardware": "cpu_cores"}
# What the agent reports of its machine at start and then hourly (agent/hwfacts.py), as a server's
# firmware and OS tell it; the serial is the agent's own.
HARDWARE_FACTS = {
    "vendor": "Lenovo", "model": "ThinkSystem SR250", "model_number": "7Y52", "bios_version": "TEE156L", "bios_date": "2021-03-02",
    "manufactured_estimate": "2021-03-02", "chassis_type": "Rack Mount Chassis", "cpu_model": "Intel(R) Xeon(R) E-2224",
    "cpu_cores": 4.0, "cpu_threads": 4.0, "mem_total_bytes": 34359738368.0, "os_name": "Microsoft Windows Server 2019 Standard",
    "os_version": "10.0.17763", "virtual": 0.0,
}
HARDWARE_INTERVAL_S = AgentSettings.hardware_interval_s
RECORDING_STEMS = tuple(sorted(p.stem for p in RECORDINGS.glob("*.snmprec")))


class SimError(RuntimeError):
    """The simulation could not run as asked (a process failed, a deadline passed)."""


# --- points shaped by the contract ---------------------------------------------------------------
def field_value(spec: FieldSpec, rng: random.Random) -> float | str:
    """A plausible value of a field, within its unit's range (agent/schema.py UNITS)."""
    unit = UNITS[spec.unit]
    if unit.type == "string":
        return "icmp_dgram" if spec.name == "method" else "ok"
    if spec.unit == "0/1":
        return 1.0
    low = unit.low if unit.low is not None else 0.0
    high = unit.high if unit.high is not None else low + 5000.0
    return round(rng.uniform(low, min(high, low + 100.0) if spec.unit != "bytes" else high), 3)


def contract_fields(measurement: str, rng: random.Random) -> dict[str, float | str]:
    return {name: field_value(spec, rng) for name, spec in MEASUREMENTS_SPEC[measurement].fields.items()}


def probe_fields(kind: str, rng: random.Random) -> dict[str, float | str]:
    """A successful round of `kind`: what the runner adds (up, duration_ms) and the kind's own fields."""
    fields: dict[str, float | str] = {"up": 1.0, "duration_ms": round(rng.uniform(1, 40), 3)}
    fields.update({f.name: field_value(f, rng) for f in PROBES[kind].fields})
    return fields


@dataclasses.dataclass
class Job:
    """One thing the agent measures on a cadence: when next, how often, what it yields."""

    due: float  # wall clock, seconds
    interval_s: float
    make: Callable[[int], list[Point]]  # time_ns -> points


# --- one simulated agent -------------------------------------------------------------------------
@dataclasses.dataclass
class Latency:
    phase: str
    seconds: float
    points: int
    backlog: bool


class SimAgent:
    """An agent as the collector sees it: its token, its reports, its heartbeats, its backlog."""

    def __init__(self, agent_id: str, token: str, collector_url: str, state_dir: Path, index: int, seed: int,
                 mirrors: Iterable[str] = ()):
        """`mirrors`: collectors of a second deployment that get the same requests, byte for byte (to
        compare two storages on the same points); only the first collector's answers are timed."""
        self.id = agent_id
        self.token = token
        self.address = CollectorAddress(collector_url, state_dir / f"{agent_id}.collector.json")
        self.mirrors = [CollectorAddress(url, state_dir / f"{agent_id}.mirror{k}.json") for k, url in enumerate(mirrors)]
        self.rng = random.Random(seed)
        # Its own loopback address, as each real agent has its own (the collector bounds connections per address).
        self.local_addr = f"127.{1 + index // 62500}.{index // 250 % 250}.{index % 250 + 1}"
        self.config: RemoteConfig | None = None
        self.jobs: list[Job] = []
        self.pending: list[tuple[str, str]] = []  # (measurement, point JSON) not yet acknowledged
        self.seq = 0
        self.acked: Counter[str] = Counter()
        self.latencies: list[Latency] = []
        self.heartbeat_s: list[float] = []
        self.failures = 0
        self.cut = False
        self.stopping = False
        self.first_point_s: float | None = None
        self.backlog_left = 0  # points of the older backlog not yet sent: its batches are timed apart

    def tags(self) -> dict[str, str]:
        assert self.config is not None
        return {"site": self.config.site, "host": self.id}

    def build_jobs(self, now_s: float) -> None:
        assert self.config is not None
        tags = self.tags()

        def host(t: int) -> list[Point]:
            points = [Point("host", tags, contract_fields("host", self.rng), t)]
            points += [Point("host_disk", {**tags, "mount": m}, contract_fields("host_disk", self.rng), t) for m in MOUNTS]
            points += [Point("host_net", {**tags, "nic": n}, contract_fields("host_net", self.rng), t) for n in NICS]
            return points

        def probe(kind: str, name: str) -> Callable[[int], list[Point]]:
            return lambda t: [Point("probe", {**tags, "kind": kind, "target": name}, probe_fields(kind, self.rng), t)]

        def hardware(t: int) -> list[Point]:
            return [Point("hardware", tags, {**HARDWARE_FACTS, "serial": f"SIM{self.id.upper()}"}, t)]

        # Each job starts at a random phase, as agents started at different times do; hardware facts at once.
        self.jobs = [Job(now_s, HARDWARE_INTERVAL_S, hardware)]
        self.jobs += [Job(now_s + self.rng.uniform(0, self.config.interval_s), self.config.interval_s, host)]
        self.jobs += [Job(now_s + self.rng.uniform(0, p.interval_s), p.interval_s, probe(p.kind, p.name)) for p in self.config.probes]
        self.first_point_s = min(j.due for j in self.jobs)

    def measure(self, now_s: float) -> None:
        for job in self.jobs:
            while job.due <= now_s:
                self.pending += [(p.measurement, point_json(p)) for p in job.make(int(job.due * 1e9))]
                job.due += job.interval_s

    def add_backlog(self, hours: float) -> int:
        """What it measured in the `hours` before its first point (its line was down): queued first."""
        assert self.first_point_s is not None
        older: list[tuple[str, str]] = []
        for job in self.jobs:
            steps = int(hours * 3600 / job.interval_s)
            # Before the first point of any job, so no series gets two points at one time.
            first = self.first_point_s - job.interval_s * steps - 1.0
            for k in range(steps):
                older += [(p.measurement, point_json(p)) for p in job.make(int((first + k * job.interval_s) * 1e9))]
        self.pending[:0] = older
        return len(older)

    async def fetch_config(self, http: aiohttp.ClientSession) -> None:
        for attempt in range(30):
            try:
                async with http.get(self.address.endpoint(CONFIG_PATH.format(agent_id=self.id))) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                await asyncio.sleep(1.0)  # as the agent does: the collector is not up yet, ask again
                continue
            if status == MISDIRECTED:
                await asyncio.sleep(self.address.follow(text))
                continue
            if status != 200:
                raise SimError(f"agent {self.id}: configuration answered HTTP {status}: {text[:200]}")
            self.address.answered()
            self.config = RemoteConfig.from_json(json.loads(text))
            return
        raise SimError(f"agent {self.id}: no configuration from {self.address.url} after 30 tries")

    async def deliver(self, http: aiohttp.ClientSession, address: CollectorAddress, body: bytes) -> float:
        """POST one batch until the collector owning this agent's site took it; its answer time (s)."""
        while True:
            started = time.perf_counter()
            try:
                async with http.post(address.endpoint(INGEST_PATH), data=body, headers={"Content-Type": "application/json"}) as resp:
                    text = await resp.text()
                    status = resp.status
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                # As the agent does: the same batch again, which the collector stores once.
                self.failures += 1
                if self.failures > 20:
                    raise SimError(f"agent {self.id}: ingest keeps failing: {exc!r}") from exc
                await asyncio.sleep(1.0)
                continue
            elapsed = time.perf_counter() - started
            if status == MISDIRECTED:
                await asyncio.sleep(address.follow(text))
                continue
            if status != 200:
                raise SimError(f"agent {self.id}: ingest at {address.url} answered HTTP {status}: {text[:300]}")
            address.answered()
            return elapsed

    async def post_batch(self, http: aiohttp.ClientSession, phase: Callable[[], str]) -> None:
        chunk = self.pending[:BATCH_POINTS]
        self.seq += 1
        body = encode_batch(self.id, self.seq, [j for _, j in chunk]).body
        label = phase()
        elapsed = await self.deliver(http, self.address, body)
        for mirror in self.mirrors:
            await self.deliver(http, mirror, body)
        self.latencies.append(Latency(label, elapsed, len(chunk), self.backlog_left > 0))
        self.backlog_left = max(0, self.backlog_left - len(chunk))
        self.acked.update(m for m, _ in chunk)
        del self.pending[: len(chunk)]

    async def send_loop(self, http: aiohttp.ClientSession, phase: Callable[[], str]) -> None:
        """Every 2 s: measure what is due, post it (one batch at a time), refresh the configuration."""
        next_config = time.time() + CONFIG_REFRESH_S
        while True:
            now = time.time()
            self.measure(now)
            if not self.cut:
                while self.pending:
                    await self.post_batch(http, phase)
                if now >= next_config:
                    await self.fetch_config(http)
                    next_config = now + CONFIG_REFRESH_S
            if self.stopping and not self.cut and not self.pending:
                return
            await asyncio.sleep(SEND_INTERVAL_S)

    async def heartbeat_loop(self, http: aiohttp.ClientSession) -> None:
        assert self.config is not None and self.config.heartbeat_s is not None
        interval = self.config.heartbeat_s
        await asyncio.sleep(self.rng.uniform(0, interval))
        while not self.stopping:
            for k, address in enumerate([] if self.cut else [self.address, *self.mirrors]):
                started = time.perf_counter()
                try:
                    async with http.post(address.endpoint(HEARTBEAT_PATH.format(agent_id=self.id)),
                                         json={"pending_points": len(self.pending)}) as resp:
                        text = await resp.text()
                        if resp.status == MISDIRECTED:
                            address.follow(text)  # there from the next beat on
                        elif resp.status == 200 and k == 0:
                            self.heartbeat_s.append(time.perf_counter() - started)
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                    self.failures += 1
            await asyncio.sleep(interval)

    async def run(self, phase: Callable[[], str], started: asyncio.Event) -> None:
        connector = aiohttp.TCPConnector(local_addr=(self.local_addr, 0))
        headers = {"Authorization": f"Bearer {self.token}"}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30, connect=10), headers=headers,
                                         connector=connector) as http:
            await self.fetch_config(http)
            self.build_jobs(time.time())
            started.set()
            heartbeats = asyncio.create_task(self.heartbeat_loop(http))
            try:
                await self.send_loop(http, phase)
            finally:
                heartbeats.cancel()
                await asyncio.gather(heartbeats, return_exceptions=True)

    def restore(self, backlog_h: float) -> int:
        """The link is back, with `backlog_h` hours of older points waiting: how many."""
        added = self.add_backlog(backlog_h) if backlog_h > 0 else 0
        self.backlog_left = added
        self.cut = False
        return added


# --- the webhook receiver ------------------------------------------------------------------------
class AlertReceiver:
    """A webhook channel's receiver on loopback: every alert that fired, with when it arrived."""

    PATH = "/alerts"

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.fired: dict[tuple[str, str], float] = {}  # (rule kind, subject) -> first arrival (wall)
        self.messages = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}{self.PATH}"

    async def receive(self, request: web.Request) -> web.Response:
        message = await request.json()
        arrived = time.time()
        self.messages += 1
        for alert in message.get("alerts", []):
            if alert.get("event") == "firing":
                self.fired.setdefault((str(alert.get("kind")), str(alert.get("subject"))), arrived)
        return web.Response(status=204)

    async def start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_post(self.PATH, self.receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, self.sock).start()
        return runner


# --- the deployment ------------------------------------------------------------------------------
@dataclasses.dataclass
class Storage:
    kind: str  # influxdb_v1 | victoriametrics
    url: str
    database: str = DATABASE
    process: Any = None  # the server, when this simulation started it

    def count(self, measurement: str, host: str | None = None) -> int:
        """Points of `measurement` (of one agent) stored: a row per series and time on InfluxDB, where a
        point written twice is one; every sample written on VictoriaMetrics, where it would be two."""
        field = COUNTED_FIELD[measurement]
        if self.kind == "influxdb_v1":
            where = "" if host is None else f" WHERE \"host\" = '{host}'"
            rows = query(self.url, self.database, f'SELECT count("{field}") FROM "{measurement}"{where}')
            return int(rows[0]["count"]) if rows else 0
        selector = f'__name__="{measurement}_{field}", db="{self.database}"' + ("" if host is None else f', host="{host}"')
        params = urllib.parse.urlencode({"match[]": "{" + selector + "}"})
        with urllib.request.urlopen(f"{self.url}/api/v1/export?{params}", timeout=120) as resp:
            return sum(len(json.loads(line)["values"]) for line in resp.read().splitlines() if line.strip())


def start_storage(kind: str, workdir: Path) -> Storage:
    if kind == "victoriametrics":
        vm = start_victoria_metrics(workdir / "victoria-metrics")
        return Storage("victoriametrics", vm.url, process=vm)
    influx = start_influxd(workdir / "influxd")
    query(influx.url, "", f'CREATE DATABASE "{DATABASE}"')
    return Storage("influxdb_v1", influx.url, process=influx)


def copy_recordings(folder: Path, names: Iterable[str]) -> None:
    """One recording per device, named as its community (snmpsim answers community = file stem)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        shutil.copyfile(RECORDINGS / f"{RECORDING_STEMS[i % len(RECORDING_STEMS)]}.snmprec", folder / f"{name}.snmprec")


@dataclasses.dataclass
class Layout:
    collectors: int
    agents: int
    devices: int

    def collector_names(self) -> tuple[str, ...]:
        return COLLECTOR_NAMES[: self.collectors] if self.collectors > 1 else ("main",)

    def sites(self) -> list[str]:
        return [f"site{i + 1}" for i in range(SITE_COUNT)]

    def sites_of(self, collector: str) -> list[str]:
        if self.collectors == 1:
            return self.sites()
        per = SITE_COUNT // self.collectors
        k = COLLECTOR_NAMES.index(collector)
        return self.sites()[k * per:(k + 1) * per]

    def agent_ids(self) -> list[str]:
        return [f"a{i:05d}" for i in range(self.agents)]

    def site_of_agent(self, index: int) -> str:
        return self.sites()[index % SITE_COUNT]


def build_inventory(folder: Path, layout: Layout, storage: Storage, snmp_port: int, victim_port: int,
                    ports: dict[str, int], webhook_url: str, scale: float = 1.0) -> InventoryBuilder:
    """The simulated region's inventory, every interval the inventory's default times `scale`."""
    built = InventoryBuilder(folder, organisation="scale simulation")
    built.alerting(group_wait_s=GROUP_WAIT_S * scale)
    if storage.kind == "influxdb_v1":
        built.influxdb(storage.url, DATABASE)
    else:
        built.storage("victoriametrics", url=storage.url, database=DATABASE)
    built.alert("agent-silent", "agent_silent", severity="critical").alert("device-down", "device_down", severity="critical")
    built.channel("receiver", "webhook", url=webhook_url).route("receiver")
    for site in layout.sites():
        built.site(site)
    if layout.collectors > 1:
        for name in layout.collector_names():
            built.collectors(name, f"http://127.0.0.1:{ports[name]}", layout.sites_of(name), listen=f"127.0.0.1:{ports[name]}")
    else:
        built.collector(listen=f"127.0.0.1:{ports['main']}")
    for i, agent in enumerate(layout.agent_ids()):
        built.agent(agent, f"scale-token-{agent}", site=layout.site_of_agent(i), hardware="pc",
                    interval_s=AGENT_INTERVAL_S * scale, heartbeat_s=HEARTBEAT_S * scale)
    for name, kind, target, intervals, params in PROBE_SET:
        built.probe(name, kind, target, interval_s=intervals * PROBE_INTERVAL_S * scale, **({"params": params} if params else {}))
    # Faster than the defaults, a poll times out sooner (a busy machine's snmpsim answers within 1 s).
    snmp = {"version": "2c", "interval_s": PROBE_INTERVAL_S * scale, "timeout_s": max(1.0, SNMP_TIMEOUT_S * scale),
            "retries": SNMP_RETRIES if scale >= 1 else 0}
    for i in range(layout.devices):
        built.device(f"d{i:04d}", site=layout.sites()[i % SITE_COUNT], hardware="switch",
                     snmp={**snmp, "port": snmp_port, "community": built.secret_file(f"d{i:04d}.community", f"d{i:04d}")})
    for name in layout.collector_names():
        victim = f"victim-{name}"
        built.device(victim, site=layout.sites_of(name)[0], hardware="switch",
                     snmp={**snmp, "port": victim_port, "community": built.secret_file(f"{victim}.community", victim)})
    return built


class Processes:
    """CPU seconds and peak RSS of the processes that matter, per phase."""

    def __init__(self, roles: dict[str, int]):
        self.procs = {role: psutil.Process(pid) for role, pid in roles.items()}
        self.rss_max: Counter[str] = Counter()
        self.marks: list[tuple[str, float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_rss, daemon=True)
        self._thread.start()

    def cpu(self) -> dict[str, float]:
        out = {}
        for role, proc in self.procs.items():
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    children = sum(c.cpu_times().user + c.cpu_times().system for c in proc.children(recursive=True))
                out[role] = times.user + times.system + children
            except psutil.NoSuchProcess:
                out[role] = math.nan
        return out

    def _sample_rss(self) -> None:
        while not self._stop.wait(1.0):
            for role, proc in self.procs.items():
                try:
                    self.rss_max[role] = max(self.rss_max[role], proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    pass

    def mark(self, phase: str) -> None:
        self.marks.append((phase, time.monotonic(), {**self.cpu(), "pressure": cpu_pressure_s()}))

    def per_phase(self) -> dict[str, dict[str, float]]:
        """Cores used (CPU seconds per wall second) by each role, for each phase between marks, and the
        machine's CPU pressure: the share of the time some runnable task waited for a core (all users')."""
        out: dict[str, dict[str, float]] = {}
        for (phase, t0, c0), (_, t1, c1) in zip(self.marks, self.marks[1:]):
            out[phase] = {role: round((c1[role] - c0[role]) / (t1 - t0), 3) for role in c0 if role != "pressure"}
            out[phase]["cpu_pressure_pct"] = round(100 * (c1["pressure"] - c0["pressure"]) / (t1 - t0), 1)
            out[phase]["wall_s"] = round(t1 - t0, 1)
        return out

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join(5)
        return {role: round(v / 1e6, 1) for role, v in self.rss_max.items()}


class LoopLag:
    """How late this generator's event loop wakes a 20 ms sleep, per phase: a request's time as
    measured here includes that much of the generator's own delay (a busy loop, a busy machine)."""

    def __init__(self, phase: Callable[[], str]):
        self.phase = phase
        self.lags: dict[str, list[float]] = {}

    async def run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.02)
            self.lags.setdefault(self.phase(), []).append((time.perf_counter() - before - 0.02) * 1000)

    def summary(self) -> dict[str, dict[str, float | None]]:
        return {phase: {"p50_ms": _round(percentile(v, 50)), "p99_ms": _round(percentile(v, 99))} for phase, v in self.lags.items()}


def cpu_pressure_s() -> float:
    """Seconds in which some runnable task on this machine waited for a CPU (Linux PSI, /proc/pressure/cpu);
    NaN where the kernel does not say."""
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return math.nan
    return int(some.rsplit("total=", 1)[1]) / 1e6


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (None of nothing)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency_summary(latencies: list[Latency]) -> dict[str, Any]:
    ms = [x.seconds * 1000 for x in latencies]
    return {"requests": len(ms), "points": sum(x.points for x in latencies),
            "p50_ms": _round(percentile(ms, 50)), "p99_ms": _round(percentile(ms, 99)), "max_ms": _round(max(ms) if ms else None)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def health(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/api/v1/health", timeout=10) as resp:
        return json.load(resp)


def raise_nofile() -> None:
    """Two connections per agent: lift the soft limit of open files to the hard one (inherited by the collectors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 1.0) -> Any:
    """Poll a blocking predicate from the event loop (in a thread) until true, or SimError naming `what`."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        try:
            result = await asyncio.to_thread(predicate)
            if result:
                return result
        except (OSError, ValueError, KeyError) as exc:  # not answering yet: kept for the message
            last = exc
        if time.monotonic() > deadline:
            raise SimError(f"timed out after {timeout_s:g} s waiting for {what}" + (f"; last error: {last!r}" if last else ""))
        await asyncio.sleep(interval_s)


# --- one run -------------------------------------------------------------------------------------
@dataclasses.dataclass
class RunSettings:
    steady_s: float = 60.0
    cut_share: float = 0.01
    backlog_h: float = 2.0
    storage: str = "influxdb_v1"
    seed: int = 21
    keep: Path | None = None  # keep the work folder (logs) here
    time_scale: float = 1.0  # every interval of the inventory times this (a quick run: 0.1)
    floor: bool = True  # first the same agents against a server that does nothing (the machine's floor)

    @property
    def alert_aim_s(self) -> float:
        return 2 * PROBE_INTERVAL_S * self.time_scale


def start_collectors(layout: Layout, inventory: Path, workdir: Path) -> dict[str, ManagedProcess]:
    started = {}
    for name in layout.collector_names():
        argv = [sys.executable, "-m", "agent.cli", "collector", "run", "--inventory", str(inventory)]
        if layout.collectors > 1:
            argv += ["--name", name]
        started[name] = ManagedProcess.start(f"collector-{name}", argv, workdir / f"collector-{name}.log", cwd=ROOT)
    return started


async def simulate(layout: Layout, settings: RunSettings, workdir: Path, log: Callable[[str], None]) -> dict[str, Any]:
    raise_nofile()
    async with contextlib.AsyncExitStack() as stack:  # whatever was started is stopped, also on a failed start
        return await _simulate(layout, settings, workdir, log, stack)


async def _simulate(layout: Layout, settings: RunSettings, workdir: Path, log: Callable[[str], None],
                    stack: contextlib.AsyncExitStack) -> dict[str, Any]:
    storage = start_storage(settings.storage, workdir)
    stack.callback(storage.process.stop)
    copy_recordings(workdir / "snmprec", [f"d{i:04d}" for i in range(layout.devices)])
    copy_recordings(workdir / "snmprec-victims", [f"victim-{n}" for n in layout.collector_names()])
    snmpsim = start_snmpsim(workdir / "snmprec", workdir / "snmpsim") if layout.devices else None
    if snmpsim is not None:
        stack.callback(snmpsim.stop)
    victims = start_snmpsim(workdir / "snmprec-victims", workdir / "snmpsim-victims")
    stack.callback(victims.stop)
    receiver = AlertReceiver()
    stack.callback(receiver.sock.close)
    stack.push_async_callback((await receiver.start()).cleanup)
    ports = {name: free_port() for name in layout.collector_names()}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    built = build_inventory(workdir, layout, storage, snmpsim.port if snmpsim else 0, victims.port, ports, receiver.url,
                            settings.time_scale)
    inventory = built.write()
    collectors = start_collectors(layout, inventory, workdir)
    for proc in collectors.values():
        stack.callback(proc.stop, timeout_s=30)
    phase_now = ["warmup"]
    agents: list[SimAgent] = []
    tasks: list[asyncio.Task[None]] = []
    lag = LoopLag(lambda: phase_now[0])
    lag_task = asyncio.create_task(lag.run())
    try:
        for name, url in urls.items():
            await wait_for(lambda url=url: health(url), 60, f"collector {name}'s health")
        monitor = Processes({**{f"collector:{n}": p.pid for n, p in collectors.items()}, "storage": storage.process.process.pid,
                             **({"snmpsim": snmpsim.process.pid} if snmpsim else {}), "generator": os.getpid()})
        monitor.mark("warmup")
        first_url = urls[layout.collector_names()[0]]  # every agent installed with one address, sent on by 421
        state_dir = workdir / "agents"
        state_dir.mkdir()
        for i, agent_id in enumerate(layout.agent_ids()):
            agents.append(SimAgent(agent_id, built.tokens[agent_id], first_url, state_dir, i, settings.seed * 1_000_003 + i))
        started = [asyncio.Event() for _ in agents]
        for agent, event in zip(agents, started):
            tasks.append(asyncio.create_task(agent.run(lambda: phase_now[0], event)))
            await asyncio.sleep(SEND_INTERVAL_S / max(1, len(agents)))  # started over one send interval, not all at once
        await wait_for(lambda: all(e.is_set() for e in started) or any(t.done() for t in tasks), 120, "every agent's configuration", 0.5)
        raise_failed(tasks)

        def all_up() -> bool:
            for name, url in urls.items():
                body = health(url)
                if not body["agents"] or not all(a["up"] for a in body["agents"].values()):
                    return False
            return True

        await wait_for(all_up, 120 + 3 * AGENT_INTERVAL_S * settings.time_scale, "every agent up at its collector")
        raise_failed(tasks)
        log(f"N={layout.agents}, {layout.collectors} collector(s): all agents up; steady {settings.steady_s:g} s")

        phase_now[0] = "steady"
        monitor.mark("steady")
        await asyncio.sleep(settings.steady_s)
        raise_failed(tasks)

        # The outage: some agents at each collector lose their line, one device per collector stops answering.
        phase_now[0] = "outage"
        monitor.mark("outage")
        cut = cut_agents(agents, layout, settings.cut_share)
        cut_at = time.time()
        for agent in cut:
            agent.cut = True
        victims.stop()
        expected = {("agent_silent", a.id) for a in cut} | {("device_down", f"victim-{n}") for n in layout.collector_names()}
        deadline_s = 3 * settings.alert_aim_s + 60
        await wait_for(lambda: expected <= set(receiver.fired) or any(t.done() for t in tasks), deadline_s, "the alerts of the outage", 0.5)
        raise_failed(tasks)
        alert_delays = {f"{kind}:{subject}": round(receiver.fired[(kind, subject)] - cut_at, 1) for kind, subject in sorted(expected)
                        if (kind, subject) in receiver.fired}
        log(f"alerts after the cut: max {max(alert_delays.values()):.1f} s")

        # The line is back: what they measured meanwhile and an older backlog, in 5,000-point batches.
        phase_now[0] = "burst"
        monitor.mark("burst")
        backlog_points = sum(agent.restore(settings.backlog_h) for agent in cut)
        await wait_for(lambda: not any(a.pending for a in cut) or any(t.done() for t in tasks), 600, "the backlog sent")
        raise_failed(tasks)
        await asyncio.sleep(2 * SEND_INTERVAL_S)  # the regular reports just after the burst count to it too

        phase_now[0] = "drain"
        monitor.mark("drain")
        for agent in agents:
            agent.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), 300)

        def drained() -> bool:
            return all(health(url)["queue"]["queue_points"] == 0 for url in urls.values())

        await wait_for(drained, 600, "every collector's queue empty")
        monitor.mark("end")
        acked: Counter[str] = Counter()
        for agent in agents:
            acked.update(agent.acked)

        def all_stored() -> dict[str, int] | None:
            counted = {m: storage.count(m) for m in sorted(acked)}
            return counted if counted == dict(sorted(acked.items())) else None

        try:
            stored = await wait_for(all_stored, 60, "every acknowledged point in the storage", 2.0)
        except SimError:
            stored = {m: storage.count(m) for m in sorted(acked)}
        healths = {name: health(url) for name, url in urls.items()}
        rss = monitor.stop()
        cpu = monitor.per_phase()
    finally:
        for task in (*tasks, lag_task):
            task.cancel()
        await asyncio.gather(*tasks, lag_task, return_exceptions=True)
    result = summarise(layout, settings, agents, cut, alert_delays, backlog_points, dict(acked), stored, healths, cpu, rss)
    result["generator_loop_lag"] = lag.summary()
    return result


def cut_agents(agents: list[SimAgent], layout: Layout, share: float) -> list[SimAgent]:
    """`share` of the agents, at least one per collector, spread over the sites (each keeps one up)."""
    wanted = max(layout.collectors, round(share * len(agents)))
    per_site = {site: [a for a in agents if a.config is not None and a.config.site == site] for site in layout.sites()}
    # One site of each collector in turn, so the first cut agents are at different collectors.
    owned = [layout.sites_of(name) for name in layout.collector_names()]
    order = [sites[k] for k in range(max(map(len, owned))) for sites in owned if k < len(sites)]
    picked: list[SimAgent] = []
    while len(picked) < wanted:
        progressed = False
        for site in order:
            # Never a site's last agent: a site with none up would be one site alert instead.
            if len(picked) < wanted and len(per_site[site]) > 1:
                picked.append(per_site[site].pop(0))
                progressed = True
        if not progressed:
            break
    return picked


def raise_failed(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            raise SimError(f"a simulated agent failed: {task.exception()!r}") from task.exception()


def summarise(layout: Layout, settings: RunSettings, agents: list[SimAgent], cut: list[SimAgent], alert_delays: dict[str, float],
              backlog_points: int, acked: dict[str, int], stored: dict[str, int], healths: dict[str, Any],
              cpu: dict[str, dict[str, float]], rss: dict[str, float]) -> dict[str, Any]:
    everything = [x for a in agents for x in a.latencies]
    regular = [x for x in everything if x.phase != "warmup" and not x.backlog]
    by_phase = {phase: latency_summary([x for x in everything if x.phase == phase and not x.backlog])
                for phase in ("steady", "outage", "burst", "drain")}
    backlog = latency_summary([x for x in everything if x.backlog])
    heartbeats = [s * 1000 for a in agents for s in a.heartbeat_s]
    summary = latency_summary(regular)
    steady_wall = cpu.get("steady", {}).get("wall_s") or 1.0
    steady_points = by_phase["steady"]["points"]
    lost = {m: acked[m] - stored.get(m, 0) for m in acked if acked[m] != stored.get(m, 0)}
    held = {
        "p99_under_100ms": summary["p99_ms"] is not None and summary["p99_ms"] < P99_AIM_MS,
        "alerts_within_two_probe_intervals": len(alert_delays) == len(cut) + layout.collectors
        and max(alert_delays.values()) <= settings.alert_aim_s,
        "no_loss": not lost,
    }
    return {
        "agents": layout.agents,
        "collectors": layout.collectors,
        "devices": layout.devices + layout.collectors,
        "storage": settings.storage,
        "holds": all(held.values()),
        "criteria": held,
        "ingest": summary,
        "ingest_by_phase": by_phase,
        "backlog_batches": backlog,
        "heartbeat": {"requests": len(heartbeats), "p50_ms": _round(percentile(heartbeats, 50)), "p99_ms": _round(percentile(heartbeats, 99))},
        "steady_points_per_s": round(steady_points / steady_wall, 1),
        "steady_requests_per_s": round(by_phase["steady"]["requests"] / steady_wall, 1),
        "cut_agents": len(cut),
        "backlog_points": backlog_points,
        "alert_delays_s": alert_delays,
        "alert_max_s": max(alert_delays.values()) if alert_delays else None,
        "alert_aim_s": settings.alert_aim_s,
        "time_scale": settings.time_scale,
        "acknowledged_points": acked,
        "stored_points": stored,
        "lost_points": lost,
        "duplicates": {n: h["ingest"]["duplicates"] for n, h in healths.items()},
        "rate_limited": {n: h["ingest"]["rate_limited"] for n, h in healths.items()},
        "agent_retries": sum(a.failures for a in agents),
        "cores_used_by_phase": cpu,
        "rss_max_mb": rss,
    }


# --- the machine's floor ------------------------------------------------------------------------
def null_collector(port: int, scale: float) -> None:
    """A server that answers what an agent asks and does nothing else: configuration (the
    simulation's probes), ingest (the body read, nothing checked or stored), heartbeats. Its
    answer times are what any aiohttp process on this machine gets now: the floor under the
    collector's."""
    probes = [{"kind": kind, "target": target, "name": name, "interval_s": intervals * PROBE_INTERVAL_S * scale, "params": params}
              for name, kind, target, intervals, params in PROBE_SET]

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"agent": request.match_info["agent_id"], "site": "site1", "interval_s": AGENT_INTERVAL_S * scale,
                                  "heartbeat_s": HEARTBEAT_S * scale, "probes": probes})

    async def taken(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({})

    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_get(CONFIG_PATH, config)
    app.router.add_post(INGEST_PATH, taken)
    app.router.add_post(HEARTBEAT_PATH, taken)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


async def floor(agents: int, settings: RunSettings, workdir: Path) -> dict[str, Any]:
    """The same agents against the null collector for half the steady time: ingest and heartbeat answer times."""
    raise_nofile()
    port = free_port()
    server = ManagedProcess.start("null-collector", [sys.executable, str(Path(__file__).resolve()), "--serve-null", str(port),
                                                     "--time-scale", str(settings.time_scale)], workdir / "null-collector.log", cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    sim = [SimAgent(f"a{i:05d}", "floor", url, workdir, i, settings.seed * 1_000_003 + i) for i in range(agents)]
    tasks: list[asyncio.Task[None]] = []
    try:
        await wait_for(lambda: urllib.request.urlopen(f"{url}{CONFIG_PATH.format(agent_id='probe')}", timeout=2).status == 200, 30,
                       "the null collector")
        monitor = Processes({"null_collector": server.pid, "generator": os.getpid()})
        for agent in sim:
            tasks.append(asyncio.create_task(agent.run(lambda: "floor", asyncio.Event())))
            await asyncio.sleep(SEND_INTERVAL_S / max(1, agents))
        await asyncio.sleep(AGENT_INTERVAL_S * settings.time_scale)  # every agent past its first report
        for agent in sim:
            agent.latencies.clear()
            agent.heartbeat_s.clear()
        monitor.mark("floor")
        await asyncio.sleep(settings.steady_s / 2)
        monitor.mark("end")
        raise_failed(tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        server.stop()
    heartbeats = [x * 1000 for a in sim for x in a.heartbeat_s]
    monitor.stop()
    return {"ingest": latency_summary([x for a in sim for x in a.latencies]),
            "heartbeat": {"requests": len(heartbeats), "p50_ms": _round(percentile(heartbeats, 50)), "p99_ms": _round(percentile(heartbeats, 99))},
            "cores_used": monitor.per_phase()["floor"]}


def run_once(layout: Layout, settings: RunSettings, log: Callable[[str], None]) -> dict[str, Any]:
    began = time.time()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="nettvakt-scale-") as tmp:
        workdir = Path(tmp)
        try:
            machine_floor = asyncio.run(floor(layout.agents, settings, workdir)) if settings.floor else None
            result = asyncio.run(simulate(layout, settings, workdir, log))
            result["floor"] = machine_floor
        except (SimError, ServiceError, TimeoutError, OSError) as exc:
            log("".join(traceback.format_exception(exc)[-6:]).rstrip())
            result = {"agents": layout.agents, "collectors": layout.collectors, "holds": False, "error": str(exc)}
        finally:
            if settings.keep is not None:
                shutil.copytree(workdir, settings.keep / f"n{layout.agents}-c{layout.collectors}", dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.sqlite3*", "data", "wal", "meta", "snmpsim*"))
    result["wall_s"] = round(time.time() - began, 1)
    result["loadavg_before"] = [round(x, 2) for x in load_before]
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    log(f"N={layout.agents}, {layout.collectors} collector(s): {'holds' if result['holds'] else 'does not hold'}"
        f" (p99 {result.get('ingest', {}).get('p99_ms')} ms, alerts max {result.get('alert_max_s')} s,"
        f" lost {result.get('lost_points', '?')}{', ' + result['error'] if 'error' in result else ''})")
    return result


def search(collectors: int, start: int, devices: int, settings: RunSettings, max_runs: int, log: Callable[[str], None]) -> dict[str, Any]:
    """Double N from `start` until a run fails (halve it until one holds), then bisect to within 10 %."""
    runs: list[dict[str, Any]] = []
    held, failed = 0, 0
    n = start
    while len(runs) < max_runs and n >= 1:
        result = run_once(Layout(collectors, n, devices), settings, log)
        runs.append(result)
        if result["holds"]:
            held = max(held, n)
        else:
            failed = n if not failed else min(failed, n)
        if not failed:
            n *= 2
        elif not held:
            n //= 2
        elif failed - held <= max(1, held // 10):
            break
        else:
            n = (held + failed) // 2
    return {"collectors": collectors, "largest_n_held": held or None, "smallest_n_failed": failed or None, "runs": runs}


def main() -> int:
    # Thousands of simulated agents being sent on by 421 would each log it (a warning).
    logging.getLogger("nettvakt.agent").setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, nargs="+", default=[100], help="simulated agents: one run per number (and collector count)")
    parser.add_argument("--search", type=int, metavar="N0", help="find the largest N that holds, starting at N0")
    parser.add_argument("--search-runs", type=int, default=8, help="most runs per collector count in --search")
    parser.add_argument("--collectors", type=int, nargs="+", choices=(1, 3), default=[1])
    parser.add_argument("--devices", type=int, default=24, help="simulated SNMP devices (besides one to cut per collector)")
    parser.add_argument("--steady-s", type=float, default=60.0)
    parser.add_argument("--cut-share", type=float, default=0.01, help="share of the agents cut off in the outage")
    parser.add_argument("--backlog-h", type=float, default=2.0, help="hours of older backlog each cut agent comes back with")
    parser.add_argument("--storage", choices=("influxdb_v1", "victoriametrics"), default="influxdb_v1")
    parser.add_argument("--keep", type=Path, help="copy each run's inventory and logs here")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="every interval of the inventory (agents, heartbeats, probes, devices, group wait) times this")
    parser.add_argument("--no-floor", action="store_true", help="skip the same agents against a do-nothing server before each run")
    parser.add_argument("--serve-null", type=int, metavar="PORT", help=argparse.SUPPRESS)  # the floor's server, in its own process
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.serve_null is not None:
        null_collector(args.serve_null, args.time_scale)
        return 0
    if min(args.agents) < 1 or (args.search is not None and args.search < 1):
        parser.error("--agents and --search need at least 1")
    if not 0.05 <= args.time_scale <= 10:
        parser.error("--time-scale must be between 0.05 and 10")
    settings = RunSettings(args.steady_s, args.cut_share, args.backlog_h, args.storage, keep=args.keep, time_scale=args.time_scale,
                           floor=not args.no_floor)

    def log(line: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)

    report: dict[str, Any] = {"command": " ".join(sys.argv), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                              "cpus": os.cpu_count(), "uptime_before": _uptime()}
    if args.search is not None:
        report["searches"] = []
        for c in args.collectors:
            # Three collectors start where "three times one" would be, once one collector's N is known.
            held = [s["largest_n_held"] for s in report["searches"] if s["collectors"] == 1 and s["largest_n_held"]]
            start = c * held[0] if held and c > 1 else c * args.search
            report["searches"].append(search(c, start, args.devices, settings, args.search_runs, log))
    else:
        report["runs"] = [run_once(Layout(c, n, args.devices), settings, log) for c in args.collectors for n in args.agents]
    report["uptime_after"] = _uptime()
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        for run in report.get("runs", []) + [r for s in report.get("searches", []) for r in s["runs"]]:
            print(f"N={run['agents']:>5} collectors={run['collectors']} holds={run['holds']} p99={run.get('ingest', {}).get('p99_ms')} ms "
                  f"(floor {(run.get('floor') or {}).get('ingest', {}).get('p99_ms')} ms) "
                  f"alerts max={run.get('alert_max_s')} s lost={run.get('lost_points')} {run.get('error', '')}")
        for s in report.get("searches", []):
            print(f"{s['collectors']} collector(s): largest N that held {s['largest_n_held']}, smallest that failed {s['smallest_n_failed']}")
    return 0


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
