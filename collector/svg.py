"""Charts for the status page, drawn on the server as inline SVG: no script, font or file to fetch.

Three kinds, each a function returning one `<svg>` element as text:

- `strip`: a state over time (a site's up/degraded/down/waiting, alert episodes), one `<rect>`
  per span with its class and a `<title>` naming its times;
- `latency_chart`: Smokeping's picture of a probe target: the spread of the round-trip times as a
  band, the median as a line coloured by the loss in its bucket, buckets where every echo was
  lost shaded;
- `line_chart`: a few series on one value axis (an uplink's in and out against its capacity,
  errors per second, CPU and memory in percent), with an optional limit line.

Every chart maps time linearly onto x in [0, WIDTH] and values onto y in [0, height] (0 at the
bottom), and says how on its root element: `data-t0`/`data-t1` (Unix seconds at x = 0 and x =
WIDTH) and `data-vmax` (the value at the top), so a reader (or a test) can turn any coordinate
back into a time and a value. Coordinates are rounded to a tenth: the file stays small, and a
tenth of a unit is 8.6 s on a day's chart. The SVG stretches to the width it is given
(`preserveAspectRatio="none"`, strokes kept thin by the style sheet's `non-scaling-stroke`), so
its words are HTML beside it, positioned in percent: time labels under it, the value at the top,
a limit's label (`<div class="chart">` holds them all), never stretched text. Colours come from
the page's style sheet by class. Words are passed in: this module knows no language and no time
zone.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

WIDTH = 1000
# Strips are never drawn narrower than this (in x units): a one-minute outage on a day's strip
# (0.7 units) would otherwise be invisible; its title still gives its exact times.
MIN_SPAN_WIDTH = 2.0
# Loss classes of the median line: the upper bound (percent) of each, Smokeping-like.
LOSS_CLASSES: tuple[tuple[float, str], ...] = ((0.0, "l0"), (5.0, "l1"), (20.0, "l2"), (math.inf, "l3"))


def _n(value: float) -> str:
    """A coordinate with at most one decimal, no trailing zeros: 12, 12.5."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of one state, [start_s, end_s), with the words of its tooltip."""

    start_s: float
    end_s: float
    state: str  # a class the page's style sheet colours: up, degraded, down, waiting, ...
    title: str = ""


@dataclass(frozen=True, slots=True)
class Tick:
    """A time label under a chart: where (Unix s) and what it says ("06:00", "ma 12.")."""

    t: float
    label: str


@dataclass(frozen=True, slots=True)
class LatencyBucket:
    """One bucket of a latency chart: its start, the median, the spread, and the loss (None: not known)."""

    start_s: float
    median_ms: float | None
    low_ms: float | None
    high_ms: float | None
    loss_pct: float | None


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a line chart: (time, value) points in time order, and the class that colours it.
    `area` fills below the line (the traffic in, drawn under the traffic out)."""

    css_class: str
    points: Sequence[tuple[float, float | None]]
    area: bool = False


class Frame:
    """The mapping from (time, value) to chart coordinates."""

    def __init__(self, t0: float, t1: float, vmax: float, height: float):
        if not t1 > t0:
            raise ValueError(f"chart time range: t1 ({t1}) must be after t0 ({t0})")
        self.t0, self.t1, self.vmax, self.height = t0, t1, vmax if vmax > 0 else 1.0, height

    def x(self, t: float) -> float:
        return min(WIDTH, max(0.0, (t - self.t0) / (self.t1 - self.t0) * WIDTH))

    def y(self, value: float) -> float:
        return self.height - min(1.0, max(0.0, value / self.vmax)) * self.height

    def open_svg(self, css_class: str, label: str) -> str:
        return (f'<div class="chart {css_class}"><svg viewBox="0 0 {WIDTH} {_n(self.height)}" preserveAspectRatio="none" role="img" '
                f'aria-label="{escape(label)}" data-t0="{self.t0:.0f}" data-t1="{self.t1:.0f}" data-vmax="{self.vmax:g}">')

    def close_svg(self, ticks: Sequence[Tick], labels: str = "") -> str:
        """The end of the SVG, then its words: the time labels and whatever `labels` holds."""
        spans = []
        for tick in ticks:
            if self.t0 <= tick.t <= self.t1:
                spans.append(f'<span style="left:{_n(self.x(tick.t) / WIDTH * 100)}%">{escape(tick.label)}</span>')
        grid = "".join(f'<line class="grid" x1="{_n(self.x(t.t))}" x2="{_n(self.x(t.t))}" y1="0" y2="{_n(self.height)}"/>'
                       for t in ticks if self.t0 <= t.t <= self.t1)
        return f'{grid}</svg>{labels}<div class="ticks">{"".join(spans)}</div></div>'

    def top_label(self, label: Callable[[float], str] | None) -> str:
        return f'<span class="vmax">{escape(label(self.vmax))}</span>' if label is not None else ""


def strip(spans: Sequence[Span], t0: float, t1: float, ticks: Sequence[Tick] = (), label: str = "", height: float = 10) -> str:
    """A state strip: one rect per span; a span shorter than MIN_SPAN_WIDTH is widened around its middle."""
    frame = Frame(t0, t1, 1.0, height)
    parts = [frame.open_svg("strip", label)]
    for span in spans:
        x0, x1 = frame.x(span.start_s), frame.x(span.end_s)
        if x1 - x0 < MIN_SPAN_WIDTH:
            middle = (x0 + x1) / 2
            x0 = max(0.0, min(WIDTH - MIN_SPAN_WIDTH, middle - MIN_SPAN_WIDTH / 2))
            x1 = x0 + MIN_SPAN_WIDTH
        title = f"<title>{escape(span.title)}</title>" if span.title else ""
        parts.append(f'<rect class="{escape(span.state)}" x="{_n(x0)}" y="0" width="{_n(x1 - x0)}" height="{_n(height)}"'
                     f' data-start="{span.start_s:.0f}" data-end="{span.end_s:.0f}">{title}</rect>')
    parts.append(frame.close_svg(ticks))
    return "".join(parts)


def loss_class(loss_pct: float | None) -> str:
    """The class of the median line for a bucket with this much loss (no loss known: as none)."""
    loss = loss_pct or 0.0
    return next(name for bound, name in LOSS_CLASSES if loss <= bound)


def nice_ceiling(value: float) -> float:
    """The value axis' top: 1, 2 or 5 times a power of ten at or above `value` (at least 1)."""
    if value <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= value)


def _runs(indices: Sequence[int]) -> list[list[int]]:
    """Consecutive integers grouped: [1, 2, 3, 7, 8] -> [[1, 2, 3], [7, 8]]."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def latency_chart(
    buckets: Sequence[LatencyBucket], bucket_s: float, t0: float, t1: float, ticks: Sequence[Tick] = (),
    label: str = "", top_label: Callable[[float], str] | None = None, height: float = 100,
) -> str:
    """Median line over the min–max band; the line's colour is its bucket's loss class.

    Buckets are drawn at their middle (start + bucket_s / 2). A bucket without a median breaks
    the line and the band; one with 100 % loss is shaded over the chart's height (`lost`)."""
    highs = [b.high_ms for b in buckets if b.high_ms is not None] + [b.median_ms for b in buckets if b.median_ms is not None]
    frame = Frame(t0, t1, nice_ceiling(max(highs, default=1.0) * 1.05), height)
    parts = [frame.open_svg("latency", label)]
    for b in buckets:
        if b.loss_pct is not None and b.loss_pct >= 100.0:
            x0, x1 = frame.x(b.start_s), frame.x(b.start_s + bucket_s)
            parts.append(f'<rect class="lost" x="{_n(x0)}" y="0" width="{_n(max(x1 - x0, MIN_SPAN_WIDTH / 2))}" height="{_n(height)}"/>')
    with_median = [i for i, b in enumerate(buckets) if b.median_ms is not None]
    for run in _runs(with_median):
        mids = [buckets[i].start_s + bucket_s / 2 for i in run]
        top = [f"{_n(frame.x(t))},{_n(frame.y(buckets[i].high_ms if buckets[i].high_ms is not None else buckets[i].median_ms))}"  # type: ignore[arg-type]
               for t, i in zip(mids, run)]
        bottom = [f"{_n(frame.x(t))},{_n(frame.y(buckets[i].low_ms if buckets[i].low_ms is not None else buckets[i].median_ms))}"  # type: ignore[arg-type]
                  for t, i in zip(reversed(mids), reversed(run))]
        parts.append(f'<polygon class="band" points="{" ".join(top + bottom)}"/>')
        points = [f"{_n(frame.x(t))},{_n(frame.y(buckets[i].median_ms))}" for t, i in zip(mids, run)]  # type: ignore[arg-type]
        classes = [loss_class(buckets[i].loss_pct) for i in run]
        if len(run) == 1:  # a lone bucket: a level stroke across it, so it shows
            half = WIDTH * bucket_s / (t1 - t0) / 2
            x, y = frame.x(mids[0]), frame.y(buckets[run[0]].median_ms)  # type: ignore[arg-type]
            parts.append(f'<polyline class="median {classes[0]}" points="{_n(max(0.0, x - half))},{_n(y)} {_n(min(WIDTH, x + half))},{_n(y)}"/>')
            continue
        # The median in pieces of one loss class; the stroke into a bucket takes that bucket's class.
        piece = [points[0]]
        for k in range(1, len(run)):
            if classes[k] != classes[k - 1] and len(piece) > 1:
                parts.append(f'<polyline class="median {classes[k - 1]}" points="{" ".join(piece)}"/>')
                piece = [points[k - 1]]
            piece.append(points[k])
        parts.append(f'<polyline class="median {classes[-1]}" points="{" ".join(piece)}"/>')
    parts.append(frame.close_svg(ticks, frame.top_label(top_label)))
    return "".join(parts)


def line_chart(
    lines: Sequence[Line], t0: float, t1: float, ticks: Sequence[Tick] = (), label: str = "", top_label: Callable[[float], str] | None = None,
    limit: float | None = None, limit_label: str = "", vmax: float | None = None, height: float = 100, gap_s: float | None = None,
) -> str:
    """Series on one axis from 0 to `vmax` (default: a round number above the highest value and the
    limit). A `limit` (an uplink's capacity) is a dashed line with its label. Points further apart
    than `gap_s` (or a None value) break the line: no data is not drawn as a straight slope."""
    values = [v for line in lines for _, v in line.points if v is not None]
    top = vmax if vmax is not None else nice_ceiling(max(values + ([limit] if limit else []), default=1.0) * 1.05)
    frame = Frame(t0, t1, top, height)
    parts = [frame.open_svg("lines", label)]
    for line in lines:
        for run in _segments(line.points, gap_s):
            coords = [f"{_n(frame.x(t))},{_n(frame.y(v))}" for t, v in run]
            if line.area:
                closing = [f"{_n(frame.x(run[-1][0]))},{_n(height)}", f"{_n(frame.x(run[0][0]))},{_n(height)}"]
                parts.append(f'<polygon class="{escape(line.css_class)}" points="{" ".join(coords + closing)}"/>')
            elif len(coords) == 1:
                x, y = frame.x(run[0][0]), frame.y(run[0][1])
                parts.append(f'<polyline class="{escape(line.css_class)}" points="{_n(max(0, x - 1))},{_n(y)} {_n(min(WIDTH, x + 1))},{_n(y)}"/>')
            else:
                parts.append(f'<polyline class="{escape(line.css_class)}" points="{" ".join(coords)}"/>')
    labels = frame.top_label(top_label)
    if limit is not None and limit > 0:
        y = frame.y(limit)
        parts.append(f'<line class="limit" x1="0" x2="{WIDTH}" y1="{_n(y)}" y2="{_n(y)}" data-value="{limit:g}"/>')
        if limit_label:
            labels += f'<span class="limit" style="top:{_n(y / height * 100)}%">{escape(limit_label)}</span>'
    parts.append(frame.close_svg(ticks, labels))
    return "".join(parts)


def _segments(points: Sequence[tuple[float, float | None]], gap_s: float | None) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = []
    previous_t: float | None = None
    for t, v in points:
        if v is None:
            previous_t = None
            continue
        if not runs or previous_t is None or (gap_s is not None and t - previous_t > gap_s):
            runs.append([])
        runs[-1].append((t, v))
        previous_t = t
    return runs
