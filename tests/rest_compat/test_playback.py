"""The seek's answer renders the state's own dict: exactly the declared PlaybackStateOut."""

from __future__ import annotations

import json

import httpx

from resolvers.services import Services
from rest_compat.playback import PlaybackStateOut, ServerTime
from tests.factories import make_user, make_videos

STATE_KEYS = {"video_id", "timestamp", "user_id", "playing", "rate", "server_time", "version"}


async def test_seek_answer_is_the_declared_model_key_for_key(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1)
    response = await client.put(
        f"/api/videos/{video.id}/time",
        json={"timestamp": 12.5, "playing": True},
        headers=account.headers,
    )
    assert response.status_code == 201
    assert set(response.json()) == STATE_KEYS
    declared = PlaybackStateOut.model_validate_json(response.content)
    assert json.loads(declared.model_dump_json()) == response.json()


async def test_server_time_is_declared(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/time")
    assert set(response.json()) == {"received_at", "sent_at"}
    ServerTime.model_validate_json(response.content)
