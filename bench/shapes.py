"""What rendering a REST answer costs: the hot paths' dicts vs the old encoder vs the models.

    python bench/shapes.py [--rounds 7] [--number 2000]

For a 20-video feed page and a TRANSCODED video's details, per answer: Starlette's JSONResponse
(json.dumps, what the routes used before), rest_compat.operations.JSON (pydantic-core over the
same dict, what the hot paths use now), and the declared models (validate the dict, then dump),
which is what rendering through the models would cost. Rounds interleave the three; the median
round is reported, with the ratio to JSONResponse.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pydantic import TypeAdapter
from starlette.responses import JSONResponse

from rest_compat.operations import JSON
from rest_compat.videos import Feed, VideoDetails

UUID = "0f8fad5b-d9cb-469f-a165-70867728950e"


def feed_body() -> dict[str, Any]:
    item = {
        "id": UUID,
        "title": "A video about something",
        "thumbnail_url": f"http://bench.example/media/videos/{UUID}/thumbnail.jpg",
        "category": "music",
        "creator": {"id": UUID, "username": "creator_17"},
        "view_count": 1234,
        "duration": 61.5,
        "created_at": "2026-11-30T12:34:56.123456Z",
    }
    return {"videos": [dict(item) for _ in range(20)], "total_pages": 500, "current_page": 1}


def details_body() -> dict[str, Any]:
    url = f"http://bench.example/media/videos/{UUID}/"
    return {
        "id": UUID,
        "title": "A video about something",
        "description": "x" * 200,
        "category": "music",
        "creator": {"id": UUID, "username": "creator_17"},
        "status": "TRANSCODED",
        "created_at": "2026-11-30T12:34:56.123456Z",
        "video_urls": {q: f"{url}{q}.mp4" for q in ("240p", "480p", "720p")},
        "thumbnail_url": f"{url}thumbnail.jpg",
        "duration": 61.5,
        "current_timestamp": 12.25,
        "view_count": 1235,
    }


def old_way(make: Callable[[], dict[str, Any]]) -> bytes:
    return bytes(JSONResponse(make()).body)


def new_way(make: Callable[[], dict[str, Any]]) -> bytes:
    return bytes(JSON(make()).body)


def model_way(make: Callable[[], dict[str, Any]], adapter: TypeAdapter[Any]) -> bytes:
    return bytes(JSON(adapter.validate_python(make())).body)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    cases: list[tuple[str, Callable[[], dict[str, Any]], TypeAdapter[Any]]] = [
        ("feed (20 videos)", feed_body, TypeAdapter(Feed)),
        ("details", details_body, TypeAdapter(VideoDetails)),
    ]
    print("| answer | JSONResponse µs | JSON µs | ratio | models µs | ratio |")
    print("|---|---|---|---|---|---|")
    for name, make, adapter in cases:
        ways: dict[str, Callable[[], bytes]] = {
            "old": partial(old_way, make),
            "new": partial(new_way, make),
            "models": partial(model_way, make, adapter),
        }
        answers = [json.loads(way()) for way in ways.values()]
        assert all(answer == answers[0] for answer in answers), "the three ways disagree"
        samples: dict[str, list[float]] = {key: [] for key in ways}
        for _ in range(args.rounds):
            for key, way in ways.items():
                seconds = timeit.timeit(way, number=args.number)
                samples[key].append(seconds / args.number * 1e6)
        old, new, models = (statistics.median(samples[key]) for key in ("old", "new", "models"))
        print(
            f"| {name} | {old:.1f} | {new:.1f} | {new / old:.2f}x "
            f"| {models:.1f} | {models / old:.2f}x |"
        )


if __name__ == "__main__":
    main()
