"""Real login sessions on this machine, end to end: a private OpenSSH sshd on loopback, a real
`ssh -tt` client holding a shell, a real agent process and collector process, a real influxd,
a real SMTP server; then `nettvakt report logins` and the dashboard's logins panel on what was stored.

sshd (UsePAM no) writes the session's utmp entry itself when it allocates a terminal, and
psutil.users() reads utmp; so the session the test opens is what the agent sees, as it would
see anyone's. This machine boots without /run/utmp (no systemd-tmpfiles or init script makes
it in this container), and then sshd records nothing (it logs `syslogin_perform_logout:
logout() returned an error`); the `utmp` fixture creates the file as a normal boot does.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from collector.influxql import query
from collector.localservers import SshdServer, free_port, ssh_keygen, start_sshd, wait_until
from dashboards import check, generate
from inventories import InventoryBuilder
from shell_sessions import ShellSession, ensure_utmp

AGENT = "srv-helse"
TOKEN = "token-of-srv-helse"


@pytest.fixture(scope="module")
def utmp() -> Path:
    return ensure_utmp()


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ssh_keygen(tmp_path_factory.mktemp("client") / "id_ed25519")


@pytest.fixture(scope="module")
def sshd(utmp: Path, client_key: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"), authorized_keys=[client_key.with_suffix(".pub").read_text()])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sessions(sshd: SshdServer, client_key: Path) -> Iterator[Callable[[], ShellSession]]:
    opened: list[ShellSession] = []

    def open_session() -> ShellSession:
        opened.append(ShellSession(sshd, client_key))
        return opened[-1]

    try:
        yield open_session
    finally:
        for session in opened:
            session.close()


def report(inventory: Path, *args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["report", "logins", "--inventory", str(inventory), *args]) == 0
    return out.getvalue()


def test_a_real_ssh_session_is_seen_stored_announced_reported_and_survives_agent_restarts(
    influx_db: tuple[Any, str], nettvakt: Any, sessions: Callable[[], ShellSession], smtp_inbox: Callable[..., Any], tmp_path: Path
) -> None:
    server, database = influx_db
    mail = smtp_inbox()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    inventory = (
        InventoryBuilder(tmp_path)
        .influxdb(server.url, database, flush_interval_s=0.1)
        .alerting(group_wait_s=0)
        .site("helse", "Helse og omsorg")
        .agent(AGENT, TOKEN, site="helse", name="Helseserver", interval_s=1)
        .logins(agents=[AGENT], interval_s=0.5, shared_accounts=["root"])
        .email("it", mail.port, smtp_starttls="never")
        .route("it", rules=["shared_account_login"])
        .write()
    )
    spool = tmp_path / "spool.sqlite3"
    state = spool.with_suffix(".logins.json")
    nettvakt.start(["collector", "run", "--inventory", str(inventory), "--listen", f"127.0.0.1:{port}"], tmp_path / "collector.log")
    wait_until(lambda: nettvakt.health(base), 30, "collector health")

    def start_agent() -> Any:
        return nettvakt.start(["agent", "run", "--collector", base, "--agent-id", AGENT, "--spool", str(spool)],
                              tmp_path / "agent.log", {"NETTVAKT_AGENT_TOKEN": TOKEN})

    def logins(where: str) -> list[dict[str, Any]]:
        return query(server.url, database, f"SELECT * FROM login WHERE host = '{AGENT}' AND {where}")

    def looked_after(t_ns: int) -> Callable[[], bool]:
        """The agent has looked after t_ns, and what that look found is in InfluxDB: a host point
        measured after the state file was seen written went through the spool behind the look's points."""
        written: list[int] = []

        def done() -> bool:
            if not written:
                try:
                    if json.loads(state.read_text())["seen_ns"] <= t_ns:
                        return False
                except (OSError, ValueError):
                    return False
                written.append(time.time_ns())
            return bool(query(server.url, database, f"SELECT cpu_pct FROM host WHERE host = '{AGENT}' AND time > {written[0]}"))

        return done

    agent = start_agent()
    first = sessions()
    started, terminal = first.entry.started, first.entry.terminal
    mine = f"terminal = '{terminal}' AND start_time_s = {started}"
    [start] = wait_until(lambda: logins(f"event = 'start' AND {mine}"), 30, "the session's start point in InfluxDB")
    assert (start["user"], start["kind"], start["from_host"], start["site"]) == ("root", "remote", "127.0.0.1", "helse")
    assert start["time"] == int(started * 1e9)

    # A login to a shared account: one message, one event point.
    message = wait_until(lambda: [m for m in mail.messages if "root" in str(m["Subject"])], 30, "the shared-account mail")[0]
    assert str(message["Subject"]) == "Felles konto root logget inn på Helseserver (Helse og omsorg)"
    assert "fra 127.0.0.1" in message.get_content()
    wait_until(lambda: query(server.url, database, "SELECT summary FROM alert WHERE rule = 'shared_account_login'"), 30, "the event point")

    # The agent restarts while the session is open: no second start.
    nettvakt.stop(agent)
    restarted_ns = time.time_ns()
    agent = start_agent()
    wait_until(looked_after(restarted_ns), 30, "the restarted agent's first look stored")
    assert len(logins(f"event = 'start' AND {mine}")) == 1
    assert logins(f"event = 'end' AND {mine}") == []

    # A second session opened and closed while the agent runs: its end, seen.
    second = sessions()
    second_mine = f"terminal = '{second.entry.terminal}' AND start_time_s = {second.entry.started}"
    wait_until(lambda: logins(f"event = 'start' AND {second_mine}"), 30, "the second session's start point")
    closed_ns = time.time_ns()
    second.close()
    [end] = wait_until(lambda: logins(f"event = 'end' AND {second_mine}"), 30, "the second session's end point")
    assert end["end_unseen"] == 0.0 and end["from_host"] == "127.0.0.1" and end["kind"] == "remote"
    assert closed_ns / 1e9 - 1 <= end["end_time_s"] <= closed_ns / 1e9 + 10
    assert end["duration_s"] == pytest.approx(end["end_time_s"] - second.entry.started)

    # The first session ends while the agent is stopped: the restarted agent ends it, unseen.
    nettvakt.stop(agent)
    last_seen_ns = json.loads(state.read_text())["seen_ns"]
    first.close()
    agent = start_agent()
    [unseen] = wait_until(lambda: logins(f"event = 'end' AND {mine}"), 30, "the first session's end point after the restart")
    assert unseen["end_unseen"] == 1.0 and unseen["time"] == last_seen_ns

    # The report shows both sessions the test opened and closed.
    body = json.loads(report(inventory, "--host", AGENT, "--user", "root", "--since", "1h", "--format", "json"))
    shown = {(s["start"], s["end"] is not None, s["end_unseen"], s["from"], s["kind"], s["shared_account"])
             for s in body["sessions"] if s["start"] in (_iso(started), _iso(second.entry.started))}
    assert shown == {(_iso(started), True, True, "127.0.0.1", "remote", "root"),
                     (_iso(second.entry.started), True, False, "127.0.0.1", "remote", "root")}
    table = report(inventory, "--host", AGENT, "--since", "1h")
    assert "Pålogginger: hvem var logget inn hvor og når" in table and "fjern" in table and "127.0.0.1" in table
    assert f"[{AGENT} \u2013 Helseserver (Helse og omsorg)]" in table

    # The dashboard's logins panel, as Grafana would run it, finds them.
    hosts = generate.hosts().to_json()
    [(where, panel_query)] = [(w, q) for w, q in check.iter_queries(hosts) if "Logins" in w]
    # The collector set the database up: its rp_config rows pick the resolution, as in Grafana.
    span = check.TimeRange.last(3600)
    values = check.resolve_variables(hosts, lambda q: query(server.url, database, q), span.time_filter, span)
    statement = check.substitute(panel_query, {**values, "site": ["helse"], "host": [AGENT]}, span.time_filter, "5s", span)
    rows = query(server.url, database, statement)
    assert {(r["event"], r["from"]) for r in rows} >= {("start", "127.0.0.1"), ("end", "127.0.0.1")}, (where, rows)
    assert any(r["started"] == started * 1000 for r in rows)
    nettvakt.stop(agent)


def _iso(t: float) -> str:
    import datetime as dt
    import zoneinfo

    return dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo("Europe/Oslo")).isoformat(timespec="seconds")
