"""SnmpSession against real agents: snmpsim serving the LibreNMS recordings, and net-snmp's snmpd.

Walk results are compared with net-snmp's own snmpbulkwalk/snmpwalk run in the test, not
with numbers copied from somewhere.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from pyasn1.type import univ
from pysnmp.proto import rfc1902, rfc1905

from collector.localservers import SnmpdServer, SnmpsimServer, SnmpV3User, start_snmpd
from collector.snmp.session import SnmpAuth, SnmpError, SnmpSession, decode_octets, oid_tuple, to_python

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")


SYS_NAME = "1.3.6.1.2.1.1.5.0"
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"


def net_snmp_env(tmp: Path) -> dict[str, str]:
    """snmpbulkwalk without MIB loading and without touching /var/lib/snmp or ~/.snmp."""
    tmp.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNMP", "MIB"))}
    env.update(SNMPCONFPATH=str(tmp), SNMP_PERSISTENT_DIR=str(tmp), MIBDIRS=str(tmp), MIBS="", HOME=str(tmp))
    return env


# What net-snmp prints, against the last OID, when a walk runs past the agent's last OID.
_NET_SNMP_END_OF_VIEW = "No more variables left in this MIB View"


def net_snmp_walk(argv: list[str], env: dict[str, str]) -> dict[str, str]:
    """Run snmpwalk/snmpbulkwalk with -On -Oq; {oid: value text (quotes stripped)}."""
    proc = subprocess.run([*argv[:1], "-On", "-Oq", *argv[1:]], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, f"{argv}: {proc.stderr}"
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith(".1."):
            continue  # continuation line of a multi-line string
        oid, _, value = line.partition(" ")
        if value.startswith(_NET_SNMP_END_OF_VIEW):
            continue  # no value: the walk ran past the agent's last OID
        out[oid.lstrip(".")] = value.strip().strip('"')
    return out



def v2c(server: SnmpsimServer | SnmpdServer, community: str, **kw: object) -> SnmpSession:
    return SnmpSession(server.host, server.port, SnmpAuth("2c", community=community), device=f"dev-{community}", **kw)


# ---------------------------------------------------------------- unit level


def test_values_become_plain_python() -> None:
    assert to_python(rfc1902.Counter64(2**40)) == 2**40
    assert to_python(rfc1902.TimeTicks(12345)) == 12345
    assert to_python(rfc1902.Gauge32(7)) == 7
    assert to_python(univ.ObjectIdentifier("1.3.6.1.4.1.12356.101.1.644")) == "1.3.6.1.4.1.12356.101.1.644"
    assert to_python(rfc1902.IpAddress("10.20.0.1")) == "10.20.0.1"
    assert to_python(rfc1902.OctetString(b"wan1")) == "wan1"
    assert to_python(rfc1902.OctetString(b"line1\r\nline2")) == "line1\r\nline2"
    assert to_python(rfc1902.OctetString(b"\x00\x1b\x21\x3c\x4d\x5e")) == "001b213c4d5e"  # a MAC: hex
    assert to_python(rfc1902.OctetString(b"FGT60F\x00")) == "FGT60F"  # C-terminated
    assert to_python(rfc1905.NoSuchInstance("")) is None
    assert to_python(rfc1905.NoSuchObject("")) is None
    assert decode_octets("Rådhus".encode()) == "Rådhus"
    assert decode_octets(b"\xff\xfe") == "fffe"


def test_auth_validation_and_security_level() -> None:
    assert SnmpAuth("2c", community="x").security_level == "noAuthNoPriv"
    assert SnmpAuth("3", user="u", auth_protocol="SHA", auth_key="12345678").security_level == "authNoPriv"
    level = SnmpAuth("3", user="u", auth_protocol="SHA", auth_key="12345678", priv_protocol="AES", priv_key="87654321")
    assert level.security_level == "authPriv"
    assert "12345678" not in repr(level) and "87654321" not in repr(level)
    with pytest.raises(ValueError, match="needs a community"):
        SnmpAuth("2c")
    with pytest.raises(ValueError, match="needs authentication"):
        SnmpAuth("3", user="u", priv_protocol="AES", priv_key="87654321")
    with pytest.raises(ValueError, match="auth_protocol must be one of"):
        SnmpAuth("3", user="u", auth_protocol="SHA-1", auth_key="12345678")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a numeric OID"):
        oid_tuple("IF-MIB::ifName")


# ---------------------------------------------------------------- snmpsim recordings


@pytest.mark.parametrize(
    ("community", "prefix"),
    [
        ("fortigate_60f", "1.3.6.1.2.1.31.1.1"),  # ifXTable, Counter64s
        ("fortigate_60f", "1.3.6.1.4.1.12356"),  # everything Fortinet, ends the recording
        ("procurve_e2910", "1.3.6.1.2.1.2.2"),  # partial ifTable
        ("ios_2960x", "1.3.6.1.2.1.47"),  # ENTITY-MIB, 2705 OIDs: many GETBULK rounds
        ("ios_2960x", "1.3.6.1.2.1.1"),  # multi-line sysDescr
    ],
)
def test_getbulk_walk_matches_snmpbulkwalk(snmpsim: SnmpsimServer, tmp_path: Path, community: str, prefix: str) -> None:
    expected = net_snmp_walk(
        ["snmpbulkwalk", "-v2c", "-c", community, f"{snmpsim.host}:{snmpsim.port}", prefix], net_snmp_env(tmp_path)
    )
    got = asyncio.run(v2c(snmpsim, community).walk(prefix))
    assert [oid for oid, _ in got] == list(expected)  # same OIDs, same order, nothing past the subtree
    assert len(got) > 5


def test_small_max_repetitions_and_missing_instances(snmpsim: SnmpsimServer) -> None:
    async def scenario() -> None:
        session = v2c(snmpsim, "fortigate_100e", max_repetitions=3)
        names = await session.walk("1.3.6.1.2.1.31.1.1.1.1")
        assert [v for _, v in names][:3] == ["dmz", "mgmt", "wan1"]
        # ifIndex is not in the recordings: noSuchInstance is "absent", not an error.
        got = await session.get(["1.3.6.1.2.1.2.2.1.1.1", "1.3.6.1.2.1.1.2.0"])
        assert got == {"1.3.6.1.2.1.1.2.0": "1.3.6.1.4.1.12356.101.1.1041"}
        assert await session.walk("1.3.6.1.4.1.99999") == []

    asyncio.run(scenario())


# ---------------------------------------------------------------- net-snmp snmpd


def test_v1_walk_uses_getnext_and_matches_snmpwalk(snmpd: SnmpdServer) -> None:
    expected = net_snmp_walk(
        ["snmpwalk", "-v1", "-c", snmpd.community, f"{snmpd.host}:{snmpd.port}", "1.3.6.1.2.1.1"], snmpd.net_snmp_env()
    )
    session = SnmpSession(snmpd.host, snmpd.port, SnmpAuth("1", community=snmpd.community), device="v1-dev")

    async def scenario() -> None:
        walked = await session.walk("1.3.6.1.2.1.1")
        assert [oid for oid, _ in walked] == list(expected)
        # v1 has no noSuchInstance: the session drops the missing OID and asks again for the rest.
        got = await session.get([SYS_NAME, "1.3.6.1.2.1.1.99.0", SYS_UPTIME])
        assert got[SYS_NAME] == snmpd.sys_name and isinstance(got[SYS_UPTIME], int)
        assert "1.3.6.1.2.1.1.99.0" not in got

    asyncio.run(scenario())


def test_v2c_get(snmpd: SnmpdServer) -> None:
    got = asyncio.run(v2c(snmpd, snmpd.community).get([SYS_NAME, SYS_UPTIME]))
    assert got[SYS_NAME] == snmpd.sys_name
    assert got[SYS_UPTIME] > 0


def test_v3_get_for_every_fixture_user(snmpd: SnmpdServer) -> None:
    async def scenario() -> None:
        for user in snmpd.v3_users:
            auth = SnmpAuth(
                "3", user=user.name, auth_protocol=user.auth_protocol, auth_key=user.auth_key,
                priv_protocol=user.priv_protocol, priv_key=user.priv_key,
            )
            got = await SnmpSession(snmpd.host, snmpd.port, auth, device=user.name).get([SYS_NAME])
            assert got == {SYS_NAME: snmpd.sys_name}, user.name

    levels = {SnmpAuth("3", user=u.name, auth_protocol=u.auth_protocol, auth_key=u.auth_key,
                       priv_protocol=u.priv_protocol, priv_key=u.priv_key).security_level for u in snmpd.v3_users}
    assert "authPriv" in levels and any(u.auth_protocol == "SHA" and u.priv_protocol == "AES" for u in snmpd.v3_users)
    asyncio.run(scenario())


def test_v3_aes256_with_short_sha1_key_matches_net_snmp(tmp_path: Path) -> None:
    """SHA-1 keys are too short for AES-256: net-snmp extends them the Blumenthal way.

    With SHA-512 (the fixture user) the key is long enough and every variant agrees, so this
    needs its own agent with a SHA/AES-256 user.
    """
    user = SnmpV3User("nv-sha-aes256", "SHA", "auth-secret-7", "AES-256", "priv-secret-7")
    server = start_snmpd(tmp_path / "snmpd", community="unused-here", v3_users=[user])
    try:
        auth = SnmpAuth("3", user=user.name, auth_protocol="SHA", auth_key="auth-secret-7",
                        priv_protocol="AES-256", priv_key="priv-secret-7")
        got = asyncio.run(SnmpSession(server.host, server.port, auth, timeout_s=2, retries=0).get([SYS_UPTIME]))
        assert got[SYS_UPTIME] >= 0
    finally:
        server.stop()


def test_v3_wrong_key_is_an_error_naming_device_and_oid(snmpd: SnmpdServer) -> None:
    user = next(u for u in snmpd.v3_users if u.auth_protocol)
    auth = SnmpAuth("3", user=user.name, auth_protocol=user.auth_protocol, auth_key="not-the-right-key")
    session = SnmpSession(snmpd.host, snmpd.port, auth, timeout_s=1, retries=0, device="fw-test")
    with pytest.raises(SnmpError) as info:
        asyncio.run(session.get([SYS_NAME]))
    assert "fw-test" in str(info.value) and SYS_NAME in str(info.value)
    assert "authentication failed" in str(info.value)


def test_wrong_community_times_out_with_device_and_oid(snmpd: SnmpdServer) -> None:
    session = SnmpSession(snmpd.host, snmpd.port, SnmpAuth("2c", community="wrong"), timeout_s=0.5, retries=0,
                          device="sw-test")
    with pytest.raises(SnmpError) as info:
        asyncio.run(session.walk("1.3.6.1.2.1.2.2"))
    assert str(info.value).startswith("sw-test: SNMP 1.3.6.1.2.1.2.2: timeout")
