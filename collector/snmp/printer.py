"""Printer-MIB (RFC 3805) and the printer part of HOST-RESOURCES-MIB (RFC 2790): what the numbers mean.

The OIDs are named here and polled as data (`PRINTER` in profiles.py); this module turns a supply row and the error
bit string into what people mean by them:

- a supply's level is in units of its max capacity (a drum at 28407 of 30000 is 95 %), not
  percent;
- negative levels and capacities are codes, never amounts: -1 other, -2 unknown, -3 "some
  remaining" (RFC 3805 prtMarkerSuppliesLevel);
- for a receptacle (prtMarkerSuppliesClass receptacle(4), or a waste type where a device
  leaves the class column out) the level is the space left, so 100 of 100 is an empty box.
  `left_pct` is thus always "how much is left before it needs changing".

The `printer` profile (profiles.py) polls these columns; the poller (poller.DevicePoller) writes
a `printer_supply` point per supply, `pages_total` and the error state on the `device` point, and
model and serial on the `hardware` point (docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

PRT_SUPPLIES = "1.3.6.1.2.1.43.11.1.1"  # prtMarkerSuppliesEntry
PRT_SUPPLIES_CLASS = f"{PRT_SUPPLIES}.4"
PRT_SUPPLIES_TYPE = f"{PRT_SUPPLIES}.5"
PRT_SUPPLIES_DESCRIPTION = f"{PRT_SUPPLIES}.6"
PRT_SUPPLIES_MAX_CAPACITY = f"{PRT_SUPPLIES}.8"
PRT_SUPPLIES_LEVEL = f"{PRT_SUPPLIES}.9"
PRT_MARKER_LIFE_COUNT = "1.3.6.1.2.1.43.10.2.1.4"  # pages (prtMarkerCounterUnit impressions/sheets)
PRT_GENERAL_SERIAL = "1.3.6.1.2.1.43.5.1.1.17"
HR_DEVICE_DESCR = "1.3.6.1.2.1.25.3.2.1.3"
HR_PRINTER_ERROR_STATE = "1.3.6.1.2.1.25.3.5.1.2"  # hrPrinterDetectedErrorState, a BITS string

CLASS_CONSUMED, CLASS_RECEPTACLE = 3, 4

# PrtMarkerSuppliesTypeTC (RFC 3805), the ones offices meet and every waste kind.
SUPPLY_TYPES = MappingProxyType({
    1: "other", 2: "unknown", 3: "toner", 4: "waste_toner", 5: "ink", 6: "ink_cartridge", 7: "ink_ribbon",
    8: "waste_ink", 9: "drum", 10: "developer", 11: "fuser_oil", 14: "waste_wax", 15: "fuser",
    18: "cleaner_unit", 20: "transfer_unit", 21: "toner_cartridge", 24: "waste_water", 26: "waste_paper",
    32: "staples",
})
# Waste types are receptacles even where the class column is missing (all recordings but jetdirect).
RECEPTACLE_TYPES = frozenset({4, 8, 14, 24, 26})

LEVEL_CODES = MappingProxyType({-1: "other", -2: "unknown", -3: "some_remaining"})

# hrPrinterDetectedErrorState bits, bit 0 = the most significant bit of the first octet (RFC 2790, 3805).
ERROR_BITS = (
    "low_paper", "no_paper", "low_toner", "no_toner", "door_open", "jammed", "offline", "service_requested",
    "input_tray_missing", "output_tray_missing", "marker_supply_missing", "output_near_full", "output_full",
    "input_tray_empty", "overdue_prevent_maint",
)

# The bits that warn without stopping the printer (alerting's printer_error leaves them out).
WARNING_CONDITIONS = frozenset({"low_paper", "low_toner", "output_near_full", "overdue_prevent_maint"})


@dataclass(frozen=True)
class SupplyLevel:
    left_pct: float | None  # what is left before it needs changing (space left for a receptacle); None: not a number
    state: str  # "ok", "empty" (or "full" for a receptacle), "some_remaining", "unknown", "other"
    receptacle: bool


def is_receptacle(supply_class: int | None, supply_type: int | None) -> bool:
    if supply_class in (CLASS_CONSUMED, CLASS_RECEPTACLE):
        return supply_class == CLASS_RECEPTACLE
    return supply_type in RECEPTACLE_TYPES


def supply_level(level: int | None, max_capacity: int | None, supply_class: int | None = None,
                 supply_type: int | None = None) -> SupplyLevel:
    """One prtMarkerSuppliesEntry's level as a percentage of its max capacity, codes kept as codes."""
    receptacle = is_receptacle(supply_class, supply_type)
    if level is None:
        return SupplyLevel(None, "unknown", receptacle)
    if level < 0:
        return SupplyLevel(None, LEVEL_CODES.get(level, "unknown"), receptacle)
    if max_capacity is None or max_capacity <= 0:
        # -1/-2 capacity (or 0): the level has no scale, so it is no percentage. Brother sends
        # level 0 here for a cartridge it reports as -3 "some remaining" in its next row.
        return SupplyLevel(None, "unknown", receptacle)
    pct = round(100.0 * min(level, max_capacity) / max_capacity, 1)
    if level == 0:
        return SupplyLevel(0.0, "full" if receptacle else "empty", receptacle)
    return SupplyLevel(pct, "ok", receptacle)


def error_bits(raw: bytes) -> list[str]:
    """The names of the set bits of hrPrinterDetectedErrorState (`bit<n>` for bits RFC 3805 does not name)."""
    out = []
    for n in range(len(raw) * 8):
        if raw[n // 8] & (0x80 >> (n % 8)):
            out.append(ERROR_BITS[n] if n < len(ERROR_BITS) else f"bit{n}")
    return out


def octets(value: str | bytes) -> bytes:
    """The bytes of an OCTET STRING as SnmpSession returns it (session.decode_octets): hex for
    binary values, text for printable ones, '' for all-zero (trailing NULs dropped).

    A printable value that is also an even run of hex digits is read as hex; for this bit
    string that would take set bits 2-3 (low and no toner) in every octet, which no recording has.
    """
    if isinstance(value, bytes):
        return value
    if value and len(value) % 2 == 0 and all(c in "0123456789abcdef" for c in value):
        return bytes.fromhex(value)
    return value.encode("utf-8")
