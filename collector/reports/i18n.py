"""Numbers, money and dates for the reports, in Norwegian (bokmål) or English: one place.

Norwegian: digits grouped by a no-break space (U+00A0: a plain-looking space that never breaks a
number across lines, and that the PDF's standard fonts can draw, unlike the thin U+202F),
decimal comma, `1 234 567 kr`, dates `29.11.2026`. English: `1,234,567`, `NOK 1,234,567`, ISO
dates. CSV cells are ungrouped (Norwegian Excel reads `1234567,5` as a number, not `1 234 567,5`).
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Literal

Lang = Literal["nb", "en"]
LANGUAGES: tuple[Lang, ...] = ("nb", "en")
NB_GROUP = "\u00a0"

# CSV dialect per language: Norwegian Excel expects `;` because `,` is its decimal mark.
CSV_DELIMITER: dict[str, str] = {"nb": ";", "en": ","}

# Hardware kinds as people say them; an unknown kind is shown as written in the inventory.
KIND_NAMES: dict[str, dict[str, str]] = {
    "nb": {
        "pc": "PC", "laptop": "bærbar PC", "server": "server", "firewall": "brannmur", "switch": "svitsj",
        "printer": "skriver", "ups": "UPS", "router": "ruter", "network": "nettverksutstyr",
    },
    "en": {
        "pc": "PC", "laptop": "laptop", "server": "server", "firewall": "firewall", "switch": "switch",
        "printer": "printer", "ups": "UPS", "router": "router", "network": "network device",
    },
}


# Words that are counted in texts: (one, more) per language.
COUNTED = {
    "machine": {"nb": ("maskin", "maskiner"), "en": ("machine", "machines")},
    "unit": {"nb": ("enhet", "enheter"), "en": ("unit", "units")},
}


def count(n: int, word: str, lang: str) -> str:
    """'1 maskin', '7 maskiner', '1 unit': the number with its word in the right form."""
    one, more = COUNTED[word].get(lang, COUNTED[word]["en"])
    return f"{n} {one if n == 1 else more}"


KIND_PLURALS: dict[str, dict[str, str]] = {
    "nb": {
        "pc": "PC-er", "laptop": "bærbare PC-er", "server": "servere", "firewall": "brannmurer", "switch": "svitsjer",
        "printer": "skrivere", "ups": "UPS-er", "router": "rutere", "network": "nettverksutstyr",
    },
    "en": {
        "pc": "PCs", "laptop": "laptops", "server": "servers", "firewall": "firewalls", "switch": "switches",
        "printer": "printers", "ups": "UPSes", "router": "routers", "network": "network devices",
    },
}


def kind_name(kind: str, lang: str) -> str:
    return KIND_NAMES[lang].get(kind, kind)


def kind_count(n: int, kind: str, lang: str) -> str:
    """'1 brannmur', '7 svitsjer', '2 firewalls': a count of hardware of one kind."""
    return f"{n} {kind_name(kind, lang) if n == 1 else KIND_PLURALS[lang].get(kind, kind)}"


def number(value: float | None, lang: str, decimals: int = 0, group: bool = True) -> str:
    """`value` with `decimals` decimals in the language's style; "" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:,.{decimals}f}" if group else f"{value:.{decimals}f}"
    if text in ("-0", "-0.0", "-0.00"):
        text = text[1:]
    if lang == "nb":
        # Swap through a placeholder: `,` (group) -> no-break space, `.` (decimal) -> `,`.
        text = text.replace(",", "\0").replace(".", ",").replace("\0", NB_GROUP)
    return text


def money(value: float | None, lang: str, currency: str = "NOK") -> str:
    if value is None:
        return ""
    amount = number(value, lang)
    if lang == "nb" and currency == "NOK":
        return f"{amount}{NB_GROUP}kr"
    return f"{currency}{NB_GROUP}{amount}" if lang == "en" else f"{amount}{NB_GROUP}{currency}"


def date(value: dt.date | None, lang: str) -> str:
    if value is None:
        return ""
    return value.strftime("%d.%m.%Y") if lang == "nb" else value.isoformat()


def parse_number(text: str, lang: str) -> float:
    """The inverse of `number` (also of its CSV form): for tests and for reading reports back."""
    cleaned = text.replace(NB_GROUP, "").replace(" ", "")
    if lang == "nb":
        cleaned = cleaned.replace(",", ".")
    else:
        cleaned = cleaned.replace(",", "")
    return float(cleaned)


def timestamp(value: dt.datetime, lang: str) -> str:
    """Date and minute, in the zone `value` carries (convert it to the municipality's first), labelled."""
    text = value.strftime("%d.%m.%Y %H:%M" if lang == "nb" else "%Y-%m-%d %H:%M")
    label = value.strftime("%Z") if value.tzinfo is not None else ""
    return f"{text} {label}" if label else text
