"""A network-namespace lab built from a `Topology`: real routing, shaping, loss and cuts.

Why namespaces: the collector and agents must be tested against real kernels forwarding real
packets over slow and lossy lines, not against mocks. Every namespace name carries a per-run
prefix (`nv<session>-<node>`) so parallel runs never collide, and everything built is torn
down by `stop()`, at interpreter exit, on SIGTERM, or by `cleanup_stale()` after a crash.
"""

from __future__ import annotations

import atexit
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Protocol

from collector.lab.topology import KARLSOY_LAB, Link, Topology
from collector.localservers import (
    InfluxdServer,
    ManagedProcess,
    ServiceError,
    SnmpdServer,
    SnmpsimServer,
    start_influxd,
    start_snmpd,
    start_snmpsim,
)

RUN_DIR = Path("/run/nettvakt-lab")
DEFAULT_PREFIX = "nv"
_SESSION = re.compile(r"^[0-9a-f]{1,8}$")
# Project root, so `python -m collector.lab.<tool>` works inside a namespace from any cwd.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LabError(RuntimeError):
    """Building or driving the lab failed; carries the failing command and its stderr."""

    def __init__(self, message: str, *, cmd: Sequence[str] | None = None, stderr: str = "", returncode: int | None = None):
        detail = message
        if cmd is not None:
            detail += f": `{' '.join(cmd)}`"
        if returncode is not None:
            detail += f" exited {returncode}"
        if stderr.strip():
            detail += f": {stderr.strip()}"
        super().__init__(detail)
        self.cmd = list(cmd) if cmd is not None else None
        self.stderr = stderr
        self.returncode = returncode


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s", cmd=argv) from exc
    except FileNotFoundError as exc:
        raise LabError(f"command not found ({exc.filename})", cmd=argv) from exc
    if check and proc.returncode != 0:
        raise LabError("command failed", cmd=argv, stderr=proc.stderr, returncode=proc.returncode)
    return proc


class _Stoppable(Protocol):
    def stop(self) -> None: ...


def _netns_list() -> set[str]:
    out = _run(["ip", "netns", "list"], check=False).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _proc_start_time(pid: int) -> str | None:
    """Start time of a process in clock ticks: with the PID it identifies a process despite PID reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _read_pidfile(pidfile: Path) -> dict[str, Any]:
    try:
        data = json.loads(pidfile.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _owner_alive(pidfile: Path) -> bool:
    data = _read_pidfile(pidfile)
    pid = data.get("pid")
    return isinstance(pid, int) and _proc_start_time(pid) == data.get("start")


def _kill_netns_pids(ns: str) -> None:
    """Kill what still runs in a namespace we own, by PID (its processes are ours)."""
    out = _run(["ip", "netns", "pids", ns], check=False).stdout
    for pid_s in out.split():
        try:
            os.kill(int(pid_s), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


def _delete_netns(ns: str) -> None:
    _kill_netns_pids(ns)
    _run(["ip", "netns", "delete", ns], check=False)


def cleanup_stale(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Remove namespaces, temporary veths and PID files left by crashed runs.

    A run is stale when the process recorded in RUN_DIR/<prefix><session>.pid is gone (PID and
    start time must match) or when the file is missing. The PID file is written before any
    namespace, so a live run always has one. A stale run's own temporary workdir (logs) goes
    too. Returns the namespaces deleted.
    """
    ns_re = re.compile(rf"^{re.escape(prefix)}([0-9a-f]{{1,8}})-[a-z0-9]+$")
    veth_re = re.compile(rf"^{re.escape(prefix)}([0-9a-f]{{1,8}})v\d+[ab]$")
    removed: list[str] = []
    alive: dict[str, bool] = {}

    def is_alive(session: str) -> bool:
        if session not in alive:
            alive[session] = _owner_alive(RUN_DIR / f"{prefix}{session}.pid")
        return alive[session]

    for ns in sorted(_netns_list()):
        m = ns_re.match(ns)
        if m and not is_alive(m.group(1)):
            _delete_netns(ns)
            removed.append(ns)
    links = json.loads(_run(["ip", "-j", "link", "show"], check=False).stdout or "[]")
    for link in links:
        m = veth_re.match(link.get("ifname", ""))
        if m and not is_alive(m.group(1)):
            _run(["ip", "link", "delete", link["ifname"]], check=False)
    if RUN_DIR.is_dir():
        for pidfile in RUN_DIR.glob(f"{prefix}*.pid"):
            session = pidfile.stem[len(prefix):]
            if _SESSION.match(session) and not is_alive(session):
                data = _read_pidfile(pidfile)
                if data.get("own_workdir") and data.get("workdir"):
                    shutil.rmtree(data["workdir"], ignore_errors=True)
                pidfile.unlink(missing_ok=True)
    return removed


def check_lab_possible() -> str | None:
    """None if this machine can run the lab, else why not (so tests can fail with a reason)."""
    if os.geteuid() != 0:
        return "not root"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"{tool} not installed (package {package})"
    probe = f"{DEFAULT_PREFIX}probe{os.getpid():x}"[:32]
    try:
        proc = _run(["ip", "netns", "add", probe], check=False)
        if proc.returncode != 0:
            return f"ip netns not permitted: {proc.stderr.strip()}"
        tbf = _run(["tc", "-n", probe, "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit", "burst", "4kb", "latency", "100ms"], check=False)
        if tbf.returncode != 0:
            return f"tc tbf not available: {tbf.stderr.strip()}"
        nft = _run(["ip", "netns", "exec", probe, "nft", "add", "table", "netdev", "probe"], check=False)
        if nft.returncode != 0:
            return f"nftables not usable in a namespace: {nft.stderr.strip()}"
    finally:
        _run(["ip", "netns", "delete", probe], check=False)
    return None


# --- process-wide safety net: every live lab is stopped at exit and on SIGTERM ---------------

_LIVE: set[Lab] = set()
_LIVE_LOCK = threading.Lock()
_HANDLERS_INSTALLED = False
_PREVIOUS_SIGTERM: Any = None


def _stop_all() -> None:
    with _LIVE_LOCK:
        labs = list(_LIVE)
    for lab in labs:
        lab.stop()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _stop_all()
    previous = _PREVIOUS_SIGTERM
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_IGN:
        return
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _install_handlers() -> None:
    global _HANDLERS_INSTALLED, _PREVIOUS_SIGTERM
    if _HANDLERS_INSTALLED:
        return
    atexit.register(_stop_all)
    if threading.current_thread() is threading.main_thread():
        _PREVIOUS_SIGTERM = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
    _HANDLERS_INSTALLED = True


# --- results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PingStats:
    """Parsed `ping` summary: what a scenario asserts on."""

    transmitted: int
    received: int
    loss_pct: float
    rtt_avg_ms: float | None
    rtt_max_ms: float | None
    error: str | None = None


_PING_COUNTS = re.compile(r"(\d+) packets transmitted, (\d+) received")
_PING_RTT = re.compile(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms")


def parse_ping(output: str, *, count: int = 0, stderr: str = "") -> PingStats:
    """Parse iputils `ping` output (loss computed from counts, not the rounded percentage).

    A ping that could not send at all (no route after a cut: "Network is unreachable") prints
    no summary; that is 100 % loss of `count` with the reason, not an exception.
    """
    counts = _PING_COUNTS.search(output)
    if counts is None:
        reason = (stderr.strip() or output.strip())[-300:]
        if count > 0 and reason:
            return PingStats(count, 0, 100.0, None, None, error=reason)
        raise LabError(f"cannot parse ping output: {output[-300:]!r} {stderr[-300:]!r}")
    sent, got = int(counts.group(1)), int(counts.group(2))
    rtt = _PING_RTT.search(output)
    return PingStats(
        transmitted=sent,
        received=got,
        loss_pct=100.0 * (sent - got) / sent if sent else 100.0,
        rtt_avg_ms=float(rtt.group(2)) if rtt else None,
        rtt_max_ms=float(rtt.group(3)) if rtt else None,
    )


class SaturateHandle:
    """A running bulk transfer; `wait()` then read `bytes_received`/`goodput_kbit`."""

    def __init__(self, sink: ManagedProcess, sender: ManagedProcess, sink_result: Path, send_result: Path, seconds: float):
        self.sink = sink
        self.sender = sender
        self._sink_result = sink_result
        self._send_result = send_result
        self.seconds = seconds
        self.bytes_sent = 0
        self.bytes_received = 0
        self.receive_seconds = 0.0
        self.done = False

    def wait(self, timeout: float | None = None) -> SaturateHandle:
        """Block until both ends finished and their results are read."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.seconds + 30.0)
        while not (self._sink_result.exists() and self._send_result.exists()):
            if time.monotonic() > deadline:
                self.stop()
                raise LabError(f"bulk transfer did not finish; sender log: {self.sender.log_tail(5)!r}; sink log: {self.sink.log_tail(5)!r}")
            if not self.sender.alive() and not self._send_result.exists():
                raise LabError(f"bulk sender died: {self.sender.log_tail(10)!r}")
            time.sleep(0.05)
        sent = json.loads(self._send_result.read_text())
        got = json.loads(self._sink_result.read_text())
        self.bytes_sent = int(sent["bytes_sent"])
        self.bytes_received = int(got["bytes_received"])
        self.receive_seconds = float(got["seconds"])
        self.done = True
        self.stop()
        return self

    @property
    def goodput_kbit(self) -> float:
        """Payload rate seen by the receiver, first byte to last byte, in kbit/s."""
        if self.receive_seconds <= 0:
            return 0.0
        return self.bytes_received * 8 / self.receive_seconds / 1000

    def stop(self) -> None:
        self.sender.stop()
        self.sink.stop()


# --- the lab ---------------------------------------------------------------------------------


class Lab:
    """Namespaces, veths, routes and shaping for one `Topology`; owns everything it starts."""

    def __init__(self, topology: Topology = KARLSOY_LAB, session_id: str | None = None, workdir: Path | None = None, *, prefix: str = DEFAULT_PREFIX):
        self.topology = topology
        self.session_id = session_id if session_id is not None else secrets.token_hex(3)
        if not _SESSION.match(self.session_id):
            raise ValueError(f"session_id {self.session_id!r}: 1-8 lower-case hex digits")
        if not re.match(r"^[a-z]{1,4}$", prefix):
            raise ValueError(f"prefix {prefix!r}: 1-4 lower-case letters")
        self.prefix = f"{prefix}{self.session_id}"
        self._own_workdir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self._procs: list[_Stoppable] = []
        self._loss_tables: set[tuple[str, str]] = set()
        self._started = False
        self._stopping = threading.Lock()
        self._counter = 0

    # names --------------------------------------------------------------------------------

    def ns(self, name: str) -> str:
        """The real namespace name of node `name`."""
        self.topology.node(name)
        return f"{self.prefix}-{name}"

    def addr(self, node: str, link: str | None = None) -> str:
        """The IPv4 address of `node` (on `link` if given, else its primary address)."""
        if link is None:
            return self.topology.primary_address(node)
        return self.topology.link(link).address_of(node)

    @property
    def workdir(self) -> Path:
        """Logs and result files of this run; a temporary directory (removed at stop) unless given."""
        if self._workdir is None:
            raise LabError("lab is not started: no workdir yet")
        return self._workdir

    @property
    def pidfile(self) -> Path:
        return RUN_DIR / f"{self.prefix}.pid"

    def _tmp_ifnames(self, index: int) -> tuple[str, str]:
        return f"{self.prefix}v{index}a", f"{self.prefix}v{index}b"

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> Lab:
        """Build the topology; on any failure tear down what was built and raise LabError."""
        if self._started:
            return self
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self._workdir.mkdir(parents=True, exist_ok=True)
        owner = {"pid": os.getpid(), "start": _proc_start_time(os.getpid()), "workdir": str(self.workdir), "own_workdir": self._own_workdir}
        self.pidfile.write_text(json.dumps(owner) + "\n")
        with _LIVE_LOCK:
            _LIVE.add(self)
        _install_handlers()
        self._started = True
        try:
            self._build()
        except BaseException as exc:
            self.stop()
            if isinstance(exc, LabError):
                raise
            raise LabError(f"lab start failed: {exc!r}") from exc
        return self

    def _build(self) -> None:
        topo = self.topology
        for node in topo.nodes:
            ns = self.ns(node.name)
            _run(["ip", "netns", "add", ns])
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            for a in node.loopback_addrs:
                _run(["ip", "-n", ns, "addr", "add", a, "dev", "lo"])
        for index, link in enumerate(topo.links):
            tmp_a, tmp_b = self._tmp_ifnames(index)
            _run(["ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b])
            for end, tmp in ((link.a, tmp_a), (link.b, tmp_b)):
                ns = self.ns(end)
                _run(["ip", "link", "set", "dev", tmp, "netns", ns])
                _run(["ip", "-n", ns, "link", "set", "dev", tmp, "name", link.ifname_of(end)])
                _run(["ip", "-n", ns, "addr", "add", f"{link.address_of(end)}/{link.prefixlen}", "dev", link.ifname_of(end)])
                _run(["ip", "-n", ns, "link", "set", "dev", link.ifname_of(end), "up"])
        for link in topo.links:
            self._add_routes(link)
            if link.rate_kbit is not None:
                self.shape(link.name, link.rate_kbit)
        for node in topo.nodes:
            for key, value in node.sysctls.items():
                self.exec(node.name, ["sysctl", "-q", "-w", f"{key}={value}"])

    def _add_routes(self, link: Link) -> None:
        """Routes that use `link`: the kernel drops them when the link goes down."""
        if link.default_route is not None:
            node = link.default_route
            peer = link.peer_of(node)
            _run(["ip", "-n", self.ns(node), "route", "replace", "default", "via", link.address_of(peer), "dev", link.ifname_of(node)])
        for route in self.topology.routes:
            if route.via_link == link.name:
                peer = link.peer_of(route.node)
                _run(["ip", "-n", self.ns(route.node), "route", "replace", route.prefix, "via", link.address_of(peer), "dev", link.ifname_of(route.node)])

    def stop(self) -> None:
        """Tear everything down; idempotent and safe to call from atexit or a signal handler."""
        if not self._stopping.acquire(blocking=False):
            return
        try:
            if not self._started:
                return
            for proc in reversed(self._procs):
                try:
                    proc.stop()
                except Exception as exc:  # keep tearing down: leftovers are worse than one error
                    print(f"lab: stopping {proc!r} failed: {exc!r}", file=sys.stderr)
            self._procs.clear()
            for ns_node, table in sorted(self._loss_tables):
                _run(["ip", "netns", "exec", self.ns(ns_node), "nft", "delete", "table", "netdev", table], check=False)
            self._loss_tables.clear()
            existing = _netns_list()
            for node in self.topology.nodes:
                ns = self.ns(node.name)
                if ns in existing:
                    _delete_netns(ns)
            root_links = {link.get("ifname") for link in json.loads(_run(["ip", "-j", "link", "show"], check=False).stdout or "[]")}
            for index in range(len(self.topology.links)):
                for tmp in self._tmp_ifnames(index):
                    if tmp in root_links:
                        _run(["ip", "link", "delete", tmp], check=False)
            self.pidfile.unlink(missing_ok=True)
            if self._own_workdir and self._workdir is not None:
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None
            self._started = False
            with _LIVE_LOCK:
                _LIVE.discard(self)
        finally:
            self._stopping.release()

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # running things -----------------------------------------------------------------------

    def _env(self, env: dict[str, str] | None) -> dict[str, str]:
        merged = dict(os.environ)
        pythonpath = merged.get("PYTHONPATH")
        merged["PYTHONPATH"] = f"{_PROJECT_ROOT}{os.pathsep}{pythonpath}" if pythonpath else str(_PROJECT_ROOT)
        if env:
            merged.update(env)
        return merged

    def exec(self, node: str, argv: Sequence[str], check: bool = True, timeout: float = 30.0, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a command inside `node`'s namespace and wait for it (LabError if check fails)."""
        return _run(["ip", "netns", "exec", self.ns(node), *argv], check=check, timeout=timeout, input=input)

    def spawn(self, node: str, argv: Sequence[str], name: str, env: dict[str, str] | None = None, pass_fds: Sequence[int] = ()) -> ManagedProcess:
        """Start a long-running process in `node`; it is stopped with the lab."""
        if not self._started:
            raise LabError("lab is not started")
        self._counter += 1
        log_path = self.workdir / f"{self._counter:03d}-{name}.log"
        try:
            proc = ManagedProcess.start(name, ["ip", "netns", "exec", self.ns(node), *argv], log_path, env=self._env(env), pass_fds=pass_fds)
        except ServiceError as exc:
            raise LabError(str(exc)) from exc
        self._procs.append(proc)
        return proc

    def start_influxd(self, node: str, port: int = 8086, host: str = "127.0.0.1") -> InfluxdServer:
        """InfluxDB inside `node` (collector/localservers.py does the work); stopped with the lab."""
        if not self._started:
            raise LabError("lab is not started")
        server = start_influxd(self.workdir / f"influxd-{node}", host=host, port=port, netns=self.ns(node))
        self._procs.append(server)
        return server

    def start_snmpd(self, node: str, port: int = 161, host: str | None = None, **kwargs: Any) -> SnmpdServer:
        """snmpd inside `node`, on its primary address by default; stopped with the lab.

        Extra keyword arguments (community, v3_users, sys_name, sys_location) go to
        collector.localservers.start_snmpd.
        """
        if not self._started:
            raise LabError("lab is not started")
        server = start_snmpd(self.workdir / f"snmpd-{node}", host=host or self.addr(node), port=port, netns=self.ns(node), **kwargs)
        self._procs.append(server)
        return server

    def start_snmpsim(self, node: str, data_dir: Path, port: int = 1161, host: str = "127.0.0.1") -> SnmpsimServer:
        """snmpsim inside `node` serving the recordings in `data_dir` (community = file stem); stopped with the lab."""
        if not self._started:
            raise LabError("lab is not started")
        server = start_snmpsim(data_dir, self.workdir / f"snmpsim-{node}", host=host, port=port, netns=self.ns(node))
        self._procs.append(server)
        return server

    def python(self, node: str, module: str, args: Sequence[str], name: str, pass_fds: Sequence[int] = ()) -> ManagedProcess:
        """Spawn `python -m module args` from this interpreter inside `node`."""
        return self.spawn(node, [sys.executable, "-m", module, *args], name, pass_fds=pass_fds)

    # link controls ------------------------------------------------------------------------

    def _ends(self, link_name: str) -> Iterator[tuple[str, str, str]]:
        link = self.topology.link(link_name)
        for end in (link.a, link.b):
            yield end, self.ns(end), link.ifname_of(end)

    def shape(self, link: str, rate_kbit: int, burst: int | None = None, latency_ms: int = 400) -> None:
        """Limit both directions of `link` to `rate_kbit` with tbf.

        The queue holds `latency_ms` worth of data, so a saturated line shows the queueing delay
        a real bufferbloated rural link has (hundreds of ms), not just drops.
        """
        if rate_kbit <= 0:
            raise ValueError("rate_kbit must be positive")
        if burst is None:
            # ~20 ms of line rate, never less than two full-size frames.
            burst = max(3200, rate_kbit * 1000 // 8 // 50)
        for _, ns, ifname in self._ends(link):
            _run(["tc", "-n", ns, "qdisc", "replace", "dev", ifname, "root", "tbf", "rate", f"{rate_kbit}kbit", "burst", str(burst), "latency", f"{latency_ms}ms"])

    def unshape(self, link: str) -> None:
        """Remove the rate limit from both ends of `link`."""
        for _, ns, ifname in self._ends(link):
            proc = _run(["tc", "-n", ns, "qdisc", "del", "dev", ifname, "root"], check=False)
            if proc.returncode != 0 and "No such file" not in proc.stderr and "Cannot delete qdisc with handle of zero" not in proc.stderr:
                raise LabError("unshape failed", cmd=proc.args, stderr=proc.stderr)

    @staticmethod
    def _loss_table(ifname: str) -> str:
        return "nvloss_" + re.sub(r"[^a-zA-Z0-9_]", "_", ifname)

    def set_loss(self, link: str, pct: float, toward: str | None = None) -> None:
        """Drop `pct`% of IPv4 packets in EACH direction of `link` (or only those going `toward` a node).

        One nftables `netdev` table per end, hooked on ingress of that end's interface: the
        a-end drops b->a traffic, the b-end drops a->b traffic, whether forwarded or local.
        With both directions lossy a ping round trip survives with probability
        (1 - pct/100)**2 (30 % -> 51 % ping loss); `toward=node` makes only the direction into
        `node` lossy, so ping loss equals `pct`. ARP is spared so the loss stays what was asked
        for rather than adding neighbour-resolution failures. Replaces earlier loss on the link.
        """
        if not 0 <= pct <= 100:
            raise ValueError("pct must be within 0..100")
        ends = list(self._ends(link))
        if toward is not None and toward not in (end for end, _, _ in ends):
            raise LabError(f"set_loss: {toward!r} is not an end of link {link!r}")
        self.clear_loss(link)
        threshold = round(pct * 100)  # numgen over 10000: 0.01 % resolution
        for end, ns, ifname in ends:
            if toward is not None and end != toward:
                continue
            table = self._loss_table(ifname)
            _run(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", table], check=False)
            script = (
                f"table netdev {table} {{\n"
                f"  chain ingress {{\n"
                f'    type filter hook ingress device "{ifname}" priority 0; policy accept;\n'
                f"    meta protocol ip numgen random mod 10000 < {threshold} drop\n"
                f"  }}\n"
                f"}}\n"
            )
            _run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script)
            self._loss_tables.add((end, table))

    def clear_loss(self, link: str) -> None:
        """Remove the loss rules from both ends of `link`."""
        for end, ns, ifname in self._ends(link):
            table = self._loss_table(ifname)
            _run(["ip", "netns", "exec", ns, "nft", "delete", "table", "netdev", table], check=False)
            self._loss_tables.discard((end, table))

    def cut(self, link: str) -> None:
        """Take both ends of `link` down, like a cable cut (the kernel drops routes over it)."""
        for _, ns, ifname in self._ends(link):
            _run(["ip", "-n", ns, "link", "set", "dev", ifname, "down"])

    def restore(self, link: str) -> None:
        """Bring both ends back up and re-add the routes the kernel dropped at the cut."""
        for _, ns, ifname in self._ends(link):
            _run(["ip", "-n", ns, "link", "set", "dev", ifname, "up"])
        self._add_routes(self.topology.link(link))

    # traffic ------------------------------------------------------------------------------

    def saturate(self, src_node: str, dst_node: str, seconds: float, port: int = 5201) -> SaturateHandle:
        """Start a bulk TCP transfer from `src_node` to `dst_node`; returns once data flows."""
        self._counter += 1
        tag = f"bulk{self._counter}"
        files = {k: self.workdir / f"{tag}-{k}.json" for k in ("sink-ready", "sink-result", "send-ready", "send-result")}
        sink = self.python(dst_node, "collector.lab.bulk", ["sink", "--bind", "0.0.0.0", "--port", str(port), "--result", str(files["sink-result"]), "--ready", str(files["sink-ready"])], f"{tag}-sink")
        self._wait_file(files["sink-ready"], sink, 10.0, "bulk sink")
        target = self.addr(dst_node)
        sender = self.python(src_node, "collector.lab.bulk", ["send", "--to", f"{target}:{port}", "--seconds", str(seconds), "--result", str(files["send-result"]), "--ready", str(files["send-ready"])], f"{tag}-send")
        try:
            self._wait_file(files["send-ready"], sender, 10.0, "bulk sender")
        except LabError:
            sink.stop()
            raise
        return SaturateHandle(sink, sender, files["sink-result"], files["send-result"], seconds)

    @staticmethod
    def _wait_file(path: Path, proc: ManagedProcess, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not path.exists():
            if not proc.alive():
                raise LabError(f"{what} exited early: {proc.log_tail(10)!r}")
            if time.monotonic() > deadline:
                proc.stop()
                raise LabError(f"{what} not ready after {timeout}s: {proc.log_tail(10)!r}")
            time.sleep(0.02)

    def expose(self, node: str, port: int, host: str = "127.0.0.1") -> int:
        """Make TCP `host:port` inside `node` reachable at the root namespace's 127.0.0.1:<returned port>.

        The listening socket is made here, in the root namespace, and handed to a forwarder run
        inside `node`: no address or route is added to the root namespace.
        """
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(128)
            local_port = listener.getsockname()[1]
            fd = listener.fileno()
            self.python(node, "collector.lab.forward", ["--listen-fd", str(fd), "--to", f"{host}:{port}"], f"forward-{node}-{port}", pass_fds=[fd])
        finally:
            listener.close()  # the forwarder holds its own copy; connections queue until it accepts
        return local_port

    # inspection ---------------------------------------------------------------------------

    def interfaces(self, node: str) -> dict[str, int]:
        """Interface name -> ifindex inside `node` (what SNMP ifTable would show)."""
        links = json.loads(_run(["ip", "-n", self.ns(node), "-j", "link", "show"]).stdout)
        return {link["ifname"]: int(link["ifindex"]) for link in links}

    def counters(self, node: str, ifname: str) -> dict[str, int]:
        """Kernel byte/packet counters of one interface: rx_bytes, tx_bytes, rx_packets, ..."""
        data = json.loads(_run(["ip", "-n", self.ns(node), "-s", "-j", "link", "show", "dev", ifname]).stdout)
        stats = data[0]["stats64"]
        return {f"{d}_{k}": int(v) for d in ("rx", "tx") for k, v in stats[d].items() if isinstance(v, int)}

    def ping(self, node: str, target: str, count: int = 3, interval: float = 0.2, timeout_s: int = 2) -> PingStats:
        """Real ICMP echo from `node`; loss and RTT parsed from iputils ping."""
        ipaddress.ip_address(target)
        proc = self.exec(node, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(timeout_s), target], check=False, timeout=count * interval + timeout_s + 15)
        return parse_ping(proc.stdout, count=count, stderr=proc.stderr)
