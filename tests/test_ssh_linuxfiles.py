"""A Linux device's configuration files: inventory rules, the listing command under a real sh, redaction.

The backups themselves, over a real sshd, are in tests/test_ssh_peers.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config import InventoryError, load_inventory
from collector.localservers import SnmpV3User, start_snmpd
from collector.ssh.configs import ConfigStore, redact
from collector.ssh.linuxfiles import HEADER, MAX_CONFIG_FILES, files_command, output_problem, path_problem, split_files
from collector.ssh.platforms import PLATFORMS
from collector.ssh.session import ExecCommand, config_command
from collector.ssh.tasks import commands_for, config_problem
from collector.ssh.session import SshTarget
from inventories import InventoryBuilder

NOBODY = 65534


def listing(paths: list[str], *, as_nobody: bool = False) -> str:
    """What the device prints: the command run by a real sh, as sshd runs it (`$SHELL -c COMMAND`)."""
    prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if as_nobody else []
    proc = subprocess.run([*prefix, "sh", "-c", files_command(paths)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# ---------------------------------------------------------------- the listing


def test_listing_contents_and_markers(tmp_path: Path) -> None:
    (tmp_path / "nftables.conf").write_text("table inet filter {\n\tchain input {\n\t\tpolicy drop;\n\t}\n}\n")
    (tmp_path / "no-final-newline").write_text("auto lo\niface lo inet loopback")
    (tmp_path / "empty").write_text("")
    os.mkfifo(tmp_path / "fifo")  # would block a reader forever
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    paths = [str(tmp_path / n) for n in ("nftables.conf", "no-final-newline", "empty", "absent", "fifo", "dangling")]
    paths += [str(tmp_path), "/proc/self/mem"]  # a folder; a file whose read fails (EIO at address 0)
    text = listing(paths)
    assert text == (
        f"{HEADER}{paths[0]}\ntable inet filter {{\n\tchain input {{\n\t\tpolicy drop;\n\t}}\n}}\n"
        f"{HEADER}{paths[1]}\nauto lo\niface lo inet loopback\n"
        f"{HEADER}{paths[2]}\n"
        f"{HEADER}{paths[3]}\n{HEADER}(missing)\n"
        f"{HEADER}{paths[4]}\n{HEADER}(not a regular file)\n"
        f"{HEADER}{paths[5]}\n{HEADER}(missing: dangling symlink)\n"
        f"{HEADER}{paths[6]}\n{HEADER}(not a regular file)\n"
        f"{HEADER}/proc/self/mem\n{HEADER}(unreadable: read error)\n"
    )
    assert output_problem(text, paths) is None
    files = split_files(text)
    assert list(files) == paths and files[paths[1]] == "auto lo\niface lo inet loopback" and files[paths[3]] == f"{HEADER}(missing)"


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A folder others may enter (pytest's tmp_path is under a root-only 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="nettvakt-linuxfiles-"))
    try:
        folder.chmod(0o755)
        yield folder
    finally:
        shutil.rmtree(folder)


def test_listing_as_an_unprivileged_user(world_dir: Path) -> None:
    (world_dir / "snmpd.conf").write_text("rocommunity hemmelig\n")
    (world_dir / "snmpd.conf").chmod(0o600)  # root's
    (world_dir / "public.conf").write_text("sysLocation Hansnes\n")
    (world_dir / "public.conf").chmod(0o644)
    (world_dir / "private").mkdir(mode=0o700)
    (world_dir / "private" / "key.pem").write_text("x\n")
    paths = [str(world_dir / "snmpd.conf"), str(world_dir / "public.conf"), str(world_dir / "private" / "key.pem"), str(world_dir / "absent")]
    text = listing(paths, as_nobody=True)
    assert text == (
        f"{HEADER}{paths[0]}\n{HEADER}(unreadable: permission denied)\n"
        f"{HEADER}{paths[1]}\nsysLocation Hansnes\n"
        f"{HEADER}{paths[2]}\n{HEADER}(unreadable: its folder is not searchable)\n"
        f"{HEADER}{paths[3]}\n{HEADER}(missing)\n"
    )


def test_output_that_is_not_the_listing() -> None:
    paths = ["/etc/nftables.conf", "/etc/hosts"]
    assert output_problem("fish: Unknown command: sh\n", paths) == "not the listing of config_files; the device said: fish: Unknown command: sh"
    assert output_problem("", paths) == "not the listing of config_files; the device said: (nothing)"
    assert output_problem(f"{HEADER}/etc/nftables.conf\nflush ruleset\n", paths) is not None  # cut short
    target = SshTarget("srv", "radhus", "127.0.0.1", 22, "linux", "root", config_files=tuple(paths))
    assert config_problem("sh: 1: awk: not found\n", target) == "not the listing of config_files; the device said: sh: 1: awk: not found"


def test_config_command_per_device() -> None:
    assert config_command("linux") is None and PLATFORMS["linux"].config_command is None
    assert config_command("cisco_ios") == "show running-config"
    command = config_command("linux", ["/etc/nftables.conf"])
    assert isinstance(command, ExecCommand) and command.label == "the config_files listing"
    assert command.endswith(" nettvakt /etc/nftables.conf") and command.startswith("LC_ALL=C sh -c '")
    facts_only = SshTarget("srv", "radhus", "127.0.0.1", 22, "linux", "root")
    assert len(commands_for(facts_only, facts=True, backup=True)) == 1
    with_files = SshTarget("srv", "radhus", "127.0.0.1", 22, "linux", "root", config_files=("/etc/nftables.conf",))
    assert commands_for(with_files, facts=True, backup=True)[1] == command
    with pytest.raises(ValueError, match=r"config_files\[0\] '/etc/\$\(reboot\)' holds a character"):
        files_command(["/etc/$(reboot)"])


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/etc/nftables.conf", None),
        ("/etc/wireguard/wg0.conf", None),
        ("/etc/NetworkManager/system-connections/Karlsoy_Gjest.nmconnection", None),
        ("/var/lib/snmp/snmpd.conf", None),
        ("etc/hosts", "is not an absolute path"),
        ("~/.bashrc", "is not an absolute path"),
        ("/etc/../root/.ssh/id_ed25519", "holds a . or .. component"),
        ("/etc/./hosts", "holds a . or .. component"),
        ("/etc/", "is not a file path (empty component or trailing /)"),
        ("/etc//hosts", "is not a file path (empty component or trailing /)"),
    ],
)
def test_path_rules(path: str, problem: str | None) -> None:
    assert path_problem(path) == problem


@pytest.mark.parametrize("path", ["/etc/a b", "/etc/a;reboot", "/etc/$(id)", "/etc/`id`", "/etc/a|b", "/etc/*.conf", "/etc/a'b", '/etc/a"b', "/etc/a\nb", "/etc/a&", "/etc/a>b", "/etc/!x"])
def test_shell_metacharacters_refused(path: str) -> None:
    assert path_problem(path) == "holds a character other than letters, digits and . _ + @ , : = / - (no spaces, quotes or shell metacharacters)"


# ---------------------------------------------------------------- the inventory


def inventory_with(tmp_path: Path, **ssh: object) -> Path:
    """A firewall at one site whose [device.ssh] logs in with a password and has these keys besides."""
    firewall = {"kind": "firewall", "lifetime_years": 8}
    settings = {"username": "nettvakt", "password": "env:NETTVAKT_TEST_PW", **ssh}
    return InventoryBuilder(tmp_path).device("fw1", name="Brannmur", host="10.20.0.1", hardware=firewall, ssh=settings).write()


def test_inventory_takes_config_files(tmp_path: Path) -> None:
    inventory = load_inventory(inventory_with(tmp_path, device_type="linux", config_files=["/etc/nftables.conf", "/etc/snmp/snmpd.conf"]))
    assert inventory.device[0].ssh is not None and inventory.device[0].ssh.config_files == ["/etc/nftables.conf", "/etc/snmp/snmpd.conf"]
    facts_only = load_inventory(inventory_with(tmp_path, device_type="linux"))
    assert facts_only.device[0].ssh is not None and facts_only.device[0].ssh.config_files == []


@pytest.mark.parametrize(
    ("config_files", "device_type", "message"),
    [
        (
            ["/etc/nftables.conf"], "cisco_ios",
            "device 'fw1': ssh.config_files: only for device_type = \"linux\" (this device is 'cisco_ios', whose configuration is its running-config)",
        ),
        (["/etc/hosts", "nftables.conf"], "linux", "device 'fw1': ssh.config_files: config_files[1] 'nftables.conf' is not an absolute path"),
        (["/etc/../etc/shadow"], "linux", "device 'fw1': ssh.config_files: config_files[0] '/etc/../etc/shadow' holds a . or .. component"),
        (
            ["/etc/hosts; reboot"], "linux",
            "device 'fw1': ssh.config_files: config_files[0] '/etc/hosts; reboot' holds a character other than letters, digits and . _ + @ , : = / - "
            "(no spaces, quotes or shell metacharacters)",
        ),
        (["/etc/hosts", "/etc/hosts"], "linux", "device 'fw1': ssh.config_files: config_files[1] '/etc/hosts' is already listed as config_files[0]"),
        (
            [f"/etc/f{i}" for i in range(MAX_CONFIG_FILES + 1)], "linux",
            f"device 'fw1': ssh.config_files: lists {MAX_CONFIG_FILES + 1} files; at most {MAX_CONFIG_FILES}",
        ),
        ("/etc/hosts", "linux", "device 'fw1': ssh.config_files: expected a list such as [\"a\", \"b\"], got '/etc/hosts'"),
    ],
    ids=["not-linux", "relative", "dotdot", "metachar", "duplicate", "too-many", "not-a-list"],
)
def test_bad_config_files_name_the_place(tmp_path: Path, config_files: list[str] | str, device_type: str, message: str) -> None:
    path = inventory_with(tmp_path, device_type=device_type, config_files=config_files)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.problems == [message]
    assert re.fullmatch(rf"{re.escape(str(path))}:\d+: {re.escape(message)}", str(info.value))


# ---------------------------------------------------------------- redaction

# (line as in the file, the secret it holds): one or more per secret rule of the linux platform.
SECRET_LINES = [
    ("rocommunity karlsoy-ro-1 10.20.0.0/16", "karlsoy-ro-1"),
    ("rwcommunity6 karlsoy-rw-1 fd00::/8 .1.3.6.1.2.1.1", "karlsoy-rw-1"),
    ("trapcommunity trap-hemmelig", "trap-hemmelig"),
    ("trap2sink 10.20.0.5:162 sink-hemmelig", "sink-hemmelig"),
    ("com2sec readonly default c2s-hemmelig", "c2s-hemmelig"),
    ("com2sec -Cn ctx readonly 10.0.0.0/8 c2s-ctx-hemmelig", "c2s-ctx-hemmelig"),
    ("authcommunity log,execute,net auth-hemmelig", "auth-hemmelig"),
    ('createUser nettvakt SHA "auth pass phrase" AES privpass-1', "auth pass phrase"),
    ('createUser nettvakt SHA "auth pass phrase" AES privpass-1', "privpass-1"),
    ("createUser -e 0x80001f88 bob SHA-512 -l 0xa1b2c3 AES -l 0xd4e5f6", "0xa1b2c3"),
    ("createUser -e 0x80001f88 bob SHA-512 -l 0xa1b2c3 AES -l 0xd4e5f6", "0xd4e5f6"),
    # Written by Debian's snmpd 5.9 into its persistent file for createUser nettvakt SHA-256 ... AES ...
    ('usmUser 1 3 0x80001f888014a46e70b5080c6b00000000 "nettvakt" "nettvakt" NULL .1.3.6.1.6.3.10.1.1.5 0xd1606640d2d5a905aa4aa125fd41d41d96d11d977714f28a7ef609fe3c53230b .1.3.6.1.6.3.10.1.2.4 0x4d4d114cfac0ea7a975d2339b4bb8cd6 ""', "0xd1606640d2d5a905aa4aa125fd41d41d96d11d977714f28a7ef609fe3c53230b"),
    ('usmUser 1 3 0x80001f888014a46e70b5080c6b00000000 "nettvakt" "nettvakt" NULL .1.3.6.1.6.3.10.1.1.5 0xd1606640d2d5a905aa4aa125fd41d41d96d11d977714f28a7ef609fe3c53230b .1.3.6.1.6.3.10.1.2.4 0x4d4d114cfac0ea7a975d2339b4bb8cd6 ""', "0x4d4d114cfac0ea7a975d2339b4bb8cd6"),
    ("PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=", "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="),
    ("PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=", "/UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak="),
    ('\tpsk="Vannøya gjest 2026"', "Vannøya gjest 2026"),
    ("wpa_passphrase=hostapd-hemmelig", "hostapd-hemmelig"),
    ("#password=gammelt passord", "gammelt passord"),
    ("SMTP_PASSWORD='env hemmelig'", "env hemmelig"),
    ("export API_TOKEN=tok-123", "tok-123"),
    ('  "client_secret": "json-hemmelig",', "json-hemmelig"),
    ("secret: yaml-hemmelig", "yaml-hemmelig"),
    ("private_key_passwd=eap-key-pass", "eap-key-pass"),
    ("    wpa-psk  interfaces-psk", "interfaces-psk"),
    ('%any 10.20.0.1 : PSK "ipsec-hemmelig"', "ipsec-hemmelig"),
    ("nettvakt:$6$rounds=5000$salt$hashhashhash:19700:0:99999:7:::", "$6$rounds=5000$salt$hashhashhash"),
    ("admin:$apr1$abc$defghij", "$apr1$abc$defghij"),
]


@pytest.mark.parametrize(("line", "secret"), SECRET_LINES, ids=[f"{i}-{line.split()[0][:20]}" for i, (line, _) in enumerate(SECRET_LINES)])
def test_linux_secret_redacted(line: str, secret: str) -> None:
    readable = redact(line, b"k")
    assert secret not in readable and "<redacted:" in readable
    # Redacted in place: what comes before it is kept for reading.
    kept = readable.split("<redacted:")[0]
    assert kept and line.startswith(kept)


def test_every_linux_rule_has_an_example() -> None:
    for rule in PLATFORMS["linux"].config_filters.secrets:
        assert any(rule.pattern.search(line) for line, _ in SECRET_LINES), rule.pattern.pattern


@pytest.mark.parametrize(
    "line",
    [
        "table inet filter {",
        "\t\ttcp dport { 22, 161 } ip saddr 10.20.0.0/16 accept",
        "iface eth0 inet static",
        "    address 10.20.0.1/24",
        "agentAddress udp:161",
        "sysLocation Hansnes legekontor",
        "rouser nettvakt priv",
        "PasswordAuthentication no",
        "ListenPort = 51820",
        "AllowedIPs = 10.99.0.2/32",
        "PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
        f"{HEADER}/etc/ipsec.secrets",
        f"{HEADER}(missing)",
    ],
)
def test_ordinary_lines_kept(line: str) -> None:
    assert redact(line, b"k") == line


def test_private_key_file_redacted_and_a_new_key_shows(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "backups")
    old = f"{HEADER}/etc/ssl/private/vpn.key\n-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIAAAA\n-----END PRIVATE KEY-----\n"
    new = old.replace("AAAA", "BBBB")
    store.save("fw1", old)
    result = store.save("fw1", new)
    assert result.changed and "AAAA" not in result.diff and "BBBB" not in result.diff
    lines = [line for line in result.diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")]
    assert [line[:23] for line in lines] == ["-<redacted private key:", "+<redacted private key:"] and lines[0] != lines[1]
    assert store.read("fw1", full=True) == new


def test_snmpd_persistent_file_keeps_no_usm_key_in_the_readable_copy(tmp_path: Path) -> None:
    """A real snmpd writes its users' localised keys to its persistent file on stop; the copy for reading has none.

    AES-128 sits under the standard OID, AES-256 under net-snmp's enterprise one: both are found by position."""
    users = [
        SnmpV3User("nettvakt", "SHA-256", "auth-pass-phrase-1", "AES", "priv-pass-phrase-1"),
        SnmpV3User("drift", "SHA-512", "auth-pass-phrase-2", "AES-256", "priv-pass-phrase-2"),
    ]
    snmpd = start_snmpd(tmp_path, v3_users=users)
    snmpd.stop()
    assert snmpd.state_dir is not None
    persistent = (snmpd.state_dir / "snmpd.conf").read_text()
    lines = [line for line in persistent.splitlines() if line.startswith("usmUser ")]
    assert len(lines) == 2, persistent
    keys = [word for line in lines for word in line.split()[8::2][:2]]  # after each protocol OID: the auth and priv keys
    assert len(keys) == 4 and all(k.startswith("0x") and len(k) >= 34 for k in keys), lines
    readable = redact(persistent, b"k")
    assert not any(k in readable for k in keys), readable
    assert readable.count("<redacted:") == 4 and '"nettvakt" "nettvakt" NULL .1.3.6.1.6.3.10.1.1.5 <redacted:' in readable
    assert "engineBoots 1" in readable  # the rest is kept for reading
