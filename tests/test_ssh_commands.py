"""What `nettvakt ssh run` lets through (collector.ssh.commands), the [device.ssh] settings it reads, and diff cutting."""

from __future__ import annotations

from typing import Any

import pytest

from collector.config import InventoryError, parse_inventory
from collector.ssh.commands import refusal
from collector.ssh.scheduler import _WORDS, cut_diff


@pytest.mark.parametrize(
    "device_type, command",
    [
        ("cisco_ios", "show running-config"),
        ("cisco_ios", "sh ip int brief"),
        ("cisco_ios", "show running-config | include snmp"),
        ("cisco_ios", "show  interfaces   status | begin Gi1/0/1"),
        ("hp_procurve", "show system"),
        ("fortinet", "get system status"),
        ("fortinet", "show firewall policy | grep -f name"),
        ("fortinet", "diagnose sys session stat"),
        ("fortinet", "diagnose sys top 2 20"),
        ("fortinet", "execute ping 10.0.0.1"),
        ("linux", "uptime"),
        ("linux", "df -h /"),
        ("linux", "ip -br addr show"),
        ("linux", "ss -tlnp | grep 22"),
        ("linux", "cat /proc/loadavg /proc/meminfo"),
        ("linux", "systemctl status nettvakt --no-pager"),
    ],
)
def test_read_only_commands_allowed(device_type: str, command: str) -> None:
    assert refusal(device_type, command) is None


@pytest.mark.parametrize(
    "device_type, command, why",
    [
        ("cisco_ios", "configure terminal", "is not one of the read-only cisco_ios commands"),
        ("cisco_ios", "reload", "is not one of the read-only"),
        ("cisco_ios", "show run | redirect flash:x", "is not an output filter allowed on cisco_ios"),
        ("cisco_ios", "show run | tee flash:x", "is not an output filter"),
        ("cisco_ios", "copy running-config tftp://10.0.0.1/x", "is not one of the read-only"),
        ("fortinet", "config system interface", "is not one of the read-only fortinet commands"),
        ("fortinet", "diagnose sys kill 9 123", "is not one of the read-only"),
        ("fortinet", "diagnose sys session clear", "is not one of the read-only"),
        ("fortinet", "execute reboot", "is not one of the read-only"),
        ("linux", "rm -rf /", "is not one of the read-only linux commands"),
        ("linux", "uptime; reboot", "chains"),
        ("linux", "uptime && reboot", "chains"),
        ("linux", "cat /proc/$(reboot)", "chains"),
        ("linux", "cat `id`", "chains"),
        ("linux", "df > /etc/passwd", "chains"),
        ("linux", "cat /etc/shadow", "is not one of the read-only"),
        ("linux", "cat /proc/../etc/shadow", "leaves the allowed paths"),
        ("linux", "df | sh", "is not an output filter allowed on linux"),
        ("linux", "uptime\nreboot", "'uptime reboot' is not one of the read-only"),  # sent as one line, if at all
        ("linux", "   ", "empty command"),
    ],
)
def test_other_commands_refused(device_type: str, command: str, why: str) -> None:
    assert why in (refusal(device_type, command) or "")


def test_device_allow_list_comes_first() -> None:
    assert refusal("cisco_ios", "write memory", [r"write( memory)?"]) is None
    assert refusal("linux", "systemctl restart nettvakt-agent", [r"systemctl restart nettvakt-\w+"]) is None
    # Whole-command matches only: a pattern for one command does not let a longer one through.
    assert refusal("cisco_ios", "write erase", [r"write( memory)?"]) is not None
    assert refusal("linux", "uptime; reboot", [r"uptime"]) is not None


def test_every_platform_has_read_only_commands() -> None:
    from collector.ssh.platforms import PLATFORMS

    assert all(platform.read_only for platform in PLATFORMS.values())


def inventory(ssh: dict[str, Any]) -> dict[str, Any]:
    return {
        "lifecycle": {"kinds": {"switch": {"lifetime_years": 8, "replacement_cost_nok": 1}}},
        "site": [{"id": "radhus", "name": "Rådhuset"}],
        "device": [{"id": "sw1", "name": "sw1", "site": "radhus", "host": "10.0.0.2", "hardware": {"kind": "switch"}, "ssh": ssh}],
    }


def test_ssh_settings_keys() -> None:
    ssh = {"device_type": "cisco_ios", "username": "nettvakt", "key_file": "keys/id_ed25519", "key_passphrase": "env:NV_KEY_PASS",
           "enable_secret": "file:enable", "allow_commands": ["write memory"]}
    settings = parse_inventory(inventory(ssh)).device[0].ssh
    assert settings is not None and settings.allow_commands == ["write memory"] and settings.key_passphrase == "env:NV_KEY_PASS"


@pytest.mark.parametrize(
    "ssh, message",
    [
        ({"password": "file:pw", "allow_commands": ["show ("]}, "inventory.toml: device 'sw1': ssh.allow_commands: allow_commands[0] 'show (' is not a regular expression: missing )"),
        ({"password": "file:pw", "key_passphrase": "env:X"}, "device 'sw1': ssh: key_passphrase without key_file"),
        ({"password": "file:pw", "enable_secret": "cisco"}, "device 'sw1': ssh.enable_secret"),
    ],
)
def test_bad_ssh_settings_named(ssh: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory(inventory({"device_type": "cisco_ios", "username": "nettvakt", **ssh}))
    assert message in str(caught.value)


def test_long_diff_cut_at_a_line_with_a_note() -> None:
    diff = "".join(f"+ description port {i}\n" for i in range(3000))
    for language in ("nb", "en"):
        cut = cut_diff(diff, _WORDS[language], "sw1", limit=1000)
        kept, note = cut[:-1].rsplit("\n", 1)
        assert len(kept) < 1000 and diff.startswith(kept + "\n")
        assert f"{len(diff)}" in note and "nettvakt config diff sw1" in note
    assert cut_diff("+ a\n", _WORDS["nb"], "sw1", limit=1000) == "+ a\n"


def test_event_rules_are_ones_routes_may_name() -> None:
    from collector.alerting.rules import EVENT_RULES
    from collector.ssh.scheduler import CONFIG_CHANGE_RULE, HOST_KEY_RULE

    assert {CONFIG_CHANGE_RULE, HOST_KEY_RULE} <= set(EVENT_RULES)
