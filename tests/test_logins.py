"""Login sessions: psutil's shapes on Linux and Windows, the tracker across looks and restarts,
names stored plain or hashed, shared accounts, the settings the agents get, and the report's model.

The sessions here are psutil's answers written down (tests/testdata/logins/psutil_users.json
names the source of each); real sessions on this machine are in tests/test_logins_real.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import namedtuple
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.contract import point_problems
from agent.logins import START_POINT_MAX_AGE_S, LoginTracker, sessions_of
from agent.points import Point
from agent.runner import AgentConfigError, RemoteConfig
from collector.app import create_app
from collector.appkeys import QUEUE
from collector.ingest import TimeWindow, agent_point
from collector.logins import HASH_PREFIX, UserNames, hashed_user, shared_login_event
from collector.reports.logins import build_logins_report, logins_document
from collector.reports.render import render_text
from collector.service import CollectorService
from collector.timeseries import Sample
from inventories import InventoryBuilder
from serving import serving

RECORDED = json.loads((Path(__file__).parent / "testdata" / "logins" / "psutil_users.json").read_text(encoding="utf-8"))
suser = namedtuple("suser", "name terminal host started pid")  # psutil's own field names
TAGS = {"site": "helse", "host": "srv-helse"}
WINDOW = TimeWindow(max_ahead_s=300, max_age_s=90 * 86400)


def recorded(platform: str) -> list[tuple[Any, dict[str, Any]]]:
    return [(suser(*u["suser"]), u) for u in RECORDED[platform]["users"]]


def passes_ingest(points: list[Point], now_ns: int) -> None:
    for i, point in enumerate(points):
        assert point_problems(point.measurement, point.tags, point.fields, "agent") == [], point
        agent_point(point.to_json(), i, "srv-helse", "helse", now_ns, WINDOW)


@pytest.mark.parametrize("platform", ["linux", "windows"])
def test_each_recorded_shape_is_a_session_of_the_right_kind_and_its_points_pass_ingest(platform: str, tmp_path: Path) -> None:
    entries = recorded(platform)
    sessions = sessions_of(e for e, _ in entries)
    assert [(s.kind, s.from_host, s.terminal) for s in sessions] == [(u["kind"], u["from_host"], u["terminal"]) for _, u in entries]
    now_ns = int(max(e.started for e, _ in entries) * 1e9) + 60 * 10**9
    points = LoginTracker(tmp_path / "logins.json", lambda: [e for e, _ in entries]).look(TAGS, now_ns)
    assert [p.tags["event"] for p in points] == ["start"] * len(entries)
    assert [p.fields["start_time_s"] for p in points] == [e.started for e, _ in entries]
    # A start point sits at the login, unless the login is too old for the collector's age limit (psutil's 2012 example).
    recent = lambda started: now_ns - int(started * 1e9) <= START_POINT_MAX_AGE_S * 1e9  # noqa: E731
    assert [p.time_ns for p in points] == [int(e.started * 1e9) if recent(e.started) else now_ns for e, _ in entries]
    if platform == "windows":
        assert all("terminal" not in p.tags for p in points)  # Windows names no terminal: no tag, not an empty one
    passes_ingest(points, now_ns)


def test_a_session_starts_when_first_seen_and_ends_when_gone(tmp_path: Path) -> None:
    open_now: list[Any] = []
    tracker = LoginTracker(tmp_path / "logins.json", lambda: list(open_now))
    t0 = time.time_ns()
    assert tracker.look(TAGS, t0) == []
    open_now.append(suser("helse", "pts/0", "10.20.30.41", t0 / 1e9 + 1, 4242))
    [start] = tracker.look(TAGS, t0 + 10 * 10**9)
    assert dict(start.tags) == {**TAGS, "user": "helse", "kind": "remote", "event": "start", "terminal": "pts/0"}
    assert tracker.look(TAGS, t0 + 20 * 10**9) == []  # still open: nothing new
    open_now.clear()
    [end] = tracker.look(TAGS, t0 + 30 * 10**9)
    assert end.tags["event"] == "end" and end.time_ns == t0 + 30 * 10**9
    assert end.fields == {"start_time_s": t0 / 1e9 + 1, "from_host": "10.20.30.41", "end_time_s": (t0 + 30 * 10**9) / 1e9,
                          "duration_s": pytest.approx(29.0), "end_unseen": 0.0}
    passes_ingest([start, end], t0 + 30 * 10**9)


def test_a_restarted_agent_reports_only_what_changed_while_it_was_stopped(tmp_path: Path) -> None:
    state = tmp_path / "spool.logins.json"
    t0 = time.time_ns()
    stays = suser("helse", "tty1", "", t0 / 1e9 - 3600, 812)
    goes = suser("admin", "pts/1", "10.20.30.41", t0 / 1e9 - 600, 999)
    first = LoginTracker(state, lambda: [stays, goes])
    assert len(first.look(TAGS, t0)) == 2
    first.save(force=True)
    # Stopped; meanwhile `goes` logged out and `comes` logged in.
    comes = suser("kari", "pts/2", "10.20.30.42", t0 / 1e9 + 60, 1001)
    second = LoginTracker(state, lambda: [stays, comes])
    points = second.look(TAGS, t0 + 120 * 10**9)
    assert [(p.tags["user"], p.tags["event"]) for p in points] == [("kari", "start"), ("admin", "end")]
    end = points[1]
    assert end.fields["end_unseen"] == 1.0 and end.time_ns == t0  # the last time the stopped agent saw it
    assert end.fields["duration_s"] == pytest.approx(600.0)
    second.save()
    # A third start with nothing changed: nothing to say.
    assert LoginTracker(state, lambda: [stays, comes]).look(TAGS, t0 + 180 * 10**9) == []


def test_without_readable_state_the_open_sessions_are_reported_with_their_real_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "spool.logins.json"
    state.write_text("{not json", encoding="utf-8")
    t0 = time.time_ns()
    session = suser("helse", "tty1", "", t0 / 1e9 - 7200, 812)
    with caplog.at_level(logging.WARNING, "nettvakt.agent.logins"):
        [start] = LoginTracker(state, lambda: [session]).look(TAGS, t0)
    assert f"ignoring unreadable state {state}" in caplog.text
    assert start.fields["start_time_s"] == session.started and start.time_ns == int(session.started * 1e9)


def test_an_old_session_is_stored_when_seen_and_an_unknown_start_when_first_seen(tmp_path: Path) -> None:
    t0 = time.time_ns()
    old = suser("helse", "tty1", "", t0 / 1e9 - START_POINT_MAX_AGE_S - 86400, 812)
    never_connected = suser("helse", None, None, 0.0, None)  # Windows: ConnectTime 0
    tracker = LoginTracker(tmp_path / "logins.json", lambda: [old, never_connected])
    first, guessed = tracker.look(TAGS, t0)
    # Stored when seen, so the collector's age limit never refuses it; the field keeps the truth.
    assert first.time_ns == t0 and first.fields["start_time_s"] == old.started
    assert guessed.fields["start_time_s"] == t0 / 1e9
    tracker.save()
    # The guessed start is the same session at the next look and after a restart.
    assert tracker.look(TAGS, t0 + 10**9) == []
    tracker.save(force=True)
    assert LoginTracker(tmp_path / "logins.json", lambda: [old, never_connected]).look(TAGS, t0 + 2 * 10**9) == []
    passes_ingest([first, guessed], t0)


def test_hashed_names_are_stable_per_key_and_shared_accounts_match_by_hash() -> None:
    names = UserNames(b"key-one", {})
    stored = names.stored("Helse")
    assert stored.startswith(HASH_PREFIX) and len(stored) == len(HASH_PREFIX) + 16 and int(stored[2:], 16) >= 0
    assert stored == hashed_user("helse", b"key-one") == hashed_user("HELSE", b"key-one")  # casefolded: Windows names
    assert hashed_user("helse", b"key-two") != stored and hashed_user("admin", b"key-one") != stored
    assert names.matches(stored, "helse") and names.matches(stored, stored) and not names.matches(stored, "admin")
    points = [Point("login", {**TAGS, "user": "Helse", "kind": "console", "event": "start"}, {"start_time_s": 1.0}),
              Point("host", TAGS, {"cpu_pct": 1.0})]
    assert [dict(p.tags) for p in names.stored_points(points)] == [{**TAGS, "user": stored, "kind": "console", "event": "start"}, TAGS]
    plain = UserNames()
    assert plain.stored_points(points) is points and plain.matches("Helse", "helse")


def _inventory(tmp_path: Path, **logins: Any) -> InventoryBuilder:
    built = InventoryBuilder(tmp_path).site("helse", "Helse og omsorg").site("radhus")
    built.agent("srv-helse", site="helse", name="Helseserver").agent("pc-radhus", site="radhus")
    return built.logins(**logins) if logins else built


def test_shared_accounts_are_found_in_either_form_and_named_as_the_inventory_names_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = "a long random secret for the municipality"
    inventory = _inventory(tmp_path, agents=["srv-helse"], user_names="hashed", key="env:NV_LOGIN_KEY",
                           shared_accounts=["Helse", "admin"]).parse()
    monkeypatch.setenv("NV_LOGIN_KEY", key)
    names = UserNames.from_inventory(inventory)
    login = Point("login", {**TAGS, "user": hashed_user("helse", key.encode()), "kind": "remote", "event": "start"},
                  {"start_time_s": 1796529600.0, "from_host": "10.20.30.41"})
    other = Point("login", {**TAGS, "user": hashed_user("kari", key.encode()), "kind": "remote", "event": "start"}, {"start_time_s": 1.0})
    ended = Point("login", {**login.tags, "event": "end"}, {"start_time_s": 1796529600.0, "end_time_s": 1796529700.0})
    assert names.shared_logins([login, other, ended]) == [("Helse", login)]
    event, message = shared_login_event(inventory, "Helse", login)
    assert dict(event.tags) == {"site": "helse", "rule": "shared_account_login", "severity": "info", "state": "event", "subject": "srv-helse"}
    assert message["title"] == "Felles konto Helse logget inn på Helseserver (Helse og omsorg)"
    assert "fjerninnlogging" in message["body"] and "fra 10.20.30.41" in message["body"] and "2026-12-0" in message["body"]
    assert point_problems(event.measurement, event.tags, event.fields, "collector") == []


def test_the_agents_named_get_logins_in_their_configuration_and_the_agent_checks_it(tmp_path: Path) -> None:
    from collector.queue import DurableQueue

    inventory = _inventory(tmp_path, sites=["helse"], interval_s=15).parse()
    service = CollectorService(inventory, DurableQueue(tmp_path / "queue.sqlite3"))
    configs = {a.id: service.agent_config(a) for a in inventory.agent}
    assert configs["srv-helse"]["logins"] == {"interval_s": 15.0} and "logins" not in configs["pc-radhus"]
    assert RemoteConfig.from_json(configs["srv-helse"]).logins_interval_s == 15.0
    assert RemoteConfig.from_json(configs["pc-radhus"]).logins_interval_s is None
    for bad, message in [({"interval_s": 0}, "logins.interval_s: expected a positive number, got 0"),
                         ([15], "logins: expected an object"), ({}, "logins.interval_s: expected a positive number, got None")]:
        with pytest.raises(AgentConfigError, match=message):
            RemoteConfig.from_json({**configs["srv-helse"], "logins": bad})


def test_with_hashed_names_the_collector_queues_no_plain_name(tmp_path: Path) -> None:
    built = _inventory(tmp_path, agents=["srv-helse"], user_names="hashed", shared_accounts=["helse"])
    built.logins(key=built.secret_file("login.key", "the key"))
    inventory = built.parse()
    now_ns = time.time_ns()
    body = {"agent": "srv-helse", "seq": 1, "points": [
        {"measurement": "login", "tags": {"user": "Helse", "kind": "console", "event": "start", "terminal": "tty1"},
         "fields": {"start_time_s": now_ns / 1e9}, "time": now_ns}]}

    async def scenario() -> None:
        app: web.Application = create_app(inventory)
        async with serving(app) as url, aiohttp.ClientSession(url) as http:
            async with http.post("/api/v1/ingest", json=body, headers={"Authorization": f"Bearer {built.tokens['srv-helse']}"}) as resp:
                assert resp.status == 200, await resp.text()
            [queued] = app[QUEUE].peek(10)
            assert queued.points[0].tags["user"] == hashed_user("helse", b"the key")

    asyncio.run(scenario())
    stored = b"".join(p.read_bytes() for p in built.data_dir.rglob("*") if p.is_file())
    assert b"Helse" not in stored and hashed_user("helse", b"the key").encode() in stored


def _sample(event: str, user: str, start_s: float, t_s: float, **fields: Any) -> Sample:
    tags = {**TAGS, "user": user, "kind": "remote", "event": event, "terminal": "pts/0"}
    return Sample(int(t_s * 1e9), tags, {"start_time_s": start_s, "from_host": "10.20.30.41", **fields})


def test_the_report_pairs_starts_and_ends_and_says_who_is_still_logged_in(tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, agents=["srv-helse"], shared_accounts=["helse"]).parse()
    end_s = time.time()
    start_s = end_s - 7 * 86400
    samples = [
        _sample("start", "helse", start_s - 86400, start_s - 86400),  # began before the period, ended in it
        _sample("start", "kari", end_s - 7200, end_s - 7200),
        _sample("end", "helse", start_s - 86400, start_s + 3600, end_time_s=start_s + 3600, end_unseen=1.0),
        _sample("start", "helse", end_s - 600, end_s - 600),  # still logged in
        _sample("start", "kari", start_s - 2 * 86400, start_s - 2 * 86400),
        _sample("end", "kari", start_s - 2 * 86400, start_s - 86400, end_time_s=start_s - 86400),  # over before the period
    ]
    report = build_logins_report(inventory, samples, int(start_s * 1e9), int(end_s * 1e9), UserNames.from_inventory(inventory))
    rows = [(s.user, s.start_s, s.end_s, s.end_unseen, s.shared_account) for s in report.sessions]
    assert rows == [("helse", end_s - 600, None, False, "helse"), ("kari", end_s - 7200, None, False, None),
                    ("helse", start_s - 86400, start_s + 3600, True, "helse")]
    only_kari = build_logins_report(inventory, samples, int(start_s * 1e9), int(end_s * 1e9), UserNames(), user="KARI")
    assert [s.user for s in only_kari.sessions] == ["kari"]
    text = render_text(logins_document(report, "nb"))
    assert "fortsatt pålogget" in text and "etter " in text and "Felles kontoer i bruk (2 økter): helse" in text
    assert "[srv-helse \u2013 Helseserver (Helse og omsorg)]" in text
    assert json.loads(json.dumps(report.to_json()))["sessions"][0]["still_logged_in"] is True
