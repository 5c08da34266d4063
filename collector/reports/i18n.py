"""Numbers, money, dates and counts for people, in the reader's language: one place for how they are written.

The conventions are the language's, from its catalog (collector/texts): Norwegian groups digits
with a no-break space (U+00A0: a plain-looking space that never breaks a number across lines,
and that the PDF's standard fonts can draw, unlike the thin U+202F), has a decimal comma,
`1 234 567 kr` and dates `29.11.2026`; English `1,234,567`, `NOK 1,234,567` and ISO dates.
CSV cells are ungrouped (Norwegian Excel reads `1234567,5` as a number, not `1 234 567,5`).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

from collector import texts

NO_BREAK_SPACE = "\u00a0"


def count(n: int, word: str, lang: str) -> str:
    """'1 maskin', '7 maskiner', '1 unit': the number with its word in the right form."""
    return f"{n} {texts.of(lang).counted[word].form(n)}"


def kind_name(kind: str, lang: str) -> str:
    """A hardware kind as people say it; an unknown kind as the inventory writes it."""
    forms = texts.of(lang).kinds.get(kind)
    return forms.one if forms else kind


def kind_count(n: int, kind: str, lang: str) -> str:
    """'1 brannmur', '7 svitsjer', '2 firewalls': a count of hardware of one kind."""
    forms = texts.of(lang).kinds.get(kind)
    return f"{n} {forms.form(n) if forms else kind}"


def number(value: float | None, lang: str, decimals: int = 0, group: bool = True) -> str:
    """`value` with `decimals` decimals in the language's style; "" for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    text = f"{value:,.{decimals}f}" if group else f"{value:.{decimals}f}"
    if text in ("-0", "-0.0", "-0.00"):
        text = text[1:]
    style = texts.of(lang)
    # Swap through a placeholder: `,` (group) -> the language's group mark, `.` (decimal) -> its decimal mark.
    return text.replace(",", "\0").replace(".", style.decimal_mark).replace("\0", style.group_mark)


def money(value: float | None, lang: str, currency: str = "NOK") -> str:
    if value is None:
        return ""
    style = texts.of(lang)
    return (style.money_nok if currency == "NOK" else style.money).format(amount=number(value, lang), currency=currency)


def date(value: dt.date | None, lang: str) -> str:
    if value is None:
        return ""
    return value.strftime(texts.of(lang).date_format)


def month(value: dt.date, lang: str) -> str:
    """The calendar month of `value`: 'mars 2027', 'March 2027'."""
    return f"{texts.of(lang).months[value.month - 1]} {value.year}"


def parse_number(text: str, lang: str) -> float:
    """The inverse of `number` (also of its CSV form): for tests and for reading reports back."""
    style = texts.of(lang)
    cleaned = text.replace(NO_BREAK_SPACE, "").replace(" ", "").replace(style.group_mark, "")
    return float(cleaned.replace(style.decimal_mark, "."))


def timestamp(value: dt.datetime, lang: str) -> str:
    """Date and minute, in the zone `value` carries (convert it to the municipality's first), labelled."""
    text = value.strftime(texts.of(lang).timestamp_format)
    label = value.strftime("%Z") if value.tzinfo is not None else ""
    return f"{text} {label}" if label else text


def duration(seconds: float | None, words: Mapping[str, str]) -> str:
    """'2 d 3 t', '1 t 5 min', '12 min', '40 s' with a report's words dur_dh, dur_hm, dur_m, dur_s; '' for None."""
    if seconds is None:
        return ""
    minutes = int(seconds // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return words["dur_dh"].format(d=days, h=hours)
    if hours:
        return words["dur_hm"].format(h=hours, m=minutes)
    return words["dur_m"].format(m=minutes) if minutes else words["dur_s"].format(s=int(seconds))
