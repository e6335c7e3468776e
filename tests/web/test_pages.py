"""The server-rendered pages without a browser: content, escaping, redirects, errors."""

from __future__ import annotations

import re

import httpx
from markupsafe import escape

from models import Video, VideoStatus
from resolvers.services import Services
from tests.factories import gql, make_user, make_videos
from web.pages import PAGE_SIZE, clock, page_links, safe_next


async def test_feed_lists_newest_first_with_categories_and_pages(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services, "maker")
    await make_videos(services, owner.user, PAGE_SIZE + 1, category="Music")
    await make_videos(services, owner.user, 1, category="News")
    await make_videos(services, owner.user, 1, status=VideoStatus.PROCESSING, category="Hidden")

    first = await client.get("/")
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    body = first.text
    assert body.count('class="card"') == PAGE_SIZE
    assert 'href="/?category=Music"' in body
    assert 'href="/?category=News"' in body
    assert "Hidden" not in body
    assert 'href="/?page=2" rel="next"' in body
    assert "maker" in body

    second = await client.get("/", params={"page": 2})
    assert second.text.count('class="card"') == 2
    assert 'rel="prev"' in second.text

    music = await client.get("/", params={"category": "Music", "page": 2})
    assert music.text.count('class="card"') == 1
    assert "<h1>Music</h1>" in music.text
    assert 'href="/?page=1&amp;category=Music"' in music.text


async def test_feed_escapes_what_users_wrote(client: httpx.AsyncClient, services: Services) -> None:
    owner = await make_user(services)
    (video,) = await make_videos(services, owner.user, 1)
    evil = '<script>alert("x")</script>'
    async with services.db.session() as session:
        row = await session.get(Video, video.id)
        assert row is not None
        row.title, row.category, row.description = evil, '"><img src=x>', evil
        session.add(row)
        await session.commit()
    for path in ("/", f"/watch/{video.id}"):
        body = (await client.get(path)).text
        assert "<script>alert" not in body
        assert "<img src=x>" not in body
        assert str(escape(evil)) in body


async def test_feed_rejects_an_overlong_category_with_a_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/", params={"category": "x" * 51})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in response.text


async def test_watch_page_shows_renditionless_states_and_404s(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services)
    (processing,) = await make_videos(services, owner.user, 1, status=VideoStatus.PROCESSING)
    page = await client.get(f"/watch/{processing.id}")
    assert page.status_code == 200
    assert 'id="transcode-progress"' in page.text
    assert "<video" not in page.text
    for missing in ("/watch/00000000-0000-0000-0000-000000000000", "/watch/not-a-uuid"):
        assert (await client.get(missing)).status_code == 404


async def test_upload_page_needs_a_signed_in_viewer(
    client: httpx.AsyncClient, services: Services
) -> None:
    anonymous = await client.get("/upload")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=/upload"
    owner = await make_user(services, "uploader")
    client.cookies.set("Authentication", owner.token)
    signed_in = await client.get("/upload")
    assert signed_in.status_code == 200
    assert 'enctype="multipart/form-data"' in signed_in.text
    assert re.search(r'data-viewer="uploader"', signed_in.text)


async def test_logout_revokes_the_token_and_clears_the_cookie(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services)
    client.cookies.set("Authentication", owner.token)
    response = await client.post("/logout", headers={"Origin": "http://testserver"})
    assert response.status_code == 303
    assert "Authentication=;" in response.headers["set-cookie"]
    me = await gql(client, "{ me { id } }", token=owner.token)
    assert me["errors"][0]["message"] == "token has been revoked", me


async def test_user_query_names_who_moved_the_playhead(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services, "namer")
    query = "query($id: ID!) { user(id: $id) { username email } }"
    found = await gql(client, query, {"id": owner.user.id})
    assert found["data"]["user"] == {"username": "namer", "email": None}
    missing = await gql(client, query, {"id": "nobody"})
    assert missing["data"]["user"] is None


def test_login_next_only_goes_to_this_site() -> None:
    assert safe_next("/watch/1") == "/watch/1"
    assert safe_next("/?page=2&category=a%20b") == "/?page=2&category=a%20b"
    hostile: list[str | None] = ["//evil.example", "https://evil.example", "/\\evil.example"]
    hostile += ["/\t/evil.example"]
    hostile += ["/\n/evil.example", "/ /x", "\\\\evil.example", "", None]
    for hostile_next in hostile:
        assert safe_next(hostile_next) == "/", hostile_next


def test_page_links_and_clock() -> None:
    assert page_links(1, 1) == [1]
    assert page_links(5, 20) == [1, None, 3, 4, 5, 6, 7, None, 20]
    assert page_links(2, 4) == [1, 2, 3, 4]
    assert clock(None) == ""
    assert clock(65) == "1:05"
    assert clock(3723) == "1:02:03"
