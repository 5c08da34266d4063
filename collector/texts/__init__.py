"""The texts people read in Norwegian or English, one module per language: nb.py (bokmål, the default) and en.py.

Alert messages, counted words, the lifecycle digest, diagnose's reports, the hardware and
servers reports and the way numbers and dates are written all come from here; no other module
keeps words per language (tests/test_texts.py). A module asks for its section of the reader's
language, `texts.of(lang).digest["title"]`, and fills in the `{placeholders}` with `format`.
What is in one language only (the status page, `nettvakt alerts` and other command output,
errors) stays beside its code.

Plain Python rather than gettext catalogs: two languages, texts looked up by key rather than by
their English wording, and no compile step or dependency for the collector.

To add a text: the same key in nb.py and en.py, with the same placeholders. To add a language:
a module like en.py, its code in `Lang` and `LANGUAGES`, and its catalog in `CATALOGS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Literal, TypeVar

from collector.texts import en, nb
from collector.texts.catalog import Catalog, Plural, Words

__all__ = ["CATALOGS", "DEFAULT_LANGUAGE", "LANGUAGES", "Catalog", "Lang", "Plural", "Words", "in_each_language", "of"]

Lang = Literal["nb", "en"]
LANGUAGES: tuple[Lang, ...] = ("nb", "en")
DEFAULT_LANGUAGE: Lang = "nb"

# Looked up by str: callers pass the language as configured, and one there are no texts in is a KeyError.
CATALOGS: Mapping[str, Catalog] = MappingProxyType({"nb": nb.CATALOG, "en": en.CATALOG})

T = TypeVar("T")


def of(lang: str) -> Catalog:
    """The texts of `lang`; a KeyError for a language there are no texts in (config only lets these through)."""
    return CATALOGS[lang]


def in_each_language(pick: Callable[[Catalog], T]) -> Mapping[Lang, T]:
    """One text (or section) in every language: for a descriptor that carries its own texts, like a rule kind's summary."""
    return MappingProxyType({lang: pick(CATALOGS[lang]) for lang in LANGUAGES})
