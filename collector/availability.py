"""What of the collector's `availability` verdicts is stored: every change, and a steady beat.

The collector judges liveness every few seconds (agents, probe targets) and each SNMP poll
judges a device. Everything it judges goes to the in-process subscribers at once (the alert
engine, the live device state), as before; storage gets a series' point only when its verdict
changes (`up`, waiting for a first report or not, the interval it is held to, or a target
whose probes stopped) and otherwise once every `[collector] availability_beat_s`. Each stored
point carries `up_s` and `judged_s`: the seconds since the series' previous stored point in
which it was judged up, and judged at all, so `sum(up_s) / sum(judged_s)` over any range is
the availability of the evaluations it covers, without reading the points as a step function.

Readers of the stored points take each verdict as holding until the series' next point, but
no longer than `holds_s(beat_s)`: a longer silence means the collector was not judging (it was
stopped), which is unknown, not up (docs/metrics.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agent.points import Point

# Beyond the beat, how long a stored verdict is still taken to hold: a housekeeping round late
# on a busy machine, or a poll that took its whole timeout.
HOLD_GRACE_S = 60.0


def holds_s(beat_s: float, judged_every_s: float = 0.0) -> float:
    """How long a stored verdict holds without a newer point of its series.

    `judged_every_s`: how often the series is judged at all (a device's SNMP poll interval),
    when that is longer than the beat.
    """
    return max(beat_s, judged_every_s) + HOLD_GRACE_S


def series_key(point: Point) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(point.tags.items()))


def _verdict(point: Point) -> tuple[object, ...]:
    """What a change is: the fields that say something other than 'still the same'."""
    fields = point.fields
    return (fields.get("up"), "waiting_s" in fields, fields.get("expected_s"))


@dataclass(slots=True)
class _Series:
    verdict: tuple[object, ...]
    up: float | None  # as of the newest judgement
    judged_ns: int  # time of the newest judgement
    stored_ns: int  # time of the newest stored point
    up_ns: int = 0  # judged up since the stored point
    judged_total_ns: int = 0  # judged (up or down) since the stored point


class AvailabilityRecorder:
    """Chooses the `availability` points to store; every other point passes through unchanged."""

    def __init__(self, beat_s: float):
        self.beat_s = beat_s
        self._series: dict[tuple[tuple[str, str], ...], _Series] = {}
        self.judged = 0  # availability verdicts seen
        self.stored = 0  # of them stored

    def to_store(self, points: Iterable[Point]) -> list[Point]:
        beat_ns = int(self.beat_s * 1e9)
        hold_ns = int(holds_s(self.beat_s) * 1e9)
        kept: list[Point] = []
        for point in points:
            if point.measurement != "availability":
                kept.append(point)
                continue
            self.judged += 1
            key = series_key(point)
            series = self._series.get(key)
            if series is not None and point.time_ns < series.judged_ns:
                continue  # older than what is already judged: the present is stored, not the past
            verdict = _verdict(point)
            if series is not None:
                # The previous verdict held from its judgement until this one (not across a gap longer than a hold).
                held_ns = min(point.time_ns - series.judged_ns, hold_ns)
                if series.up is not None:
                    series.judged_total_ns += held_ns
                    if series.up >= 0.5:
                        series.up_ns += held_ns
            if series is None or verdict != series.verdict or point.time_ns - series.stored_ns >= beat_ns:
                accounted = {"up_s": 0.0, "judged_s": 0.0} if series is None else {
                    "up_s": round(series.up_ns / 1e9, 3), "judged_s": round(series.judged_total_ns / 1e9, 3),
                }
                kept.append(Point(point.measurement, point.tags, {**point.fields, **accounted}, point.time_ns))
                self.stored += 1
                series = self._series[key] = _Series(verdict, None, point.time_ns, point.time_ns)
            up = point.fields.get("up")
            series.up = float(up) if isinstance(up, (int, float)) and not isinstance(up, bool) else None
            series.judged_ns = point.time_ns
            series.verdict = verdict
        return kept
