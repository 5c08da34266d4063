"""Hardware identification of the machine the agent runs on -> one `hardware` point.

The lifecycle report needs to know what a PC or server *is* (vendor, model, serial, CPU,
memory) and how old it probably is. The sources differ per OS, so each OS has a small
adapter that returns the same `Facts` dict; `collect_hardware` picks one by platform.

Parsing is kept apart from running commands: `facts_from_dmidecode` and `facts_from_wmi`
are pure functions over recorded text, tested with real dumps (tests/test_hwfacts.py).

Age evidence: a PC has no "manufactured" field we can read, so `manufactured_estimate` is
the BIOS release date. It is left out on virtual machines, whose firmware carries a fixed
date (SeaBIOS says 2014-04-01 whatever the host's age). A BIOS that was updated in the
field makes a machine look younger than it is; the inventory's `purchased` date wins.

Fields beyond docs/metrics.md's `hardware` table (bios_*, cpu_*, mem_total_bytes,
chassis_type, manufactured_estimate, model_number, virtual, os_*) are facts of agents only.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import psutil

from agent.points import FieldValue, Point

log = logging.getLogger("nettvakt.agent.hwfacts")

Facts = dict[str, FieldValue]

DMIDECODE_TIMEOUT_S = 15.0
POWERSHELL_TIMEOUT_S = 60.0  # the first CIM query after boot can take tens of seconds
SYSFS_DMI = Path("/sys/class/dmi/id")
SYSFS_DMI_TABLE = Path("/sys/firmware/dmi/tables/DMI")

# ---------------------------------------------------------------------------------------------
# Values that firmware vendors leave in fields they did not fill. Compared case-insensitively
# after whitespace is collapsed. linuxhw's anonymised dumps use "--" for serials.
_PLACEHOLDERS = frozenset(
    s.lower()
    for s in (
        "Not Specified", "Not Available", "Not Applicable", "Not Provided", "Not Present",
        "To Be Filled By O.E.M.", "To Be Filled By OEM", "Fill By OEM", "O.E.M.", "OEM",
        "Default string", "Default", "System manufacturer", "System Manufacturer",
        "System Product Name", "System Version", "System Serial Number", "Chassis Serial Number",
        "Base Board Serial Number", "Chassis Manufacturer", "Chassis Version",
        "Unknown", "None", "N/A", "NA", "Invalid", "Undefined", "Type1ProductConfigId",
        "123456789", "1234567890", "0123456789",
    )
)
# One character repeated (all zeros, all Fs, "--", "....", "XXXX") is a placeholder, not a value.
_REPEATED_CHAR = re.compile(r"^(.)\1*$")
# dmidecode marks unreadable strings as <BAD INDEX>, <OUT OF SPEC>, ...
_DMIDECODE_MARK = re.compile(r"^<.*>$")


def clean(value: Any) -> str | None:
    """The value as a trimmed string, or None when it is empty or a known placeholder."""
    if value is None:
        return None
    text = " ".join(str(value).split())
    if not text:
        return None
    low = text.lower()
    if low in _PLACEHOLDERS or _DMIDECODE_MARK.match(text):
        return None
    if (len(text) > 1 and _REPEATED_CHAR.match(low.replace(" ", ""))) or low in {"0", "-", "."}:
        return None
    return text


# SMBIOS chassis types (DSP0134 table 17), as dmidecode names them. sysfs and Windows
# (Win32_SystemEnclosure.ChassisTypes) give the number, dmidecode the name: one table for both.
CHASSIS_TYPES: dict[int, str] = {
    1: "Other", 2: "Unknown", 3: "Desktop", 4: "Low Profile Desktop", 5: "Pizza Box",
    6: "Mini Tower", 7: "Tower", 8: "Portable", 9: "Laptop", 10: "Notebook", 11: "Hand Held",
    12: "Docking Station", 13: "All In One", 14: "Sub Notebook", 15: "Space-saving",
    16: "Lunch Box", 17: "Main Server Chassis", 18: "Expansion Chassis", 19: "Sub Chassis",
    20: "Bus Expansion Chassis", 21: "Peripheral Chassis", 22: "RAID Chassis",
    23: "Rack Mount Chassis", 24: "Sealed-case PC", 25: "Multi-system", 26: "CompactPCI",
    27: "AdvancedTCA", 28: "Blade", 29: "Blade Enclosing", 30: "Tablet", 31: "Convertible",
    32: "Detachable", 33: "IoT Gateway", 34: "Embedded PC", 35: "Mini PC", 36: "Stick PC",
}

# Vendors whose Product Name is a machine-type code (Lenovo "0830F2U", "21MCS00J00") while the
# name people know ("ThinkCentre M70e") is in the System Version (or Family).
_MODEL_IN_VERSION = frozenset({"lenovo"})

# Words in vendor, model or firmware that only virtual machines carry.
_VM_MARKERS = re.compile(
    r"\b(qemu|kvm|bochs|seabios|vmware|virtualbox|innotek|xen|hvm domu|parallels|"
    r"virtual machine|vrtual|edk ii|openstack|amazon ec2|google compute engine|bhyve)\b",
    re.IGNORECASE,
)


def parse_date(value: Any) -> str | None:
    """A firmware date as an ISO date, or None when it is not a plausible date.

    Accepts dmidecode/sysfs `MM/DD/YYYY` (also unpadded `2/2/2022` and two-digit years),
    CIM datetimes `yyyymmddHHMMSS.ffffff+UUU` (wmic), ISO dates, and PowerShell 5's
    `/Date(ms)/`.
    """
    text = clean(value)
    if text is None:
        return None
    try:
        if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{2}|\d{4})", text):
            month, day, year = int(m[1]), int(m[2]), int(m[3])
            if year < 100:  # old BIOSes: "12/01/06"
                year += 2000 if year < 80 else 1900
            d = date(year, month, day)
        elif m := re.fullmatch(r"(\d{4})(\d{2})(\d{2})(\d{6}(\.\d+)?([+-]\d{3})?)?", text):
            d = date(int(m[1]), int(m[2]), int(m[3]))
        elif m := re.match(r"(\d{4})-(\d{2})-(\d{2})", text):
            d = date(int(m[1]), int(m[2]), int(m[3]))
        elif m := re.fullmatch(r"/?\\?/?Date\((-?\d+)([+-]\d{4})?\)\\?/?", text):
            d = datetime.fromtimestamp(int(m[1]) / 1000, tz=timezone.utc).date()
        else:
            return None
    except ValueError:  # 02/30/2020 and the like
        return None
    # A date before PCs had SMBIOS or after next year is a broken clock or field, not evidence.
    if not 1985 <= d.year <= date.today().year + 1:
        return None
    return d.isoformat()


def _size_bytes(text: str) -> int | None:
    """dmidecode memory sizes: "4 GB", "512 MB", "16384 MB"; "No Module Installed" -> None."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(bytes|kB|KB|MB|GB|TB)", text.strip())
    if not m:
        return None
    scale = {"bytes": 1, "kB": 1 << 10, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
    return int(float(m[1]) * scale[m[2]])


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# The normalised view every source is turned into, so the rules (which field is the model,
# what counts as virtual) are written once.


@dataclass
class Smbios:
    sys_vendor: str | None = None
    product_name: str | None = None
    product_version: str | None = None
    product_family: str | None = None
    product_serial: str | None = None
    board_vendor: str | None = None
    board_name: str | None = None
    board_serial: str | None = None
    chassis_type: str | None = None
    chassis_serial: str | None = None
    bios_vendor: str | None = None
    bios_version: str | None = None
    bios_date: str | None = None  # ISO
    says_vm: bool = False  # firmware or CPU flags say so outright
    cpu_model: str | None = None
    cpu_cores: int | None = None
    cpu_threads: int | None = None
    mem_total_bytes: int | None = None
    os_name: str | None = None
    os_version: str | None = None
    os_installed: str | None = None  # ISO date the OS was installed: the last witness of a machine's age
    extra_vm_evidence: list[str] = field(default_factory=list)

    def merge(self, other: "Smbios") -> None:
        """Fill what this view lacks from `other` (the first source that knows a fact wins)."""
        for name in self.__dataclass_fields__:
            mine, theirs = getattr(self, name), getattr(other, name)
            if name == "says_vm":
                self.says_vm = mine or theirs
            elif name == "extra_vm_evidence":
                mine.extend(theirs)
            elif mine is None and theirs is not None:
                setattr(self, name, theirs)

    def facts(self) -> Facts:
        out: Facts = {}
        vendor, model, model_number = self.sys_vendor, self.product_name, None
        if vendor and vendor.lower() in _MODEL_IN_VERSION:
            friendly = self.product_version or self.product_family
            if friendly and friendly != model:
                model, model_number = friendly, model
        if model is None and self.board_name:
            # Self-built PCs leave the system fields as placeholders; the board is what they are.
            vendor, model = self.board_vendor or vendor, self.board_name
        serial = self.product_serial or self.chassis_serial or self.board_serial
        virtual = self.says_vm or any(
            _VM_MARKERS.search(s)
            for s in (
                self.sys_vendor, self.product_name, self.product_version, self.bios_vendor,
                self.bios_version, *self.extra_vm_evidence,
            )
            if s
        )
        for key, value in (
            ("vendor", vendor),
            ("model", model),
            ("model_number", model_number),
            ("serial", serial),
            ("chassis_type", self.chassis_type),
            ("bios_version", self.bios_version),
            ("bios_date", self.bios_date),
            ("cpu_model", self.cpu_model),
            ("cpu_cores", self.cpu_cores),
            ("cpu_threads", self.cpu_threads),
            ("mem_total_bytes", self.mem_total_bytes),
            ("os_name", self.os_name),
            ("os_version", self.os_version),
            ("os_installed", self.os_installed),
        ):
            if value is not None:
                out[key] = value
        # "Not a VM" needs firmware identity to stand on; from OS facts alone we only know "VM"
        # when a CPU flag says so, and say nothing otherwise.
        firmware = any((self.sys_vendor, self.product_name, self.board_name, self.bios_vendor, self.bios_version))
        if virtual or (out and firmware):
            out["virtual"] = 1.0 if virtual else 0.0
        if self.bios_date and not virtual:
            out["manufactured_estimate"] = self.bios_date
        return out


# ---------------------------------------------------------------------------------------------
# Linux: dmidecode text


@dataclass
class DmiRecord:
    handle: str
    type: int
    title: str = ""
    props: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)


_HANDLE = re.compile(r"^Handle (0x[0-9A-Fa-f]+), DMI type (\d+)")


def parse_dmidecode(text: str) -> list[DmiRecord]:
    """dmidecode's text output as records. Lines it cannot place are skipped, never fatal:
    a truncated dump gives the records (and the part of the last record) it has."""
    records: list[DmiRecord] = []
    current: DmiRecord | None = None
    list_key: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip("\r\n")
        if m := _HANDLE.match(line):
            current = DmiRecord(handle=m[1], type=int(m[2]))
            records.append(current)
            list_key = None
            continue
        if current is None or not line.strip():
            continue
        if not line.startswith("\t"):
            if not current.title:
                current.title = line.strip()
            continue
        if line.startswith("\t\t"):
            if list_key is not None:
                current.lists[list_key].append(line.strip())
            continue
        key, sep, value = line[1:].partition(":")
        if not sep:
            # e.g. linuxhw's anonymiser replaced some whole lines with a hash: no key, no value.
            list_key = None
            continue
        key, value = key.strip(), value.strip()
        if value:
            current.props.setdefault(key, value)
            list_key = None
        else:
            current.lists.setdefault(key, [])
            list_key = key
    return records


def _smbios_from_dmidecode(text: str) -> Smbios:
    view = Smbios()
    records = parse_dmidecode(text)

    def first(type_: int) -> DmiRecord | None:
        return next((r for r in records if r.type == type_), None)

    if bios := first(0):
        view.bios_vendor = clean(bios.props.get("Vendor"))
        view.bios_version = clean(bios.props.get("Version"))
        view.bios_date = parse_date(bios.props.get("Release Date"))
        view.says_vm = any("virtual machine" in c for c in bios.lists.get("Characteristics", []))
    if system := first(1):
        view.sys_vendor = clean(system.props.get("Manufacturer"))
        view.product_name = clean(system.props.get("Product Name"))
        view.product_version = clean(system.props.get("Version"))
        view.product_family = clean(system.props.get("Family"))
        view.product_serial = clean(system.props.get("Serial Number"))
    if board := first(2):
        view.board_vendor = clean(board.props.get("Manufacturer"))
        view.board_name = clean(board.props.get("Product Name"))
        view.board_serial = clean(board.props.get("Serial Number"))
    if chassis := first(3):
        view.chassis_type = _chassis_name(chassis.props.get("Type"))
        view.chassis_serial = clean(chassis.props.get("Serial Number"))

    # Processors: count only populated sockets (a 2-socket server with one CPU says
    # "Status: Unpopulated" for the empty one). QEMU/KVM copy the machine version into the
    # processor Version ("pc-q35-8.2"): that is not a CPU model.
    machine_versions = {v for v in (view.product_version, view.product_name) if v}
    cores: list[int] = []
    threads: list[int] = []
    for cpu in (r for r in records if r.type == 4):
        status = cpu.props.get("Status", "")
        if status and not status.startswith("Populated"):
            continue
        model = clean(cpu.props.get("Version"))
        if model and view.cpu_model is None and model not in machine_versions:
            view.cpu_model = model
        if (n := _int(cpu.props.get("Core Count"))) is not None:
            cores.append(n)
        if (n := _int(cpu.props.get("Thread Count"))) is not None:
            threads.append(n)
    view.cpu_cores = sum(cores) if cores else None
    view.cpu_threads = sum(threads) if threads else None

    # Memory: the installed modules (what a purchase order said), not what the OS sees.
    sizes = [r.props.get("Size", "") for r in records if r.type == 17]
    if sizes:
        total = sum(_size_bytes(s) or 0 for s in sizes)
        view.mem_total_bytes = total or None
    return view


def _chassis_name(value: Any) -> str | None:
    text = clean(value)
    if text is None:
        return None
    if text.isdigit():  # sysfs gives the SMBIOS number
        text = CHASSIS_TYPES.get(int(text) & 0x7F, "")  # bit 7 is the "lock present" flag
    return clean(text)


def facts_from_dmidecode(text: str) -> Facts:
    """Hardware facts from `dmidecode` text output (types 0-4 and 17 are used)."""
    return _smbios_from_dmidecode(text).facts()


# ---------------------------------------------------------------------------------------------
# Linux: sysfs (no root needed except for product_serial)


def _smbios_from_sysfs(root: Path = SYSFS_DMI) -> Smbios:
    def read(name: str) -> str | None:
        try:
            return clean((root / name).read_text(errors="replace"))
        except OSError:  # missing (no DMI) or root-only (product_serial)
            return None

    view = Smbios(
        sys_vendor=read("sys_vendor"),
        product_name=read("product_name"),
        product_version=read("product_version"),
        product_family=read("product_family"),
        product_serial=read("product_serial"),
        board_vendor=read("board_vendor"),
        board_name=read("board_name"),
        board_serial=read("board_serial"),
        chassis_type=_chassis_name(read("chassis_type")),
        chassis_serial=read("chassis_serial"),
        bios_vendor=read("bios_vendor"),
        bios_version=read("bios_version"),
        bios_date=parse_date(read("bios_date")),
    )
    return view


def facts_from_sysfs(root: Path = SYSFS_DMI) -> Facts:
    """Hardware facts from /sys/class/dmi/id (a directory of one-line files)."""
    return _smbios_from_sysfs(root).facts()


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    """Facts are collected again on every config refresh; a machine that lacks dmidecode
    or PowerShell would otherwise say so in the log every time."""
    if message not in _warned:
        _warned.add(message)
        log.warning("hardware facts: %s", message)


def _run(argv: Sequence[str], timeout_s: float, encoding: str | None = None) -> str | None:
    """stdout of a command, or None (logged once) when it is missing, fails or hangs."""
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout_s, check=False,
            encoding=encoding, errors="replace", stdin=subprocess.DEVNULL,
            # An agent running as a Windows service must not flash a console window.
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        _warn_once(f"{argv[0]} failed: {exc}")
        return None
    if done.returncode != 0:
        _warn_once(f"{argv[0]} exited {done.returncode}: {done.stderr.strip()[:200]}")
        return None
    return done.stdout


def _os_smbios() -> Smbios:
    """What the OS itself knows (psutil, /proc, os-release): the fallback when firmware is silent."""
    view = Smbios()
    try:
        view.cpu_cores = psutil.cpu_count(logical=False)
        view.cpu_threads = psutil.cpu_count(logical=True)
        view.mem_total_bytes = psutil.virtual_memory().total
    except Exception as exc:  # psutil can raise OSError variants on odd kernels; facts are optional
        _warn_once(f"psutil: {exc}")
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model", "cpu model") and view.cpu_model is None:
                view.cpu_model = clean(value)
            elif key == "flags":
                # x86 guests see the "hypervisor" CPUID bit; hosts running VMs do not.
                view.says_vm = view.says_vm or "hypervisor" in value.split()
    except OSError:
        pass
    try:
        release = platform.freedesktop_os_release()
        view.os_name = clean(release.get("PRETTY_NAME") or release.get("NAME"))
        view.os_version = clean(release.get("VERSION_ID"))
    except OSError:
        pass
    try:
        # Xen and some clouds say so here even when DMI is empty.
        hv = Path("/sys/hypervisor/type").read_text().strip()
        if hv:
            view.extra_vm_evidence.append(hv)
    except OSError:
        pass
    return view


# Files an OS installer leaves behind and nothing later rewrites (Debian/Ubuntu, RHEL family, SUSE).
# The root file system's birth time would be better, but overlay and many ext4 mounts report none.
LINUX_INSTALL_WITNESSES = (
    Path("/var/log/installer"),
    Path("/root/anaconda-ks.cfg"),
    Path("/var/log/anaconda"),
    Path("/var/log/YaST2"),
)


def linux_install_date(witnesses: Sequence[Path] = LINUX_INSTALL_WITNESSES) -> str | None:
    """ISO date of the oldest installer witness that exists, or None."""
    times = []
    for path in witnesses:
        try:
            times.append(path.stat().st_mtime)
        except OSError:
            continue
    if not times:
        return None
    return parse_date(datetime.fromtimestamp(min(times), tz=timezone.utc).date().isoformat())


def linux_facts() -> Facts:
    view = _smbios_from_sysfs()
    if shutil.which("dmidecode") and os.access(SYSFS_DMI_TABLE, os.R_OK):
        # Only root can read the raw table; without it dmidecode would only print an error.
        out = _run(["dmidecode", "-t", "0,1,2,3,4,17"], DMIDECODE_TIMEOUT_S)
        if out:
            view.merge(_smbios_from_dmidecode(out))
    view.merge(_os_smbios())
    view.os_installed = view.os_installed or linux_install_date()
    return view.facts()


# ---------------------------------------------------------------------------------------------
# Windows: WMI classes, from PowerShell JSON (run time) or `wmic /format:list` (recordings)

# Select only what we use: whole CIM objects carry cyclic references that ConvertTo-Json
# walks for a long time. Dates are formatted here because PowerShell 5.1 and 7 serialise
# DateTime differently.
_POWERSHELL_SCRIPT = r"""
$ErrorActionPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [System.Text.Encoding]::UTF8
$r = [ordered]@{}
$r.Win32_ComputerSystem = @(Get-CimInstance Win32_ComputerSystem | Select-Object Manufacturer, Model, SystemFamily, TotalPhysicalMemory, NumberOfLogicalProcessors, NumberOfProcessors)
$r.Win32_ComputerSystemProduct = @(Get-CimInstance Win32_ComputerSystemProduct | Select-Object Vendor, Name, Version, IdentifyingNumber)
$r.Win32_BIOS = @(Get-CimInstance Win32_BIOS | Select-Object Manufacturer, SMBIOSBIOSVersion, Version, SerialNumber, @{n='ReleaseDate'; e={ if ($_.ReleaseDate) { $_.ReleaseDate.ToString('yyyy-MM-dd') } }})
$r.Win32_SystemEnclosure = @(Get-CimInstance Win32_SystemEnclosure | Select-Object ChassisTypes, SerialNumber)
$r.Win32_BaseBoard = @(Get-CimInstance Win32_BaseBoard | Select-Object Manufacturer, Product, SerialNumber)
$r.Win32_Processor = @(Get-CimInstance Win32_Processor | Select-Object Name, NumberOfCores, NumberOfLogicalProcessors)
$r.Win32_PhysicalMemory = @(Get-CimInstance Win32_PhysicalMemory | Select-Object Capacity)
$r.Win32_OperatingSystem = @(Get-CimInstance Win32_OperatingSystem | Select-Object Caption, Version, TotalVisibleMemorySize, @{n='InstallDate'; e={ if ($_.InstallDate) { $_.InstallDate.ToString('yyyy-MM-dd') } }})
$r | ConvertTo-Json -Depth 4 -Compress
"""

WmiClasses = Mapping[str, Sequence[Mapping[str, Any]]]


def parse_wmic_list(text: str) -> list[dict[str, str]]:
    """`wmic path <Class> get /format:list` output: instances separated by blank lines,
    one `Name=Value` per line. Lines without `=` (a truncated file) are skipped."""
    instances: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.lstrip("\ufeff").splitlines():
        line = line.strip("\r\n")
        if not line.strip():
            if current:
                instances.append(current)
                current = {}
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip():
            current[key.strip()] = value
    if current:
        instances.append(current)
    return instances


def decode_wmic(data: bytes) -> str:
    """wmic writes UTF-16LE with a BOM; redirected output on some systems is the ANSI code page."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def parse_cim_json(text: str) -> dict[str, list[dict[str, Any]]]:
    """The PowerShell script's JSON: {class: [instance, ...]}. A single instance may arrive
    as an object instead of a one-element list (PowerShell unrolls arrays); both are taken."""
    data = json.loads(text.lstrip("\ufeff"))
    out: dict[str, list[dict[str, Any]]] = {}
    if not isinstance(data, dict):
        return out
    for cls, value in data.items():
        items = value if isinstance(value, list) else [value]
        out[cls] = [i for i in items if isinstance(i, dict)]
    return out


def _wmi_list(value: Any) -> list[Any]:
    """A WMI array: a JSON list, or wmic's `{"a","b"}` / `{3}` text."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return [p.strip().strip('"') for p in value[1:-1].split(",") if p.strip()]
    return [] if value in (None, "") else [value]


def _smbios_from_wmi(classes: WmiClasses) -> Smbios:
    # WMI class names are case-insensitive (glpi's dump is named "Win32_Bios").
    by_name = {name.lower(): items for name, items in classes.items()}

    def many(cls: str) -> Sequence[Mapping[str, Any]]:
        return by_name.get(cls.lower()) or []

    def one(cls: str) -> Mapping[str, Any]:
        items = many(cls)
        return items[0] if items else {}

    cs, csp, bios = one("Win32_ComputerSystem"), one("Win32_ComputerSystemProduct"), one("Win32_BIOS")
    enclosure, board, osys = one("Win32_SystemEnclosure"), one("Win32_BaseBoard"), one("Win32_OperatingSystem")
    view = Smbios(
        sys_vendor=clean(cs.get("Manufacturer")) or clean(csp.get("Vendor")),
        product_name=clean(cs.get("Model")) or clean(csp.get("Name")),
        # Win32_ComputerSystemProduct.Version is SMBIOS System Version (Lenovo's model name).
        product_version=clean(csp.get("Version")),
        product_family=clean(cs.get("SystemFamily")),
        product_serial=clean(csp.get("IdentifyingNumber")) or clean(bios.get("SerialNumber")),
        board_vendor=clean(board.get("Manufacturer")),
        board_name=clean(board.get("Product")),
        board_serial=clean(board.get("SerialNumber")),
        chassis_serial=clean(enclosure.get("SerialNumber")),
        bios_vendor=clean(bios.get("Manufacturer")),
        # SMBIOSBIOSVersion is the vendor's version string; Version is the ACPI OEM id
        # ("DELL   - 1072009"), used only when nothing better exists (Proxmox: "BOCHS - 1").
        bios_version=clean(bios.get("SMBIOSBIOSVersion")) or clean(bios.get("Version"))
        or next((clean(v) for v in _wmi_list(bios.get("BIOSVersion")) if clean(v)), None),
        bios_date=parse_date(bios.get("ReleaseDate")),
        os_name=clean(osys.get("Caption")),
        os_version=clean(osys.get("Version")),
        os_installed=parse_date(osys.get("InstallDate")),
    )
    for code in _wmi_list(enclosure.get("ChassisTypes")):
        if (n := _int(code)) is not None and (name := _chassis_name(str(n))):
            view.chassis_type = name
            break

    cpus = list(many("Win32_Processor"))
    view.cpu_model = next((m for c in cpus if (m := clean(c.get("Name")))), None)
    cores = [n for c in cpus if (n := _int(c.get("NumberOfCores"))) is not None]
    threads = [n for c in cpus if (n := _int(c.get("NumberOfLogicalProcessors"))) is not None]
    view.cpu_cores = sum(cores) if cores else None
    view.cpu_threads = sum(threads) if threads else _int(cs.get("NumberOfLogicalProcessors"))

    # Installed modules first; else what Windows sees (TotalPhysicalMemory bytes,
    # TotalVisibleMemorySize KiB), a little less than installed.
    dimms = [n for m in many("Win32_PhysicalMemory") if (n := _int(m.get("Capacity")))]
    visible_kib = _int(osys.get("TotalVisibleMemorySize"))
    view.mem_total_bytes = (
        sum(dimms) if dimms else _int(cs.get("TotalPhysicalMemory")) or (visible_kib * 1024 if visible_kib else None)
    )
    return view


def facts_from_wmi(classes: WmiClasses) -> Facts:
    """Hardware facts from WMI class instances ({"Win32_BIOS": [{...}], ...}); any subset."""
    return _smbios_from_wmi(classes).facts()


def windows_facts() -> Facts:
    out = _run(
        ["powershell.exe", "-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-Command", _POWERSHELL_SCRIPT],
        POWERSHELL_TIMEOUT_S,
        encoding="utf-8",  # set in the script: the console code page would mangle "Professionnel"-like names
    )
    view = Smbios()
    if out:
        try:
            view = _smbios_from_wmi(parse_cim_json(out))
        except ValueError as exc:
            _warn_once(f"PowerShell output is not JSON: {exc}")
    fallback = _os_smbios()
    fallback.os_name = fallback.os_version = fallback.os_installed = None  # Linux-only; WMI says it better
    view.merge(fallback)
    return view.facts()


def other_facts() -> Facts:
    return _os_smbios().facts()


# One adapter per platform, keyed like sys.platform; anything else gets what psutil knows.
ADAPTERS: dict[str, Callable[[], Facts]] = {"linux": linux_facts, "win32": windows_facts}


AGE_SOURCES = ("purchased", "bios_date", "os_installed")


def machine_age(
    facts: Mapping[str, FieldValue], purchased: str | None = None, today: date | None = None
) -> dict[str, FieldValue]:
    """`age_years` and `age_source` from the best evidence: the inventory's purchase date, else
    the BIOS release date (only on real hardware: a VM's BIOS date is its hypervisor's), else the
    OS install date. Empty when none is known or the date lies in the future.
    """
    today = today or date.today()
    candidates = (
        ("purchased", parse_date(purchased) if purchased else None),
        ("bios_date", facts.get("manufactured_estimate")),
        ("os_installed", facts.get("os_installed")),
    )
    for source, iso in candidates:
        if not isinstance(iso, str):
            continue
        try:
            since = date.fromisoformat(iso)
        except ValueError:
            continue
        days = (today - since).days
        if days < 0:
            continue
        out: dict[str, FieldValue] = {"age_years": round(days / 365.25, 2), "age_source": source}
        if source == "purchased":
            out["purchased"] = iso
        return out
    return {}


def hardware_point(facts: Mapping[str, FieldValue], tags: Mapping[str, str]) -> Point | None:
    if not facts:
        return None
    return Point(measurement="hardware", tags=dict(tags), fields=dict(facts))


def collect_hardware(
    tags: Mapping[str, str], kind: str | None = None, purchased: str | None = None
) -> Point | None:
    """The `hardware` point for this machine, or None when nothing at all could be learnt.

    `kind` and `purchased` come from the inventory (via the collector) when it knows them;
    the point carries the machine's age and where that age came from (`machine_age`).

    Blocking (subprocesses with timeouts): run it in a thread. Never raises for missing
    data; an adapter that fails is logged and the OS fallback facts are used.
    """
    all_tags = dict(tags)
    if kind:
        all_tags["kind"] = kind
    adapter = ADAPTERS.get(sys.platform, other_facts)
    try:
        facts = adapter()
    except Exception:  # a bug in one adapter must not stop the agent; say so once
        log.exception("hardware facts: %s adapter failed; using OS facts only", sys.platform)
        facts = other_facts()
    if facts:
        facts = {**facts, **machine_age(facts, purchased)}
    return hardware_point(facts, all_tags)
