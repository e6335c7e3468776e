"""The server clock's estimate (web/static/js/clock.js, run by node) from NTP-style samples."""

from __future__ import annotations

import json
from pathlib import Path

from tests.web.node import run_node

CLOCK = Path(__file__).resolve().parents[2] / "web" / "static" / "js" / "clock.js"
OFFSET = 40.0  # ms: the server's clock ahead of the page's
PATH = 20.0  # ms each way when nothing waits


def estimated(ways: list[tuple[float, float]]) -> dict[str, float]:
    """clock.js's estimate from samples whose ways there and back took these (ms)."""
    samples = [
        {"roundTrip": there + back, "offset": OFFSET + (there - back) / 2} for there, back in ways
    ]
    script = (
        f"import {{ estimate }} from {json.dumps(CLOCK.as_uri())};"
        f"console.log(JSON.stringify(estimate({json.dumps(samples)})));"
    )
    result: dict[str, float] = run_node("--input-type=module", "-e", script)
    return result


def test_waits_on_one_way_do_not_move_the_offset() -> None:
    # Most answers waited a little on the way back (a busy page, a queue behind other traffic):
    # each within a quarter of the round trip, so every one of them looks like a fast sample.
    ways = [(PATH, PATH + wait) for wait in (8.0, 9.0, 7.0, 8.0, 10.0, 6.0)]
    ways += [(PATH + 3.0, PATH), (PATH, PATH + 9.0)]
    clock = estimated(ways)
    assert abs(clock["offset"] - OFFSET) < 0.5, clock
    assert clock["roundTrip"] == 2 * PATH + 3.0


def test_waits_either_way_leave_the_offset_where_the_least_of_each_shows_it() -> None:
    ways = [(PATH + a, PATH + b) for a, b in [(0, 12), (15, 0), (4, 30), (25, 2), (7, 7)]]
    assert abs(estimated(ways)["offset"] - OFFSET) < 0.5


def test_one_sample_is_taken_as_it_is() -> None:
    clock = estimated([(PATH + 6, PATH)])
    assert abs(clock["offset"] - (OFFSET + 3)) < 1e-9
    assert clock["jitter"] > 0
