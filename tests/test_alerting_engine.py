"""Alert engine scenarios on a fake clock: outages, hysteresis, flapping, maintenance, repeats, routes."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable
from typing import Any

from agent.contract import point_problems
from agent.points import Point
from collector.alerting.config import AlertRule, MaintenanceWindow
from collector.alerting.engine import AlertEngine, Notification
from collector.alerting.silences import SilenceStore
from collector.config import Inventory, parse_inventory

OSLO = zoneinfo.ZoneInfo("Europe/Oslo")
# Monday 30 November 2026, 08:14 in Oslo: the morning of the Vannvåg outage.
MONDAY_0814 = dt.datetime(2026, 11, 30, 8, 14, tzinfo=OSLO).timestamp()
VANNVAG_AGENTS = [f"vannvag-pc{i}" for i in range(1, 8)]


def inventory(routes: list[dict[str, Any]] | None = None) -> Inventory:
    agents = [("radhus-srv", "radhus"), ("radhus-pc", "radhus")] + [(a, "vannvag") for a in VANNVAG_AGENTS]
    data = {
        "site": [
            {"id": "radhus", "name": "Rådhuset", "uplink": "fw-radhus"},
            {"id": "vannvag", "name": "Teknisk utestasjon Vannvåg", "uplink": "sw-vannvag"},
        ],
        "device": [
            {"id": "fw-radhus", "name": "Brannmur rådhus", "site": "radhus", "host": "10.0.0.1",
             "hardware": {"kind": "firewall", "lifetime_years": 7},
             "snmp": {"community": "env:X", "important_interfaces": ["wan1"]}},
            {"id": "sw-vannvag", "name": "Svitsj Vannvåg", "site": "vannvag", "host": "10.9.0.2",
             "hardware": {"kind": "switch", "lifetime_years": 8}},
            {"id": "sw-radhus", "name": "Kjernesvitsj", "site": "radhus", "host": "10.0.0.2",
             "hardware": {"kind": "switch", "lifetime_years": 8}},
        ],
        "agent": [
            {"id": ident, "name": ident.upper(), "site": site, "token_sha256": f"{i:064x}"}
            for i, (ident, site) in enumerate(agents, start=1)
        ],
        "channel": [
            {"id": "vakt-epost", "kind": "email", "to": ["vakt@example.org"], "smtp_host": "127.0.0.1"},
            {"id": "vakt-webhook", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
        ],
        "route": routes if routes is not None else [{"channels": ["vakt-epost"]}],
    }
    return parse_inventory(data)


def agent_up(host: str, site: str, up: bool, t: float) -> Point:
    return Point("availability", {"site": site, "host": host, "kind": "agent"}, {"up": float(up), "silent_s": 0.0}, int(t * 1e9))


def device_up(device: str, site: str, up: bool, t: float) -> Point:
    return Point("availability", {"site": site, "device": device, "kind": "device"}, {"up": float(up)}, int(t * 1e9))


def host_point(host: str, site: str, t: float, **fields: float) -> Point:
    return Point("host", {"site": site, "host": host}, fields, int(t * 1e9))


class FakeClock:
    """Steps the engine as the collector would: observe what arrived, then evaluate."""

    def __init__(self, engine: AlertEngine, start: float) -> None:
        self.engine = engine
        self.now = start
        self.sent: list[Notification] = []
        self.points: list[Point] = []

    def run(self, seconds: float, feed: Callable[[float], list[Point]], step: float = 5.0) -> list[Notification]:
        new: list[Notification] = []
        end = self.now + seconds
        while self.now < end:
            self.now += step
            self.engine.observe(feed(self.now))
            new += self.engine.evaluate(self.now)
            taken = self.engine.take_points()
            for point in taken:
                assert point_problems(point.measurement, point.tags, point.fields, "collector") == []  # alert points fit the contract
            self.points += taken
        self.sent += new
        return new


def events(notifications: list[Notification]) -> list[tuple[str, str, str]]:
    return [(e.event, e.rule, e.subject) for n in notifications for e in n.events]


SILENT = AlertRule(id="agent-silent", kind="agent_silent", severity="critical")
DEVICE_DOWN = AlertRule(id="device-down", kind="device_down", severity="critical")


def test_site_outage_gives_one_message_each_way() -> None:
    engine = AlertEngine(inventory(), [SILENT, DEVICE_DOWN])
    clock = FakeClock(engine, MONDAY_0814 - 300)
    state = {"uplink": True, "agents": True}

    def feed(now: float) -> list[Point]:
        # The collector writes agent availability every 5 s and polls SNMP every 60 s.
        points = [agent_up(a, "vannvag", state["agents"], now) for a in VANNVAG_AGENTS]
        points += [agent_up("radhus-srv", "radhus", True, now)]
        if int(now) % 60 == 0:
            points += [device_up("sw-vannvag", "vannvag", state["uplink"], now), device_up("fw-radhus", "radhus", True, now)]
        return points

    assert clock.run(295, feed) == []
    # 08:14: the radio link drops; the SNMP poll at 08:14:00 sees it; agents turn silent 90 s later.
    state["uplink"] = False
    during = clock.run(90, feed)
    state["agents"] = False
    during += clock.run(1800, feed)
    assert len(during) == 1, events(during)
    message = during[0]
    assert message.channel == "vakt-epost"
    assert message.title == "[AKTIV] Teknisk utestasjon Vannvåg utilgjengelig siden 08:14 CET, 7 maskiner bak den"
    assert "VANNVAG-PC1" in message.body and "VANNVAG-PC7" in message.body
    assert "Opplink nede: Svitsj Vannvåg" in message.body  # what went down, not only what it hides
    assert [e.event for e in message.events] == ["firing"]

    # What `nettvakt alerts` would list: the site alert, and what it folds, marked as such.
    listed = {(a["rule"], a["subject"]): a["muted"] for a in engine.firing(clock.now)}
    assert listed[("site-unreachable", "vannvag")] is None
    assert listed[("device-down", "sw-vannvag")] == "site"
    assert sum(1 for rule, _ in listed if rule == "agent-silent") == 7 and set(listed.values()) == {None, "site"}

    # Link back: the switch answers first, agents report within their next round.
    state["uplink"] = True
    after = clock.run(60, feed)
    state["agents"] = True
    after += clock.run(1800, feed)
    assert len(after) == 1, events(after)
    assert after[0].title == "[LØST] Teknisk utestasjon Vannvåg er tilgjengelig igjen"

    site_points = [p for p in clock.points if p.tags["rule"] == "site-unreachable"]
    assert [(p.tags["state"], p.fields["active"], p.fields["affected"]) for p in site_points] == [
        ("firing", 1.0, 7.0),
        ("resolved", 0.0, 7.0),
    ]
    assert site_points[0].tags == {"site": "vannvag", "rule": "site-unreachable", "severity": "critical", "state": "firing", "subject": "vannvag"}


def test_whole_site_silent_without_uplink_data_folds_too() -> None:
    # No SNMP on the uplink at all: every machine at the site going silent is the site alert.
    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814)
    up = {"v": True}
    clock.run(60, lambda now: [agent_up(a, "vannvag", up["v"], now) for a in VANNVAG_AGENTS])
    up["v"] = False
    down = clock.run(600, lambda now: [agent_up(a, "vannvag", up["v"], now) for a in VANNVAG_AGENTS])
    assert [e[0:2] for e in events(down)] == [("firing", "site-unreachable")]


def agents_cut_at(cut: float, last_report: dict[str, float], now: float, interval: float = 30.0) -> list[Point]:
    """What the collector writes every 5 s for agents that report every `interval` and stop at `cut`."""
    points = []
    for agent, offset in last_report.items():
        # Each agent's newest data: its last report round before `now` (and before the cut).
        newest = min(now, cut) - ((min(now, cut) - offset) % interval)
        silent = now - newest
        points.append(Point("availability", {"site": "vannvag", "host": agent, "kind": "agent"},
                            {"up": float(silent < 3 * interval), "silent_s": silent}, int(now * 1e9)))
    return points


def test_machines_judged_silent_an_interval_apart_fold_into_one_site_alert_without_waiting() -> None:
    # No uplink data and no for_s: the link is cut; the agents (reporting every 30 s at different
    # phases) are judged silent one by one over 30 s. The first one down, with every other one
    # having missed a report, is already the site: one message, and no machine's own alert first.
    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814)
    phases = {a: 4.0 * i for i, a in enumerate(VANNVAG_AGENTS)}
    cut = MONDAY_0814 + 600
    sent = clock.run(1800, lambda now: agents_cut_at(cut, phases, now), step=5.0)
    assert events(sent) == [("firing", "site-unreachable", "vannvag")], events(sent)
    site_fired = next(p for p in clock.points if p.tags["rule"] == "site-unreachable" and p.tags["state"] == "firing")
    # Within the first machine's silence verdict (3 intervals) plus one 5 s step and the group wait.
    assert site_fired.time_ns / 1e9 - cut <= 3 * 30 + 5 + 10


def test_a_reporting_machine_a_little_late_does_not_make_the_site_down() -> None:
    # Coming back after an outage (or on a busy line) a machine whose heartbeat comes a few
    # seconds past its 10 s is alive: the others still silent are their own alerts, not the site's.
    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814)

    def feed(now: float) -> list[Point]:
        points = [device_up("sw-vannvag", "vannvag", True, now)]
        for agent in VANNVAG_AGENTS:
            up, silent = (True, 18.0) if agent == "vannvag-pc1" else (False, 200.0)
            points.append(Point("availability", {"site": "vannvag", "host": agent, "kind": "agent"},
                                {"up": float(up), "silent_s": silent}, int(now * 1e9)))
        return points

    sent = clock.run(300, feed)
    assert not [e for e in events(sent) if e[1] == "site-unreachable"], events(sent)
    assert sorted(e[2] for e in events(sent)) == VANNVAG_AGENTS[1:]


def test_one_silent_agent_among_reporting_ones_is_its_own_alert_at_once() -> None:
    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814)
    phases = {a: 4.0 * i for i, a in enumerate(VANNVAG_AGENTS)}
    stopped = MONDAY_0814 + 600

    def feed(now: float) -> list[Point]:
        points = agents_cut_at(stopped, {"vannvag-pc3": phases["vannvag-pc3"]}, now)
        return points + agents_cut_at(now + 1e9, {a: o for a, o in phases.items() if a != "vannvag-pc3"}, now)

    sent = clock.run(1800, feed)
    assert events(sent) == [("firing", "agent-silent", "vannvag-pc3")]


def test_a_target_lost_by_every_agent_is_one_message_with_a_rule_group_wait() -> None:
    # The internet goes at 08:24; seven agents probe it every 30 s at different phases, so they
    # find it lost over 30 s. A rule-level group wait of one probe interval makes that one message.
    def feed(now: float) -> list[Point]:
        points = []
        for i, agent in enumerate(VANNVAG_AGENTS):
            if int(now - 4 * i) % 30 < 5:  # this agent's probe round
                up = now < MONDAY_0814 + 600
                points.append(Point("probe", {"site": "vannvag", "host": agent, "target": "internett", "kind": "icmp"},
                                    {"up": float(up)}, int(now * 1e9)))
        return points

    counts = {}
    for group_wait in (None, 35.0):
        rule = AlertRule(id="target", kind="target_unreachable", group_wait_s=group_wait)
        engine = AlertEngine(inventory(), [rule])
        clock = FakeClock(engine, MONDAY_0814)
        sent = clock.run(900, feed)
        counts[group_wait] = len(sent)
        assert sorted(e[2] for e in events(sent)) == sorted(f"internett@{a}" for a in VANNVAG_AGENTS)
    assert counts == {None: 2, 35.0: 1}  # the default 10 s wait splits it
    assert sent[0].title == "[nettvakt] 7 varsler: 7 aktive, 0 løst"


def test_one_silent_agent_is_its_own_alert() -> None:
    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814)

    def feed(now: float) -> list[Point]:
        return [agent_up(a, "vannvag", a != "vannvag-pc3", now) for a in VANNVAG_AGENTS]

    sent = clock.run(300, feed)
    assert events(sent) == [("firing", "agent-silent", "vannvag-pc3")]
    assert sent[0].title == "[AKTIV] VANNVAG-PC3 har ikke rapportert"


def test_hysteresis_at_the_line_does_not_flap() -> None:
    cpu = AlertRule(id="cpu", kind="host_cpu", threshold=90, clear=80, for_s=60)
    engine = AlertEngine(inventory(), [cpu])
    clock = FakeClock(engine, MONDAY_0814)
    busy = clock.run(120, lambda now: [host_point("radhus-srv", "radhus", now, cpu_pct=97.0)])
    assert events(busy) == [("firing", "cpu", "radhus-srv")]
    # Then it hovers at the line for an hour: between threshold and clear it stays firing, quietly.
    values = iter([89.0, 91.0, 89.5, 90.5, 80.5] * 1000)
    assert clock.run(3600, lambda now: [host_point("radhus-srv", "radhus", now, cpu_pct=next(values))]) == []
    calm = clock.run(600, lambda now: [host_point("radhus-srv", "radhus", now, cpu_pct=70.0)])
    assert events(calm) == [("resolved", "cpu", "radhus-srv")]
    states = [p.tags["state"] for p in clock.points]
    assert states == ["pending", "firing", "resolved"]


def test_for_duration_ignores_short_spikes_and_hovering() -> None:
    cpu = AlertRule(id="cpu", kind="host_cpu", threshold=90, clear=80, for_s=120)
    engine = AlertEngine(inventory(), [cpu])
    clock = FakeClock(engine, MONDAY_0814)
    values = iter(([99.0] * 12 + [50.0] * 12) * 20)  # 60 s high, 60 s low
    assert clock.run(2400, lambda now: [host_point("radhus-srv", "radhus", now, cpu_pct=next(values))]) == []
    # Hovering just around the threshold before it ever fired: pending starts and ends, nothing is sent.
    values = iter([89.0, 91.0, 89.5, 90.5] * 1000)
    assert clock.run(3600, lambda now: [host_point("radhus-srv", "radhus", now, cpu_pct=next(values))]) == []


def test_flapping_is_said_once_then_settles() -> None:
    rule = AlertRule(id="device-down", kind="device_down", flap_changes=4, flap_window_s=600)
    engine = AlertEngine(inventory(), [rule])
    clock = FakeClock(engine, MONDAY_0814)
    # sw-radhus is not an uplink: its flapping is its own alert.
    flapping = clock.run(1200, lambda now: [device_up("sw-radhus", "radhus", int(now // 60) % 2 == 1, now)])
    kinds = [e[0] for e in events(flapping)]
    # The fourth change in ten minutes is said as "flapping", once; nothing more while it flaps.
    assert kinds == ["firing", "resolved", "firing", "flapping"]
    settled = clock.run(1200, lambda now: [device_up("sw-radhus", "radhus", True, now)])
    assert [e[0] for e in events(settled)] == ["resolved"]
    assert settled[0].title == "[LØST] Kjernesvitsj svarer ikke på SNMP"


def test_weekly_maintenance_window_suppresses() -> None:
    window = MaintenanceWindow(id="patch-sunday", weekdays=["sun"], start_time=dt.time(2), end_time=dt.time(6), sites=["radhus"])
    engine = AlertEngine(inventory(), [DEVICE_DOWN], [window])
    sunday_0300 = dt.datetime(2026, 11, 29, 3, 0, tzinfo=OSLO).timestamp()
    clock = FakeClock(engine, sunday_0300)
    up = {"v": False}
    feed = lambda now: [device_up("sw-radhus", "radhus", up["v"], now)]  # noqa: E731
    assert clock.run(3600, feed) == []  # rebooted for patches at 03:00, back at 04:00: nobody woken
    up["v"] = True
    assert clock.run(3600, feed) == []
    # Still down when the window closes at 06:00: then it is news.
    clock.now = dt.datetime(2026, 11, 29, 5, 30, tzinfo=OSLO).timestamp()
    up["v"] = False
    assert clock.run(1790, feed) == []
    after = clock.run(60, feed)
    assert events(after) == [("firing", "device-down", "sw-radhus")]
    # The alert points are written all the same (history, annotations).
    assert [p.tags["state"] for p in clock.points] == ["firing", "resolved", "firing"]


def test_one_off_window_and_other_sites_unaffected() -> None:
    window = MaintenanceWindow(
        id="bytte-svitsj", start=dt.datetime(2026, 11, 30, 8, 0), end=dt.datetime(2026, 11, 30, 9, 0), sites=["radhus"]
    )
    engine = AlertEngine(inventory(), [SILENT], [window])
    clock = FakeClock(engine, MONDAY_0814)
    feed = lambda now: [agent_up("radhus-srv", "radhus", False, now), agent_up("vannvag-pc1", "vannvag", False, now)]  # noqa: E731
    assert events(clock.run(300, feed)) == [("firing", "agent-silent", "vannvag-pc1")]


def test_repeat_interval_while_still_firing() -> None:
    disk = AlertRule(id="disk", kind="host_disk", threshold=90, clear=85)
    engine = AlertEngine(inventory([{"channels": ["vakt-epost"], "repeat_interval_s": 3600}]), [disk])
    clock = FakeClock(engine, MONDAY_0814)
    full = lambda now: [Point("host_disk", {"site": "radhus", "host": "radhus-srv", "mount": "D:"}, {"used_pct": 97.0}, int(now * 1e9))]  # noqa: E731
    sent = clock.run(3 * 3600 + 60, full, step=10.0)
    assert [e[0] for e in events(sent)] == ["firing", "repeat", "repeat", "repeat"]
    assert sent[1].title == "[FORTSATT AKTIV] radhus-srv:D:: disk 97 % full"


def test_alerts_that_fire_together_are_one_message() -> None:
    disk = AlertRule(id="disk", kind="host_disk", threshold=90, clear=85)
    engine = AlertEngine(inventory(), [disk])
    clock = FakeClock(engine, MONDAY_0814)
    hosts = ["radhus-srv", "radhus-pc"]

    def feed(now: float) -> list[Point]:
        # The second disk fills 5 s after the first: inside the 10 s group wait.
        return [
            Point("host_disk", {"site": "radhus", "host": h, "mount": "/"}, {"used_pct": 95.0 if now - MONDAY_0814 > 5 * i else 50.0}, int(now * 1e9))
            for i, h in enumerate(hosts, start=1)
        ]

    sent = clock.run(120, feed)
    assert len(sent) == 1
    assert sent[0].title == "[nettvakt] 2 varsler: 2 aktive, 0 løst"
    assert {e.subject for e in sent[0].events} == {"radhus-srv:/", "radhus-pc:/"}


def test_routes_by_site_severity_and_rule() -> None:
    routes = [
        {"channels": ["vakt-epost"], "sites": ["radhus"], "severities": ["warning"]},
        {"channels": ["vakt-webhook"], "rules": ["vpn_tunnel_down"]},
        {"channels": ["vakt-epost", "vakt-webhook"], "severities": ["critical"]},
    ]
    rules = [
        AlertRule(id="disk", kind="host_disk"),
        AlertRule(id="vpn", kind="vpn_tunnel_down", severity="info"),
        AlertRule(id="wan", kind="interface_down", severity="critical"),
    ]
    engine = AlertEngine(inventory(routes), rules)
    clock = FakeClock(engine, MONDAY_0814)

    def feed(now: float) -> list[Point]:
        t = int(now * 1e9)
        return [
            Point("host_disk", {"site": "radhus", "host": "radhus-srv", "mount": "/"}, {"used_pct": 95.0}, t),
            Point("host_disk", {"site": "vannvag", "host": "vannvag-pc1", "mount": "/"}, {"used_pct": 95.0}, t),
            Point("device", {"site": "radhus", "device": "fw-radhus"}, {"up": 1.0, "vpn_tunnels_up": 3.0, "vpn_tunnels_total": 4.0}, t),
            Point("interface", {"site": "radhus", "device": "fw-radhus", "ifname": "wan1"}, {"oper_up": 0.0, "admin_up": 1.0}, t),
            # Not marked important: never an alert.
            Point("interface", {"site": "radhus", "device": "fw-radhus", "ifname": "port7"}, {"oper_up": 0.0, "admin_up": 1.0}, t),
        ]

    sent = clock.run(60, feed)
    by_channel = {n.channel: sorted(e.rule + ":" + e.subject for e in n.events) for n in sent}
    assert by_channel == {
        "vakt-epost": ["disk:radhus-srv:/", "wan:fw-radhus/wan1"],
        "vakt-webhook": ["vpn:fw-radhus", "wan:fw-radhus/wan1"],
    }
    assert len(sent) == 2  # one grouped message per channel, the critical one not doubled


def test_silence_until_expiry(tmp_path: Any) -> None:
    store = SilenceStore.load(tmp_path / "silences.json")
    engine = AlertEngine(inventory(), [SILENT], silences=store)
    clock = FakeClock(engine, MONDAY_0814)
    store.add(clock.now, clock.now + 1800, subjects=["radhus-srv"], comment="reinstalling", author="ola")
    feed = lambda now: [agent_up("radhus-srv", "radhus", False, now)]  # noqa: E731
    assert clock.run(1790, feed) == []
    assert events(clock.run(30, feed)) == [("firing", "agent-silent", "radhus-srv")]
    assert SilenceStore.load(tmp_path / "silences.json").active(clock.now) == []  # expired ones are dropped


def test_collector_dropping_data_uses_the_increase() -> None:
    engine = AlertEngine(inventory(), [AlertRule(id="dropping", kind="collector_dropping")])
    clock = FakeClock(engine, MONDAY_0814)
    dropped = iter([500.0] * 20 + [500.0 + 10 * i for i in range(1, 200)])
    feed = lambda now: [Point("collector", {"collector": "main"}, {"dropped_points": next(dropped)}, int(now * 1e9))]  # noqa: E731
    # A counter that is high but still does not trip the alert: the drops happened before.
    assert clock.run(95, feed) == []
    sent = clock.run(60, feed)
    assert [e[:2] for e in events(sent)] == [("firing", "dropping")]
    assert sent[0].title == "[AKTIV] innsamleren mister data: 10 punkter forkastet"
    point = clock.points[0]
    point.validate()
    assert point.tags == {"rule": "dropping", "severity": "warning", "state": "firing", "subject": "main"}  # no site: the collector's own


def test_collector_backlog_fires_when_writes_stall_and_clears_below_the_clear_line() -> None:
    engine = AlertEngine(inventory(), [AlertRule(id="backlog", kind="collector_backlog", for_s=60)])
    clock = FakeClock(engine, MONDAY_0814)
    age = {"s": 0.0}

    def feed(now: float) -> list[Point]:
        return [Point("collector", {"collector": "main"}, {"queue_age_s": age["s"]}, int(now * 1e9))]

    age["s"] = 650.0  # InfluxDB has refused writes for 11 minutes
    assert clock.run(30, feed) == []  # pending: for_s not over
    sent = clock.run(60, feed)
    assert sent[0].title == "[AKTIV] innsamleren får ikke skrevet til InfluxDB: eldste data venter i 650 s"
    age["s"] = 300.0  # draining, still above the clear line: no flapping "resolved"
    assert clock.run(60, feed) == []
    age["s"] = 5.0
    assert [e[:2] for e in events(clock.run(30, feed))] == [("resolved", "backlog")]


def test_english_messages() -> None:
    engine = AlertEngine(inventory(), [SILENT, DEVICE_DOWN], language="en")
    clock = FakeClock(engine, MONDAY_0814 - 5)
    sent = clock.run(60, lambda now: [device_up("sw-vannvag", "vannvag", False, now)])
    assert sent[0].title == "[FIRING] Teknisk utestasjon Vannvåg unreachable since 08:14 CET, 7 machines behind it"


def test_restart_keeps_state_no_storm_no_lost_resolved() -> None:
    import json

    rules = [SILENT, DEVICE_DOWN]
    first = AlertEngine(inventory(), rules)
    clock = FakeClock(first, MONDAY_0814 - 5)
    down = {"site": True, "pc": True}

    def feed(now: float) -> list[Point]:
        return [device_up("sw-vannvag", "vannvag", not down["site"], now),
                agent_up("radhus-pc", "radhus", not down["pc"], now), agent_up("radhus-srv", "radhus", True, now)]

    before = clock.run(120, feed)
    assert sorted(e[:2] for e in events(before)) == [("firing", "agent-silent"), ("firing", "site-unreachable")]

    # The collector restarts (state through JSON, as on disk); the outage goes on, then ends.
    second = AlertEngine(inventory(), rules)
    # site alert, the uplink's own (folded) device alert, the silent pc
    assert second.restore(json.loads(json.dumps(first.snapshot())), clock.now + 30) == 3
    clock = FakeClock(second, clock.now + 30)
    # The first seconds after start, before any machine or poll is heard of: unknown is not "back".
    assert clock.run(20, lambda now: []) == []
    assert clock.run(600, feed) == []  # no second "firing" for what people already know
    down["site"] = down["pc"] = False
    after = clock.run(600, feed)
    assert sorted(e[:2] for e in events(after)) == [("resolved", "agent-silent"), ("resolved", "site-unreachable")]
    assert sorted((p.tags["rule"], p.tags["state"]) for p in clock.points) == [
        ("agent-silent", "resolved"), ("device-down", "resolved"), ("site-unreachable", "resolved"),
    ]


def test_restored_alert_of_a_subject_gone_quiet_ends_in_history_only() -> None:
    first = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(first, MONDAY_0814)
    clock.run(30, lambda now: [agent_up("radhus-pc", "radhus", False, now)])
    second = AlertEngine(inventory(), [SILENT], stale_s=300)
    second.restore(first.snapshot(), clock.now)
    clock = FakeClock(second, clock.now)
    # Nothing heard of radhus-pc for stale_s: no "resolved" on no evidence, but history says it ended.
    assert clock.run(600, lambda now: []) == []
    assert [(p.tags["rule"], p.tags["state"]) for p in clock.points] == [("agent-silent", "resolved")]
    assert second.firing(clock.now) == []


def test_stale_metrics_end_quietly() -> None:
    disk = AlertRule(id="disk", kind="host_disk")
    engine = AlertEngine(inventory(), [disk], stale_s=300)
    clock = FakeClock(engine, MONDAY_0814)
    full = lambda now: [Point("host_disk", {"site": "radhus", "host": "radhus-pc", "mount": "C:"}, {"used_pct": 99.0}, int(now * 1e9))]  # noqa: E731
    assert len(clock.run(30, full)) == 1
    assert clock.run(900, lambda now: []) == []  # the pc went quiet; its disk is not "resolved"
    assert len(clock.run(30, full)) == 1  # heard of again and still full: said again


def test_state_file_survives_service_restart_and_bad_files(tmp_path: Any) -> None:
    import asyncio

    from collector.alerting.service import AlertService

    async def run_once(now: float) -> list[Notification]:
        service = AlertService(AlertEngine(inventory(), [SILENT], group_wait_s=0), {})
        service.load_state(tmp_path / "alerts.json")
        service.observe([agent_up("radhus-pc", "radhus", False, now)])
        sent = await service.tick(now)
        await service.close()
        return sent

    assert len(asyncio.run(run_once(MONDAY_0814))) == 1
    assert asyncio.run(run_once(MONDAY_0814 + 60)) == []  # the second run knew it had been said
    (tmp_path / "alerts.json").write_text("{broken", encoding="utf-8")
    assert len(asyncio.run(run_once(MONDAY_0814 + 120))) == 1  # logged, started clean, no crash


def test_fired_and_resolved_within_group_wait_says_nothing() -> None:
    engine = AlertEngine(inventory(), [DEVICE_DOWN], group_wait_s=30)
    clock = FakeClock(engine, MONDAY_0814)
    blip = lambda now: [device_up("sw-radhus", "radhus", now - MONDAY_0814 > 10, now)]  # noqa: E731
    assert clock.run(300, blip) == []
    assert [p.tags["state"] for p in clock.points] == ["firing", "resolved"]  # history still has the blip


def test_odd_points_and_a_failing_template_never_crash() -> None:
    # "{value:d}" passes the static check (known variable) but fails on a float at run time.
    rule = AlertRule(id="cpu", kind="host_cpu", summary="{subject}: {value:d}")
    engine = AlertEngine(inventory(), [rule, SILENT])
    clock = FakeClock(engine, MONDAY_0814)
    odd = lambda now: [  # noqa: E731
        Point("host", {"site": "radhus"}, {"cpu_pct": 99.0}, int(now * 1e9)),  # no host tag
        Point("host", {"site": "radhus", "host": "radhus-srv"}, {"cpu_pct": "high"}, int(now * 1e9)),
        Point("availability", {"site": "radhus", "kind": "agent"}, {"up": 0.0}, int(now * 1e9)),
        Point("availability", {"site": "radhus", "host": "radhus-pc", "kind": "agent"}, {"up": True}, int(now * 1e9)),
        Point("host", {"site": "radhus", "host": "radhus-pc"}, {"cpu_pct": 99.0}, int(now * 1e9)),
    ]
    sent = clock.run(60, odd)
    assert [n.title for n in sent] == ["[AKTIV] cpu: RADHUS-PC"]  # the fallback text, logged


def test_probe_latency_alerts_for_every_probe_kind_on_its_own_latency() -> None:
    """Latency is defined once per kind (agent/contract.py): round trip for icmp, the handshake for
    tcp, the first byte for http, the answer for dns. Traceroute hop points never speak for the target."""
    slow = AlertRule(id="slow", kind="probe_latency", severity="warning", threshold=100, clear=50)
    engine = AlertEngine(inventory(), [slow])
    clock = FakeClock(engine, MONDAY_0814)
    fields = {"icmp": "rtt_ms", "tcp": "connect_ms", "http": "ttfb_ms", "dns": "resolve_ms"}

    def feed(now: float) -> list[Point]:
        points = [
            Point("probe", {"site": "radhus", "host": "radhus-srv", "kind": kind, "target": f"t-{kind}"},
                  {"up": 1.0, name: 250.0, "duration_ms": 5.0}, int(now * 1e9))
            for kind, name in fields.items()
        ]
        # A slow hop on the way, with a fast round to the target: no alert for the target.
        points.append(Point("probe", {"site": "radhus", "host": "radhus-srv", "kind": "traceroute", "target": "t-trace", "hop": "03"},
                            {"rtt_ms": 900.0, "loss_pct": 0.0}, int(now * 1e9)))
        points.append(Point("probe", {"site": "radhus", "host": "radhus-srv", "kind": "traceroute", "target": "t-trace"},
                            {"up": 1.0, "rtt_ms": 20.0, "hops": 5.0}, int(now * 1e9)))
        return points

    clock.run(60, feed)
    fired = {subject for event, rule, subject in events(clock.sent) if event == "firing"}
    assert fired == {f"t-{kind}@radhus-srv" for kind in fields}


def test_agents_never_heard_from_are_waiting_not_down_and_warned_about_after_the_grace() -> None:
    """Machines in the inventory that never reported (not installed yet, a wrong token) are no
    outage: no agent-silent and no site alert; after the rule's grace, one warning each."""
    never = AlertRule(id="never", kind="agent_never_reported", severity="warning", threshold=3600)
    site_down = AlertRule(id="site-down", kind="site_unreachable", severity="critical")
    engine = AlertEngine(inventory(), [SILENT, DEVICE_DOWN, never, site_down])
    clock = FakeClock(engine, MONDAY_0814)
    started = clock.now

    def feed(now: float) -> list[Point]:
        waiting = [Point("availability", {"site": "vannvag", "host": a, "kind": "agent"},
                         {"waiting_s": now - started, "expected_s": 10.0}, int(now * 1e9)) for a in VANNVAG_AGENTS]
        return waiting + [device_up("sw-vannvag", "vannvag", True, now), agent_up("radhus-srv", "radhus", True, now)]

    assert clock.run(3500, feed, step=60) == []  # an hour of waiting: nobody paged
    sent = clock.run(300, feed, step=60)
    assert sorted(events(sent)) == sorted(("firing", "never", a) for a in VANNVAG_AGENTS)
    assert all(e.severity == "warning" for n in sent for e in n.events)
    assert "har aldri rapportert" in sent[0].body or "har aldri rapportert" in sent[0].title


def test_an_acknowledged_alert_is_not_repeated_but_still_resolves(tmp_path) -> None:
    from collector.alerting.acks import Ack, AckStore

    acks = AckStore(tmp_path / "acks.json")
    engine = AlertEngine(inventory([{"channels": ["vakt-epost"], "repeat_interval_s": 600}]), [DEVICE_DOWN], acks=acks)
    clock = FakeClock(engine, MONDAY_0814)
    down = {"sw": True}

    def feed(now: float) -> list[Point]:
        return [device_up("sw-radhus", "radhus", not down["sw"], now)]

    clock.run(60, feed)
    assert [e[:2] for e in events(clock.sent)] == [("firing", "device-down")]
    (firing,) = engine.firing(clock.now)
    assert clock.run(700, feed) and events(clock.sent)[-1][0] == "repeat"  # nobody on it: repeated
    acks.add(Ack("device-down", "sw-radhus", firing["since"], "ola", clock.now, "bytter strømforsyning"))
    assert engine.firing(clock.now)[0]["acked_by"] == "ola"
    assert clock.run(3600, feed) == []  # someone on it: no repeats for an hour
    down["sw"] = False
    assert [e[:2] for e in events(clock.run(60, feed))] == [("resolved", "device-down")]
    assert acks.get("device-down", "sw-radhus", firing["since"]) is None  # the ack ended with its episode
    down["sw"] = True
    clock.run(60, feed)
    assert "acked_by" not in engine.firing(clock.now)[0]  # a new episode: nobody on it yet
