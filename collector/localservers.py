"""Start and stop real local servers: influxd, snmpd, VictoriaMetrics and snmpsim.

Tests, `nettvakt demo` and the network-namespace lab all need real peers rather than fakes
(STYLE.md rule 8). This module is the one place that knows how to configure each server so it
listens only where it is told, keeps every file under a work directory, and is ready before the
caller talks to it. Every start either returns a server that answers or raises ServiceError
with the command and the last lines of its log.
"""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable, Sequence
from typing import Any
from dataclasses import dataclass
from pathlib import Path

# Program name -> how to run it (a name looked up on PATH, or a path). Tests and odd installs
# override an entry (monkeypatch.setitem(BINARIES, "influxd", "/opt/influxdb/bin/influxd")).
BINARIES: dict[str, str] = {
    "influxd": "influxd",
    "snmpd": "snmpd",
    "snmpget": "snmpget",
    "victoria-metrics": "victoria-metrics",
    "snmpsim-command-responder": str(Path(sys.executable).parent / "snmpsim-command-responder"),
    "ip": "ip",
}

# What to install when a program is missing: the Debian package, or the pip requirement.
_INSTALL_HINTS: dict[str, str] = {
    "influxd": "the Debian package influxdb (apt-get install influxdb)",
    "snmpd": "the Debian package snmpd (apt-get install snmpd)",
    "snmpget": "the Debian package snmp (apt-get install snmp)",
    "victoria-metrics": "the Debian package victoria-metrics (apt-get install victoria-metrics)",
    "snmpsim-command-responder": "the Python packages snmpsim and pysmi>=2 (pip install snmpsim 'pysmi>=2')",
    "ip": "the Debian package iproute2 (apt-get install iproute2)",
}

# net-snmp 5.9 (Debian) accepts these in createUser and in snmpget -a / -x.
SNMP_AUTH_PROTOCOLS = ("MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512")
SNMP_PRIV_PROTOCOLS = ("DES", "AES", "AES-192", "AES-256")

SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"
SYS_OBJECT_ID_OID = "1.3.6.1.2.1.1.2.0"

_SNMPREC_SUFFIXES = (".snmprec", ".snmpwalk", ".sapwalk", ".dump", ".MVC")
_POLL_INTERVAL_S = 0.1

_registry: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_registry_lock = threading.Lock()


class ServiceError(RuntimeError):
    """A server could not be started: the message says which program, how it was run and why."""


def free_port(host: str = "127.0.0.1", kind: str = "tcp") -> int:
    """Return a port that is free on `host` right now, so tests never collide on fixed ports."""
    if kind not in ("tcp", "udp"):
        raise ValueError(f"kind must be 'tcp' or 'udp', not {kind!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock_type = socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    with socket.socket(family, sock_type) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def resolve_binary(name: str) -> str:
    """Find the program for `name` (see BINARIES); raise ServiceError naming the package to install."""
    configured = BINARIES.get(name, name)
    if os.sep in configured:
        found = configured if os.path.isfile(configured) and os.access(configured, os.X_OK) else None
        if found is None and name == "snmpsim-command-responder":
            found = shutil.which(name)  # not in this venv: maybe installed elsewhere on PATH
    else:
        found = shutil.which(configured)
    if found is None:
        hint = _INSTALL_HINTS.get(name, "the package that provides it")
        raise ServiceError(f"{name} not found (looked for {configured!r}); it is provided by {hint}")
    return found


class ManagedProcess:
    """A server subprocess in its own process group, with its output in one log file.

    The own process group lets stop() take down whatever the server forked too.
    """

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, popen: subprocess.Popen[bytes]) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self._popen = popen
        self._lock = threading.Lock()
        self._stopped = False

    @classmethod
    def start(
        cls,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pass_fds: Sequence[int] = (),
    ) -> ManagedProcess:
        """Start `argv` with stdout and stderr appended to `log_path`, and register it for stop_all().

        `pass_fds` hands open descriptors to the child (the lab passes listening sockets this way).
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            try:
                popen = subprocess.Popen(
                    list(argv),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    pass_fds=tuple(pass_fds),
                    start_new_session=True,
                )
            except OSError as exc:
                raise ServiceError(f"{name} could not be executed: {exc}\ncommand: {shlex.join(argv)}") from exc
        proc = cls(name, argv, log_path, popen)
        with _registry_lock:
            _registry.add(proc)
        return proc

    @property
    def popen(self) -> subprocess.Popen[bytes]:
        return self._popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        return self._popen.poll()

    def alive(self) -> bool:
        """True while the process has not exited."""
        return self._popen.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """SIGTERM the process group, wait up to `timeout_s`, then SIGKILL. Safe to call twice."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            if self._popen.poll() is None:
                self._signal_group(signal.SIGTERM)
                try:
                    self._popen.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self._popen.wait()
            # Children that outlived the leader (e.g. a forked helper) go too.
            self._signal_group(signal.SIGKILL)

    def _signal_group(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self._popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def log_tail(self, n_lines: int = 20) -> str:
        """The last `n_lines` of the log, for error messages."""
        try:
            with open(self.log_path, "rb") as log:
                log.seek(0, os.SEEK_END)
                size = log.tell()
                log.seek(max(0, size - 64 * 1024))
                text = log.read().decode("utf-8", errors="replace")
        except OSError as exc:
            return f"(log {self.log_path} unreadable: {exc})"
        return "\n".join(text.splitlines()[-n_lines:])

    def __repr__(self) -> str:
        state = "alive" if self.alive() else f"exited {self.returncode}"
        return f"<ManagedProcess {self.name} pid={self.pid} {state}>"


def stop_all() -> list[ManagedProcess]:
    """Stop every started process that is still alive (a safety net); returns those it stopped."""
    with _registry_lock:
        procs = list(_registry)
    stopped = [proc for proc in procs if proc.alive()]
    for proc in procs:
        proc.stop()
    return stopped


def _start_error(proc: ManagedProcess, reason: str) -> ServiceError:
    return ServiceError(
        f"{proc.name} {reason}\ncommand: {shlex.join(proc.argv)}\n"
        f"last log lines ({proc.log_path}):\n{proc.log_tail(20) or '(empty)'}"
    )


def wait_until(
    predicate: Callable[[], Any],
    timeout_s: float,
    what: str,
    watch: Sequence[ManagedProcess] = (),
    interval_s: float = 0.3,
) -> Any:
    """Poll `predicate` until it returns something truthy, and return that.

    Exceptions from the predicate mean "not yet" and are kept for the message. Raises
    TimeoutError naming `what`, or ServiceError if a watched process exits meanwhile.
    """
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        for proc in watch:
            if not proc.alive():
                raise _start_error(proc, f"exited with status {proc.returncode} while waiting for {what}")
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # not ready yet; reported if it never gets there
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}" + (f"; last error: {last}" if last else ""))
        time.sleep(interval_s)


async def wait_until_async(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.02) -> Any:
    """`wait_until` for code on an event loop: other tasks run while it waits."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(interval_s)


def _wait_ready(proc: ManagedProcess, probe: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `probe` until it succeeds; on early exit or timeout stop the process and raise ServiceError."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if not proc.alive():
                raise _start_error(proc, f"exited with status {proc.returncode} before {what}")
            if probe():
                return
            if time.monotonic() >= deadline:
                raise _start_error(proc, f"did not become ready within {timeout_s:g} s (waiting for {what})")
            time.sleep(_POLL_INTERVAL_S)
    except BaseException:
        proc.stop()
        raise


def _in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    """Prefix `argv` with `ip netns exec NETNS` when a namespace is given."""
    if netns is None:
        return list(argv)
    return [resolve_binary("ip"), "netns", "exec", netns, *argv]


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# Run inside a namespace: exits 0 when the URL answers with the expected status.
_HTTP_PROBE_SCRIPT = """
import sys, urllib.request, urllib.error
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    status = opener.open(sys.argv[1], timeout=2).status
except urllib.error.HTTPError as exc:
    status = exc.code
except Exception:
    sys.exit(1)
sys.exit(0 if status == int(sys.argv[2]) else 1)
"""


def _http_probe(url: str, expect_status: int, netns: str | None) -> Callable[[], bool]:
    """A probe that is true once `url` answers `expect_status` (run inside `netns` when given)."""
    if netns is not None:
        argv = _in_netns(netns, [sys.executable, "-c", _HTTP_PROBE_SCRIPT, url, str(expect_status)])
        return lambda: subprocess.run(argv, capture_output=True, timeout=10).returncode == 0

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback never via a proxy

    def probe() -> bool:
        try:
            with opener.open(url, timeout=2) as resp:
                return resp.status == expect_status
        except urllib.error.HTTPError as exc:
            return exc.code == expect_status
        except OSError:
            return False

    return probe


def _net_snmp_env(state_dir: Path) -> dict[str, str]:
    """Environment for net-snmp programs: no MIB loading, no /etc/snmp, state kept in `state_dir`.

    Without SNMP_PERSISTENT_DIR both snmpd and snmpget write into /var/lib/snmp; Debian ships
    no standard MIBs, so loading them only fills the log with parse errors.
    """
    mib_dir = state_dir / "mibs"
    mib_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNMP", "MIB"))}
    env.update(SNMP_PERSISTENT_DIR=str(state_dir), SNMPCONFPATH=str(state_dir), MIBDIRS=str(mib_dir), MIBS="")
    return env


def _snmpget_probe(
    host: str, port: int, community: str, oid: str, netns: str | None, state_dir: Path
) -> Callable[[], bool]:
    """A probe that is true once an SNMP v2c GET of `oid` gets any answer."""
    argv = _in_netns(
        netns,
        [resolve_binary("snmpget"), "-v2c", "-c", community, "-r", "0", "-t", "1", "-On", f"udp:{_hostport(host, port)}", oid],
    )
    if ":" in host:
        argv[argv.index(f"udp:{_hostport(host, port)}")] = f"udp6:{_hostport(host, port)}"
    env = _net_snmp_env(state_dir)
    return lambda: subprocess.run(argv, capture_output=True, env=env, timeout=10).returncode == 0


def _pysnmp_get_probe(host: str, port: int, community: str, oid: str) -> Callable[[], bool]:
    """As _snmpget_probe, with the collector's own SNMP client: for machines without net-snmp's
    snmpget (the demo needs only snmpsim). Not in a namespace: the client runs in this process."""

    async def answers() -> bool:
        from collector.snmp.session import SnmpAuth, SnmpError, SnmpSession, close_engines

        session = SnmpSession(host, port, SnmpAuth("2c", community=community), timeout_s=1, retries=0)
        try:
            return bool(await session.get([oid]))
        except SnmpError:
            return False
        finally:
            close_engines()

    return lambda: asyncio.run(answers())


def _pick_port(host: str, port: int | None, netns: str | None, default_in_netns: int, kind: str = "tcp") -> int:
    """The given port; else a free one (root namespace) or a fixed default (inside a namespace)."""
    if port is not None:
        return port
    if netns is not None:
        return default_in_netns  # a fresh namespace has nothing listening; the root's ports say nothing
    return free_port(host, kind)


# ---------------------------------------------------------------- influxd


@dataclass
class InfluxdServer:
    """A running influxd 1.x (HTTP API at .url); data_dir holds its meta/, data/ and wal/."""

    host: str
    port: int
    process: ManagedProcess
    data_dir: Path
    netns: str | None = None

    @property
    def url(self) -> str:
        return f"http://{_hostport(self.host, self.port)}"

    def stop(self) -> None:
        self.process.stop()


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _influxd_config(workdir: Path, host: str, port: int, rpc_port: int, retention_check_s: float | None = None,
                    compact_full_cold_s: float | None = None) -> str:
    # The retention service drops expired shard groups every 30 min by default; a test that
    # proves expiry asks for a short interval instead of waiting.
    retention = "" if retention_check_s is None else f"""
[retention]
  enabled = true
  check-interval = {_toml_str(f"{retention_check_s:g}s")}
"""
    # A shard not written for this long is fully compacted (InfluxDB's default: 4 h); the
    # long-history benchmark measures the disk of compacted shards without waiting hours.
    cold = "" if compact_full_cold_s is None else f"""
  cache-snapshot-write-cold-duration = {_toml_str(f"{compact_full_cold_s:g}s")}
  compact-full-write-cold-duration = {_toml_str(f"{compact_full_cold_s:g}s")}"""
    return f"""# Written by collector/localservers.py: everything under this directory, loopback only, quiet.
reporting-enabled = false
reporting-disabled = true
bind-address = {_toml_str(_hostport(host, rpc_port))}

[meta]
  dir = {_toml_str(str(workdir / "meta"))}
  logging-enabled = false

[data]
  dir = {_toml_str(str(workdir / "data"))}
  wal-dir = {_toml_str(str(workdir / "wal"))}
  query-log-enabled = false{cold}

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = {_toml_str(_hostport(host, port))}
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[continuous_queries]
  log-enabled = false
  run-interval = "1s"
{retention}
[logging]
  level = "warn"
  suppress-logo = true
"""


def start_influxd(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    timeout_s: float = 30,
    rpc_port: int | None = None,
    retention_check_s: float | None = None,
    compact_full_cold_s: float | None = None,
) -> InfluxdServer:
    """Start influxd with a generated config under `workdir` and wait until /ping answers 204.

    `retention_check_s`: how often expired shard groups are dropped (InfluxDB's default, 30 min,
    when None). Continuous queries are looked at every second (InfluxDB's default too).
    `compact_full_cold_s`: a shard not written for this long is snapshotted and fully compacted
    (InfluxDB's defaults, 10 min and 4 h, when None).

    In a namespace the HTTP port defaults to 8086. The RPC (backup) port is never the default
    8088, which a system influxd may hold. influxd 1.6 creates no database: send CREATE DATABASE.
    """
    binary = resolve_binary("influxd")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _pick_port(host, port, netns, 8086)
    if rpc_port is None:
        if netns is None:
            rpc_port = free_port(host)
            while rpc_port in (port, 8088):
                rpc_port = free_port(host)
        else:
            rpc_port = port + 1 if port + 1 != 8088 else port + 2
    conf = workdir / "influxd.conf"
    conf.write_text(_influxd_config(workdir, host, port, rpc_port, retention_check_s, compact_full_cold_s))
    env = {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}  # they override the file
    argv = _in_netns(netns, [binary, "run", "-config", str(conf)])
    url = f"http://{_hostport(host, port)}"
    probe = _http_probe(f"{url}/ping", 204, netns)
    proc = ManagedProcess.start("influxd", argv, workdir / "influxd.log", env=env, cwd=workdir)
    _wait_ready(proc, probe, timeout_s, f"{url}/ping to answer 204")
    return InfluxdServer(host, port, proc, workdir, netns)


# ---------------------------------------------------------------- snmpd


@dataclass(frozen=True)
class SnmpV3User:
    """An SNMPv3 USM user for snmpd; protocols as net-snmp 5.9 names them (None: no auth / no priv)."""

    name: str
    auth_protocol: str | None = None
    auth_key: str | None = None
    priv_protocol: str | None = None
    priv_key: str | None = None

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == '"' for c in self.name):
            raise ValueError(f"SNMPv3 user name {self.name!r}: must be non-empty, without spaces or quotes")
        if (self.auth_protocol is None) != (self.auth_key is None):
            raise ValueError(f"SNMPv3 user {self.name}: auth_protocol and auth_key go together")
        if (self.priv_protocol is None) != (self.priv_key is None):
            raise ValueError(f"SNMPv3 user {self.name}: priv_protocol and priv_key go together")
        if self.priv_protocol is not None and self.auth_protocol is None:
            raise ValueError(f"SNMPv3 user {self.name}: privacy needs authentication")
        if self.auth_protocol is not None and self.auth_protocol not in SNMP_AUTH_PROTOCOLS:
            raise ValueError(f"SNMPv3 user {self.name}: auth_protocol must be one of {SNMP_AUTH_PROTOCOLS}")
        if self.priv_protocol is not None and self.priv_protocol not in SNMP_PRIV_PROTOCOLS:
            raise ValueError(f"SNMPv3 user {self.name}: priv_protocol must be one of {SNMP_PRIV_PROTOCOLS}")
        for what, key in (("auth_key", self.auth_key), ("priv_key", self.priv_key)):
            if key is not None and (len(key) < 8 or '"' in key or "\n" in key):
                raise ValueError(f"SNMPv3 user {self.name}: {what} needs at least 8 characters and no quotes")

    @property
    def level(self) -> str:
        """The security level: noAuthNoPriv, authNoPriv or authPriv."""
        if self.auth_protocol is None:
            return "noAuthNoPriv"
        return "authPriv" if self.priv_protocol is not None else "authNoPriv"

    def snmpget_args(self) -> list[str]:
        """The net-snmp command-line options that authenticate as this user."""
        args = ["-v3", "-l", self.level, "-u", self.name]
        if self.auth_protocol is not None:
            args += ["-a", self.auth_protocol, "-A", str(self.auth_key)]
        if self.priv_protocol is not None:
            args += ["-x", self.priv_protocol, "-X", str(self.priv_key)]
        return args

    def _config_lines(self) -> list[str]:
        create = f"createUser {self.name}"
        if self.auth_protocol is not None:
            create += f' {self.auth_protocol} "{self.auth_key}"'
        if self.priv_protocol is not None:
            create += f' {self.priv_protocol} "{self.priv_key}"'
        minimum = {"noAuthNoPriv": "noauth", "authNoPriv": "auth", "authPriv": "priv"}[self.level]
        return [create, f"rouser {self.name} {minimum}"]


@dataclass
class SnmpdServer:
    """A running net-snmp snmpd on udp host:port; state_dir holds its persistent USM data."""

    host: str
    port: int
    process: ManagedProcess
    community: str
    v3_users: tuple[SnmpV3User, ...]
    netns: str | None = None
    state_dir: Path | None = None
    sys_name: str | None = None
    sys_location: str | None = None

    def net_snmp_env(self) -> dict[str, str]:
        """Environment for snmpget/snmpwalk against this agent that writes nothing to /var/lib/snmp."""
        assert self.state_dir is not None
        return _net_snmp_env(self.state_dir)

    def stop(self) -> None:
        self.process.stop()


def _snmpd_config(
    host: str,
    port: int,
    community: str,
    v3_users: Sequence[SnmpV3User],
    sys_name: str | None,
    sys_location: str | None,
    extra_config: Sequence[str] = (),
) -> str:
    ipv6 = ":" in host
    lines = [
        "# Written by collector/localservers.py: one UDP endpoint, read-only access only.",
        f"agentAddress {'udp6' if ipv6 else 'udp'}:{_hostport(host, port)}",
        f"{'rocommunity6' if ipv6 else 'rocommunity'} {community} default",
    ]
    for user in v3_users:
        lines += user._config_lines()
    if sys_name is not None:
        lines.append(f"sysName {sys_name}")
    if sys_location is not None:
        lines.append(f"sysLocation {sys_location}")
    lines.extend(extra_config)
    return "\n".join(lines) + "\n"


def start_snmpd(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    community: str = "public",
    v3_users: Sequence[SnmpV3User] = (),
    sys_name: str | None = None,
    sys_location: str | None = None,
    timeout_s: float = 15,
    extra_config: Sequence[str] = (),
) -> SnmpdServer:
    """Start snmpd listening only on udp host:port and wait until a v2c GET of sysName answers.

    In a namespace the port defaults to 161. USM state goes to `workdir`/state, fresh on each
    start, never to /var/lib/snmp.
    """
    binary = resolve_binary("snmpd")
    if not community or any(c.isspace() for c in community):
        raise ValueError(f"community {community!r} must be non-empty without spaces")
    for value in (sys_name, sys_location):
        if value is not None and "\n" in value:
            raise ValueError("sys_name and sys_location are single lines")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state_dir = workdir / "state"
    shutil.rmtree(state_dir, ignore_errors=True)  # old usmUser/engineBoots lines would fight createUser
    state_dir.mkdir()
    port = _pick_port(host, port, netns, 161, kind="udp")
    conf = workdir / "snmpd.conf"
    conf.write_text(_snmpd_config(host, port, community, v3_users, sys_name, sys_location, extra_config))
    argv = _in_netns(netns, [binary, "-f", "-Lo", "-C", "-c", str(conf)])
    probe = _snmpget_probe(host, port, community, SYS_NAME_OID, netns, state_dir)  # before start: may raise
    proc = ManagedProcess.start("snmpd", argv, workdir / "snmpd.log", env=_net_snmp_env(state_dir), cwd=workdir)
    server = SnmpdServer(host, port, proc, community, tuple(v3_users), netns, state_dir, sys_name, sys_location)
    _wait_ready(proc, probe, timeout_s, f"snmpget -v2c of sysName on udp {_hostport(host, port)}")
    return server


# ---------------------------------------------------------------- VictoriaMetrics


@dataclass
class VictoriaMetricsServer:
    """A running single-node VictoriaMetrics: InfluxDB line protocol in, PromQL/export out."""

    host: str
    port: int
    process: ManagedProcess
    netns: str | None = None
    data_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{_hostport(self.host, self.port)}"

    def stop(self) -> None:
        self.process.stop()


def start_victoria_metrics(
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    timeout_s: float = 30,
) -> VictoriaMetricsServer:
    """Start victoria-metrics with its storage under `workdir` and wait until /health answers 200.

    In a namespace the port defaults to 8428. Queries see points at once (-search.latencyOffset=0s),
    which is what a test wants.
    """
    binary = resolve_binary("victoria-metrics")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _pick_port(host, port, netns, 8428)
    data_dir = workdir / "data"
    cmd = [
        binary,
        f"-httpListenAddr={_hostport(host, port)}",
        f"-storageDataPath={data_dir}",
        "-loggerLevel=WARN",
        "-search.latencyOffset=0s",
    ]
    if ":" in host:
        cmd.append("-enableTCP6")
    url = f"http://{_hostport(host, port)}"
    probe = _http_probe(f"{url}/health", 200, netns)
    proc = ManagedProcess.start("victoria-metrics", _in_netns(netns, cmd), workdir / "victoria-metrics.log", cwd=workdir)
    _wait_ready(proc, probe, timeout_s, f"{url}/health to answer 200")
    return VictoriaMetricsServer(host, port, proc, netns, data_dir)


# ---------------------------------------------------------------- snmpsim


@dataclass
class SnmpsimServer:
    """A running snmpsim responder; each recording in data_dir is served as community = file stem."""

    host: str
    port: int
    process: ManagedProcess
    data_dir: Path
    netns: str | None = None

    @property
    def communities(self) -> list[str]:
        """The v2c communities served: the stems of the recordings."""
        return _recording_stems(self.data_dir)

    def stop(self) -> None:
        self.process.stop()


def _recording_stems(data_dir: Path) -> list[str]:
    return sorted(p.stem for p in data_dir.iterdir() if p.is_file() and p.name.endswith(_SNMPREC_SUFFIXES))


def start_snmpsim(
    data_dir: Path,
    workdir: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    netns: str | None = None,
    timeout_s: float = 60,
) -> SnmpsimServer:
    """Serve the recordings in `data_dir` with snmpsim and wait until one of them answers a GET.

    The index cache goes to `workdir`. As root snmpsim wants to drop privileges, which a private
    temp dir would not survive, so it runs with SNMPSIM_ALLOW_ROOT=true instead.
    """
    binary = resolve_binary("snmpsim-command-responder")
    data_dir = Path(data_dir).resolve()
    if not data_dir.is_dir():
        raise ServiceError(f"snmpsim data directory {data_dir} does not exist")
    stems = _recording_stems(data_dir)
    if not stems:
        raise ServiceError(f"snmpsim data directory {data_dir} holds no recordings (*.snmprec etc.)")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    cache_dir = workdir / "cache"
    cache_dir.mkdir(exist_ok=True)
    port = _pick_port(host, port, netns, 161, kind="udp")
    endpoint_flag = "--agent-udpv6-endpoint" if ":" in host else "--agent-udpv4-endpoint"
    cmd = [
        binary,
        f"--data-dir={data_dir}",
        f"{endpoint_flag}={_hostport(host, port)}",
        f"--cache-dir={cache_dir}",
        "--log-level=error",
    ]
    env = dict(os.environ)
    if os.geteuid() == 0:
        env["SNMPSIM_ALLOW_ROOT"] = "true"
    community = "fortigate_60f" if "fortigate_60f" in stems else stems[0]
    try:
        probe = _snmpget_probe(host, port, community, SYS_OBJECT_ID_OID, netns, workdir / "snmp-client")
    except ServiceError:
        if netns is not None:
            raise
        probe = _pysnmp_get_probe(host, port, community, SYS_OBJECT_ID_OID)
    proc = ManagedProcess.start("snmpsim", _in_netns(netns, cmd), workdir / "snmpsim.log", env=env, cwd=workdir)
    server = SnmpsimServer(host, port, proc, data_dir, netns)
    _wait_ready(proc, probe, timeout_s, f"snmpget -v2c -c {community} of sysObjectID on udp {_hostport(host, port)}")
    return server


# ---------------------------------------------------------------- SSH peers: OpenSSH sshd, fake-switches

BINARIES.setdefault("sshd", "/usr/sbin/sshd")  # sshd re-executes itself, so it must run by absolute path
BINARIES.setdefault("ssh-keygen", "ssh-keygen")
_INSTALL_HINTS.setdefault("sshd", "the Debian package openssh-server (apt-get install openssh-server)")
_INSTALL_HINTS.setdefault("ssh-keygen", "the Debian package openssh-client (apt-get install openssh-client)")


def _ssh_banner_probe(host: str, port: int) -> Callable[[], bool]:
    """A probe that is true once host:port answers with an SSH identification string."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")
        except OSError:
            return False

    return probe


@dataclass
class SshdServer:
    """A private OpenSSH sshd: its config, host keys and authorized_keys all under `workdir`."""

    host: str
    port: int
    process: ManagedProcess
    workdir: Path
    host_key_dir: Path
    authorized_keys: Path

    def host_public_keys(self) -> list[str]:
        """The `type base64` lines of the host keys it presents."""
        return [" ".join(p.read_text().split()[:2]) for p in sorted(self.host_key_dir.glob("*.pub"))]

    def stop(self) -> None:
        self.process.stop()


def ssh_keygen(path: Path, *, key_type: str = "ed25519", passphrase: str = "", comment: str = "nettvakt") -> Path:
    """Generate a key pair at `path` (+ `.pub`) with ssh-keygen, unless it exists; returns `path`."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = [resolve_binary("ssh-keygen"), "-q", "-t", key_type, "-N", passphrase, "-C", comment, "-f", str(path)]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ServiceError(f"ssh-keygen failed ({proc.returncode}): {proc.stderr.strip()}\ncommand: {shlex.join(argv[:-1])} ...")
    return path


def start_sshd(
    workdir: Path,
    *,
    authorized_keys: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
    host_key_dir: Path | None = None,
    extra_config: Sequence[str] = (),
    timeout_s: float = 15,
) -> SshdServer:
    """Start sshd listening only on host:port and wait until it sends its SSH banner.

    Host keys (one ed25519) are generated in `host_key_dir` (default `workdir`/host-keys) when
    missing, so a restart with the same folder presents the same key and a new folder a new
    one. Public-key logins use `authorized_keys` (public key lines); passwords are checked
    against the system's accounts without PAM, and root may log in only with a key.
    """
    binary = resolve_binary("sshd")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    host_key_dir = Path(host_key_dir).resolve() if host_key_dir else workdir / "host-keys"
    host_key = ssh_keygen(host_key_dir / "ssh_host_ed25519_key", comment="nettvakt-test-host")
    keys_file = workdir / "authorized_keys"
    keys_file.write_text("".join(line.strip() + "\n" for line in authorized_keys))
    os.chmod(keys_file, 0o600)
    # Debian's sshd refuses to start without its privilege-separation directory, which the
    # distribution's service unit creates; it is empty and shared by every sshd.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    port = _pick_port(host, port, None, 22)
    conf = workdir / "sshd_config"
    lines = [
        f"ListenAddress {_hostport(host, port)}",
        f"HostKey {host_key}",
        f"PidFile {workdir / 'sshd.pid'}",
        f"AuthorizedKeysFile {keys_file}",
        "UsePAM no",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication yes",
        "KbdInteractiveAuthentication no",
        "StrictModes no",  # the keys live in a temp dir, not in a home sshd would check
        "PrintMotd no",
        "PrintLastLog no",
        "UseDNS no",
        "LogLevel VERBOSE",
        *extra_config,
    ]
    conf.write_text("\n".join(lines) + "\n")
    check = subprocess.run([binary, "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    if check.returncode != 0:
        raise ServiceError(f"sshd rejects its config {conf}: {check.stderr.strip()}")
    proc = ManagedProcess.start("sshd", [binary, "-D", "-e", "-f", str(conf)], workdir / "sshd.log", cwd=workdir)
    server = SshdServer(host, port, proc, workdir, host_key_dir, keys_file)
    _wait_ready(proc, _ssh_banner_probe(host, port), timeout_s, f"an SSH banner on tcp {_hostport(host, port)}")
    return server


@dataclass
class FakeSwitchServer:
    """A fake-switches Cisco IOS switch (collector.ssh.fakeswitch) over SSH."""

    host: str
    port: int
    process: ManagedProcess
    hostname: str
    username: str

    def stop(self) -> None:
        self.process.stop()


def start_fake_switch(
    workdir: Path,
    *,
    password: str,
    enable_secret: str,
    username: str = "admin",
    hostname: str = "lab-sw1",
    snmp_communities: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int | None = None,
    timeout_s: float = 30,
) -> FakeSwitchServer:
    """Start an emulated Cisco switch listening only on host:port; wait until it sends its SSH banner."""
    from collector.ssh.fakeswitch import ENABLE_ENV, PASSWORD_ENV

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    port = _pick_port(host, port, None, 22)
    argv = [sys.executable, "-m", "collector.ssh.fakeswitch", "--host", host, "--port", str(port), "--hostname", hostname, "--username", username]
    for community in snmp_communities:
        argv += ["--snmp-community", community]
    env = {**os.environ, PASSWORD_ENV: password, ENABLE_ENV: enable_secret}
    # The module runs from this source tree, whatever the caller's working directory.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent), env.get("PYTHONPATH")]))
    proc = ManagedProcess.start("fake-switch", argv, workdir / f"fake-switch-{hostname}.log", env=env, cwd=workdir)
    server = FakeSwitchServer(host, port, proc, hostname, username)
    _wait_ready(proc, _ssh_banner_probe(host, port), timeout_s, f"an SSH banner on tcp {_hostport(host, port)}")
    return server
