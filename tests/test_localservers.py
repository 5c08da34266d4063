"""collector/localservers.py against the real servers: they start, answer, and are gone when stopped."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from collector import localservers
from collector.localservers import (
    BINARIES,
    ManagedProcess,
    ServiceError,
    SnmpV3User,
    free_port,
    start_influxd,
    start_snmpd,
    start_snmpsim,
    start_victoria_metrics,
)

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SHA_AES = SnmpV3User("nv-local", "SHA", "auth-secret-9", "AES", "priv-secret-9")


def http(url: str, data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with OPENER.open(urllib.request.Request(url, data=data), timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def influxql(url: str, database: str, query: str) -> list[dict]:
    status, body = http(f"{url}/query", urllib.parse.urlencode({"db": database, "q": query}).encode())
    assert status == 200, body
    result = json.loads(body)["results"][0]
    assert "error" not in result, result
    rows = []
    for series in result.get("series", []):
        rows += [dict(zip(series["columns"], values)) for values in series["values"]]
    return rows


def snmpget(args: list[str], target: str, oid: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = ["snmpget", *args, "-r", "1", "-t", "2", "-On", "-Oqv", target, oid]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)


def port_is_free(port: int, kind: str) -> bool:
    """Whether a new server could bind the port (with SO_REUSEADDR for TCP, as servers do: TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM) as sock:
        if kind == "tcp":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def recorded_value(recording: Path, oid: str) -> str:
    for line in recording.read_text(errors="replace").splitlines():
        if line.startswith(f"{oid}|"):
            return line.split("|", 2)[2]
    raise AssertionError(f"{oid} not in {recording}")


# ---------------------------------------------------------------- influxd


def test_influxd_pings_and_round_trips_a_point_by_influxql(influx_db) -> None:
    server, database = influx_db
    status, _ = http(f"{server.url}/ping")
    assert status == 204
    ts = time.time_ns()
    status, body = http(f"{server.url}/write?db={database}", f"svc_check,host=plo-pc rtt_ms=12.5,up=1i {ts}".encode())
    assert status == 204, body
    rows = influxql(server.url, database, "SELECT rtt_ms, up, host FROM svc_check")
    assert rows == [{"time": rows[0]["time"], "rtt_ms": 12.5, "up": 1, "host": "plo-pc"}]
    assert database in {row["name"] for row in influxql(server.url, database, "SHOW DATABASES")}


def test_influxd_listens_only_where_told(influxd) -> None:
    """HTTP on the chosen port, the RPC port on loopback too and never the default 8088."""
    listening = [
        c.laddr
        for c in psutil.Process(influxd.process.pid).net_connections(kind="tcp")
        if c.status == psutil.CONN_LISTEN
    ]
    assert (influxd.host, influxd.port) in [(a.ip, a.port) for a in listening]
    assert len(listening) == 2, listening
    assert all(a.ip == "127.0.0.1" and a.port != 8088 for a in listening), listening


# ---------------------------------------------------------------- snmpd


def test_snmpd_answers_v2c(snmpd) -> None:
    target = f"{snmpd.host}:{snmpd.port}"
    result = snmpget(["-v2c", "-c", snmpd.community], target, "1.3.6.1.2.1.1.5.0", snmpd.net_snmp_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().strip('"') == snmpd.sys_name
    wrong = snmpget(["-v2c", "-c", "not-the-community"], target, "1.3.6.1.2.1.1.5.0", snmpd.net_snmp_env())
    assert wrong.returncode != 0 and "Timeout" in wrong.stderr


def test_snmpd_answers_v3_for_every_user(snmpd) -> None:
    """authPriv with SHA + AES is the case the collector needs; the others prove the config lines."""
    assert ("SHA", "AES") in [(u.auth_protocol, u.priv_protocol) for u in snmpd.v3_users]
    for user in snmpd.v3_users:
        result = snmpget(user.snmpget_args(), f"{snmpd.host}:{snmpd.port}", "1.3.6.1.2.1.1.5.0", snmpd.net_snmp_env())
        assert result.returncode == 0, (user.name, result.stderr)
        assert result.stdout.strip().strip('"') == snmpd.sys_name


def test_snmpd_v3_rejects_a_wrong_key_and_a_lower_level(snmpd) -> None:
    target, env = f"{snmpd.host}:{snmpd.port}", snmpd.net_snmp_env()
    good = next(u for u in snmpd.v3_users if u.level == "authPriv")
    wrong_key = SnmpV3User(good.name, good.auth_protocol, "not-the-auth-key", good.priv_protocol, good.priv_key)
    result = snmpget(wrong_key.snmpget_args(), target, "1.3.6.1.2.1.1.5.0", env)
    assert result.returncode != 0 and "Authentication failure" in result.stderr
    # rouser ... priv: the same user without privacy is refused.
    no_priv = SnmpV3User(good.name, good.auth_protocol, good.auth_key)
    result = snmpget(no_priv.snmpget_args(), target, "1.3.6.1.2.1.1.5.0", env)
    assert result.returncode != 0 or "authorizationError" in result.stdout + result.stderr


def test_snmpd_keeps_state_out_of_var_lib_snmp(snmpd) -> None:
    """USM users and engineBoots go to the server's own state dir, not the system's /var/lib/snmp."""
    assert snmpd.state_dir is not None and "usmUser" in (snmpd.state_dir / "snmpd.conf").read_text()
    system_file = Path("/var/lib/snmp/snmpd.conf")
    started = psutil.Process(snmpd.process.pid).create_time()
    assert not system_file.exists() or system_file.stat().st_mtime < started
    conf = (snmpd.process.log_path.parent / "snmpd.conf").read_text()
    assert f"agentAddress udp:{snmpd.host}:{snmpd.port}" in conf


def test_snmpv3_user_is_validated() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        SnmpV3User("u", "SHA", "short")
    with pytest.raises(ValueError, match="auth_protocol must be one of"):
        SnmpV3User("u", "SHA1", "long-enough-key")
    with pytest.raises(ValueError, match="privacy needs authentication"):
        SnmpV3User("u", None, None, "AES", "long-enough-key")
    assert SnmpV3User("u", "SHA", "long-enough-key", "AES", "long-enough-key").level == "authPriv"


# ---------------------------------------------------------------- VictoriaMetrics


def test_victoria_metrics_accepts_v2_write_and_exports_it(victoria_metrics) -> None:
    status, _ = http(f"{victoria_metrics.url}/health")
    assert status == 200
    metric = f"svc_{uuid.uuid4().hex[:8]}"
    ts_ms = time.time_ns() // 1_000_000
    line = f"{metric},site=vannvag rtt_ms=41.5 {ts_ms * 1_000_000}"
    status, body = http(f"{victoria_metrics.url}/api/v2/write?org=o&bucket=b", line.encode())
    assert status == 204, body
    http(f"{victoria_metrics.url}/internal/force_flush")
    params = urllib.parse.urlencode({"match[]": f'{{__name__="{metric}_rtt_ms"}}'})
    deadline = time.monotonic() + 15
    while True:
        _, body = http(f"{victoria_metrics.url}/api/v1/export?{params}")
        series = [json.loads(row) for row in body.decode().splitlines() if row]
        if series or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(series) == 1, body
    assert series[0]["metric"]["site"] == "vannvag"
    assert series[0]["values"] == [41.5] and series[0]["timestamps"] == [ts_ms]


# ---------------------------------------------------------------- snmpsim


def test_snmpsim_serves_the_fortigate_60f_recording(snmpsim, shared_dir: Path) -> None:
    recorded = recorded_value(shared_dir / "snmprec" / "fortigate_60f.snmprec", "1.3.6.1.2.1.1.2.0")
    assert recorded == "1.3.6.1.4.1.12356.101.1.644"
    assert "fortigate_60f" in snmpsim.communities
    env = localservers._net_snmp_env(snmpsim.process.log_path.parent / "snmp-client")
    result = snmpget(["-v2c", "-c", "fortigate_60f"], f"{snmpsim.host}:{snmpsim.port}", "1.3.6.1.2.1.1.2.0", env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f".{recorded}"


# ---------------------------------------------------------------- stopping and failing


def test_stopped_servers_are_gone_and_their_ports_free(tmp_path: Path) -> None:
    influx = start_influxd(tmp_path / "influxd")
    snmp = start_snmpd(tmp_path / "snmpd", v3_users=[SHA_AES])
    try:
        assert not port_is_free(influx.port, "tcp") and not port_is_free(snmp.port, "udp")
    finally:
        influx.stop()
        snmp.stop()
    for server, kind in ((influx, "tcp"), (snmp, "udp")):
        assert not server.process.alive()
        assert not psutil.pid_exists(server.process.pid)
        assert port_is_free(server.port, kind)
        server.stop()  # idempotent


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    proc = ManagedProcess.start("stubborn", [sys.executable, "-c", script], tmp_path / "stubborn.log")
    deadline = time.monotonic() + 10
    while "up" not in proc.log_tail(5) and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    proc.stop(timeout_s=0.5)
    assert not proc.alive() and proc.returncode == -9
    assert time.monotonic() - started < 5


def test_stop_all_stops_what_is_still_running(tmp_path: Path) -> None:
    # In a child interpreter: stop_all() here would also stop this session's shared servers.
    script = f"""
from pathlib import Path
from collector import localservers
proc = localservers.ManagedProcess.start("sleeper", ["sleep", "60"], Path({str(tmp_path / "sleeper.log")!r}))
stopped = localservers.stop_all()
assert stopped == [proc], stopped
assert not proc.alive()
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("name", "package", "start"),
    [
        ("influxd", "influxdb", lambda d: start_influxd(d)),
        ("snmpd", "snmpd", lambda d: start_snmpd(d)),
        ("victoria-metrics", "victoria-metrics", lambda d: start_victoria_metrics(d)),
        ("snmpget", "snmp", lambda d: start_snmpd(d)),
    ],
)
def test_a_missing_binary_names_its_debian_package(monkeypatch, tmp_path: Path, name, package, start) -> None:
    monkeypatch.setitem(BINARIES, name, str(tmp_path / "bin" / name))
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # the session's shared servers
    with pytest.raises(ServiceError) as info:
        start(tmp_path / "work")
    message = str(info.value)
    assert name in message and f"Debian package {package} " in message
    assert not [p for p in psutil.Process().children(recursive=True) if p.pid not in before and p.name() in ("influxd", "snmpd")]


def test_a_missing_snmpsim_names_the_pip_packages(monkeypatch, tmp_path: Path, shared_dir: Path) -> None:
    monkeypatch.setitem(BINARIES, "snmpsim-command-responder", str(tmp_path / "bin" / "snmpsim-command-responder"))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(ServiceError, match=r"snmpsim-command-responder not found.*pip install snmpsim"):
        start_snmpsim(shared_dir / "snmprec", tmp_path / "work")


def test_an_early_exit_reports_command_and_log_tail(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServiceError) as info:
            start_influxd(tmp_path / "influxd", port=port, timeout_s=20)
    message = str(info.value)
    assert message.startswith("influxd exited with status")
    assert "command: " in message and "-config" in message
    assert "address already in use" in message


def test_free_port_gives_bindable_ports() -> None:
    for kind in ("tcp", "udp"):
        assert port_is_free(free_port(kind=kind), kind)
    with pytest.raises(ValueError):
        free_port(kind="sctp")


# ---------------------------------------------------------------- network namespaces


@pytest.fixture
def netns() -> Iterator[str]:
    """A throwaway network namespace with loopback up (needs root and iproute2)."""
    name = f"nvsvc{os.getpid()}x{uuid.uuid4().hex[:4]}"
    add = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if add.returncode != 0:
        pytest.fail(f"ip netns add {name} failed (needs root and iproute2): {add.stderr}", pytrace=False)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_servers_start_inside_a_network_namespace(netns: str, tmp_path: Path) -> None:
    """Default ports inside the namespace; readiness is probed from inside; the root namespace sees nothing."""
    user = SHA_AES
    influx = start_influxd(tmp_path / "influxd", netns=netns)
    snmp = start_snmpd(tmp_path / "snmpd", netns=netns, v3_users=[user], sys_name="in-netns")
    vm = start_victoria_metrics(tmp_path / "vm", netns=netns)
    try:
        assert (influx.port, snmp.port, vm.port) == (8086, 161, 8428)
        inside = subprocess.run(
            ["ip", "netns", "exec", netns, "snmpget", *user.snmpget_args(), "-Oqv", "127.0.0.1:161", "1.3.6.1.2.1.1.5.0"],
            capture_output=True, text=True, env=snmp.net_snmp_env(), timeout=30,
        )
        assert inside.stdout.strip().strip('"') == "in-netns", inside.stderr
        ping = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c",
             "import urllib.request as u; print(u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:8086/ping').status)"],
            capture_output=True, text=True, timeout=30,
        )
        assert ping.stdout.strip() == "204", ping.stderr
    finally:
        for server in (influx, snmp, vm):
            server.stop()
    assert not any(s.process.alive() for s in (influx, snmp, vm))
