"""Cisco IOS / IOS-XE facts: `show version` and `show inventory`, both through ntc-templates."""

from __future__ import annotations

import re

from .facts import Facts, FactsError, duration_s, text_value, textfsm_parse

# The release line, e.g. "Cisco IOS Software, C2960 Software (C2960-LANBASEK9-M), Version 15.0(2)SE4, ...";
# like NAPALM's os_version we drop the "Cisco IOS Software, " prefix.
_IOS_FIRMWARE_LINE = re.compile(r"^(?:Cisco )?IOS Software(?: \[\w+\])?,? ?(?P<rest>.*Version.*)$", re.MULTILINE)


def parse_ios_version(text: str) -> Facts:
    rows = textfsm_parse("cisco_ios", "show version", text)
    if not rows or not rows[0].get("version"):
        raise FactsError("no IOS version line: not Cisco IOS `show version` output")
    row = rows[0]
    models = [m for m in row.get("hardware") or [] if m]
    serials = [s for s in row.get("serial") or [] if s]
    firmware = _IOS_FIRMWARE_LINE.search(text)
    return Facts(
        vendor="Cisco",
        model=models[0] if models else None,
        serial=serials[0] if serials else None,
        serials=serials,
        sw_rev=text_value(row.get("version")),
        firmware=firmware.group("rest").strip() if firmware else text_value(row.get("version")),
        hostname=text_value(row.get("hostname")),
        uptime_s=duration_s(str(row.get("uptime") or "")),
        os_name="IOS-XE" if "IOS-XE" in text or "IOS XE" in text else "IOS",
        os_version=text_value(row.get("version")),
    )


def parse_ios_inventory(text: str) -> Facts:
    """`show inventory`: the first entry is the chassis (or the stack, whose serial is switch 1's)."""
    rows = textfsm_parse("cisco_ios", "show inventory", text)
    if not rows:
        raise FactsError("no NAME:/PID: entries: not Cisco `show inventory` output")
    chassis = rows[0]
    serial = text_value(chassis.get("sn"))
    serials: list[str] = []
    # Stack members are named "Switch N"; a single chassis has just itself.
    for row in rows:
        if re.fullmatch(r"Switch \d+", str(row.get("name", "")).strip()) and text_value(row.get("sn")):
            serials.append(str(row["sn"]).strip())
    if not serials and serial:
        serials = [serial]
    return Facts(
        vendor="Cisco",
        model=text_value(chassis.get("pid")) or text_value(chassis.get("descr")),
        serial=serial,
        serials=serials,
    )
