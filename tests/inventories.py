"""One builder for the inventories tests write: each test states what matters to it, the rest is defaulted.

    inv = InventoryBuilder(tmp_path).influxdb(url, database).agent("pc1", interval_s=1)
    path = inv.write()               # tmp_path/inventory.toml
    token = inv.tokens["pc1"]        # the plain token; the file holds its sha256

Defaults, each valid for `load_inventory(..., startup=True)`:
- one site, `radhus` ("Rådhuset"), unless the test names its own (`site()`); agents, devices
  and probes go to the first site unless told otherwise;
- `[collector] data_dir` beside the file (`inv.data_dir`), never the repository's var/;
- an agent's token `<id>-token` (its sha256 in the file), a name equal to its id;
- a device on 127.0.0.1, a switch, without SNMP or SSH unless given;
- every hardware kind without `lifetime_years` gets the lifetime and cost `nettvakt init`
  writes for it (collector/init.py), unless the test sets its own with `lifecycle()`.

The builder never validates: a test of a mistake writes the mistake with it, and the
collector's own loader says what is wrong. Inventories whose exact text is the point of a
test (tests/testdata/inventory/bad/, line numbers) stay literal.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

from collector.config import Inventory, load_inventory, parse_inventory
from collector.service import token_hash

DEFAULT_SITE = ("radhus", "Rådhuset")

# Sub-tables of an entry written inline (`hardware = { kind = "pc" }`); every other nested table
# gets its own header (`[device.snmp]`), as people write them.
INLINE_TABLES = frozenset({"hardware", "params", "interface_speed_bps"})

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@functools.cache
def starter_lifecycle() -> Mapping[str, Mapping[str, float]]:
    """Lifetime and replacement cost per hardware kind, as `nettvakt init` writes them."""
    from collector.init import render

    return tomllib.loads(render("nettvakt", DEFAULT_SITE[0], DEFAULT_SITE[1]))["lifecycle"]["kinds"]


class InventoryBuilder:
    """An inventory.toml in `folder`, built one table at a time; the table and entry methods return the builder."""

    def __init__(self, folder: Path, *, organisation: str | None = None, name: str = "inventory.toml") -> None:
        self.folder = folder
        self.path = folder / name
        self.data_dir = folder / "data"
        self.tokens: dict[str, str] = {}  # agent id -> its plain token
        self._top: dict[str, Any] = {} if organisation is None else {"organisation": organisation}
        self._collector: dict[str, Any] = {}
        self._storage: dict[str, Any] = {}
        self._alerting: dict[str, Any] = {}
        self._lifecycle: dict[str, dict[str, float]] = {}
        self._logins: dict[str, Any] = {}
        self._collectors: dict[str, dict[str, Any]] = {}
        self._arrays: dict[str, list[dict[str, Any]]] = {
            name: [] for name in ("site", "agent", "device", "probe", "alert", "channel", "route")
        }

    # --- tables -----------------------------------------------------------------------------
    def collector(self, **keys: Any) -> Self:
        """`[collector]` keys; `data_dir` moves `inv.data_dir` too."""
        if "data_dir" in keys:
            self.data_dir = self.folder / keys["data_dir"]  # relative: beside the file, as the collector reads it
        self._collector.update(keys)
        return self

    def storage(self, kind: str, **keys: Any) -> Self:
        self._storage = {"kind": kind, **keys}
        return self

    def influxdb(self, url: str, database: str, **keys: Any) -> Self:
        """`[storage]` on an InfluxDB 1.x database (the tests' influxd)."""
        return self.storage("influxdb_v1", url=url, database=database, **keys)

    def alerting(self, **keys: Any) -> Self:
        self._alerting.update(keys)
        return self

    def lifecycle(self, kind: str, lifetime_years: float, replacement_cost_nok: float) -> Self:
        self._lifecycle[kind] = {"lifetime_years": lifetime_years, "replacement_cost_nok": replacement_cost_nok}
        return self

    def logins(self, **keys: Any) -> Self:
        """`[logins]` keys: which agents record logins, how names are kept, the shared accounts."""
        self._logins.update(keys)
        return self

    def collectors(self, name: str, url: str, sites: Sequence[str], **keys: Any) -> Self:
        """`[collectors.NAME]`: one of several collectors and the sites it owns (listen, data_dir in `keys`)."""
        self._collectors[name] = {"url": url, "sites": list(sites), **keys}
        return self

    # --- entries ----------------------------------------------------------------------------
    def site(self, id: str, name: str | None = None, **keys: Any) -> Self:
        default_name = DEFAULT_SITE[1] if id == DEFAULT_SITE[0] else id
        self._arrays["site"].append({"id": id, "name": name or default_name, **keys})
        return self

    def agent(
        self, id: str, token: str | None = None, *, site: str | None = None, name: str | None = None,
        hardware: str | Mapping[str, Any] | None = None, **keys: Any,
    ) -> Self:
        """An `[[agent]]` holding the sha256 of `token` (default `<id>-token`, in `inv.tokens[id]`)."""
        self.tokens[id] = token if token is not None else f"{id}-token"
        entry: dict[str, Any] = {"id": id, "name": name or id, "site": site, "token_sha256": token_hash(self.tokens[id])}
        if hardware is not None:
            entry["hardware"] = _hardware(hardware)
        self._arrays["agent"].append({**entry, **keys})
        return self

    def device(
        self, id: str, *, host: str = "127.0.0.1", site: str | None = None, name: str | None = None,
        hardware: str | Mapping[str, Any] = "switch", snmp: Mapping[str, Any] | None = None,
        ssh: Mapping[str, Any] | None = None, **keys: Any,
    ) -> Self:
        entry: dict[str, Any] = {"id": id, "name": name or id, "site": site, "host": host, "hardware": _hardware(hardware)}
        if snmp is not None:
            entry["snmp"] = dict(snmp)
        if ssh is not None:
            entry["ssh"] = dict(ssh)
        self._arrays["device"].append({**entry, **keys})
        return self

    def probe(self, name: str, kind: str, target: str, *, sites: Sequence[str] | None = None,
              agents: Sequence[str] | None = None, **keys: Any) -> Self:
        """A `[[probe]]`; with neither `sites` nor `agents`, run by every site's agents."""
        entry: dict[str, Any] = {"name": name, "kind": kind, "target": target}
        if sites is not None:
            entry["sites"] = list(sites)
        if agents is not None:
            entry["agents"] = list(agents)
        if sites is None and agents is None:
            entry["sites"] = None  # every site, filled in when built
        self._arrays["probe"].append({**entry, **keys})
        return self

    def alert(self, id: str, kind: str, **keys: Any) -> Self:
        self._arrays["alert"].append({"id": id, "kind": kind, **keys})
        return self

    def channel(self, id: str, kind: str, **keys: Any) -> Self:
        self._arrays["channel"].append({"id": id, "kind": kind, **keys})
        return self

    def email(self, id: str, smtp_port: int, to: Sequence[str] = ("vakt@karlsoy.example",), **keys: Any) -> Self:
        """An email `[[channel]]` to an SMTP server on loopback (the smtp_inbox fixture)."""
        return self.channel(id, "email", to=list(to), smtp_host="127.0.0.1", smtp_port=smtp_port, **keys)

    def route(self, *channels: str, **keys: Any) -> Self:
        self._arrays["route"].append({"channels": list(channels), **keys})
        return self

    def secret_file(self, name: str, value: str) -> str:
        """Write a secret into a file beside the inventory; returns its reference, `file:<name>`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / name).write_text(value + "\n", encoding="utf-8")
        return f"file:{name}"

    # --- outputs ----------------------------------------------------------------------------
    def data(self) -> dict[str, Any]:
        """The inventory as tomllib reads the file written by `write()` (paths as strings)."""
        sites = self._arrays["site"] or [{"id": DEFAULT_SITE[0], "name": DEFAULT_SITE[1]}]
        first_site = sites[0]["id"]
        data: dict[str, Any] = dict(self._top)
        data["collector"] = {"data_dir": str(self.data_dir), **self._collector}
        if self._storage:
            data["storage"] = dict(self._storage)
        if self._alerting:
            data["alerting"] = dict(self._alerting)
        lifecycle = self._lifecycle_kinds()
        if lifecycle:
            data["lifecycle"] = {"kinds": lifecycle}
        if self._logins:
            data["logins"] = dict(self._logins)
        if self._collectors:
            data["collectors"] = {name: dict(node) for name, node in self._collectors.items()}
        data["site"] = [dict(s) for s in sites]
        for table in ("agent", "device", "probe", "alert", "channel", "route"):
            entries = [dict(e) for e in self._arrays[table]]
            for entry in entries:
                if entry.get("site", "") is None:
                    entry["site"] = first_site
                if table == "probe" and entry.get("sites", "") is None:
                    entry["sites"] = [s["id"] for s in sites]
            if entries:
                data[table] = entries
        return _plain(data)

    def text(self) -> str:
        return to_toml(self.data())

    def write(self) -> Path:
        """Write the file (and its folder); returns its path."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.write_text(self.text(), encoding="utf-8")
        return self.path

    def parse(self) -> Inventory:
        """The validated inventory, in-process (no file written); relative paths are from `folder`."""
        return parse_inventory(self.data(), self.path)

    def load(self, *, startup: bool = False) -> Inventory:
        """`write()`, then load the file the way the collector does."""
        return load_inventory(self.write(), startup=startup)

    def _lifecycle_kinds(self) -> dict[str, dict[str, float]]:
        kinds = {kind: dict(values) for kind, values in self._lifecycle.items()}
        for entry in self._arrays["agent"] + self._arrays["device"]:
            hardware = entry.get("hardware")
            if isinstance(hardware, Mapping) and "lifetime_years" not in hardware:
                kind = hardware.get("kind")
                if isinstance(kind, str) and kind not in kinds and kind in starter_lifecycle():
                    kinds[kind] = dict(starter_lifecycle()[kind])
        return kinds


def _plain(value: Any) -> Any:
    """Paths as strings and tuples as lists: what a TOML file holds."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _hardware(hardware: str | Mapping[str, Any]) -> dict[str, Any]:
    return {"kind": hardware} if isinstance(hardware, str) else dict(hardware)


# --- TOML -------------------------------------------------------------------------------------
def to_toml(data: Mapping[str, Any]) -> str:
    """`data` as TOML: plain keys first, then tables and arrays of tables, one key a line."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    subtables: list[tuple[str, Any]] = []
    for key, value in table.items():
        if (_is_table(value) and key not in INLINE_TABLES) or (_is_array_of_tables(value) and not path):
            subtables.append((key, value))
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in subtables:
        if isinstance(value, Mapping):
            if not value or any(not _is_table(v) or k in INLINE_TABLES for k, v in value.items()):
                lines += ["", f"[{'.'.join(_key(k) for k in (*path, key))}]"]  # a table of tables alone needs no header
            _table(lines, (*path, key), value)
        else:
            for entry in value:
                lines += ["", f"[[{_key(key)}]]"]
                _table(lines, (key,), entry)


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")
