"""What every descriptor registry shares: a table read through a read-only view, and a way for
tests to add an entry for the length of a block (probe kinds, channel kinds, SSH platforms)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TypeVar

Entry = TypeVar("Entry")

_generation = 0  # bumped whenever any registry changes, for readers that compile from them


def generation() -> int:
    """Changes whenever an entry is registered or removed: a cache built from registries keys on it."""
    return _generation


@contextmanager
def registered(table: MutableMapping[str, Entry], name: str, entry: Entry, what: str) -> Iterator[Entry]:
    """For tests: `entry` is in `table` under `name` while the block runs; afterwards the table is
    as before. `what` names the kind of entry in the error for a name that is taken already."""
    global _generation
    if name in table:
        raise ValueError(f"{what} {name!r} is registered already")
    table[name] = entry
    _generation += 1
    try:
        yield entry
    finally:
        del table[name]
        _generation += 1
