"""A diagnosis as text, Markdown or JSON; Norwegian (bokmål) or English.

The words are the catalog's diagnose sections (collector/texts); numbers and times go through
collector.reports.i18n (decimal comma and `29.11.2026 08:14` in Norwegian). JSON keeps raw
numbers and ISO times, plus the sentences in the chosen language.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from collector import clock, texts
from collector.diagnose.analysis import Diagnosis, Suggestion, Verdict
from collector.reports.i18n import number, timestamp

MAX_RANGES = 6
UNITS = (("_per_s", "/s"), ("_pct", "%"), ("_ms", "ms"), ("_bps", "bit/s"), ("_minutes", "min"), ("bucket_s", "s"), ("uptime_s", "s"), ("unreachable_s", "s"))


class _Blank(dict):  # type: ignore[type-arg]
    """Template values: a field the evidence lacks prints as "–" instead of failing."""

    def __missing__(self, key: str) -> str:
        return "–"


def fmt(value: Any, lang: str) -> str:
    if isinstance(value, bool):
        return texts.of(lang).diagnose["yes" if value else "no"]
    if isinstance(value, int):
        return number(value, lang)
    if isinstance(value, float):
        decimals = 0 if abs(value) >= 1000 or value.is_integer() else 2 if abs(value) < 1 else 1
        return number(value, lang, decimals)
    if value == "unknown":
        return texts.of(lang).diagnose["unknown"]
    return str(value)


def _zone(tz: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return dt.timezone.utc


def when(time_ns: int, lang: str, tz: str) -> str:
    return timestamp(dt.datetime.fromtimestamp(time_ns / 1e9, _zone(tz)), lang)


def span(start_ns: int, end_ns: int, lang: str, tz: str) -> str:
    zone = _zone(tz)
    start, end = (dt.datetime.fromtimestamp(t / 1e9, zone) for t in (start_ns, end_ns))
    # Same day and zone: the end as a clock only, and the zone said once (08:14–09:02 CET).
    if start.date() == end.date() and start.strftime("%Z") == end.strftime("%Z"):
        first = timestamp(start.replace(tzinfo=None), lang)
        return f"{first}–{end.strftime('%H:%M')} {end.strftime('%Z')}".rstrip()
    return f"{timestamp(start, lang)}–{timestamp(end, lang)}"


def suggestion_text(s: Suggestion, lang: str, tz: str = "Europe/Oslo") -> str:
    catalog = texts.of(lang)
    params = _Blank(s.params)
    for key, placeholder in catalog.diagnose_placeholders.items():
        if not params.get(key):
            params[key] = placeholder
    params["what_text"] = catalog.diagnose_data.get(s.params.get("what", ""), s.params.get("what", ""))
    if "since_ns" in s.params:  # the words about when, in the reader's clock
        since = s.params["since_ns"]
        params["since_text"] = (
            catalog.diagnose["since_time"].format(time=clock.local(int(since) / 1e9, tz, "%H:%M")) if since
            else catalog.diagnose["whole_window"]
        )
    params["have"] = fmt(int(s.params["have"]), lang) if s.params.get("have", "").isdigit() else s.params.get("have", "")
    return catalog.diagnose_suggestions.get(s.code, s.code).format_map(params)


def summary(v: Verdict, lang: str, tz: str = "Europe/Oslo") -> str:
    catalog = texts.of(lang)
    fragments = catalog.diagnose_fragments
    values = _Blank({k: fmt(x, lang) for k, x in v.evidence.items() if not isinstance(x, list)})
    values["subject"] = v.subject
    if v.ranges:  # when it began and ended, in the reader's clock (the times line gives the dates)
        values["start_time"] = clock.local(v.ranges[0][0] / 1e9, tz, "%H:%M", label=False)
        values["end_time"] = clock.local(v.ranges[0][1] / 1e9, tz, "%H:%M", label=False)
    if v.kind == "power_cut":
        values["agents_text"] = fragments["agents_silent" if v.evidence.get("agents_silent") else "agents_heard"].format_map(values)
    if v.kind == "loss_beyond_gateway":
        values["where"] = ""
        if "loss_begins_hop" in v.evidence:
            previous = "previous_gateway" if v.evidence.get("previous_hop_is_gateway") is True else "previous"
            values["previous"] = fragments[previous].format_map(values) if "previous_hop" in v.evidence else ""
            values["where"] = fragments["where"].format_map(values)
    if v.kind == "device_rebooted":
        values["loss"] = fragments["loss_during"].format_map(values) if "loss_during_pct" in v.evidence else ""
    if v.kind == "device_overloaded":
        values["latency"] = fragments["latency_rose" if "rtt_busy_ms" in v.evidence else "latency_unmeasured"].format_map(values)
    if v.kind == "host_saturated":
        resource = str(v.evidence.get("resource", ""))
        base, _, mount = resource.partition(":")
        values["resource"] = catalog.diagnose_resources.get(base, base) + (f" {mount}" if mount else "")
        values["saturated_fraction_pct"] = fmt(round(100 * float(v.evidence.get("saturated_fraction", 0.0))), lang)
        clean = v.evidence.get("network_clean")
        state = ("network_clean" if clean else "network_trouble") if isinstance(clean, bool) else "network_unmeasured"
        values["network_state"] = fragments[state]
    return catalog.diagnose_summaries.get(v.kind, "").format_map(values)


def _ranges_text(v: Verdict, lang: str, tz: str) -> str:
    shown = [span(a, b, lang, tz) for a, b in v.ranges[:MAX_RANGES]]
    if len(v.ranges) > MAX_RANGES:
        shown.append(texts.of(lang).diagnose["more_ranges"].format(n=len(v.ranges) - MAX_RANGES))
    return ", ".join(shown)


def unit_of(key: str) -> str:
    """The unit a field name carries (docs/metrics.md: units are in the names)."""
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def _evidence_pairs(v: Verdict, lang: str) -> list[tuple[str, str]]:
    """(label, value with unit) per piece of evidence; a list (per target) becomes one row each."""
    catalog = texts.of(lang)
    labels, sides = catalog.diagnose_labels, catalog.diagnose_sides
    out = []
    for key, value in v.evidence.items():
        if isinstance(value, list):
            for row in value:
                name = str(row.get("target", ""))
                rest = ", ".join(
                    f"{labels.get(k, k)} {sides.get(str(x), x) if k == 'side' else fmt(x, lang)}{' ' + unit_of(k) if unit_of(k) else ''}"
                    for k, x in row.items()
                    if k != "target"
                )
                out.append((name, rest))
        else:
            unit = unit_of(key)
            out.append((labels.get(key, key), fmt(value, lang) + (f" {unit}" if unit else "")))
    return out


def _evidence_items(v: Verdict, lang: str) -> list[str]:
    return [f"{label}: {value}" for label, value in _evidence_pairs(v, lang)]


INSUFFICIENT = "insufficient_data"


def _confidence(v: Verdict, lang: str) -> str:
    """' (sikkerhet 0,93)' for a finding; nothing for "not enough data", which is no finding."""
    if v.kind == INSUFFICIENT:
        return ""
    return f" ({texts.of(lang).diagnose['confidence']} {fmt(round(v.confidence, 2), lang)})"


def render_text(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> str:
    catalog = texts.of(lang)
    w = catalog.diagnose
    lines = [w["heading"].format(name=d.site_name, site=d.site), f"{w['window']}: {span(d.start_ns, d.end_ns, lang, tz)}", ""]
    if not d.verdicts:
        lines += [w["none"], ""]
    for i, v in enumerate(d.verdicts, 1):
        lines.append(f"{i}. {catalog.diagnose_titles[v.kind]}{_confidence(v, lang)}: {v.subject}")
        lines.append(f"   {summary(v, lang, tz)}")
        if v.ranges:
            lines.append(f"   {w['times']}: {_ranges_text(v, lang, tz)}")
        lines.append(f"   {w['evidence']}: " + "; ".join(_evidence_items(v, lang)))
        for s in v.suggestions:
            lines.append(f"   → {suggestion_text(s, lang, tz)}")
        lines.append("")
    lines.append(f"{w['checks']}: " + ", ".join(f"{catalog.diagnose_checks.get(name, name)} {w[state]}" for name, state in d.checks.items()))
    extra = [s for s in d.missing if not any(s in v.suggestions for v in d.verdicts)]
    if extra:
        lines += ["", f"{w['missing']}:"] + [f"  - {suggestion_text(s, lang, tz)}" for s in extra]
    return "\n".join(lines) + "\n"


def render_markdown(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> str:
    catalog = texts.of(lang)
    w = catalog.diagnose
    lines = [f"# {w['heading'].format(name=d.site_name, site=d.site)}", "", f"**{w['window']}:** {span(d.start_ns, d.end_ns, lang, tz)}", ""]
    if not d.verdicts:
        lines += [w["none"], ""]
    else:
        lines += [f"| # | {w['finding_column']} | {w['confidence_column']} | {w['subject_column']} |", "|---|---|---|---|"]
        for i, v in enumerate(d.verdicts, 1):
            confidence = "–" if v.kind == INSUFFICIENT else fmt(round(v.confidence, 2), lang)
            lines.append(f"| {i} | {catalog.diagnose_titles[v.kind]} | {confidence} | `{v.subject}` |")
        lines.append("")
    for i, v in enumerate(d.verdicts, 1):
        lines += [f"## {i}. {catalog.diagnose_titles[v.kind]}", "", summary(v, lang, tz), ""]
        if v.ranges:
            lines += [f"**{w['times']}:** {_ranges_text(v, lang, tz)}", ""]
        lines += [f"**{w['evidence']}:**", "", "| | |", "|---|---|"]
        lines += [f"| {label} | {value} |" for label, value in _evidence_pairs(v, lang)] + [""]
        lines += [f"- → {suggestion_text(s, lang, tz)}" for s in v.suggestions]
        if v.suggestions:
            lines.append("")
    lines += [f"## {w['checks']}", ""] + [f"- {catalog.diagnose_checks.get(name, name)}: {w[state]}" for name, state in d.checks.items()] + [""]
    extra = [s for s in d.missing if not any(s in v.suggestions for v in d.verdicts)]
    if extra:
        lines += [f"## {w['missing']}", ""] + [f"- {suggestion_text(s, lang, tz)}" for s in extra] + [""]
    return "\n".join(lines)


def _iso(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc).isoformat(timespec="seconds")


def _suggestion_json(s: Suggestion, lang: str, tz: str) -> dict[str, Any]:
    return {"code": s.code, "params": s.params, "text": suggestion_text(s, lang, tz)}


def to_json(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> dict[str, Any]:
    return {
        "site": d.site,
        "site_name": d.site_name,
        "start": _iso(d.start_ns),
        "end": _iso(d.end_ns),
        "bucket_s": d.bucket_ns / 1e9,
        "resolution": d.resolution,
        "language": lang,
        "verdicts": [
            {
                "kind": v.kind,
                "title": texts.of(lang).diagnose_titles[v.kind],
                # "Not enough data" is no finding: it has no confidence to give.
                "confidence": None if v.kind == INSUFFICIENT else round(v.confidence, 3),
                "subject": v.subject,
                "summary": summary(v, lang, tz),
                "evidence": v.evidence,
                "ranges": [{"start": _iso(a), "end": _iso(b), "start_ns": a, "end_ns": b} for a, b in v.ranges],
                "suggestions": [_suggestion_json(s, lang, tz) for s in v.suggestions],
            }
            for v in d.verdicts
        ],
        "checks": d.checks,
        "missing": [_suggestion_json(s, lang, tz) for s in d.missing],
    }


def render_json(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> str:
    return json.dumps(to_json(d, lang, tz), ensure_ascii=False, indent=2) + "\n"
