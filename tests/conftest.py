"""Shared fixtures: real servers on loopback (influxd, snmpd, VictoriaMetrics, snmpsim) and shared/ data.

A missing server binary fails the test with the package to install; it never skips (STYLE.md:
a real peer is the proof, and a skipped proof is no proof).
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest

from collector.localservers import (
    InfluxdServer,
    ServiceError,
    SnmpdServer,
    SnmpsimServer,
    SnmpV3User,
    VictoriaMetricsServer,
    free_port,
    start_influxd,
    start_snmpd,
    start_snmpsim,
    start_victoria_metrics,
    stop_all,
)

REPO = Path(__file__).resolve().parents[1]

# What the snmpd fixture serves. Tests read it from the fixture (snmpd.community, .v3_users,
# .sys_name): `from conftest import` breaks once tests/lab/ has its own conftest.py.
SNMPD_COMMUNITY = "nettvakt-ro"
SNMPD_SYS_NAME = "nettvakt-test-agent"
SNMPD_V3_USERS = (
    SnmpV3User("nv-sha-aes", "SHA", "auth-secret-1", "AES", "priv-secret-1"),
    SnmpV3User("nv-sha512-aes256", "SHA-512", "auth-secret-2", "AES-256", "priv-secret-2"),
    SnmpV3User("nv-authonly", "SHA-256", "auth-secret-3"),
)

T = TypeVar("T")

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback, never via a proxy


def _started(start: Callable[..., T], *args: object, **kwargs: object) -> T:
    """Start a server or fail the test with the ServiceError text (binary, command, log tail)."""
    try:
        return start(*args, **kwargs)
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)


class _Server(Protocol):
    def stop(self) -> object: ...


ServerT = TypeVar("ServerT", bound=_Server)


def _serving(start: Callable[..., ServerT], *args: object, **kwargs: object) -> Iterator[ServerT]:
    """A fixture's server: started (or the test failed with why), handed over, stopped at teardown."""
    server = _started(start, *args, **kwargs)
    try:
        yield server
    finally:
        server.stop()


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under pytest-xdist (scripts/test.sh): a module's tests on one worker (its fixtures made once),
    and every test under tests/lab/ on one worker, one after another: the lab's namespaces have
    fixed names, and its shaped links are timed against this machine's CPU. (xdist's own
    `loadgroup` does not group under pytest 9: it renames node ids the way pytest 8 kept them.)"""
    from xdist.scheduler import LoadScopeScheduling

    class LabTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "tests/lab" if nodeid.startswith("tests/lab/") else super()._split_scope(nodeid)

    return LabTogether(config, log)


@pytest.fixture(scope="session", autouse=True)
def _stop_leftover_servers() -> Iterator[None]:
    """Safety net: at session end stop every server process a test or fixture left running."""
    yield
    leftovers = stop_all()
    if leftovers:
        warnings.warn(f"stopped server processes left running: {leftovers}", stacklevel=1)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The shared/ folder beside the repo (NETTVAKT_SHARED overrides), e.g. shared/snmprec."""
    path = Path(os.environ.get("NETTVAKT_SHARED") or REPO.parent / "shared").resolve()
    if not (path / "snmprec").is_dir():
        pytest.fail(f"shared data not found at {path} (expected {path / 'snmprec'}); set NETTVAKT_SHARED", pytrace=False)
    return path


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxdServer]:
    """One influxd for the session; use influx_db for a database of your own."""
    yield from _serving(start_influxd, tmp_path_factory.mktemp("influxd"))


def _influx_query(url: str, query: str, database: str | None = None) -> dict:
    """POST an InfluxQL statement to influxd's /query and return the decoded JSON."""
    fields = {"q": query}
    if database is not None:
        fields["db"] = database
    request = urllib.request.Request(f"{url}/query", data=urllib.parse.urlencode(fields).encode())
    with _NO_PROXY.open(request, timeout=10) as resp:
        return json.loads(resp.read())


def _fresh_database(influxd: InfluxdServer) -> Iterator[tuple[InfluxdServer, str]]:
    name = f"test_{uuid.uuid4().hex[:12]}"
    _influx_query(influxd.url, f'CREATE DATABASE "{name}"')
    try:
        yield influxd, name
    finally:
        if influxd.process.alive():
            _influx_query(influxd.url, f'DROP DATABASE "{name}"')


@pytest.fixture
def influx_db(influxd: InfluxdServer) -> Iterator[tuple[InfluxdServer, str]]:
    """A fresh, uniquely named database on the session influxd, dropped afterwards."""
    yield from _fresh_database(influxd)


@pytest.fixture
def another_influx_db(influxd: InfluxdServer) -> Iterator[tuple[InfluxdServer, str]]:
    """A second fresh database beside `influx_db`, for a test comparing two on one influxd."""
    yield from _fresh_database(influxd)


@pytest.fixture(scope="module")
def influx_db_module(influxd: InfluxdServer) -> Iterator[tuple[InfluxdServer, str]]:
    """As `influx_db`, for data that a module's tests only read (dropped after the module)."""
    yield from _fresh_database(influxd)


@pytest.fixture(scope="session")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdServer]:
    """A net-snmp agent on loopback: v2c community SNMPD_COMMUNITY and the SNMPD_V3_USERS."""
    yield from _serving(
        start_snmpd,
        tmp_path_factory.mktemp("snmpd"),
        community=SNMPD_COMMUNITY,
        v3_users=SNMPD_V3_USERS,
        sys_name=SNMPD_SYS_NAME,
        sys_location="loopback",
    )


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VictoriaMetricsServer]:
    """One VictoriaMetrics for the session (InfluxDB line protocol on /write and /api/v2/write)."""
    yield from _serving(start_victoria_metrics, tmp_path_factory.mktemp("victoria-metrics"))


@pytest.fixture(scope="session")
def snmpsim(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimServer]:
    """snmpsim serving shared/snmprec: v2c community = recording name, e.g. fortigate_60f."""
    yield from _serving(start_snmpsim, shared_dir / "snmprec", tmp_path_factory.mktemp("snmpsim"))


@pytest.fixture(scope="session")
def project_snmpsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpsimServer]:
    """snmpsim serving tests/testdata/snmprec, the recordings the project wrote itself for device
    families shared/snmprec has none of (its README says which): community = file stem."""
    yield from _serving(start_snmpsim, REPO / "tests" / "testdata" / "snmprec", tmp_path_factory.mktemp("project-snmpsim"))


class NettvaktProcesses:
    """Real `nettvakt` processes (collector, agents) for one test; whatever is still running at
    the end of the test is stopped by the fixture, also when the test fails."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agent.cli", *args],
            cwd=REPO,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM (after SIGCONT: a frozen process cannot act on it), then SIGKILL after 15 s."""
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    @staticmethod
    def health(base_url: str) -> dict:
        with _NO_PROXY.open(f"{base_url}/api/v1/health", timeout=2) as resp:
            return json.load(resp)


def _nettvakt_processes() -> Iterator[NettvaktProcesses]:
    processes = NettvaktProcesses()
    try:
        yield processes
    finally:
        for proc in processes.started:
            processes.stop(proc)


@pytest.fixture
def nettvakt() -> Iterator[NettvaktProcesses]:
    yield from _nettvakt_processes()


@pytest.fixture(scope="module")
def nettvakt_module() -> Iterator[NettvaktProcesses]:
    """As `nettvakt`, for processes that a module's tests share (stopped after the module)."""
    yield from _nettvakt_processes()


class SmtpInbox:
    """A real SMTP server's handler (aiosmtpd) keeping every message it accepts."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.original_content, policy=email.policy.default))  # type: ignore[arg-type]
        return "250 OK"

    @property
    def subjects(self) -> list[str]:
        return [str(m["Subject"]) for m in self.messages]


@pytest.fixture
def smtp_inbox() -> Iterator[Callable[..., SmtpInbox]]:
    """Start SMTP servers on free loopback ports: `inbox = smtp_inbox(**aiosmtpd_controller_options)`.

    Each reply 250 comes after the message is kept, so a sender that returned has delivered.
    All are stopped at teardown, also when the test fails.
    """
    from aiosmtpd.controller import Controller

    controllers: list[Any] = []

    def start(**options: Any) -> SmtpInbox:
        inbox = SmtpInbox()
        inbox.port = free_port()
        controller = Controller(inbox, hostname="127.0.0.1", port=inbox.port, **options)
        controller.start()
        controllers.append(controller)
        return inbox

    try:
        yield start
    finally:
        for controller in controllers:
            controller.stop()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """Where a test keeps what a person may want to look at afterwards (screenshots, pages):
    $NETTVAKT_TEST_ARTIFACTS/<test name> when set (CI keeps that folder), else the test's tmp
    dir. The path is printed, so a failed run says where to look."""
    root = os.environ.get("NETTVAKT_TEST_ARTIFACTS")
    folder = Path(root) / request.node.name if root else tmp_path / "artifacts"
    folder.mkdir(parents=True, exist_ok=True)
    print(f"artifacts of {request.node.nodeid}: {folder}")
    return folder
