"""Host metrics from psutil: `host`, `host_disk` per mount and `host_net` rates per NIC.

`collect()` blocks (psutil reads /proc, WMI, ...): the agent runs it in a thread. Network
counters are turned into rates against the previous sample, so the first call has no
`host_net` points, and an interval in which any counter of a NIC went backwards (reset,
wrap, interface re-created) gives no point for that NIC rather than a false spike.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Callable, Mapping

import psutil

from agent.points import FieldValue, Point, now_ns as _now_ns

log = logging.getLogger("nettvakt.agent.hostmetrics")

# psutil per-NIC counter attribute -> host_net field and its multiplier (bytes -> bits).
NET_RATES: Mapping[str, tuple[str, float]] = {
    "bytes_recv": ("in_bps", 8.0),
    "bytes_sent": ("out_bps", 8.0),
    "errin": ("in_errors_ps", 1.0),
    "errout": ("out_errors_ps", 1.0),
    "dropin": ("in_drops_ps", 1.0),
    "dropout": ("out_drops_ps", 1.0),
}
# Read-only images (snap packages, CDs) always look 100 % full; they are not disks to watch.
SKIP_FSTYPES = frozenset({"squashfs", "iso9660", "udf"})

NetCounters = Callable[[], Mapping[str, Any]]  # {nic: object with psutil snetio attributes}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _psutil_net_counters() -> Mapping[str, Any]:
    return psutil.net_io_counters(pernic=True)


def tag_value(text: str) -> str:
    """A mount or NIC name as a valid tag: no control characters, no trailing backslash (C:\\ -> C:)."""
    text = _CONTROL.sub("?", text)[:128].rstrip("\\")
    return text or "?"


def loopback_nics() -> set[str]:
    """NICs flagged loopback or carrying a loopback address (Windows: 'Loopback Pseudo-Interface 1')."""
    names = {"lo"}
    try:
        for nic, stats in psutil.net_if_stats().items():
            if "loopback" in getattr(stats, "flags", "").split(","):
                names.add(nic)
        for nic, addrs in psutil.net_if_addrs().items():
            if any(a.address in ("127.0.0.1", "::1") for a in addrs):
                names.add(nic)
    except OSError as exc:  # unreadable interface table: fall back to the name
        log.debug("cannot list interfaces: %s", exc)
    return names


class HostMetrics:
    """One per agent: it keeps the previous network sample the rates are computed from."""

    def __init__(
        self,
        tags: Mapping[str, str],
        *,
        net_counters: NetCounters = _psutil_net_counters,
        clock: Callable[[], float] = time.monotonic,
        is_loopback: Callable[[], set[str]] = loopback_nics,
    ):
        self.tags = dict(tags)
        self._net_counters = net_counters
        self._clock = clock  # monotonic: a wall-clock step must not make a rate
        self._is_loopback = is_loopback
        self._previous: tuple[float, dict[str, dict[str, float]]] | None = None
        self._cpu_primed = False

    def collect(self, now_ns: int | None = None) -> list[Point]:
        t = now_ns if now_ns is not None else _now_ns()
        points = [Point("host", self.tags, self._host_fields(), t)]
        points += self._disk_points(t)
        points += self.net_points(t)
        return points

    # --- host --------------------------------------------------------------------------
    def _host_fields(self) -> dict[str, FieldValue]:
        if self._cpu_primed:
            cpu = psutil.cpu_percent(interval=None)  # busy since the previous call
        else:
            # First sample: psutil has nothing to compare with yet, so measure a short window.
            cpu = psutil.cpu_percent(interval=0.2)
            self._cpu_primed = True
        mem = psutil.virtual_memory()
        boot = psutil.boot_time()
        fields: dict[str, FieldValue] = {
            "cpu_pct": float(cpu),
            "mem_used_pct": float(mem.percent),
            "mem_total_bytes": float(mem.total),
            "mem_available_bytes": float(mem.available),
            "swap_used_pct": float(psutil.swap_memory().percent),
            "uptime_s": round(max(0.0, time.time() - boot), 3),
            "boot_time_s": float(boot),
            "procs": float(len(psutil.pids())),
        }
        try:
            load1, load5, load15 = psutil.getloadavg()  # emulated on Windows (zeros at first)
            fields.update(load1=float(load1), load5=float(load5), load15=float(load15))
        except (AttributeError, OSError) as exc:
            log.debug("no load average: %s", exc)
        return fields

    # --- host_disk ---------------------------------------------------------------------
    def _disk_points(self, t: int) -> list[Point]:
        points = []
        seen: set[str] = set()
        for part in psutil.disk_partitions(all=False):  # all=False: real devices, no proc/sysfs/tmpfs
            if part.mountpoint in seen or part.fstype in SKIP_FSTYPES or "cdrom" in part.opts.split(","):
                continue
            seen.add(part.mountpoint)
            try:
                usage = psutil.disk_usage(part.mountpoint)
            except OSError as exc:  # PermissionError, or a card reader without a card on Windows
                log.debug("skipping %s: %s", part.mountpoint, exc)
                continue
            if usage.total <= 0:
                continue
            fields: dict[str, FieldValue] = {
                "used_pct": float(usage.percent),
                "total_bytes": float(usage.total),
                "used_bytes": float(usage.used),
                "free_bytes": float(usage.free),
            }
            points.append(Point("host_disk", {**self.tags, "mount": tag_value(part.mountpoint)}, fields, t))
        return points

    # --- host_net ----------------------------------------------------------------------
    def net_points(self, t: int) -> list[Point]:
        """Rates since the previous call; none on the first call or for a NIC whose counters went back."""
        skip = self._is_loopback()
        counters = self._net_counters()
        at = self._clock()  # right after the read the rates are computed from
        sample = {
            nic: {attr: float(getattr(values, attr)) for attr in NET_RATES}
            for nic, values in counters.items()
            if nic not in skip
        }
        previous, self._previous = self._previous, (at, sample)
        if previous is None:
            return []
        then, old = previous
        elapsed = at - then
        if elapsed <= 0:
            return []
        points = []
        for nic, values in sample.items():
            before = old.get(nic)
            if before is None:  # new interface: nothing to diff yet
                continue
            deltas = {attr: values[attr] - before[attr] for attr in NET_RATES}
            if any(d < 0 for d in deltas.values()):
                log.debug("counters of %s went backwards; no rate for this interval", nic)
                continue
            fields: dict[str, FieldValue] = {
                name: round(deltas[attr] * factor / elapsed, 3) for attr, (name, factor) in NET_RATES.items()
            }
            points.append(Point("host_net", {**self.tags, "nic": tag_value(nic)}, fields, t))
        return points
