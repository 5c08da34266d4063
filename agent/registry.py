"""What every descriptor registry shares: a table read through a read-only view, and a way for
tests to add an entry for the length of a block (probe kinds, channel kinds, SSH platforms)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import TypeVar

Entry = TypeVar("Entry")


@contextmanager
def registered(table: MutableMapping[str, Entry], name: str, entry: Entry, what: str) -> Iterator[Entry]:
    """For tests: `entry` is in `table` under `name` while the block runs; afterwards the table is
    as before. `what` names the kind of entry in the error for a name that is taken already."""
    if name in table:
        raise ValueError(f"{what} {name!r} is registered already")
    table[name] = entry
    try:
        yield entry
    finally:
        del table[name]
