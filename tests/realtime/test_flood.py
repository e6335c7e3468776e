"""A client flooding a socket is throttled, then closed; other viewers keep their updates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from config import Settings
from realtime.connection import CLOSE_FLOODING as WS_CLOSE_FLOODING
from realtime.flood import FloodGuard, TokenBucket, Verdict
from tests.factories import Account, make_user, make_videos
from tests.live import (
    LiveServer,
    graphql_client,
    live_server,
    put_time,
    receive_json,
    ws_client,
)

SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BURST = 3
STRIKES = 3


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    # Tokens come back once in ~17 minutes: the test never depends on how fast it runs.
    limits = {"ws_message_rate": 0.001, "ws_message_burst": BURST, "ws_flood_strikes": STRIKES}
    async with live_server(settings.model_copy(update=limits)) as live:
        yield live


@pytest.fixture
async def viewer(server: LiveServer) -> Account:
    return await make_user(server.services)


async def _until_closed(conn: ClientConnection) -> tuple[list[dict[str, Any]], int]:
    received = []
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            received.append(await receive_json(conn))
    assert closed.value.rcvd is not None
    return received, closed.value.rcvd.code


@SQLITE_ONLY
async def test_ws_flooder_is_throttled_then_closed(server: LiveServer, viewer: Account) -> None:
    (video,) = await make_videos(server.services, viewer.user, 1, duration=600.0)
    async with ws_client(server.ws_url, viewer.token) as calm:
        await calm.subscribe(video.id)
        async with connect(f"{server.ws_url}/ws?token={viewer.token}") as flooder:
            for _ in range(BURST + STRIKES + 5):
                await flooder.send(json.dumps({"type": "video:subscribe", "video_id": "nope"}))
            replies, code = await _until_closed(flooder)
        assert code == WS_CLOSE_FLOODING
        codes = [reply["code"] for reply in replies]
        assert codes[:BURST] == ["NOT_FOUND"] * BURST
        assert set(codes[BURST:]) == {"RATE_LIMITED"}
        assert len(codes) > BURST

        async with httpx.AsyncClient(base_url=server.url) as http:
            await put_time(http, video.id, viewer.token, 12.5)
        update = await calm.next()
        assert update["type"] == "video:timestamp_updated"
        assert update["timestamp"] == 12.5


@SQLITE_ONLY
async def test_graphql_socket_flooder_is_throttled_then_closed(
    server: LiveServer, viewer: Account
) -> None:
    (video,) = await make_videos(server.services, viewer.user, 1, duration=600.0)
    async with graphql_client(server.ws_url, viewer.token) as calm:
        await calm.subscribe("w", video.id)
        replies, code = await _flood_graphql(server, viewer)
        async with httpx.AsyncClient(base_url=server.url) as http:
            await put_time(http, video.id, viewer.token, 7.0)
        assert (await calm.next_event("w"))["timestamp"] == 7.0
    assert code == WS_CLOSE_FLOODING
    assert [reply["type"] for reply in replies[: BURST - 1]] == ["pong"] * (BURST - 1)
    refused = replies[BURST - 1]
    assert refused["id"] == "s1" and refused["type"] == "error"
    assert refused["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
    assert len(replies) == BURST  # throttled pings get no pong


async def _flood_graphql(server: LiveServer, viewer: Account) -> tuple[list[dict[str, Any]], int]:
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(f"{server.ws_url}/graphql", subprotocols=protocols) as flooder:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {viewer.token}"}}
        await flooder.send(json.dumps(init))
        assert (await receive_json(flooder))["type"] == "connection_ack"
        for _ in range(BURST - 1):
            await flooder.send(json.dumps({"type": "ping"}))
        subscribe = {
            "id": "s1",
            "type": "subscribe",
            "payload": {"query": 'subscription { videoTimestamp(videoId: "x") { version } }'},
        }
        await flooder.send(json.dumps(subscribe))
        for _ in range(STRIKES + 5):
            await flooder.send(json.dumps({"type": "ping"}))
        return await _until_closed(flooder)


def test_flood_guard_throttles_then_closes() -> None:
    now = [0.0]
    guard = FloodGuard(rate=10, burst=5, strikes=3, clock=lambda: now[0])
    verdicts = [guard.admit() for _ in range(9)]
    assert verdicts == [Verdict.ACCEPT] * 5 + [Verdict.THROTTLE] * 3 + [Verdict.CLOSE]
    calm = FloodGuard(rate=10, burst=5, strikes=3, clock=lambda: now[0])
    for _ in range(100):
        now[0] += 0.1
        assert calm.admit() is Verdict.ACCEPT
    bucket = TokenBucket(rate=1, burst=1, clock=lambda: now[0])
    assert bucket.take() and not bucket.take()
