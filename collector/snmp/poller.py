"""Poll one SNMP device into `device`, `interface`, `hardware` and `printer_supply` points (docs/metrics.md).

The poller owns state between polls (counters, sysUpTime, the local monotonic time) so it
can turn counters into rates. It never raises for a device problem: an unreachable device is
a `device` point with up=0 and a reason; a single OID that fails is logged once (per device
and OID, until it works again) and the rest of the poll carries on (STYLE.md rule 3).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.points import MAX_NAME_LEN, MAX_STRING_FIELD_LEN, Point

from . import printer as prt
from .profiles import (
    ENT_CLASS_CHASSIS,
    GENERIC,
    PROBED,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    SYSTEM,
    Aggregate,
    Column,
    Module,
    Profile,
    Scalar,
    select_profile,
)
from .session import SnmpClient, SnmpError

log = logging.getLogger(__name__)

COUNTER32_MODULO = 2**32
TIMETICKS_MODULO = 2**32
# Smallest Ethernet frame on the wire (64 bytes + preamble + inter-frame gap) in bits: the
# most packets per second a link of a given speed can carry, to judge a 32-bit wrap plausible.
MIN_FRAME_BITS = 84 * 8
# Slack on "plausible": speeds are nominal and polls are not exactly where the clock says.
PLAUSIBLE_SLACK = 1.05
MAX_REASON_LEN = 512
# A table that times out is skipped for 1, 2, 4 ... polls, at most this many, then tried again.
MAX_TABLE_BACKOFF_POLLS = 16
# A system GET slower than this leaves our own sample time unsure by about as much: the
# interval for rates is then taken from the device's sysUpTime, if that agrees roughly.
SLOW_ROUND_TRIP_S = 1.0

# IF-MIB roles (profiles.IF_MIB meanings) -> rate field names.
_RATE_FIELDS: dict[str, str] = {
    "in_octets": "in_bps",
    "out_octets": "out_bps",
    "in_errors": "in_errors_ps",
    "out_errors": "out_errors_ps",
    "in_discards": "in_discards_ps",
    "out_discards": "out_discards_ps",
}
_INT_KINDS = frozenset({"gauge", "counter32", "counter64", "enum", "timeticks"})
_HARDWARE_FIELDS = ("model", "serial", "vendor", "hw_rev", "fw_rev", "sw_rev")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def sanitize_name(raw: str, max_len: int = MAX_NAME_LEN) -> str:
    """A device-given name made safe as a tag: no control characters, bounded, no trailing backslash."""
    text = " ".join(_CONTROL.sub(" ", raw).split())
    text = text[:max_len].rstrip("\\ ")
    return text


def counter_rate(prev: int, cur: int, bits: int, dt_s: float, max_rate: float | None) -> float | None:
    """Per-second rate of a counter between two samples, or None when it cannot be trusted.

    A 64-bit counter never wraps in practice, so going backwards means a reset: no rate.
    A 32-bit counter that went backwards is taken as one wrap at 2**32 only when the rate
    that implies is possible (<= max_rate); otherwise it was a reset too. Without a known
    max_rate a wrap cannot be told from a reset, so there is no rate.
    """
    if dt_s <= 0:
        return None
    delta = cur - prev
    if delta >= 0:
        return delta / dt_s
    if bits != 32 or max_rate is None:
        return None
    rate = (delta + COUNTER32_MODULO) / dt_s
    return rate if rate <= max_rate else None


def sys_uptime_rebooted(prev_ticks: int, cur_ticks: int, elapsed_s: float) -> bool:
    """True when sysUpTime went backwards because the device restarted.

    sysUpTime is 32-bit TimeTicks and wraps after 497 days without a restart; the local
    clock tells the two apart: after a wrap the value lands where prev + elapsed would be,
    modulo 2**32.
    """
    if cur_ticks >= prev_ticks:
        return False
    elapsed_ticks = max(elapsed_s, 0.0) * 100
    tolerance = max(1000.0, 0.1 * elapsed_ticks)  # 10 s or 10 % of the interval
    projected = prev_ticks + elapsed_ticks
    if projected < TIMETICKS_MODULO - tolerance:
        return True
    return abs(cur_ticks - (projected - TIMETICKS_MODULO)) > tolerance


def _index_key(index: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in index.split("."))
    except ValueError:
        return (2**63,)


@dataclass
class _Counter:
    value: int
    bits: int
    # Local monotonic time its column was read (the middle of that walk). Walks of one poll run
    # concurrently and a slow agent answers them one after another, so each counter's interval
    # is measured between its own reads, not between the polls' starts.
    read_at: float


@dataclass
class _InterfaceSample:
    name: str
    counters: dict[str, _Counter] = field(default_factory=dict)


@dataclass
class _Previous:
    t_mono: float
    uptime_ticks: int | None
    interfaces: dict[str, _InterfaceSample]
    rate_uptime_ticks: int | None = None  # sysUpTime of the poll the counters (and t_mono) are from
    round_trip_s: float = 0.0  # of that poll's system GET


def device_interval_s(
    local_s: float, prev_ticks: int | None, cur_ticks: int | None, round_trip_s: float
) -> float | None:
    """The device's sysUpTime delta as the interval for rates, when a round trip was slow (our
    read times are then off by up to that much, the device's clock is not); None: use our own
    read times. The device's figure is used only within 0.5x..1.5x of the local one, so a stuck
    or odd sysUpTime (recordings, broken agents) cannot make a rate absurd.
    """
    if round_trip_s <= SLOW_ROUND_TRIP_S or prev_ticks is None or cur_ticks is None or local_s <= 0:
        return None
    device_s = ((cur_ticks - prev_ticks) % TIMETICKS_MODULO) / 100
    return device_s if 0.5 * local_s <= device_s <= 1.5 * local_s else None


class DevicePoller:
    """Polls one device with one SNMP client; keep the instance between polls for rates.

    `interface_speed_bps` overrides the speed of interfaces by name (ifName/ifDescr or the
    ifname tag) where the agent's ifSpeed is not the real line rate. `clock` is the local
    monotonic clock that rates are computed against (a fake one in tests).
    """

    def __init__(
        self,
        device_id: str,
        site: str,
        session: SnmpClient,
        profile_override: str | None = None,
        *,
        interface_speed_bps: Mapping[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        hardware_kind: str = "network",
    ) -> None:
        if profile_override is not None:
            select_profile(None, profile_override)  # unknown names fail here, not at the first poll
        self.device_id = device_id
        self.site = site
        self.session = session
        self.profile_override = profile_override
        self.interface_speed_bps = dict(interface_speed_bps or {})
        self.hardware_kind = hardware_kind
        self._clock = clock
        self._previous: _Previous | None = None
        self._failing: set[str] = set()
        # Tables that timed out mid-poll while the device answered the rest: oid -> (polls to skip, backoff).
        self._skipping: dict[str, tuple[int, int]] = {}
        # This poll's read time of each walked column: oid -> the middle of its walk.
        self._read_at: dict[str, float] = {}
        # The profile probing chose, per sysObjectID (asked once; a new sysObjectID asks again).
        self._probed: dict[str, Profile] = {}

    # ------------------------------------------------------------------ error bookkeeping

    def _failed(self, key: str, exc: SnmpError) -> None:
        if key not in self._failing:
            self._failing.add(key)
            log.warning("SNMP %s (%s): %s", key, self.device_id, exc)
        else:
            log.debug("SNMP %s (%s) still failing: %s", key, self.device_id, exc)

    def _worked(self, key: str) -> None:
        if key in self._failing:
            self._failing.discard(key)
            log.info("SNMP %s (%s) answers again", key, self.device_id)

    async def _walk(self, column: Column) -> tuple[Column, dict[str, Any] | None]:
        """{row index: value} of one column, or None when the walk failed (or is skipped after timing out)."""
        left, backoff = self._skipping.get(column.oid, (0, 0))
        if left > 0:
            self._skipping[column.oid] = (left - 1, backoff)
            return column, None
        asked = self._clock()
        try:
            rows = await self.session.walk(column.oid)
        except SnmpError as exc:
            if exc.timed_out:
                # The device answered the system group (else there is no walk), so this is one table
                # it cannot finish (real agents stop mid-walk on a bad row): skip it for a while,
                # doubling, so it does not cost every poll its timeout.
                backoff = min(MAX_TABLE_BACKOFF_POLLS, max(1, backoff * 2))
                self._skipping[column.oid] = (backoff, backoff)
                self._failed(f"walk {column.name} {column.oid}", SnmpError(
                    self.device_id, column.oid,
                    f"the {column.name} table timed out mid-walk while the device answered the rest; "
                    f"skipped for the next {backoff} poll(s)", timed_out=True))
            else:
                self._failed(f"walk {column.name} {column.oid}", exc)
            return column, None
        self._read_at[column.oid] = (asked + self._clock()) / 2
        self._skipping.pop(column.oid, None)
        self._worked(f"walk {column.name} {column.oid}")
        cut = len(column.oid) + 1
        # A value of the wrong type (a counter sent as a string) is dropped and logged once,
        # so one odd row never reaches the arithmetic and the rest of the column still counts.
        want_int = column.kind in _INT_KINDS
        out: dict[str, Any] = {}
        wrong: tuple[str, Any] | None = None
        for oid, value in rows:
            if isinstance(value, int) != want_int:
                wrong = wrong or (oid, value)
                continue
            out[oid[cut:]] = value
        key = f"type {column.name} {column.oid}"
        if wrong is not None:
            shown = repr(wrong[1])[:40]
            self._failed(key, SnmpError(self.device_id, wrong[0],
                                        f"{column.name} should be {column.kind}, the agent sent {shown}; row ignored"))
        else:
            self._worked(key)
        return column, out

    # ------------------------------------------------------------------ the poll

    async def poll(self, now_ns: int | None = None) -> list[Point]:
        """One poll: the points for this device at `now_ns` (default: now)."""
        ts = now_ns if now_ns is not None else time.time_ns()
        started = self._clock()
        tags = {"device": self.device_id, "site": self.site}
        try:
            system = await self.session.get([s.oid for s in SYSTEM.scalars])
        except SnmpError as exc:
            # Unreachable (or refusing us): a point, not an exception. State is kept so the
            # next good poll still gets rates if counters simply carried on.
            self._failed("system", exc)
            fields = {"up": 0.0, "reason": str(exc)[:MAX_REASON_LEN], "poll_ms": (self._clock() - started) * 1000}
            return [Point("device", tags, fields, ts)]
        self._worked("system")
        profile = select_profile(system.get(SYS_OBJECT_ID), self.profile_override)
        if profile is GENERIC and self.profile_override is None:
            profile = await self._probe(str(system.get(SYS_OBJECT_ID) or ""))
        sample_t = self._clock()
        self._read_at = {}

        scalars = [s for s in profile.scalars() if s.oid not in system]
        primary = [c for c in profile.columns() if not c.fallback]
        scalar_task = asyncio.ensure_future(self._get_scalars(scalars))
        tables: dict[str, dict[str, Any] | None] = {}
        for column, rows in await asyncio.gather(*(self._walk(c) for c in primary)):
            tables[column.oid] = rows
        # Tables that time out (now, or skipped after timing out before): the poll is partial.
        partial = sorted({c.name for c in primary if c.oid in self._skipping})
        await self._walk_fallbacks(profile, tables)
        values = dict(system)
        values.update(await scalar_task)

        device_fields = self._device_fields(profile, values, tables)
        uptime = values.get(SYS_UPTIME)
        uptime_ticks = uptime if isinstance(uptime, int) else None
        rebooted: bool | None = None
        prev = self._previous
        if prev is not None and prev.uptime_ticks is not None and uptime_ticks is not None:
            rebooted = sys_uptime_rebooted(prev.uptime_ticks, uptime_ticks, sample_t - prev.t_mono)
            device_fields["rebooted"] = 1.0 if rebooted else 0.0

        points: list[Point] = []
        interfaces = self._interfaces(profile, tables, sample_t)
        if interfaces is not None:
            device_dt = None
            if prev is not None:
                slowest = max(sample_t - started, prev.round_trip_s)
                device_dt = device_interval_s(sample_t - prev.t_mono, prev.rate_uptime_ticks, uptime_ticks, slowest)
            points.extend(self._interface_points(interfaces, tables, profile, device_dt, bool(rebooted), tags, ts))
        hardware = self._hardware(profile, tables)
        for key, value in _scalar_fields(profile.scalars(), values, "hardware").items():
            hardware.setdefault(key, value)  # ENTITY's chassis, where there is one, says it first
        printer = profile.module("printer")
        if printer is not None:
            hardware = self._printer_hardware(printer, tables, hardware)
            device_fields.update(self._printer_errors(printer, tables))
            points.extend(self._supply_points(printer, tables, tags, ts))
        if hardware:
            points.append(Point("hardware", {**tags, "kind": self.hardware_kind}, hardware, ts))
            if "firmware" not in device_fields and hardware.get("sw_rev"):
                device_fields["firmware"] = hardware["sw_rev"]  # no vendor scalar: the chassis software
        if interfaces is not None or self._previous is None:
            self._previous = _Previous(sample_t, uptime_ticks, interfaces or {}, uptime_ticks, sample_t - started)
        else:  # the interface walks failed: keep the old counters, but note the new uptime
            old = self._previous
            self._previous = _Previous(old.t_mono, uptime_ticks, old.interfaces, old.rate_uptime_ticks, old.round_trip_s)

        device_fields["poll_ms"] = (self._clock() - started) * 1000
        device_fields["partial"] = 1.0 if partial else 0.0
        if partial:
            device_fields["partial_tables"] = ", ".join(partial)[:MAX_REASON_LEN]
        points.insert(0, Point("device", tags, device_fields, ts))
        return points

    async def _probe(self, sys_object_id: str) -> Profile:
        """The profile a device that sysObjectID leaves generic gets by answering its MIB
        (profiles.PROBED), asked once per sysObjectID. A probe that fails (timeout) is not
        remembered: the device is polled as generic and asked again next poll."""
        if sys_object_id in self._probed:
            return self._probed[sys_object_id]
        unsure = False
        for candidate in PROBED:
            for oid in candidate.probe:
                key = f"probe {candidate.name} {oid}"
                try:
                    rows = await self.session.walk(oid)
                except SnmpError as exc:
                    self._failed(key, exc)
                    unsure = True
                    continue
                self._worked(key)
                if rows:
                    log.info("SNMP %s: polled with the %s profile (answers %s)", self.device_id, candidate.name, oid)
                    self._probed[sys_object_id] = candidate
                    return candidate
        if not unsure:
            self._probed[sys_object_id] = GENERIC
        return GENERIC

    async def _get_scalars(self, scalars: list[Scalar]) -> dict[str, Any]:
        # One OID may feed several fields (upsOutputSource: the source and on-battery 0/1): asked once.
        scalars = list({s.oid: s for s in scalars}.values())
        if not scalars:
            return {}
        try:
            values = await self.session.get([s.oid for s in scalars])
        except SnmpError:
            # One PDU failing may be one bad OID (v1 genErr, a crashing sub-agent): ask one by one
            # so the others still arrive and only the bad one is logged.
            values = {}
            for scalar in scalars:
                try:
                    values.update(await self.session.get([scalar.oid]))
                except SnmpError as exc:
                    self._failed(f"get {scalar.name} {scalar.oid}", exc)
                else:
                    self._worked(f"get {scalar.name} {scalar.oid}")
        return values

    async def _walk_fallbacks(self, profile: Profile, tables: dict[str, dict[str, Any] | None]) -> None:
        """Walk fallback columns only for meanings that primary columns left without a value."""
        todo: list[Column] = []
        for module in profile.modules:
            rows: set[str] = set()
            for column in module.columns:
                if not column.fallback and tables.get(column.oid):
                    rows.update(tables[column.oid] or {})
            for i, column in enumerate(module.columns):
                if not column.fallback:
                    continue
                earlier = [c for c in module.columns[:i] if c.meaning == column.meaning]
                missing = [r for r in rows if not any(_usable(c, tables.get(c.oid), r) for c in earlier)]
                if missing:
                    todo.append(column)
        for column, rows in await asyncio.gather(*(self._walk(c) for c in todo)):
            tables[column.oid] = rows

    # ------------------------------------------------------------------ device fields

    def _device_fields(
        self, profile: Profile, values: Mapping[str, Any], tables: Mapping[str, dict[str, Any] | None]
    ) -> dict[str, Any]:
        fields: dict[str, Any] = {"up": 1.0, "profile": profile.name}
        for module in profile.modules:
            fields.update(_scalar_fields(module.scalars, values, "device", taken=fields))
            for aggregate in module.aggregates:
                if aggregate.field in fields:
                    continue
                value = _aggregate(aggregate, tables)
                if value is not None:
                    fields[aggregate.field] = value
        return fields

    # ------------------------------------------------------------------ interfaces

    def _interfaces(
        self, profile: Profile, tables: Mapping[str, dict[str, Any] | None], sample_t: float
    ) -> dict[str, _InterfaceSample] | None:
        """{ifIndex: sample} with unique, sanitised names; None if the profile has no IF-MIB or it failed."""
        columns = [c for c in profile.columns() if c.meaning in ("ifname", "ifdescr")]
        if not columns:
            return None
        walked = [tables.get(c.oid) for c in columns]
        if all(t is None for t in walked):
            return None
        names = tables.get(next((c.oid for c in columns if c.meaning == "ifname"), ""), None) or {}
        descrs = tables.get(next((c.oid for c in columns if c.meaning == "ifdescr"), ""), None) or {}
        indexes = sorted(set(names) | set(descrs), key=_index_key)
        chosen: dict[str, str] = {}
        for index in indexes:
            name = sanitize_name(str(names.get(index) or ""), MAX_NAME_LEN - 12)
            if not name:
                name = sanitize_name(str(descrs.get(index) or ""), MAX_NAME_LEN - 12)
            chosen[index] = name or f"if{index}"
        # Tags must be unique per device (ProCurve repeats one ifDescr for 8 loopbacks):
        # duplicates get their ifIndex appended, all of them, so no name depends on order.
        seen: dict[str, int] = {}
        for name in chosen.values():
            seen[name] = seen.get(name, 0) + 1
        samples: dict[str, _InterfaceSample] = {}
        for index, name in chosen.items():
            unique = f"{name}#{index}" if seen[name] > 1 else name
            samples[index] = _InterfaceSample(unique)
        counter_columns = [c for c in profile.columns() if c.meaning in _RATE_FIELDS]
        for index, sample in samples.items():
            for meaning in _RATE_FIELDS:
                for column in counter_columns:
                    if column.meaning != meaning:
                        continue
                    value = (tables.get(column.oid) or {}).get(index)
                    if isinstance(value, int):
                        bits = 64 if column.kind == "counter64" else 32
                        sample.counters[meaning] = _Counter(value, bits, self._read_at.get(column.oid, sample_t))
                        break
        return samples

    def _speed_bps(self, index: str, sample: _InterfaceSample, profile: Profile, tables: Mapping[str, Any]) -> float | None:
        raw_names = [sample.name]
        for column in profile.columns():
            if column.meaning in ("ifname", "ifdescr"):
                value = (tables.get(column.oid) or {}).get(index)
                if isinstance(value, str):
                    raw_names.append(value)
        for name in raw_names:
            if name in self.interface_speed_bps:
                return float(self.interface_speed_bps[name])
        for column in profile.columns():
            if column.meaning != "speed_bps":
                continue
            value = (tables.get(column.oid) or {}).get(index)
            if isinstance(value, int) and value > 0:
                return value * column.scale
        return None

    def _interface_points(
        self,
        samples: dict[str, _InterfaceSample],
        tables: Mapping[str, dict[str, Any] | None],
        profile: Profile,
        device_dt: float | None,
        rebooted: bool,
        tags: Mapping[str, str],
        ts: int,
    ) -> list[Point]:
        by_meaning: dict[str, Column] = {}
        for column in profile.columns():
            by_meaning.setdefault(column.meaning, column)
        prev = self._previous
        points: list[Point] = []
        for index, sample in samples.items():
            fields: dict[str, Any] = {}
            for meaning, field_name in (("oper_status", "oper_up"), ("admin_status", "admin_up")):
                column = by_meaning.get(meaning)
                value = (tables.get(column.oid) or {}).get(index) if column else None
                if isinstance(value, int):
                    fields[field_name] = 1.0 if value == 1 else 0.0  # up(1); down, testing, dormant... are not up
            speed = self._speed_bps(index, sample, profile, tables)
            if speed:
                fields["speed_bps"] = speed
            alias_column = by_meaning.get("alias")
            alias = (tables.get(alias_column.oid) or {}).get(index) if alias_column else None
            if isinstance(alias, str) and alias.strip():
                fields["alias"] = alias.strip()[:MAX_STRING_FIELD_LEN]
            before = prev.interfaces.get(index) if prev is not None else None
            # No rates on the first poll, after a reboot (every counter restarted), or when the
            # index now names another interface (re-created, renumbered).
            if before is not None and not rebooted and before.name == sample.name:
                fields.update(self._rates(before, sample, device_dt, speed))
            if fields:
                points.append(Point("interface", {**tags, "ifname": sample.name}, fields, ts))
        return points

    @staticmethod
    def _rates(before: _InterfaceSample, now: _InterfaceSample, device_dt: float | None, speed: float | None) -> dict[str, float]:
        out: dict[str, float] = {}
        for meaning, field_name in _RATE_FIELDS.items():
            a, b = before.counters.get(meaning), now.counters.get(meaning)
            if a is None or b is None or a.bits != b.bits:
                continue  # the counter source changed (HC appeared/vanished): not comparable
            octets = meaning.endswith("octets")
            if speed:
                max_rate = speed / 8 * PLAUSIBLE_SLACK if octets else speed / MIN_FRAME_BITS * PLAUSIBLE_SLACK
            else:
                max_rate = None
            dt = device_dt if device_dt is not None else b.read_at - a.read_at
            rate = counter_rate(a.value, b.value, b.bits, dt, max_rate)
            if rate is None:
                continue
            out[field_name] = rate * 8 if octets else rate
        if speed:
            for direction in ("in", "out"):
                if f"{direction}_bps" in out:
                    out[f"{direction}_util_pct"] = out[f"{direction}_bps"] / speed * 100
        return out

    # ------------------------------------------------------------------ hardware

    def _hardware(self, profile: Profile, tables: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
        """The chassis row of ENTITY-MIB as hardware fields (only non-empty strings)."""
        entity = profile.module("entity")
        if entity is None:
            return {}
        columns = {c.meaning: tables.get(c.oid) or {} for c in entity.columns}
        classes = columns.get("class", {})
        chassis = sorted((i for i, v in classes.items() if v == ENT_CLASS_CHASSIS), key=_index_key)
        if not chassis:
            # FortiOS 7 has no entPhysicalClass: take the first row that names a model or serial.
            candidates = set(columns.get("model", {})) | set(columns.get("serial", {}))
            chassis = sorted(
                (i for i in candidates if str(columns["model"].get(i, "")).strip() or str(columns["serial"].get(i, "")).strip()),
                key=_index_key,
            )[:1]
        if not chassis:
            return {}
        first = chassis[0]
        fields: dict[str, Any] = {}
        for name in _HARDWARE_FIELDS:
            value = columns.get(name, {}).get(first)
            if isinstance(value, str) and value.strip():
                fields[name] = value.strip()[:MAX_STRING_FIELD_LEN]
        serials = [str(columns.get("serial", {}).get(i, "")).strip() for i in chassis]
        if len(chassis) > 1 and any(serials):
            # A stack is one device with several chassis: the first is the point's serial, all
            # of them go along so the lifecycle report sees every box.
            fields["serials"] = ",".join(s for s in serials if s)[:MAX_STRING_FIELD_LEN]
        return fields


    # ------------------------------------------------------------------ printers (Printer-MIB)

    @staticmethod
    def _printer_hardware(printer: Module, tables: Mapping[str, dict[str, Any] | None], hardware: dict[str, Any]) -> dict[str, Any]:
        """Model and serial from Printer-MIB where ENTITY-MIB (which printers rarely have) gave none.

        The model is the hrDeviceDescr of the printer's own hrDevice row (the index of
        hrPrinterTable), not of the network card or disk beside it (konica lists both)."""
        col = _columns_by_meaning(printer, tables)
        out = dict(hardware)
        serial = next((str(v).strip() for _, v in sorted(col["printer_serial"].items(), key=lambda kv: _index_key(kv[0]))
                       if str(v).strip()), "")
        if serial and "serial" not in out:
            out["serial"] = serial[:MAX_STRING_FIELD_LEN]
        descr = col["printer_model"]
        model = next((str(descr[i]).strip() for i in sorted(col["printer_errors"], key=_index_key)
                      if str(descr.get(i, "")).strip()), "")
        if model and "model" not in out:
            out["model"] = model[:MAX_STRING_FIELD_LEN]
        return out

    @staticmethod
    def _printer_errors(printer: Module, tables: Mapping[str, dict[str, Any] | None]) -> dict[str, Any]:
        """hrPrinterDetectedErrorState of every printer row as `printer_error` 0/1 and the names of the set bits."""
        column = next(c for c in printer.columns if c.meaning == "printer_errors")
        rows = tables.get(column.oid)
        if not rows:
            return {}  # no hrPrinterTable (or the walk failed): unknown, not "no error"
        names: list[str] = []
        for index in sorted(rows, key=_index_key):
            for name in prt.error_bits(prt.octets(rows[index])):
                if name not in names:
                    names.append(name)
        fields: dict[str, Any] = {"printer_error": 1.0 if names else 0.0}
        if names:
            fields["printer_errors"] = ", ".join(names)[:MAX_STRING_FIELD_LEN]
        return fields

    @staticmethod
    def _supply_points(
        printer: Module, tables: Mapping[str, dict[str, Any] | None], tags: Mapping[str, str], ts: int
    ) -> list[Point]:
        """One `printer_supply` point per prtMarkerSuppliesTable row with a level."""
        col = _columns_by_meaning(printer, tables)
        levels = col["supply_level"]
        indexes = sorted(levels, key=_index_key)
        chosen = {i: sanitize_name(str(col["supply_name"].get(i) or ""), MAX_NAME_LEN - 12) or f"supply{i}" for i in indexes}
        # Tags must be unique per device (brother names two rows "Black Toner Cartridge"): every
        # duplicate gets its row index appended, so no name depends on order.
        seen: dict[str, int] = {}
        for name in chosen.values():
            seen[name] = seen.get(name, 0) + 1
        points: list[Point] = []
        for index in indexes:
            level, capacity = levels.get(index), col["supply_max"].get(index)
            supply_class, supply_type = col["supply_class"].get(index), col["supply_type"].get(index)
            got = prt.supply_level(level, capacity, supply_class, supply_type)
            name = chosen[index]
            type_name = prt.SUPPLY_TYPES.get(supply_type, f"type{supply_type}") if isinstance(supply_type, int) else "unknown"
            fields: dict[str, Any] = {"state": got.state, "receptacle": 1.0 if got.receptacle else 0.0}
            if got.left_pct is not None:
                fields["left_pct"] = got.left_pct
            if isinstance(level, int):
                fields["level"] = float(level)
            if isinstance(capacity, int):
                fields["max_capacity"] = float(capacity)
            supply_tags = {**tags, "supply": f"{name}#{index}" if seen[name] > 1 else name, "type": type_name}
            points.append(Point("printer_supply", supply_tags, fields, ts))
        return points


def _columns_by_meaning(module: Module, tables: Mapping[str, dict[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """{meaning: {row index: value}} of a module's walked columns (a failed walk is no rows)."""
    return {c.meaning: tables.get(c.oid) or {} for c in module.columns}


def _scalar_fields(
    scalars: Iterable[Scalar], values: Mapping[str, Any], point: str, taken: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The fields that scalars for `point` (`device` or `hardware`) give from the values read; for
    one field the first scalar with a value wins, and a field already in `taken` stays as it is."""
    fields: dict[str, Any] = {}
    for scalar in scalars:
        if not scalar.emit or scalar.point != point or scalar.oid not in values:
            continue
        if scalar.field in fields or (taken is not None and scalar.field in taken):
            continue
        value = _scalar_value(scalar, values[scalar.oid])
        if value is not None:
            fields[scalar.field] = value
    return fields


def _usable(column: Column, rows: Mapping[str, Any] | None, index: str) -> bool:
    if not rows or index not in rows:
        return False
    value = rows[index]
    return not (column.zero_is_unknown and value == 0)


def _scalar_value(scalar: Scalar, value: Any) -> float | str | None:
    if scalar.convert is not None:
        if (scalar.kind in _INT_KINDS) != isinstance(value, int):
            return None  # a number sent as text (or the reverse) is no value of this object
        converted = scalar.convert(value)
        return converted[:MAX_STRING_FIELD_LEN] if isinstance(converted, str) else converted
    if scalar.kind == "string":
        text = str(value).strip()
        return text[:MAX_STRING_FIELD_LEN] if text else None
    if scalar.kind == "enum" and scalar.enum is not None:
        return scalar.enum.get(value, str(value)) if isinstance(value, int) else None
    if scalar.kind == "oid":
        return str(value)
    if isinstance(value, int):
        return value * scalar.scale
    return None


def _aggregate(aggregate: Aggregate, tables: Mapping[str, dict[str, Any] | None]) -> float | None:
    cols: dict[str, dict[str, Any]] = {}
    for oid in aggregate.column_oids():
        rows = tables.get(oid)
        if rows is None:
            return None  # a needed walk failed (or was not made): unknown, not zero
        cols[oid] = rows
    rows_idx = [i for i in cols[aggregate.columns[0]] if all(cols[w].get(i) == v for w, v in aggregate.where)]
    if aggregate.op == "count":
        return float(len(rows_idx)) if rows_idx else aggregate.default
    if aggregate.op == "count_eq":
        if not rows_idx:
            return aggregate.default
        return float(sum(1 for i in rows_idx if cols[aggregate.columns[0]].get(i) == aggregate.value))
    if aggregate.op == "ratio_pct":
        num = den = 0
        for i in rows_idx:
            parts = [cols[c].get(i) for c in aggregate.columns]
            whole = [cols[c].get(i) for c in aggregate.denominator]
            if all(isinstance(p, int) for p in parts + whole):
                num += sum(parts)
                den += sum(whole)
        return num / den * 100 if den > 0 else aggregate.default
    numbers = [v for v in (cols[aggregate.columns[0]].get(i) for i in rows_idx) if isinstance(v, int)]
    if not numbers:
        return aggregate.default
    if aggregate.op == "mean":
        return sum(numbers) / len(numbers)
    if aggregate.op == "max":
        return float(max(numbers))
    return float(sum(numbers))  # "sum"
