"""The texts people read: one catalog per language (collector/texts), every catalog of one shape.

Every language has the same sections, keys and {placeholders} per key, so a text missing in one
language, or a placeholder mistyped in one, fails here and not in a message sent at night. And
no module outside collector/texts keeps texts per language: a dict keyed by a language code, a
second list of the languages, or a branch on one (`lang == "nb"`) elsewhere is named here.
"""

from __future__ import annotations

import ast
import dataclasses
import string
import typing
from pathlib import Path

from collector import texts
from collector.alerting.rules import RULE_KINDS, SITE_RULE
from collector.texts import Catalog, Plural

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agent", "collector", "dashboards")
CATALOG_PACKAGE = ROOT / "collector" / "texts"


def flat(catalog: Catalog) -> dict[str, str]:
    """Every text of `catalog` by where it is: "digest.title", "counted.machine.other", "months[0]"."""
    found: dict[str, str] = {}
    for section in dataclasses.fields(catalog):
        value = getattr(catalog, section.name)
        if isinstance(value, str):
            found[section.name] = value
        elif isinstance(value, tuple):
            found.update({f"{section.name}[{i}]": text for i, text in enumerate(value)})
        else:
            for key, text in value.items():
                if isinstance(text, Plural):
                    found[f"{section.name}.{key}.one"], found[f"{section.name}.{key}.other"] = text.one, text.other
                else:
                    found[f"{section.name}.{key}"] = text
    return found


def placeholders(text: str) -> set[str]:
    """The names `str.format` fills in; a ValueError for a brace left open or unmatched."""
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def differences(first: Catalog, second: Catalog, names: tuple[str, str]) -> list[str]:
    """What keeps `second` from being a translation of `first`: keys one lacks, placeholders that differ or do not parse."""
    a, b = flat(first), flat(second)
    problems = [f"{key}: only in {names[0]}" for key in sorted(a.keys() - b.keys())]
    problems += [f"{key}: only in {names[1]}" for key in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        found = []
        for name, text in zip(names, (a[key], b[key])):
            try:
                found.append(placeholders(text))
            except ValueError as exc:
                problems.append(f"{key} in {name}: {exc}: {text!r}")
        if len(found) == 2 and found[0] != found[1]:
            problems.append(f"{key}: placeholders {sorted(found[0])} in {names[0]}, {sorted(found[1])} in {names[1]}")
    return problems


def test_every_language_has_the_same_keys_and_placeholders() -> None:
    default = texts.of(texts.DEFAULT_LANGUAGE)
    for lang in texts.LANGUAGES:
        assert differences(default, texts.of(lang), (texts.DEFAULT_LANGUAGE, lang)) == [], lang


def test_a_missing_or_mistyped_translation_is_named() -> None:
    nb, en = texts.of("nb"), texts.of("en")
    broken = dataclasses.replace(
        en,
        digest={k: v for k, v in en.digest.items() if k != "footer"},
        alert={**en.alert, "many": "{n} alerts: {firing} firing, {resolvd} resolved", "back_text": "{site_name is reachable again"},
        months=en.months[:11],
    )
    assert differences(nb, broken, ("nb", "en")) == [
        "digest.footer: only in nb",
        "months[11]: only in nb",
        "alert.back_text in en: expected '}' before end of string: '{site_name is reachable again'",
        "alert.many: placeholders ['firing', 'n', 'resolved'] in nb, ['firing', 'n', 'resolvd'] in en",
    ]


def test_every_text_is_some_text() -> None:
    for lang in texts.LANGUAGES:
        empty = [key for key, text in flat(texts.of(lang)).items() if not isinstance(text, str) or not text]
        assert empty == [], lang


def test_the_languages_are_listed_once() -> None:
    assert tuple(texts.CATALOGS) == texts.LANGUAGES == typing.get_args(texts.Lang)
    assert texts.DEFAULT_LANGUAGE in texts.LANGUAGES


def test_every_rule_kind_has_its_summary_and_no_other_is_kept() -> None:
    for lang in texts.LANGUAGES:
        assert set(texts.of(lang).rule_summaries) == set(RULE_KINDS) | {SITE_RULE}, lang


def language_tables(source: str, filename: str = "<source>") -> list[str]:
    """Where `source` keeps words per language itself: a dict keyed by a language code (also
    `dict(nb=...)`), a list of the languages, a comparison with a language code."""
    codes = set(texts.LANGUAGES)
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Dict):
            hit = any(isinstance(k, ast.Constant) and k.value in codes for k in node.keys)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            hit = any(k.arg in codes for k in node.keywords)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            hit = codes <= {e.value for e in node.elts if isinstance(e, ast.Constant)}
        elif isinstance(node, ast.Compare):
            hit = any(isinstance(c, ast.Constant) and c.value in codes for c in [node.left, *node.comparators])
        else:
            continue
        if hit:
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)[:100]}")
    return found


def test_the_check_for_language_tables_finds_the_old_shapes() -> None:
    old = '''
WORDS = {"nb": {"firing": "AKTIV"}, "en": {"firing": "FIRING"}}
header = dict(nb="Funn", en="Finding")[lang]
since = "siden " if lang == "nb" else "since "
parser.add_argument("--lang", choices=["nb", "en"])
'''
    assert [hit.split(": ")[0] for hit in language_tables(old)] == ["<source>:2", "<source>:3", "<source>:4", "<source>:5"]


def test_no_module_outside_the_catalog_keeps_texts_per_language() -> None:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(CATALOG_PACKAGE):
                continue
            found += language_tables(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == []
