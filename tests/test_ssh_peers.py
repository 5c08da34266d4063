"""SSH against real peers: an emulated Cisco switch (fake-switches) and a private OpenSSH sshd.

Each is started once for this module on a free loopback port (collector.localservers) and
stopped at the end, also on failure. Tests that change a peer's state (its configuration,
its host key) use names of their own or a peer of their own, so the order does not matter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.points import Point
from collector.alerting.service import AlertService
from collector.config import Inventory, load_inventory
from collector.localservers import FakeSwitchServer, SshdServer, free_port, ssh_keygen, start_fake_switch, start_sshd, wait_until
from collector.ssh.cli import EXIT_OK, EXIT_USAGE, backup_dir, run_backup, run_command, run_diff, run_history
from collector.ssh.configs import ConfigStore
from collector.ssh.recorded import load_session
from collector.ssh.scheduler import CONFIG_CHANGE_RULE, HOST_KEY_RULE, SshScheduler
from collector.ssh.session import ExecCommand, HostKeyChanged, SshRunner, SshTarget
from collector.ssh.simulator import CliSimulator, DeviceScript
from inventories import InventoryBuilder

SWITCH_PASSWORD = "sw-pass-1"
ENABLE_SECRET = "en-secret-1"
START_COMMUNITY = "karlsoy-ro-start"
PASSPHRASE = "korrekt hest batteri stift"
REPO = Path(__file__).resolve().parent.parent
FORTI_91G = "fortinet/running_config/fortigate#FortiGate-91G_7.4.7#simulation.yaml"


# ---------------------------------------------------------------- peers


@pytest.fixture(scope="module")
def switch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeSwitchServer]:
    server = start_fake_switch(
        tmp_path_factory.mktemp("fake-switch"),
        password=SWITCH_PASSWORD,
        enable_secret=ENABLE_SECRET,
        hostname="lab-sw1",
        snmp_communities=[START_COMMUNITY],
    )
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A plain ed25519 key and one with a passphrase (as operators keep them)."""
    folder = tmp_path_factory.mktemp("client-keys")
    return {
        "plain": ssh_keygen(folder / "id_plain"),
        "protected": ssh_keygen(folder / "id_protected", passphrase=PASSPHRASE),
        "stranger": ssh_keygen(folder / "id_stranger"),  # never authorised
    }


def authorised(keys: dict[str, Path]) -> list[str]:
    return [Path(f"{keys[name]}.pub").read_text() for name in ("plain", "protected")]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, client_keys: dict[str, Path]) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"), authorized_keys=authorised(client_keys))
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- inventory


def switch_device(
    dev_id: str, port: int, *, password: str = "file:sw-pass", enable: str = "file:sw-enable",
    device_type: str = "cisco_ios", name: str = "Svitsj", **ssh: Any,
) -> dict[str, Any]:
    """A switch logging in as admin (InventoryBuilder.device's arguments); `enable=""` for none."""
    settings = {"device_type": device_type, "port": port, "username": "admin", "password": password}
    if enable:
        settings["enable_secret"] = enable
    return {"id": dev_id, "name": f"{name} {dev_id}", "ssh": {**settings, "timeout_s": 5, **ssh}}


def server_device(dev_id: str, port: int, key_file: Path, **ssh: Any) -> dict[str, Any]:
    """A Linux server logging in as root with a key (InventoryBuilder.device's arguments)."""
    settings = {"device_type": "linux", "port": port, "username": "root", "key_file": key_file, "timeout_s": 5, **ssh}
    return {"id": dev_id, "name": f"Server {dev_id}", "hardware": "server", "ssh": settings}


def write_inventory(folder: Path, *devices: dict[str, Any], smtp_port: int | None = None, language: str = "nb") -> Path:
    """The devices at one site, their secrets in files beside it; with `smtp_port`, config and host-key events mailed."""
    inv = InventoryBuilder(folder)
    inv.secret_file("sw-pass", SWITCH_PASSWORD)
    inv.secret_file("sw-enable", ENABLE_SECRET)
    inv.secret_file("passphrase", PASSPHRASE)
    if smtp_port is not None:
        inv.alerting(language=language)
        inv.email("vakt", smtp_port, to=["it@karlsoy.example"], smtp_starttls="never", sender="nettvakt@karlsoy.example")
        inv.route("vakt", rules=[CONFIG_CHANGE_RULE, HOST_KEY_RULE])
    for device in devices:
        inv.device(**device)
    return inv.write()


@contextlib.asynccontextmanager
async def scheduler_with_mail(inventory: Inventory, emit: Callable[[str, list[Point]], Awaitable[None]]) -> AsyncIterator[SshScheduler]:
    """An SshScheduler announcing through a real AlertService; its messages are all sent on leaving."""
    alerts = AlertService.from_inventory(inventory)
    scheduler = SshScheduler(inventory, emit, announce=alerts.announce)
    try:
        yield scheduler
        await alerts.drain()
    finally:
        await scheduler.stop()
        await alerts.close()


def configure(switch: FakeSwitchServer, commands: list[str], enable_secret: str = ENABLE_SECRET) -> str:
    """A change made on the switch the way a technician makes it: netmiko in configuration mode."""
    from netmiko import ConnectHandler

    conn = ConnectHandler(
        device_type="cisco_ios", host=switch.host, port=switch.port, username=switch.username,
        password=SWITCH_PASSWORD, secret=enable_secret, allow_agent=False, use_keys=False, conn_timeout=10,
    )
    try:
        conn.enable()
        return conn.send_config_set(commands)
    finally:
        conn.disconnect()


def body(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def git_everything(repo: Path) -> str:
    """Every version of every file the repository ever held, as text."""
    return subprocess.run(["git", "-C", str(repo), "log", "-p", "--all", "--format=%H %s"], capture_output=True, text=True, check=True).stdout


def ns(inv: Path, **kw: object) -> argparse.Namespace:
    return argparse.Namespace(inventory=str(inv), **kw)


def nettvakt(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, dispatch and all."""
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------- fake-switches


def test_switch_backup_change_history_diff_redaction(tmp_path: Path, switch: FakeSwitchServer, capsys: pytest.CaptureFixture[str]) -> None:
    inv = write_inventory(tmp_path, switch_device("sw1", switch.port))
    assert run_backup(ns(inv, device=None, json=False, max_sessions=None)) == EXIT_OK
    out = capsys.readouterr().out
    assert "sw1: changed (revision " in out and "+hostname lab-sw1" in out
    assert re.search(r"^\+snmp-server community <redacted:[0-9a-f]{8}> RO$", out, re.M) and START_COMMUNITY not in out
    assert "+enable secret 9 <redacted:" in out and "$9$" not in out

    # Nothing changed on the switch: the "Current configuration : N bytes" header and all else is the same.
    assert run_backup(ns(inv, device="sw1", json=False, max_sessions=None)) == EXIT_OK
    assert capsys.readouterr().out == "sw1: unchanged\n"

    # A technician sets a port description and adds a read-write community.
    configure(switch, ["interface FastEthernet0/3", "description uplink-hansnes", "exit", "snmp-server community t1-hemmelig RW"])
    assert run_backup(ns(inv, device="sw1", json=True, max_sessions=None)) == EXIT_OK
    [result] = json.loads(capsys.readouterr().out)
    assert result["changed"] is True
    lines = body(result["diff"])
    assert len(lines) == 2 and re.fullmatch(r"\+snmp-server community <redacted:[0-9a-f]{8}> RW", lines[0]) and lines[1] == "+ description uplink-hansnes"

    # The enable secret changes too (the operator updates the inventory's secret file with it).
    configure(switch, ["enable secret t1-nytt-enable"])
    (tmp_path / "sw-enable").write_text("t1-nytt-enable\n")
    try:
        assert run_backup(ns(inv, device="sw1", json=True, max_sessions=None)) == EXIT_OK
        [result] = json.loads(capsys.readouterr().out)
        lines = body(result["diff"])
        assert [l[:27] for l in lines] == ["-enable secret 9 <redacted:", "+enable secret 9 <redacted:"] and lines[0] != lines[1]
    finally:
        configure(switch, [f"enable secret {ENABLE_SECRET}"], enable_secret="t1-nytt-enable")

    store = ConfigStore(backup_dir(tmp_path / "data"))
    full_now = store.read("sw1", full=True) or ""
    assert "snmp-server community t1-hemmelig RW" in full_now and "enable secret 9 $9$" in full_now
    readable_history = git_everything(store.readable)
    for secret in ("t1-hemmelig", START_COMMUNITY, "$9$"):
        assert secret not in readable_history

    assert run_history(ns(inv, device="sw1", json=True)) == EXIT_OK
    assert [r["message"] for r in json.loads(capsys.readouterr().out)] == ["sw1: configuration changed"] * 2 + ["sw1: first backup"]
    assert run_history(ns(inv, device="sw1", json=False)) == EXIT_OK
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert run_diff(ns(inv, device="sw1", from_rev=None, to_rev=None)) == EXIT_OK
    assert [l[:27] for l in body(capsys.readouterr().out)] == ["-enable secret 9 <redacted:", "+enable secret 9 <redacted:"]
    revisions = store.history("sw1")
    assert run_diff(ns(inv, device="sw1", from_rev=revisions[2].rev, to_rev=revisions[1].rev)) == EXIT_OK
    assert body(capsys.readouterr().out)[1] == "+ description uplink-hansnes"
    shown = nettvakt("config", "diff", "sw1", "--inventory", str(inv), "--from", revisions[2].rev[:12], "--to", revisions[1].rev[:12])
    assert shown.returncode == 0 and body(shown.stdout)[1] == "+ description uplink-hansnes", shown.stderr
    listed = nettvakt("config", "history", "sw1", "--inventory", str(inv))
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == [r.rev[:12] for r in revisions]


def test_switch_scheduler_facts_and_one_change_alert(tmp_path: Path, switch: FakeSwitchServer, smtp_inbox: Callable[..., Any]) -> None:
    mail = smtp_inbox()
    inbox, smtp_port = mail.messages, mail.port
    inventory = load_inventory(write_inventory(tmp_path, switch_device("sw2", switch.port), smtp_port=smtp_port))
    device = inventory.device[0]
    emitted: list[Point] = []

    async def emit(source: str, points: list[Point]) -> None:
        assert source == "ssh:sw2"
        emitted.extend(points)

    async def main() -> None:
        async with scheduler_with_mail(inventory, emit) as scheduler:
            first = await scheduler.run_once(device)
            assert first.error is None and first.backup is not None and first.backup.first
            await scheduler.run_once(device)  # unchanged: nothing to tell
            await asyncio.to_thread(configure, switch, ["interface FastEthernet0/5", "description t2-skriver-2etg", "end"])
            changed = await scheduler.run_once(device)
            assert changed.backup is not None and changed.backup.changed
            await scheduler.run_once(device)  # unchanged again

    asyncio.run(main())
    hardware = [p for p in emitted if p.measurement == "hardware"]
    assert len(hardware) == 4
    assert dict(hardware[0].tags) == {"site": "radhus", "device": "sw2", "kind": "switch"}
    assert (hardware[0].fields["model"], hardware[0].fields["serial"], hardware[0].fields["sw_rev"]) == ("WS-C3750G-24TS-1U", "FOC1530X2F7", "12.2(58)SE2")
    uptime = next(p for p in emitted if p.measurement == "device").fields["uptime_s"]
    assert uptime == (365 + 18 * 7 + 5) * 86400 + 3600 + 11 * 60  # "1 year, 18 weeks, 5 days, 1 hour, 11 minutes"

    [alert] = [p for p in emitted if p.measurement == "alert"]
    assert dict(alert.tags) == {"site": "radhus", "rule": "config_change", "severity": "info", "state": "event", "subject": "sw2"}
    store = ConfigStore(backup_dir(tmp_path / "data"))
    assert alert.fields == {"active": 0.0, "summary": "Konfigurasjon endret: Svitsj sw2 (Rådhuset)", "revision": store.history("sw2")[0].rev}

    [message] = inbox
    assert message["Subject"] == "Konfigurasjon endret: Svitsj sw2 (Rådhuset)"
    text = message.get_content()
    assert "+ description t2-skriver-2etg" in text and f"Revisjon {store.history('sw2')[0].rev[:12]}" in text
    assert body(text[text.index("---"):]) == ["+ description t2-skriver-2etg"]


def test_fortios_enc_churn_no_alert_real_change_one_alert(tmp_path: Path, shared_dir: Path, smtp_inbox: Callable[..., Any]) -> None:
    """A recorded FortiGate replayed over SSH: re-encrypted ENC secrets and a new conf_file_ver are no change."""
    mail = smtp_inbox()
    inbox, smtp_port = mail.messages, mail.port
    rec = load_session(shared_dir / "cli" / FORTI_91G)
    outputs = dict(rec.outputs)
    outputs["get system console"] = "output              : standard\n"  # netmiko asks; paging is off
    script = DeviceScript(rec.prompt, outputs, flavour="fortinet")
    config = outputs["show | grep ."]
    emitted: list[Point] = []

    async def emit(source: str, points: list[Point]) -> None:
        emitted.extend(points)

    with CliSimulator(script, password=SWITCH_PASSWORD) as sim:
        fw1 = switch_device("fw1", sim.port, device_type="fortinet", enable="", name="Brannmur")
        inventory = load_inventory(write_inventory(tmp_path, fw1, smtp_port=smtp_port, language="en"))

        async def main() -> list[Any]:
            runs = []
            async with scheduler_with_mail(inventory, emit) as scheduler:
                for n, text in enumerate([
                    config,
                    # What the next export of the same configuration looks like.
                    re.sub(r"ENC \S+", "ENC Zm9vYmFyMTIzNDU2Nzg5MA==", config).replace("#conf_file_ver=", "#conf_file_ver=9"),
                    config.replace('set alias "outside"', 'set alias "uplink-telenor"'),
                    re.sub(r"ENC \S+", "ENC YmFyZm9vOTg3NjU0MzIxMA==", config).replace('set alias "outside"', 'set alias "uplink-telenor"'),
                ]):
                    script.outputs["show | grep ."] = text
                    runs.append(await scheduler.run_once(inventory.device[0]))
            return runs

        runs = asyncio.run(main())
    assert all(r.error is None and r.backup is not None for r in runs)
    assert [r.backup.changed for r in runs] == [True, False, True, False]
    [alert] = [p for p in emitted if p.measurement == "alert"]
    assert alert.tags["rule"] == "config_change" and alert.tags["state"] == "event" and alert.fields["revision"] == runs[2].backup.revision
    [message] = inbox
    assert message["Subject"] == "Configuration changed: Brannmur fw1 (Rådhuset)"
    text = message.get_content()
    assert body(text[text.index("---"):]) == ['-        set alias "outside"', '+        set alias "uplink-telenor"']
    assert "Secrets are redacted." in text


def test_ssh_run_on_switch(tmp_path: Path, switch: FakeSwitchServer, capsys: pytest.CaptureFixture[str]) -> None:
    inv = write_inventory(tmp_path, switch_device("sw3", switch.port, allow_commands=["write( memory)?"]))

    assert run_command(ns(inv, device="sw3", words=["show", "version"], json=False)) == EXIT_OK
    captured = capsys.readouterr()
    assert "lab-sw1 uptime is 1 year" in captured.out and "saved as" in captured.err
    readable = tmp_path / "data" / "config-backups" / "readable" / "runs" / "sw3"
    [saved] = readable.glob("*-show-version.txt")
    assert saved.read_text().startswith("# sw3: show version\n") and "FOC1530X2F7" in saved.read_text()

    assert run_command(ns(inv, device="sw3", words=["show running-config", "|", "include", "snmp"], json=True)) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and re.search(r"snmp-server community <redacted:[0-9a-f]{8}> RO", result["output"]) and START_COMMUNITY not in result["output"]
    assert START_COMMUNITY not in Path(result["saved"]).read_text() and START_COMMUNITY in Path(result["full"]).read_text()
    assert oct(Path(result["full"]).stat().st_mode & 0o777) == "0o600"

    for words in (["configure", "terminal"], ["show", "run", "|", "redirect", "flash:x"], ["reload"]):
        assert run_command(ns(inv, device="sw3", words=words, json=False)) == EXIT_USAGE
        err = capsys.readouterr().err
        assert f"sw3: refused {' '.join(words)!r}" in err and "allow_commands" in err and str(inv) in err
    # Allowed for this device by its inventory entry.
    assert run_command(ns(inv, device="sw3", words=["write", "memory"], json=False)) == EXIT_OK
    assert "OK" in capsys.readouterr().out
    assert len(list(readable.glob("*.txt"))) == 3
    log = subprocess.run(["git", "-C", str(readable.parent.parent), "log", "--format=%s"], capture_output=True, text=True, check=True).stdout
    assert "sw3: ssh run write memory" in log

    assert run_command(ns(inv, device="nope", words=["show", "version"], json=False)) == EXIT_USAGE
    assert "no device with id 'nope'" in capsys.readouterr().err


# ---------------------------------------------------------------- sshd


def test_linux_facts_over_sshd_with_keys(tmp_path: Path, sshd: SshdServer, client_keys: dict[str, Path], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("NETTVAKT_TEST_SSH_PASSPHRASE", PASSPHRASE)
    devices = (
        server_device("srv-plain", sshd.port, client_keys["plain"]),
        server_device("srv-file", sshd.port, client_keys["protected"], key_passphrase="file:passphrase"),
        server_device("srv-env", sshd.port, client_keys["protected"], key_passphrase="env:NETTVAKT_TEST_SSH_PASSPHRASE"),
    )
    inventory = load_inventory(write_inventory(tmp_path, *devices))
    emitted: dict[str, list[Point]] = {}

    async def emit(source: str, points: list[Point]) -> None:
        emitted[source] = points

    async def main() -> None:
        scheduler = SshScheduler(inventory, emit)
        try:
            with caplog.at_level("INFO", logger="nettvakt.ssh"):
                runs = await asyncio.gather(*(scheduler.run_once(d) for d in inventory.device))
            for run in runs:
                assert run.error is None and run.facts_error is None, (run.device, run.error, run.facts_error)
                assert run.backup is None  # no config_files: facts only
        finally:
            await scheduler.stop()

    asyncio.run(main())
    release = dict(line.split("=", 1) for line in Path("/etc/os-release").read_text().splitlines() if "=" in line)
    for dev_id in ("srv-plain", "srv-file", "srv-env"):
        points = emitted[f"ssh:{dev_id}"]
        hardware = next(p for p in points if p.measurement == "hardware")
        assert dict(hardware.tags) == {"site": "radhus", "device": dev_id, "kind": "server"}
        assert hardware.fields["sw_rev"] == Path("/proc/sys/kernel/osrelease").read_text().strip()
        assert hardware.fields["os_name"] == release["NAME"].strip('"')
        device = next(p for p in points if p.measurement == "device")
        assert float(device.fields["uptime_s"]) > 0 and device.fields["firmware"] == release["PRETTY_NAME"].strip('"')
        if not Path("/sys/class/dmi/id/product_name").exists():
            # No DMI on this machine: no model is made up, and the gap is said once per device.
            assert "model" not in hardware.fields
            assert any(r.getMessage().startswith(f"ssh {dev_id}: the device does not tell vendor (/sys/class/dmi/id/sys_vendor), model") for r in caplog.records)


def test_sshd_host_key_pinned_then_change_refused_and_announced(tmp_path: Path, client_keys: dict[str, Path]) -> None:
    port = free_port()
    inventory = load_inventory(write_inventory(tmp_path, server_device("srv-pin", port, client_keys["plain"])))
    device = inventory.device[0]
    known_hosts = tmp_path / "data" / "ssh" / "known_hosts"
    announced: list[dict[str, object]] = []
    emitted: list[Point] = []

    async def announce(**kw: object) -> int:
        announced.append(kw)
        return 1

    async def emit(source: str, points: list[Point]) -> None:
        emitted.extend(points)

    async def rounds(n: int) -> list[Any]:
        scheduler = SshScheduler(inventory, emit, announce=announce)
        try:
            return [await scheduler.run_once(device) for _ in range(n)]
        finally:
            await scheduler.stop()

    original = start_sshd(tmp_path / "sshd", port=port, authorized_keys=authorised(client_keys), host_key_dir=tmp_path / "keys-a")
    try:
        [first] = asyncio.run(rounds(1))
        assert first.error is None
        pinned_key = original.host_public_keys()[0]
        assert known_hosts.read_text() == f"[127.0.0.1]:{port} {pinned_key}\n"
    finally:
        original.stop()

    # Same address, a new host key: a replaced server, or someone in the middle.
    imposter = start_sshd(tmp_path / "sshd", port=port, authorized_keys=authorised(client_keys), host_key_dir=tmp_path / "keys-b")
    try:
        assert imposter.host_public_keys() != [pinned_key]
        second, third = asyncio.run(rounds(2))
    finally:
        imposter.stop()
    for run in (second, third):
        assert isinstance(run.error, HostKeyChanged)
        assert str(run.error).startswith("srv-pin: host key changed") and str(known_hosts) in run.error.detail and f"[127.0.0.1]:{port}" in run.error.detail
    assert known_hosts.read_text() == f"[127.0.0.1]:{port} {pinned_key}\n"  # never learnt
    # Told once (each scheduler starts without memory, hence one per `rounds`), as a warning.
    [told] = announced
    assert (told["rule"], told["severity"], told["subject"], told["site"]) == (HOST_KEY_RULE, "warning", "srv-pin", "radhus")
    assert told["title"] == "SSH-vertsnøkkel endret: Server srv-pin (Rådhuset)" and str(known_hosts) in str(told["body"])
    [event] = [p for p in emitted if p.measurement == "alert"]
    assert dict(event.tags) == {"site": "radhus", "rule": HOST_KEY_RULE, "severity": "warning", "state": "event", "subject": "srv-pin"}

    back = start_sshd(tmp_path / "sshd", port=port, authorized_keys=authorised(client_keys), host_key_dir=tmp_path / "keys-a")
    try:
        [fourth] = asyncio.run(rounds(1))
        assert fourth.error is None
    finally:
        back.stop()


def test_ssh_run_on_linux(tmp_path: Path, sshd: SshdServer, client_keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "allowed-marker"
    inv = write_inventory(tmp_path, server_device("srv-run", sshd.port, client_keys["plain"], allow_commands=[r"touch /tmp/\S+"]))
    assert run_command(ns(inv, device="srv-run", words=["uptime"], json=False)) == EXIT_OK
    assert "load average" in capsys.readouterr().out
    assert run_command(ns(inv, device="srv-run", words=["cat", "/proc/loadavg"], json=True)) == EXIT_OK
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and len(result["output"].split()) == 5
    assert run_command(ns(inv, device="srv-run", words=["ip", "-br", "addr", "|", "grep", "lo"], json=False)) == EXIT_OK
    assert "127.0.0.1" in capsys.readouterr().out

    for words in (["rm", "-rf", str(marker)], ["uptime;", "reboot"], ["cat", "/proc/../etc/shadow"], ["uptime", ">", "/tmp/x"], ["df", "|", "sh"]):
        assert run_command(ns(inv, device="srv-run", words=words, json=False)) == EXIT_USAGE
        assert "srv-run: refused" in capsys.readouterr().err
    assert run_command(ns(inv, device="srv-run", words=["touch", str(marker)], json=False)) == EXIT_OK
    assert marker.exists()
    # From the shell a command with options comes after `--`.
    ran = nettvakt("ssh", "run", "--inventory", str(inv), "srv-run", "--", "df", "-h")
    assert ran.returncode == 0 and "Filesystem" in ran.stdout, ran.stderr
    refused = nettvakt("ssh", "run", "--inventory", str(inv), "srv-run", "--", "rm", "-rf", "/")
    assert refused.returncode == EXIT_USAGE and "srv-run: refused 'rm -rf /'" in refused.stderr
    runs = sorted((tmp_path / "data" / "config-backups" / "readable" / "runs" / "srv-run").iterdir())
    names = sorted(re.sub(r"^\d{8}T\d{6}Z-", "", p.name) for p in runs)
    touch_slug = re.sub(r"[^a-z0-9]+", "-", f"touch {marker}".lower()).strip("-")[:48]  # slugs are cut at 48 characters
    assert names == sorted(["uptime.txt", "cat-proc-loadavg.txt", "ip-br-addr-grep-lo.txt", f"{touch_slug}.txt", "df-h.txt"])


# ---------------------------------------------------------------- sshd: configuration files

NFT_CONF = """#!/usr/sbin/nft -f
flush ruleset
table inet filter {
\tchain input {
\t\ttype filter hook input priority 0; policy drop;
\t\tct state established,related accept
\t\ttcp dport 22 ip saddr 10.20.0.0/16 accept
\t}
}
"""
NFT_RULE = "\t\tudp dport 161 ip saddr 10.20.0.5 accept"
NFT_CONF_WITH_RULE = NFT_CONF.replace("\t}\n}", NFT_RULE + "\n\t}\n}")
SNMPD_CONF = """agentAddress udp:161
sysLocation Hansnes legekontor
rocommunity {community} 10.20.0.0/16
createUser nettvakt SHA "lx-auth-pass" AES lx-priv-pass
rouser nettvakt priv
"""
WG_CONF = "[Interface]\nAddress = 10.99.0.1/24\nPrivateKey = lx+wgPrivateKeyLx0123456789abcdefghijklmnoQ=\nListenPort = 51820\n"


def linux_config_files(folder: Path, community: str = "lx-ro-start") -> list[str]:
    """A Linux firewall's configuration files on the "server" (sshd runs here, as root)."""
    etc = folder / "etc"
    (etc / "snmp").mkdir(parents=True, exist_ok=True)
    (etc / "wireguard").mkdir(exist_ok=True)
    (etc / "nftables.conf").write_text(NFT_CONF)
    (etc / "snmp" / "snmpd.conf").write_text(SNMPD_CONF.format(community=community))
    (etc / "wireguard" / "wg0.conf").write_text(WG_CONF)
    # Missing, a folder, and a file whose read fails (EIO at address 0): each shown as such.
    return [str(etc / "nftables.conf"), str(etc / "snmp" / "snmpd.conf"), str(etc / "wireguard" / "wg0.conf"), str(etc / "network-interfaces"), str(etc / "wireguard"), "/proc/self/mem"]


def test_linux_config_files_backup_history_diff_redaction(tmp_path: Path, sshd: SshdServer, client_keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    paths = linux_config_files(tmp_path)
    nft, snmpd = Path(paths[0]), Path(paths[1])
    inv = write_inventory(
        tmp_path,
        server_device("srv-cfg", sshd.port, client_keys["plain"], config_files=paths),
        server_device("srv-facts", sshd.port, client_keys["plain"]),  # no config_files: facts only
    )

    assert run_backup(ns(inv, device=None, json=False, max_sessions=None)) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("srv-cfg: changed (revision ") and "srv-facts" not in out
    for line in (f"+### nettvakt: {nft}", "+\t\ttcp dport 22 ip saddr 10.20.0.0/16 accept", f"+### nettvakt: {paths[3]}", "+### nettvakt: (missing)",
                 f"+### nettvakt: {paths[4]}", "+### nettvakt: (not a regular file)", "+### nettvakt: /proc/self/mem", "+### nettvakt: (unreadable: read error)"):
        assert line in out.splitlines(), line
    assert re.search(r"^\+rocommunity <redacted:[0-9a-f]{8}> 10\.20\.0\.0/16$", out, re.M)
    assert re.search(r"^\+createUser nettvakt SHA <redacted:[0-9a-f]{8}> AES <redacted:[0-9a-f]{8}>$", out, re.M)
    assert re.search(r"^\+PrivateKey = <redacted:[0-9a-f]{8}>$", out, re.M)
    for secret in ("lx-ro-start", "lx-auth-pass", "lx-priv-pass", "lx+wgPrivateKey"):
        assert secret not in out

    # Nothing changed on the server: no revision.
    assert run_backup(ns(inv, device="srv-cfg", json=False, max_sessions=None)) == EXIT_OK
    assert capsys.readouterr().out == "srv-cfg: unchanged\n"

    # A real change: a new firewall rule.
    nft.write_text(NFT_CONF_WITH_RULE)
    assert run_backup(ns(inv, device="srv-cfg", json=True, max_sessions=None)) == EXIT_OK
    [result] = json.loads(capsys.readouterr().out)
    assert result["changed"] is True and body(result["diff"]) == ["+" + NFT_RULE]

    # A secret change: the SNMP community. The diff says that it changed, never what it is.
    snmpd.write_text(SNMPD_CONF.format(community="lx-ro-ny"))
    assert run_backup(ns(inv, device="srv-cfg", json=True, max_sessions=None)) == EXIT_OK
    [result] = json.loads(capsys.readouterr().out)
    lines = body(result["diff"])
    assert [l[:23] for l in lines] == ["-rocommunity <redacted:", "+rocommunity <redacted:"] and lines[0] != lines[1]
    assert "lx-ro" not in result["diff"]

    # The file goes away: that is a change of the configuration too, not a failed backup.
    os.remove(paths[0])
    assert run_backup(ns(inv, device="srv-cfg", json=True, max_sessions=None)) == EXIT_OK
    [result] = json.loads(capsys.readouterr().out)
    assert body(result["diff"]) == ["-" + line for line in NFT_CONF_WITH_RULE.splitlines()] + ["+### nettvakt: (missing)"]

    store = ConfigStore(backup_dir(tmp_path / "data"))
    full_now = store.read("srv-cfg", full=True) or ""
    assert "rocommunity lx-ro-ny 10.20.0.0/16" in full_now and "lx-priv-pass" in full_now and "lx+wgPrivateKey" in full_now
    assert oct((store.full / "srv-cfg.cfg").stat().st_mode & 0o777) == "0o600"
    readable_history = git_everything(store.readable)
    for secret in ("lx-ro-start", "lx-ro-ny", "lx-auth-pass", "lx-priv-pass", "lx+wgPrivateKey"):
        assert secret not in readable_history
    assert store.history("srv-facts") == []

    # The command line, dispatch and all.
    revisions = store.history("srv-cfg")
    assert [r.message for r in revisions] == ["srv-cfg: configuration changed"] * 3 + ["srv-cfg: first backup"]
    listed = nettvakt("config", "history", "srv-cfg", "--inventory", str(inv))
    assert listed.returncode == 0 and [line.split()[0] for line in listed.stdout.splitlines()] == [r.rev[:12] for r in revisions], listed.stderr
    shown = nettvakt("config", "diff", "srv-cfg", "--inventory", str(inv), "--from", revisions[3].rev[:12], "--to", revisions[2].rev[:12])
    assert shown.returncode == 0 and body(shown.stdout) == ["+" + NFT_RULE], shown.stderr
    again = nettvakt("config", "backup", "srv-cfg", "--inventory", str(inv))
    assert again.returncode == 0 and again.stdout == "srv-cfg: unchanged\n", again.stderr
    refused = nettvakt("config", "backup", "srv-facts", "--inventory", str(inv))
    assert refused.returncode == EXIT_USAGE and "a linux device needs config_files" in refused.stderr


def test_linux_config_change_one_session_one_mail(tmp_path: Path, sshd: SshdServer, client_keys: dict[str, Path], smtp_inbox: Callable[..., Any]) -> None:
    mail = smtp_inbox()
    paths = linux_config_files(tmp_path)
    srv_fw = server_device("srv-fw", sshd.port, client_keys["plain"], config_files=paths)
    inventory = load_inventory(write_inventory(tmp_path, srv_fw, smtp_port=mail.port))
    device = inventory.device[0]
    log = sshd.workdir / "sshd.log"
    emitted: list[Point] = []

    async def emit(source: str, points: list[Point]) -> None:
        emitted.extend(points)

    def logins() -> tuple[int, int]:
        text = log.read_text()
        return text.count("Accepted publickey for root"), text.count("Starting session: command for root")

    async def main() -> list[Any]:
        runs = []
        async with scheduler_with_mail(inventory, emit) as scheduler:
            before = logins()
            runs.append(await scheduler.run_once(device))
            after = logins()
            # Facts and every file in one login; the files with one command.
            assert (after[0] - before[0], after[1] - before[1]) == (1, 1)
            runs.append(await scheduler.run_once(device))  # unchanged: nothing to tell
            Path(paths[0]).write_text(NFT_CONF_WITH_RULE)
            Path(paths[1]).write_text(SNMPD_CONF.format(community="lx-ro-mail"))
            runs.append(await scheduler.run_once(device))
            runs.append(await scheduler.run_once(device))  # unchanged again
        return runs

    runs = asyncio.run(main())
    assert all(r.error is None and r.backup_error is None and r.facts_error is None for r in runs), [(r.error, r.backup_error) for r in runs]
    assert [r.backup.changed for r in runs] == [True, False, True, False]
    assert len([p for p in emitted if p.measurement == "hardware"]) == 4
    [alert] = [p for p in emitted if p.measurement == "alert"]
    assert dict(alert.tags) == {"site": "radhus", "rule": "config_change", "severity": "info", "state": "event", "subject": "srv-fw"}
    assert alert.fields["revision"] == runs[2].backup.revision
    [message] = mail.messages
    assert message["Subject"] == "Konfigurasjon endret: Server srv-fw (Rådhuset)"
    text = message.get_content()
    lines = body(text[text.index("---"):])
    assert len(lines) == 3 and lines[0] == "+" + NFT_RULE
    assert [l[:23] for l in lines[1:]] == ["-rocommunity <redacted:", "+rocommunity <redacted:"]
    assert "lx-ro" not in text and "Hemmeligheter er sladdet." in text


# ---------------------------------------------------------------- bad input against both


def test_bad_sessions_reported_others_unaffected_no_thread_leak(
    tmp_path: Path, sshd: SshdServer, switch: FakeSwitchServer, client_keys: dict[str, Path]
) -> None:
    baseline = threading.active_count()

    def server(dev: str, **kw: Any) -> SshTarget:
        settings: dict[str, Any] = {"key_file": client_keys["plain"], "timeout_s": 5.0, "kind": "server", **kw}
        return SshTarget(dev, "radhus", "127.0.0.1", sshd.port, "linux", "root", **settings)

    def cisco(dev: str, **kw: Any) -> SshTarget:
        settings: dict[str, Any] = {"password": SWITCH_PASSWORD, "enable_secret": ENABLE_SECRET, "timeout_s": 5.0, **kw}
        return SshTarget(dev, "radhus", "127.0.0.1", switch.port, "cisco_ios", "admin", **settings)

    jobs = [
        (server("srv-ok"), ["uptime"]),
        (cisco("sw-ok"), ["show version"]),
        # sshd never lets root in by password; the wrong one fails the same way.
        (server("srv-pw", key_file=None, password="feil-passord"), ["uptime"]),
        (server("srv-key", key_file=client_keys["stranger"]), ["uptime"]),
        (server("srv-phrase", key_file=client_keys["protected"], key_passphrase="feil"), ["uptime"]),
        (cisco("sw-pw", password="feil"), ["show version"]),
        (cisco("sw-enable", enable_secret="feil"), ["show running-config"]),
        # Prints a line, then nothing: no prompt comes.
        (server("srv-hang", timeout_s=2.0), ["uptime", "echo begynner; sleep 20"]),
        # The server side of the session goes away mid-session.
        (server("srv-drop"), ["uptime", "kill -9 $PPID"]),
        # A listing on its own channel (config_files) that does not end.
        (server("srv-exec-hang", timeout_s=2.0), ["uptime", ExecCommand("echo begynner; sleep 4", "the config_files listing")]),
    ]
    runner = SshRunner(tmp_path / "known_hosts", max_sessions=4)
    try:
        results = {r.device: r for r in asyncio.run(runner.run_many(jobs))}
    finally:
        runner.close()
    reasons = {dev: (r.error.reason if r.error else None) for dev, r in results.items()}
    assert reasons == {
        "srv-ok": None,
        "sw-ok": None,
        "srv-pw": "authentication failed",
        "srv-key": "authentication failed",
        "srv-phrase": "key file does not open",
        "sw-pw": "authentication failed",
        "sw-enable": "enable failed",
        "srv-hang": "timeout",
        "srv-drop": "disconnected",
        "srv-exec-hang": "timeout",
    }
    assert "wrong key_passphrase?" in results["srv-phrase"].error.detail  # type: ignore[union-attr]
    assert "load average" in results["srv-ok"].outputs["uptime"] and "WS-C3750G-24TS-1U" in results["sw-ok"].outputs["show version"]
    assert "echo begynner; sleep 20" in results["srv-hang"].error.detail and "2 s" in results["srv-hang"].error.detail  # type: ignore[union-attr]
    assert results["srv-exec-hang"].error.detail == "the config_files listing did not end within 2 s"  # type: ignore[union-attr]
    assert str(results["sw-enable"].error).startswith("sw-enable: enable failed") and "enable_secret" in str(results["sw-enable"].error)
    # Every session thread and paramiko transport has ended.
    wait_until(lambda: threading.active_count() <= baseline, 15, f"threads back to {baseline}: {threading.enumerate()}")


def test_switch_that_stops_answering_or_dies(tmp_path: Path) -> None:
    """A frozen switch (SIGSTOP: TCP accepts, no SSH banner ever comes) and then a dead one."""
    baseline = threading.active_count()
    own = start_fake_switch(tmp_path / "sw", password=SWITCH_PASSWORD, enable_secret=ENABLE_SECRET, hostname="lab-sw9")
    runner = SshRunner(tmp_path / "known_hosts", max_sessions=2)
    target = SshTarget("sw9", "radhus", "127.0.0.1", own.port, "cisco_ios", "admin", SWITCH_PASSWORD, timeout_s=2.0, enable_secret=ENABLE_SECRET)
    try:
        assert runner.run_blocking(target, ["show version"]).ok  # pins the key
        os.kill(own.process.pid, signal.SIGSTOP)
        try:
            frozen = runner.run_blocking(target, ["show version"])
        finally:
            os.kill(own.process.pid, signal.SIGCONT)
        assert str(frozen.error) == f"sw9: timeout (127.0.0.1:{own.port}: no SSH banner within 2 s)"
        own.stop()
        gone = runner.run_blocking(target, ["show version"])
        assert str(gone.error) == f"sw9: cannot reach ssh (127.0.0.1:{own.port}: TCP connection failed)"
    finally:
        runner.close()
        own.stop()
    wait_until(lambda: threading.active_count() <= baseline, 15, f"threads back to {baseline}: {threading.enumerate()}")
