"""Line protocol encoding; the real round trip through influxd is in test_e2e."""

from agent.points import Point
from collector.lineprotocol import encode_point


def test_tag_and_field_escaping() -> None:
    point = Point(
        "probe",
        {"host": "PLO pc, 2. etg", "site": "a=b", "target": r"c:\temp"},
        {"rtt_ms": 1, "note": 'say "hei"\\ å', "ok": True},
        1700000000000000000,
    )
    expected = (
        r"probe,host=PLO\ pc\,\ 2.\ etg,site=a\=b,target=c:\temp "
        r'rtt_ms=1.0,note="say \"hei\"\\ å",ok=true 1700000000000000000'
    )
    assert encode_point(point) == expected


def test_measurement_and_field_key_escaping() -> None:
    line = encode_point(Point("host", {"host": "h"}, {"odd key,=": 1.5}, 5))
    assert line == r"host,host=h odd\ key\,\==1.5 5"


def test_numbers_are_always_floats() -> None:
    line = encode_point(Point("host", {"host": "h"}, {"procs": 12, "cpu_pct": 3.5}, 1))
    assert line == "host,host=h procs=12.0,cpu_pct=3.5 1"
