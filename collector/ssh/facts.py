"""Facts from CLI output: model, serial, firmware, uptime, as `hardware` and `device` points.

Pure functions over text. Where ntc-templates has a TextFSM template for the command
(FortiOS `get system status`, Cisco IOS `show version`/`show inventory`, ProCurve
`show system`) it does the parsing; our own code only picks and converts fields. Linux has
no template for what we read, so `parse_linux` reads the `head` output of LINUX_FACTS_COMMAND.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from agent.points import FieldValue, Point, now_ns

# Seconds per unit as devices print durations ("2 years, 31 weeks, 6 days, 9 hours, 55 minutes").
# A year is 365 days, as NAPALM counts it, so our uptime equals its `get_facts` uptime.
_UNIT_S = {"year": 31536000, "week": 604800, "day": 86400, "hour": 3600, "minute": 60, "second": 1}
_DURATION_PART = re.compile(r"(\d+)\s+(year|week|day|hour|minute|second)s?\b")


class FactsError(ValueError):
    """Output that does not look like the command's output at all."""


@dataclass
class Facts:
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    # Every chassis serial of a stack or VSF, first = the one `serial` names.
    serials: list[str] = field(default_factory=list)
    sw_rev: str | None = None  # the OS/firmware release, e.g. "7.0.7", "15.0(2)SE4", "K.15.06.0017"
    firmware: str | None = None  # the full version line as the device prints it
    fw_rev: str | None = None  # boot ROM / BIOS revision
    hostname: str | None = None
    uptime_s: float | None = None
    ha_state: str | None = None
    os_name: str | None = None
    os_version: str | None = None
    bios_date: str | None = None
    hw_rev: str | None = None
    cpu_model: str | None = None
    cpu_threads: float | None = None
    mem_total_bytes: float | None = None
    # What the device did not tell (e.g. a Linux server without DMI data): reported, not guessed.
    missing: list[str] = field(default_factory=list)

    def merge(self, other: "Facts") -> "Facts":
        """Fill what this one lacks from `other` (e.g. show version first, then show inventory)."""
        for name in self.__dataclass_fields__:
            if not getattr(self, name) and getattr(other, name):
                setattr(self, name, getattr(other, name))
        return self


def duration_s(text: str) -> float | None:
    """'1 year, 22 weeks, 6 days, 9 hours, 38 minutes' -> seconds; None without any unit."""
    parts = _DURATION_PART.findall(text)
    if not parts:
        return None
    return float(sum(int(n) * _UNIT_S[unit] for n, unit in parts))


def textfsm_parse(platform: str, command: str, text: str) -> list[dict[str, object]]:
    """Rows from the ntc-templates template for (platform, command)."""
    from ntc_templates.parse import parse_output  # imported late: loading the index takes a moment
    from textfsm import TextFSMError

    try:
        return parse_output(platform=platform, command=command, data=text)
    except TextFSMError as exc:
        # The templates reject lines they do not know (an error message, or a field a newer
        # release added); say which.
        raise FactsError(f"{platform} `{command}` template rejected the output: {exc}") from None


def _clean(value: object) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


# --- FortiOS --------------------------------------------------------------------------
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
    serial = _clean(row.get("serial_number"))
    return Facts(
        vendor="Fortinet",
        model=match.group("model") if match else None,
        sw_rev=match.group("rev") if match else None,
        firmware=version,
        serial=serial,
        serials=[serial] if serial else [],
        fw_rev=_clean(row.get("bios_version")),
        hostname=_clean(row.get("hostname")),
        ha_state=_clean(row.get("current_ha_mode")),
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
    hw_rev = _clean(row.get("hardware_revision"))
    return Facts(
        vendor="Fortinet",
        model=_clean(row.get("model_name")),
        hw_rev=None if hw_rev in (None, "unknown") else hw_rev,
        cpu_model=_clean(row.get("cpu")),
        cpu_threads=float(cpus) if cpus.isdigit() else None,
        mem_total_bytes=float(int(ram.group(1)) * 1024 * 1024) if ram else None,  # FortiOS's MB are MiB
    )


# --- Cisco IOS / IOS-XE ---------------------------------------------------------------
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
        sw_rev=_clean(row.get("version")),
        firmware=firmware.group("rest").strip() if firmware else _clean(row.get("version")),
        hostname=_clean(row.get("hostname")),
        uptime_s=duration_s(str(row.get("uptime") or "")),
        os_name="IOS-XE" if "IOS-XE" in text or "IOS XE" in text else "IOS",
        os_version=_clean(row.get("version")),
    )


def parse_ios_inventory(text: str) -> Facts:
    """`show inventory`: the first entry is the chassis (or the stack, whose serial is switch 1's)."""
    rows = textfsm_parse("cisco_ios", "show inventory", text)
    if not rows:
        raise FactsError("no NAME:/PID: entries: not Cisco `show inventory` output")
    chassis = rows[0]
    serial = _clean(chassis.get("sn"))
    serials: list[str] = []
    # Stack members are named "Switch N"; a single chassis has just itself.
    for row in rows:
        if re.fullmatch(r"Switch \d+", str(row.get("name", "")).strip()) and _clean(row.get("sn")):
            serials.append(str(row["sn"]).strip())
    if not serials and serial:
        serials = [serial]
    return Facts(
        vendor="Cisco",
        model=_clean(chassis.get("pid")) or _clean(chassis.get("descr")),
        serial=serial,
        serials=serials,
    )


# --- HP / Aruba ProCurve --------------------------------------------------------------
def parse_procurve_system(text: str) -> Facts:
    """`show system`: one row per VSF member; ProCurve does not name its model here."""
    rows = textfsm_parse("hp_procurve", "show system", text)
    if not rows or not rows[0].get("software_version"):
        raise FactsError("no 'Software revision' line: not ProCurve `show system` output")
    first = rows[0]
    serials = [str(r["serial"]).strip() for r in rows if _clean(r.get("serial"))]
    return Facts(
        vendor="HP",
        serial=serials[0] if serials else None,
        serials=serials,
        sw_rev=_clean(first.get("software_version")),
        firmware=_clean(first.get("software_version")),
        fw_rev=_clean(first.get("rom_version")),
        hostname=_clean(first.get("name")),
        uptime_s=duration_s(str(first.get("uptime") or "")),
        os_name="ArubaOS-Switch",
        os_version=_clean(first.get("software_version")),
    )


# --- Linux ----------------------------------------------------------------------------
_DMI = "/sys/class/dmi/id/"
LINUX_FILES = (
    _DMI + "sys_vendor",
    _DMI + "product_name",
    _DMI + "product_serial",
    _DMI + "bios_version",
    _DMI + "bios_date",
    "/proc/sys/kernel/osrelease",
    "/proc/uptime",
    "/etc/os-release",
)
# `head` prints "==> FILE <==" before each file it could read and skips unreadable ones
# (product_serial is root-only), so one round trip gives every file, labelled.
LINUX_FACTS_COMMAND = "LC_ALL=C head -n 40 " + " ".join(LINUX_FILES) + " 2>/dev/null"
_HEAD_HEADER = re.compile(r"^==> (.+) <==$")
# Placeholders that vendors leave in DMI instead of a value.
_DMI_PLACEHOLDERS = {"", "to be filled by o.e.m.", "default string", "not specified", "system serial number", "none", "0"}


def split_head_output(text: str) -> dict[str, str]:
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.replace("\r\n", "\n").split("\n"):
        header = _HEAD_HEADER.match(line)
        if header:
            current = files.setdefault(header.group(1), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines).strip() for name, lines in files.items()}


def _os_release(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip().strip('"').strip("'")
    return out


def _dmi(files: Mapping[str, str], name: str) -> str | None:
    value = files.get(_DMI + name, "").strip()
    return None if value.lower() in _DMI_PLACEHOLDERS else value


def _iso_date(us_date: str | None) -> str | None:
    """DMI's MM/DD/YYYY -> YYYY-MM-DD."""
    match = re.fullmatch(r"(\d{2})/(\d{2})/(\d{4})", us_date or "")
    return f"{match.group(3)}-{match.group(1)}-{match.group(2)}" if match else None


def parse_linux(text: str) -> Facts:
    files = split_head_output(text)
    if "/proc/sys/kernel/osrelease" not in files and "/etc/os-release" not in files:
        raise FactsError("no '==> /proc/sys/kernel/osrelease <==' section: not the output of LINUX_FACTS_COMMAND")
    release = _os_release(files.get("/etc/os-release", ""))
    uptime = files.get("/proc/uptime", "").split()
    serial = _dmi(files, "product_serial")
    # Containers and some VMs have no /sys/class/dmi/id; product_serial is readable by root only.
    missing = [
        f"{name} ({_DMI}{file})"
        for name, file in (("vendor", "sys_vendor"), ("model", "product_name"), ("serial", "product_serial"), ("fw_rev", "bios_version"))
        if _dmi(files, file) is None
    ]
    return Facts(
        vendor=_dmi(files, "sys_vendor"),
        model=_dmi(files, "product_name"),
        serial=serial,
        serials=[serial] if serial else [],
        sw_rev=files.get("/proc/sys/kernel/osrelease") or None,
        firmware=release.get("PRETTY_NAME"),
        fw_rev=_dmi(files, "bios_version"),
        bios_date=_iso_date(_dmi(files, "bios_date")),
        uptime_s=float(uptime[0]) if uptime else None,
        os_name=release.get("NAME"),
        os_version=release.get("VERSION_ID"),
        missing=missing,
    )


# --- per device type: commands and how to read them -----------------------------------
@dataclass(frozen=True)
class FactsRecipe:
    command: str
    parse: Callable[[str], Facts]
    # A failing optional command (an old IOS without `show inventory`) does not fail the facts.
    required: bool = True


FACTS_COMMANDS: dict[str, tuple[FactsRecipe, ...]] = {
    "fortinet": (
        FactsRecipe("get system status", parse_fortios_status),
        FactsRecipe("get hardware status", parse_fortios_hardware, required=False),
    ),
    "cisco_ios": (
        FactsRecipe("show version", parse_ios_version),
        FactsRecipe("show inventory", parse_ios_inventory, required=False),
    ),
    "hp_procurve": (FactsRecipe("show system", parse_procurve_system),),
    "linux": (FactsRecipe(LINUX_FACTS_COMMAND, parse_linux),),
}


def facts_from_outputs(device_type: str, outputs: Mapping[str, str]) -> Facts:
    """Combine the outputs of FACTS_COMMANDS[device_type] (command -> text) into one Facts."""
    facts = Facts()
    for recipe in FACTS_COMMANDS[device_type]:
        text = outputs.get(recipe.command)
        if text is None:
            if recipe.required:
                raise FactsError(f"no output for {recipe.command!r}")
            continue
        try:
            facts.merge(recipe.parse(text))
        except FactsError:
            if recipe.required:
                raise
    return facts


def facts_points(facts: Facts, *, device: str, site: str, kind: str = "network", time_ns: int | None = None) -> list[Point]:
    """`hardware` (tags site, device, kind) and `device` (tags site, device) points, per docs/metrics.md."""
    ts = time_ns if time_ns is not None else now_ns()
    hw: dict[str, FieldValue] = {}
    for name in (
        "model", "serial", "vendor", "sw_rev", "fw_rev", "hw_rev", "os_name", "os_version", "bios_date",
        "cpu_model", "cpu_threads", "mem_total_bytes",
    ):
        value = getattr(facts, name)
        if value:
            hw[name] = value
    if len(facts.serials) > 1:
        hw["serials"] = ",".join(facts.serials)
    dev: dict[str, FieldValue] = {}
    if facts.firmware:
        dev["firmware"] = facts.firmware
    if facts.uptime_s is not None:
        dev["uptime_s"] = facts.uptime_s
    if facts.ha_state:
        dev["ha_state"] = facts.ha_state
    points = []
    if hw:
        points.append(Point("hardware", {"site": site, "device": device, "kind": kind}, hw, ts))
    if dev:
        points.append(Point("device", {"site": site, "device": device}, dev, ts))
    return points
