"""Alert rules for printers and UPSes on what the pollers write.

Printers: every shared printer recording served by snmpsim, polled by the real DevicePoller, goes
through the alert engine: the konica's service-requested bit pages as `printer_error` in words,
the ricoh's cyan toner at 20 % as `printer_supply_low`, and nothing else fires (a waste box with
all its space left, a level the device gives only as a code, a warning bit). UPS rules read the
`device` fields the UPS profiles write (docs/metrics.md); the recordings themselves are proven in

"""

from __future__ import annotations

import json

import pytest

from agent.points import Point
from collector.alerting.config import AlertRule
from collector.alerting.engine import AlertEngine
from collector.localservers import SnmpsimServer
from recorded_polls import poll_recordings
from test_alerting_engine import MONDAY_0814, FakeClock, events, inventory
from test_snmp_printer import PRINTERS

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

SUPPLY_LOW = AlertRule(id="toner", kind="printer_supply_low", severity="info", threshold=25, clear=30)
PRINTER_ERROR = AlertRule(id="printer", kind="printer_error", severity="warning")
ON_BATTERY = AlertRule(id="on-battery", kind="ups_on_battery", severity="critical")
BATTERY_LOW = AlertRule(id="battery-low", kind="ups_battery_low", severity="critical")
BATTERY_REPLACE = AlertRule(id="battery-replace", kind="ups_battery_replace", severity="info")


@pytest.fixture(scope="module")
def printer_points(snmpsim: SnmpsimServer) -> list[Point]:
    return poll_recordings(snmpsim, {name: name for name in PRINTERS}, "printer")


def _replay(points: list[Point], now: float) -> list[Point]:
    """The polled points again at `now`, as the next polls of unchanged printers would write them."""
    return [Point(p.measurement, p.tags, p.fields, int(now * 1e9)) for p in points]


def test_printer_rules_on_every_printer_recording(printer_points: list[Point]) -> None:
    engine = AlertEngine(inventory(), [SUPPLY_LOW, PRINTER_ERROR])
    clock = FakeClock(engine, MONDAY_0814)
    sent = clock.run(60, lambda now: _replay(printer_points, now))
    assert sorted(events(sent)) == [
        ("firing", "printer", "konica_c250i"),
        ("firing", "toner", "ricoh_mpc3002/Cyan Toner"),
    ]
    lines = sorted(line for n in sent for line in n.body.splitlines() if "konica_c250i" in line or "Cyan" in line)
    assert any(line.endswith("konica_c250i: trenger service") for line in lines), lines
    assert any(line.endswith("ricoh_mpc3002/Cyan Toner: 20 % igjen (grense 25 %)") for line in lines), lines


def test_english_printer_conditions(printer_points: list[Point]) -> None:
    engine = AlertEngine(inventory(), [PRINTER_ERROR], language="en")
    clock = FakeClock(engine, MONDAY_0814)
    (sent,) = clock.run(60, lambda now: _replay(printer_points, now))
    assert sent.title == "[FIRING] konica_c250i: service requested"


def _printer(errors: str, t: float) -> Point:
    fields: dict[str, float | str] = {"up": 1.0, "printer_error": 1.0 if errors else 0.0}
    if errors:
        fields["printer_errors"] = errors
    return Point("device", {"site": "radhus", "device": "skriver-1"}, fields, int(t * 1e9))


def test_printer_error_pages_what_stops_printing_not_warnings() -> None:
    engine = AlertEngine(inventory(), [PRINTER_ERROR])
    clock = FakeClock(engine, MONDAY_0814)
    state = {"errors": "low_toner, overdue_prevent_maint"}
    # Low toner and maintenance due are warnings (a low supply is printer_supply_low's): no page.
    assert clock.run(60, lambda now: [_printer(state["errors"], now)]) == []
    state["errors"] = "low_toner, door_open, jammed"
    (sent,) = clock.run(30, lambda now: [_printer(state["errors"], now)])
    assert sent.title == "[AKTIV] skriver-1: deksel åpent, papirstopp"
    state["errors"] = ""
    assert events(clock.run(30, lambda now: [_printer(state["errors"], now)])) == [("resolved", "printer", "skriver-1")]


def _ups(t: float, **fields: float | str) -> Point:
    return Point("device", {"site": "radhus", "device": "ups-radhus"}, {"up": 1.0, **fields}, int(t * 1e9))


def test_ups_on_battery_and_low_battery_say_how_long_and_how_much_is_left() -> None:
    engine = AlertEngine(inventory(), [ON_BATTERY, BATTERY_LOW])
    clock = FakeClock(engine, MONDAY_0814)
    state: dict[str, float] = {"on": 0.0, "seconds": 0.0, "minutes": 24.0, "charge": 100.0}

    def feed(now: float) -> list[Point]:
        return [_ups(now, ups_on_battery=state["on"], ups_seconds_on_battery=state["seconds"],
                     ups_minutes_left=state["minutes"], ups_charge_pct=state["charge"], ups_battery_low=0.0)]

    assert clock.run(60, feed) == []
    state.update(on=1.0, seconds=180.0, minutes=21.0, charge=86.0)
    (sent,) = clock.run(30, feed)
    assert sent.title == "[AKTIV] ups-radhus går på batteri: i 3 min, 21 min igjen, lading 86 %"
    state.update(seconds=1200.0, minutes=9.0, charge=30.0)
    assert events(clock.run(30, feed)) == [("firing", "battery-low", "ups-radhus")]
    state.update(on=0.0, seconds=0.0, minutes=16.0, charge=45.0)
    assert sorted(events(clock.run(30, feed))) == [("resolved", "battery-low", "ups-radhus"), ("resolved", "on-battery", "ups-radhus")]


def test_ups_saying_its_battery_is_low_is_low_whatever_the_minutes() -> None:
    engine = AlertEngine(inventory(), [BATTERY_LOW], language="en")
    clock = FakeClock(engine, MONDAY_0814)
    (sent,) = clock.run(30, lambda now: [_ups(now, ups_battery_low=1.0, ups_minutes_left=40.0, ups_charge_pct=12.0)])
    assert sent.title == "[FIRING] ups-radhus: the battery is low, 40 min left, charge 12 %"


def test_ups_battery_replace_by_the_indicator_or_the_recommended_date() -> None:
    engine = AlertEngine(inventory(), [BATTERY_REPLACE])
    clock = FakeClock(engine, MONDAY_0814)
    # Recommended by 2027-01-10: not yet on 30 November 2026.
    assert clock.run(60, lambda now: [_ups(now, battery_replace_needed=0.0, battery_replace_date="2027-01-10",
                                           battery_last_replaced="2023-01-10")]) == []
    engine = AlertEngine(inventory(), [BATTERY_REPLACE])
    clock = FakeClock(engine, MONDAY_0814)
    (sent,) = clock.run(30, lambda now: [_ups(now, battery_replace_needed=0.0, battery_replace_date="2022-01-10",
                                              battery_last_replaced="2019-01-10")])
    assert sent.title == "[AKTIV] ups-radhus: batteriet bør byttes (anbefalt byttet innen 10.01.2022, sist byttet 10.01.2019)"
    engine = AlertEngine(inventory(), [BATTERY_REPLACE], language="en")
    clock = FakeClock(engine, MONDAY_0814)
    (sent,) = clock.run(30, lambda now: [_ups(now, battery_replace_needed=1.0)])
    assert sent.title == "[FIRING] ups-radhus: the battery should be replaced (the UPS says its battery needs replacing)"


def test_the_evidence_survives_a_restart() -> None:
    first = AlertEngine(inventory(), [ON_BATTERY])
    clock = FakeClock(first, MONDAY_0814)
    clock.run(30, lambda now: [_ups(now, ups_on_battery=1.0, ups_seconds_on_battery=60.0, ups_minutes_left=20.0)])
    saved = json.loads(json.dumps(first.snapshot()))
    second = AlertEngine(inventory(), [ON_BATTERY])
    assert second.restore(saved, clock.now) == 1
    (alert,) = second.firing(clock.now)
    assert alert["summary"] == "ups-radhus går på batteri: i 1 min, 20 min igjen"
    assert saved["alerts"][0]["facts"] == {"ups_seconds_on_battery": 60.0, "ups_minutes_left": 20.0}


# ------------------------------------------------------------------ a power cut explains an outage
def _power_cut_feed(state: dict[str, float | bool]):  # type: ignore[no-untyped-def]
    """Vannvåg's agents and uplink, and a UPS there (`ups-vannvag`) polled every 60 s like the switch."""
    from test_alerting_engine import VANNVAG_AGENTS, agent_up, device_up

    def feed(now: float) -> list[Point]:
        points = [agent_up(a, "vannvag", bool(state["agents"]), now) for a in VANNVAG_AGENTS]
        if int(now) % 60 == 0:
            points.append(device_up("sw-vannvag", "vannvag", bool(state["uplink"]), now))
            if state["ups_answers"]:
                on = float(state["on_battery"])
                points.append(Point("device", {"site": "vannvag", "device": "ups-vannvag"}, {
                    "up": 1.0, "ups_on_battery": on, "ups_minutes_left": float(state["minutes"]),
                    "ups_seconds_on_battery": float(state["seconds"]) if on else 0.0}, int(now * 1e9)))
                state["seconds"] = float(state["seconds"]) + 60 if on else 0.0
                state["minutes"] = max(0.0, float(state["minutes"]) - 5) if on else 24.0
        return points

    return feed


def test_a_site_that_goes_quiet_after_its_ups_went_on_battery_is_a_power_cut() -> None:
    from test_alerting_engine import SILENT

    engine = AlertEngine(inventory(), [SILENT])
    clock = FakeClock(engine, MONDAY_0814 - 300)
    state: dict[str, float | bool] = {"agents": True, "uplink": True, "ups_answers": True, "on_battery": False, "minutes": 24.0, "seconds": 0.0}
    feed = _power_cut_feed(state)
    assert clock.run(300, feed) == []
    # 08:14: the power goes; the UPS says so at its next poll (30 s on battery by then) and runs
    # the site for four more polls, then the battery is flat and everything goes quiet at once.
    state.update(on_battery=True, seconds=30.0, minutes=21.0)
    assert clock.run(240, feed) == []  # a UPS on battery is its own rule's business (not configured here)
    state.update(agents=False, uplink=False, ups_answers=False)
    (sent,) = clock.run(600, feed)
    assert sent.title == ("[AKTIV] Teknisk utestasjon Vannvåg: strømbrudd, ikke nettverksfeil \u2013 utilgjengelig siden 08:18 CET, "
                          "7 maskiner bak den. ups-vannvag gikk på batteri 08:14 med 21 min igjen; sist hørt 08:18 med 6 min igjen")
    (site,) = [a for a in engine.firing(clock.now) if a["rule"] == "site-unreachable"]
    assert site["summary"] == sent.title.removeprefix("[AKTIV] ")
    (alert,) = [a for a in engine.snapshot()["alerts"] if a["rule"] == "site-unreachable"]
    assert alert["facts"]["cause"] == "power_cut" and alert["facts"]["ups"] == "ups-vannvag"
    assert alert["facts"]["minutes_left_then"] == 21.0 and alert["facts"]["minutes_left_last"] == 6.0


def test_power_back_before_the_outage_is_a_network_fault_again() -> None:
    from test_alerting_engine import SILENT

    engine = AlertEngine(inventory(), [SILENT], language="en")
    clock = FakeClock(engine, MONDAY_0814 - 300)
    state: dict[str, float | bool] = {"agents": True, "uplink": True, "ups_answers": True, "on_battery": False, "minutes": 24.0, "seconds": 0.0}
    feed = _power_cut_feed(state)
    clock.run(300, feed)
    state.update(on_battery=True, seconds=30.0, minutes=21.0)
    clock.run(120, feed)
    state.update(on_battery=False)  # the power came back; the UPS says it is on line again
    clock.run(120, feed)
    state.update(agents=False, uplink=False, ups_answers=False)  # then the radio link drops
    (sent,) = clock.run(600, feed)
    assert sent.title.startswith("[FIRING] Teknisk utestasjon Vannvåg unreachable since ") and "power" not in sent.title


def test_ups_rules_on_every_ups_recording_fire_nothing(snmpsim: SnmpsimServer) -> None:
    """All four recorded UPSes run on line with a healthy battery. The APC Smart-UPS 750 still says
    "replace by 2022-01-10" after its battery was replaced on 2025-04-30: a date nobody updated,
    so it is no reason to page anyone."""
    from test_snmp_ups import UPSES

    polled = poll_recordings(snmpsim, {name: name for name in UPSES}, "ups")
    apc = next(p for p in polled if p.measurement == "device" and p.tags["device"] == "apc_sua750i")
    assert (apc.fields["battery_replace_date"], apc.fields["battery_last_replaced"]) == ("2022-01-10", "2025-04-30")
    engine = AlertEngine(inventory(), [ON_BATTERY, BATTERY_LOW, BATTERY_REPLACE])
    clock = FakeClock(engine, MONDAY_0814)
    assert clock.run(60, lambda now: _replay(polled, now)) == []
    # The same UPS once its card says the battery needs replacing: it pages, with its dates.
    worn = [Point(p.measurement, p.tags, {**p.fields, "battery_replace_needed": 1.0}, p.time_ns) if p is apc else p for p in polled]
    (sent,) = clock.run(30, lambda now: _replay(worn, now))
    assert sent.title == ("[AKTIV] apc_sua750i: batteriet bør byttes (UPS-en melder at batteriet må byttes, "
                          "sist byttet 30.04.2025)")  # the stale "replace by" date is left out
