"""MIKROTIK-MIB (enterprise 14988), as RouterOS answers it: the OIDs and what their values mean.

The OIDs are polled as data (`MIKROTIK` in profiles.py). RouterOS's ENTITY-MIB chassis row is
there but empty (no model, no serial: entPhysicalDescr only says "RouterOS 6.40.5 (stable) on
RB952Ui-5ac2nD"), so model, serial and versions come from MikroTik's own objects:

- mtxrSystem 1.3.6.1.4.1.14988.1.1.7: the RouterBOARD serial, the RouterBOOT firmware and the
  board name. mtxrBoardName (.9) and mtxrDisplayName (.8) came with later MIB revisions (the
  2017 revision ends at mtxrFirmwareUpgradeVersion, .7), so an older RouterOS has no board name
  and the model is read from sysDescr ("RouterOS RB951Ui-2HnD") instead;
- mtxrLicVersion 1.3.6.1.4.1.14988.1.1.4.4: the RouterOS version ("software version"), which is
  what an administrator upgrades, so it is the device's `firmware`;
- the temperature: RouterOS 6.47 and later list their sensors in mtxrGaugeTable
  (mtxrHealth.100: name, value, unit), whole degrees for unit celsius(1), decivolts for dV(3);
  the device's temperature is the hottest celsius row ("temperature", "cpu-temperature", ...).
  Older releases have one scalar instead, mtxrHlTemperature (mtxrHealth.10), in tenths of a
  degree (the MIB's Temperature convention, DISPLAY-HINT "d-1"). Boards without a sensor
  answer neither (a Zabbix template names the RB941-2nD and RB951G-2HnD), so the field is absent.

Verified against the MIB text (librenms/librenms mibs/mikrotik/MIKROTIK-MIB, revision
202305010000Z), the LibreNMS recording tests/snmpsim/routeros.snmprec (RouterOS 6.40.5 on an
RB952Ui-5ac2nD: 7.3.0 "71B1060EE89D", 4.4.0 "6.40.5", 3.10.0 330, all OCTET STRING or
INTEGER as typed below; no 7.4, 7.9) and a published walk of mtxrSystem on RouterOS 7.20.6 on a
CRS305-1G-4S+ (7.3.0 "HCD083VRQ4B", 7.4.0 "7.20.6", 7.8.0 and 7.9.0 "CRS305-1G-4S+"), in
OtisPresley/snmp-switch-manager issue 42, and a published OID inventory of RouterOS 7.21.1 on an
RB3011UiAS (sysDescr "RouterOS RB3011UiAS", 4.4.0 "7.21.1" while RouterBOOT 7.4.0 is still
"7.19.4", 7.9.0 "RB3011UiAS", gauge rows 13 "voltage" 240 and 14 "temperature" 31). The
mtxrGaugeUnit values are from the MIB text only: none of these shows that column. Read to learn
only; nothing is copied.

Scalars end in .0; the mtxrGaugeTable columns are walked.
"""

from __future__ import annotations

from typing import Any

# sysObjectID of every RouterOS device (routers, CRS switches, access points alike):
# mikrotikExperimentalModule. SwOS switches answer 1.3.6.1.4.1.14988.2 and have no MIKROTIK-MIB.
ROUTEROS_SYS_OBJECT_ID = "1.3.6.1.4.1.14988.1"

_MTXR = "1.3.6.1.4.1.14988.1.1"  # mtXRouterOs
MTXR_HL_TEMPERATURE = f"{_MTXR}.3.10.0"  # mtxrHlTemperature, Temperature (tenths of a degree C)
MTXR_GAUGE_NAME = f"{_MTXR}.3.100.1.2"  # mtxrGaugeName, DisplayString ("temperature", "cpu-temperature")
MTXR_GAUGE_VALUE = f"{_MTXR}.3.100.1.3"  # mtxrGaugeValue, Gauge32 in the row's mtxrGaugeUnit
MTXR_GAUGE_UNIT = f"{_MTXR}.3.100.1.4"  # mtxrGaugeUnit: celsius(1) rpm(2) dV(3) dA(4) dW(5) status(6)
GAUGE_UNIT_CELSIUS = 1
MTXR_LIC_VERSION = f"{_MTXR}.4.4.0"  # mtxrLicVersion, DisplayString: the RouterOS version
MTXR_SERIAL_NUMBER = f"{_MTXR}.7.3.0"  # mtxrSerialNumber, DisplayString: "RouterBOARD serial number"
MTXR_FIRMWARE_VERSION = f"{_MTXR}.7.4.0"  # mtxrFirmwareVersion, DisplayString: RouterBOOT firmware
MTXR_BOARD_NAME = f"{_MTXR}.7.9.0"  # mtxrBoardName, DisplayString

# RouterOS's sysDescr is "RouterOS " and the board name; some releases say only "router".
_SYS_DESCR_PREFIX = "RouterOS "


def tenths(value: Any) -> float | None:
    """A MIKROTIK-MIB Temperature (DISPLAY-HINT "d-1") -> degrees: 330 -> 33.0; None for a non-integer."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value / 10


def model_from_sys_descr(value: Any) -> str | None:
    """The board name in RouterOS's sysDescr: "RouterOS RB951Ui-2HnD" -> "RB951Ui-2HnD"; None when
    sysDescr names no board ("router", empty, anything not RouterOS's shape)."""
    if not isinstance(value, str) or not value.startswith(_SYS_DESCR_PREFIX):
        return None
    model = value[len(_SYS_DESCR_PREFIX):].strip()
    return model or None
