"""The inventory `nettvakt demo` writes: one site, this machine's agent, four simulated devices,
alert rules with a channel of the demo's own, and hardware with ages and costs.

Purchase dates are counted back from today, so the replacement plan looks the same whenever the
demo runs: one unit past due, the others due within the five-year forecast. The devices are
served by snmpsim from the recordings in demo_data/snmprec (their README says what each holds);
the printer's black toner at 6 % fires `printer_supply_low` at its first poll.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

DEMO_DATABASE = "nettvakt"
DEMO_AGENT = "demo-agent"
DEMO_SITE = "radhus"
RECORDINGS = Path(__file__).resolve().parent / "demo_data" / "snmprec"
# Fast enough that charts fill within a minute; slower than any real device would be polled.
DEVICE_INTERVAL_S = 10
# Alerts that fire together within this long go out as one message (the default is 10 s).
GROUP_WAIT_S = 5


@dataclass(frozen=True)
class DemoDevice:
    id: str
    name: str
    recording: str  # file stem in RECORDINGS, and so the SNMP community snmpsim answers to
    kind: str  # [lifecycle.kinds] entry
    department: str
    years_old: int  # purchased this many years before today
    cost_nok: int
    model: str | None = None  # None: the report takes the model the device says (printers)
    snmp_extra: str = ""  # more [device.snmp] keys


DEMO_DEVICES = (
    DemoDevice("fw-demo", "Brannmur (simulert FortiGate 60F)", "firewall_fortigate60f", "firewall", "IT", 3, 42000,
               "FortiGate 60F",
               # The ISP line is 50 Mbit/s behind a 1 Gbit/s port: utilisation against the line.
               'important_interfaces = ["wan1", "internal"]\ninterface_speed_bps = { wan1 = 50_000_000 }'),
    DemoDevice("sw-demo", "Kjernesvitsj (simulert HP ProCurve 2910al)", "switch_procurve2910", "switch", "IT", 11, 31000,
               "HP ProCurve E2910al-24G-PoE", 'important_interfaces = ["1"]'),
    DemoDevice("pr-demo", "Skriver servicetorget (simulert HP LaserJet)", "printer_hp_m454dn", "printer", "Servicetorget", 4,
               6500),
    DemoDevice("ups-demo", "UPS serverrom (simulert APC Smart-UPS 1500)", "ups_apc_smartups1500", "ups", "IT", 5, 18000,
               "APC Smart-UPS 1500"),
)

# [lifecycle.kinds]: (lifetime in years, replacement cost in NOK)
LIFECYCLE_KINDS = {
    "pc": (5, 11000),
    "firewall": (7, 45000),
    "switch": (8, 28000),
    "printer": (5, 7000),
    "ups": (6, 18000),
    "ups-battery": (4, 2500),
}

# (id, kind, severity, extra keys): what a small municipality would page on, every kind the demo can show.
ALERT_RULES = (
    ("agent-silent", "agent_silent", "critical", ""),
    ("device-down", "device_down", "critical", ""),
    ("site-down", "site_unreachable", "critical", ""),
    ("target-lost", "target_unreachable", "critical", ""),
    ("uplink-down", "interface_down", "critical", ""),
    ("vpn-down", "vpn_tunnel_down", "critical", ""),
    ("printer-toner", "printer_supply_low", "warning", ""),
    ("printer-stopped", "printer_error", "warning", ""),
    ("ups-on-battery", "ups_on_battery", "critical", ""),
    ("ups-battery-low", "ups_battery_low", "critical", ""),
    ("ups-battery-old", "ups_battery_replace", "warning", ""),
    ("disk-full", "host_disk", "warning", "threshold = 90\nclear = 85\nfor_s = 60"),
)


def community_file(device: DemoDevice) -> str:
    """Where the demo keeps a device's community, relative to the inventory (secrets are never inline)."""
    return f"snmp/{device.id}.community"


def write_communities(workdir: Path) -> None:
    folder = workdir / "snmp"
    folder.mkdir(parents=True, exist_ok=True)
    for device in DEMO_DEVICES:
        (workdir / community_file(device)).write_text(device.recording + "\n", encoding="utf-8")


def _toml(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _storage(influx_url: str | None) -> str:
    if influx_url is None:
        return 'kind = "local"'
    return f'kind = "influxdb_v1"\nurl = {_toml(influx_url)}\ndatabase = "{DEMO_DATABASE}"'


def _device(device: DemoDevice, snmp_port: int, today: dt.date) -> str:
    purchased = dt.date(today.year - device.years_old, 3, 1)
    model = f", model = {_toml(device.model)}" if device.model else ""
    return f"""
[[device]]
id = "{device.id}"
name = {_toml(device.name)}
site = "{DEMO_SITE}"
host = "127.0.0.1"
hardware = {{ department = {_toml(device.department)}, kind = "{device.kind}"{model}, purchased = {purchased.isoformat()}, cost_nok = {device.cost_nok} }}
[device.snmp]
version = "2c"
community = "file:{community_file(device)}"
port = {snmp_port}
interval_s = {DEVICE_INTERVAL_S}
timeout_s = 2
retries = 1
{device.snmp_extra}
"""


def demo_inventory(
    workdir: Path, port: int, token_sha256: str, influx_url: str | None, snmp_port: int | None, alerts_url: str,
    today: dt.date | None = None,
) -> str:
    """inventory.toml for the demo; the devices only when snmpsim serves them on `snmp_port`."""
    today = today or dt.date.today()
    devices = [_device(d, snmp_port, today) for d in DEMO_DEVICES] if snmp_port is not None else []
    uplink = f'uplink = "{DEMO_DEVICES[0].id}"\n' if devices else ""
    kinds = "".join(
        f"[lifecycle.kinds.{kind}]\nlifetime_years = {years}\nreplacement_cost_nok = {cost}\n"
        for kind, (years, cost) in LIFECYCLE_KINDS.items()
    )
    rules = "".join(
        f'\n[[alert]]\nid = "{rule}"\nkind = "{kind}"\nseverity = "{severity}"\n' + (extra + "\n" if extra else "")
        for rule, kind, severity, extra in ALERT_RULES
    )
    return f"""# Generated by `nettvakt demo`: one site, this machine as its agent{", four simulated devices" if devices else ""}.
organisation = "nettvakt demo"

[collector]
listen = "127.0.0.1:{port}"
data_dir = {_toml(str(workdir / "collector"))}

[storage]
{_storage(influx_url)}

[lifecycle]
currency = "NOK"
{kinds}
[[site]]
id = "{DEMO_SITE}"
name = "Rådhuset (demo)"
{uplink}
[[agent]]
id = "{DEMO_AGENT}"
name = "Denne maskinen"
site = "{DEMO_SITE}"
token_sha256 = "{token_sha256}"
interval_s = 10
# No purchase date: the report takes this machine's age from what it says about itself.
hardware = {{ department = "IT", kind = "pc" }}
{"".join(devices)}
[[probe]]
name = "loopback"
kind = "icmp"
target = "127.0.0.1"
sites = ["{DEMO_SITE}"]
interval_s = 10
params = {{ count = 5, interval_ms = 100 }}

[[probe]]
name = "collector-api"
kind = "http"
target = "http://127.0.0.1:{port}/api/v1/health"
sites = ["{DEMO_SITE}"]
interval_s = 15

[[probe]]
name = "collector-port"
kind = "tcp"
target = "127.0.0.1:{port}"
sites = ["{DEMO_SITE}"]
interval_s = 15

[alerting]
group_wait_s = {GROUP_WAIT_S}
# No monthly digest from a demo.
digest_day = 0
{rules}
# The demo's own channel: a webhook receiver on loopback that keeps every message in a file.
[[channel]]
id = "demo-webhook"
kind = "webhook"
url = {_toml(alerts_url)}

[[route]]
channels = ["demo-webhook"]
system_notices = true
"""
