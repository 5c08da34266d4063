"""Collector throughput: the nettvakt collector beside vmagent and straight writes, same points, same run.

    .venv/bin/python bench/collector_throughput.py [--agents 20] [--points 200000] [--repeat 1]
        [--base /path/to/a/worktree/of/the/old/code] [--systems a,b,...] [--ingest-workers 0,1,2]
        [--write-concurrency 1,4] [--json]

Every system relays the same points, shaped like real agent reports, from --agents senders
(each posts its batches of --batch points one at a time, as the agent does) into a storage
started fresh for the run:

- into one VictoriaMetrics: `vm_direct` (line protocol posted straight to its /write),
  `vmagent` (Debian's vmagent: /write in, remote write out, with its -remoteWrite.tmpDataPath
  queue), `nettvakt_vm` (the collector with `[storage] kind = "victoriametrics"`, which also
  makes the rollups itself: collector/rollup_engine.py), `nettvakt_vm_no_rollups` (the same relay
  without the collector's rollups: the collector told `kind = "influxdb_v1"` at VictoriaMetrics'
  InfluxDB endpoint, so it makes none and asks for continuous queries VictoriaMetrics does not
  have, which only logs) and `base_vm` (as nettvakt_vm, old code);
- into one influxd: `influxd_direct`, `nettvakt_influxd` (kind influxdb_v1: InfluxDB's
  continuous queries make the rollups, the collector none) and `base_influxd` (old code).

Each `nettvakt_*` system runs once per number of --ingest-workers (`[collector] ingest_workers`,
collector/workers.py; default 0, the collector alone), named `nettvakt_influxd_2w` for two, and
once per --write-concurrency (`[storage] write_concurrency`, collector/writer.py; default: not set,
the collector's default), named `nettvakt_influxd_c4` for four; its CPU is that of the collector
and its workers together, and of main alone beside it (`main_cpu_s_per_million_points`), its RSS
the sum of each process's peak.

`base_*` run the collector from --base (a git worktree of the code before the change), only
when it is given. For each: points/s acknowledged and end to end (until the storage holds every
point), the relay process's CPU-seconds per million points over that window and its peak RSS,
each ingest request's answer time (p50/p99), and for the collector its queue file's size once
the queue has drained. The request bodies are built before the clock starts. Last, where the
collector's CPU goes per point, step by step, of this code and of --base in processes of their own
(decode, the contract's check, the queue's commit with the encoding, reading it back, the writer's
body, the rollups' fold).

vmagent acknowledges from memory (its disk queue is written only when the remote end falls
behind), while nettvakt acknowledges after the batch is committed to SQLite (synchronous=FULL):
compare their rates knowing that the collector's answer means "on disk" and vmagent's does not.

The senders, the relays and the storage share this machine's cores; the ratios within one run
are what compare, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402

from agent.points import Point  # noqa: E402
from collector.influxql import query  # noqa: E402
from collector.lineprotocol import encode_point  # noqa: E402
from collector.localservers import ManagedProcess, free_port, start_influxd, start_victoria_metrics, wait_until  # noqa: E402
from collector.service import token_hash  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SITE = "radhus"
VM_SYSTEMS = ("vm_direct", "vmagent", "nettvakt_vm", "nettvakt_vm_no_rollups", "base_vm")
INFLUX_SYSTEMS = ("influxd_direct", "nettvakt_influxd", "base_influxd")
# Acknowledged from memory, or after a durable commit: said beside every comparison.
ACKNOWLEDGES = {
    "vm_direct": "VictoriaMetrics itself",
    "vmagent": "from memory (its disk queue only when VictoriaMetrics falls behind)",
    "influxd_direct": "influxd itself (its WAL)",
}
NETTVAKT_ACK = "after the batch's SQLite commit (synchronous=FULL)"
# One field every point of a measurement has: its count is the measurement's point count in influxd.
COUNTED_FIELD = {"probe": "duration_ms", "host": "cpu_pct", "host_disk": "used_pct", "host_net": "in_bps"}


# --- points shaped like an agent's reports -------------------------------------------------------
# One report round of one agent, as agent/runner.py makes them (docs/metrics.md): 12 icmp, 5 tcp and
# 3 http probe targets (as bench/agent_footprint.py's agents), host metrics, two disks, two NICs.
ICMP, TCP, HTTP = 12, 5, 3


def report_round(host: str, t: int, rng: random.Random) -> list[dict[str, Any]]:
    tags = {"site": SITE, "host": host}
    points: list[dict[str, Any]] = []
    for i in range(ICMP):
        rtts = sorted(rng.uniform(0.2, 40.0) for _ in range(4))
        points.append({"measurement": "probe", "tags": {**tags, "kind": "icmp", "target": f"icmp-{i:02d}"}, "time": t, "fields": {
            "up": 1.0, "rtt_ms": round(rtts[1], 3), "rtt_min_ms": round(rtts[0], 3), "rtt_max_ms": round(rtts[3], 3),
            "rtt_p95_ms": round(rtts[3], 3), "jitter_ms": round(rtts[3] - rtts[0], 3), "loss_pct": 0.0, "sent": 10.0,
            "received": 10.0, "method": "icmp_dgram", "duration_ms": round(2000 + rtts[3], 3)}})
    for i in range(TCP):
        connect = round(rng.uniform(0.1, 20.0), 3)
        points.append({"measurement": "probe", "tags": {**tags, "kind": "tcp", "target": f"tcp-{i:02d}"}, "time": t,
                       "fields": {"up": 1.0, "connect_ms": connect, "duration_ms": round(connect + 0.05, 3)}})
    for i in range(HTTP):
        ttfb = round(rng.uniform(5.0, 300.0), 3)
        points.append({"measurement": "probe", "tags": {**tags, "kind": "http", "target": f"http-{i:02d}"}, "time": t, "fields": {
            "up": 1.0, "status_code": 200, "ttfb_ms": ttfb, "total_ms": round(ttfb + 3.1, 3), "bytes": 15320,
            "cert_days_left": 61.25, "duration_ms": round(ttfb + 3.4, 3)}})
    points.append({"measurement": "host", "tags": tags, "time": t, "fields": {
        "cpu_pct": round(rng.uniform(0, 100), 1), "mem_used_pct": round(rng.uniform(20, 90), 1), "mem_total_bytes": 17179869184,
        "mem_available_bytes": rng.randrange(2**30, 2**34), "swap_used_pct": 0.0, "load1": round(rng.uniform(0, 4), 2),
        "load5": 0.8, "load15": 0.6, "uptime_s": 86400.0, "boot_time_s": 1.7e9, "procs": 212, "spool_pending_points": 0,
        "spool_dropped_points": 0, "spool_bytes": 65536}})
    for mount in ("/", "/var"):
        used = rng.randrange(10**9, 10**11)
        points.append({"measurement": "host_disk", "tags": {**tags, "mount": mount}, "time": t, "fields": {
            "used_pct": round(used / 1.2e11 * 100, 2), "total_bytes": 120000000000, "used_bytes": used, "free_bytes": 120000000000 - used}})
    for nic in ("eth0", "wlan0"):
        points.append({"measurement": "host_net", "tags": {**tags, "nic": nic}, "time": t, "fields": {
            "in_bps": round(rng.uniform(0, 1e8), 1), "out_bps": round(rng.uniform(0, 1e7), 1), "in_errors_ps": 0.0,
            "out_errors_ps": 0.0, "in_drops_ps": 0.0, "out_drops_ps": 0.0}})
    return points


POINTS_PER_ROUND = len(report_round("x", 0, random.Random(0)))


@dataclass
class Load:
    """Every sender's request bodies, built before any clock starts: JSON for the collector, line
    protocol for the rest, the same points in both."""

    agents: int
    batch: int
    json_bodies: list[list[bytes]]
    line_bodies: list[list[bytes]]
    points: int
    samples: int  # field values: VictoriaMetrics keeps each as a sample (a string too, as a number)
    first_ns: int
    last_ns: int
    fields_per_point: float


def build_load(agents: int, total: int, batch: int, span_s: float, seed: int = 21) -> Load:
    rng = random.Random(seed)
    rounds = max(1, total // (agents * POINTS_PER_ROUND))
    end_ns = time.time_ns() - 600 * 10**9  # ten minutes ago: nothing is in the future for anyone
    step_ns = int(span_s * 10**9 / rounds)
    first_ns = end_ns - rounds * step_ns
    json_bodies, line_bodies = [], []
    points = fields = 0
    for a in range(agents):
        host = f"a{a:02d}"
        mine = [p for r in range(rounds) for p in report_round(host, first_ns + r * step_ns, rng)]
        points += len(mine)
        for p in mine:
            fields += len(p["fields"])
        json_bodies.append([json.dumps({"agent": host, "seq": 1 + k // batch, "points": mine[k:k + batch]}).encode()
                            for k in range(0, len(mine), batch)])
        line_bodies.append([("\n".join(encode_point(Point.from_json(p)) for p in mine[k:k + batch]) + "\n").encode()
                            for k in range(0, len(mine), batch)])
    return Load(agents, batch, json_bodies, line_bodies, points, fields, first_ns, end_ns, round(fields / points, 2))


# --- senders --------------------------------------------------------------------------------------
async def send_all(url: str, bodies: list[list[bytes]], headers: Callable[[int], dict[str, str]], ok: tuple[int, ...]) -> list[float]:
    """Each sender posts its bodies one at a time; every request's answer time (s)."""
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with aiohttp.ClientSession(headers=headers(i)) as http:
            for body in bodies[i]:
                start = time.perf_counter()
                async with http.post(url, data=body) as resp:
                    text = await resp.read()
                    if resp.status not in ok:
                        raise RuntimeError(f"{url}: HTTP {resp.status}: {text[:300]!r}")
                latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return latencies


# --- what each storage holds ----------------------------------------------------------------------
def influx_points(url: str, db: str) -> int:
    total = 0
    for measurement, name in COUNTED_FIELD.items():
        rows = query(url, db, f'SELECT count("{name}") FROM "{measurement}"')
        total += int(rows[0]["count"]) if rows else 0
    return total


def vm_samples(url: str, db: str, load: Load) -> int:
    """Samples VictoriaMetrics holds for `db` (its label), after flushing what it buffers."""
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=10).close()
    at_s = load.last_ns / 1e9 + 60
    window_s = int(at_s - load.first_ns / 1e9) + 120
    q = urllib.parse.urlencode({"query": f'sum(count_over_time({{db="{db}"}}[{window_s}s]))', "time": f"{at_s:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=30) as resp:
        result = json.load(resp)["data"]["result"]
    return int(float(result[0]["value"][1])) if result else 0


# --- a relay process's cost -----------------------------------------------------------------------
def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def process_tree(pid: int) -> list[int]:
    """The process and its children (a collector's ingest workers)."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children += [int(c) for c in (task / "children").read_text().split()]
    return [pid, *children]


def tree_cpu_s(pids: list[int]) -> dict[int, float]:
    return {pid: cpu_s(pid) for pid in pids}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def queue_files_mb(data_dir: Path) -> float:
    return round(sum(p.stat().st_size for p in data_dir.glob("queue.sqlite3*")) / 1e6, 2)


def collector_inventory(path: Path, data_dir: Path, storage: str, agents: int, ingest_workers: int = 0,
                        write_concurrency: int | None = None) -> None:
    # Each key only where set: the old code (--base) knows neither.
    workers = f"ingest_workers = {ingest_workers}\n" if ingest_workers else ""
    concurrency = f"write_concurrency = {write_concurrency}\n" if write_concurrency is not None else ""
    text = f"""
[collector]
data_dir = "{data_dir}"
agent_requests_per_s = 100000
agent_request_burst = 100000
{workers}
[storage]
{storage}
batch_size = 5000
flush_interval_s = 0.2
{concurrency}
[[site]]
id = "{SITE}"
name = "Rådhuset"
"""
    for i in range(agents):
        text += f'\n[[agent]]\nid = "a{i:02d}"\nname = "a{i:02d}"\nsite = "{SITE}"\ntoken_sha256 = "{token_hash(f"bench-token-{i}")}"\n'
    path.write_text(text, encoding="utf-8")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status == 200


@dataclass
class Relay:
    process: ManagedProcess | None
    url: str  # where the senders post
    json: bool  # the collector's JSON ingest, else line protocol
    data_dir: Path | None = None
    health: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Variant:
    """One system as run: the collector's own with its ingest workers and write concurrency (None: its default)."""

    system: str
    workers: int = 0
    concurrency: int | None = None

    @property
    def name(self) -> str:
        return self.system + (f"_{self.workers}w" if self.workers else "") + (f"_c{self.concurrency}" if self.concurrency is not None else "")

    @property
    def database(self) -> str:
        """The database (VictoriaMetrics: the label `db`) it writes to."""
        special = {"vm_direct": "direct", "influxd_direct": "direct", "vmagent": "vmagent", "nettvakt_vm_no_rollups": "norollups"}
        name = special.get(self.system, "base" if self.system.startswith("base_") else "nettvakt")
        return name + (f"{self.workers}w" if self.workers else "") + (f"c{self.concurrency}" if self.concurrency is not None else "")


def start_relay(variant: Variant, workdir: Path, vm_url: str | None, influx_url: str | None, args: argparse.Namespace) -> Relay:
    system = variant.system
    here = workdir / variant.name
    here.mkdir()
    if system in ("vm_direct", "influxd_direct"):
        base = vm_url if system == "vm_direct" else influx_url
        return Relay(None, f"{base}/write?db=direct&precision=ns", json=False)
    port = free_port()
    if system == "vmagent":
        argv = [shutil.which("vmagent") or "vmagent", f"-httpListenAddr=127.0.0.1:{port}", f"-remoteWrite.url={vm_url}/api/v1/write",
                f"-remoteWrite.tmpDataPath={here / 'queue'}", "-loggerLevel=WARN"]
        proc = ManagedProcess.start("vmagent", argv, here / "vmagent.log", cwd=here)
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 30, "vmagent", watch=[proc])
        return Relay(proc, f"http://127.0.0.1:{port}/write?db=vmagent&precision=ns", json=False, data_dir=here / "queue")
    code = Path(args.base) if system.startswith("base_") else ROOT
    db = variant.database
    if system.endswith("_vm"):
        storage = f'kind = "victoriametrics"\nurl = "{vm_url}"\ndatabase = "{db}"'
    elif system == "nettvakt_vm_no_rollups":
        storage = f'kind = "influxdb_v1"\nurl = "{vm_url}"\ndatabase = "{db}"'
    else:
        urllib.request.urlopen(urllib.request.Request(f"{influx_url}/query", data=f"q=CREATE DATABASE {db}".encode()), timeout=10).close()
        storage = f'kind = "influxdb_v1"\nurl = "{influx_url}"\ndatabase = "{db}"'
    inventory = here / "inventory.toml"
    collector_inventory(inventory, here / "data", storage, args.agents, variant.workers, variant.concurrency)
    env = {**os.environ, "PYTHONPATH": str(code)}
    argv = [sys.executable, "-m", "agent.cli", "collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"]
    proc = ManagedProcess.start(system, argv, here / "collector.log", env=env, cwd=code)
    base_url = f"http://127.0.0.1:{port}"
    wait_until(lambda: http_ok(f"{base_url}/api/v1/health"), 60, system, watch=[proc])
    return Relay(proc, f"{base_url}/api/v1/ingest", json=True, data_dir=here / "data", health=f"{base_url}/api/v1/health")


def variants(systems: list[str], workers: list[int], concurrency: list[int | None]) -> list[Variant]:
    """Each run: the collector's own systems once per number of workers and write concurrency."""
    return [Variant(system, w, c) if system.startswith("nettvakt_") else Variant(system)
            for system in systems for w in (workers if system.startswith("nettvakt_") else [0])
            for c in (concurrency if system.startswith("nettvakt_") else [None])]


def queue_drained(health_url: str) -> bool:
    with urllib.request.urlopen(health_url, timeout=10) as resp:
        return json.load(resp)["queue"]["queue_points"] == 0


def run_system(variant: Variant, load: Load, workdir: Path, vm_url: str | None, influx_url: str | None,
               args: argparse.Namespace) -> dict[str, Any]:
    system, workers = variant.system, variant.workers
    relay = start_relay(variant, workdir, vm_url, influx_url, args)
    try:
        db = variant.database
        if system in VM_SYSTEMS:
            expected, held = load.samples, lambda: vm_samples(vm_url or "", db, load)
        else:
            expected, held = load.points, lambda: influx_points(influx_url or "", db)
        if relay.json:
            bodies, ok = load.json_bodies, (200,)
            headers = lambda i: {"Authorization": f"Bearer bench-token-{i}", "Content-Type": "application/json"}  # noqa: E731
        else:
            bodies, ok = load.line_bodies, (204,)
            headers = lambda i: {"Content-Type": "text/plain; charset=utf-8"}  # noqa: E731
        pid = relay.process.pid if relay.process else None
        pids = process_tree(pid) if pid else []
        cpu0 = tree_cpu_s(pids)
        start = time.perf_counter()
        latencies = asyncio.run(send_all(relay.url, bodies, headers, ok))
        acked_s = time.perf_counter() - start
        wait_until(lambda: held() >= expected, args.timeout_s, f"{system}: every point in the storage", interval_s=0.2)
        e2e_s = time.perf_counter() - start
        got = held()
        result: dict[str, Any] = {
            "acknowledged": ACKNOWLEDGES.get(system, NETTVAKT_ACK),
            "ack_points_per_s": round(load.points / acked_s),
            "end_to_end_points_per_s": round(load.points / e2e_s),
            "end_to_end_s": round(e2e_s, 2),
            "request_p50_ms": round(statistics.median(latencies) * 1000, 1),
            "request_p99_ms": round(sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000, 1),
            "stored": got,
            "expected": expected,
        }
        if pid:
            spent = {p: cpu_s(p) - cpu0[p] for p in pids}
            result["cpu_s_per_million_points"] = round(sum(spent.values()) / load.points * 1e6, 2)
            result["max_rss_mb"] = round(sum(peak_rss_mb(p) for p in pids), 1)
            if workers:
                result["main_cpu_s_per_million_points"] = round(spent[pid] / load.points * 1e6, 2)
                result["processes"] = len(pids)
        if relay.health:
            wait_until(lambda: queue_drained(relay.health or ""), args.timeout_s, f"{system}: queue drained", interval_s=0.2)
            result["queue_file_mb_drained"] = queue_files_mb(relay.data_dir or workdir)
        elif system == "vmagent" and relay.data_dir is not None:
            result["disk_queue_mb"] = round(sum(p.stat().st_size for p in relay.data_dir.rglob("*") if p.is_file()) / 1e6, 2)
        return result
    finally:
        if relay.process is not None:
            relay.process.stop(30)


def one_run(load: Load, systems: list[str], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="nettvakt-bench-") as tmp:
        workdir = Path(tmp)
        vm = start_victoria_metrics(workdir / "vm") if any(s in VM_SYSTEMS for s in systems) else None
        influx = start_influxd(workdir / "influxd") if any(s in INFLUX_SYSTEMS for s in systems) else None
        try:
            if influx is not None:
                urllib.request.urlopen(urllib.request.Request(f"{influx.url}/query", data=b"q=CREATE DATABASE direct"), timeout=10).close()
            for variant in variants(systems, args.ingest_workers, args.write_concurrency):
                name = variant.name
                out[name] = run_system(variant, load, workdir, vm.url if vm else None, influx.url if influx else None, args)
                print(f"# {name}: {out[name]}", file=sys.stderr, flush=True)
        finally:
            for server in (vm, influx):
                if server is not None:
                    server.stop()
    ratios: dict[str, float] = {}

    def ratio(name: str, a: str, b: str, key: str) -> None:
        if a in out and b in out and out[b].get(key):
            ratios[name] = round(out[a][key] / out[b][key], 2)

    ratio("base_vm_rate_over_vmagent", "base_vm", "vmagent", "end_to_end_points_per_s")
    ratio("base_vm_cpu_over_vmagent", "base_vm", "vmagent", "cpu_s_per_million_points")
    # Every run of the collector's own against vmagent (into VictoriaMetrics), the old code and itself alone.
    for variant in variants(systems, args.ingest_workers, args.write_concurrency):
        name, alone = variant.name, Variant(variant.system).name
        if not variant.system.startswith("nettvakt_"):
            continue
        if variant.system.startswith("nettvakt_vm"):
            ratio(f"{name}_rate_over_vmagent", name, "vmagent", "end_to_end_points_per_s")
            ratio(f"{name}_cpu_over_vmagent", name, "vmagent", "cpu_s_per_million_points")
        if variant.system in ("nettvakt_vm", "nettvakt_influxd"):
            ratio(f"{name}_rate_over_base", name, "base" + variant.system.removeprefix("nettvakt"), "end_to_end_points_per_s")
        if name != alone:
            ratio(f"{name}_rate_over_{alone}", name, alone, "end_to_end_points_per_s")
    out["ratios"] = ratios
    return out


BREAKDOWN = """
import asyncio, inspect, json, sys, tempfile, time
from pathlib import Path
from agent.report import parse_batch
import collector.ingest as ingest
from collector.lineprotocol import encode_point
from collector.queue import DurableQueue
from collector.rollup_engine import RollupEngine

bodies = [bytes.fromhex(h) for h in json.load(sys.stdin)]
new = hasattr(ingest, "AgentPoints")
if new:
    import orjson
window, now = ingest.TimeWindow(300, 90 * 86400), time.time_ns()
n = sum(len(json.loads(b)["points"]) for b in bodies)
out = {}

def stage(name, work, repeat=3):
    best = None
    for _ in range(repeat):
        start = time.process_time()
        result = work()
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    out[name] = round(best / n * 1e6, 2)
    return result

decoded = stage("decode_us", lambda: [(orjson.loads if new else json.loads)(b) for b in bodies])
if new:
    def check():
        done = []
        for data in decoded:
            checker = ingest.AgentPoints(data["agent"], "radhus", now, window)
            done.append((parse_batch(data, 20000, checker), checker.lines))
        return done
else:
    def check():
        return [(parse_batch(d, 20000, lambda raw, i, a=d["agent"]: ingest.agent_point(raw, i, a, "radhus", now, window)), None) for d in decoded]
checked = stage("check_us", check)
with tempfile.TemporaryDirectory() as tmp:
    queue = DurableQueue(Path(tmp) / "queue.sqlite3")
    def put():
        for batch, lines in checked:
            if new:
                queue.put("agent:" + batch.agent, batch.seq, batch.points, lines)
            else:
                queue.put("agent:" + batch.agent, batch.seq, batch.points)
    stage("queue_put_us", put, repeat=1)
    batches = stage("queue_read_us", lambda: queue.peek(10 ** 9))
    if new:
        stage("writer_body_us", lambda: ("\\n".join(line for b in batches for line in b.lines) + "\\n").encode())
    else:
        stage("writer_body_us", lambda: ("\\n".join(encode_point(p) for b in batches for p in b.points) + "\\n").encode())

    class Sink:
        async def write(self, *args, **kwargs):
            pass

    engine = RollupEngine(Path(tmp) / "rollups.sqlite3", Sink(), {}, queue_highest_id=0)
    # As the writer hands them over: 5,000 points (the bench's batch_size) a fold, each one commit.
    groups = [batches[at:at + 5] for at in range(0, len(batches), 5)]
    if len(inspect.signature(RollupEngine.fold).parameters) == 2:  # folds what the writer took, from its lines
        from collector.writer import Written
        folds = lambda: [asyncio.run(engine.fold(Written(group))) for group in groups]
    else:  # folds points, read back from the lines where not kept in memory
        folds = lambda: [asyncio.run(engine.fold(group, [p for b in group for p in b.points])) for group in groups]
    stage("rollup_fold_us", folds, repeat=1)
    engine.close()
    queue.close()
print(json.dumps(out))
"""


def breakdown(code: Path, load: Load, agents: int = 20) -> dict[str, float]:
    """CPU microseconds per point of each step between an agent's request body and the storage's,
    of the code at `code`, in a process of its own (the same bodies for each code)."""
    import subprocess

    bodies = [b.hex() for per_agent in load.json_bodies[:agents] for b in per_agent]
    done = subprocess.run([sys.executable, "-c", BREAKDOWN], input=json.dumps(bodies), capture_output=True, text=True,
                          cwd=code, env={**os.environ, "PYTHONPATH": str(code)}, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"breakdown of {code} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=20, help="senders, each an agent with its own token")
    parser.add_argument("--points", type=int, default=200000, help="points per system (rounded down to whole report rounds)")
    parser.add_argument("--batch", type=int, default=1000, help="points per request")
    parser.add_argument("--span-h", type=float, default=4.0, help="the points' times cover this many hours, ending 10 minutes ago")
    parser.add_argument("--repeat", type=int, default=1, help="whole runs, each with fresh storage")
    parser.add_argument("--base", help="a worktree of the old code: adds base_vm and base_influxd")
    parser.add_argument("--systems", help=f"comma-separated, of {', '.join(VM_SYSTEMS + INFLUX_SYSTEMS)} (default: all)")
    parser.add_argument("--ingest-workers", default="0", metavar="N,N,...",
                        help="run each nettvakt_* system once with each of these [collector] ingest_workers (default 0: the collector alone)")
    parser.add_argument("--write-concurrency", default="", metavar="N,N,...",
                        help="run each nettvakt_* system once with each of these [storage] write_concurrency (default: not set, the collector's own default)")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="longest wait for a system to store everything")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    systems = args.systems.split(",") if args.systems else [s for s in VM_SYSTEMS + INFLUX_SYSTEMS if args.base or not s.startswith("base_")]
    unknown = set(systems) - set(VM_SYSTEMS + INFLUX_SYSTEMS)
    if unknown or (any(s.startswith("base_") for s in systems) and not args.base):
        parser.error(f"--systems: unknown {sorted(unknown)}" if unknown else "base_* systems need --base")
    try:
        args.ingest_workers = sorted({int(n) for n in args.ingest_workers.split(",")})
    except ValueError:
        parser.error(f"--ingest-workers: expected numbers separated by commas, got {args.ingest_workers!r}")
    if args.ingest_workers[0] < 0:
        parser.error("--ingest-workers: a number of workers is 0 or more")
    try:
        args.write_concurrency = sorted({int(n) for n in args.write_concurrency.split(",")}) if args.write_concurrency else [None]
    except ValueError:
        parser.error(f"--write-concurrency: expected numbers separated by commas, got {args.write_concurrency!r}")
    if args.write_concurrency[0] is not None and args.write_concurrency[0] < 1:
        parser.error("--write-concurrency: writes in flight are 1 or more")
    started = time.perf_counter()
    load = build_load(args.agents, args.points, args.batch, args.span_h * 3600)
    results: dict[str, Any] = {
        "agents": args.agents, "batch": args.batch, "points": load.points, "samples": load.samples,
        "fields_per_point": load.fields_per_point, "points_per_agent_round": POINTS_PER_ROUND,
        "bodies_built_s": round(time.perf_counter() - started, 1), "load_average_at_start": os.getloadavg(), "runs": [],
    }
    for _ in range(args.repeat):
        results["runs"].append(one_run(load, systems, args))
    results["per_point_cpu_us"] = {"nettvakt": breakdown(ROOT, load)}
    if args.base:
        results["per_point_cpu_us"]["base"] = breakdown(Path(args.base), load)
    results["load_average_at_end"] = os.getloadavg()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for key, value in results.items():
            if key not in ("runs", "per_point_cpu_us"):
                print(f"{key:28} {value}")
        for n, run in enumerate(results["runs"], 1):
            for system, figures in run.items():
                print(f"run {n} {system:18} {figures}")
        for code, figures in results["per_point_cpu_us"].items():
            print(f"per point, {code:9} {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
