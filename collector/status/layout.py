"""What every status page shares: the HTML shell, the style sheet, the refresh, and how times,
durations, rates and states are written for people (in the inventory's language and time zone).

Built for the outstation lines: one HTML file per page with its style inline and its charts as
inline SVG (collector/svg.py), no font, script or image fetched from anywhere. The page's live
part is `<main id="main">`; a small inline script fetches that part alone (`?part=main`) every
`[collector] status_refresh_s` and puts it in place, so the header, the style and the scroll position stay. Without
script the `<noscript>` refresh reloads the whole page instead. Narrow screens get one column,
and tables scroll sideways inside their box.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import base64
import zoneinfo
from collections.abc import Mapping, Sequence
from html import escape

from collector import texts
from collector.reports import i18n
from collector.svg import Tick

REFRESH_S = 30  # `[collector] status_refresh_s` by default
NOSCRIPT_REFRESH_S = 60
PART_PARAM = "part"
MAIN_PART = "main"
VIEW_PARAM = "latency"

STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;padding:.8rem;max-width:72rem;color:#1b1b1b;background:#fafafa;font-size:15px}
h1{font-size:1.35rem;margin:0 0 .3rem}h2{font-size:1.15rem;margin:1.6rem 0 .4rem;border-bottom:1px solid #ccc}
h3{font-size:1rem;margin:1rem 0 .3rem}a{color:#0a4fa3}
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.3rem 0 .8rem;width:100%}
th,td{text-align:left;padding:.2rem .5rem;border-bottom:1px solid #e2e2e2;vertical-align:top}th{font-weight:600;background:#eee}
td.graph{padding:0 .5rem .5rem;border-bottom:1px solid #ccc}
.up{color:#0a6b1f;font-weight:600}.down{color:#b00020;font-weight:700}.unknown{color:#777}
.summary{margin:.2rem 0 1rem}.problems{color:#b00020}.muted{color:#666}.stale main{opacity:.55}
.chart{position:relative;margin:.2rem 0 1.1rem}.chart svg{display:block;width:100%;height:5rem;background:#fff;border:1px solid #ddd}
.chart.strip svg{height:1.3rem}.chart.latency svg{height:4.5rem}
.chart .ticks{position:relative;height:1rem;font-size:.72rem;color:#555}.chart .ticks span{position:absolute;transform:translateX(-50%);white-space:nowrap}
.chart .vmax,.chart .limit{position:absolute;left:.25rem;top:.1rem;font-size:.72rem;color:#444;background:#fffc}
.chart span.limit{left:auto;right:.25rem;transform:translateY(-100%);color:#8a1c1c}
svg *{vector-effect:non-scaling-stroke}svg .grid{stroke:#e4e4e4}
rect.up{fill:#2da44e}rect.degraded{fill:#e3b341}rect.down{fill:#cf222e}rect.waiting{fill:#d5d9de}
rect.critical{fill:#cf222e}rect.warning{fill:#e3b341}rect.info{fill:#8fb8e0}rect.quiet{fill:#eef1f4}
.band{fill:#a9c9e8}.median{fill:none;stroke-width:1.6}.l0{stroke:#0b4f8a}.l1{stroke:#d18f00}.l2{stroke:#e8590c}.l3{stroke:#c00000}
rect.lost{fill:#f6c9c4}polygon.in{fill:#9fd3a8}polyline.out{fill:none;stroke:#1f5fbf;stroke-width:1.5}
polyline.errors{fill:none;stroke:#c00000;stroke-width:1.5}polyline.discards{fill:none;stroke:#d18f00;stroke-width:1.5}
polyline.cpu{fill:none;stroke:#1f5fbf;stroke-width:1.5}polyline.mem{fill:none;stroke:#7b3fb5;stroke-width:1.5}
line.limit{stroke:#8a1c1c;stroke-dasharray:6 4}
.legend span{display:inline-block;margin-right:.8rem;font-size:.8rem}.legend i{display:inline-block;width:.8rem;height:.8rem;margin-right:.25rem;vertical-align:-.1rem}
i.up{background:#2da44e}i.degraded{background:#e3b341}i.down{background:#cf222e}i.waiting{background:#d5d9de}
i.l0{background:#0b4f8a}i.l1{background:#d18f00}i.l2{background:#e8590c}i.l3{background:#c00000}i.band{background:#a9c9e8}
i.in{background:#9fd3a8}i.out{background:#1f5fbf}i.cap{background:#8a1c1c}i.cpu{background:#1f5fbf}i.mem{background:#7b3fb5}
.avail{font-weight:600}.views a,.views b{margin-right:.6rem}
@media (max-width:40rem){body{padding:.4rem;font-size:14px}th,td{padding:.15rem .3rem}}
"""

def script(refresh_s: float) -> str:
    """Replaces <main> with the same page's main part every `refresh_s`; on failure the page is
    dimmed (stale) and tried again at the next turn."""
    return (
        "(function(){var m=document.getElementById('main');setInterval(function(){"
        "var u=new URL(location.href);u.searchParams.set('" + PART_PARAM + "','" + MAIN_PART + "');"
        "fetch(u,{cache:'no-store'}).then(function(r){if(!r.ok)throw r.status;return r.text()})"
        ".then(function(t){m.innerHTML=t;document.body.classList.remove('stale')})"
        ".catch(function(){document.body.classList.add('stale')})}," + str(int(refresh_s * 1000)) + ")})();"
    )


def content_security_policy(refresh_s: float) -> str:
    """Only the page's own script may run (by its hash), and nothing is fetched but its own parts."""
    digest = base64.b64encode(hashlib.sha256(script(refresh_s).encode()).digest()).decode()
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def words(lang: str) -> Mapping[str, str]:
    return texts.of(lang).status_page


def page(lang: str, title: str, header: str, main: str, refresh_s: float = REFRESH_S) -> str:
    """The whole document: `header` stays, `main` is what the refresh replaces every `refresh_s`."""
    return "\n".join([
        "<!DOCTYPE html>",
        f'<html lang="{escape(lang)}"><head><meta charset="utf-8">',
        f'<noscript><meta http-equiv="refresh" content="{NOSCRIPT_REFRESH_S}"></noscript>',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request, so no 404 in the browser console
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
        header,
        f'<main id="main">{main}</main>',
        f"<script>{script(refresh_s)}</script>",
        "</body></html>",
    ])


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], empty: str, graphs: Mapping[int, str] | None = None) -> str:
    """Cells are HTML already (escape what comes from outside). `graphs`: row index -> a chart
    shown in a full-width row under it."""
    if not rows:
        return f'<p class="muted">{escape(empty)}</p>' if empty else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        body.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>")
        if graphs and graphs.get(i):
            body.append(f'<tr><td class="graph" colspan="{len(headers)}">{graphs[i]}</td></tr>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def local(t: float, zone: str, lang: str, with_date: bool = True, seconds: bool = False) -> str:
    """A time for people: '2026-12-06 01:41 CET' (with_date) or '01:41', in the inventory's zone."""
    moment = dt.datetime.fromtimestamp(t, zoneinfo.ZoneInfo(zone))
    clock_fmt = "%H:%M:%S" if seconds else "%H:%M"
    if with_date:
        return f"{moment.strftime(texts.of(lang).date_format)} {moment.strftime(clock_fmt)} {moment.strftime('%Z')}"
    return moment.strftime(clock_fmt)


def when(time_ns: int | None, now_ns: int, zone: str, lang: str) -> str:
    """'2026-12-06 01:41:14 CET (12 s ago)', or 'never'."""
    w = words(lang)
    if not time_ns:
        return w["never"]
    age_s = max(0, (now_ns - time_ns) // 10**9)
    stamp = local(time_ns / 1e9, zone, lang, seconds=True)
    if age_s < 120:
        ago = w["ago_s"].format(n=age_s)
    elif age_s < 7200:
        ago = w["ago_min"].format(n=age_s // 60)
    else:
        ago = w["ago_h"].format(n=age_s // 3600)
    return f"{stamp} ({ago})"


def duration(seconds: float, lang: str) -> str:
    return i18n.duration(seconds, words(lang))


def number(value: float | None, lang: str, decimals: int = 1) -> str:
    return i18n.number(value, lang, decimals, group=True)


def rate(bps: float | None, lang: str) -> str:
    """Bits per second for people: '850 kbit/s', '1,2 Mbit/s'."""
    if bps is None:
        return "–"
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if abs(bps) >= size:
            return f"{number(bps / size, lang, 1 if bps / size < 100 else 0)}\u00a0{unit}"
    return f"{number(bps, lang, 0)}\u00a0bit/s"


def ms(value: float | None, lang: str) -> str:
    return "–" if value is None else f"{number(value, lang, 1)}\u00a0ms"


def pct(value: float | None, lang: str, decimals: int = 2) -> str:
    return "–" if value is None else f"{number(value, lang, decimals)}\u00a0%"


# Up to this long a chart's time labels are every SHORT_TICK_S (the last hour's view).
SHORT_SPAN_S = 2 * 3600
SHORT_TICK_S = 600


def ticks(start_s: float, end_s: float, zone: str, lang: str) -> list[Tick]:
    """Time labels on the local clock: every 10 minutes over an hour or two ('14:20'), every 6 hours
    over a day or two ('06:00'), each midnight over longer ranges ('ma 12.')."""
    tz = zoneinfo.ZoneInfo(zone)
    span = end_s - start_s
    if span <= SHORT_SPAN_S:  # 10 minutes of UTC are 10 minutes of the local clock where the offset is whole or half hours
        first = -(-start_s // SHORT_TICK_S) * SHORT_TICK_S
        return [Tick(t, dt.datetime.fromtimestamp(t, tz).strftime("%H:%M")) for t in range(int(first), int(end_s) + 1, SHORT_TICK_S)]
    moment = dt.datetime.fromtimestamp(start_s, tz).replace(minute=0, second=0, microsecond=0)
    out: list[Tick] = []
    weekdays = texts.of(lang).weekdays
    while moment.timestamp() <= end_s and len(out) < 400:
        t = moment.timestamp()
        if t >= start_s:
            if span <= 2 * 86400 and moment.hour % 6 == 0:
                out.append(Tick(t, moment.strftime("%H:%M")))
            elif span > 2 * 86400 and moment.hour == 0:
                out.append(Tick(t, f"{weekdays[moment.weekday()]} {moment.day}."))
        # Whole local hours, across daylight-saving changes: step in UTC, then back to the zone.
        moment = (moment.astimezone(dt.timezone.utc) + dt.timedelta(hours=1)).astimezone(tz)
    return out


def state(up: bool | None, lang: str, waiting_key: str = "unknown") -> str:
    """up, DOWN, or a kind of waiting (no verdict yet: never reported, not polled yet, not measured yet)."""
    w = words(lang)
    if up is None:
        return f'<span class="unknown">{escape(w[waiting_key])}</span>'
    return f'<span class="up">{escape(w["up"])}</span>' if up else f'<span class="down">{escape(w["down"])}</span>'


def legend(items: Sequence[tuple[str, str]]) -> str:
    """Colour keys: (class, words)."""
    return '<div class="legend">' + "".join(f'<span><i class="{c}"></i>{escape(t)}</span>' for c, t in items) + "</div>"
