"""Configuration backups on the recorded running configs: redaction, churn, real changes, history."""

from __future__ import annotations

import datetime as dt
import re
import stat
import subprocess
from pathlib import Path

import pytest

from collector.ssh.configs import BackupError, ConfigStore, normalise, redact
from collector.ssh.recorded import load_session

FORTI = {
    "91G": "fortinet/running_config/fortigate#FortiGate-91G_7.4.7#simulation.yaml",
    "3001F": "fortinet/running_config/fortigate#FortiGate-3001F_7.4.8_HA#simulation.yaml",
    "501E": "fortinet/running_config/fortigate#FortiGate-501E_vdomHAdown#simulation.yaml",
}
IOS_OXI = "cisco_ios/running_config/ios#C9200L-24P-4G_17.09.04a#simulation.yaml"
IOS_NAPALM = "cisco_ios/running_config/napalm_test_get_config_normal/show_running_config.txt"
T0 = dt.datetime(2026, 1, 5, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def configs(shared_dir: Path) -> dict[str, str]:
    cli = shared_dir / "cli"
    out = {name: load_session(cli / rel).outputs["show | grep ."] for name, rel in FORTI.items()}
    out["c9200"] = load_session(cli / IOS_OXI).outputs["show running-config"]
    out["csr1"] = (cli / IOS_NAPALM).read_text()
    return out


def test_recorded_configs_are_all_used(shared_dir: Path) -> None:
    found = {str(p.relative_to(shared_dir / "cli")) for p in (shared_dir / "cli").glob("*/running_config/**/*") if p.is_file()}
    used = set(FORTI.values()) | {IOS_OXI, IOS_NAPALM}
    # #output.txt files are Oxidized's own rendering of the same sessions.
    assert {f for f in found if not f.endswith("#output.txt")} == used


# The secrets as they appear in the recordings (upstream masked them; they are still secrets here).
SECRETS = {
    "91G": ["AAAAAAAAAABBBBBBBBBBCCCCCCCCCC", "XXENCRYPTEDPRIVATEKEY"],
    "c9200": ["$9$xxxSECRET_ENABLExxxxxxxxxxxxxx", "$9$xxxxxxxxxxSECRET_OXIDIZEDxxxxxxxxx", "community public", "server-key AAAAAAAAAABBBBBBBBBB"],
    "csr1": ["enable password cisco", "password 0 cisco"],
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_redaction_removes_every_recorded_secret(configs: dict[str, str], name: str) -> None:
    readable = redact(configs[name], b"k")
    for secret in SECRETS[name]:
        assert secret in configs[name]
        assert secret not in readable
    # Only secret-bearing lines differ; everything else is kept for reading.
    original = configs[name].replace("\r", "").split("\n")
    changed = [line for line in readable.split("\n") if "<redacted" in line]
    assert changed and len(readable.split("\n")) <= len(original)


def test_redaction_keeps_structure_and_names(configs: dict[str, str]) -> None:
    readable = redact(configs["c9200"], b"k")
    assert "enable secret 9 <redacted:" in readable
    assert re.search(r"^username oxidized secret 9 <redacted:[0-9a-f]{8}>$", readable, re.M)
    assert re.search(r"^snmp-server community <redacted:[0-9a-f]{8}> RW 5$", readable, re.M)
    assert "service password-encryption" in readable  # a keyword, not a secret
    forti = redact(configs["91G"], b"k")
    assert "set password ENC <redacted>" in forti and "set private-key <redacted private key>" in forti
    assert "-----BEGIN CERTIFICATE-----" in forti  # certificates are public


@pytest.mark.parametrize(
    "line, secret",
    [
        ("line vty 0 4\n password 7 0822455D0A16", "0822455D0A16"),
        ("snmp-server community \"s3cret\" unrestricted", "s3cret"),  # ProCurve
        ("crypto isakmp key Sup3rKey address 10.0.0.1", "Sup3rKey"),
        ("    set psksecret ENC q0a9sd8fasdf==", "q0a9sd8fasdf=="),
        ("    set passwd plainpw", "plainpw"),
        ("tacacs-server key 7 05080F1C2243", "05080F1C2243"),
        ("snmp-server user mon grp v3 auth sha AuthPw1 priv aes 128 PrivPw2", "AuthPw1"),
        ("snmp-server user mon grp v3 auth sha AuthPw1 priv aes 128 PrivPw2", "PrivPw2"),
    ],
)
def test_redaction_rules(line: str, secret: str) -> None:
    assert secret not in redact(line, b"k")


def test_forti_snmp_community_name_redacted() -> None:
    text = 'config system snmp community\n    edit 1\n        set name "karlsoy-ro"\n    next\nend\nconfig system dns\n    set name "kept"\nend\n'
    readable = redact(text, b"k")
    assert "karlsoy-ro" not in readable and 'set name "kept"' in readable


def test_same_secret_same_tag_other_key_other_tag() -> None:
    assert redact("enable secret 9 $9$abc", b"k1") == redact("enable secret 9 $9$abc", b"k1")
    assert redact("enable secret 9 $9$abc", b"k1") != redact("enable secret 9 $9$abd", b"k1")
    assert redact("enable secret 9 $9$abc", b"k1") != redact("enable secret 9 $9$abc", b"k2")


def _churn(config: str, n: int) -> str:
    """What a second export of the same configuration looks like: new timestamps and ENC values."""
    text = re.sub(r"ENC \S+", lambda m: f"ENC {n:04d}{abs(hash((m.start(), n))) % 10**12:012d}==", config)
    text = re.sub(r"#conf_file_ver=\d+", f"#conf_file_ver={1000 + n}", text)
    text = re.sub(r"! Last configuration change at .*", f"! Last configuration change at 0{n}:00:00 CET Mon Jan {n + 1} 2026 by admin", text)
    text = re.sub(r"! NVRAM config last updated at .*", f"! NVRAM config last updated at 0{n}:00:01 CET Mon Jan {n + 1} 2026", text)
    text = re.sub(r"Current configuration : \d+ bytes", f"Current configuration : {20000 + n} bytes", text)
    return text + (f"ntp clock-period 1717986{n}\n" if "version 1" in text else "")


@pytest.mark.parametrize("name", ["91G", "3001F", "501E", "c9200", "csr1"])
def test_churn_is_no_change(tmp_path: Path, configs: dict[str, str], name: str) -> None:
    store = ConfigStore(tmp_path / "backups")
    device = f"dev-{name.lower()}"
    first = store.save(device, configs[name], when=T0)
    assert first.changed and first.revision
    for n in range(1, 4):
        again = store.save(device, _churn(configs[name], n), when=T0 + dt.timedelta(days=n))
        assert not again.changed and again.diff == "" and again.revision is None
    assert len(store.history(device)) == 1


def test_real_change_one_commit_with_redacted_diff(tmp_path: Path, configs: dict[str, str]) -> None:
    store = ConfigStore(tmp_path / "backups")
    base = configs["c9200"]
    store.save("sw1", base, when=T0)
    changed = _churn(base, 2).replace("hostname LAB-SW123_9200L", "hostname LAB-SW124_9200L")
    changed = changed.replace("enable secret 9 $9$xxxSECRET_ENABLExxxxxxxxxxxxxx", "enable secret 9 $9$newSECRETxxxxxxx")
    result = store.save("sw1", changed, when=T0 + dt.timedelta(days=1))
    assert result.changed and result.revision
    minus = [l for l in result.diff.splitlines() if l.startswith("-") and not l.startswith("---")]
    plus = [l for l in result.diff.splitlines() if l.startswith("+") and not l.startswith("+++")]
    assert [l[1:] for l in minus] == ["hostname LAB-SW123_9200L", redact("enable secret 9 $9$xxxSECRET_ENABLExxxxxxxxxxxxxx", store._key())]
    assert plus[0] == "+hostname LAB-SW124_9200L" and plus[1].startswith("+enable secret 9 <redacted:") and len(plus) == 2
    assert "SECRET" not in result.diff and "Last configuration change" not in result.diff
    history = store.history("sw1")
    assert [r.message for r in history] == ["sw1: configuration changed", "sw1: first backup"]
    assert history[0].rev == result.revision and history[0].time == T0 + dt.timedelta(days=1)
    # diff() between the stored revisions gives the same lines as at save time.
    assert store.diff("sw1") .splitlines()[2:] == result.diff.splitlines()[2:]
    assert store.diff("sw1", history[1].rev, history[0].rev).splitlines()[2:] == result.diff.splitlines()[2:]
    # The full copy of each revision is kept, secrets included.
    assert "$9$newSECRETxxxxxxx" in (store.read("sw1", full=True) or "")
    assert "$9$xxxSECRET_ENABLE" in (store.read("sw1", history[1].rev, full=True) or "")
    assert "SECRET" not in (store.read("sw1") or "x SECRET")


def test_fortios_real_change_among_enc_churn(tmp_path: Path, configs: dict[str, str]) -> None:
    store = ConfigStore(tmp_path / "backups")
    store.save("fw1", configs["91G"], when=T0)
    changed = _churn(configs["91G"], 3).replace('set timezone "Europe/Berlin"', 'set timezone "Europe/Oslo"', 1)
    assert changed != _churn(configs["91G"], 3)
    result = store.save("fw1", changed, when=T0 + dt.timedelta(hours=1))
    body = [l for l in result.diff.splitlines() if l[:1] in "+-" and l[:3] not in ("+++", "---")]
    assert body == ['-    set timezone "Europe/Berlin"', '+    set timezone "Europe/Oslo"']


def test_restricted_permissions_and_plain_git(tmp_path: Path, configs: dict[str, str]) -> None:
    store = ConfigStore(tmp_path / "backups")
    store.save("fw1", configs["91G"], when=T0)
    assert stat.S_IMODE(store.full.stat().st_mode) == 0o700
    assert stat.S_IMODE((store.full / "fw1.cfg").stat().st_mode) == 0o600
    assert stat.S_IMODE((store.full / ".redaction-key").stat().st_mode) == 0o600
    # Ordinary git tools read the history; the redaction key is never committed.
    files = subprocess.run(["git", "-C", str(store.full), "ls-files"], capture_output=True, text=True, check=True).stdout.split()
    assert sorted(files) == [".gitignore", "fw1.cfg"] or files == ["fw1.cfg"]
    log = subprocess.run(["git", "-C", str(store.readable), "log", "--format=%s"], capture_output=True, text=True, check=True).stdout
    assert log.strip() == "fw1: first backup"
    assert "AAAAAAAAAABBBBBBBBBBCCCCCCCCCC" not in (store.readable / "fw1.cfg").read_text()


def test_devices_are_separate_and_ids_checked(tmp_path: Path) -> None:
    store = ConfigStore(tmp_path / "backups")
    store.save("a", "hostname a\n", when=T0)
    store.save("b", "hostname b\n", when=T0)
    assert store.save("a", "hostname a2\n", when=T0).changed
    assert len(store.history("a")) == 2 and len(store.history("b")) == 1
    assert store.history("c") == [] and store.read("c") is None
    with pytest.raises(BackupError, match="not a device id"):
        store.save("../etc", "x\n")
    with pytest.raises(BackupError, match="no backups of c"):
        store.diff("c")


def test_normalise_drops_only_volatile_lines() -> None:
    text = "!\n! Last configuration change at 1\nhostname x\nntp clock-period 36\n#conf_file_ver=9\nset password ENC abc\n\n\n"
    assert normalise(text) == "!\nhostname x\nset password ENC <redacted>\n"
