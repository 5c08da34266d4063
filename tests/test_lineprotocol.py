"""Line protocol encoding, and reading back what it wrote; the real round trip through influxd is in test_e2e."""

import pytest
from hypothesis import given, settings

from agent.points import Point
from collector.lineprotocol import LineProtocolError, encode_point, parse_line
from test_lineprotocol_roundtrip import point_sets


def test_tag_and_field_escaping() -> None:
    point = Point(
        "probe",
        {"host": "PLO pc, 2. etg", "site": "a=b", "target": r"c:\temp"},
        {"rtt_ms": 1, "note": 'say "hei"\\ å', "ok": True},
        1700000000000000000,
    )
    expected = (
        r"probe,host=PLO\ pc\,\ 2.\ etg,site=a\=b,target=c:\temp "
        r'rtt_ms=1.0,note="say \"hei\"\\ å",ok=1.0 1700000000000000000'
    )
    assert encode_point(point) == expected


def test_keys_outside_the_contract_alphabet_are_refused() -> None:
    # A key ending in a backslash escaped the '=' after it and let a string field's newlines
    # start lines of their own (an injection); keys are identifiers, so nothing needs escaping.
    for fields in ({"x\\": 'a"\nprobe,host=pc-b up=1 1'}, {"odd key,=": 1.5}, {"time": 1.0}, {"Up": 1.0}):
        with pytest.raises(LineProtocolError, match="not an identifier"):
            encode_point(Point("host", {"host": "h"}, fields, 5))
    with pytest.raises(LineProtocolError, match="not an identifier"):
        encode_point(Point("host x", {"host": "h"}, {"up": 1.0}, 5))
    with pytest.raises(LineProtocolError, match="not an identifier"):
        encode_point(Point("host", {"bad tag": "h"}, {"up": 1.0}, 5))


def test_what_cannot_be_written_unambiguously_is_refused() -> None:
    refused = [
        Point("host", {"host": "h"}, {"host": 1.0}, 5),  # a field shadowing a tag
        Point("host", {"host": "h\\"}, {"up": 1.0}, 5),  # trailing backslash escapes the separator
        Point("host", {"host": "a\nb"}, {"up": 1.0}, 5),
        Point("host", {"host": "h"}, {"up": float("nan")}, 5),
        Point("host", {"host": "h"}, {"up": float("inf")}, 5),
        Point("host", {"host": "h"}, {"up": 10**400}, 5),
        Point("host", {"host": "h"}, {"reason": "\ud800"}, 5),
        Point("host", {"host": "\udfff"}, {"up": 1.0}, 5),
        Point("host", {"host": "h"}, {"reason": "x" * (64 * 1024 + 1)}, 5),
        Point("host", {"host": "h"}, {"up": [1]}, 5),
        Point("host", {"host": "h"}, {}, 5),
        Point("host", {"host": "h"}, {"up": 1.0}, 2**63),
        Point("host", {"host": "h"}, {"up": 1.0}, 10**30),
    ]
    for point in refused:
        with pytest.raises(LineProtocolError):
            encode_point(point)
    # A newline inside a quoted string is legal and stays inside its field.
    assert encode_point(Point("probe", {"host": "h"}, {"reason": "a\nb"}, 5)) == 'probe,host=h reason="a\nb" 5'


def test_numbers_are_always_floats() -> None:
    line = encode_point(Point("host", {"host": "h"}, {"procs": 12, "cpu_pct": 3.5}, 1))
    assert line == "host,host=h procs=12.0,cpu_pct=3.5 1"


@settings(max_examples=400, deadline=None)
@given(point_sets())
def test_parse_line_reads_back_exactly_what_encode_point_wrote(points: list[Point]) -> None:
    """The queue keeps lines and reads points back from them (rollups, the local store): every point
    the encoder writes comes back with its tags (empty ones absent), its numbers as floats, its
    strings as they were, and its time."""
    for point in points:
        try:
            line = encode_point(point)
        except LineProtocolError:
            continue
        back = parse_line(line)
        assert (back.measurement, back.time_ns) == (point.measurement, point.time_ns)
        assert back.tags == {k: v for k, v in point.tags.items() if v != ""}
        assert back.fields == {k: v if isinstance(v, str) else float(v) for k, v in point.fields.items()}
