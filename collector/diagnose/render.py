"""A diagnosis as text, Markdown or JSON; Norwegian (bokmål) or English.

Numbers and times go through collector.reports.i18n (decimal comma and `29.11.2026 08:14` in
Norwegian). JSON keeps raw numbers and ISO times, plus the sentences in the chosen language.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from typing import Any

from collector import clock
from collector.diagnose.analysis import Diagnosis, Suggestion, Verdict
from collector.reports.i18n import number, timestamp

TITLES: dict[str, dict[str, str]] = {
    "nb": {
        "uplink_saturated": "Opplinken er mettet",
        "interface_errors": "Feil eller forkastede pakker på et grensesnitt",
        "loss_beyond_gateway": "Pakketapet begynner bak brannmuren/gatewayen",
        "host_saturated": "Maskinen selv er overbelastet",
        "application_slow": "Applikasjonsserveren er treg, nettet er normalt",
        "device_rebooted": "En nettverksenhet har startet på nytt",
        "device_overloaded": "En nettverksenhet er overbelastet (CPU)",
        "insufficient_data": "For lite data til å si noe sikkert",
    },
    "en": {
        "uplink_saturated": "The uplink is saturated",
        "interface_errors": "Errors or discards on an interface",
        "loss_beyond_gateway": "Loss begins beyond the firewall/gateway",
        "host_saturated": "The machine itself is saturated",
        "application_slow": "The application server is slow, the network is normal",
        "device_rebooted": "A network device restarted",
        "device_overloaded": "A network device is overloaded (CPU)",
        "insufficient_data": "Not enough data to judge",
    },
}

SUGGESTIONS: dict[str, dict[str, str]] = {
    "nb": {
        "name_uplink": "Oppgi stedets opplink: `uplink = \"<enhets-id>\"` under [[site]] id = \"{site}\" (kandidater med SNMP: {candidates}).",
        "poll_uplink_snmp": "Poll opplinkenheten {device} over SNMP: legg til en [device.snmp]-tabell for den i inventory.toml.",
        "uplink_ifname": "Ingen av grensesnittene i snmp.important_interfaces for {device} finnes; enheten har: {ifnames}.",
        "uplink_speed": "Oppgi linjehastigheten på opplinken: `interface_speed_bps` under [device.snmp] for {device} (ifSpeed mangler eller er feil).",
        "add_gateway_probe": "Legg til en icmp-probe mot stedets gateway/brannmur ([[probe]] kind = \"icmp\", target = \"{host}\", sites = [\"{site}\"]).",
        "add_internet_probe": "Legg til en icmp-probe mot et mål bak brannmuren (internett eller rådhuset) med sites = [\"{site}\"].",
        "add_traceroute_probe": "Legg til en traceroute-probe mot samme mål (kind = \"traceroute\", sites = [\"{site}\"]) for å se hvilket hopp tapet begynner på.",
        "add_agent": "Installer en agent på stedet ([[agent]] med site = \"{site}\").",
        "poll_site_devices_snmp": "Poll svitsjen/ruteren på stedet {site} over SNMP ([[device]] med [device.snmp]) for å se feil på grensesnittene.",
        "add_server_probe": "Legg til en icmp- eller tcp-probe mot {host} (serveren bak http-proben {probe}) så nettverksforsinkelsen dit måles.",
        "more_data": "Vent på mer data eller øk --since: bare {have} {what_text} i tidsrommet.",
        "agent_silent": "Agenten {agent} har ikke rapportert noe i tidsrommet: sjekk at den kjører og når innsamleren (nettvakt-status viser når den sist ble hørt).",
        "device_not_polled": "{device} har ingen SNMP-målinger i tidsrommet: innsamleren har ikke nådd den, eller har ikke kjørt.",
        "device_silent": "{device} har ikke svart på SNMP {since_text}.",
    },
    "en": {
        "name_uplink": "Name the site's uplink: `uplink = \"<device id>\"` under [[site]] id = \"{site}\" (candidates with SNMP: {candidates}).",
        "poll_uplink_snmp": "Poll the uplink device {device} over SNMP: add a [device.snmp] table for it in inventory.toml.",
        "uplink_ifname": "None of the interfaces in snmp.important_interfaces of {device} exists; the device has: {ifnames}.",
        "uplink_speed": "Give the uplink's line rate: `interface_speed_bps` under [device.snmp] of {device} (ifSpeed missing or wrong).",
        "add_gateway_probe": "Add an icmp probe to the site's gateway/firewall ([[probe]] kind = \"icmp\", target = \"{host}\", sites = [\"{site}\"]).",
        "add_internet_probe": "Add an icmp probe to a target beyond the firewall (the internet or the town hall) with sites = [\"{site}\"].",
        "add_traceroute_probe": "Add a traceroute probe to the same target (kind = \"traceroute\", sites = [\"{site}\"]) to see at which hop loss begins.",
        "add_agent": "Install an agent at the site ([[agent]] with site = \"{site}\").",
        "poll_site_devices_snmp": "Poll the switch/router at {site} over SNMP ([[device]] with [device.snmp]) to see interface errors.",
        "add_server_probe": "Add an icmp or tcp probe to {host} (the server behind http probe {probe}) so network latency to it is measured.",
        "more_data": "Wait for more data or widen --since: only {have} {what_text} in the window.",
        "agent_silent": "The agent {agent} reported nothing in the window: check that it runs and reaches the collector (the status page shows when it was last heard).",
        "device_not_polled": "{device} has no SNMP samples in the window: the collector has not reached it, or was not running.",
        "device_silent": "{device} has not answered SNMP {since_text}.",
    },
}

WHAT: dict[str, dict[str, str]] = {
    "nb": {
        "uplink_interface": "SNMP-målinger av opplinken",
        "aligned_buckets": "tidsintervaller med både utnyttelse og forsinkelse",
        "probe_rounds": "proberunder",
        "host_samples": "målinger fra agentene",
        "http_rounds": "http-runder",
        "interface": "grensesnittmålinger",
        "device_polls": "SNMP-målinger av enhetene",
    },
    "en": {
        "uplink_interface": "SNMP samples of the uplink",
        "aligned_buckets": "time buckets with both utilisation and latency",
        "probe_rounds": "probe rounds",
        "host_samples": "samples from the agents",
        "http_rounds": "http rounds",
        "interface": "interface samples",
        "device_polls": "SNMP polls of the devices",
    },
}

WORDS: dict[str, dict[str, str]] = {
    "nb": {
        "heading": "Diagnose for {name} ({site})",
        "window": "Tidsrom",
        "confidence": "sikkerhet",
        "evidence": "Grunnlag",
        "times": "Gjelder",
        "none": "Ingen feil funnet: nettet, opplinken og maskinene så normale ut i tidsrommet.",
        "checks": "Kontroller",
        "missing": "For å kunne si mer",
        "verdict": "funn",
        "clean": "ok",
        "no_data": "for lite data",
        "not_applicable": "ikke aktuelt",
        "yes": "ja",
        "no": "nei",
        "unknown": "ukjent",
        "more_ranges": "og {n} tidsrom til",
    },
    "en": {
        "heading": "Diagnosis for {name} ({site})",
        "window": "Window",
        "confidence": "confidence",
        "evidence": "Evidence",
        "times": "Applies to",
        "none": "No problem found: the network, the uplink and the machines looked normal in the window.",
        "checks": "Checks",
        "missing": "To judge more",
        "verdict": "finding",
        "clean": "ok",
        "no_data": "too little data",
        "not_applicable": "not applicable",
        "yes": "yes",
        "no": "no",
        "unknown": "unknown",
        "more_ranges": "and {n} more ranges",
    },
}

SUMMARIES: dict[str, dict[str, str]] = {
    "nb": {
        "uplink_saturated": "Forsinkelsen stiger med utnyttelsen av {subject}: korrelasjon {correlation} over {buckets} intervaller à {bucket_s} s; utnyttelse opptil {peak_util_pct} %, over 90 % i {busy_minutes} min; forsinkelse {rtt_busy_ms} ms når linjen er full mot {rtt_quiet_ms} ms når den er ledig.",
        "interface_errors": "{subject}: {errors} feil og {discards} forkastede pakker i tidsrommet (topp {peak_per_s}/s). Feil tyder på dårlig kabel eller dupleks-mismatch; bare forkastede pakker tyder på full kø.",
        "loss_beyond_gateway": "Probene mot gatewayen er rene ({gateway_loss_pct} % tap over {gateway_rounds} runder), probene bak den taper {beyond_loss_pct} % ({beyond_rounds} runder).{where}",
        "host_saturated": "{host}: {resource} over {threshold_pct} % i {saturated_fraction_pct} % av målingene (topp {peak_pct} %), mens nettet {network_state}.",
        "application_slow": "Nettverksforsinkelsen til {server} er normal ({rtt_ms} ms), men http-tiden for {probe} er {http_ms} ms.",
        "device_rebooted": "{subject} startet på nytt {reboots} gang(er) i tidsrommet (sysUpTime gikk tilbake: enheten eller SNMP-agenten i den startet; oppetid {last_uptime_s} s da den svarte igjen); den svarte ikke i inntil {unreachable_s} s{loss}.",
        "device_overloaded": "CPU-en på {subject} var over 90 % i {busy_samples} av {samples} målinger (topp {cpu_peak_pct} %){latency}.",
        "insufficient_data": "{checks_without_data} av {checks} kontroller hadde for lite data ({probe_rounds} proberunder, {host_samples} agentmålinger).",
    },
    "en": {
        "uplink_saturated": "Latency rises with the utilisation of {subject}: correlation {correlation} over {buckets} buckets of {bucket_s} s; utilisation up to {peak_util_pct} %, above 90 % for {busy_minutes} min; latency {rtt_busy_ms} ms when the line is full against {rtt_quiet_ms} ms when it is idle.",
        "interface_errors": "{subject}: {errors} errors and {discards} discards in the window (peak {peak_per_s}/s). Errors point to a bad cable or a duplex mismatch; discards alone to a full queue.",
        "loss_beyond_gateway": "Probes to the gateway are clean ({gateway_loss_pct} % loss over {gateway_rounds} rounds), probes beyond it lose {beyond_loss_pct} % ({beyond_rounds} rounds).{where}",
        "host_saturated": "{host}: {resource} above {threshold_pct} % in {saturated_fraction_pct} % of the samples (peak {peak_pct} %), while the network {network_state}.",
        "application_slow": "Network latency to {server} is normal ({rtt_ms} ms), but the HTTP time of {probe} is {http_ms} ms.",
        "device_rebooted": "{subject} restarted {reboots} time(s) in the window (sysUpTime went back: the device or its SNMP agent started again; up {last_uptime_s} s when it answered again); it did not answer for up to {unreachable_s} s{loss}.",
        "device_overloaded": "The CPU of {subject} was above 90 % in {busy_samples} of {samples} samples (peak {cpu_peak_pct} %){latency}.",
        "insufficient_data": "{checks_without_data} of {checks} checks had too little data ({probe_rounds} probe rounds, {host_samples} agent samples).",
    },
}

WHERE = {
    "nb": " Tapet begynner ved hopp {loss_begins_hop} ({loss_begins_addr}, {hop_loss_pct} % tap){previous}.",
    "en": " Loss begins at hop {loss_begins_hop} ({loss_begins_addr}, {hop_loss_pct} % loss){previous}.",
}
PREVIOUS = {
    "nb": "; hopp {previous_hop} ({previous_hop_addr}) har {previous_hop_loss_pct} %",
    "en": "; hop {previous_hop} ({previous_hop_addr}) has {previous_hop_loss_pct} %",
}
PREVIOUS_GATEWAY = {
    "nb": "; hopp {previous_hop} ({previous_hop_addr}) er gatewayen, og probene dit er rene (som hopp svarer den med ICMP som begrenses i takt)",
    "en": "; hop {previous_hop} ({previous_hop_addr}) is the gateway, and the probes to it are clean (as a hop it answers with rate-limited ICMP)",
}
LOSS_DURING = {
    "nb": ", og tapet i nettet var {loss_during_pct} % i den tiden",
    "en": ", and network loss was {loss_during_pct} % in that time",
}
OVERLOAD_LATENCY = {
    "nb": {
        True: ", og forsinkelsen gjennom den steg: {rtt_busy_ms} ms når den var travel mot {rtt_quiet_ms} ms ellers (korrelasjon {correlation})",
        False: "; forsinkelsen gjennom den ble ikke målt i den tiden, så om den gjorde nettet tregt er ukjent",
    },
    "en": {
        True: ", and latency through it rose: {rtt_busy_ms} ms when busy against {rtt_quiet_ms} ms otherwise (correlation {correlation})",
        False: "; latency through it was not measured meanwhile, so whether it slowed the network is unknown",
    },
}
NETWORK_STATE = {
    "nb": {True: "var rent", False: "også hadde problemer", None: "ikke ble målt"},
    "en": {True: "was clean", False: "had trouble too", None: "was not measured"},
}
RESOURCES = {"nb": {"cpu": "CPU", "memory": "minne", "disk": "disk"}, "en": {"cpu": "CPU", "memory": "memory", "disk": "disk"}}
MAX_RANGES = 6
UNITS = (("_per_s", "/s"), ("_pct", "%"), ("_ms", "ms"), ("_bps", "bit/s"), ("_minutes", "min"), ("bucket_s", "s"), ("uptime_s", "s"), ("unreachable_s", "s"))
SIDES = {"nb": {"gateway": "gatewayen", "beyond": "bak gatewayen"}, "en": {"gateway": "the gateway", "beyond": "beyond the gateway"}}
# Evidence as people read it; JSON keeps the keys. A key missing here is shown as it is.
LABELS: dict[str, dict[str, str]] = {
    "nb": {
        "device": "enhet", "ifname": "grensesnitt", "correlation": "korrelasjon", "buckets": "intervaller", "bucket_s": "intervallengde",
        "peak_util_pct": "høyeste utnyttelse", "mean_util_pct": "snittutnyttelse", "busy_buckets": "intervaller over 90 %",
        "busy_minutes": "tid over 90 %", "rtt_busy_ms": "forsinkelse, full linje", "rtt_quiet_ms": "forsinkelse, ledig linje",
        "rtt_ratio": "forhold", "speed_bps": "linjehastighet", "device_cpu_peak_pct": "enhetens høyeste CPU", "device_reboots": "omstarter",
        "errors": "feil", "discards": "forkastede pakker", "peak_per_s": "høyeste rate", "samples_with_errors": "målinger med feil",
        "samples": "målinger", "gateway_loss_pct": "tap mot gateway", "gateway_rounds": "runder mot gateway",
        "beyond_loss_pct": "tap bak gateway", "beyond_rounds": "runder bak gateway", "side": "side", "loss_pct": "tap", "rounds": "runder",
        "loss_begins_hop": "tapet begynner ved hopp", "loss_begins_addr": "adresse", "hop_loss_pct": "tap ved hoppet",
        "previous_hop": "hoppet før", "previous_hop_addr": "adresse før", "previous_hop_loss_pct": "tap ved hoppet før",
        "previous_hop_is_gateway": "hoppet før er gatewayen", "host": "maskin", "resource": "ressurs", "field": "felt",
        "threshold_pct": "terskel", "peak_pct": "høyeste", "mean_when_saturated_pct": "snitt når overbelastet",
        "saturated_fraction": "andel overbelastet", "network_clean": "nettet rent", "network_loss_pct": "tap i nettet",
        "network_rtt_ms": "forsinkelse i nettet", "probe": "probe", "server": "server", "http_ms": "http-tid", "rtt_ms": "forsinkelse",
        "slow_fraction": "andel trege", "checks_without_data": "kontroller uten data", "checks": "kontroller",
        "probe_rounds": "proberunder", "host_samples": "agentmålinger",
        "reboots": "omstarter", "last_uptime_s": "oppetid da den svarte igjen", "unreachable_s": "uten svar i inntil",
        "polls": "SNMP-målinger", "loss_during_pct": "tap i nettet i mens", "cpu_peak_pct": "høyeste CPU", "cpu_mean_pct": "snitt-CPU",
        "busy_samples": "målinger over 90 %",
    },
    "en": {
        "device": "device", "ifname": "interface", "correlation": "correlation", "buckets": "buckets", "bucket_s": "bucket length",
        "peak_util_pct": "peak utilisation", "mean_util_pct": "mean utilisation", "busy_buckets": "buckets above 90 %",
        "busy_minutes": "time above 90 %", "rtt_busy_ms": "latency, line full", "rtt_quiet_ms": "latency, line idle",
        "rtt_ratio": "ratio", "speed_bps": "line rate", "device_cpu_peak_pct": "device peak CPU", "device_reboots": "reboots",
        "errors": "errors", "discards": "discards", "peak_per_s": "peak rate", "samples_with_errors": "samples with errors",
        "samples": "samples", "gateway_loss_pct": "loss to the gateway", "gateway_rounds": "rounds to the gateway",
        "beyond_loss_pct": "loss beyond the gateway", "beyond_rounds": "rounds beyond the gateway", "side": "side", "loss_pct": "loss",
        "rounds": "rounds", "loss_begins_hop": "loss begins at hop", "loss_begins_addr": "address", "hop_loss_pct": "loss at that hop",
        "previous_hop": "hop before", "previous_hop_addr": "address before", "previous_hop_loss_pct": "loss at the hop before",
        "previous_hop_is_gateway": "the hop before is the gateway", "host": "machine", "resource": "resource", "field": "field",
        "threshold_pct": "threshold", "peak_pct": "peak", "mean_when_saturated_pct": "mean when saturated",
        "saturated_fraction": "share saturated", "network_clean": "network clean", "network_loss_pct": "network loss",
        "network_rtt_ms": "network latency", "probe": "probe", "server": "server", "http_ms": "HTTP time", "rtt_ms": "latency",
        "slow_fraction": "share slow", "checks_without_data": "checks without data", "checks": "checks",
        "probe_rounds": "probe rounds", "host_samples": "agent samples",
        "reboots": "restarts", "last_uptime_s": "uptime when it answered again", "unreachable_s": "no answer for up to",
        "polls": "SNMP polls", "loss_during_pct": "network loss meanwhile", "cpu_peak_pct": "peak CPU", "cpu_mean_pct": "mean CPU",
        "busy_samples": "samples above 90 %",
    },
}
# Said instead of an empty value (no device with SNMP to propose, no gateway address known).
PLACEHOLDERS = {
    "nb": {"candidates": "ingen ennå", "host": "<gatewayens adresse>"},
    "en": {"candidates": "none yet", "host": "<the gateway's address>"},
}


class _Blank(dict):  # type: ignore[type-arg]
    """Template values: a field the evidence lacks prints as "–" instead of failing."""

    def __missing__(self, key: str) -> str:
        return "–"


def fmt(value: Any, lang: str) -> str:
    if isinstance(value, bool):
        return WORDS[lang]["yes" if value else "no"]
    if isinstance(value, int):
        return number(value, lang)
    if isinstance(value, float):
        decimals = 0 if abs(value) >= 1000 or value.is_integer() else 2 if abs(value) < 1 else 1
        return number(value, lang, decimals)
    if value == "unknown":
        return WORDS[lang]["unknown"]
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
    params = _Blank(s.params)
    for key, placeholder in PLACEHOLDERS[lang].items():
        if not params.get(key):
            params[key] = placeholder
    params["what_text"] = WHAT[lang].get(s.params.get("what", ""), s.params.get("what", ""))
    if "since_ns" in s.params:  # the words about when, in the reader's clock
        since = s.params["since_ns"]
        params["since_text"] = (
            ("siden " if lang == "nb" else "since ") + clock.local(int(since) / 1e9, tz, "%H:%M") if since
            else ("i hele tidsrommet" if lang == "nb" else "in the whole window")
        )
    params["have"] = fmt(int(s.params["have"]), lang) if s.params.get("have", "").isdigit() else s.params.get("have", "")
    return SUGGESTIONS[lang].get(s.code, s.code).format_map(params)


def summary(v: Verdict, lang: str) -> str:
    values = _Blank({k: fmt(x, lang) for k, x in v.evidence.items() if not isinstance(x, list)})
    values["subject"] = v.subject
    if v.kind == "loss_beyond_gateway":
        values["where"] = ""
        if "loss_begins_hop" in v.evidence:
            previous = PREVIOUS_GATEWAY if v.evidence.get("previous_hop_is_gateway") is True else PREVIOUS
            values["previous"] = previous[lang].format_map(values) if "previous_hop" in v.evidence else ""
            values["where"] = WHERE[lang].format_map(values)
    if v.kind == "device_rebooted":
        values["loss"] = LOSS_DURING[lang].format_map(values) if "loss_during_pct" in v.evidence else ""
    if v.kind == "device_overloaded":
        values["latency"] = OVERLOAD_LATENCY[lang]["rtt_busy_ms" in v.evidence].format_map(values)
    if v.kind == "host_saturated":
        resource = str(v.evidence.get("resource", ""))
        base, _, mount = resource.partition(":")
        values["resource"] = RESOURCES[lang].get(base, base) + (f" {mount}" if mount else "")
        values["saturated_fraction_pct"] = fmt(round(100 * float(v.evidence.get("saturated_fraction", 0.0))), lang)
        clean = v.evidence.get("network_clean")
        values["network_state"] = NETWORK_STATE[lang][clean if isinstance(clean, bool) else None]
    return SUMMARIES[lang].get(v.kind, "").format_map(values)


def _ranges_text(v: Verdict, lang: str, tz: str) -> str:
    shown = [span(a, b, lang, tz) for a, b in v.ranges[:MAX_RANGES]]
    if len(v.ranges) > MAX_RANGES:
        shown.append(WORDS[lang]["more_ranges"].format(n=len(v.ranges) - MAX_RANGES))
    return ", ".join(shown)


def unit_of(key: str) -> str:
    """The unit a field name carries (docs/metrics.md: units are in the names)."""
    for suffix, unit in UNITS:
        if key.endswith(suffix):
            return unit
    return ""


def _evidence_pairs(v: Verdict, lang: str) -> list[tuple[str, str]]:
    """(label, value with unit) per piece of evidence; a list (per target) becomes one row each."""
    labels = LABELS[lang]
    out = []
    for key, value in v.evidence.items():
        if isinstance(value, list):
            for row in value:
                name = str(row.get("target", ""))
                rest = ", ".join(
                    f"{labels.get(k, k)} {SIDES[lang].get(str(x), x) if k == 'side' else fmt(x, lang)}{' ' + unit_of(k) if unit_of(k) else ''}"
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
# The checks by name in the report's language.
CHECK_NAMES: dict[str, dict[str, str]] = {
    "nb": {"uplink_saturated": "opplink full", "interface_errors": "grensesnittfeil", "loss_beyond_gateway": "tap bak gatewayen",
           "host_saturated": "maskin overbelastet", "application_slow": "treg applikasjon", "device_trouble": "nettverksenheter"},
    "en": {"uplink_saturated": "uplink saturated", "interface_errors": "interface errors", "loss_beyond_gateway": "loss beyond the gateway",
           "host_saturated": "machine saturated", "application_slow": "slow application", "device_trouble": "network devices"},
}


def _confidence(v: Verdict, lang: str) -> str:
    """' (sikkerhet 0,93)' for a finding; nothing for "not enough data", which is no finding."""
    if v.kind == INSUFFICIENT:
        return ""
    return f" ({WORDS[lang]['confidence']} {fmt(round(v.confidence, 2), lang)})"


def render_text(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> str:
    w = WORDS[lang]
    lines = [w["heading"].format(name=d.site_name, site=d.site), f"{w['window']}: {span(d.start_ns, d.end_ns, lang, tz)}", ""]
    if not d.verdicts:
        lines += [w["none"], ""]
    for i, v in enumerate(d.verdicts, 1):
        lines.append(f"{i}. {TITLES[lang][v.kind]}{_confidence(v, lang)}: {v.subject}")
        lines.append(f"   {summary(v, lang)}")
        if v.ranges:
            lines.append(f"   {w['times']}: {_ranges_text(v, lang, tz)}")
        lines.append(f"   {w['evidence']}: " + "; ".join(_evidence_items(v, lang)))
        for s in v.suggestions:
            lines.append(f"   → {suggestion_text(s, lang, tz)}")
        lines.append("")
    lines.append(f"{w['checks']}: " + ", ".join(f"{CHECK_NAMES[lang].get(name, name)} {w[state]}" for name, state in d.checks.items()))
    extra = [s for s in d.missing if not any(s in v.suggestions for v in d.verdicts)]
    if extra:
        lines += ["", f"{w['missing']}:"] + [f"  - {suggestion_text(s, lang, tz)}" for s in extra]
    return "\n".join(lines) + "\n"


def render_markdown(d: Diagnosis, lang: str = "nb", tz: str = "Europe/Oslo") -> str:
    w = WORDS[lang]
    lines = [f"# {w['heading'].format(name=d.site_name, site=d.site)}", "", f"**{w['window']}:** {span(d.start_ns, d.end_ns, lang, tz)}", ""]
    if not d.verdicts:
        lines += [w["none"], ""]
    else:
        header = {"nb": "| # | Funn | Sikkerhet | Gjelder |", "en": "| # | Finding | Confidence | Subject |"}[lang]
        lines += [header, "|---|---|---|---|"]
        for i, v in enumerate(d.verdicts, 1):
            confidence = "–" if v.kind == INSUFFICIENT else fmt(round(v.confidence, 2), lang)
            lines.append(f"| {i} | {TITLES[lang][v.kind]} | {confidence} | `{v.subject}` |")
        lines.append("")
    for i, v in enumerate(d.verdicts, 1):
        lines += [f"## {i}. {TITLES[lang][v.kind]}", "", summary(v, lang), ""]
        if v.ranges:
            lines += [f"**{w['times']}:** {_ranges_text(v, lang, tz)}", ""]
        lines += [f"**{w['evidence']}:**", "", "| | |", "|---|---|"]
        lines += [f"| {label} | {value} |" for label, value in _evidence_pairs(v, lang)] + [""]
        lines += [f"- → {suggestion_text(s, lang, tz)}" for s in v.suggestions]
        if v.suggestions:
            lines.append("")
    lines += [f"## {w['checks']}", ""] + [f"- {CHECK_NAMES[lang].get(name, name)}: {w[state]}" for name, state in d.checks.items()] + [""]
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
        "language": lang,
        "verdicts": [
            {
                "kind": v.kind,
                "title": TITLES[lang][v.kind],
                # "Not enough data" is no finding: it has no confidence to give.
                "confidence": None if v.kind == INSUFFICIENT else round(v.confidence, 3),
                "subject": v.subject,
                "summary": summary(v, lang),
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
