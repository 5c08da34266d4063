"""A UPS on a real snmpd: UPS-MIB (RFC 1628) values a test sets, served through `pass_persist`.

The power-cut scenario needs a UPS at a site that goes on battery when the test says so. Debian's
snmpd serves the UPS-MIB subtree by running collector/lab/pass_persist.py, which answers from a
JSON file; `write_ups_state` rewrites that file atomically, and the next SNMP request sees the
new values. snmpd's sysObjectID stays net-snmp's "Linux" one, so the poller finds the UPS by
probing UPS-MIB, as it must for real cards that say no more than that.

On loopback (tests):

    ups = start_ups_snmpd(tmp_path / "ups", community="nettvakt-ro")      # on line
    try:
        ... poll udp ups.server.host:ups.server.port ...
        ups.set(UpsState.on_battery(seconds=90, minutes_left=12, charge_pct=80))
    finally:
        ups.stop()

In the lab (snmpd inside a site's namespace; all paths are plain files, shared with the namespace):

    state = workdir / "ups-vannvag.json"
    write_ups_state(state, UpsState())
    server = lab.start_snmpd("vannvag", community=..., extra_config=ups_snmpd_config(state))
    ...
    write_ups_state(state, UpsState.on_battery(seconds=60, minutes_left=9))

The objects served: upsIdentManufacturer, upsIdentModel, upsBatteryStatus, upsSecondsOnBattery,
upsEstimatedMinutesRemaining, upsEstimatedChargeRemaining, upsOutputSource, upsAlarmsPresent.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collector.localservers import SnmpdServer, start_snmpd
from collector.snmp import ups

from .pass_persist import write_oid_table

PASS_PERSIST_SCRIPT = Path(__file__).resolve().with_name("pass_persist.py")
_BATTERY_STATUS_CODES = {word: code for code, word in ups.BATTERY_STATUS.items()}
_OUTPUT_SOURCE_CODES = {word: code for code, word in ups.OUTPUT_SOURCE.items()}


@dataclass(frozen=True)
class UpsState:
    """What the UPS says, in the words of the `device` fields (docs/metrics.md). The default is a
    UPS on line with a full battery."""

    model: str = "nettvakt lab UPS 1000"
    manufacturer: str = "nettvakt"
    battery_status: str = "normal"  # normal, low, depleted, unknown (upsBatteryStatus)
    seconds_on_battery: int = 0
    minutes_left: int = 45
    charge_pct: int = 100
    output_source: str = "normal"  # normal, battery, bypass, none, other, booster, reducer (upsOutputSource)
    alarms: int = 0  # upsAlarmsPresent

    def __post_init__(self) -> None:
        if self.battery_status not in _BATTERY_STATUS_CODES:
            raise ValueError(f"UpsState.battery_status {self.battery_status!r}: one of {', '.join(_BATTERY_STATUS_CODES)}")
        if self.output_source not in _OUTPUT_SOURCE_CODES:
            raise ValueError(f"UpsState.output_source {self.output_source!r}: one of {', '.join(_OUTPUT_SOURCE_CODES)}")
        for name in ("seconds_on_battery", "minutes_left", "charge_pct", "alarms"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"UpsState.{name} {value!r}: a whole number >= 0")
        if self.charge_pct > 100:
            raise ValueError(f"UpsState.charge_pct {self.charge_pct}: at most 100")
        for name in ("model", "manufacturer"):
            if "\n" in getattr(self, name) or "\r" in getattr(self, name):
                raise ValueError(f"UpsState.{name}: one line")

    @classmethod
    def on_battery(cls, seconds: int, minutes_left: int, charge_pct: int = 80, **other: Any) -> "UpsState":
        """A UPS running its load from the battery for `seconds`, with `minutes_left` of runtime.
        The battery status becomes `low` when `other` says so (battery_status="low")."""
        return cls(output_source="battery", seconds_on_battery=seconds, minutes_left=minutes_left,
                   charge_pct=charge_pct, **other)

    def oid_table(self) -> dict[str, tuple[str, Any]]:
        """The UPS-MIB objects and their pass_persist types and values."""
        return {
            ups.UPS_IDENT_MANUFACTURER: ("string", self.manufacturer),
            ups.UPS_IDENT_MODEL: ("string", self.model),
            ups.UPS_BATTERY_STATUS: ("integer", _BATTERY_STATUS_CODES[self.battery_status]),
            ups.UPS_SECONDS_ON_BATTERY: ("integer", self.seconds_on_battery),
            ups.UPS_ESTIMATED_MINUTES_REMAINING: ("integer", self.minutes_left),
            ups.UPS_ESTIMATED_CHARGE_REMAINING: ("integer", self.charge_pct),
            ups.UPS_OUTPUT_SOURCE: ("integer", _OUTPUT_SOURCE_CODES[self.output_source]),
            ups.UPS_ALARMS_PRESENT: ("gauge", self.alarms),
        }


def write_ups_state(path: Path, state: UpsState) -> None:
    """Make the snmpd serving `path` say `state` from its next request on (atomic rewrite)."""
    write_oid_table(Path(path), state.oid_table())


def ups_snmpd_config(state_path: Path, python: str = sys.executable) -> list[str]:
    """The snmpd.conf line that serves UPS-MIB from `state_path` (for start_snmpd's extra_config).

    snmpd splits the command at blanks and runs it itself (no shell), also under `ip netns exec`:
    the paths are made absolute and must have no blanks. `python -I` keeps the script's folder
    and the environment's PYTHON* variables out of its imports.
    """
    parts = [str(Path(python).absolute()), str(PASS_PERSIST_SCRIPT), str(Path(state_path).absolute())]
    blank = [p for p in parts if any(c.isspace() for c in p)]
    if blank:
        raise ValueError(f"ups_snmpd_config: snmpd splits pass_persist commands at blanks; these paths have some: {blank}")
    return [f"pass_persist .{ups.UPS_MIB} {parts[0]} -I {parts[1]} {parts[2]}"]


@dataclass
class UpsSnmpd:
    """snmpd on loopback serving UPS-MIB from `state_path`; `set` changes what it says."""

    server: SnmpdServer
    state_path: Path

    def set(self, state: UpsState) -> None:
        write_ups_state(self.state_path, state)

    def stop(self) -> None:
        self.server.stop()


def start_ups_snmpd(workdir: Path, state: UpsState = UpsState(), **snmpd: Any) -> UpsSnmpd:
    """snmpd (collector.localservers.start_snmpd, keyword arguments passed on: host, port,
    community, netns, ...) that also serves UPS-MIB saying `state`, until `stop()`."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state_path = workdir / "ups-state.json"
    write_ups_state(state_path, state)
    extra = [*snmpd.pop("extra_config", ()), *ups_snmpd_config(state_path)]
    return UpsSnmpd(start_snmpd(workdir, extra_config=extra, **snmpd), state_path)
