"""Profiles are data: numeric OIDs that the recorded devices really answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.snmp.profiles import MODULES, PROFILES, SYS_OBJECT_ID, select_profile
from collector.snmp.session import oid_tuple
from collector.snmp.snmprec import load_snmprec

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")


EXPECTED_PROFILE = {
    "fortigate_60f": "fortigate",
    "fortigate_100e": "fortigate",
    "procurve_e2910": "procurve",
    "ios_2960x": "cisco",
    "edgeswitch_es-24-250w": "generic",
    "apc_smt750x-nmc2": "apc_ups",
    "apc_sua750i": "apc_ups",
    # UPS-MIB UPSes under their vendors' sysObjectIDs: generic until probed (test_snmp_ups.py).
    "eaton-mgeups_9px": "generic",
    "dell-ups_tower1000w": "generic",
}
# Which recordings show each vendor module (every OID there must be answered by one of them).
VENDOR_RECORDINGS = {
    "fortigate": ("fortigate_60f", "fortigate_100e"),
    "procurve": ("procurve_e2910",),
    "cisco": ("ios_2960x",),
    # okilan_9450g is left out: line 23 (ifOutUcastPkts "6git3159") is no Counter32, so load_snmprec
    # refuses the file (snmpsim serves the rest; tests/test_snmp_printer_poller.py polls it).
    "printer": ("jetdirect_m252dw", "ricoh_mpc3002", "konica_c250i", "brother_hl5370dw"),
    "ups_mib": ("eaton-mgeups_9px", "dell-ups_tower1000w"),
    "apc_ups": ("apc_sua750i", "apc_smt750x-nmc2"),
}
# Read by the module but absent from every recording of its family, with the reason.
NOT_RECORDED = {
    # fgHaSystemMode: neither capture has it; the MIB (and Fortinet's docs) define it at
    # fgHaInfo.1 = 1.3.6.1.4.1.12356.101.13.1.1.0, standalone(1)/activeActive(2)/activePassive(3).
    "1.3.6.1.4.1.12356.101.13.1.1.0",
    # RFC 1628: upsIdentModel (upsIdent.2) and upsAlarmsPresent (upsAlarm.1) are mandatory, but
    # neither the Eaton nor the Dell capture has them (tests/test_snmp_ups_snmpd.py serves both).
    "1.3.6.1.2.1.33.1.1.2.0", "1.3.6.1.2.1.33.1.6.1.0",
    # PowerNet-MIB: upsBasicBatteryStatus (.2.1.1), upsBasicBatteryTimeOnBattery (.2.1.2) and
    # upsAdvBatteryCapacity (.2.2.1) are not in either APC capture; both have the high-precision
    # capacity (.2.3.1, tenths of a percent) instead.
    "1.3.6.1.4.1.318.1.1.1.2.1.1.0", "1.3.6.1.4.1.318.1.1.1.2.1.2.0", "1.3.6.1.4.1.318.1.1.1.2.2.1.0",
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PROFILE))
def test_sys_object_id_picks_profile(shared_dir: Path, name: str) -> None:
    values = load_snmprec(shared_dir / "snmprec" / f"{name}.snmprec")
    assert select_profile(values[SYS_OBJECT_ID]).name == EXPECTED_PROFILE[name]


def test_selection_rules() -> None:
    assert select_profile(None).name == "generic"
    assert select_profile("1.3.6.1.4.1.12356.101.1.9999").name == "fortigate"
    assert select_profile(".1.3.6.1.4.1.9.1.1208").name == "cisco"
    assert select_profile("1.3.6.1.4.1.91").name == "generic"  # a prefix of digits is not an OID prefix
    # HP/Aruba stacks (e.g. an Aruba 3810M stack) are under 1.3.6.1.4.1.11.2.3.7.8. No shared recording
    # has such a sysObjectID (procurve_e2910 only uses that branch for module and PSU entPhysicalVendorType),
    # so the selection is all this proves.
    assert select_profile("1.3.6.1.4.1.11.2.3.7.8.5.5").name == "procurve"
    assert select_profile("1.3.6.1.4.1.11.2.3.7.8").name == "procurve"
    assert select_profile("1.3.6.1.4.1.11.2.3.7.80.1").name == "generic"
    assert select_profile("1.3.6.1.4.1.9.1.1208", override="generic").name == "generic"
    with pytest.raises(ValueError, match="unknown SNMP profile 'junos'"):
        select_profile(None, override="junos")


def test_every_oid_is_numeric_and_scalars_are_instances() -> None:
    for profile in PROFILES.values():
        for scalar in profile.scalars():
            assert oid_tuple(scalar.oid)[-1] == 0, scalar.name
        for column in profile.columns():
            oid_tuple(column.oid)
        for aggregate in profile.aggregates():
            known = {c.oid for c in profile.columns()}
            assert set(aggregate.column_oids()) <= known, (profile.name, aggregate.field)


@pytest.mark.parametrize("module", sorted(VENDOR_RECORDINGS))
def test_vendor_oids_are_answered_by_the_recordings(shared_dir: Path, module: str) -> None:
    recorded: dict[str, object] = {}
    for name in VENDOR_RECORDINGS[module]:
        recorded.update(load_snmprec(shared_dir / "snmprec" / f"{name}.snmprec"))
    for scalar in MODULES[module].scalars:
        if scalar.oid not in NOT_RECORDED:
            assert scalar.oid in recorded, f"{module}: {scalar.name} {scalar.oid} not in any recording"
    for column in MODULES[module].columns:
        assert any(oid.startswith(column.oid + ".") for oid in recorded), f"{module}: {column.name} {column.oid}"


@pytest.mark.parametrize("name", ["fortigate_60f", "procurve_e2910", "ios_2960x", "edgeswitch_es-24-250w"])
def test_if_mib_and_entity_columns_are_recorded(shared_dir: Path, name: str) -> None:
    recorded = load_snmprec(shared_dir / "snmprec" / f"{name}.snmprec")
    # The documented gaps of the LibreNMS captures: no ifSpeed, no 32-bit octets; ifAlias not on
    # the EdgeSwitch; the 60F ENTITY table has no class/revisions/vendor columns.
    allowed_missing = {"ifSpeed", "ifInOctets", "ifOutOctets"}
    if name == "edgeswitch_es-24-250w":
        allowed_missing |= {"ifAlias"}
    if name == "fortigate_60f":
        allowed_missing |= {"entPhysicalClass", "entPhysicalHardwareRev", "entPhysicalFirmwareRev",
                            "entPhysicalSoftwareRev", "entPhysicalMfgName"}
    for module in ("if_mib", "entity"):
        for column in MODULES[module].columns:
            present = any(oid.startswith(column.oid + ".") for oid in recorded)
            assert present or column.name in allowed_missing, f"{name}: {column.name}"
