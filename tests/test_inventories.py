"""The shared test-inventory builder (tests/inventories.py): what it writes is what it means, and it validates."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest

from collector.config import InventoryError, load_inventory
from collector.service import token_hash
from inventories import InventoryBuilder, starter_lifecycle


def test_the_defaults_alone_start_a_collector(tmp_path: Path) -> None:
    inventory = load_inventory(InventoryBuilder(tmp_path).write(), startup=True)
    assert [(s.id, s.name) for s in inventory.site] == [("radhus", "Rådhuset")]
    assert inventory.data_dir() == tmp_path / "data"  # beside the file, never the repository's var/
    assert inventory.storage.kind == "local" and not inventory.agent and not inventory.device


def test_every_table_round_trips_through_the_file(tmp_path: Path) -> None:
    built = (
        InventoryBuilder(tmp_path, organisation="Karlsøy kommune")
        .collector(listen="127.0.0.1:8650")
        .influxdb("http://127.0.0.1:8086", "nettvakt", flush_interval_s=0.1)
        .alerting(language="en", group_wait_s=0)
        .site("radhus", uplink="fw")
        .site("hansnes", "Teknisk utestasjon Hansnes")
        .agent("pc1", hardware={"kind": "pc", "purchased": dt.date(2021, 3, 15)}, services=["sshd"])
        .device("fw", hardware={"kind": "firewall", "lifetime_years": 7},
                snmp={"version": "3", "v3": {"user": "nv", "auth_protocol": "SHA", "auth_key": "env:NV_AUTH"},
                      "interface_speed_bps": {"Gi1/0/1": 50e6}})
        .device("sw-hansnes", site="hansnes", ssh={"device_type": "cisco_ios", "username": "admin", "password": "env:NV_PW"})
        .probe("gw", "icmp", "10.20.0.1", params={"count": 3})
        .probe("web", "tcp", "10.20.0.2:443", agents=["pc1"])
        .alert("device-down", "device_down", severity="critical")
        .email("vakt", 2525, smtp_starttls="never")
        .route("vakt", severities=["critical"])
    )
    text = built.write().read_text(encoding="utf-8")
    assert tomllib.loads(text) == built.data()
    assert "[device.snmp.v3]" in text and 'hardware = { kind = "pc", purchased = 2021-03-15 }' in text
    inventory = load_inventory(built.path)
    assert inventory.organisation == "Karlsøy kommune" and inventory.alerting.language == "en"
    assert inventory.device[0].snmp is not None and inventory.device[0].snmp.interface_speed_bps == {"Gi1/0/1": 50e6}
    assert [p.sites for p in inventory.probe] == [["radhus", "hansnes"], []]  # no sites nor agents: every site
    assert [(d.id, d.site) for d in inventory.device] == [("fw", "radhus"), ("sw-hansnes", "hansnes")]  # the first site by default
    assert built.parse() == inventory


def test_agents_hold_the_hash_of_their_token(tmp_path: Path) -> None:
    built = InventoryBuilder(tmp_path).agent("pc1").agent("pc2", "a-token-of-its-own")
    assert built.tokens == {"pc1": "pc1-token", "pc2": "a-token-of-its-own"}
    inventory = built.parse()
    assert [a.token_sha256 for a in inventory.agent] == [token_hash("pc1-token"), token_hash("a-token-of-its-own")]


def test_lifecycle_comes_from_the_starter_inventory_unless_the_test_sets_it(tmp_path: Path) -> None:
    built = (
        InventoryBuilder(tmp_path)
        .lifecycle("pc", 5, 11000)
        .agent("pc1", hardware="pc")
        .agent("srv1", hardware="server")
        .device("sw1", hardware={"kind": "switch", "lifetime_years": 8})  # a lifetime of its own: no kind needed
    )
    kinds = built.parse().lifecycle.kinds
    assert set(kinds) == {"pc", "server"}
    assert (kinds["pc"].lifetime_years, kinds["pc"].replacement_cost_nok) == (5, 11000)
    assert kinds["server"].model_dump() == starter_lifecycle()["server"]  # what `nettvakt init` writes


def test_a_mistake_is_written_as_given_and_the_loader_names_its_line(tmp_path: Path) -> None:
    built = InventoryBuilder(tmp_path).device("fw", host="127.0.0.300", snmp={"community": "env:X", "profile": "fortinet"})
    path = built.write()
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    line = built.text().splitlines().index('host = "127.0.0.300"') + 1
    assert f"{path}:{line}: device 'fw': host: '127.0.0.300' is not an IP address or host name" in caught.value.lines()
