"""inventory.toml validation: the shipped example passes; each bad file fails with its exact message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cli import main
from collector.config import InventoryError, load_inventory

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "testdata" / "inventory"
BAD = sorted((DATA / "bad").glob("*.toml"))


def expected_message(path: Path) -> tuple[str, str]:
    """(line, message) from the file's first line: `# expect: LINE: MESSAGE` (LINE `-` for none)."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <line>: <message>'"
    line, _, message = first[len("# expect: "):].partition(": ")
    return line, message.replace("{dir}", str(path.parent))


def printed(path: Path, line: str, message: str) -> str:
    return f"{path}: {message}" if line == "-" else f"{path}:{line}: {message}"


def test_shipped_inventory_is_valid() -> None:
    inventory = load_inventory(ROOT / "inventory.toml")
    assert {s.id for s in inventory.site} >= {"radhus", "helse", "hansnes-lege", "vannoya-lege", "hansnes", "vannvag", "skole"}
    assert any(d.hardware.kind == "firewall" for d in inventory.device)
    names = {a.name for a in inventory.agent}
    assert "PLO pc, 2. etg" in names  # display names keep punctuation and Norwegian letters
    vannvag = inventory.agent_by_id("vannvag-ops")
    assert vannvag is not None
    assert {p.name for p in inventory.probes_for(vannvag)} >= {"gw-radhus", "internett"}


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_inventory_names_the_line_the_entry_and_the_key(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, message = expected_message(path)
    with pytest.raises(InventoryError) as info:
        load_inventory(path, startup=True)
    assert printed(path, line, message) in info.value.lines(), info.value.lines()
    assert "Traceback" not in str(info.value)
    # `check` and `collector run` refuse it the same way: exit 2, that message on stderr, nothing started.
    for argv in (["check", str(path)], ["collector", "run", "--inventory", str(path)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert printed(path, line, message) in err.splitlines(), (argv, err)


def test_the_corpus_covers_every_kind_of_mistake() -> None:
    assert len(BAD) >= 40
    stems = {p.stem for p in BAD}
    for kind in ("toml_syntax", "typo_agent_key", "wrong_type", "duplicate_id", "dangling_site", "bad_ipv4", "tcp_without_port",
                 "probe_param_typo", "snmp_profile_fortinet", "snmp_version", "secret_env_unset", "date_norwegian_style",
                 "duration_with_unit", "time_zone_typo", "maintenance_weekday", "alert_clear_above_threshold",
                 "route_unknown_channel", "channel_email_without_server", "empty_file"):
        assert kind in stems, kind


def test_lines_are_in_file_order_and_all_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "inventory.toml"
    bad.write_text(
        '[[site]]\nid = "radhus"\nname = "R"\n\n[[device]]\nid = "sw"\nname = "S"\nsite = "radhsu"\nhost = "10.0.0.300"\n'
        'hardware = { kind = "switch", lifetime_years = 8 }\n\n[[agent]]\nid = "pc"\nname = "P"\nsite = "radhus"\n',
        encoding="utf-8",
    )
    with pytest.raises(InventoryError) as info:
        load_inventory(bad)
    assert info.value.lines() == [
        f"{bad}:9: device 'sw': host: '10.0.0.300' is not an IP address or host name",
        f"{bad}:12: agent 'pc': token_sha256: required key is missing",
    ]
    bad.write_text(bad.read_text().replace('"10.0.0.300"', '"10.0.0.3"') + 'token_sha256 = "' + "1" * 64 + '"\n', encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(bad)
    assert info.value.lines() == [f"{bad}:8: device 'sw': site: no site with id 'radhsu'; did you mean 'radhus'?"]


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "inv.toml"
    bad.write_text('[[site]]\nid = "A"\nname = "x"\nfoo = 1\n', encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(bad)
    assert len(info.value.problems) == 2
    assert "site 'A': foo: unknown key" in info.value.problems


def test_secret_references_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("s3cret\n", encoding="utf-8")
    inv = tmp_path / "inv.toml"
    inv.write_text(
        '[storage]\nkind = "influxdb_v1"\nurl = "http://127.0.0.1:1"\ndatabase = "d"\nusername = "u"\npassword = "file:pw"\n',
        encoding="utf-8",
    )
    inventory = load_inventory(inv)
    assert inventory.secret(inventory.storage.password or "") == "s3cret"
    monkeypatch.delenv("NOPE", raising=False)
    inv.write_text(inv.read_text().replace("file:pw", "env:NOPE"), encoding="utf-8")
    assert load_inventory(inv).unresolved_secrets() == ["storage.password: env:NOPE: environment variable NOPE is not set"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)


def test_cli_check_is_the_collectors_gate(tmp_path: Path) -> None:
    # On a machine without the example's secrets and certificate the collector would not start: check says so.
    result = run_cli("check", "inventory.toml")
    assert result.returncode == 2, result.stderr
    assert "inventory.toml:22: storage.password: env:NETTVAKT_INFLUX_PASSWORD: environment variable NETTVAKT_INFLUX_PASSWORD is not set" in result.stderr
    assert "the collector would not start" in result.stderr
    # Checking the file for another machine: the secrets are notes.
    result = run_cli("check", "--offline", "inventory.toml")
    assert result.returncode == 0, result.stderr
    assert "inventory.toml: OK (7 sites" in result.stdout
    assert "note: not checked offline: storage.password" in result.stderr
    body = json.loads(run_cli("check", "--offline", "--json", "--inventory", "inventory.toml").stdout)
    assert body["ok"] is True and body["summary"]["sites"] == 7 and body["not_checked_offline"]
    # And the collector refuses to start on it, one line per problem, exit 2, no traceback.
    result = run_cli("collector", "run", "--inventory", "inventory.toml")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "the collector did not start" in result.stderr.splitlines()[-1]


def test_cli_check_broken_copy_names_line_and_device(tmp_path: Path) -> None:
    broken = tmp_path / "inventory.toml"
    text = (ROOT / "inventory.toml").read_text(encoding="utf-8")
    broken.write_text(text.replace('version = "3"', 'version = "9"', 1), encoding="utf-8")
    line = text.splitlines().index('version = "3"') + 1  # the first device's, wherever comments above it put it
    result = run_cli("check", "--offline", str(broken))
    assert result.returncode == 2
    assert f"{broken}:{line}: device 'fw-radhus': snmp.version: '9' is not one of '1', '2c' or '3'" in result.stderr
    body = json.loads(run_cli("check", "--offline", "--json", str(broken)).stdout)
    assert body["ok"] is False and body["errors"][0] == {
        "line": line, "path": "device[0].snmp.version", "message": "device 'fw-radhus': snmp.version: '9' is not one of '1', '2c' or '3'",
    }


def test_cli_usage_errors_exit_2() -> None:
    assert run_cli("nonsense").returncode == 2
    assert run_cli("probe").returncode == 2
    result = run_cli("collector", "--help")
    assert result.returncode == 0 and "run" in result.stdout
