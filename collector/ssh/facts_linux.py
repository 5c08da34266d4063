"""Linux facts: one `head` of the files that tell the hardware, kernel, OS and uptime.

ntc-templates has nothing for these, so `parse_linux` reads the labelled output of
LINUX_FACTS_COMMAND itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from .facts import Facts, FactsError

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
