"""The feed and video details: validation, ordering, filters and a constant statement count."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from config import Settings
from models import Rendition, Video, VideoStatus
from resolvers.services import Services
from storage.keys import rendition_key
from tests.factories import error_code, gql, make_user, make_videos

FEED = """query($page: Int!, $limit: Int!, $category: String) {
  feed(page: $page, limit: $limit, category: $category) {
    totalPages currentPage
    videos { id title thumbnailUrl viewCount createdAt creator { id username } channel { slug }
             renditions { quality url } }
  }
}"""


@contextmanager
def count_statements(services: Services) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(args[2])

    engine = services.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def test_feed_shape_order_and_paging(client: httpx.AsyncClient, services: Services) -> None:
    creator = await make_user(services, "creator")
    await make_videos(services, creator.user, 5)
    await make_videos(services, creator.user, 2, status=VideoStatus.PROCESSING)
    await make_videos(services, creator.user, 1, status=VideoStatus.FAILED)

    first = await client.get("/api/videos/feed", params={"page": 1, "limit": 2})
    assert first.status_code == 200
    body = first.json()
    assert body["total_pages"] == 3
    assert body["current_page"] == 1
    assert [video["title"] for video in body["videos"]] == ["video 4", "video 3"]
    video = body["videos"][0]
    assert {"id", "title", "thumbnail_url", "creator", "view_count", "created_at"} <= video.keys()
    assert video["creator"] == {"id": creator.user.id, "username": "creator"}
    assert video["created_at"].endswith("Z")

    last = (await client.get("/api/videos/feed", params={"page": 3, "limit": 2})).json()
    assert [video["title"] for video in last["videos"]] == ["video 0"]
    beyond = (await client.get("/api/videos/feed", params={"page": 9, "limit": 2})).json()
    assert beyond["videos"] == []
    default = (await client.get("/api/videos/feed")).json()
    assert len(default["videos"]) == 5
    assert default["current_page"] == 1


async def test_feed_category_filter(client: httpx.AsyncClient, services: Services) -> None:
    creator = await make_user(services)
    await make_videos(services, creator.user, 2, category="music")
    await make_videos(services, creator.user, 3, category="sports")
    music = (await client.get("/api/videos/feed", params={"category": "music"})).json()
    assert len(music["videos"]) == 2
    assert music["total_pages"] == 1
    none = (await client.get("/api/videos/feed", params={"category": "cooking"})).json()
    assert none == {"videos": [], "total_pages": 0, "current_page": 1}
    body = await gql(client, FEED, {"page": 1, "limit": 10, "category": "sports"})
    assert len(body["data"]["feed"]["videos"]) == 3


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"page": -1}, {"limit": 0}, {"limit": 101}, {"page": "x"}, {"limit": "1.5"}],
)
async def test_feed_bad_paging_is_400(
    client: httpx.AsyncClient, params: dict[str, int | str]
) -> None:
    response = await client.get("/api/videos/feed", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    body = (
        await gql(client, FEED, {"page": params.get("page", 1), "limit": params.get("limit", 20)})
        if all(isinstance(v, int) for v in params.values())
        else None
    )
    if body is not None:
        assert error_code(body) == "BAD_USER_INPUT"


async def add_renditions(services: Services, videos: list[Video]) -> None:
    rows = [
        Rendition(
            video_id=video.id,
            quality=q,
            width=h * 16 // 9,
            height=h,
            storage_key=rendition_key(video.id, q),
        )
        for video in videos
        for q, h in (("240p", 240), ("480p", 480))
    ]
    async with services.db.session() as session:
        session.add_all(rows)
        await session.commit()


NESTED = """query($page: Int!, $limit: Int!) { feed(page: $page, limit: $limit) {
  totalPages videos { id creator { username channel { slug } } renditions { quality url }
    channel { slug owner { username } videos { id title renditions { quality } } } } } }"""
CHANNEL = """query($slug: String!) { channel(slug: $slug) { slug owner { username }
  videos { id creator { username } channel { slug } renditions { url } } } }"""


async def test_statement_count_does_not_grow_with_any_list(
    client: httpx.AsyncClient, services: Services
) -> None:
    """feed.videos, Video.renditions and Channel.videos cost a fixed number of statements."""
    creators = [await make_user(services) for _ in range(3)]
    for n, account in enumerate(creators):
        made = await make_videos(services, account.user, 1 if n == 0 else 40)
        await add_renditions(services, made)
        await client.post(
            "/api/channels",
            json={"name": "c", "slug": f"ch-{n}"},
            headers=account.headers,
        )
    await client.get("/api/videos/feed")  # the count is cached from here on

    counts: dict[str, list[int]] = {"rest": [], "graphql": [], "channel": [], "graphql channel": []}
    for limit in (1, 50):
        with count_statements(services) as statements:
            response = await client.get("/api/videos/feed", params={"limit": limit})
        assert len(response.json()["videos"]) == limit
        counts["rest"].append(len(statements))
        with count_statements(services) as statements:
            body = await gql(client, NESTED, {"page": 1, "limit": limit})
        assert len(body["data"]["feed"]["videos"]) == limit, body
        counts["graphql"].append(len(statements))
    for slug in ("ch-0", "ch-1"):  # one video, forty videos
        headers = creators[0].headers
        with count_statements(services) as statements:
            response = await client.get(f"/api/channels/{slug}", headers=headers)
        assert response.status_code == 200
        counts["channel"].append(len(statements))
        with count_statements(services) as statements:
            body = await gql(client, CHANNEL, {"slug": slug})
        assert len(body["data"]["channel"]["videos"]) == (1 if slug == "ch-0" else 40), body
        counts["graphql channel"].append(len(statements))
    assert all(len(set(seen)) == 1 for seen in counts.values()), counts
    # page, then users' channels, renditions, owners' videos, their renditions, owners: batched
    assert counts["rest"][0] == 1, counts


async def test_feed_total_is_counted_once_per_ttl(
    settings: Settings, services: Services, client: httpx.AsyncClient
) -> None:
    creator = await make_user(services)
    await make_videos(services, creator.user, 3)
    with count_statements(services) as statements:
        first = await gql(client, "{ feed(limit: 1) { totalPages total } }")
        again = (await client.get("/api/videos/feed", params={"limit": 1})).json()
    assert first["data"]["feed"] == {"totalPages": 3, "total": 3}
    assert again["total_pages"] == 3
    assert sum("count(" in statement.lower() for statement in statements) == 1, statements
    with count_statements(services) as statements:
        await gql(client, "{ feed(limit: 1) { currentPage } }")
    assert not any("count(" in statement.lower() for statement in statements), statements


async def test_video_details_by_status(client: httpx.AsyncClient, services: Services) -> None:
    creator = await make_user(services, "maker")
    (processing,) = await make_videos(services, creator.user, 1, status=VideoStatus.PROCESSING)
    (done,) = await make_videos(services, creator.user, 1)

    pending = (await client.get(f"/api/videos/{processing.id}")).json()
    assert pending["status"] == "PROCESSING"
    assert pending["creator"] == {"id": creator.user.id, "username": "maker"}
    assert "video_urls" not in pending

    ready = await client.get(f"/api/videos/{done.id}")
    body = ready.json()
    assert body["status"] == "TRANSCODED"
    assert {"video_urls", "current_timestamp", "view_count"} <= body.keys()
    assert body["current_timestamp"] == 0.0
    again = (await client.get(f"/api/videos/{done.id}")).json()
    assert again["view_count"] == body["view_count"] + 1

    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = await client.get(f"/api/videos/{missing}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    gone = await gql(client, '{ video(id: "not-a-uuid") { id } }')
    assert gone["data"]["video"] is None
    found = await gql(
        client,
        "query($id: ID!) { video(id: $id) { title status creator { username } } }",
        {"id": done.id},
    )
    assert found["data"]["video"] == {
        "title": done.title,
        "status": "TRANSCODED",
        "creator": {"username": "maker"},
    }


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/api/nothing-here")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    wrong = await client.delete("/api/videos/feed")
    assert wrong.status_code == 405
