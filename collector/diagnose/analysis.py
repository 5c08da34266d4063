"""The checks: one small function per verdict kind, one signature, one table (`CHECKS`).

Each check reads the site's data through a `Window` (time buckets and the derived network
series every check shares) and returns a `CheckResult`: the verdicts it found, or what the
inventory lacks for it to judge. `diagnose` runs them all and orders the verdicts.
Numbers are kept in the units of docs/metrics.md (ms, %, bits/s); confidences are 0..1.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

from agent.contract import probe_latency_ms
from agent.probes import PROBES, ProbeKind
from collector.config import Device, ProbeTarget
from collector.diagnose.data import SiteContext, SiteData
from collector.rollups import RAW
from collector.timeseries import Sample

S = 1_000_000_000

# Thresholds, named once: the docs (docs/diagnose.md) quote them.
BUSY_UTIL_PCT = 90.0  # utilisation above this is a saturated line
QUIET_UTIL_PCT = 50.0
MIN_PEAK_UTIL_PCT = 70.0  # below this the uplink is not considered at all
MIN_CORRELATION = 0.5
MIN_ALIGNED_BUCKETS = 4
MAX_BUCKETS = 288  # 24 h in 5-minute buckets
CPU_BUSY_PCT = 90.0
MEM_FULL_PCT = 95.0
DISK_FULL_PCT = 95.0
MIN_HOST_SAMPLES = 3
CLEAN_LOSS_PCT = 1.5
LOSSY_PCT = 2.0
MIN_PROBE_ROUNDS = 5
MIN_ERROR_COUNT = 10.0
SLOW_HTTP_MS = 1000.0
NORMAL_RTT_MS = 100.0
# Probe kinds whose rounds count for loss: not http (a slow server is not loss), not traceroute (its hops locate loss).
Evidence = dict[str, float | int | str | bool | list[dict[str, float | int | str]]]


@dataclass(frozen=True)
class Suggestion:
    """Something to add or change so the diagnosis can judge; `code` picks the sentence in render.py."""

    code: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Verdict:
    kind: str
    confidence: float
    subject: str
    evidence: Evidence
    ranges: list[tuple[int, int]] = field(default_factory=list)
    suggestions: list[Suggestion] = field(default_factory=list)


@dataclass
class CheckResult:
    verdicts: list[Verdict] = field(default_factory=list)
    # What is missing for this check to judge; empty when it judged (with or without a verdict).
    missing: list[Suggestion] = field(default_factory=list)
    # False when the site has nothing this check is about (no http probes: no application to judge).
    applicable: bool = True


@dataclass
class Diagnosis:
    site: str
    site_name: str
    start_ns: int
    end_ns: int
    bucket_ns: int
    verdicts: list[Verdict]
    # check name -> "verdict" | "clean" | "no_data" | "not_applicable"
    checks: dict[str, str]
    missing: list[Suggestion]
    resolution: str = "raw"  # what the checks read: raw points, or 5-minute / hourly buckets (SiteData.resolution)


# --- small numeric helpers ------------------------------------------------------------------


def num(sample: Sample, name: str) -> float | None:
    value = sample.fields.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def pearson(xs: list[float], ys: list[float]) -> float | None:
    """Pearson's r, or None when either series is constant or too short."""
    if len(xs) < 3:
        return None
    try:
        return statistics.correlation(xs, ys)
    except statistics.StatisticsError:
        return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median_spacing_ns(samples: Iterable[Sample], key: Callable[[Sample], object]) -> int | None:
    """Median time between consecutive samples of the same series (the series' interval)."""
    last: dict[object, int] = {}
    gaps: list[int] = []
    for s in samples:
        k = key(s)
        if k in last and s.time_ns > last[k]:
            gaps.append(s.time_ns - last[k])
        last[k] = s.time_ns
    return int(statistics.median(gaps)) if gaps else None


def slowest_spacing_ns(samples: Iterable[Sample], key: Callable[[Sample], object]) -> int | None:
    """The largest of the series' own intervals: a bucket this long holds a sample of every series."""
    series: dict[object, list[Sample]] = defaultdict(list)
    for s in samples:
        series[key(s)].append(s)
    spacings = [x for rows in series.values() if (x := median_spacing_ns(rows, lambda s: 0))]
    return max(spacings, default=None)


def clamp(value: float, low: float = 0.0, high: float = 0.99) -> float:
    return max(low, min(high, value))


# What each probe kind's rounds can tell is in its descriptor (agent/probes): no kind is named here.
def _kind(name: object) -> ProbeKind | None:
    return PROBES.get(name) if isinstance(name, str) else None


def _answers_as_application(kind: object) -> bool:
    k = _kind(kind)
    return k is not None and k.answers_as_application


def _path_latency(kind: object) -> str | None:
    k = _kind(kind)
    return k.path_latency if k is not None else None


def counts_loss(kind: object) -> bool:
    """Rounds of this kind are loss on the path when they fail (icmp, tcp, dns; not http, not traceroute)."""
    k = _kind(kind)
    return k is not None and k.counts_loss


def host_of(probe: ProbeTarget) -> str:
    """The host a probe reaches: the address of icmp/traceroute, host of tcp `host:port`, host of a URL."""
    k = _kind(probe.kind)
    return k.target_host(probe.target) if k is not None else probe.target


def is_round(sample: Sample) -> bool:
    """A probe round point; traceroute hop points carry the extra tag `hop`."""
    return "hop" not in sample.tags


def lost_and_sent(sample: Sample) -> tuple[float, float] | None:
    """(lost, sent) of one round: echoes for icmp, the round itself for other kinds."""
    sent, received = num(sample, "sent"), num(sample, "received")
    if sent is not None and received is not None and sent > 0:
        return sent - received, sent
    loss = num(sample, "loss_pct")
    if loss is not None:
        return loss / 100.0, 1.0
    up = num(sample, "up")
    if up is not None:
        return 1.0 - up, 1.0
    return None


def loss_pct(samples: Iterable[Sample]) -> tuple[float | None, int]:
    """Loss in % over rounds, and the number of rounds it rests on."""
    lost = sent = 0.0
    rounds = 0
    for s in samples:
        pair = lost_and_sent(s)
        if pair is not None:
            lost, sent, rounds = lost + pair[0], sent + pair[1], rounds + 1
    return (100.0 * lost / sent if sent else None), rounds


def path_rtt_ms(rounds: Iterable[Sample], bucket_of: Callable[[int], int]) -> dict[int, float]:
    """Round-trip time per bucket: the mean over the paths (agent, target) of each path's median.

    Only kinds whose latency is a round trip (icmp); per path first, so a near target (the
    gateway) probed as often as a far one cannot hide the far one's rise behind a median."""
    paths: dict[int, dict[tuple[str | None, str | None], list[float]]] = defaultdict(lambda: defaultdict(list))
    for s in rounds:
        if _path_latency(s.tags.get("kind")) == "round_trip" and (v := probe_latency_ms(s.tags.get("kind"), s.fields)) is not None:
            paths[bucket_of(s.time_ns)][(s.tags.get("host"), s.tags.get("target"))].append(v)
    return {b: statistics.fmean(statistics.median(v) for v in per_path.values()) for b, per_path in paths.items()}


def is_uplink_line(uplink: Device, ifname: str) -> bool:
    """Whether `ifname` of a site's uplink device may be its line to the outside: one of its
    `snmp.important_interfaces` when the inventory names any, else any interface but loopback and null.
    Of these, the busiest is the line."""
    named = uplink.snmp.important_interfaces if uplink.snmp is not None else []
    return ifname in named if named else not ifname.lower().startswith(("lo", "null"))


def line_util_pct(sample: Sample) -> float | None:
    """How full an interface was in one sample: the higher of its in and out utilisation."""
    values = [v for v in (num(sample, "in_util_pct"), num(sample, "out_util_pct")) if v is not None]
    return max(values) if values else None


def ranges_of(buckets: Iterable[int], start_ns: int, bucket_ns: int, end_ns: int) -> list[tuple[int, int]]:
    """Consecutive bucket numbers merged into (start, end) time ranges."""
    out: list[tuple[int, int]] = []
    for b in sorted(set(buckets)):
        lo, hi = start_ns + b * bucket_ns, min(end_ns, start_ns + (b + 1) * bucket_ns)
        if out and out[-1][1] >= lo:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


# --- the shared view of one window -------------------------------------------------------------


class Window:
    """The site's data cut into aligned time buckets, and the network series the checks share."""

    def __init__(self, ctx: SiteContext, data: SiteData):
        self.ctx = ctx
        self.data = data
        self.probes = {p.name: p for p in ctx.probes}

    @cached_property
    def bucket_ns(self) -> int:
        # No finer than the slowest series (SNMP polls, probe rounds), no more than MAX_BUCKETS.
        d = self.data
        spacings = [
            slowest_spacing_ns(d.interface, lambda s: (s.tags.get("device"), s.tags.get("ifname"))),
            slowest_spacing_ns(
                (s for s in self.rounds if counts_loss(s.tags.get("kind"))), lambda s: (s.tags.get("host"), s.tags.get("target"))
            ),
        ]
        span = max(1, d.end_ns - d.start_ns)
        return max([S, span // MAX_BUCKETS] + [x for x in spacings if x])

    def bucket(self, time_ns: int) -> int:
        return (time_ns - self.data.start_ns) // self.bucket_ns

    def by_bucket(
        self, samples: Iterable[Sample], value: Callable[[Sample], float | None], shift_ns: int = 0
    ) -> dict[int, list[float]]:
        """Values per bucket of (time - shift_ns); a rate over the interval before its time shifts by half that interval."""
        out: dict[int, list[float]] = defaultdict(list)
        for s in samples:
            v = value(s)
            if v is not None:
                out[self.bucket(s.time_ns - shift_ns)].append(v)
        return out

    def rate_shift_ns(self, poll_interval_ns: int) -> int:
        """How long before its time a rate sample's middle lies: on raw points half the poll interval
        (an SNMP rate describes the interval before its time); on rollups nothing, since
        `rollup_view` puts each bucket at its middle already."""
        return poll_interval_ns // 2 if self.data.resolution == RAW else 0

    def ranges(self, buckets: Iterable[int]) -> list[tuple[int, int]]:
        return ranges_of(buckets, self.data.start_ns, self.bucket_ns, self.data.end_ns)

    @cached_property
    def rounds(self) -> list[Sample]:
        return [s for s in self.data.probe if is_round(s)]

    @cached_property
    def hops(self) -> list[Sample]:
        return [s for s in self.data.probe if not is_round(s)]

    @cached_property
    def first_hops(self) -> frozenset[str]:
        """Addresses answering as hop 1 of a traceroute: the site's gateway as the network sees it."""
        return frozenset(
            str(s.fields["hop_addr"]) for s in self.hops if s.tags.get("hop") in ("1", "01") and s.fields.get("hop_addr") not in (None, "*")
        )

    @cached_property
    def gateway_targets(self) -> frozenset[str]:
        gateways = self.ctx.gateway_hosts | self.first_hops
        return frozenset(name for name, p in self.probes.items() if host_of(p) in gateways and not _answers_as_application(p.kind))

    @cached_property
    def rtt(self) -> dict[int, float]:
        """icmp round-trip time per bucket: the mean over the site's paths (agent, target) of each path's median.

        Per path first, so a near target (the gateway) probed as often as a far one cannot hide
        the far one's rise behind a median."""
        return self.rtt_at(0)

    def rtt_at(self, offset_ns: int) -> dict[int, float]:
        """`rtt` on the bucket grid moved later by offset_ns."""
        return path_rtt_ms(self.rounds, lambda time_ns: self.bucket(time_ns - offset_ns))

    @cached_property
    def rtt_baseline(self) -> float | None:
        return percentile(list(self.rtt.values()), 0.1) if self.rtt else None

    def rtt_elevated(self, bucket: int) -> bool | None:
        if bucket not in self.rtt or self.rtt_baseline is None:
            return None
        base = self.rtt_baseline
        return self.rtt[bucket] > max(2 * base, base + 20.0)

    @cached_property
    def loss(self) -> dict[int, float]:
        """Loss in % per bucket over the site's loss-bearing rounds (icmp, tcp, dns; not http, not traceroute)."""
        grouped: dict[int, list[Sample]] = defaultdict(list)
        for s in self.rounds:
            if counts_loss(s.tags.get("kind")):
                grouped[self.bucket(s.time_ns)].append(s)
        out: dict[int, float] = {}
        for b, samples in grouped.items():
            value, _ = loss_pct(samples)
            if value is not None:
                out[b] = value
        return out

    def network_clean(self, buckets: Iterable[int]) -> tuple[bool | None, float | None, float | None]:
        """(clean, loss %, median rtt ms) over these buckets; clean is None without probe data there."""
        chosen = set(buckets)
        losses = [v for b, v in self.loss.items() if b in chosen]
        rtts = [v for b, v in self.rtt.items() if b in chosen]
        if not losses and not rtts:
            return None, None, None
        loss = statistics.fmean(losses) if losses else None
        elevated = [self.rtt_elevated(b) for b in chosen if b in self.rtt]
        mostly_normal = not elevated or sum(bool(e) for e in elevated) <= 0.2 * len(elevated)
        clean = (loss is None or loss <= CLEAN_LOSS_PCT) and mostly_normal
        return clean, loss, (statistics.median(rtts) if rtts else None)


CheckFn = Callable[[Window], CheckResult]


def _more_data(what: str, have: int) -> Suggestion:
    return Suggestion("more_data", {"what": what, "have": str(have)})


# --- the checks ----------------------------------------------------------------------------------


def check_uplink_saturated(w: Window) -> CheckResult:
    ctx, site = w.ctx, w.ctx.site.id
    if ctx.uplink is None:
        candidates = ", ".join(d.id for d in ctx.devices if d.snmp is not None)
        return CheckResult(missing=[Suggestion("name_uplink", {"site": site, "candidates": candidates})])
    uplink = ctx.uplink
    if uplink.snmp is None:
        return CheckResult(missing=[Suggestion("poll_uplink_snmp", {"site": site, "device": uplink.id})])
    rows = [s for s in w.data.interface if s.tags.get("device") == uplink.id]
    if not rows:
        return CheckResult(missing=[_more_data("uplink_interface", 0)])
    by_if: dict[str, list[Sample]] = defaultdict(list)
    for s in rows:
        if is_uplink_line(uplink, ifname := s.tags.get("ifname", "")):
            by_if[ifname].append(s)

    # An SNMP rate describes the poll interval before its time: bucket it at the interval's middle.
    half = w.rate_shift_ns(median_spacing_ns(rows, lambda s: s.tags.get("ifname")) or 0)
    utils = {name: {b: statistics.fmean(v) for b, v in w.by_bucket(samples, line_util_pct, half).items()} for name, samples in by_if.items()}
    utils = {name: u for name, u in utils.items() if u}
    if not by_if:
        seen = ", ".join(sorted({s.tags.get("ifname", "") for s in rows}))
        return CheckResult(missing=[Suggestion("uplink_ifname", {"device": uplink.id, "ifnames": seen})])
    if not utils:
        return CheckResult(missing=[Suggestion("uplink_speed", {"device": uplink.id})])
    if not w.rtt:
        return CheckResult(missing=[Suggestion("add_gateway_probe", _gateway_params(w))])
    # The busiest interface of the uplink device is its line to the outside (unless the inventory names it).
    ifname, series = max(utils.items(), key=lambda item: max(item[1].values()))
    aligned = sorted(b for b in series if b in w.rtt)
    if len(aligned) < MIN_ALIGNED_BUCKETS:
        return CheckResult(missing=[_more_data("aligned_buckets", len(aligned))])
    u = [series[b] for b in aligned]
    peak = max(u)
    if peak < MIN_PEAK_UTIL_PCT:
        return CheckResult()
    corr = _grid_correlation(w, by_if[ifname], line_util_pct, half)
    busy = [b for b in aligned if series[b] > BUSY_UTIL_PCT]
    quiet = [b for b in aligned if series[b] < QUIET_UTIL_PCT]
    rtt_busy = statistics.median(w.rtt[b] for b in busy) if busy else None
    rtt_quiet = statistics.median(w.rtt[b] for b in quiet) if quiet else None
    ratio = rtt_busy / rtt_quiet if rtt_busy is not None and rtt_quiet else None
    rising = (corr is not None and corr >= MIN_CORRELATION) or (ratio is not None and ratio >= 2.0)
    if not rising and not (corr is None and busy and len(busy) == len(aligned)):
        return CheckResult()
    confidence = clamp(
        0.15
        + 0.45 * max(corr or 0.0, 0.0)
        + 0.25 * min(1.0, len(busy) / 3)
        + 0.15 * (min(1.0, (ratio - 1.0) / 4) if ratio is not None and ratio > 1 else 0.0)
    )
    speed = [v for s in by_if[ifname] if (v := num(s, "speed_bps")) is not None]
    evidence: Evidence = {
        "device": uplink.id,
        "ifname": ifname,
        "correlation": round(corr, 3) if corr is not None else "unknown",
        "buckets": len(aligned),
        "bucket_s": round(w.bucket_ns / S, 1),
        "peak_util_pct": round(peak, 1),
        "mean_util_pct": round(statistics.fmean(u), 1),
        "busy_buckets": len(busy),
        "busy_minutes": round(len(busy) * w.bucket_ns / S / 60, 1),
    }
    if rtt_busy is not None:
        evidence["rtt_busy_ms"] = round(rtt_busy, 1)
    if rtt_quiet is not None:
        evidence["rtt_quiet_ms"] = round(rtt_quiet, 1)
    if ratio is not None:
        evidence["rtt_ratio"] = round(ratio, 1)
    if speed:
        evidence["speed_bps"] = speed[-1]
    # The device's own state on the way: a busy or rebooting box also delays what it forwards.
    polls = [s for s in w.data.device if s.tags.get("device") == uplink.id]
    cpu = [v for s in polls if (v := num(s, "cpu_pct")) is not None]
    if cpu:
        evidence["device_cpu_peak_pct"] = round(max(cpu), 1)
    if polls:
        evidence["device_reboots"] = sum(1 for s in polls if num(s, "rebooted") == 1.0)
    return CheckResult([Verdict("uplink_saturated", confidence, f"{uplink.id}/{ifname}", evidence, w.ranges(busy))])


GRID_PHASES = 5


def _grid_correlation(w: Window, polls: list[Sample], util: Callable[[Sample], float | None], half_ns: int) -> float | None:
    """Pearson's r between bucket utilisation and bucket latency: the median over GRID_PHASES
    placements of the bucket grid across one bucket length.

    Polls and probe rounds fall where they fall; on one grid a bucket can hold a full poll
    interval's utilisation and the idle stretch's latency, and with a dozen buckets that one
    pulls r far down (0.45 against 0.87 a second later, in the lab). The median over the grid's
    possible placements does not depend on where the window happens to start."""
    values: list[float] = []
    for k in range(GRID_PHASES):
        offset = k * w.bucket_ns // GRID_PHASES
        series = {b: statistics.fmean(v) for b, v in w.by_bucket(polls, util, half_ns + offset).items()}
        rtt = w.rtt_at(offset)
        aligned = sorted(b for b in series if b in rtt)
        if len(aligned) >= MIN_ALIGNED_BUCKETS and (r := pearson([series[b] for b in aligned], [rtt[b] for b in aligned])) is not None:
            values.append(r)
    return statistics.median(values) if values else None


def _error_counts(w: Window, samples: list[Sample], key: Callable[[Sample], str], errors: tuple[str, ...], discards: tuple[str, ...]) -> list[Verdict]:
    """Errors and discards per interface, as estimated counts (rate x time since the previous sample)."""
    series: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        series[key(s)].append(s)
    out: list[Verdict] = []
    for subject, rows in series.items():
        spacing = median_spacing_ns(rows, lambda s: 0) or w.bucket_ns
        shift = w.rate_shift_ns(spacing)
        n_err = n_disc = 0.0
        peak = 0.0
        bad: list[int] = []
        prev: int | None = None
        for s in rows:
            dt = min(s.time_ns - prev, 2 * spacing) if prev is not None else spacing
            prev = s.time_ns
            e = sum(v for name in errors if (v := num(s, name)) is not None)
            d = sum(v for name in discards if (v := num(s, name)) is not None)
            n_err += e * dt / S
            n_disc += d * dt / S
            peak = max(peak, e + d)
            if e + d > 0:
                bad.append(w.bucket(s.time_ns - shift))  # the rate of the interval before the sample
        total = n_err + n_disc
        if total < MIN_ERROR_COUNT or len(bad) < 2:
            continue
        confidence = clamp(0.4 + 0.15 * math.log10(total)) * min(1.0, 0.5 + len(bad) / len(rows))
        if n_err < MIN_ERROR_COUNT:
            confidence *= 0.6  # discards alone are more often a full queue than a bad cable
        out.append(
            Verdict(
                "interface_errors",
                clamp(confidence),
                subject,
                {
                    "errors": round(n_err),
                    "discards": round(n_disc),
                    "peak_per_s": round(peak, 2),
                    "samples_with_errors": len(bad),
                    "samples": len(rows),
                },
                w.ranges(bad),
            )
        )
    return out


def check_interface_errors(w: Window) -> CheckResult:
    snmp = [d for d in w.ctx.devices if d.snmp is not None]
    if not snmp and not w.data.host_net:
        return CheckResult(missing=[Suggestion("poll_site_devices_snmp", {"site": w.ctx.site.id})])
    verdicts = _error_counts(
        w,
        w.data.interface,
        lambda s: f"{s.tags.get('device', '?')}/{s.tags.get('ifname', '?')}",
        ("in_errors_ps", "out_errors_ps"),
        ("in_discards_ps", "out_discards_ps"),
    )
    # An agent's own NIC: errors only (Linux counts dropped unknown protocols as drops, harmless).
    verdicts += _error_counts(
        w, w.data.host_net, lambda s: f"{s.tags.get('host', '?')}/{s.tags.get('nic', '?')}", ("in_errors_ps", "out_errors_ps"), ()
    )
    if not verdicts and not w.data.interface and not w.data.host_net:
        return CheckResult(missing=[_more_data("interface", 0)])
    return CheckResult(verdicts)


def _gateway_params(w: Window) -> dict[str, str]:
    host = w.ctx.uplink.host if w.ctx.uplink is not None else next(iter(sorted(w.first_hops | w.ctx.gateway_hosts)), "")
    return {"site": w.ctx.site.id, "host": host}


def check_loss_beyond_gateway(w: Window) -> CheckResult:
    if not w.ctx.probes:
        return CheckResult(missing=[Suggestion("add_gateway_probe", _gateway_params(w)), Suggestion("add_internet_probe", {"site": w.ctx.site.id})])
    gateway = w.gateway_targets
    gw_rounds = [s for s in w.rounds if s.tags.get("target") in gateway and counts_loss(s.tags.get("kind"))]
    beyond_rounds = [s for s in w.rounds if s.tags.get("target") not in gateway and counts_loss(s.tags.get("kind"))]
    missing: list[Suggestion] = []
    if not gateway:
        missing.append(Suggestion("add_gateway_probe", _gateway_params(w)))
    if not any(p.name not in gateway and counts_loss(p.kind) for p in w.ctx.probes):
        missing.append(Suggestion("add_internet_probe", {"site": w.ctx.site.id}))
    if missing:
        return CheckResult(missing=missing)
    gw_loss, gw_n = loss_pct(gw_rounds)
    beyond_loss, beyond_n = loss_pct(beyond_rounds)
    if gw_loss is None or beyond_loss is None or gw_n < MIN_PROBE_ROUNDS or beyond_n < MIN_PROBE_ROUNDS:
        return CheckResult(missing=[_more_data("probe_rounds", min(gw_n, beyond_n))])
    if beyond_loss < LOSSY_PCT or gw_loss > CLEAN_LOSS_PCT or beyond_loss < 3 * gw_loss:
        return CheckResult()
    per_target: list[dict[str, float | int | str]] = []
    for name in sorted({s.tags.get("target", "") for s in gw_rounds + beyond_rounds}):
        value, n = loss_pct(s for s in gw_rounds + beyond_rounds if s.tags.get("target") == name)
        if value is not None:
            per_target.append({"target": name, "side": "gateway" if name in gateway else "beyond", "loss_pct": round(value, 1), "rounds": n})
    evidence: Evidence = {
        "gateway_loss_pct": round(gw_loss, 2),
        "gateway_rounds": gw_n,
        "beyond_loss_pct": round(beyond_loss, 2),
        "beyond_rounds": beyond_n,
        "targets": per_target,
    }
    suggestions: list[Suggestion] = []
    start = _loss_start_hop(w)
    if start is not None:
        evidence.update(start)
    elif not w.hops:
        suggestions.append(Suggestion("add_traceroute_probe", {"site": w.ctx.site.id}))
    confidence = clamp(
        (0.3 + 0.4 * min(1.0, beyond_loss / 10) + 0.3 * min(1.0, min(gw_n, beyond_n) / 20)) * (1 - gw_loss / beyond_loss)
    )
    lossy_buckets = _bucket_loss(w, beyond_rounds)
    subject = str(start["loss_begins_addr"]) if start else "beyond_gateway"
    return CheckResult([Verdict("loss_beyond_gateway", confidence, subject, evidence, w.ranges(lossy_buckets), suggestions)])


def _bucket_loss(w: Window, rounds: list[Sample]) -> list[int]:
    grouped: dict[int, list[Sample]] = defaultdict(list)
    for s in rounds:
        grouped[w.bucket(s.time_ns)].append(s)
    return [b for b, rows in grouped.items() if (loss_pct(rows)[0] or 0.0) >= LOSSY_PCT]


def _usual_path_lengths(w: Window) -> dict[str, int]:
    """Per traceroute target, the number of hops most of its rounds took to reach it."""
    lengths: dict[str, list[int]] = defaultdict(list)
    for s in w.rounds:
        hops = num(s, "hops")
        if s.tags.get("kind") == "traceroute" and hops is not None and num(s, "up") != 0.0:
            lengths[s.tags.get("target", "")].append(int(hops))
    return {target: statistics.mode(values) for target, values in lengths.items()}


def _loss_start_hop(w: Window) -> dict[str, float | int | str] | None:
    """The first traceroute hop from which every later hop loses packets: where loss begins."""
    by_hop: dict[int, list[Sample]] = defaultdict(list)
    path_len = _usual_path_lengths(w)
    for s in w.hops:
        try:
            hop = int(s.tags["hop"])
        except (KeyError, ValueError):
            continue
        # A round whose echoes to the last hop were all lost goes on one TTL further and meets the
        # target there: that extra "hop" is the target again, not a further router.
        if hop > path_len.get(s.tags.get("target", ""), hop):
            continue
        by_hop[hop].append(s)
    if not by_hop:
        return None
    loss: dict[int, float] = {}
    addr: dict[int, str] = {}
    for hop, rows in by_hop.items():
        value, _ = loss_pct(rows)
        if value is not None:
            loss[hop] = value
        addrs = [str(s.fields["hop_addr"]) for s in rows if s.fields.get("hop_addr") not in (None, "*")]
        addr[hop] = statistics.mode(addrs) if addrs else "*"
    hops = sorted(loss)
    # The gateway's own hops are judged by the gateway probes (echo replies); as a hop it answers
    # with ICMP time-exceeded, which routers rate-limit (Linux: 1/s per peer), so it looks lossy.
    gateways = w.ctx.gateway_hosts | w.first_hops
    for i, hop in enumerate(hops):
        if addr[hop] in gateways:
            continue
        if all(loss[h] >= LOSSY_PCT for h in hops[i:]):
            out: dict[str, float | int | str] = {"loss_begins_hop": hop, "loss_begins_addr": addr[hop], "hop_loss_pct": round(loss[hop], 1)}
            if i > 0:
                out["previous_hop"] = hops[i - 1]
                out["previous_hop_addr"] = addr[hops[i - 1]]
                out["previous_hop_loss_pct"] = round(loss[hops[i - 1]], 1)
                out["previous_hop_is_gateway"] = addr[hops[i - 1]] in gateways
            return out
    return None


def check_host_saturated(w: Window) -> CheckResult:
    if not w.ctx.agents:
        return CheckResult(missing=[Suggestion("add_agent", {"site": w.ctx.site.id})])
    series: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    for s in w.data.host:
        series[(s.tags.get("host", "?"), "cpu")].append(s)
        series[(s.tags.get("host", "?"), "memory")].append(s)
    for s in w.data.host_disk:
        series[(s.tags.get("host", "?"), f"disk:{s.tags.get('mount', '?')}")].append(s)
    if max((len(v) for v in series.values()), default=0) < MIN_HOST_SAMPLES:
        return CheckResult(missing=[_more_data("host_samples", max((len(v) for v in series.values()), default=0))])
    verdicts: list[Verdict] = []
    for (host, resource), rows in sorted(series.items()):
        name, threshold = {"cpu": ("cpu_pct", CPU_BUSY_PCT), "memory": ("mem_used_pct", MEM_FULL_PCT)}.get(resource, ("used_pct", DISK_FULL_PCT))
        values = [(s.time_ns, v) for s in rows if (v := num(s, name)) is not None]
        if len(values) < MIN_HOST_SAMPLES:
            continue
        hot = [(t, v) for t, v in values if v >= threshold]
        fraction = len(hot) / len(values)
        if len(hot) < 2 or fraction < 0.1:
            continue
        buckets = [w.bucket(t) for t, _ in hot]
        clean, loss, rtt = w.network_clean(buckets)
        factor = {True: 1.0, None: 0.7, False: 0.35}[clean]
        evidence: Evidence = {
            "host": host,
            "resource": resource,
            "field": name,
            "threshold_pct": threshold,
            "peak_pct": round(max(v for _, v in values), 1),
            "mean_when_saturated_pct": round(statistics.fmean(v for _, v in hot), 1),
            "saturated_fraction": round(fraction, 2),
            "samples": len(values),
            "network_clean": "unknown" if clean is None else clean,
        }
        if loss is not None:
            evidence["network_loss_pct"] = round(loss, 2)
        if rtt is not None:
            evidence["network_rtt_ms"] = round(rtt, 1)
        suggestions = [Suggestion("add_gateway_probe", _gateway_params(w))] if clean is None else []
        confidence = clamp((0.5 + 0.45 * min(1.0, fraction / 0.5)) * factor)
        verdicts.append(Verdict("host_saturated", confidence, f"{host} {resource}", evidence, w.ranges(buckets), suggestions))
    return CheckResult(verdicts)


def check_device_trouble(w: Window) -> CheckResult:
    """The boxes on the way: a restart (sysUpTime reset) or a CPU so busy that forwarding suffers."""
    polled = [d for d in w.ctx.devices if d.snmp is not None]
    if not polled:
        return CheckResult(missing=[Suggestion("poll_site_devices_snmp", {"site": w.ctx.site.id})])
    if not w.data.device:
        return CheckResult(missing=[_more_data("device_polls", 0)])
    verdicts: list[Verdict] = []
    for device in polled:
        rows = [s for s in w.data.device if s.tags.get("device") == device.id]
        if rows:
            verdicts += _device_reboots(w, device.id, rows) + _device_overload(w, device.id, rows)
    return CheckResult(verdicts)


def _device_reboots(w: Window, device: str, rows: list[Sample]) -> list[Verdict]:
    restarts = [s for s in rows if num(s, "rebooted") == 1.0]
    if not restarts:
        return []
    spacing = median_spacing_ns(rows, lambda s: 0) or w.bucket_ns
    ranges: list[tuple[int, int]] = []
    for s in restarts:
        # It came up `uptime_s` before this poll; it went away after the last poll that answered before that.
        uptime = num(s, "uptime_s")
        booted = s.time_ns - int(uptime * S) if uptime is not None else s.time_ns - spacing
        before = [r.time_ns for r in rows if r.time_ns < booted and num(r, "up") != 0.0]
        gone = max(before) if before else max(w.data.start_ns, booted - spacing)
        ranges.append((gone, s.time_ns))
    buckets = {b for a, z in ranges for b in range(w.bucket(a), w.bucket(z) + 1)}
    losses = [v for b, v in w.loss.items() if b in buckets]
    evidence: Evidence = {
        "device": device,
        "reboots": len(restarts),
        "last_uptime_s": round(num(restarts[-1], "uptime_s") or 0.0, 1),
        # The longest stretch between its last answer before a restart and its first after it.
        "unreachable_s": round(max((z - a) / S for a, z in ranges), 1),
        "polls": len(rows),
    }
    if losses:
        evidence["loss_during_pct"] = round(statistics.fmean(losses), 1)
    # A restart is a fact, not a guess; that it explains what people felt needs loss at the time.
    confidence = clamp(0.6 + 0.1 * min(3, len(restarts)) + (0.15 if losses and statistics.fmean(losses) >= LOSSY_PCT else 0.0))
    return [Verdict("device_rebooted", confidence, device, evidence, ranges)]


def _device_overload(w: Window, device: str, rows: list[Sample]) -> list[Verdict]:
    cpu = [(s.time_ns, v) for s in rows if (v := num(s, "cpu_pct")) is not None]
    busy = [(t, v) for t, v in cpu if v >= CPU_BUSY_PCT]
    if len(cpu) < MIN_HOST_SAMPLES or len(busy) < 2:
        return []
    per_bucket = {b: statistics.fmean(v) for b, v in w.by_bucket(rows, lambda s: num(s, "cpu_pct")).items()}
    busy_buckets = sorted({w.bucket(t) for t, _ in busy})
    aligned = sorted(b for b in per_bucket if b in w.rtt)
    corr = pearson([per_bucket[b] for b in aligned], [w.rtt[b] for b in aligned]) if len(aligned) >= MIN_ALIGNED_BUCKETS else None
    hot_rtt = [w.rtt[b] for b in busy_buckets if b in w.rtt]
    cool_rtt = [w.rtt[b] for b in aligned if per_bucket[b] < QUIET_UTIL_PCT]
    ratio = statistics.median(hot_rtt) / statistics.median(cool_rtt) if hot_rtt and cool_rtt and statistics.median(cool_rtt) > 0 else None
    rising = (corr is not None and corr >= MIN_CORRELATION) or (ratio is not None and ratio >= 2.0)
    if aligned and not rising:
        return []  # busy, but what goes through it was not slower: not the answer to "why slow"
    fraction = len(busy) / len(cpu)
    evidence: Evidence = {
        "device": device,
        "cpu_peak_pct": round(max(v for _, v in cpu), 1),
        "cpu_mean_pct": round(statistics.fmean(v for _, v in cpu), 1),
        "busy_samples": len(busy),
        "samples": len(cpu),
        "correlation": round(corr, 3) if corr is not None else "unknown",
    }
    if hot_rtt:
        evidence["rtt_busy_ms"] = round(statistics.median(hot_rtt), 1)
    if cool_rtt:
        evidence["rtt_quiet_ms"] = round(statistics.median(cool_rtt), 1)
    suggestions = [] if aligned else [Suggestion("add_gateway_probe", _gateway_params(w))]
    confidence = clamp((0.35 + 0.3 * max(corr or 0.0, 0.0) + 0.3 * min(1.0, fraction / 0.3)) * (1.0 if aligned else 0.6))
    return [Verdict("device_overloaded", confidence, device, evidence, w.ranges(busy_buckets), suggestions)]


def check_application_slow(w: Window) -> CheckResult:
    http = [p for p in w.ctx.probes if _answers_as_application(p.kind)]
    if not http:
        return CheckResult(applicable=False)
    verdicts: list[Verdict] = []
    missing: list[Suggestion] = []
    for probe in http:
        server = host_of(probe)
        network = [p.name for p in w.ctx.probes if _path_latency(p.kind) is not None and host_of(p) == server]
        if not network:
            missing.append(Suggestion("add_server_probe", {"site": w.ctx.site.id, "host": server, "probe": probe.name}))
            continue
        rounds = [s for s in w.rounds if s.tags.get("target") == probe.name]
        times = [(s.time_ns, v) for s in rounds if (v := probe_latency_ms(s.tags.get("kind"), s.fields)) is not None]
        net = [s for s in w.rounds if s.tags.get("target") in network]
        rtts = [v for s in net if (v := probe_latency_ms(s.tags.get("kind"), s.fields)) is not None]
        if len(times) < MIN_PROBE_ROUNDS or len(rtts) < MIN_PROBE_ROUNDS:
            missing.append(_more_data("http_rounds", min(len(times), len(rtts))))
            continue
        http_ms = statistics.median(v for _, v in times)
        rtt_ms = statistics.median(rtts)
        net_loss, _ = loss_pct(net)
        normal = rtt_ms < NORMAL_RTT_MS and (net_loss or 0.0) < LOSSY_PCT
        # Slow: far above what the network round trip explains, and slow enough for people to notice.
        threshold = max(SLOW_HTTP_MS / 2, 20 * rtt_ms)
        if not normal or http_ms < threshold:
            continue
        slow = [w.bucket(t) for t, v in times if v >= threshold]
        confidence = clamp(0.5 + 0.45 * min(1.0, http_ms / max(rtt_ms, 1.0) / 200) * (len(slow) / len(times)))
        evidence: Evidence = {
            "probe": probe.name,
            "server": server,
            "http_ms": round(http_ms, 1),
            "rtt_ms": round(rtt_ms, 1),
            "network_loss_pct": round(net_loss or 0.0, 2),
            "slow_fraction": round(len(slow) / len(times), 2),
            "rounds": len(times),
        }
        verdicts.append(Verdict("application_slow", confidence, probe.name, evidence, w.ranges(slow)))
    return CheckResult(verdicts, missing if not verdicts else [])


def _ups_episodes(rows: list[Sample]) -> list[tuple[list[Sample], Sample | None]]:
    """Runs of polls that found the UPS on battery, each with the poll after it (None: none in the window)."""
    out: list[tuple[list[Sample], Sample | None]] = []
    run: list[Sample] = []
    for s in rows:
        if num(s, "ups_on_battery") == 1.0:
            run.append(s)
            continue
        if run:
            out.append((run, s))
            run = []
    if run:
        out.append((run, None))
    return out


def check_power_cut(w: Window) -> CheckResult:
    """The site's UPS went on battery: a power cut. When the UPS (and with it the site) went quiet
    while on battery, the power explains the outage, not the network; when it came back on line,
    the UPS bridged the cut."""
    ups_ids = {d.id for d in w.ctx.devices if d.hardware.kind == "ups"}
    rows: dict[str, list[Sample]] = defaultdict(list)
    for s in w.data.device:
        if s.tags.get("device") in ups_ids or "ups_on_battery" in s.fields:
            rows[s.tags.get("device", "")].append(s)
    if not ups_ids and not rows:
        return CheckResult(applicable=False)
    verdicts: list[Verdict] = []
    for device, polls in rows.items():
        for run, after in _ups_episodes(polls):
            first, last = run[0], run[-1]
            seconds = num(first, "ups_seconds_on_battery")
            start = first.time_ns - int(seconds * S) if seconds and seconds > 0 else first.time_ns
            evidence: Evidence = {"device": device, "on_battery_minutes": round((last.time_ns - start) / S / 60, 1)}
            for key, sample in (("runtime_then_minutes", first), ("runtime_last_minutes", last)):
                if (minutes := num(sample, "ups_minutes_left")) is not None:
                    evidence[key] = round(minutes, 1)
            if (charge := num(last, "ups_charge_pct")) is not None:
                evidence["charge_last_pct"] = round(charge, 1)
            if after is not None and num(after, "up") == 1.0:
                # Power back while the UPS still ran: a cut it bridged.
                evidence["site_quiet"] = False
                verdicts.append(Verdict("power_cut_bridged", 0.6, device, evidence, [(start, after.time_ns)]))
                continue
            answered_again = [s.time_ns for s in polls if s.time_ns > last.time_ns and num(s, "up") == 1.0]
            back = min(answered_again) if answered_again else w.data.end_ns
            # None of the site's agents heard from while the UPS was quiet: the machines lost power too.
            # The UPS went dark up to a poll interval after its last answer, the machines with it:
            # what they measured within two intervals of that answer is from before the dark.
            grace = 2 * (median_spacing_ns(polls, lambda s: 0) or w.bucket_ns)
            heard = {s.tags.get("host") for s in (*w.data.host, *w.rounds) if last.time_ns + grace < s.time_ns < back}
            silent = [a.id for a in w.ctx.agents if a.id not in heard]
            evidence.update(site_quiet=True, agents_silent=len(silent), agents=len(w.ctx.agents))
            confidence = 0.95 if w.ctx.agents and len(silent) == len(w.ctx.agents) else 0.8
            verdicts.append(Verdict("power_cut", confidence, device, evidence, [(start, back)]))
    return CheckResult(verdicts)


# One table: the order is the order the checks are reported in when nothing is found.
CHECKS: Mapping[str, CheckFn] = MappingProxyType({
    "uplink_saturated": check_uplink_saturated,
    "interface_errors": check_interface_errors,
    "loss_beyond_gateway": check_loss_beyond_gateway,
    "host_saturated": check_host_saturated,
    "application_slow": check_application_slow,
    "device_trouble": check_device_trouble,
    "power_cut": check_power_cut,
})


def _silent_sources(ctx: SiteContext, data: SiteData) -> list[Suggestion]:
    """Who said nothing in the window, in plain words: an agent without a single measurement, a
    device that never answered SNMP (with the last time it did, when the window shows one)."""
    heard = {s.tags.get("host") for s in (*data.host, *data.probe)}
    out = [Suggestion("agent_silent", {"agent": a.id}) for a in ctx.agents if a.id not in heard]
    for device in ctx.devices:
        if device.snmp is None:
            continue
        polls = [s for s in data.device if s.tags.get("device") == device.id]
        answered = [s.time_ns for s in polls if num(s, "up") == 1.0]
        if not polls:
            out.append(Suggestion("device_not_polled", {"device": device.id}))
        elif not answered or num(polls[-1], "up") != 1.0:
            since = max((t for t in answered), default=0)
            out.append(Suggestion("device_silent", {"device": device.id, "since_ns": str(since) if since else ""}))
    return out


def diagnose(ctx: SiteContext, data: SiteData) -> Diagnosis:
    """Run every check; verdicts by confidence, `insufficient_data` when none could judge."""
    w = Window(ctx, data)
    verdicts: list[Verdict] = []
    missing: list[Suggestion] = []
    silent = _silent_sources(ctx, data)  # said whatever the checks find; not by itself "too little data"
    checks: dict[str, str] = {}
    if not ctx.agents:
        missing.append(Suggestion("add_agent", {"site": ctx.site.id}))
    for name, check in CHECKS.items():
        result = check(w)
        verdicts += result.verdicts
        for suggestion in result.missing:
            if suggestion not in missing:
                missing.append(suggestion)
        if not result.applicable:
            checks[name] = "not_applicable"
        else:
            checks[name] = "verdict" if result.verdicts else ("no_data" if result.missing else "clean")
    if not verdicts and missing:
        applicable = sum(state != "not_applicable" for state in checks.values())
        unjudged = sum(state == "no_data" for state in checks.values())
        verdicts.append(
            Verdict(
                "insufficient_data",
                clamp(unjudged / max(1, applicable), 0.3, 1.0),
                ctx.site.id,
                {"checks_without_data": unjudged, "checks": applicable, "probe_rounds": len(w.rounds), "host_samples": len(data.host)},
                [(data.start_ns, data.end_ns)],
                silent + list(missing),
            )
        )
    missing = silent + missing
    verdicts.sort(key=lambda v: -v.confidence)
    return Diagnosis(ctx.site.id, ctx.site.name, data.start_ns, data.end_ns, w.bucket_ns, verdicts, checks, missing, data.resolution)
