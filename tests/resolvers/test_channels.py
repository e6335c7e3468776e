"""Channels: one per user, unique slugs, details with videos — REST and GraphQL."""

from __future__ import annotations

import httpx
import pytest

from resolvers.services import Services
from tests.factories import error_code, gql, make_user, make_videos

CREATE = "mutation($n: String!, $s: String!, $d: String) { createChannel(name: $n, slug: $s, description: $d) { id slug name subscriberCount } }"  # noqa: E501


async def test_create_and_read_channel(client: httpx.AsyncClient, services: Services) -> None:
    owner = await make_user(services, "owner")
    created = await client.post(
        "/api/channels",
        json={"name": "My Channel", "slug": "my-channel_1", "description": "about"},
        headers=owner.headers,
    )
    assert created.status_code == 201
    assert created.json()["slug"] == "my-channel_1"
    await make_videos(services, owner.user, 2)

    details = await client.get("/api/channels/my-channel_1", headers=owner.headers)
    assert details.status_code == 200
    body = details.json()
    assert body["name"] == "My Channel"
    assert body["description"] == "about"
    assert body["subscriber_count"] == 0
    assert [video["title"] for video in body["videos"]] == ["video 1", "video 0"]
    assert set(body["videos"][0]) == {"id", "title", "thumbnail_url"}


async def test_second_channel_is_411_and_slug_taken_is_409(
    client: httpx.AsyncClient, services: Services
) -> None:
    alice = await make_user(services)
    bob = await make_user(services)
    first = {"name": "A", "slug": "taken-slug"}
    assert (
        await client.post("/api/channels", json=first, headers=alice.headers)
    ).status_code == 201
    again = await client.post(
        "/api/channels", json={"name": "B", "slug": "other-slug"}, headers=alice.headers
    )
    assert again.status_code == 411
    assert again.json()["error"]["code"] == "ALREADY_HAS_CHANNEL"
    clash = await client.post("/api/channels", json=first, headers=bob.headers)
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "A", "slug": "ab"},
        {"name": "A", "slug": "Upper-Case"},
        {"name": "A", "slug": "x" * 51},
        {"name": "A", "slug": "bad slug"},
        {"name": "", "slug": "fine-slug"},
        {"name": "   ", "slug": "fine-slug"},
        {"name": "A" * 101, "slug": "fine-slug"},
        {"slug": "fine-slug"},
        {"name": "A", "slug": 5},
    ],
)
async def test_channel_validation_is_400(
    client: httpx.AsyncClient, services: Services, body: dict[str, object]
) -> None:
    owner = await make_user(services)
    response = await client.post("/api/channels", json=body, headers=owner.headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"
    async with services.db.session() as session:
        from sqlmodel import func, select

        from models import Channel

        assert (await session.exec(select(func.count()).select_from(Channel))).one() == 0


async def test_channel_routes_need_a_token(client: httpx.AsyncClient, services: Services) -> None:
    assert (
        await client.post("/api/channels", json={"name": "A", "slug": "abc"})
    ).status_code == 403
    assert (await client.get("/api/channels/abc")).status_code == 403
    account = await make_user(services)
    missing = await client.get("/api/channels/does-not-exist", headers=account.headers)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


async def test_graphql_channel(client: httpx.AsyncClient, services: Services) -> None:
    owner = await make_user(services, "gqlowner")
    other = await make_user(services)
    anonymous = await gql(client, CREATE, {"n": "N", "s": "gql-slug"})
    assert error_code(anonymous) == "UNAUTHENTICATED"

    created = await gql(client, CREATE, {"n": "N", "s": "gql-slug", "d": None}, token=owner.token)
    assert created["data"]["createChannel"]["slug"] == "gql-slug"
    second = await gql(client, CREATE, {"n": "N", "s": "gql-other"}, token=owner.token)
    assert error_code(second) == "ALREADY_HAS_CHANNEL"
    taken = await gql(client, CREATE, {"n": "N", "s": "gql-slug"}, token=other.token)
    assert error_code(taken) == "CONFLICT"
    invalid = await gql(client, CREATE, {"n": "N", "s": "NO"}, token=other.token)
    assert error_code(invalid) == "BAD_USER_INPUT"

    await make_videos(services, owner.user, 3)
    body = await gql(
        client,
        '{ channel(slug: "gql-slug") { name owner { username channel { slug } } '
        "videos { title creator { username } } } }",
    )
    channel = body["data"]["channel"]
    assert channel["owner"] == {"username": "gqlowner", "channel": {"slug": "gql-slug"}}
    assert [video["title"] for video in channel["videos"]] == ["video 2", "video 1", "video 0"]
    missing = await gql(client, '{ channel(slug: "nope") { id } }')
    assert missing["data"]["channel"] is None
