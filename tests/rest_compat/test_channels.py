"""Channel answers carry seed 000's keys, through the declared models."""

from __future__ import annotations

import httpx

from resolvers.services import Services
from tests.factories import make_user, make_videos

CHANNEL_KEYS = {"id", "name", "slug", "description", "subscriber_count"}


async def test_channel_keys_are_the_seeds(client: httpx.AsyncClient, services: Services) -> None:
    owner = await make_user(services)
    await make_videos(services, owner.user, 2)
    body = {"name": "Mine", "slug": "mine", "description": "things"}
    created = await client.post("/api/channels", json=body, headers=owner.headers)
    assert created.status_code == 201
    assert set(created.json()) == CHANNEL_KEYS
    details = (await client.get("/api/channels/mine", headers=owner.headers)).json()
    assert set(details) == CHANNEL_KEYS | {"videos"}
    assert [set(video) for video in details["videos"]] == [{"id", "title", "thumbnail_url"}] * 2
