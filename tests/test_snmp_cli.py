"""`nettvakt snmp poll` as a subprocess against snmpsim recordings and real snmpd.

A poll that answers takes two polls RATE_GAP_S apart, so every case is started at once in
one module fixture and each test checks the result of its own case.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.cli import build_parser
from agent.points import Point
from collector.localservers import SnmpdServer, SnmpsimServer
from collector.snmp.cli import TEXT_MAX, UsageError, field_text, parse_address, run_poll
from inventories import InventoryBuilder
from test_snmp_session import net_snmp_env, net_snmp_walk

# pysnmp 7.1 builds a pysmi MIB compiler per engine with pysmi 2 names it has deprecated.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:pysnmp.smi.compiler")

NETTVAKT = [sys.executable, "-m", "agent.cli"]
REPO = Path(__file__).resolve().parents[1]
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"


def write_inventory(folder: Path, host: str, port: int) -> Path:
    """Switches on snmpsim: one with its community set, one whose variable is unset; a device without SNMP."""
    return (
        InventoryBuilder(folder)
        .device("sw-core", host=host, snmp={"port": port, "community": "env:NV_TEST_COMMUNITY", "timeout_s": 2, "retries": 1})
        .device("sw-nokey", host=host, snmp={"port": port, "community": "env:NV_TEST_UNSET_COMMUNITY"})
        .device("printer", host=host)
        .write()
    )


@dataclass
class Run:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json_points(self) -> list[Point]:
        return [Point.from_json(item, "stdout") for item in json.loads(self.stdout)]


@pytest.fixture(scope="module")
def runs(snmpsim: SnmpsimServer, snmpd: SnmpdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    tmp = tmp_path_factory.mktemp("snmp-cli")
    inventory = write_inventory(tmp, snmpsim.host, snmpsim.port)
    user = next(u for u in snmpd.v3_users if u.auth_protocol == "SHA" and u.priv_protocol == "AES")
    (tmp / "priv.key").write_text(f"{user.priv_key}\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(REPO), "NV_TEST_COMMUNITY": "fortigate_100e",
           "NV_TEST_AUTH": user.auth_key, "NV_TEST_WRONG": "not-the-auth-key"}
    env.pop("NV_TEST_UNSET_COMMUNITY", None)
    sim = f"{snmpsim.host}:{snmpsim.port}"
    agent = f"{snmpd.host}:{snmpd.port}"
    v3 = ["--address", agent, "--v3-user", user.name, "--auth", "SHA", "--auth-key", "env:NV_TEST_AUTH"]
    cases = {
        "table": ["--address", sim, "--community", "ios_2960x"],
        "json": ["--address", sim, "--community", "fortigate_60f", "--json"],
        "inventory": ["sw-core", "--inventory", str(inventory), "--json"],
        "v3": [*v3, "--priv", "AES", "--priv-key", f"file:{tmp / 'priv.key'}", "--json"],
        "v3_wrong_key": ["--address", agent, "--v3-user", user.name, "--auth", "SHA", "--auth-key", "env:NV_TEST_WRONG",
                         "--timeout", "1"],
        "wrong_community": ["--address", agent, "--community", "not-" + snmpd.community, "--timeout", "0.3"],
        "unknown_device": ["sw-nowhere", "--inventory", str(inventory)],  # one usage error through the real CLI too
    }
    procs = {
        name: subprocess.Popen([*NETTVAKT, "snmp", "poll", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env, cwd=tmp)
        for name, argv in cases.items()
    }
    results: dict[str, Run] = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=60)
            results[name] = Run(cases[name], proc.returncode, stdout, stderr)
        yield results
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_table_of_a_recorded_switch_stack(runs: dict[str, Run], snmpsim: SnmpsimServer, tmp_path: Path) -> None:
    run = runs["table"]
    assert run.returncode == 0, run.stderr
    assert "twice, 4 s apart" in run.stderr
    names = net_snmp_walk(["snmpbulkwalk", "-v2c", "-c", "ios_2960x", f"{snmpsim.host}:{snmpsim.port}", IF_NAME],
                          net_snmp_env(tmp_path))
    lines = run.stdout.splitlines()
    assert lines[0].startswith("device ") and any(line.split() == ["profile", "cisco"] for line in lines)
    assert f"interfaces ({len(names)}; rates over the 4 s between two polls)" in lines
    table = {line.split()[0]: line.split() for line in lines[lines.index(next(x for x in lines if x.startswith("interfaces"))) + 2:]}
    assert set(table) == set(names.values())
    assert any(line.split()[:2] == ["serial", "FCW1929B68S"] for line in lines)  # hardware section, chassis
    # The sysDescr of this IOS runs over four lines (\n and \r\n): one line in the table, cut at TEXT_MAX.
    head = lines[:lines.index(next(x for x in lines if x.startswith("interfaces")))]
    assert all(line.startswith(("device ", "hardware (", "  ")) for line in head), head
    descr = next(line for line in head if line.split()[0] == "sys_descr")
    expected = ("Cisco IOS Software, C2960X Software (C2960X-UNIVERSALK9-M), Version 15.0(2a)EX5, RELEASE SOFTWARE (fc3)"
                " / Technical Support: http://www.cisco.com/techsupport / Copyright (c) 1986-2015 by Cisco Systems, Inc.")
    assert descr.split(None, 1)[1] == expected[:TEXT_MAX - 1] + "…"
    # Numbers print one way: whole ones without ".0" (up 1, rebooted 0), others to two decimals at most.
    values = {line.split()[0]: line.split(None, 1)[1] for line in head if line.startswith("  ")}
    assert values["up"] == "1" and values["rebooted"] == "0"
    assert all(re.fullmatch(r"-?\d+(\.\d{1,2})?", values[k]) for k in ("uptime_s", "cpu_pct", "mem_used_pct")), values
    assert not any(re.fullmatch(r"-?\d+\.0+", v) for v in values.values()), values


def test_field_text_numbers_and_text() -> None:
    assert [field_text(v) for v in (0, 2.0, 1380, 2239745.5500000003, 33.333333, -0.001, 0.5)] == [
        "0", "2", "1380", "2239745.55", "33.33", "0", "0.5"]
    assert field_text("line one\r\nline two\n\n  line three  ") == "line one / line two / line three"
    assert field_text("x" * 500) == "x" * (TEXT_MAX - 1) + "…" and len(field_text("x" * 500)) == TEXT_MAX


def test_json_has_state_and_rates(runs: dict[str, Run]) -> None:
    run = runs["json"]
    assert run.returncode == 0, run.stderr
    points = run.json_points()
    device = next(p for p in points if p.measurement == "device")
    assert device.fields["up"] == 1.0 and device.fields["profile"] == "fortigate" and device.fields["rebooted"] == 0.0
    wan1 = next(p for p in points if p.measurement == "interface" and p.tags["ifname"] == "wan1")
    assert wan1.fields["in_bps"] == 0.0 and wan1.fields["oper_up"] in (0.0, 1.0)  # a recording: counters stand still
    assert [p.fields["serial"] for p in points if p.measurement == "hardware"] == ["FGT60FTK00000000"]


def test_inventory_device_uses_its_id_site_and_secret(runs: dict[str, Run]) -> None:
    run = runs["inventory"]
    assert run.returncode == 0, run.stderr
    points = run.json_points()
    assert {p.tags["device"] for p in points} == {"sw-core"} and {p.tags["site"] for p in points} == {"radhus"}
    device = next(p for p in points if p.measurement == "device")
    assert device.fields["sessions"] == 1380.0  # env:NV_TEST_COMMUNITY named the FortiGate 100E recording
    assert next(p for p in points if p.measurement == "hardware").tags["kind"] == "switch"


def test_v3_auth_priv_against_snmpd(runs: dict[str, Run]) -> None:
    run = runs["v3"]
    assert run.returncode == 0, run.stderr
    points = run.json_points()
    lo = next(p for p in points if p.measurement == "interface" and p.tags["ifname"] == "lo")
    assert lo.fields["in_bps"] >= 0 and lo.fields["oper_up"] == 1.0


@pytest.mark.parametrize(("case", "message"), [
    ("v3_wrong_key", "authentication failed"),
    ("wrong_community", "timeout: no answer within 0.3 s"),
])
def test_device_that_does_not_answer_exits_1(runs: dict[str, Run], case: str, message: str) -> None:
    run = runs[case]
    assert run.returncode == 1 and run.stdout == ""
    assert "did not answer" in run.stderr and message in run.stderr


def test_unknown_device_exits_2_naming_the_inventory(runs: dict[str, Run]) -> None:
    run = runs["unknown_device"]
    inventory = run.argv[run.argv.index("--inventory") + 1]
    assert run.returncode == 2 and run.stdout == "" and "Traceback" not in run.stderr
    assert f"no device 'sw-nowhere' in {inventory} (devices with SNMP: sw-core, sw-nokey)" in run.stderr


@pytest.mark.parametrize(("argv", "message"), [
    (["sw-nokey"], "{inventory}: device[1].snmp (sw-nokey): env:NV_TEST_UNSET_COMMUNITY: environment variable"),
    (["printer"], "{inventory}: device[2] (printer) has no [device.snmp] table"),
    (["sw-core", "--community", "x"], "--community only go with --address; DEVICE takes its credentials from {inventory}"),
    ([], "give DEVICE (an id in {inventory}) or --address HOST[:PORT]"),
    (["sw-core", "--address", "127.0.0.1"], "give DEVICE (from {inventory}) or --address, not both"),
    (["--address", "127.0.0.1"], "SNMP v2c needs --community NAME"),
    (["--address", "127.0.0.1", "--v3-user", "u", "--auth", "SHA", "--auth-key", "auth-secret-1"],
     "--auth-key must be a reference env:NAME or file:PATH"),
    (["--address", "127.0.0.1", "--v3-user", "u", "--auth", "SHA", "--auth-key", "env:NV_TEST_UNSET_KEY"],
     "--auth-key env:NV_TEST_UNSET_KEY: environment variable NV_TEST_UNSET_KEY is not set"),
    (["--address", "127.0.0.1", "--v3-user", "u", "--auth", "SHA-1", "--auth-key", "env:HOME"], "--auth 'SHA-1': use one of"),
    (["--address", "127.0.0.1", "--v3-user", "u", "--priv", "AES", "--priv-key", "env:HOME"],
     "privacy (priv_protocol) needs authentication"),
    (["--address", "127.0.0.1", "--community", "x", "--v3-user", "u"], "--community is for v1/v2c"),
    (["--address", "127.0.0.1:99999", "--community", "x"], "port must be 1..65535"),
])
def test_usage_errors_exit_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    # In process: these fail before any SNMP, and a subprocess each would only add start-up time.
    inventory = write_inventory(tmp_path, "127.0.0.1", 1161)
    monkeypatch.delenv("NV_TEST_UNSET_COMMUNITY", raising=False)
    monkeypatch.delenv("NV_TEST_UNSET_KEY", raising=False)
    args = build_parser().parse_args(["snmp", "poll", *argv, "--inventory", str(inventory)])
    assert run_poll(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and message.format(inventory=inventory) in err


def test_missing_inventory_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["snmp", "poll", "sw-core", "--inventory", str(tmp_path / "missing.toml")])
    assert run_poll(args) == 2
    assert f"{tmp_path / 'missing.toml'}: cannot read" in capsys.readouterr().err


def test_address_forms() -> None:
    assert parse_address("10.20.0.1") == ("10.20.0.1", 161)
    assert parse_address("sw-core.karlsoy.local:1161") == ("sw-core.karlsoy.local", 1161)
    assert parse_address("[fd00::1]:1161") == ("fd00::1", 1161)
    assert parse_address("fd00::1") == ("fd00::1", 161)
    with pytest.raises(UsageError, match="expected HOST"):
        parse_address("[fd00::1")
