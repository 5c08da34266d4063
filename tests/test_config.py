"""inventory.toml validation: the shipped example passes; each bad file fails with its exact message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.config import InventoryError, load_inventory

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "testdata" / "inventory"
BAD = sorted((DATA / "bad").glob("*.toml"))


def expected_message(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return first[len("# expect: "):]


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
def test_bad_inventory_names_the_place(path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert expected_message(path) in info.value.problems, info.value.problems
    assert str(info.value).startswith(f"{path}: ")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "inv.toml"
    bad.write_text('[[site]]\nid = "A"\nname = "x"\nfoo = 1\n', encoding="utf-8")
    with pytest.raises(InventoryError) as info:
        load_inventory(bad)
    assert len(info.value.problems) == 2
    assert "site[0].foo: unknown key" in info.value.problems


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


def test_cli_check_ok_and_json() -> None:
    result = run_cli("check", "inventory.toml")
    assert result.returncode == 0, result.stderr
    assert "inventory.toml: OK" in result.stdout
    # Secrets of the example are not set here: warned about, not fatal without --strict.
    assert "warning: storage.password: env:NETTVAKT_INFLUX_PASSWORD" in result.stderr
    result = run_cli("check", "--json", "--inventory", "inventory.toml")
    body = json.loads(result.stdout)
    assert body["ok"] is True and body["summary"]["sites"] == 7
    assert run_cli("check", "--strict", "inventory.toml").returncode == 1


def test_cli_check_broken_copy_names_path(tmp_path: Path) -> None:
    broken = tmp_path / "inventory.toml"
    text = (ROOT / "inventory.toml").read_text(encoding="utf-8")
    broken.write_text(text.replace('version = "3"', 'version = "9"', 1), encoding="utf-8")
    result = run_cli("check", str(broken))
    assert result.returncode == 1
    assert f"{broken}: device[0].snmp.version: Input should be '1', '2c' or '3'" in result.stderr
    result = run_cli("check", "--json", str(broken))
    body = json.loads(result.stdout)
    assert body["ok"] is False and body["errors"][0].startswith("device[0].snmp.version")


def test_cli_usage_errors_exit_2() -> None:
    assert run_cli("nonsense").returncode == 2
    assert run_cli("probe").returncode == 2
    result = run_cli("collector", "--help")
    assert result.returncode == 0 and "run" in result.stdout
