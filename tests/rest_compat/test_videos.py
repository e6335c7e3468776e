"""The feed and details render plain dicts on their hot paths: exactly the declared models."""

from __future__ import annotations

import json

import httpx
from pydantic import TypeAdapter

from models import VideoStatus
from resolvers.services import Services
from rest_compat.videos import Feed, VideoDetails
from tests.factories import make_user, make_videos

COMMON = {"id", "title", "description", "category", "creator", "status", "created_at"}
#: seed 000's keys (plus the ones Cowatch added): pinned, so a refactor cannot drop or add one
DETAILS_KEYS = {
    VideoStatus.PROCESSING: COMMON | {"progress"},
    VideoStatus.TRANSCODED: COMMON
    | {"video_urls", "thumbnail_url", "duration", "current_timestamp", "view_count"},
    VideoStatus.FAILED: COMMON | {"failure_reason"},
}
FEED_ITEM_KEYS = {
    "id",
    "title",
    "thumbnail_url",
    "category",
    "creator",
    "view_count",
    "duration",
    "created_at",
}


async def test_feed_renders_the_feed_model_key_for_key(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services, "feeder")
    await make_videos(services, owner.user, 3, category="music")
    response = await client.get("/api/videos/feed", params={"limit": 2})
    assert set(response.json()) == {"videos", "total_pages", "current_page"}
    assert set(response.json()["videos"][0]) == FEED_ITEM_KEYS
    declared = Feed.model_validate_json(response.content)
    assert json.loads(declared.model_dump_json()) == response.json()


async def test_details_render_the_model_of_each_status_key_for_key(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services, "detailer")
    adapter: TypeAdapter[object] = TypeAdapter(VideoDetails)
    for status, keys in DETAILS_KEYS.items():
        (video,) = await make_videos(services, owner.user, 1, status=status)
        response = await client.get(f"/api/videos/{video.id}")
        assert response.status_code == 200
        assert set(response.json()) == keys
        declared = adapter.validate_json(response.content)
        assert type(declared).__name__.upper().endswith(status.value)
        assert json.loads(adapter.dump_json(declared)) == response.json()
