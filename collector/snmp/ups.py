"""UPS-MIB (RFC 1628) and APC PowerNet-MIB (enterprise 318): the OIDs and what their values mean.

The OIDs are polled as data (`UPS_MIB` and `APC_UPS` in profiles.py); the functions here turn a
raw value into the `device` field it stands for (docs/metrics.md), each returning None for a
value that is no value, so the field is left out rather than stored wrong:

- both MIBs speak of where the output comes from; PowerNet's 28 output states are put into
  UPS-MIB's words (`normal`, `battery`, `bypass`, ...) where they mean the same, so one
  `ups_output_source` and one `ups_on_battery` mean the same thing for every vendor;
- APC sends times as TimeTicks (hundredths of a second) and 2**32-1 for "not supported";
- APC sends dates as text, "mm/dd/yy" or "mm/dd/yyyy", with nothing stopping a card from
  sending "00/00/00" or "unknown": anything that is not a real calendar date is no date.

All scalars: the OIDs below end in .0. A probe (profiles.Profile.probe) walks an object OID, so
the object OIDs of the two UPS-MIB scalars that say "this is a UPS" are named too.
"""

from __future__ import annotations

import datetime
import re
from types import MappingProxyType
from typing import Any

# ---------------------------------------------------------------- UPS-MIB (RFC 1628), upsObjects 1.3.6.1.2.1.33.1

UPS_MIB = "1.3.6.1.2.1.33"
UPS_IDENT_MANUFACTURER = f"{UPS_MIB}.1.1.1.0"
UPS_IDENT_MODEL = f"{UPS_MIB}.1.1.2.0"
UPS_IDENT_AGENT_SOFTWARE = f"{UPS_MIB}.1.1.4.0"
UPS_BATTERY_STATUS_OBJECT = f"{UPS_MIB}.1.2.1"
UPS_BATTERY_STATUS = f"{UPS_BATTERY_STATUS_OBJECT}.0"
UPS_SECONDS_ON_BATTERY = f"{UPS_MIB}.1.2.2.0"
UPS_ESTIMATED_MINUTES_REMAINING = f"{UPS_MIB}.1.2.3.0"
UPS_ESTIMATED_CHARGE_REMAINING = f"{UPS_MIB}.1.2.4.0"  # percent
UPS_OUTPUT_SOURCE_OBJECT = f"{UPS_MIB}.1.4.1"
UPS_OUTPUT_SOURCE = f"{UPS_OUTPUT_SOURCE_OBJECT}.0"
UPS_ALARMS_PRESENT = f"{UPS_MIB}.1.6.1.0"  # Gauge32: rows of upsAlarmTable

# upsBatteryStatus
BATTERY_STATUS = MappingProxyType({1: "unknown", 2: "normal", 3: "low", 4: "depleted"})
# upsOutputSource
OUTPUT_SOURCE = MappingProxyType({1: "other", 2: "none", 3: "normal", 4: "bypass", 5: "battery", 6: "booster", 7: "reducer"})
LOW_BATTERY = frozenset({"low", "depleted"})
ON_BATTERY = "battery"

# ---------------------------------------------------------------- PowerNet-MIB ups group 1.3.6.1.4.1.318.1.1.1

APC_ENTERPRISE = "1.3.6.1.4.1.318"
APC_UPS = f"{APC_ENTERPRISE}.1.1.1"
APC_BASIC_IDENT_MODEL = f"{APC_UPS}.1.1.1.0"  # "Smart-UPS 750"
APC_ADV_IDENT_FIRMWARE = f"{APC_UPS}.1.2.1.0"  # the UPS's own firmware, not the card's
APC_ADV_IDENT_SERIAL = f"{APC_UPS}.1.2.3.0"
APC_BASIC_BATTERY_STATUS = f"{APC_UPS}.2.1.1.0"
APC_BASIC_BATTERY_TIME_ON_BATTERY = f"{APC_UPS}.2.1.2.0"  # TimeTicks
APC_BASIC_BATTERY_LAST_REPLACE_DATE = f"{APC_UPS}.2.1.3.0"  # "mm/dd/yy"
APC_ADV_BATTERY_CAPACITY = f"{APC_UPS}.2.2.1.0"  # percent
APC_ADV_BATTERY_RUNTIME_REMAINING = f"{APC_UPS}.2.2.3.0"  # TimeTicks
APC_ADV_BATTERY_REPLACE_INDICATOR = f"{APC_UPS}.2.2.4.0"
APC_ADV_BATTERY_RECOMMENDED_REPLACE_DATE = f"{APC_UPS}.2.2.21.0"  # "mm/dd/yyyy"
APC_HIGH_PREC_BATTERY_CAPACITY = f"{APC_UPS}.2.3.1.0"  # tenths of a percent
APC_BASIC_OUTPUT_STATUS = f"{APC_UPS}.4.1.1.0"

# upsBasicBatteryStatus: 4 and 5 have no UPS-MIB word; they are not "low" (the charge may be
# full), so they keep their own.
APC_BATTERY_STATUS = MappingProxyType({1: "unknown", 2: "normal", 3: "low", 4: "fault", 5: "not_present"})
# upsBasicOutputStatus in UPS-MIB's upsOutputSource words where it means the same: onLine is
# normal, every bypass is bypass (the load is unprotected either way), smart boost/trim are
# booster/reducer, off is none. The states UPS-MIB has no word for keep PowerNet's name. A
# battery test (15) and a self test (28) run on battery on purpose, not because the power is
# gone: they are not `battery`, so a weekly test raises no on-battery alarm.
APC_OUTPUT_STATUS = MappingProxyType({
    1: "unknown", 2: "normal", 3: "battery", 4: "booster", 5: "sleeping", 6: "bypass", 7: "none", 8: "rebooting",
    9: "bypass", 10: "bypass", 11: "sleeping", 12: "reducer", 13: "eco_mode", 14: "hot_standby", 15: "battery_test",
    16: "bypass", 17: "bypass_standby", 18: "power_saving", 19: "spot_mode", 20: "e_conversion",
    21: "charger_spot_mode", 22: "inverter_spot_mode", 23: "active_load", 24: "battery_discharge_spot_mode",
    25: "inverter_standby", 26: "charger_only", 27: "distributed_energy_reserve", 28: "self_test",
})
# upsAdvBatteryReplaceIndicator: noBatteryNeedsReplacing(1), batteryNeedsReplacing(2)
APC_REPLACE_INDICATOR = MappingProxyType({1: 0.0, 2: 1.0})
# TimeTicks 2**32-1: PowerNet's "not supported" (runtime 715827 min would be 81 years).
TIMETICKS_UNSUPPORTED = 2**32 - 1


# ---------------------------------------------------------------- value -> field


def _code(value: Any, table: MappingProxyType[int, Any]) -> Any:
    return table.get(value) if isinstance(value, int) and not isinstance(value, bool) else None


def battery_status(value: Any) -> str | None:
    """upsBatteryStatus -> `normal`, `low`, `depleted`, `unknown`; None for a code RFC 1628 does not have."""
    return _code(value, BATTERY_STATUS)


def battery_low(value: Any) -> float | None:
    """upsBatteryStatus -> 1.0 when low or depleted, 0.0 when normal; None when unknown (or no code)."""
    status = battery_status(value)
    return None if status in (None, "unknown") else float(status in LOW_BATTERY)


def apc_battery_status(value: Any) -> str | None:
    """upsBasicBatteryStatus -> `normal`, `low`, `fault`, `not_present`, `unknown`."""
    return _code(value, APC_BATTERY_STATUS)


def apc_battery_low(value: Any) -> float | None:
    """upsBasicBatteryStatus -> 1.0 when batteryLow; None when unknown (or no code)."""
    status = apc_battery_status(value)
    return None if status in (None, "unknown") else float(status in LOW_BATTERY)


def output_source(value: Any) -> str | None:
    """upsOutputSource -> `other`, `none`, `normal`, `bypass`, `battery`, `booster`, `reducer`."""
    return _code(value, OUTPUT_SOURCE)


def on_battery(value: Any) -> float | None:
    """upsOutputSource -> 1.0 when the output comes from the battery (battery(5)), else 0.0."""
    source = output_source(value)
    return None if source is None else float(source == ON_BATTERY)


def apc_output_source(value: Any) -> str | None:
    """upsBasicOutputStatus in UPS-MIB's words where they exist (APC_OUTPUT_STATUS)."""
    return _code(value, APC_OUTPUT_STATUS)


def apc_on_battery(value: Any) -> float | None:
    """upsBasicOutputStatus -> 1.0 for onBattery(3) only (a battery test is not a power cut), else 0.0."""
    source = apc_output_source(value)
    return None if source is None else float(source == ON_BATTERY)


def ticks_to_seconds(value: Any) -> float | None:
    """TimeTicks (hundredths of a second) -> seconds; None for 2**32-1 (not supported)."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= TIMETICKS_UNSUPPORTED:
        return None
    return value / 100


def ticks_to_minutes(value: Any) -> float | None:
    """TimeTicks -> minutes, to a hundredth (438000 -> 73.0); None for 2**32-1 (not supported)."""
    seconds = ticks_to_seconds(value)
    return None if seconds is None else round(seconds / 60, 2)


def non_negative(value: Any) -> float | None:
    """upsSecondsOnBattery, upsEstimatedMinutesRemaining, upsAlarmsPresent as a number; None below 0."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return None
    return float(value)


def percent(value: Any) -> float | None:
    """upsEstimatedChargeRemaining, upsAdvBatteryCapacity -> percent; None outside 0..100."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100:
        return None
    return float(value)


def tenths_to_pct(value: Any) -> float | None:
    """upsHighPrecBatteryCapacity (tenths of a percent: 1000 is full) -> percent; None outside 0..100 %."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 1000:
        return None
    return value / 10


def replace_needed(value: Any) -> float | None:
    """upsAdvBatteryReplaceIndicator -> 1.0 batteryNeedsReplacing, 0.0 noBatteryNeedsReplacing."""
    return _code(value, APC_REPLACE_INDICATOR)


_MDY = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})")
# POSIX's pivot for two-digit years (as strptime's %y): 69-99 are 19xx, 00-68 are 20xx.
_CENTURY_PIVOT = 69


def mdy_date(value: Any) -> str | None:
    """An APC date, "mm/dd/yy" (upsBasicBatteryLastReplaceDate) or "mm/dd/yyyy"
    (upsAdvBatteryRecommendedReplaceDate), as an ISO date; None for anything that is not a real
    calendar date ("00/00/00", "13/40/2022", "unknown", a number)."""
    if not isinstance(value, str):
        return None
    match = _MDY.fullmatch(value.strip())
    if match is None:
        return None
    month, day, year_text = match.groups()
    year = int(year_text)
    if len(year_text) == 2:
        year += 1900 if year >= _CENTURY_PIVOT else 2000
    try:
        return datetime.date(year, int(month), int(day)).isoformat()
    except ValueError:
        return None


def replace_date_stale(replace_date: object, last_replaced: object) -> bool:
    """True when a UPS's recommended replacement date is not after its last battery replacement:
    whoever changed the battery did not set a new date (the APC Smart-UPS 750 recording: replaced
    2025-04-30, "replace by" still 2022-01-10). Both are the ISO dates of the `device` fields."""
    return isinstance(replace_date, str) and isinstance(last_replaced, str) and replace_date <= last_replaced
