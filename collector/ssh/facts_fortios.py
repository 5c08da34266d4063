"""FortiOS facts: `get system status` (ntc-templates, or its `Key: value` lines) and `get hardware status`."""

from __future__ import annotations

import re

from .facts import Facts, FactsError, text_value, textfsm_parse

_FORTI_VERSION = re.compile(r"^(?P<model>\S+)\s+v(?P<rev>[\d.]+)")


def _fortios_key_values(text: str) -> list[dict[str, object]]:
    """`Key: value` lines as the template names them ("Serial-Number" -> "serial_number")."""
    row: dict[str, object] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            row.setdefault(re.sub(r"[^a-z0-9]+", "_", key.strip().lower()).strip("_"), value.strip())
    return [row] if row else []


def parse_fortios_status(text: str) -> Facts:
    """`get system status`. Its 'Cluster uptime' is the cluster's, not this unit's, so no uptime_s.

    The template knows each release's lines and rejects others (7.4.7 added Proxy-IPS-DB);
    the output is plain `Key: value` lines, so then we read those ourselves.
    """
    try:
        rows = textfsm_parse("fortinet", "get system status", text)
    except FactsError:
        rows = _fortios_key_values(text)
    if not rows or not rows[0].get("version"):
        raise FactsError("no 'Version:' line: not FortiOS `get system status` output")
    row = rows[0]
    version = str(row["version"]).strip()
    match = _FORTI_VERSION.match(version)
    serial = text_value(row.get("serial_number"))
    return Facts(
        vendor="Fortinet",
        model=match.group("model") if match else None,
        sw_rev=match.group("rev") if match else None,
        firmware=version,
        serial=serial,
        serials=[serial] if serial else [],
        fw_rev=text_value(row.get("bios_version")),
        hostname=text_value(row.get("hostname")),
        ha_state=text_value(row.get("current_ha_mode")),
        os_name="FortiOS",
        os_version=match.group("rev") if match else None,
    )


def parse_fortios_hardware(text: str) -> Facts:
    """`get hardware status` (no ntc-template exists): plain `Key: value` lines."""
    row = next(iter(_fortios_key_values(text)), {})
    if "model_name" not in row:
        raise FactsError("no 'Model name:' line: not FortiOS `get hardware status` output")
    ram = re.fullmatch(r"(\d+)\s*MB", str(row.get("ram", "")))
    cpus = str(row.get("number_of_cpus", ""))
    hw_rev = text_value(row.get("hardware_revision"))
    return Facts(
        vendor="Fortinet",
        model=text_value(row.get("model_name")),
        hw_rev=None if hw_rev in (None, "unknown") else hw_rev,
        cpu_model=text_value(row.get("cpu")),
        cpu_threads=float(cpus) if cpus.isdigit() else None,
        mem_total_bytes=float(int(ram.group(1)) * 1024 * 1024) if ram else None,  # FortiOS's MB are MiB
    )
