"""The line-protocol writer against a real influxd: random points in, exactly those points out.

Hypothesis makes points with every character a tag value or string field may hold (quotes,
backslashes, commas, equals signs, spaces, newlines inside strings, non-Latin text) and
numbers from the whole float range; they are written through `encode_points` to a fresh
database and read back. Anything that lands differently, lands as another series, or
splits into extra lines is a defect of the encoder.
"""

from __future__ import annotations

import math
import urllib.request
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.points import Point
from collector.influxql import query
from collector.lineprotocol import encode_points

MEASUREMENT_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True).filter(lambda k: k != "time")
# Tag values: any text but control characters, no trailing backslash, not empty (the encoder
# refuses those; the influxd round trip is for everything it accepts).
TAG_VALUES = (
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40)
    .filter(lambda v: not v.endswith("\\"))
)
STRINGS = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200)
NUMBERS = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53)
FIELD_VALUES = NUMBERS | STRINGS | st.booleans()


@st.composite
def point_sets(draw: st.DrawFn) -> list[Point]:
    """Points of one or two measurements; within a measurement, every field key keeps one type."""
    points = []
    base_ns = 1_600_000_000_000_000_000
    for m_index, measurement in enumerate(draw(st.lists(MEASUREMENT_NAMES, min_size=1, max_size=2, unique=True))):
        tag_keys = draw(st.lists(KEYS, max_size=3, unique=True))
        field_keys = draw(st.lists(KEYS.filter(lambda k: k not in tag_keys), min_size=1, max_size=4, unique=True))
        kinds = {key: draw(st.sampled_from(["number", "string"])) for key in field_keys}
        for i in range(draw(st.integers(1, 6))):
            tags = {key: draw(TAG_VALUES) for key in tag_keys if draw(st.booleans())}
            fields: dict[str, Any] = {}
            for key in field_keys:
                if draw(st.booleans()) or not fields:
                    fields[key] = draw(STRINGS if kinds[key] == "string" else NUMBERS | st.booleans())
            # Distinct times: a point with the same series and time would overwrite another.
            points.append(Point(measurement, tags, fields, base_ns + m_index * 1000 + i))
    return points


def _expected(value: Any) -> Any:
    if isinstance(value, (bool, int, float)) and not isinstance(value, str):
        return float(value)
    return value


def test_random_points_round_trip_through_a_real_influxd(influx_db) -> None:
    server, _ = influx_db
    counter = iter(range(10**6))

    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(point_sets())
    def round_trip(points: list[Point]) -> None:
        database = f"roundtrip_{next(counter)}"
        post(server.url, f"/query?q=CREATE+DATABASE+{database}", b"")
        try:
            post(server.url, f"/write?db={database}&precision=ns", encode_points(points))
            stored = {
                (row["_measurement"], row["time"]): row
                for name in {p.measurement for p in points}
                for row in query(server.url, database, f'SELECT * FROM "{name}" GROUP BY *')
            }
            assert len(stored) == len(points), "points lost or extra ones made"
            for point in points:
                row = stored[(point.measurement, point.time_ns)]
                got_tags = {k: v for k, v in row.items() if k not in ("time", "_measurement") and k not in point.fields and v not in (None, "")}
                assert got_tags == dict(point.tags)
                for key, value in point.fields.items():
                    got, want = row[key], _expected(value)
                    if isinstance(want, float):
                        assert isinstance(got, (int, float)) and (got == want or math.isclose(got, want, rel_tol=0, abs_tol=0)), (key, got, want)
                    else:
                        assert got == want, (key, got, want)
            series = query(server.url, database, "SHOW SERIES")
            assert len(series) == len({(p.measurement, tuple(sorted(p.tags.items()))) for p in points})
        finally:
            post(server.url, f"/query?q=DROP+DATABASE+{database}", b"")

    round_trip()


def post(base: str, path: str, body: bytes) -> None:
    request = urllib.request.Request(base + path, data=body, method="POST")
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as resp:
        assert resp.status in (200, 204), resp.status
