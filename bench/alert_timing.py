"""Alert timing (issue 6): from the start of an outage to the alert mail at the SMTP server.

Run as root:  .venv/bin/python bench/alert_timing.py [--quick] [--repeat 3] [--json]

Builds the lab municipality (collector, InfluxDB, agents, the firewall's snmpd, an aiosmtpd
mail catcher) and times three outages, each --repeat times, one after the other:

- agent silence: the only agent of the Vannvåg outstation is stopped (`agent_silent`; its
  heartbeats stop with it);
- probe target loss: the internet link is cut, so every agent's `internett` ICMP probe
  fails (`target_unreachable`; the five agents' alerts arrive as one grouped mail);
- SNMP device down: the firewall's snmpd is stopped (`device_down`).

The delay is the mail's arrival (the catcher's Maildir file mtime) minus the moment the
outage was made. After each outage is undone the bench waits for its alerts to be resolved
before the next, so every repetition starts from quiet.

By default everything runs at the defaults people get: agent, probe and SNMP intervals and
timeouts of the inventory models, the example inventory's (inventory.toml) agent-silent,
device-down and site rules and its first ICMP probe, the [alerting] defaults (group wait).
One change, not touching detection: every rule gets flap_changes = 100 so the repetitions
of one outage are not held as flapping. --quick uses the lab's own 2 s intervals instead
(and adds a `target_unreachable` rule, which the lab's own rules lack).

Alongside the measurement the bench prints the worst case the configuration promises
(detection + `for_s` + one evaluation tick + group wait; delivery not included).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collector.alerting.config import AlertingSettings  # noqa: E402
from collector.app import HOUSEKEEPING_INTERVAL_S  # noqa: E402
from collector.config import AgentEntry, ProbeTarget, SnmpSettings  # noqa: E402
from collector.lab import KARLSOY_LAB, Lab, check_lab_possible, cleanup_stale  # noqa: E402
from collector.lab.municipality import Municipality, MunicipalityConfig, lab_alert_rules  # noqa: E402
from collector.localservers import wait_until  # noqa: E402

EXAMPLE_INVENTORY = Path(__file__).resolve().parents[1] / "inventory.toml"
# The collector's alert service evaluates once a second (collector/alerting/context.py).
ALERT_TICK_S = 1.0
# The agent sends what it measured every 2 s (agent/runner.py, send_interval_s).
AGENT_SEND_S = 2.0
SILENT_AGENT = "vannvag-1"
TARGET_RULE = {"id": "target-down", "kind": "target_unreachable", "severity": "critical"}


def default_config() -> MunicipalityConfig:
    """The lab municipality at the defaults of the models and the example inventory."""
    example = tomllib.loads(EXAMPLE_INVENTORY.read_text(encoding="utf-8"))
    rules = [r for r in example["alert"] if r["kind"] in ("agent_silent", "device_down", "site_unreachable", "target_unreachable")]
    icmp = next(p for p in example["probe"] if p["kind"] == "icmp")
    snmp = SnmpSettings.model_fields
    settings = AlertingSettings()
    return MunicipalityConfig(
        agent_interval_s=AgentEntry.model_fields["interval_s"].default,
        heartbeat_s=AgentEntry.model_fields["heartbeat_s"].default,
        down_after_intervals=AgentEntry.model_fields["down_after_intervals"].default,
        probe_interval_s=float(icmp.get("interval_s", ProbeTarget.model_fields["interval_s"].default)),
        probe_timeout_s=float(icmp.get("timeout_s", ProbeTarget.model_fields["timeout_s"].default)),
        icmp_count=int(icmp["params"]["count"]),
        icmp_interval_ms=int(icmp["params"]["interval_ms"]),
        snmp_interval_s=snmp["interval_s"].default,
        snmp_timeout_s=snmp["timeout_s"].default,
        snmp_retries=snmp["retries"].default,
        mail_catcher=True,
        group_wait_s=settings.group_wait_s,
        recovery_grace_s=settings.recovery_grace_s,
        alert_rules=steady(rules),
    )


def quick_config() -> MunicipalityConfig:
    config = MunicipalityConfig(mail_catcher=True)
    config.alert_rules = steady(lab_alert_rules(config) + [TARGET_RULE])
    return config


def steady(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Repetitions of one outage minutes apart must not count as flapping.
    return [{**rule, "flap_changes": 100} for rule in rules]


def rule_setting(config: MunicipalityConfig, kind: str, key: str, default: float) -> float:
    assert config.alert_rules is not None
    value = next(r for r in config.alert_rules if r["kind"] == kind).get(key)
    return float(default if value is None else value)


@dataclass
class Case:
    name: str
    rule_kind: str
    marker: str  # text the firing mail must contain
    start: Callable[[Municipality], None]
    end: Callable[[Municipality], None]
    detect_s: Callable[[MunicipalityConfig], float]  # worst-case detection the config promises

    def bound_s(self, config: MunicipalityConfig) -> float:
        for_s = rule_setting(config, self.rule_kind, "for_s", 0.0)
        group_wait_s = rule_setting(config, self.rule_kind, "group_wait_s", config.group_wait_s)
        return self.detect_s(config) + for_s + ALERT_TICK_S + group_wait_s


CASES = [
    Case(
        "agent silence",
        "agent_silent",
        "Utestasjon Vannvåg, driftspc",
        lambda town: town.stop_agent(SILENT_AGENT),
        lambda town: town.start_agent(SILENT_AGENT),
        # Silent for down_after heartbeats, noticed at the next liveness evaluation.
        lambda c: (c.heartbeat_s or c.agent_interval_s) * c.down_after_intervals + HOUSEKEEPING_INTERVAL_S,
    ),
    Case(
        "probe target loss",
        "target_unreachable",
        "internett@",
        lambda town: town.lab.cut("inet"),
        lambda town: town.lab.restore("inet"),
        # The next probe round, its echoes and timeout, the agent's next send.
        lambda c: c.probe_interval_s + c.icmp_count * c.icmp_interval_ms / 1000 + c.probe_timeout_s + AGENT_SEND_S,
    ),
    Case(
        "SNMP device down",
        "device_down",
        "Brannmur (lab)",
        lambda town: town.stop_snmpd("fw"),
        lambda town: town.start_snmpd("fw"),
        # The next poll, failing after every try timed out.
        lambda c: c.snmp_interval_s + c.snmp_timeout_s * (c.snmp_retries + 1),
    ),
]


def firing_mail(town: Municipality, seen: int, marker: str) -> tuple[float, str] | None:
    for arrived, mail in town.received_mails()[seen:]:
        text = mail["Subject"] + "\n" + mail.get_content()
        if marker in text and ("[AKTIV]" in text or "AKTIV " in text):
            return arrived, mail["Subject"]
    return None


def quiet(town: Municipality, rule_ids: list[str]) -> bool:
    """No alert of these rules is active, as the alert points in InfluxDB say."""
    for rule in rule_ids:
        rows = town.query(f"SELECT last(active) FROM alert WHERE rule = '{rule}' GROUP BY subject")
        if any(r["last"] != 0.0 for r in rows):
            return False
    return True


def run_case(town: Municipality, case: Case, repeat: int, log: Callable[[str], None]) -> dict[str, Any]:
    config = town.config
    assert config.alert_rules is not None
    rule_ids = [r["id"] for r in config.alert_rules if r["kind"] == case.rule_kind]
    bound = case.bound_s(config)
    delays: list[float] = []
    subjects: list[str] = []
    for i in range(repeat):
        seen = len(town.received_mails())
        started = time.time()
        case.start(town)
        try:
            arrived, subject = wait_until(lambda: firing_mail(town, seen, case.marker), 3 * bound + 60, f"{case.name}: the alert mail")
        finally:
            case.end(town)
        delays.append(arrived - started)
        subjects.append(subject)
        log(f"{case.name} #{i + 1}: {arrived - started:.1f} s  ({subject})")
        # Back to quiet: the alert resolved, its "resolved" mail out, before the next outage.
        wait_until(lambda: quiet(town, rule_ids), 3 * bound + 60, f"{case.name}: resolved")
        wait_until(lambda: len(town.received_mails()) > seen + 1, config.group_wait_s + 30, f"{case.name}: the resolved mail")
        time.sleep(config.group_wait_s + 2)
    return {
        "case": case.name,
        "rule_kind": case.rule_kind,
        "delays_s": [round(d, 2) for d in delays],
        "median_s": round(statistics.median(delays), 2),
        "max_s": round(max(delays), 2),
        "config_bound_s": round(bound, 2),
        "probe_interval_s": config.probe_interval_s,
        "median_per_probe_interval": round(statistics.median(delays) / config.probe_interval_s, 2),
        "max_per_probe_interval": round(max(delays) / config.probe_interval_s, 2),
        "subjects": subjects,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the lab's 2 s intervals instead of the defaults")
    parser.add_argument("--repeat", type=int, default=3, help="outages per case (default 3)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if os.geteuid() != 0 or (reason := check_lab_possible()) is not None:
        print(f"alert_timing: the network lab is not possible here: {'needs root' if os.geteuid() != 0 else reason}", file=sys.stderr)
        return 2
    config = quick_config() if args.quick else default_config()

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    cleanup_stale()
    began = time.time()
    with tempfile.TemporaryDirectory() as tmp, Lab(KARLSOY_LAB) as lab:
        town = Municipality(lab, Path(tmp), config).start()
        everyone = len(config.agents)
        wait_until(lambda: len(town.query("SELECT last(up) FROM availability WHERE kind = 'agent' AND up = 1 GROUP BY host")) == everyone, 120, "all agents up")
        wait_until(lambda: town.query("SELECT last(up) FROM availability WHERE device = 'fw' AND up = 1"), 2 * config.snmp_interval_s + 30, "firewall polled")
        wait_until(lambda: town.query("SELECT last(up) FROM probe WHERE target = 'internett' AND up = 1"), 2 * config.probe_interval_s + 30, "first probe results")
        results = [run_case(town, case, args.repeat, log) for case in CASES]
    report = {
        "mode": "quick" if args.quick else "default",
        "repeat": args.repeat,
        "intervals": {
            "agent_interval_s": config.agent_interval_s,
            "heartbeat_s": config.heartbeat_s,
            "down_after_intervals": config.down_after_intervals,
            "probe_interval_s": config.probe_interval_s,
            "snmp_interval_s": config.snmp_interval_s,
            "snmp_timeout_s": config.snmp_timeout_s,
            "snmp_retries": config.snmp_retries,
            "group_wait_s": config.group_wait_s,
            "agent_silent_for_s": rule_setting(config, "agent_silent", "for_s", 0.0),
        },
        "cases": results,
        "wall_s": round(time.time() - began, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(f"mode {report['mode']}, {args.repeat} outages per case, intervals {report['intervals']}")
        print(f"{'case':<20} {'median s':>9} {'max s':>8} {'bound s':>8} {'median/probe iv':>16} {'max/probe iv':>13}")
        for r in results:
            print(f"{r['case']:<20} {r['median_s']:>9.1f} {r['max_s']:>8.1f} {r['config_bound_s']:>8.1f} "
                  f"{r['median_per_probe_interval']:>16.2f} {r['max_per_probe_interval']:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
