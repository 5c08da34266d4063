"""The simulated municipality on top of a `Lab`: InfluxDB and the collector at the town hall,
a real snmpd on the firewall, agents at the sites. Used by the scenario tests and by
`nettvakt demo --lab`, so both exercise exactly the same running system.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import hashlib
import json
import mailbox
import secrets
import shutil
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.app import HOUSEKEEPING_INTERVAL_S
from collector.influxql import query
from collector.lab.lab import Lab
from collector.lab.topology import INET_TARGET
from collector.lab.ups_agent import UpsState, ups_snmpd_config, write_ups_state
from collector.localservers import ManagedProcess, SnmpdServer, wait_until

COLLECTOR_PORT = 8650
INFLUX_PORT = 8086
DATABASE = "nettvakt"
SNMP_COMMUNITY = "karlsoy-lab-ro"
SNMPSIM_PORT = 1161
# A site UPS's snmpd, beside the site router's on 161 in the same namespace.
UPS_SNMP_PORT = 1162
SMTP_PORT = 2525
LAB_ADMIN_COMMUNITY = "karlsoy-lab-admin"
NS_CACHE_TABLE = ".1.3.6.1.4.1.8072.1.5"
IF_TABLE_CACHE_TIMEOUT = "1.3.6.1.4.1.8072.1.5.3.1.2.1.3.6.1.2.1.2.2"  # nsCacheTimeout.<ifTable>


SITE_NAMES = {
    "radhus": "Rådhuset",
    "helse": "Helse og omsorg",
    "hansnes": "Teknisk utestasjon Hansnes",
    "vannvag": "Teknisk utestasjon Vannvåg",
}


@dataclass(frozen=True)
class RecordedDevice:
    """A real device's recording (shared/snmprec) served by snmpsim in the lab, polled as `kind`."""

    recording: Path
    kind: str = "firewall"


@dataclass(frozen=True)
class LabAgent:
    id: str
    site: str
    name: str


@dataclass
class MunicipalityConfig:
    agents: tuple[LabAgent, ...] = (
        LabAgent("radhus-srv", "radhus", "Sak/arkiv-server"),
        LabAgent("plo-pc", "helse", "PLO pc, 2. etg"),
        LabAgent("hansnes-1", "hansnes", "Utestasjon Hansnes, driftspc"),
        LabAgent("hansnes-2", "hansnes", "Utestasjon Hansnes, SD-anlegg"),
        LabAgent("vannvag-1", "vannvag", "Utestasjon Vannvåg, driftspc"),
    )
    agent_interval_s: float = 2.0
    heartbeat_s: float | None = None  # None: as often as the agents report (agent_interval_s)
    down_after_intervals: int = 3
    probe_interval_s: float = 2.0
    # The icmp prober waits this long after the last echo of a burst for late replies.
    probe_timeout_s: float = 2.0
    icmp_count: int = 5
    icmp_interval_ms: int = 100
    snmp_interval_s: float = 5.0
    snmp_timeout_s: float = 2.0
    snmp_retries: int = 1
    # A mail catcher (aiosmtpd, a test dependency) at the town hall receiving the alert mails
    # in a Maildir, so tests see what on-call staff would get.
    mail_catcher: bool = False
    # Recorded real devices served by snmpsim at the town hall: device id -> .snmprec file and kind.
    recorded_devices: dict[str, RecordedDevice] = field(default_factory=dict)
    extra_probes: list[dict[str, Any]] = field(default_factory=list)
    # Site id -> device id of the router everything at that site hangs off: a real snmpd in the
    # site's namespace, polled like the firewall and named as the site's `uplink`, so cutting
    # the site's link takes the uplink device down with the machines behind it.
    site_uplinks: dict[str, str] = field(default_factory=dict)
    # Site id -> device id of a UPS there: a real snmpd in the site's namespace serving UPS-MIB
    # from a state file (collector/lab/ups_agent.py) that `set_ups` rewrites, polled as hardware
    # kind `ups` (found by probing: its sysObjectID is net-snmp's).
    site_ups: dict[str, str] = field(default_factory=dict)
    # Agents that record who logs in to the machine ([logins]; the lab's namespaces share this
    # machine's /run/utmp, so they see the logins of the machine the lab runs on).
    login_agents: tuple[str, ...] = ()
    # [alerting] settings and [[alert]] tables (each a dict of TOML keys); None: `lab_alert_rules`.
    group_wait_s: float = 2.0
    recovery_grace_s: float = 30.0
    # How often an open status page refreshes, and how long the page's charts are kept between reads.
    status_refresh_s: float = 30.0
    alert_rules: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        for site, device_id in self.site_uplinks.items():
            if site not in SITE_NAMES:
                raise ValueError(f"site_uplinks: no lab site {site!r} (have {', '.join(SITE_NAMES)})")
            if device_id in ("fw", *self.recorded_devices):
                raise ValueError(f"site_uplinks[{site!r}]: device id {device_id!r} is already used")
        for site, device_id in self.site_ups.items():
            if site not in SITE_NAMES:
                raise ValueError(f"site_ups: no lab site {site!r} (have {', '.join(SITE_NAMES)})")
            if device_id in ("fw", *self.recorded_devices, *self.site_uplinks.values()):
                raise ValueError(f"site_ups[{site!r}]: device id {device_id!r} is already used")


def lab_alert_rules(config: MunicipalityConfig) -> list[dict[str, Any]]:
    """The lab's [[alert]] rules: agent silent, site unreachable, SNMP device down."""
    return [
        {
            "id": "agent-silent",
            "kind": "agent_silent",
            "severity": "critical",
            # Machines at one site are judged silent up to one report interval plus one
            # evaluation apart; waiting that long lets a whole-site outage fold into one alert.
            "for_s": config.agent_interval_s + HOUSEKEEPING_INTERVAL_S + 3,
        },
        {"id": "site-down", "kind": "site_unreachable", "severity": "critical"},
        # As long, for the same reason: a device at a site without an uplink (a UPS) fails its
        # poll seconds before the site's machines are judged silent.
        {"id": "device-down", "kind": "device_down", "severity": "critical", "for_s": config.agent_interval_s + HOUSEKEEPING_INTERVAL_S + 3},
    ]


def _toml_table(header: str, table: dict[str, Any]) -> list[str]:
    # JSON spells strings, numbers, booleans and lists of them the way TOML does.
    return [header] + [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in table.items()]


def _community_env(device_id: str) -> str:
    return "NETTVAKT_LAB_COMMUNITY_" + device_id.upper().replace("-", "_")


class Municipality:
    def __init__(self, lab: Lab, workdir: Path, config: MunicipalityConfig | None = None):
        self.lab = lab
        self.workdir = workdir
        self.config = config or MunicipalityConfig()
        self.tokens = {a.id: secrets.token_urlsafe(24) for a in self.config.agents}
        self.collector: ManagedProcess | None = None
        self.agents: dict[str, ManagedProcess] = {}
        self.influx_url = ""
        self.collector_url = ""  # as seen from the root namespace
        self.collector_lab_url = f"http://{lab.addr('radhus')}:{COLLECTOR_PORT}"  # as seen by agents
        self.inventory_path = workdir / "inventory.toml"
        self.maildir = workdir / "maildir"
        self.snmpd: dict[str, SnmpdServer] = {}  # node -> its running snmpd
        self.ups_snmpd: dict[str, SnmpdServer] = {}  # site -> the snmpd of its UPS

    # --- building -------------------------------------------------------------------
    def inventory_text(self) -> str:
        c = self.config
        lines = [
            'organisation = "Karlsøy kommune (lab)"',
            "[collector]",
            f'listen = "0.0.0.0:{COLLECTOR_PORT}"',
            f'data_dir = "{self.workdir / "collector-data"}"',
            f"status_refresh_s = {c.status_refresh_s}",
            "[storage]",
            'kind = "influxdb_v1"',
            f'url = "http://127.0.0.1:{INFLUX_PORT}"',
            f'database = "{DATABASE}"',
            "flush_interval_s = 0.5",
            "[lifecycle.kinds.pc]\nlifetime_years = 5\nreplacement_cost_nok = 11000",
            "[lifecycle.kinds.firewall]\nlifetime_years = 7\nreplacement_cost_nok = 95000",
            "[lifecycle.kinds.printer]\nlifetime_years = 6\nreplacement_cost_nok = 45000",
            "[lifecycle.kinds.ups]\nlifetime_years = 8\nreplacement_cost_nok = 18000",
        ]
        for site, name in SITE_NAMES.items():
            lines += ["[[site]]", f'id = "{site}"', f'name = "{name}"']
            if site in c.site_uplinks:
                lines.append(f'uplink = "{c.site_uplinks[site]}"')
        lines += self._snmpd_device(
            "fw", "Brannmur (lab)", "radhus", "fw", '{ kind = "firewall", model = "Linux router (lab)", purchased = 2026-09-15 }'
        )
        for site, device_id in c.site_uplinks.items():
            lines += self._snmpd_device(
                device_id, f"Ruter, {SITE_NAMES[site]}", site, site,
                '{ kind = "router", model = "Linux router (lab)", purchased = 2020-06-01, lifetime_years = 8 }',
            )
            # The line's real rate, as a municipality writes its contract's into the inventory: the
            # router's port says 10 Gbit/s (a veth), the line is shaped to rate_kbit (tbf).
            line = self.lab.topology.link(site)
            if line.rate_kbit is not None:
                lines.append(f'interface_speed_bps = {{ "{line.ifname_of(site)}" = {line.rate_kbit * 1000} }}')
        for site, device_id in c.site_ups.items():
            lines += self._snmpd_device(
                device_id, f"UPS, {SITE_NAMES[site]}", site, site,
                '{ kind = "ups", model = "nettvakt lab UPS 1000", purchased = 2023-04-01, lifetime_years = 8 }',
            ) + [f"port = {UPS_SNMP_PORT}"]
        for device_id, recorded in c.recorded_devices.items():
            lines += [
                "[[device]]",
                f'id = "{device_id}"',
                f'name = "Recorded {recorded.recording.stem}"',
                'site = "radhus"',
                'host = "127.0.0.1"',
                f'hardware = {{ kind = "{recorded.kind}", purchased = 2026-09-15 }}',
                "[device.snmp]",
                'version = "2c"',
                f"port = {SNMPSIM_PORT}",
                f'community = "env:{_community_env(device_id)}"',
                f"interval_s = {c.snmp_interval_s}",
            ]
        for agent in c.agents:
            token_sha = hashlib.sha256(self.tokens[agent.id].encode()).hexdigest()
            lines += [
                "[[agent]]",
                f'id = "{agent.id}"',
                f"name = {json.dumps(agent.name, ensure_ascii=False)}",
                f'site = "{agent.site}"',
                f'token_sha256 = "{token_sha}"',
                f"interval_s = {c.agent_interval_s}",
                f"down_after_intervals = {c.down_after_intervals}",
                f"heartbeat_s = {c.heartbeat_s or c.agent_interval_s}",
                'hardware = { kind = "pc", purchased = 2018-05-01 }',
            ]
        remote_sites = json.dumps(sorted({a.site for a in c.agents}))
        probes = [
            {"name": "internett", "kind": "icmp", "target": INET_TARGET},
            {"name": "gw", "kind": "icmp", "target": self.lab.addr("fw")},
        ]
        for probe in probes:
            lines += [
                "[[probe]]",
                f'name = "{probe["name"]}"',
                f'kind = "{probe["kind"]}"',
                f'target = "{probe["target"]}"',
                f"sites = {remote_sites}",
                f"interval_s = {c.probe_interval_s}",
                f"timeout_s = {c.probe_timeout_s}",
                f"params = {{ count = {c.icmp_count}, interval_ms = {c.icmp_interval_ms} }}",
            ]
        if c.login_agents:
            lines += _toml_table("[logins]", {"agents": list(c.login_agents), "interval_s": c.agent_interval_s})
        lines += ["[alerting]", f"group_wait_s = {c.group_wait_s}", f"recovery_grace_s = {c.recovery_grace_s}"]
        for rule in lab_alert_rules(c) if c.alert_rules is None else c.alert_rules:
            lines += _toml_table("[[alert]]", rule)
        if c.mail_catcher:
            lines += [
                "[[channel]]",
                'id = "vakt-epost"',
                'kind = "email"',
                'to = ["it-vakt@karlsoy.kommune.no"]',
                'smtp_host = "127.0.0.1"',
                f"smtp_port = {SMTP_PORT}",
                'smtp_starttls = "never"',
                'sender = "nettvakt@karlsoy.kommune.no"',
                "[[route]]",
                'channels = ["vakt-epost"]',
                'severities = ["critical"]',
            ]
        for probe in c.extra_probes:
            lines += ["[[probe]]"] + [f"{k} = {json.dumps(v)}" for k, v in probe.items()]
        return "\n".join(lines) + "\n"

    def _snmpd_device(self, device_id: str, name: str, site: str, node: str, hardware: str) -> list[str]:
        """[[device]] for one of the lab's own snmpd (see `start_snmpd`), running in `node`."""
        c = self.config
        return [
            "[[device]]",
            f'id = "{device_id}"',
            f"name = {json.dumps(name, ensure_ascii=False)}",
            f'site = "{site}"',
            f'host = "{self.lab.addr(node)}"',
            f"hardware = {hardware}",
            "[device.snmp]",
            'version = "2c"',
            'community = "env:NETTVAKT_LAB_COMMUNITY"',
            f"interval_s = {c.snmp_interval_s}",
            f"timeout_s = {c.snmp_timeout_s}",
            f"retries = {c.snmp_retries}",
        ]

    def start(self) -> "Municipality":
        self.workdir.mkdir(parents=True, exist_ok=True)
        influx = self.lab.start_influxd("radhus", port=INFLUX_PORT)
        self.influx_url = f"http://127.0.0.1:{self.lab.expose('radhus', influx.port)}"
        urllib.request.urlopen(
            urllib.request.Request(f"{self.influx_url}/query", data=f"q=CREATE DATABASE {DATABASE}".encode()), timeout=10
        ).read()
        self.start_snmpd("fw")
        for site in self.config.site_uplinks:
            self.start_snmpd(site)
        for site in self.config.site_ups:
            write_ups_state(self._ups_state_path(site), UpsState())
            self.start_ups(site)
        env = {"NETTVAKT_LAB_COMMUNITY": SNMP_COMMUNITY}
        if self.config.mail_catcher:
            self.lab.spawn(
                "radhus",
                [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{SMTP_PORT}", "-c", "aiosmtpd.handlers.Mailbox", str(self.maildir)],
                "mail-catcher",
            )
        if self.config.recorded_devices:
            recordings = self.workdir / "snmprec"
            recordings.mkdir(exist_ok=True)
            for device_id, recorded in self.config.recorded_devices.items():
                shutil.copyfile(recorded.recording, recordings / recorded.recording.name)
                env[_community_env(device_id)] = recorded.recording.stem  # snmpsim: community = file name
            self.lab.start_snmpsim("radhus", recordings, port=SNMPSIM_PORT)
        self.inventory_path.write_text(self.inventory_text(), encoding="utf-8")
        self.collector = self.lab.spawn(
            "radhus",
            [sys.executable, "-m", "agent.cli", "collector", "run", "--inventory", str(self.inventory_path)],
            "collector",
            env=env,
        )
        self.collector_url = f"http://127.0.0.1:{self.lab.expose('radhus', COLLECTOR_PORT)}"
        wait_until(lambda: self.health()["status"] == "ok", 30, "collector health", watch=[self.collector])
        for agent in self.config.agents:
            self.start_agent(agent.id)
        return self

    def start_snmpd(self, node: str) -> None:
        """Start (or start again, after `stop_snmpd`) the snmpd of the firewall or of a site's uplink."""
        if node in self.snmpd:
            raise ValueError(f"snmpd in {node!r} is already running")
        if node == "fw":
            self._start_firewall_snmpd()
        elif node in self.config.site_uplinks:
            self.snmpd[node] = self.lab.start_snmpd(
                node,
                community=SNMP_COMMUNITY,
                sys_name=self.config.site_uplinks[node],
                sys_location=SITE_NAMES[node],
            )
        else:
            raise ValueError(f"no snmpd in {node!r}: only 'fw' and the sites of site_uplinks ({', '.join(self.config.site_uplinks) or 'none'})")

    def _ups_state_path(self, site: str) -> Path:
        return self.workdir / f"ups-{site}.json"

    def start_ups(self, site: str) -> None:
        """Start (or start again, after `stop_ups`) the snmpd of the UPS at `site`, saying what
        the state file last said (on line at the first start)."""
        self.ups_snmpd[site] = self.lab.start_snmpd(
            site, port=UPS_SNMP_PORT, community=SNMP_COMMUNITY, sys_name=self.config.site_ups[site],
            sys_location=SITE_NAMES[site], extra_config=ups_snmpd_config(self._ups_state_path(site)),
        )

    def set_ups(self, site: str, state: UpsState) -> None:
        """What the UPS at `site` says from its next SNMP answer on."""
        write_ups_state(self._ups_state_path(site), state)

    def stop_ups(self, site: str) -> None:
        """The UPS at `site` stops answering (its battery ran out, or it was switched off)."""
        self.ups_snmpd.pop(site).stop()

    def stop_snmpd(self, node: str) -> None:
        """Stop one snmpd, as if the device died: it stops answering SNMP."""
        self.snmpd.pop(node).stop()

    def _start_firewall_snmpd(self) -> None:
        """snmpd on the firewall, its interface counters read live from the kernel.

        net-snmp caches ifTable/ifXTable for 3 s by default, so a poll can see counters up to
        3 s old and one 5 s interval reads 60% high, the next 60% low. Real firewalls update
        their counters continuously; the lab's does too once the cache timeout is 0, set here
        through NET-SNMP-AGENT-MIB::nsCacheTimeout by a write community that only the
        firewall itself may use, on that one subtree.
        """
        server = self.lab.start_snmpd(
            "fw",
            community=SNMP_COMMUNITY,
            sys_name="fw-lab",
            sys_location="Rådhuset, serverrom",
            extra_config=[f"rwcommunity {LAB_ADMIN_COMMUNITY} {self.lab.addr('fw')} {NS_CACHE_TABLE}"],
        )
        self.snmpd["fw"] = server
        env = [f"{k}={v}" for k, v in server.net_snmp_env().items()]
        self.lab.exec(
            "fw",
            ["env", *env, "snmpset", "-v2c", "-c", LAB_ADMIN_COMMUNITY, f"{server.host}:{server.port}", IF_TABLE_CACHE_TIMEOUT, "i", "0"],
        )

    def mails(self) -> list[email.message.EmailMessage]:
        """Alert mails the mail catcher has received, oldest first."""
        return [message for _, message in self.received_mails()]

    def received_mails(self) -> list[tuple[float, email.message.EmailMessage]]:
        """(arrival, mail) for every alert mail received, oldest first.

        Arrival is the Unix time the catcher stored the mail (its Maildir file's mtime), so
        "outage to message" timings need no clock of their own in the catcher.
        """
        if not self.maildir.exists():
            return []
        box = mailbox.Maildir(self.maildir, factory=None, create=False)
        messages = sorted(box, key=lambda m: m.get_date())
        return [(m.get_date(), email.message_from_bytes(m.as_bytes(), policy=email.policy.default)) for m in messages]  # type: ignore[misc]

    def start_agent(self, agent_id: str) -> None:
        agent = next(a for a in self.config.agents if a.id == agent_id)
        token_file = self.workdir / f"{agent_id}.token"
        token_file.write_text(self.tokens[agent_id])
        token_file.chmod(0o600)
        self.agents[agent_id] = self.lab.spawn(
            agent.site,
            [
                sys.executable, "-m", "agent.cli", "agent", "run",
                "--collector", self.collector_lab_url,
                "--agent-id", agent_id,
                "--token", f"file:{token_file}",
                "--spool", str(self.workdir / f"{agent_id}-spool.sqlite3"),
            ],
            f"agent-{agent_id}",
        )

    def stop_agent(self, agent_id: str) -> None:
        self.agents.pop(agent_id).stop()

    def stop_collector(self) -> None:
        if self.collector is not None:
            self.collector.stop()

    # --- looking ----------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.collector_url}/api/v1/health", timeout=5) as resp:
            return json.load(resp)

    def query(self, statement: str) -> list[dict[str, Any]]:
        return query(self.influx_url, DATABASE, statement)

    def where_to_look(self) -> dict[str, str]:
        return {
            "collector": self.collector_url,
            "health": f"{self.collector_url}/api/v1/health",
            "influxdb": self.influx_url,
            "database": DATABASE,
            "inventory": str(self.inventory_path),
            "namespaces": " ".join(self.lab.ns(n.name) for n in self.lab.topology.nodes),
            "logs": str(self.lab.workdir),
        }
