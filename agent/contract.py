"""The measurement contract as data: every measurement, who may write it, its tags and its fields.

One schema, read by the collector's ingest (what an agent may post), by the line-protocol
writer (what can be stored at all), by the tests, and by `docs/metrics.md`, whose tables are
generated from it (`python -m agent.contract --check docs/metrics.md` / `--write`).

Made of two parts: agent/schema.py (units, limits, spec types and every measurement as
declared) and the probe kinds (agent/probes/registry.py). The `probe` measurement is completed
here from the registry: its `kind` vocabulary is the registry's kinds, and each kind adds the
fields (and tags of its extra points) that its descriptor says it writes. Both are read from
the registry when used, so a kind registered by a test is in the contract too.

Shared by agent and collector: data and a few functions, no third-party dependencies.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import replace
from types import MappingProxyType
from typing import Callable, Iterable, Iterator, Mapping, Sequence, TypeVar, overload

from agent.probes.kind import ProbeKind
from agent.probes.registry import PROBES
from agent.schema import (
    DECLARED_MEASUREMENTS,
    IDENTIFIER,
    MAX_STRING_LEN,
    MAX_TAG_LEN,
    RESERVED_KEYS,
    UNITS,
    FieldSpec,
    MeasurementSpec,
    TagSpec,
    Unit,
    Writer,
)

_Spec = TypeVar("_Spec", FieldSpec, TagSpec)


class _WithProbeKinds(Mapping[str, _Spec]):
    """The probe measurement's own tags or fields, then what each registered probe kind adds.

    Read from the registry when used; merged again only when the registry has changed. A name
    that two kinds declare is kept as the first declares it (contract_errors reports a difference).
    """

    def __init__(self, own: Mapping[str, _Spec], of_kind: Callable[[ProbeKind], Iterable[_Spec]]):
        self._own = own
        self._of_kind = of_kind
        self._merged: tuple[tuple[ProbeKind, ...], Mapping[str, _Spec]] = ((), own)

    def _current(self) -> Mapping[str, _Spec]:
        kinds = tuple(PROBES.values())
        seen, merged = self._merged
        if len(kinds) != len(seen) or any(a is not b for a, b in zip(kinds, seen)):
            specs = dict(self._own)
            for kind in kinds:
                for spec in self._of_kind(kind):
                    specs.setdefault(spec.name, spec)
            merged = MappingProxyType(specs)
            self._merged = (kinds, merged)
        return merged

    def __getitem__(self, name: str) -> _Spec:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


class _KindNames(Sequence[str]):
    """The registered probe kinds' names, in registry order, read from the registry when used."""

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        return tuple(PROBES)[index]

    def __len__(self) -> int:
        return len(PROBES)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(PROBES))

    def __contains__(self, name: object) -> bool:
        return name in PROBES

    def __repr__(self) -> str:
        return repr(tuple(PROBES))


class _LatencyFields(Mapping[str, str]):
    """Probe kind -> the field that is its latency, from the registry."""

    def __getitem__(self, kind: str) -> str:
        return PROBES[kind].latency_field

    def __iter__(self) -> Iterator[str]:
        return iter(PROBES)

    def __len__(self) -> int:
        return len(PROBES)


# The probe kinds, as the registry has them (a kind registered later is in it), in its order.
PROBE_KINDS: Sequence[str] = _KindNames()
# What "latency" is for each probe kind, from its descriptor: the status page shows it,
# `probe_latency` alerts on it, `nettvakt diagnose` compares it. A round trip for the network
# probes, the wait for the first answer for the application ones.
PROBE_LATENCY_FIELD: Mapping[str, str] = _LatencyFields()


def probe_latency_ms(kind: object, fields: Mapping[str, object]) -> float | None:
    """The latency of one probe round of this kind, or None when the round has none (it failed)."""
    descriptor = PROBES.get(kind) if isinstance(kind, str) else None
    value = fields.get(descriptor.latency_field) if descriptor is not None else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return float(value)


def _probe_measurement(declared: MeasurementSpec) -> MeasurementSpec:
    own_tags = {**declared.tags, "kind": replace(declared.tags["kind"], values=PROBE_KINDS)}
    return MeasurementSpec(
        declared.name,
        declared.writers,
        _WithProbeKinds(MappingProxyType(own_tags), lambda kind: kind.tags),
        _WithProbeKinds(declared.fields, lambda kind: kind.fields),
        declared.events,
    )


MEASUREMENTS_SPEC: Mapping[str, MeasurementSpec] = MappingProxyType({
    name: _probe_measurement(spec) if name == "probe" else spec for name, spec in DECLARED_MEASUREMENTS.items()
})

# Measurements an agent may post about itself; everything else only the collector writes.
AGENT_MEASUREMENTS = frozenset(name for name, spec in MEASUREMENTS_SPEC.items() if "agent" in spec.writers)


def contract_errors() -> list[str]:
    """What is wrong with the schema itself (a test keeps this empty)."""
    errors = []
    for m in MEASUREMENTS_SPEC.values():
        names = [m.name, *m.tags, *m.fields]
        errors += [f"{m.name}: {n!r} is not an identifier" for n in names if not IDENTIFIER.fullmatch(n)]
        errors += [f"{m.name}: {n!r} is reserved" for n in names if n in RESERVED_KEYS]
        errors += [f"{m.name}: field {n!r} shadows a tag" for n in m.fields if n in m.tags]
        errors += [f"{m.name}.{f.name}: unknown unit {f.unit!r}" for f in m.fields.values() if f.unit not in UNITS]
        errors += [f"{m.name}: no writer" for _ in [0] if not m.writers <= {"agent", "collector"} or not m.writers]
    probe = MEASUREMENTS_SPEC["probe"]
    for kind in PROBES.values():
        errors += [f"probe kind {kind.name!r}: not a tag value (a-z, 0-9, _)" for _ in [0] if not IDENTIFIER.fullmatch(kind.name)]
        latency = probe.fields.get(kind.latency_field)
        if latency is None or latency.unit != "ms":
            errors.append(f"probe latency of {kind.name}: {kind.latency_field!r} is not a probe field in ms")
        errors += [
            f"probe kind {kind.name!r} declares {spec.name!r} unlike the probe measurement has it"
            for spec in (*kind.fields, *kind.tags)
            if (probe.fields.get(spec.name) if isinstance(spec, FieldSpec) else probe.tags.get(spec.name)) != spec
        ]
    return errors


def point_problems(measurement: str, tags: Mapping[str, object], fields: Mapping[str, object], writer: Writer) -> list[str]:
    """What in one point does not fit the contract for this writer; [] when it fits.

    Plain and thorough, for tests and tools: the collector's ingest applies the same schema,
    compiled into lookups (collector/ingest.py).
    """
    spec = MEASUREMENTS_SPEC.get(measurement)
    if spec is None:
        return [f"measurement {measurement!r} is not in the contract"]
    if writer not in spec.writers:
        return [f"{measurement}: written by {', '.join(sorted(spec.writers))} only, not {writer}"]
    problems = []
    for key, value in tags.items():
        tag = spec.tags.get(key)
        if tag is None or (writer == "agent" and not tag.agent):
            problems.append(f"{measurement}: tag {key!r} is not in the contract")
        elif not isinstance(value, str) or not value or len(value) > MAX_TAG_LEN:
            problems.append(f"{measurement}.{key}: tag value {value!r} is not a string of 1..{MAX_TAG_LEN} characters")
        elif tag.values and value not in tag.values:
            problems.append(f"{measurement}.{key}: {value!r} is not one of {tuple(tag.values)}")
        elif tag.pattern and not re.fullmatch(tag.pattern, value):
            problems.append(f"{measurement}.{key}: {value!r} does not have the form {tag.pattern}")
    required = [t.name for t in spec.tags.values() if t.required and (writer == "collector" or t.agent)]
    problems += [f"{measurement}: required tag {name!r} is missing" for name in required if name not in tags]
    if not fields:
        problems.append(f"{measurement}: no fields")
    for key, value in fields.items():
        field = spec.fields.get(key)
        if field is None:
            problems.append(f"{measurement}: field {key!r} is not in the contract")
            continue
        unit = UNITS[field.unit]
        if unit.type == "string":
            if not isinstance(value, str) or len(value) > MAX_STRING_LEN:
                problems.append(f"{measurement}.{key}: expected a string of at most {MAX_STRING_LEN} characters, got {value!r:.60}")
        elif not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.append(f"{measurement}.{key}: expected a finite number, got {value!r:.60}")
        elif (unit.low is not None and value < unit.low) or (unit.high is not None and value > unit.high):
            problems.append(f"{measurement}.{key}: {value!r} is out of range for {field.unit}")
    return problems


# --- docs/metrics.md ----------------------------------------------------------------------------
_BEGIN = "<!-- contract:{} -->"
_END = "<!-- /contract:{} -->"


def _range(unit: Unit) -> str:
    if unit.type == "string":
        return f"at most {MAX_STRING_LEN} characters"
    low = "" if unit.low is None else f"{unit.low:g}"
    high = "" if unit.high is None else f"{unit.high:g}"
    if low and high:
        return f"{low}–{high}"
    return f"≥ {low}" if low else "any"


def markdown_tables(spec: MeasurementSpec) -> str:
    """The tag and field tables of one measurement, as docs/metrics.md shows them."""
    who = " and ".join(sorted(spec.writers, key=["agent", "collector"].index))
    kept = " One point per event: kept whole as long as the longest rollups, never averaged (docs/storage.md)." if spec.events else ""
    lines = [f"Written by: {who}.{kept}", "", "| tag | required | values | meaning |", "|---|---|---|---|"]
    for tag in spec.tags.values():
        values = " \\| ".join(f"`{v}`" for v in tag.values) if tag.values else (f"`{tag.pattern}`" if tag.pattern else "")
        required = "yes" if tag.required else ""
        lines.append(f"| `{tag.name}` | {required} | {values} | {tag.doc}{'' if tag.agent else ' (never from an agent)'} |")
    lines += ["", "| field | type | unit | range | meaning |", "|---|---|---|---|---|"]
    for f in spec.fields.values():
        unit = UNITS[f.unit]
        shown = "" if unit.type == "string" else f.unit
        lines.append(f"| `{f.name}` | {unit.type} | {shown} | {_range(unit)} | {f.doc} |")
    return "\n".join(lines)


def probe_kinds_table() -> str:
    """The probe kinds as docs/metrics.md lists them, from their descriptors."""
    lines = ["| kind | latency | parameters | what it measures |", "|---|---|---|---|"]
    for kind in PROBES.values():
        params = ", ".join(f"`{p}`" for p in kind.params) or "none"
        lines.append(f"| `{kind.name}` | `{kind.latency_field}` | {params} | {kind.help} |")
    return "\n".join(lines)


def render_metrics_doc(text: str) -> str:
    """docs/metrics.md with every contract block replaced by the tables made from the schema."""
    blocks = {name: markdown_tables(spec) for name, spec in MEASUREMENTS_SPEC.items()}
    blocks["probe-kinds"] = probe_kinds_table()
    for name, rendered in blocks.items():
        text = replace_block(text, name, rendered)
    return text


def replace_block(text: str, name: str, rendered: str) -> str:
    """`text` with what is between `<!-- contract:NAME -->` and `<!-- /contract:NAME -->` replaced."""
    begin, end = _BEGIN.format(name), _END.format(name)
    start = text.find(begin)
    stop = text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no block {begin} ... {end}")
    return text[: start + len(begin)] + "\n" + rendered + "\n" + text[stop:]


def generated_doc_main(argv: list[str], module: str, render: Callable[[str], str]) -> int:
    """`python -m MODULE --check|--write DOC`: DOC's generated blocks as `render` makes them."""
    if len(argv) != 2 or argv[0] not in ("--check", "--write"):
        print(f"usage: python -m {module} --check|--write DOC.md", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as fh:
        text = fh.read()
    rendered = render(text)
    if argv[0] == "--write":
        with open(argv[1], "w", encoding="utf-8") as fh:
            fh.write(rendered)
        return 0
    if rendered != text:
        print(f"{argv[1]} is not what the contract says; run python -m {module} --write {argv[1]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(generated_doc_main(sys.argv[1:], "agent.contract", render_metrics_doc))

__all__ = [
    "AGENT_MEASUREMENTS", "IDENTIFIER", "MAX_STRING_LEN", "MAX_TAG_LEN", "MEASUREMENTS_SPEC", "PROBE_KINDS", "PROBE_LATENCY_FIELD",
    "RESERVED_KEYS", "UNITS", "probe_latency_ms",
    "FieldSpec", "MeasurementSpec", "TagSpec", "Unit", "Writer", "contract_errors", "generated_doc_main", "markdown_tables", "point_problems",
    "probe_kinds_table", "render_metrics_doc", "replace_block",
]
