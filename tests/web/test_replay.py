"""A party's replay (web/static/js/replay.js, run by node): which lines its log shows and when,
and where the recorded playhead is at a given server time. The browser test in
tests/web/test_party_page.py replays a real party; these pin the rules on hand-made logs."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent


def replay(edges: list[dict[str, Any]], at: list[float]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: apt-get install nodejs (the replay checks run real JS)")
    done = subprocess.run(
        [node, str(HERE / "replay_log.mjs")],
        input=json.dumps({"edges": edges, "at": at}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def edge(seq: int, at: float, typename: str, **node: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "serverTime": at,
        "mediaTime": 0.0,
        "node": {"__typename": typename, **node},
    }


def member(name: str, role: str = "GUEST", online: bool = True) -> dict[str, Any]:
    return {"id": name, "displayName": name, "role": role, "online": online}


def playback(
    version: int, state: str, timestamp: float, playing: bool, rate: float = 1.0
) -> dict[str, Any]:
    return {
        "playback": {
            "version": version,
            "state": state,
            "timestamp": timestamp,
            "playing": playing,
            "rate": rate,
        }
    }


def message(body: str | None) -> dict[str, Any]:
    node: dict[str, Any] = {
        "id": body or "gone",
        "body": body,
        "deleted": body is None,
        "mediaTime": 0.0,
    }
    node |= {"createdAt": "2026-01-01T00:00:00+00:00", "author": {"id": "a", "displayName": "A"}}
    return {"message": {**node, "replyTo": None}}


def test_the_playhead_runs_from_each_version_and_a_later_logged_pause_wins() -> None:
    edges = [
        edge(1, 1000, "PlaybackChanged", **playback(1, "WAITING", 1.0, False)),
        edge(2, 1150, "PlaybackChanged", **playback(1, "PLAYING", 1.0, True)),
        # A seek while playing: the barrier again, its start due 150 ms on...
        edge(3, 3000, "PlaybackChanged", **playback(2, "WAITING", 4.0, False)),
        edge(4, 3150, "PlaybackChanged", **playback(2, "PLAYING", 4.0, True, rate=2.0)),
        # ...and a pause logged after that start but due before it.
        edge(5, 3100, "PlaybackChanged", **playback(3, "PAUSED", 4.5, False)),
    ]
    heads = replay(edges, [999, 1100, 2150, 3000, 3120, 3200])["heads"]
    assert [(h["version"], h["position"], h["playing"]) for h in heads] == [
        (0, 0, False),  # before any change: the start, still
        (1, 1.0, False),  # waiting at 1.0
        (1, 2.0, True),  # a second after its start
        (2, 4.0, False),  # the seek, waiting
        (3, 4.5, False),  # the pause
        (3, 4.5, False),  # still the pause: the start due later was logged before it
    ]


def test_lines_are_messages_reactions_and_what_changed_in_the_order_they_are_due() -> None:
    edges = [
        edge(1, 100, "MemberJoined", member=member("Ann", "HOST")),
        edge(2, 200, "MemberJoined", member=member("Bob")),
        edge(3, 300, "MemberUpdated", member=member("Bob")),  # a player report: no line
        edge(4, 400, "MemberUpdated", member=member("Bob", "COHOST")),
        edge(5, 500, "ChatMessageAdded", **message("<b>hi</b>")),
        edge(6, 600, "ChatMessageAdded", **message(None)),
        edge(7, 700, "ChatMessageDeleted", messageId="gone"),  # the message says so already
        edge(8, 800, "MemberLeft", member=member("Bob", "COHOST", online=False), kicked=False),
        edge(9, 900, "MemberUpdated", member=member("Bob", "COHOST")),
        edge(10, 950, "PartySnapshot", party={"id": "p"}),  # settings: no line
        edge(
            11,
            1000,
            "ReactionAdded",
            reaction={"emoji": "🎉", "author": {"id": "Bob", "displayName": "Bob"}},
        ),
        edge(12, 1100, "MemberJoined", member=member("Cy")),
        edge(13, 1200, "MemberLeft", member=member("Cy", online=False), kicked=True),
        edge(14, 1300, "PartyEnded", partyId="p"),
    ]
    lines = replay(edges, [])["lines"]
    assert [(line["seq"], line["kind"], line["text"]) for line in lines] == [
        (1, "system", "Ann joined"),
        (2, "system", "Bob joined"),
        (4, "system", "Bob is now cohost"),
        (5, "message", "<b>hi</b>"),
        (6, "message", None),
        (8, "system", "Bob left"),
        (9, "system", "Bob is back"),
        (11, "reaction", "🎉"),
        (12, "system", "Cy joined"),
        (13, "system", "Cy was removed"),
        (14, "system", "The party ended"),
    ]
