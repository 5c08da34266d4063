"""Agent footprint next to Debian's prometheus-node-exporter, in the same run.

    .venv/bin/python bench/agent_footprint.py [--duration 600] [--warmup 30] [--json]

Starts a real collector (local storage, loopback) whose inventory gives each agent 20 probe
targets at 30 s (12 icmp, 5 tcp, 3 http, all on loopback) and host metrics every 15 s, then
two real `nettvakt agent run` processes from copies of the `agent` package:

- "nettvakt agent": byte-compiled first, as `pip install .` leaves an installed agent;
- "nettvakt agent (no .pyc)": source only, run with PYTHONDONTWRITEBYTECODE=1, so every start
  compiles the agent's modules (as a checkout does on a machine that sets that variable);
  the compiler's scratch memory stays in the heap, about 2 MB more resident memory.

node_exporter runs beside them and is scraped once a second, as a Prometheus server with a
1 s interval would. After a warm-up, all three processes are measured over the same window:
resident memory (max of 1 s samples, and at the end) and CPU seconds (user + system,
including child processes such as dmidecode) per minute and per hour.

Not a test: figures depend on the machine. Needs `prometheus-node-exporter` (Debian package).
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collector.localservers import free_port, wait_until  # noqa: E402

# agent id -> (label in the results, bearer token, byte-compiled)
AGENTS = {
    "bench": ("nettvakt agent", "footprint-bench-token-0123456789", True),
    "bench-src": ("nettvakt agent (no .pyc)", "footprint-bench-token-source-9876", False),
}


def inventory(data_dir: Path, port: int) -> str:
    probes = []
    for i in range(12):
        probes.append(("icmp", f"127.0.0.{i + 1}", ""))
    for _ in range(5):
        probes.append(("tcp", f"127.0.0.1:{port}", ""))
    for _ in range(3):
        probes.append(("http", f"http://127.0.0.1:{port}/api/v1/health", ""))
    blocks = [
        f'[[probe]]\nname = "p{i:02d}-{kind}"\nkind = "{kind}"\ntarget = "{target}"\nagents = {json.dumps(list(AGENTS))}\ninterval_s = 30\n'
        for i, (kind, target, _) in enumerate(probes)
    ]
    agents = [
        f'[[agent]]\nid = "{agent_id}"\nname = "{agent_id}"\nsite = "radhus"\n'
        f'token_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\ninterval_s = 15\n'
        for agent_id, (_, token, _) in AGENTS.items()
    ]
    return (
        f'[collector]\ndata_dir = "{data_dir}"\n\n[storage]\nkind = "local"\n\n'
        '[[site]]\nid = "radhus"\nname = "Rådhuset"\n\n'
        + "\n".join(agents) + "\n" + "\n".join(blocks)
    )


def agent_copy(dest: Path, byte_compile: bool) -> Path:
    """A copy of the `agent` package in `dest` (without any __pycache__ of the tree), optionally byte-compiled.

    The agent is started with `dest` as its working directory, so `-m agent.cli` imports this copy.
    """
    shutil.copytree(ROOT / "agent", dest / "agent", ignore=shutil.ignore_patterns("__pycache__"))
    if byte_compile and not compileall.compile_dir(dest / "agent", quiet=1):
        raise RuntimeError(f"cannot byte-compile {dest / 'agent'}")
    return dest


def check_import_path(py: str, cwd: Path, env: dict[str, str], byte_compiled: bool) -> None:
    """Fail unless an interpreter started like the agent imports the copy in `cwd` (from .pyc or not, as asked)."""
    code = "import agent.cli, os; print(agent.cli.__file__); print(os.path.exists(agent.cli.__cached__))"
    out = subprocess.run([py, "-c", code], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout.split()
    if not out[0].startswith(str(cwd)) or (out[1] == "True") != byte_compiled:
        raise RuntimeError(f"agent copy in {cwd} not imported as expected: {out}")


class Sampler:
    """RSS and CPU of one process tree, sampled every second."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)
        self.max_rss = 0
        self.rss_samples: list[int] = []

    def cpu_s(self) -> float:
        t = self.proc.cpu_times()
        # children_* counts finished children (dmidecode, systemctl): the agent's work too.
        return t.user + t.system + t.children_user + t.children_system

    def sample(self) -> None:
        rss = self.proc.memory_info().rss
        self.rss_samples.append(rss)
        self.max_rss = max(self.max_rss, rss)


def start(argv: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(argv, cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=600.0, help="measured window in seconds (default 600)")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the window opens (default 30)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    exporter_bin = shutil.which("prometheus-node-exporter")
    if exporter_bin is None:
        print("needs prometheus-node-exporter (Debian: apt-get install prometheus-node-exporter)", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="nettvakt-footprint-"))
    port, ne_port = free_port(), free_port()
    inv = work / "inventory.toml"
    inv.write_text(inventory(work / "collector-data", port), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    py = sys.executable
    procs: list[subprocess.Popen] = []
    stop_scraping = threading.Event()
    scrapes = {"ok": 0, "failed": 0}
    try:
        collector = start([py, "-m", "agent.cli", "collector", "run", "--inventory", str(inv), "--listen", f"127.0.0.1:{port}"], work / "collector.log")
        procs.append(collector)
        wait_until(lambda: urllib.request.urlopen(f"{base}/api/v1/health", timeout=2).status == 200, 30, "collector")
        agents: dict[str, subprocess.Popen] = {}
        for agent_id, (label, token, byte_compiled) in AGENTS.items():
            cwd = agent_copy(work / agent_id, byte_compiled)
            env = {"NETTVAKT_AGENT_TOKEN": token, "PYTHONDONTWRITEBYTECODE": "1"}
            check_import_path(py, cwd, env, byte_compiled)
            agents[label] = start(
                [py, "-m", "agent.cli", "agent", "run", "--collector", base, "--agent-id", agent_id, "--spool", str(work / f"{agent_id}.sqlite3")],
                work / f"{agent_id}.log", env, cwd,
            )
            procs.append(agents[label])
        exporter = start([exporter_bin, f"--web.listen-address=127.0.0.1:{ne_port}"], work / "node-exporter.log")
        procs.append(exporter)
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{ne_port}/metrics", timeout=2).status == 200, 30, "node_exporter")

        def scrape() -> None:
            next_at = time.monotonic()
            while not stop_scraping.is_set():
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{ne_port}/metrics", timeout=5) as resp:
                        resp.read()
                    scrapes["ok"] += 1
                except OSError:
                    scrapes["failed"] += 1
                next_at += 1.0
                stop_scraping.wait(max(0.0, next_at - time.monotonic()))

        scraper = threading.Thread(target=scrape, daemon=True)
        scraper.start()
        time.sleep(args.warmup)
        samplers = {**{label: Sampler(proc.pid) for label, proc in agents.items()}, "prometheus-node-exporter": Sampler(exporter.pid)}
        cpu0 = {k: s.cpu_s() for k, s in samplers.items()}
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.duration:
            for s in samplers.values():
                s.sample()
            time.sleep(1.0)
            if any(proc.poll() is not None for proc in procs):
                raise RuntimeError("a measured process exited; see " + str(work))
        elapsed = time.monotonic() - t0
        cpu1 = {k: s.cpu_s() for k, s in samplers.items()}
        stop_scraping.set()
        health = json.load(urllib.request.urlopen(f"{base}/api/v1/health", timeout=5))
        results: dict[str, Any] = {
            "window_s": round(elapsed, 1),
            "warmup_s": args.warmup,
            "scrapes": scrapes,
            "agent_points_in": health["ingest"]["points"],
            "processes": {},
        }
        for name, s in samplers.items():
            cpu = cpu1[name] - cpu0[name]
            results["processes"][name] = {
                "rss_max_mb": round(s.max_rss / 1024**2, 1),
                "rss_end_mb": round(s.rss_samples[-1] / 1024**2, 1),
                "cpu_s_per_min": round(cpu / elapsed * 60, 3),
                "cpu_s_per_hour": round(cpu / elapsed * 3600, 1),
            }
    finally:
        stop_scraping.set()
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)

    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"window {results['window_s']} s after {args.warmup:.0f} s warm-up; node_exporter scraped {scrapes['ok']} times; "
              f"collector received {results['agent_points_in']} points from the two agents")
        print(f"{'process':28} {'RSS max MB':>10} {'RSS end MB':>10} {'CPU s/min':>10} {'CPU s/hour':>11}")
        for name, r in results["processes"].items():
            print(f"{name:28} {r['rss_max_mb']:>10} {r['rss_end_mb']:>10} {r['cpu_s_per_min']:>10} {r['cpu_s_per_hour']:>11}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
