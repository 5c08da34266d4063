"""An SSH platform registered at test time is picked up everywhere, with no other edit.

The toy platform "toybox" is an appliance whose CLI is a POSIX shell (netmiko's linux driver);
its descriptor lives only in this file. Registered for one test at a time
(`collector.ssh.platforms.registered`), its own allow-list allows and refuses commands, its own
parser reads its facts and its own filters make its configuration backups fit to read, over a
real OpenSSH sshd on loopback (collector.localservers.start_sshd) and the CLI simulator. An
inventory with a device of its `device_type` validates and `nettvakt check` takes it (a misspelt
name is named with a suggestion); `nettvakt ssh run` and `nettvakt config backup` use it over the
sshd; a change of its configuration is announced as the `config_change` event, through the route
that names that rule, to a real SMTP server. The status page shows devices by their SNMP state
only (nothing on it depends on a device's SSH platform), so there is nothing there for a platform
to be missing from. Afterwards the table is as it was.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.points import Point
from collector.alerting.service import AlertService
from collector.config import InventoryError, load_inventory
from collector.localservers import SshdServer, ssh_keygen, start_sshd
from collector.ssh.commands import refusal
from collector.ssh.configs import ConfigStore, redact
from collector.ssh.facts import Facts, FactsError, FactsRecipe, duration_s
from collector.ssh.platforms import PLATFORMS, ConfigFilters, SecretRule, SshPlatform, registered
from collector.ssh.scheduler import CONFIG_CHANGE_RULE, SshScheduler
from collector.ssh.session import SshRunner, SshTarget
from collector.ssh.simulator import CliSimulator, DeviceScript
from collector.ssh.tasks import DeviceRun, run_devices
from inventories import InventoryBuilder

REPO = Path(__file__).resolve().parent.parent
TOY = "toybox"
TOY_STATUS = "Toy-Model: TB-9000\nToy-Serial: TB0042\nToy-Firmware: 2.4.1\nToy-Uptime: 3 days, 4 hours\n"
TOY_CONFIG = "# generated at 2026-01-05 03:00:00\nhostname toy-1\ntoy-token hunter2-toy\nport 1 enabled\n"


def parse_toy_status(text: str) -> Facts:
    fields = dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)
    if "Toy-Model" not in fields:
        raise FactsError("no 'Toy-Model:' line: not toybox status output")
    serial = fields.get("Toy-Serial")
    return Facts(
        vendor="Toyworks",
        model=fields["Toy-Model"],
        serial=serial,
        serials=[serial] if serial else [],
        sw_rev=fields.get("Toy-Firmware"),
        uptime_s=duration_s(fields.get("Toy-Uptime", "")),
    )


def toy_platform(folder: Path) -> SshPlatform:
    """The toy's files (its status and its configuration) are in `folder`."""
    return SshPlatform(
        name=TOY,
        netmiko_type="linux",
        facts=(FactsRecipe(f"cat {folder}/status", parse_toy_status),),
        config_command=f"cat {folder}/toy.conf",
        read_only=(rf"cat {re.escape(str(folder))}/[\w./-]+", r"uname( -[a-z]+)?"),
        pipe_filters=(r"head -n \d+",),
        commands_take_paths=True,
        error_prefixes=("cat: ", "toybox: "),
        config_filters=ConfigFilters(
            volatile_lines=(re.compile(r"^# generated at "),),
            secrets=(SecretRule(re.compile(r"^toy-token\s+(\S+)")),),
        ),
        unknown_command_reply="toybox: {word}: no such command\n",
    )


@pytest.fixture
def toybox(tmp_path: Path) -> Iterator[Path]:
    """The toy platform registered for this test, its files in the returned folder; afterwards the table is as before."""
    folder = tmp_path / "toybox"
    folder.mkdir()
    (folder / "status").write_text(TOY_STATUS)
    (folder / "toy.conf").write_text(TOY_CONFIG)
    before = dict(PLATFORMS)
    with registered(toy_platform(folder)):
        yield folder
    assert dict(PLATFORMS) == before


@pytest.fixture(scope="module")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ssh_keygen(tmp_path_factory.mktemp("client-key") / "id_toy")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory, client_key: Path) -> Iterator[SshdServer]:
    server = start_sshd(tmp_path_factory.mktemp("sshd"), authorized_keys=[Path(f"{client_key}.pub").read_text()])
    try:
        yield server
    finally:
        server.stop()


def toy_target(device: str, port: int, **settings: Any) -> SshTarget:
    return SshTarget(device, "radhus", "127.0.0.1", port, TOY, "root", **{"timeout_s": 10.0, "kind": "switch", **settings})


def body(diff: str) -> list[str]:
    return [line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]


def test_toy_commands_allowed_and_refused_by_its_own_allow_list(toybox: Path, tmp_path: Path, sshd: SshdServer, client_key: Path) -> None:
    allowed = [f"cat {toybox}/status", f"cat {toybox}/status | head -n 1", "uname -s"]
    refused = {
        "uptime": "'uptime' is not one of the read-only toybox commands",  # linux allows it; the toy does not
        "cat /etc/shadow": "'cat /etc/shadow' is not one of the read-only toybox commands",
        f"cat {toybox}/../../etc/shadow": "it leaves the allowed paths (..)",
        f"cat {toybox}/status | sh": "| 'sh' is not an output filter allowed on toybox",
        "uname; reboot": "it chains, substitutes or redirects",
    }
    for command in allowed:
        assert refusal(TOY, command) is None, command
    for command, why in refused.items():
        assert why in (refusal(TOY, command) or ""), command
    assert refusal(TOY, "uptime", ["uptime"]) is None  # the device's own allow_commands still come first

    # What the allow-list lets through runs, over a real sshd, as `nettvakt ssh run` runs it.
    runner = SshRunner(tmp_path / "known_hosts", max_sessions=1)
    try:
        result = runner.run_blocking(toy_target("tb1", sshd.port, key_file=client_key), allowed)
    finally:
        runner.close()
    assert result.ok, result.error
    assert result.outputs[allowed[0]].strip() == TOY_STATUS.strip()
    assert result.outputs[allowed[1]].strip() == "Toy-Model: TB-9000"
    assert result.outputs["uname -s"].strip() == os.uname().sysname


def test_toy_facts_parsed_and_backups_filtered_over_sshd(toybox: Path, tmp_path: Path, sshd: SshdServer, client_key: Path) -> None:
    store = ConfigStore(tmp_path / "backups")
    runner = SshRunner(tmp_path / "known_hosts")
    target = toy_target("tb1", sshd.port, key_file=client_key)
    config = toybox / "toy.conf"

    def backup() -> DeviceRun:
        [run] = asyncio.run(run_devices(runner, [target], store=store))
        assert run.error is None and run.facts_error is None, (run.error, run.facts_error)
        return run

    try:
        first = backup()
        hardware = next(p for p in first.points if p.measurement == "hardware")
        assert dict(hardware.tags) == {"site": "radhus", "device": "tb1", "kind": "switch"}
        assert (hardware.fields["vendor"], hardware.fields["model"], hardware.fields["serial"], hardware.fields["sw_rev"]) == ("Toyworks", "TB-9000", "TB0042", "2.4.1")
        device = next(p for p in first.points if p.measurement == "device")
        assert device.fields["uptime_s"] == 3 * 86400 + 4 * 3600

        assert first.backup is not None and first.backup.first and first.backup_error is None
        readable = store.read("tb1") or ""
        assert re.search(r"^toy-token <redacted:[0-9a-f]{8}>$", readable, re.M) and "hunter2-toy" not in readable
        assert "hostname toy-1" in readable and "toy-token hunter2-toy" in (store.read("tb1", full=True) or "")

        # Only its volatile line moved: no change.
        config.write_text(TOY_CONFIG.replace("03:00:00", "04:00:00"))
        second = backup()
        assert second.backup is not None and not second.backup.changed

        # Its secret changed: a change that says so, never what it is.
        config.write_text(TOY_CONFIG.replace("hunter2-toy", "hunter3-toy"))
        third = backup()
        assert third.backup is not None and third.backup.changed
        lines = body(third.backup.diff)
        assert [line[:21] for line in lines] == ["-toy-token <redacted:", "+toy-token <redacted:"] and lines[0] != lines[1]
        assert "hunter" not in third.backup.diff

        # A real change.
        config.write_text(TOY_CONFIG.replace("hunter2-toy", "hunter3-toy").replace("port 1 enabled", "port 1 disabled"))
        fourth = backup()
        assert fourth.backup is not None and body(fourth.backup.diff) == ["-port 1 enabled", "+port 1 disabled"]

        # What the toy prints when its configuration command fails is not stored as its configuration.
        config.unlink()
        fifth = backup()
        assert fifth.backup is None and (fifth.backup_error or "").startswith(f"device said: cat: {config}: No such file")
        assert len(store.history("tb1")) == 3
    finally:
        runner.close()


def test_the_simulator_answers_as_the_toy(toybox: Path, tmp_path: Path) -> None:
    """Recorded toy outputs replayed over SSH; a command it has no recording of gets the toy's own refusal."""
    script = DeviceScript("root@tb2:~#", {f"cat {toybox}/status": TOY_STATUS}, flavour=TOY)
    store = ConfigStore(tmp_path / "backups")
    runner = SshRunner(tmp_path / "known_hosts")
    try:
        with CliSimulator(script, username="root", password="secret") as sim:
            [run] = asyncio.run(run_devices(runner, [toy_target("tb2", sim.port, password="secret")], store=store))
    finally:
        runner.close()
    assert run.error is None and run.facts is not None and run.facts.model == "TB-9000"
    assert run.backup is None and run.backup_error == "device said: toybox: cat: no such command"
    assert store.history("tb2") == []


# --- the inventory, `nettvakt check` and the CLI --------------------------------------------
def toy_inventory(folder: Path, port: int, key: Path, device_type: str = TOY) -> InventoryBuilder:
    """One toy appliance, `tb1` ("Lekeboks"), logging in as root with `key`; its data in folder/data."""
    ssh = {"device_type": device_type, "port": port, "username": "root", "key_file": key, "timeout_s": 10}
    return InventoryBuilder(folder).device("tb1", name="Lekeboks", ssh=ssh)


def line_of(text: str, key: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if line.startswith(f"{key} ="))


def test_check_takes_a_toy_device_and_names_a_misspelt_platform(
    toybox: Path, tmp_path: Path, client_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = toy_inventory(tmp_path, 22, client_key).write()
    [device] = load_inventory(path, startup=True).device
    assert device.ssh is not None and device.ssh.device_type == TOY
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"{path}: OK (1 sites, 1 devices, 0 agents, 0 probes, 0 channels)"

    misspelt = toy_inventory(tmp_path, 22, client_key, device_type="toybx")
    text = misspelt.text()
    misspelt.write()
    assert main(["check", str(path)]) == 2
    expected = (f"{path}:{line_of(text, 'device_type')}: device 'tb1': ssh.device_type: unknown device_type 'toybx' "
                "(known: cisco_ios, fortinet, hp_procurve, linux, toybox); did you mean 'toybox'?")
    err = capsys.readouterr().err.splitlines()
    assert expected in err, err


def test_without_its_table_line_a_toy_device_is_refused(tmp_path: Path, client_key: Path) -> None:
    inventory = toy_inventory(tmp_path, 22, client_key)
    text, path = inventory.text(), inventory.write()
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.lines() == [
        f"{path}:{line_of(text, 'device_type')}: device 'tb1': ssh.device_type: unknown device_type 'toybox' "
        "(known: cisco_ios, fortinet, hp_procurve, linux)"
    ]


def test_nettvakt_ssh_run_and_config_backup_use_the_toy(
    toybox: Path, tmp_path: Path, sshd: SshdServer, client_key: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(toy_inventory(tmp_path, sshd.port, client_key).write())

    # `ssh run`: what the toy's allow-list allows runs over the sshd, its secret filter redacts the output.
    assert main(["ssh", "run", "tb1", "cat", f"{toybox}/status", "--inventory", path]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == TOY_STATUS.strip() and "# saved as " in captured.err
    assert main(["ssh", "run", "tb1", "cat", f"{toybox}/toy.conf", "--inventory", path]) == 0
    shown = capsys.readouterr().out
    assert re.search(r"^toy-token <redacted:[0-9a-f]{8}>$", shown, re.M) and "hunter2" not in shown, shown
    # What it refuses (linux would allow `uptime`), it refuses before logging in.
    assert main(["ssh", "run", "tb1", "uptime", "--inventory", path]) == 2
    assert "tb1: refused 'uptime': 'uptime' is not one of the read-only toybox commands" in capsys.readouterr().err

    # `config backup`: the toy's configuration command, its volatile-line and secret filters.
    assert main(["config", "backup", "--inventory", path]) == 0
    out = capsys.readouterr().out
    assert re.match(r"tb1: changed \(revision [0-9a-f]{12}\)\n", out), out
    assert "+hostname toy-1" in out and re.search(r"^\+toy-token <redacted:[0-9a-f]{8}>$", out, re.M) and "hunter2" not in out
    (toybox / "toy.conf").write_text(TOY_CONFIG.replace("03:00:00", "04:00:00"))  # only its volatile line
    assert main(["config", "backup", "tb1", "--inventory", path]) == 0
    assert capsys.readouterr().out == "tb1: unchanged\n"
    (toybox / "toy.conf").write_text(TOY_CONFIG.replace("port 1 enabled", "port 1 disabled"))
    assert main(["config", "backup", "tb1", "--inventory", path]) == 0
    assert body(capsys.readouterr().out) == ["-port 1 enabled", "+port 1 disabled"]
    assert len(ConfigStore(tmp_path / "data" / "config-backups").history("tb1")) == 2


# --- alerts: a configuration change is announced --------------------------------------------
def test_a_toy_configuration_change_is_announced_through_its_route(
    toybox: Path, tmp_path: Path, sshd: SshdServer, client_key: Path, smtp_inbox: Callable[..., Any]
) -> None:
    mail = smtp_inbox()
    inventory = (
        toy_inventory(tmp_path, sshd.port, client_key)
        .email("vakt", mail.port, to=["it@karlsoy.example"], smtp_starttls="never", sender="nettvakt@karlsoy.example")
        .route("vakt", rules=[CONFIG_CHANGE_RULE])
        .load(startup=True)
    )
    [device] = inventory.device
    emitted: list[Point] = []

    async def emit(source: str, points: list[Point]) -> None:
        assert source == "ssh:tb1"
        emitted.extend(points)

    async def rounds() -> list[DeviceRun]:
        alerts = AlertService.from_inventory(inventory)
        scheduler = SshScheduler(inventory, emit, announce=alerts.announce)
        try:
            runs = [await scheduler.run_once(device)]  # the first backup is no change
            (toybox / "toy.conf").write_text(TOY_CONFIG.replace("port 1 enabled", "port 1 disabled"))
            runs.append(await scheduler.run_once(device))
            await alerts.drain()
            assert alerts.failures == []
        finally:
            await scheduler.stop()
            await alerts.close()
        return runs

    first, second = asyncio.run(rounds())
    assert first.backup is not None and first.backup.first and second.backup is not None and second.backup.changed
    [alert] = [p for p in emitted if p.measurement == "alert"]
    assert dict(alert.tags) == {"site": "radhus", "rule": "config_change", "severity": "info", "state": "event", "subject": "tb1"}
    assert alert.fields["revision"] == second.backup.revision
    [message] = mail.messages
    assert message["Subject"] == "Konfigurasjon endret: Lekeboks (Rådhuset)"
    text = message.get_content()
    assert body(text[text.index("---"):]) == ["-port 1 enabled", "+port 1 disabled"] and "hunter2" not in text


def test_the_table_is_read_only_and_a_registration_ends(tmp_path: Path) -> None:
    toy = toy_platform(tmp_path)
    with pytest.raises(TypeError):
        PLATFORMS[TOY] = toy  # type: ignore[index]
    before = dict(PLATFORMS)
    with registered(toy):
        assert redact("toy-token hunter2-toy", b"k").startswith("toy-token <redacted:")
        with pytest.raises(ValueError, match="registered already"):
            with registered(toy):
                pass
    assert dict(PLATFORMS) == before
    assert redact("toy-token hunter2-toy", b"k") == "toy-token hunter2-toy"  # its rules went with it
    with pytest.raises(ValueError, match=r"flavour 'toybox' is no platform \(known: cisco_ios, fortinet, hp_procurve, linux\)"):
        DeviceScript("tb#", {}, flavour=TOY)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "Toy Box"}, "platform name 'Toy Box': lower-case letters, digits and _ only"),
        ({"config_from_files": True}, "platform 'toybox': a config_command or config_from_files, not both"),
        ({"read_only": ()}, "platform 'toybox': no read-only commands"),
        ({"pipe_filters": ("head (",)}, "platform 'toybox': 'head (' is not a regular expression"),
    ],
)
def test_a_bad_descriptor_is_refused(tmp_path: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        dataclasses.replace(toy_platform(tmp_path), **change)


def test_docs_name_every_shipped_platform() -> None:
    """docs/ssh.md's table of device_types has a row per platform, with its configuration command."""
    text = (REPO / "docs" / "ssh.md").read_text()
    table = text[text.index("Supported `device_type`s"):].split("\n\n")[1]
    rows = {line.split("`")[1]: line for line in table.splitlines() if line.startswith("| `")}
    assert set(rows) == set(PLATFORMS)
    for name, line in rows.items():
        platform = PLATFORMS[name]
        shown = f"`{platform.config_command}`".replace("|", "\\|") if platform.config_command else "`config_files`"
        assert shown in line, (platform.name, line)
