"""Serve a JSON table of OIDs to net-snmp's snmpd through `pass_persist`, values a test can change.

snmpd.conf:  pass_persist .1.3.6.1.2.1.33 /path/to/python /path/to/pass_persist.py /path/to/table.json

snmpd starts this script once and sends it requests on stdin (net-snmp's snmpd.conf(5),
"pass_persist"): `PING` (answer `PONG`), `get` or `getnext` followed by an OID line (answer the
OID, its type and value on three lines, or `NONE`), `set` followed by an OID and a value line
(answer `not-writable`: the table is read-only to SNMP). The table file holds
{"<numeric oid>": ["<type>", value]} with a pass_persist type (integer, gauge, counter,
timeticks, string, objectid, ...), and is read again whenever it changes, so the next request
after `write_oid_table` returns sees the new values. `write_oid_table` replaces the file in one
rename, so the script never reads half a table.

This file runs under snmpd, inside a network namespace in the lab, with no PYTHONPATH: it uses
the standard library only and imports nothing of nettvakt. collector/lab/ups_agent.py builds the
UPS-MIB table and the snmpd.conf line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

# pass_persist's type words (net-snmp agent/mibgroup/ucd-snmp/pass_common.c).
TYPES = frozenset({"integer", "unsigned", "gauge", "counter", "counter64", "timeticks", "ipaddress",
                   "objectid", "string", "octet", "opaque"})
NUMERIC_TYPES = frozenset({"integer", "unsigned", "gauge", "counter", "counter64", "timeticks"})


def oid_key(oid: str) -> tuple[int, ...]:
    """'.1.3.6.1' or '1.3.6.1' -> (1, 3, 6, 1), for ordering; ValueError for anything else."""
    text = oid.strip().lstrip(".")
    parts = text.split(".")
    if not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"not a numeric OID: {oid!r}")
    return tuple(int(p) for p in parts)


def check_table(table: Mapping[str, tuple[str, Any]], where: str) -> dict[str, list[Any]]:
    """The table as stored in the file; raises ValueError naming `where` and the OID for a bad entry."""
    out: dict[str, list[Any]] = {}
    for oid, entry in table.items():
        try:
            oid_key(oid)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        kind, value = entry
        if kind not in TYPES:
            raise ValueError(f"{where}: {oid}: type {kind!r} is none of pass_persist's ({', '.join(sorted(TYPES))})")
        if kind in NUMERIC_TYPES and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"{where}: {oid}: a {kind} needs an integer, not {value!r}")
        if kind not in NUMERIC_TYPES and (not isinstance(value, str) or "\n" in value or "\r" in value):
            raise ValueError(f"{where}: {oid}: a {kind} needs text on one line, not {value!r}")
        out[oid.strip().lstrip(".")] = [kind, value]
    return out


def write_oid_table(path: Path, table: Mapping[str, tuple[str, Any]]) -> None:
    """Write the table for the script to serve, atomically (a temporary file renamed over it)."""
    path = Path(path)
    data = json.dumps(check_table(table, str(path)), indent=1, sort_keys=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # snmpd (and so this script) may run as another user than the test
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class TableFile:
    """The table in `path`, read again when the file changes; the last good table while it is unreadable."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._rows: list[tuple[tuple[int, ...], str, str, Any]] = []

    def rows(self) -> list[tuple[tuple[int, ...], str, str, Any]]:
        """(key, oid, type, value) in OID order."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            print(f"pass_persist: {self.path}: {exc}; serving the last table read", file=sys.stderr)
            return self._rows
        seen = (st.st_ino, st.st_mtime_ns, st.st_size)
        if seen != self._seen:
            try:
                raw = json.loads(self.path.read_text(encoding="utf-8"))
                table = check_table({oid: tuple(entry) for oid, entry in raw.items()}, str(self.path))
            except (OSError, ValueError, TypeError, AttributeError) as exc:
                print(f"pass_persist: {self.path}: {exc}; serving the last table read", file=sys.stderr)
                return self._rows
            self._rows = sorted((oid_key(oid), oid, kind, value) for oid, (kind, value) in table.items())
            self._seen = seen
        return self._rows


def answer(table: TableFile, command: str, oid: str) -> str:
    """The reply to one get/getnext (without the final newline)."""
    try:
        asked = oid_key(oid)
    except ValueError:
        return "NONE"
    for key, name, kind, value in table.rows():
        if (command == "get" and key == asked) or (command == "getnext" and key > asked):
            return f".{name}\n{kind}\n{value}"
    return "NONE"


def serve(table: TableFile, stdin: IO[str], stdout: IO[str]) -> None:
    """Answer snmpd's requests until it closes stdin."""
    while True:
        command = stdin.readline()
        if not command:
            return
        command = command.strip()
        if command == "PING":
            reply = "PONG"
        elif command in ("get", "getnext"):
            reply = answer(table, command, stdin.readline())
        elif command == "set":
            stdin.readline()  # the OID
            stdin.readline()  # type and value
            reply = "not-writable"
        elif not command:
            continue
        else:
            reply = "NONE"
        stdout.write(reply + "\n")
        stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} TABLE.json  (run by snmpd: pass_persist OID python {argv[0]} TABLE.json)", file=sys.stderr)
        return 2
    serve(TableFile(Path(argv[1])), sys.stdin, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
