"""HP / Aruba ProCurve (ArubaOS-Switch) facts: `show system`, through ntc-templates."""

from __future__ import annotations

from .facts import Facts, FactsError, duration_s, text_value, textfsm_parse

def parse_procurve_system(text: str) -> Facts:
    """`show system`: one row per VSF member; ProCurve does not name its model here."""
    rows = textfsm_parse("hp_procurve", "show system", text)
    if not rows or not rows[0].get("software_version"):
        raise FactsError("no 'Software revision' line: not ProCurve `show system` output")
    first = rows[0]
    serials = [str(r["serial"]).strip() for r in rows if text_value(r.get("serial"))]
    return Facts(
        vendor="HP",
        serial=serials[0] if serials else None,
        serials=serials,
        sw_rev=text_value(first.get("software_version")),
        firmware=text_value(first.get("software_version")),
        fw_rev=text_value(first.get("rom_version")),
        hostname=text_value(first.get("name")),
        uptime_s=duration_s(str(first.get("uptime") or "")),
        os_name="ArubaOS-Switch",
        os_version=text_value(first.get("software_version")),
    )
