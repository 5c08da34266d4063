"""netmiko's real fortinet and cisco_ios drivers against a real SSH server on loopback.

The server (collector.ssh.simulator) replays recorded device sessions from shared/cli; every
test starts its own on a free port and stops it, also on failure.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import threading
from pathlib import Path

import paramiko
import pytest

from collector.localservers import free_port, wait_until
from collector.ssh.configs import ConfigStore
from collector.ssh.facts_linux import LINUX_FACTS_COMMAND
from collector.ssh.recorded import load_session
from collector.ssh.session import HostKeyChanged, PinnedHostKeys, SshRunner, SshTarget
from collector.ssh.simulator import CliSimulator, DeviceScript
from collector.ssh.tasks import run_devices

FORTI_91G = "fortinet/running_config/fortigate#FortiGate-91G_7.4.7#simulation.yaml"
IOS_9200 = "cisco_ios/running_config/ios#C9200L-24P-4G_17.09.04a#simulation.yaml"
TIMEOUT_S = 3.0


@pytest.fixture
def forti_script(shared_dir: Path) -> DeviceScript:
    rec = load_session(shared_dir / "cli" / FORTI_91G)
    outputs = dict(rec.outputs)
    # netmiko asks for the console mode first; "standard" means paging is already off.
    outputs["get system console"] = "output              : standard\n"
    outputs["show"] = outputs["show | grep ."]
    return DeviceScript(rec.prompt, outputs, flavour="fortinet")


@pytest.fixture
def ios_script(shared_dir: Path) -> DeviceScript:
    rec = load_session(shared_dir / "cli" / IOS_9200)
    return DeviceScript(rec.prompt, dict(rec.outputs), flavour="cisco_ios")


def target(device: str, sim: CliSimulator, device_type: str, password: str | None = "secret", **kw: object) -> SshTarget:
    settings: dict[str, object] = {"timeout_s": TIMEOUT_S, **kw}
    return SshTarget(device=device, site="radhus", host="127.0.0.1", port=sim.port, device_type=device_type, username="admin", password=password, **settings)  # type: ignore[arg-type]


def run(coro: object) -> object:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_fortinet_facts_backup_and_change(tmp_path: Path, forti_script: DeviceScript) -> None:
    store = ConfigStore(tmp_path / "backups")
    runner = SshRunner(tmp_path / "known_hosts", max_sessions=2)
    try:
        with CliSimulator(forti_script) as sim:
            fw = target("fw1", sim, "fortinet", kind="firewall")
            [first] = run(run_devices(runner, [fw], store=store))  # type: ignore[misc]
            assert first.error is None, first.error
            hardware = next(p for p in first.points if p.measurement == "hardware")
            assert dict(hardware.tags) == {"site": "radhus", "device": "fw1", "kind": "firewall"}
            assert (hardware.fields["model"], hardware.fields["serial"], hardware.fields["sw_rev"]) == ("FortiGate-91G", "FGT91GTK00000000", "7.4.7")
            assert (hardware.fields["hw_rev"], hardware.fields["mem_total_bytes"]) == ("Rev1", 7547 * 1024 * 1024)
            device = next(p for p in first.points if p.measurement == "device")
            assert device.fields["ha_state"] == "standalone" and str(device.fields["firmware"]).startswith("FortiGate-91G v7.4.7")
            assert first.backup is not None and first.backup.changed
            assert "show | grep ." in sim.commands and "get system status" in sim.commands

            # The next export: FortiOS re-encrypts every ENC value and bumps conf_file_ver. No change.
            config = forti_script.outputs["show | grep ."]
            churn = re.sub(r"ENC \S+", "ENC Zm9vYmFyMTIzNDU2Nzg5MA==", config).replace("#conf_file_ver=440000000000001", "#conf_file_ver=440000000000002")
            forti_script.outputs["show | grep ."] = churn
            [second] = run(run_devices(runner, [fw], store=store))  # type: ignore[misc]
            assert second.backup is not None and not second.backup.changed

            # A real change made on the device: exactly one new revision, diff of that line only.
            forti_script.outputs["show | grep ."] = churn.replace('set alias "outside"', 'set alias "uplink-telenor"')
            [third] = run(run_devices(runner, [fw], store=store, facts=False))  # type: ignore[misc]
            assert third.backup is not None and third.backup.changed and third.points == []
            body = [l for l in third.backup.diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
            assert body == ['-        set alias "outside"', '+        set alias "uplink-telenor"']
            assert len(store.history("fw1")) == 2
    finally:
        runner.close()


def test_cisco_ios_facts_and_backup(tmp_path: Path, ios_script: DeviceScript) -> None:
    store = ConfigStore(tmp_path / "backups")
    runner = SshRunner(tmp_path / "known_hosts")
    try:
        with CliSimulator(ios_script) as sim:
            [result] = run(run_devices(runner, [target("sw1", sim, "cisco_ios")], store=store))  # type: ignore[misc]
        assert result.error is None, result.error
        hardware = next(p for p in result.points if p.measurement == "hardware")
        assert (hardware.fields["model"], hardware.fields["serial"]) == ("C9200L-24P-4G", "JAE24FFFFFF")
        assert sim.commands[:2] == ["terminal width 511", "terminal length 0"]
        assert "show inventory" in sim.commands and "show running-config" in sim.commands
        readable = store.read("sw1") or ""
        assert "hostname LAB-SW123_9200L" in readable and "SECRET_ENABLE" not in readable
        assert "SECRET_ENABLE" in (store.read("sw1", full=True) or "")
    finally:
        runner.close()


def test_public_key_login(tmp_path: Path, ios_script: DeviceScript) -> None:
    key = paramiko.ECDSAKey.generate()
    key_file = tmp_path / "id_ecdsa"
    key.write_private_key_file(str(key_file))
    runner = SshRunner(tmp_path / "known_hosts")
    try:
        with CliSimulator(ios_script, password=None, public_key=paramiko.ECDSAKey(data=key.asbytes())) as sim:
            result = run(runner.run(target("sw1", sim, "cisco_ios", password=None, key_file=key_file), ["show version"]))
        assert result.ok, result.error  # type: ignore[attr-defined]
        assert "Cisco IOS XE Software" in result.outputs["show version"]  # type: ignore[attr-defined]
    finally:
        runner.close()


def test_host_key_pinned_on_first_use_and_change_refused(tmp_path: Path, ios_script: DeviceScript) -> None:
    known_hosts = tmp_path / "known_hosts"
    runner = SshRunner(known_hosts)
    port = free_port()
    original, imposter = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    try:
        with CliSimulator(ios_script, host_key=original, port=port) as sim:
            first = run(runner.run(target("sw1", sim, "cisco_ios"), ["show version"]))
        assert first.ok, first.error  # type: ignore[attr-defined]
        pinned = PinnedHostKeys(known_hosts).pinned("127.0.0.1", port)
        assert pinned is not None and pinned.asbytes() == original.asbytes()
        assert oct(known_hosts.stat().st_mode & 0o777) == "0o600"

        # Same address, new host key (a replaced box, or someone in the middle): refused.
        with CliSimulator(ios_script, host_key=imposter, port=port) as sim:
            second = run(runner.run(target("sw1", sim, "cisco_ios"), ["show version"]))
            assert sim.commands == []  # never logged in, never sent a command
        error = second.error  # type: ignore[attr-defined]
        assert isinstance(error, HostKeyChanged) and error.reason == "host key changed"
        assert str(known_hosts) in error.detail and f"[127.0.0.1]:{port}" in error.detail and original.fingerprint in error.detail
        # The pin is untouched: the imposter's key was not learnt.
        assert PinnedHostKeys(known_hosts).pinned("127.0.0.1", port).asbytes() == original.asbytes()  # type: ignore[union-attr]

        with CliSimulator(ios_script, host_key=original, port=port) as sim:
            third = run(runner.run(target("sw1", sim, "cisco_ios"), ["show version"]))
        assert third.ok  # type: ignore[attr-defined]
    finally:
        runner.close()


def test_bad_devices_reported_others_unaffected_no_thread_leak(tmp_path: Path, forti_script: DeviceScript, ios_script: DeviceScript) -> None:
    baseline = threading.active_count()
    hang = DeviceScript(ios_script.prompt, ios_script.outputs, misbehave={"show running-config": "hang"})
    drop = DeviceScript(ios_script.prompt, ios_script.outputs, misbehave={"show version": "disconnect"})
    store = ConfigStore(tmp_path / "backups")
    sims = [CliSimulator(s) for s in (forti_script, ios_script, hang, drop, ios_script)]
    runner = SshRunner(tmp_path / "known_hosts", max_sessions=3)
    try:
        for sim in sims:
            sim.start()
        good_fw, good_sw, hung, dropped, wrong_pw = sims
        closed_port = free_port()
        targets = [
            target("fw1", good_fw, "fortinet"),
            target("sw1", good_sw, "cisco_ios"),
            # Per-device timeouts: the misbehaving ones get a short one.
            target("sw-hang", hung, "cisco_ios", timeout_s=1.5),
            target("sw-drop", dropped, "cisco_ios", timeout_s=1.5),
            target("sw-pw", wrong_pw, "cisco_ios", password="wrong"),
            SshTarget("sw-gone", "radhus", "127.0.0.1", closed_port, "cisco_ios", "admin", "secret", timeout_s=TIMEOUT_S),
        ]
        runs = {r.device: r for r in run(run_devices(runner, targets, store=store))}  # type: ignore[attr-defined]
        assert runs["fw1"].error is None and runs["fw1"].backup.changed  # type: ignore[union-attr]
        assert runs["sw1"].error is None and runs["sw1"].backup.changed  # type: ignore[union-attr]
        reasons = {d: (r.error.reason if r.error else None) for d, r in runs.items()}
        assert reasons == {
            "fw1": None,
            "sw1": None,
            "sw-hang": "timeout",
            "sw-drop": "disconnected",
            "sw-pw": "authentication failed",
            "sw-gone": "cannot reach ssh",
        }
        assert "show running-config" in runs["sw-hang"].error.detail and "1.5 s" in runs["sw-hang"].error.detail  # type: ignore[union-attr]
        assert str(runs["sw-pw"].error).startswith("sw-pw: authentication failed")
        assert all(runs[d].backup is None and runs[d].points == [] for d in ("sw-hang", "sw-drop", "sw-pw", "sw-gone"))
        assert {f.name for f in store.full.glob("*.cfg")} == {"fw1.cfg", "sw1.cfg"}
    finally:
        runner.close()
        for sim in sims:
            sim.stop()
    # Every session thread, paramiko transport and simulator thread has ended.
    wait_until(lambda: threading.active_count() <= baseline, 10, f"threads back to {baseline}: {threading.enumerate()}")


PROCURVE_BANNER = (
    "HP J9773A 2530-24G-PoEP Switch\nSoftware revision K.15.06.0017\n\n"
    "Copyright (C) 1991-2016 Hewlett Packard Enterprise Development LP\n\nPress any key to continue"
)


def test_procurve_facts(tmp_path: Path, shared_dir: Path) -> None:
    raw = (shared_dir / "cli/hp_procurve/show_system/hp_procurve_show_system2.raw").read_text()
    script = DeviceScript("lab-sw-01#", {"show system": raw}, flavour="hp_procurve", banner=PROCURVE_BANNER)
    runner = SshRunner(tmp_path / "known_hosts")
    try:
        with CliSimulator(script) as sim:
            [result] = run(run_devices(runner, [target("sw-vsf", sim, "hp_procurve")], store=ConfigStore(tmp_path / "b")))  # type: ignore[misc]
            assert sim.commands == ["terminal width 511", "no page", "show system", "show running-config", "logout"]
        assert result.error is None, result.error
        hardware = next(p for p in result.points if p.measurement == "hardware")
        assert hardware.fields["serials"] == "AB12CDE3FH,AB34CDE5GJ" and hardware.fields["sw_rev"] == "WC.16.11.0027"
        # The simulator has no recorded configuration: its error text is not stored as one.
        assert result.backup is None and result.backup_error == "device said: Invalid input: show running-config"
    finally:
        runner.close()


def test_linux_facts(tmp_path: Path) -> None:
    """A Linux server's shell answering with this machine's real files."""
    out = subprocess.run(["sh", "-c", LINUX_FACTS_COMMAND], capture_output=True, text=True, timeout=10).stdout
    script = DeviceScript("nettvakt@srv1:~$", {LINUX_FACTS_COMMAND: out}, flavour="linux")
    runner = SshRunner(tmp_path / "known_hosts")
    try:
        with CliSimulator(script) as sim:
            [result] = run(run_devices(runner, [target("srv1", sim, "linux", kind="server")], store=ConfigStore(tmp_path / "b")))  # type: ignore[misc]
        assert result.error is None and result.backup is None  # nothing to back up on a server
        hardware = next(p for p in result.points if p.measurement == "hardware")
        assert hardware.tags["kind"] == "server"
        assert hardware.fields["sw_rev"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
        device = next(p for p in result.points if p.measurement == "device")
        assert float(device.fields["uptime_s"]) > 0
    finally:
        runner.close()
