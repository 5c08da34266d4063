"""`nettvakt config backup [DEVICE]` (collector.ssh.cli.run_backup) against the SSH CLI simulator."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from collector.ssh.cli import EXIT_FAIL, EXIT_OK, EXIT_USAGE, backup_dir, run_backup
from collector.ssh.configs import ConfigStore
from collector.ssh.recorded import load_session
from collector.ssh.simulator import CliSimulator, DeviceScript
from inventories import InventoryBuilder

IOS_9200 = "cisco_ios/running_config/ios#C9200L-24P-4G_17.09.04a#simulation.yaml"


def inventory(tmp_path: Path, devices: dict[str, dict[str, Any]]) -> Path:
    """Switches (device id -> its [device.ssh]) at one site; their data beside the file, in tmp_path/data."""
    inv = InventoryBuilder(tmp_path)
    inv.secret_file("ssh-password", "secret")
    for dev_id, settings in devices.items():
        inv.device(dev_id, ssh=settings)
    return inv.write()


def ssh(port: int, device_type: str = "cisco_ios", password: str = "file:ssh-password") -> dict[str, Any]:
    """[device.ssh] of a device on the simulator."""
    return {"device_type": device_type, "port": port, "username": "admin", "password": password, "timeout_s": 3}


def args(path: Path, dev: str | None = None, as_json: bool = False) -> argparse.Namespace:
    return argparse.Namespace(inventory=str(path), device=dev, json=as_json, max_sessions=None)


@pytest.fixture
def ios_script(shared_dir: Path) -> DeviceScript:
    rec = load_session(shared_dir / "cli" / IOS_9200)
    return DeviceScript(rec.prompt, dict(rec.outputs))


def test_backup_all_then_one(tmp_path: Path, ios_script: DeviceScript, capsys: pytest.CaptureFixture[str]) -> None:
    with CliSimulator(ios_script) as sim:
        inv = inventory(tmp_path, {"sw1": ssh(sim.port), "sw2": ssh(sim.port), "srv": ssh(sim.port, "linux")})
        assert run_backup(args(inv)) == EXIT_OK
        out = capsys.readouterr().out
        assert "sw1: changed (revision " in out and "sw2: changed (revision " in out and "srv" not in out
        assert "+hostname LAB-SW123_9200L" in out and "SECRET_ENABLE" not in out

        ios_script.outputs["show running-config"] = ios_script.outputs["show running-config"].replace(
            "hostname LAB-SW123_9200L", "hostname LAB-SW999"
        )
        assert run_backup(args(inv, "sw1", as_json=True)) == EXIT_OK
        [result] = json.loads(capsys.readouterr().out)
        assert result["device"] == "sw1" and result["changed"] is True
        assert "-hostname LAB-SW123_9200L\n+hostname LAB-SW999\n" in result["diff"]
    store = ConfigStore(backup_dir(tmp_path / "data"))
    assert len(store.history("sw1")) == 2 and len(store.history("sw2")) == 1
    assert (tmp_path / "data" / "ssh" / "known_hosts").exists()


def test_failures_and_usage(tmp_path: Path, ios_script: DeviceScript, capsys: pytest.CaptureFixture[str]) -> None:
    with CliSimulator(ios_script) as sim:
        inv = inventory(tmp_path, {"sw1": ssh(sim.port), "sw-bad": ssh(sim.port, password="env:NETTVAKT_TEST_UNSET_PW"),
                                   "srv": ssh(sim.port, "linux")})
        assert run_backup(args(inv)) == EXIT_USAGE  # the others are backed up; the unset secret is the configuration's to fix
        out = capsys.readouterr().out
        assert "sw1: changed" in out
        assert "sw-bad: FAILED: password secret does not resolve (env:NETTVAKT_TEST_UNSET_PW: environment variable NETTVAKT_TEST_UNSET_PW is not set)" in out
        assert run_backup(args(inv, "nope")) == EXIT_USAGE
        assert "no device with id 'nope'" in capsys.readouterr().err
        assert run_backup(args(inv, "srv")) == EXIT_USAGE
        assert "has no [device.ssh] table with a configuration" in capsys.readouterr().err
    assert run_backup(args(tmp_path / "missing.toml")) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err


def test_history_and_diff(tmp_path: Path, ios_script: DeviceScript, capsys: pytest.CaptureFixture[str]) -> None:
    from collector.ssh.cli import run_diff, run_history

    with CliSimulator(ios_script) as sim:
        inv = inventory(tmp_path, {"sw1": ssh(sim.port)})
        assert run_backup(args(inv)) == EXIT_OK
        ios_script.outputs["show running-config"] = ios_script.outputs["show running-config"].replace("hostname LAB-SW123_9200L", "hostname LAB-SW999")
        assert run_backup(args(inv)) == EXIT_OK
    capsys.readouterr()
    hist = argparse.Namespace(inventory=str(inv), device="sw1", json=True)
    assert run_history(hist) == EXIT_OK
    revisions = json.loads(capsys.readouterr().out)
    assert [r["message"] for r in revisions] == ["sw1: configuration changed", "sw1: first backup"]
    diff_args = argparse.Namespace(inventory=str(inv), device="sw1", from_rev=None, to_rev=None)
    assert run_diff(diff_args) == EXIT_OK
    latest = capsys.readouterr().out
    assert "-hostname LAB-SW123_9200L\n+hostname LAB-SW999\n" in latest
    # From the first revision to itself: nothing; from nothing to the first: the whole (redacted) config.
    first = revisions[1]["revision"]
    assert run_diff(argparse.Namespace(inventory=str(inv), device="sw1", from_rev=first, to_rev=first)) == EXIT_OK
    assert capsys.readouterr().out == ""
    assert run_diff(argparse.Namespace(inventory=str(inv), device="sw1", from_rev=None, to_rev=first)) == EXIT_OK
    whole = capsys.readouterr().out
    assert "+hostname LAB-SW123_9200L" in whole and "SECRET_ENABLE" not in whole
    assert run_diff(argparse.Namespace(inventory=str(inv), device="nope", from_rev=None, to_rev=None)) == EXIT_USAGE
    assert run_diff(argparse.Namespace(inventory=str(inv), device="sw1", from_rev="0000000", to_rev=None)) == EXIT_FAIL
    assert "git show" in capsys.readouterr().err
