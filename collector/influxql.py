"""InfluxQL queries over the v1 /query API (InfluxDB 1.x; 2.x/3.x through DBRP mapping).

Reports, diagnosis and tests ask InfluxDB through here; the retention set-up
(collector/retention.py) also changes policies and continuous queries through it.
"""

from __future__ import annotations

import base64
import http.client
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

# No proxy from http_proxy/https_proxy: InfluxDB is on the LAN, and the writer (aiohttp,
# trust_env off) does not use one either; reads and writes go the same way.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class InfluxQueryError(RuntimeError):
    pass


class InfluxUnreachableError(InfluxQueryError):
    """No answer from InfluxDB at all (refused connection, timeout), as opposed to an error it gave."""


def rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a /query answer into dicts: one per row, with the series tags merged in."""
    return [row for statement in rows_per_statement(result) for row in statement]


def rows_per_statement(result: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """`rows` of each statement of a /query answer apart, in the order they were sent."""
    out: list[list[dict[str, Any]]] = []
    for statement in result.get("results", []):
        if "error" in statement:
            raise InfluxQueryError(statement["error"])
        kept: list[dict[str, Any]] = []
        for series in statement.get("series", []):
            tags = series.get("tags", {})
            for values in series.get("values", []):
                row = dict(zip(series["columns"], values))
                row.update(tags)
                row.setdefault("_measurement", series.get("name"))
                kept.append(row)
        out.append(kept)
    return out


def _authorise(request: urllib.request.Request, username: str | None, password: str | None) -> None:
    if username is not None:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")


def _open(request: urllib.request.Request, url: str, timeout_s: float) -> bytes:
    try:
        with _OPENER.open(request, timeout=timeout_s) as resp:
            return resp.read()
    except urllib.error.HTTPError as exc:
        raise InfluxQueryError(f"HTTP {exc.code}: {exc.read().decode(errors='replace')[:300]}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise InfluxUnreachableError(f"{url}: {exc}") from exc


def http_get(url: str, path: str, params: dict[str, str] | None = None, username: str | None = None, password: str | None = None,
             timeout_s: float = 10.0) -> bytes:
    """GET `path` of the storage's HTTP API (blocking): VictoriaMetrics' /flags and /api/v1/export,
    where the points written through its InfluxDB endpoint are read back."""
    query_text = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(f"{url.rstrip('/')}{path}{query_text}")
    _authorise(request, username, password)
    return _open(request, url, timeout_s)


def write_lines(
    url: str, database: str, policy: str, body: bytes, username: str | None = None, password: str | None = None, timeout_s: float = 10.0,
) -> None:
    """POST line protocol (ns times) to /write into `policy` (blocking): the retention set-up's own
    few points (collector/retention.py), never the estate's, which go through the writer."""
    params = urllib.parse.urlencode({"db": database, "rp": policy, "precision": "ns"})
    request = urllib.request.Request(f"{url.rstrip('/')}/write?{params}", data=body, method="POST")
    _authorise(request, username, password)
    _open(request, url, timeout_s)


def query(
    url: str,
    database: str,
    statement: str,
    username: str | None = None,
    password: str | None = None,
    timeout_s: float = 10.0,
    *,
    post: bool = False,
) -> list[dict[str, Any]]:
    """Run one InfluxQL statement (blocking); `time` comes back as integer nanoseconds.

    `post`: for statements that change something (CREATE, ALTER, DROP, SELECT ... INTO), which
    InfluxDB 1.x refuses over GET.
    """
    return rows(_answer(url, database, statement, username, password, timeout_s, post))


def query_each(
    url: str, database: str, statements: list[str], username: str | None = None, password: str | None = None, timeout_s: float = 10.0,
) -> list[list[dict[str, Any]]]:
    """Several SELECT statements in one request (one round trip), the rows of each apart (as `query`'s).
    Sent as a POST form: many statements with long WHERE clauses outgrow a URL."""
    if not statements:
        return []
    answered = rows_per_statement(_answer(url, database, ";\n".join(statements), username, password, timeout_s, post=True))
    if len(answered) != len(statements):
        raise InfluxQueryError(f"{url}: {len(statements)} statements sent, {len(answered)} answered")
    return answered


def _answer(url: str, database: str, statement: str, username: str | None, password: str | None, timeout_s: float,
            post: bool) -> dict[str, Any]:
    params = urllib.parse.urlencode({"db": database, "q": statement, "epoch": "ns"})
    if post:
        request = urllib.request.Request(f"{url.rstrip('/')}/query", data=params.encode(), method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
    else:
        request = urllib.request.Request(f"{url.rstrip('/')}/query?{params}")
    _authorise(request, username, password)
    answer = _open(request, url, timeout_s)
    try:
        decoded = orjson.loads(answer)  # a third of json.loads' time on a long range's answer
    except ValueError as exc:  # 200 with something that is not InfluxDB's JSON (a proxy's page)
        raise InfluxQueryError(f"{url}: the answer is not InfluxDB's JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise InfluxQueryError(f"{url}: the answer is not InfluxDB's JSON: {str(decoded)[:100]}")
    return decoded


def contract_problems(url: str, database: str, username: str | None = None, password: str | None = None) -> list[str]:
    """What a database holds outside the measurement contract: measurements, tag keys, field keys
    and field types (agent/contract.py). [] for a database only nettvakt has written to."""
    from agent.contract import MEASUREMENTS_SPEC, UNITS
    from collector.rollups import RP_CONFIG

    def ask(statement: str) -> list[dict[str, Any]]:
        return query(url, database, statement, username, password)

    problems = []
    for row in ask("SHOW MEASUREMENTS"):
        name = row["name"]
        if name == RP_CONFIG:  # the retention set-up's own rows for the dashboards (docs/storage.md), not the estate's
            continue
        spec = MEASUREMENTS_SPEC.get(name)
        if spec is None:
            problems.append(f"measurement {name!r} is not in the contract")
            continue
        for field in ask(f'SHOW FIELD KEYS FROM "{name}"'):
            key, kind = field["fieldKey"], field["fieldType"]
            if key not in spec.fields:
                problems.append(f"{name}: field {key!r} is not in the contract")
            elif kind != UNITS[spec.fields[key].unit].type:
                problems.append(f"{name}: field {key!r} is stored as {kind}, the contract says {UNITS[spec.fields[key].unit].type}")
        problems += [f"{name}: tag {t['tagKey']!r} is not in the contract" for t in ask(f'SHOW TAG KEYS FROM "{name}"') if t["tagKey"] not in spec.tags]
    return problems
