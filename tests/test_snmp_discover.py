"""Discovery sweep (`python -m collector.snmp.discover`, the body of `nettvakt discover`) on loopback.

127.0.0.0/29 holds: a ProCurve recording on .2 (community from the inventory), an
EdgeSwitch recording on .3 (--community), a real snmpd on .4 (a v3 user from the
inventory), all on the same UDP port; every 127/8 address answers ICMP.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from collector.config import load_inventory, parse_inventory
from collector.localservers import SnmpV3User, free_port, start_snmpd, start_snmpsim
from collector.snmp.discover import (
    LLDP_LOC_PORT_DESC,
    LLDP_LOC_PORT_ID,
    LLDP_REM_CHASSIS_ID,
    LLDP_REM_PORT_ID,
    LLDP_REM_SYS_NAME,
    parse_targets,
    slug,
)
from inventories import InventoryBuilder
from test_snmp_session import net_snmp_env, net_snmp_walk

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

DISCOVER = [sys.executable, "-m", "collector.snmp.discover"]
REPO = Path(__file__).resolve().parents[1]
V3_USER = SnmpV3User("nv-discover", "SHA-256", "disc-auth-secret", "AES", "disc-priv-secret")


def known_devices(folder: Path, port: int) -> InventoryBuilder:
    """The ProCurve on .2 with its community; a far-away device with the v3 user of the snmpd on .4."""
    v3 = {"user": V3_USER.name, "auth_protocol": V3_USER.auth_protocol, "auth_key": "env:NV_DISC_AUTH",
          "priv_protocol": V3_USER.priv_protocol, "priv_key": "file:priv.key"}
    return (
        InventoryBuilder(folder)
        .device("sw-core", host="127.0.0.2", snmp={"port": port, "community": "env:NV_DISC_COMMUNITY"})
        .device("fw-remote", host="10.99.0.1", snmp={"version": "3", "v3": v3})
    )


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Lab:
    port: int
    runs: dict[str, Run]
    sys_name: str  # of the snmpd on .4
    workdir: Path
    ours: str  # ours.toml as it was before --add-to


@pytest.fixture(scope="module")
def lab(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("discover")
    port = free_port("127.0.0.2", "udp")
    servers = []
    try:
        for name, host in (("procurve_e2910", "127.0.0.2"), ("edgeswitch_es-24-250w", "127.0.0.3")):
            data = tmp / f"data-{host}"
            data.mkdir()
            shutil.copy(shared_dir / "snmprec" / f"{name}.snmprec", data / "dev.snmprec")  # community "dev"
            servers.append(start_snmpsim(data, tmp / f"snmpsim-{host}", host=host, port=port))
        snmpd = start_snmpd(tmp / "snmpd", host="127.0.0.4", port=port, community="not-tried-by-discovery",
                            v3_users=[V3_USER], sys_name="kjeller-linux")
        servers.append(snmpd)
        known_devices(tmp, port).write()
        (tmp / "priv.key").write_text(V3_USER.priv_key or "", encoding="utf-8")
        env = {**os.environ, "PYTHONPATH": str(REPO), "NV_DISC_COMMUNITY": "dev", "NV_DISC_AUTH": V3_USER.auth_key or ""}
        common = ["--port", str(port), "--timeout", "0.5"]
        cases = {
            "json": ["127.0.0.0/29", *common, "--community", "dev", "--inventory", "inventory.toml", "--json"],
            "text": ["127.0.0.2", "127.0.0.3/32", *common, "--inventory", "inventory.toml"],
            "bad_cidr": ["10.20.0.0/33"],
            "too_big": ["10.0.0.0/8"],
            "nothing_to_try": ["127.0.0.9", "--no-icmp", "--inventory", "missing.toml"],
            "add_to": ["127.0.0.0/29", *common, "--community", "dev", "--inventory", "inventory.toml", "--add-to", "ours.toml", "--site", "radhus"],
            "add_to_invalid": ["127.0.0.0/29", *common, "--community", "dev", "--inventory", "inventory.toml", "--add-to", "theirs.toml", "--site", "radhus"],
            "add_to_without_site": ["127.0.0.3", "--add-to", "ours.toml"],
        }
        # Ours knows the kinds the devices found have; theirs has no [lifecycle.kinds.network] for the Linux box.
        ours = "# Karlsøy: our own comments stay\n" + known_devices(tmp, port).text()
        ours += "\n[lifecycle.kinds.network]  # kept as written\nlifetime_years = 8\nreplacement_cost_nok = 0\n"
        ours += "\n[lifecycle.kinds.server]\nlifetime_years = 5\nreplacement_cost_nok = 0\n"
        (tmp / "ours.toml").write_text(ours, encoding="utf-8")
        (tmp / "theirs.toml").write_text(ours.replace("[lifecycle.kinds.network]", "[lifecycle.kinds.router]"), encoding="utf-8")
        procs = {name: subprocess.Popen([*DISCOVER, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        env=env, cwd=tmp) for name, argv in cases.items()}
        runs = {}
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=60)
            runs[name] = Run(proc.returncode, stdout, stderr)
        yield Lab(port, runs, "kjeller-linux", tmp, ours)
    finally:
        for server in servers:
            server.stop()


def test_sweep_finds_every_agent_with_the_right_credentials(lab: Lab) -> None:
    run = lab.runs["json"]
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["addresses_swept"] == 6  # a /29 without network and broadcast address
    hosts = {h["address"]: h for h in result["hosts"]}
    assert set(hosts) == {f"127.0.0.{i}" for i in range(1, 7)}  # all of 127/8 answers ICMP
    assert all(h["icmp_rtt_ms"] is not None for h in hosts.values())
    # --community dev comes first; the inventory's community is the same one, so it is not tried twice.
    assert hosts["127.0.0.2"]["snmp"] == "v2c --community #1" and hosts["127.0.0.2"]["in_inventory"] == "sw-core"
    assert hosts["127.0.0.2"]["profile"] == "procurve" and hosts["127.0.0.2"]["sys_descr"].startswith("HP J9146A")
    assert (hosts["127.0.0.2"]["kind"], hosts["127.0.0.3"]["kind"], hosts["127.0.0.4"]["kind"]) == ("switch", "network", "server")
    assert hosts["127.0.0.3"]["snmp"] == "v2c --community #1" and hosts["127.0.0.3"]["profile"] == "generic"
    assert hosts["127.0.0.4"]["snmp"] == "v3 user nv-discover of fw-remote" and hosts["127.0.0.4"]["sys_name"] == lab.sys_name
    assert {h["snmp"] for a, h in hosts.items() if a not in ("127.0.0.2", "127.0.0.3", "127.0.0.4")} == {None}


def _lldp_walk(address: str, port: int, column: str, env: dict[str, str]) -> dict[str, str]:
    """{index: value} of one LLDP-MIB column as snmpbulkwalk reads it."""
    rows = net_snmp_walk(["snmpbulkwalk", "-v2c", "-c", "dev", f"{address}:{port}", column], env)
    return {oid[len(column) + 1:]: value for oid, value in rows.items() if oid.startswith(column + ".")}


def test_neighbours_match_snmpbulkwalk_of_lldp(lab: Lab, tmp_path: Path) -> None:
    result = json.loads(lab.runs["json"].stdout)
    for address in ("127.0.0.2", "127.0.0.3"):
        env = net_snmp_env(tmp_path / address)
        walk = {name: _lldp_walk(address, lab.port, oid, env) for name, oid in (
            ("loc_port_id", LLDP_LOC_PORT_ID), ("loc_port_desc", LLDP_LOC_PORT_DESC),
            ("chassis", LLDP_REM_CHASSIS_ID), ("port_id", LLDP_REM_PORT_ID), ("sys_name", LLDP_REM_SYS_NAME),
        )}
        # Remote rows are indexed timeMark.localPortNum.remIndex.
        rows = sorted(set(walk["chassis"]) | set(walk["port_id"]) | set(walk["sys_name"]))
        expected = sorted(
            (walk["loc_port_desc"].get(i.split(".")[1]) or walk["loc_port_id"].get(i.split(".")[1]) or i.split(".")[1],
             walk["sys_name"].get(i, ""))
            for i in rows
        )
        got = [n for n in result["neighbours"] if n["address"] == address]
        assert len(rows) > 0 and sorted((n["local_port"], n["remote_name"]) for n in got) == expected
    procurve = [n for n in result["neighbours"] if n["address"] == "127.0.0.2"]
    assert sorted(n["remote_port"] for n in procurve) == ["41", "42"]  # lldpRemPortDesc of the uplinks


def test_proposed_entries_are_a_valid_inventory_with_references_only(lab: Lab) -> None:
    proposal = json.loads(lab.runs["json"].stdout)["proposed_toml"]
    assert "disc-auth-secret" not in proposal and "disc-priv-secret" not in proposal and '"dev"' not in proposal
    data = tomllib.loads(
        '[lifecycle.kinds.network]\nlifetime_years = 8\nreplacement_cost_nok = 0\n'
        '[lifecycle.kinds.switch]\nlifetime_years = 8\nreplacement_cost_nok = 0\n'
        '[lifecycle.kinds.server]\nlifetime_years = 5\nreplacement_cost_nok = 0\n'
        '[[site]]\nid = "unassigned"\nname = "Ikke plassert"\n\n' + proposal
    )
    inventory = parse_inventory(data)
    devices = {d.host: d for d in inventory.device}
    assert set(devices) == {"127.0.0.3", "127.0.0.4"}  # .2 is already in the inventory
    edge = devices["127.0.0.3"].snmp
    assert edge is not None and edge.community == "env:NETTVAKT_SNMP_COMMUNITY" and edge.port == lab.port
    linux = devices["127.0.0.4"]
    assert devices["127.0.0.3"].hardware.kind == "network"  # EdgeSwitch: generic profile, says nothing more
    assert linux.hardware.kind == "server"  # net-snmp's sysObjectID and HOST-RESOURCES hrSystem
    assert linux.id == "kjeller-linux" and linux.snmp is not None and linux.snmp.v3 is not None
    assert (linux.snmp.v3.user, linux.snmp.v3.auth_key, linux.snmp.v3.priv_key) == ("nv-discover", "env:NV_DISC_AUTH", "file:priv.key")


def test_text_output_progress_and_tables(lab: Lab) -> None:
    run = lab.runs["text"]
    assert run.returncode == 0, run.stderr
    progress = [line for line in run.stderr.splitlines() if line.startswith(("icmp [", "snmp ["))]
    assert progress[0].startswith("icmp [###############...............] 1/2 addresses")
    assert progress[-1] == "snmp [##############################] 2/2 addresses, 2 answer, 2 SNMP"
    assert "hosts that answer (2 of 2 addresses)" in run.stdout
    assert "LLDP neighbours (" in run.stdout and "switch-name" in run.stdout
    assert "v2c community of sw-core" in run.stdout  # no --community: the inventory's answered
    # Both recordings answer the inventory's community ("dev"): both are proposed with its reference,
    # except .2, which the inventory already has.
    assert 'host = "127.0.0.3"' in run.stdout and 'community = "env:NV_DISC_COMMUNITY"' in run.stdout
    assert 'host = "127.0.0.2"' not in run.stdout


def test_add_to_appends_what_it_found_keeping_the_file_as_written(lab: Lab) -> None:
    run = lab.runs["add_to"]
    assert run.returncode == 0, run.stderr
    text = (lab.workdir / "ours.toml").read_text(encoding="utf-8")
    assert text.startswith(lab.ours.rstrip("\n"))  # comments and layout as they were
    added = text[len(lab.ours.rstrip("\n")):]
    assert added in run.stdout.replace("# Adding to ours.toml:", "")  # shown before it was written
    inventory = load_inventory(lab.workdir / "ours.toml", startup=True, offline=True)
    assert {d.host: d.site for d in inventory.device} == {"127.0.0.2": "radhus", "10.99.0.1": "radhus", "127.0.0.3": "radhus", "127.0.0.4": "radhus"}
    # One that would not validate is not written, and says why, by line.
    invalid = lab.runs["add_to_invalid"]
    assert invalid.returncode == 2 and (lab.workdir / "theirs.toml").read_text(encoding="utf-8") == lab.ours.replace("[lifecycle.kinds.network]", "[lifecycle.kinds.router]")
    assert "theirs.toml:" in invalid.stderr and "'network' has no [lifecycle.kinds.network]" in invalid.stderr
    assert "theirs.toml is unchanged" in invalid.stderr and "Traceback" not in invalid.stderr
    assert not list(lab.workdir.glob(".*.discover"))


@pytest.mark.parametrize(("case", "message"), [
    ("bad_cidr", "'10.20.0.0/33' is not an address or network"),
    ("too_big", "10.0.0.0/8 has 16777216 addresses"),
    ("nothing_to_try", "missing.toml: cannot read"),
    ("add_to_without_site", "--add-to needs --site"),
])
def test_usage_errors_exit_2(lab: Lab, case: str, message: str) -> None:
    run = lab.runs[case]
    assert run.returncode == 2 and message in run.stderr and "Traceback" not in run.stderr


def test_targets_and_ids() -> None:
    assert parse_targets(["10.20.0.0/30", "10.20.0.2", "10.20.0.9/32"]) == ["10.20.0.1", "10.20.0.2", "10.20.0.9"]
    assert parse_targets(["fd00::/127"]) == ["fd00::", "fd00::1"]
    assert slug("Kjerneswitch Rådhus (Øvre)") == "kjerneswitch-radhus-ovre"


# ---------------------------------------------------------------- what a device says it is

# Each recording on its own address (community "dev"), plus a real snmpd claiming a Windows
# server's sysObjectID, as the hardware kind discovery should propose for it.
KIND_RECORDINGS = {
    "jetdirect_m252dw": "printer", "ricoh_mpc3002": "printer", "konica_c250i": "printer",
    "brother_hl5370dw": "printer", "okilan_9450g": "printer",
    "eaton-mgeups_9px": "ups", "dell-ups_tower1000w": "ups",
    "apc_sua750i": "ups",  # PowerNet only, no UPS-MIB
}
WINDOWS_SERVER = "1.3.6.1.4.1.311.1.1.3.1.2"


@pytest.fixture(scope="module")
def kinds_lab(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], Run]]:
    from concurrent.futures import ThreadPoolExecutor

    tmp = tmp_path_factory.mktemp("discover-kinds")
    port = free_port("127.0.1.1", "udp")
    addresses = {name: f"127.0.1.{i}" for i, name in enumerate(KIND_RECORDINGS, start=1)}

    def serve(name: str) -> object:
        data = tmp / f"data-{name}"
        data.mkdir()
        shutil.copy(shared_dir / "snmprec" / f"{name}.snmprec", data / "dev.snmprec")
        return start_snmpsim(data, tmp / f"snmpsim-{name}", host=addresses[name], port=port)

    servers: list = []
    try:
        with ThreadPoolExecutor(len(KIND_RECORDINGS)) as pool:
            futures = [pool.submit(serve, name) for name in KIND_RECORDINGS]
            for future in futures:
                servers.append(future.result())
        windows = "127.0.1.12"
        servers.append(start_snmpd(tmp / "snmpd", host=windows, port=port, community="dev", sys_name="rhus-app01",
                                   extra_config=[f"sysObjectID {WINDOWS_SERVER}"]))
        addresses["windows"] = windows
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        run = subprocess.run([*DISCOVER, "127.0.1.0/28", "--port", str(port), "--timeout", "0.5", "--no-icmp",
                              "--community", "dev", "--json"],  # no inventory.toml in tmp: --community only
                             capture_output=True, text=True, env=env, cwd=tmp, timeout=120)
        yield addresses, Run(run.returncode, run.stdout, run.stderr)
    finally:
        for server in servers:
            server.stop()  # type: ignore[attr-defined]


def test_printers_upses_and_windows_servers_are_proposed_as_what_they_say_they_are(kinds_lab: tuple[dict[str, str], Run]) -> None:
    addresses, run = kinds_lab
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    hosts = {h["address"]: h for h in result["hosts"]}
    assert set(hosts) == set(addresses.values())  # nobody else answers SNMP in 127.0.1.0/28
    expected = {**{addresses[n]: k for n, k in KIND_RECORDINGS.items()}, addresses["windows"]: "server"}
    assert {a: h["kind"] for a, h in hosts.items()} == expected
    assert hosts[addresses["eaton-mgeups_9px"]]["kind_why"].startswith("UPS-MIB")
    assert hosts[addresses["apc_sua750i"]]["kind_why"].startswith("APC PowerNet")
    assert hosts[addresses["ricoh_mpc3002"]]["kind_why"].startswith("Printer-MIB")  # answers hrSystem too
    assert hosts[addresses["windows"]]["kind_why"] == "Windows server sysObjectID"
    # The proposal carries the kind, and an inventory that has these kinds takes it.
    proposal = result["proposed_toml"]
    kinds = "".join(f"[lifecycle.kinds.{k}]\nlifetime_years = 6\nreplacement_cost_nok = 0\n" for k in ("printer", "ups", "server"))
    inventory = parse_inventory(tomllib.loads(kinds + '[[site]]\nid = "unassigned"\nname = "Ikke plassert"\n\n' + proposal))
    assert {d.host: d.hardware.kind for d in inventory.device} == expected
