"""The socket both faces share: sessions that end close their sockets, caps, Origin, hostile frames.

Every attack here runs against a real server over real sockets, on `/ws` and on `/graphql`.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

import realtime.connection
from config import Settings
from realtime.connection import (
    CLOSE_INVALID_TOKEN,
    CLOSE_TOO_MANY_SOCKETS,
)
from resolvers import auth
from tests.factories import Account, make_user, make_videos
from tests.live import LiveServer, graphql_client, live_server, receive_json, ws_client

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
PER_USER = 4
PER_ADDRESS = 8
TRANSPORT = [Subprotocol("graphql-transport-ws")]
LEGACY = [Subprotocol("graphql-ws")]


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    limits = {
        "max_sockets_per_user": PER_USER,
        "max_sockets_per_address": PER_ADDRESS,
        "cors_origins": "https://friend.example",
        "ws_max_message_bytes": 4096,
        "graphql_max_bytes": 1024,
    }
    async with live_server(settings.model_copy(update=limits)) as live:
        yield live


@pytest.fixture
async def viewer(server: LiveServer) -> Account:
    return await make_user(server.services)


@pytest.fixture
async def video_id(server: LiveServer, viewer: Account) -> str:
    (video,) = await make_videos(server.services, viewer.user, 1)
    return video.id


async def closed_code(conn: ClientConnection) -> int:
    """Read until the server closes; its close code."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await receive_json(conn)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code


async def test_logout_closes_every_socket_of_that_session_and_no_other(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    other = auth.issue_token(secret=server.services.jwt_secret, user_id=viewer.user.id, ttl_s=600)
    async with (
        ws_client(server.ws_url, viewer.token) as ws,
        graphql_client(server.ws_url, viewer.token) as gql,
        graphql_client(server.ws_url, viewer.token, legacy=True) as legacy,
        ws_client(server.ws_url, other) as unaffected,
    ):
        await ws.subscribe(video_id)
        await gql.subscribe("a", video_id)
        await unaffected.subscribe(video_id)
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.post("/api/auth/logout", headers=viewer.headers)
            assert response.status_code == 204
        for conn in (ws.conn, gql.conn, legacy.conn):
            assert await closed_code(conn) == CLOSE_INVALID_TOKEN
        # The other session of the same user keeps its socket and its updates.
        async with httpx.AsyncClient(base_url=server.url) as http:
            response = await http.put(
                f"/api/videos/{video_id}/time",
                json={"timestamp": 5},
                headers={"Authorization": f"Bearer {other}"},
            )
            assert response.status_code == 201
        assert (await unaffected.next())["timestamp"] == 5


async def test_a_socket_closes_when_its_token_expires(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    secret = server.services.jwt_secret
    short = auth.issue_token(secret=secret, user_id=viewer.user.id, ttl_s=1)
    for open_client in (ws_client, graphql_client):
        async with open_client(server.ws_url, short) as client:  # type: ignore[operator]
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await receive_json(client.conn)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CLOSE_INVALID_TOKEN
            assert closed.value.rcvd.reason == "token has expired"
        short = auth.issue_token(secret=secret, user_id=viewer.user.id, ttl_s=1)


async def test_every_message_rechecks_the_tokens_expiry(
    server: LiveServer, viewer: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the expiry timer (tokens further out than it arms are checked this way only),
    the first message after the expiry closes the socket instead of being handled."""
    monkeypatch.setattr(realtime.connection, "MAX_TIMER_S", -1.0)  # arm no timer
    secret = server.services.jwt_secret
    for face in ("ws", "graphql"):
        short = auth.issue_token(secret=secret, user_id=viewer.user.id, ttl_s=3)
        expires = jwt.decode(short, options={"verify_signature": False})["exp"]
        if face == "ws":
            async with ws_client(server.ws_url, short) as ws:
                await ws.send({"type": "video:subscribe", "video_id": "x"})
                assert (await ws.next())["code"] == "NOT_FOUND"  # signed in, answering
                await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)  # the clock, not a sync
                await ws.send({"type": "video:subscribe", "video_id": "x"})
                assert await closed_code(ws.conn) == CLOSE_INVALID_TOKEN
        else:
            async with graphql_client(server.ws_url, short) as gql:
                await asyncio.sleep(max(0.0, expires - time.time()) + 0.1)
                query = {"id": "me", "type": "subscribe", "payload": {"query": "{ me { email } }"}}
                await gql.conn.send(json.dumps(query))
                assert await closed_code(gql.conn) == CLOSE_INVALID_TOKEN


async def test_sockets_per_user_and_per_address_are_capped(
    server: LiveServer, viewer: Account
) -> None:
    hub = server.services.hub
    others = [await make_user(server.services) for _ in range(2)]

    async def signed_in(user: Account, count: int) -> None:
        # A /ws client is open once the handshake ends; the server signs it in just after.
        await hub.until(lambda: hub.per_user[user.user.id] == count)

    async with (
        ws_client(server.ws_url, viewer.token),
        ws_client(server.ws_url, viewer.token),
        ws_client(server.ws_url, viewer.token),
        graphql_client(server.ws_url, viewer.token),
    ):
        await signed_in(viewer, PER_USER)
        # The user's fifth socket is refused, whichever face it uses.
        async with connect(f"{server.ws_url}/ws?token={viewer.token}") as fourth:
            assert await closed_code(fourth) == CLOSE_TOO_MANY_SOCKETS
        async with connect(f"{server.ws_url}/graphql", subprotocols=TRANSPORT) as fourth:
            init = {"Authorization": f"Bearer {viewer.token}"}
            await fourth.send(json.dumps({"type": "connection_init", "payload": init}))
            assert await closed_code(fourth) == CLOSE_TOO_MANY_SOCKETS
        await hub.until(lambda: sum(hub.per_address.values()) == PER_USER)
        # Other users from the same address fill it up to its cap; then even they are refused.
        async with (
            ws_client(server.ws_url, others[0].token),
            ws_client(server.ws_url, others[0].token),
            ws_client(server.ws_url, others[1].token),
            ws_client(server.ws_url, others[1].token),
        ):
            await hub.until(lambda: sum(hub.per_address.values()) == PER_ADDRESS)
            async with connect(f"{server.ws_url}/ws?token={others[1].token}") as extra:
                assert await closed_code(extra) == CLOSE_TOO_MANY_SOCKETS
    await hub.until(lambda: not hub.per_address and not hub.per_user)
    # Every count is given back when the sockets close.
    async with ws_client(server.ws_url, viewer.token) as again:
        await again.send({"type": "video:subscribe", "video_id": "x"})
        assert (await again.next())["code"] == "NOT_FOUND"


async def test_cross_origin_handshakes_are_refused_unless_the_origin_is_allowed(
    server: LiveServer, viewer: Account
) -> None:
    host = server.url.removeprefix("http://")
    bearer = {"Authorization": f"Bearer {viewer.token}"}
    for path, protocols in (("/ws", None), ("/graphql", TRANSPORT)):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(
                f"{server.ws_url}{path}",
                origin="https://evil.example",  # type: ignore[arg-type]
                additional_headers=bearer,
                subprotocols=protocols,
            ):
                pass
        assert refused.value.response.status_code == 403
        for origin in (f"http://{host}", "https://friend.example"):
            async with connect(
                f"{server.ws_url}{path}",
                origin=origin,  # type: ignore[arg-type]
                additional_headers=bearer,
                subprotocols=protocols,
            ) as conn:
                if protocols:
                    await conn.send(json.dumps({"type": "connection_init", "payload": {}}))
                    assert (await receive_json(conn))["type"] == "connection_ack"
                else:
                    await conn.send(json.dumps({"type": "video:subscribe", "video_id": "x"}))
                    assert (await receive_json(conn))["code"] == "NOT_FOUND"


async def test_the_cookie_signs_in_from_the_own_origin_and_from_a_listed_one(
    server: LiveServer, viewer: Account
) -> None:
    cookie = {"Cookie": f"{auth.COOKIE_NAME}={viewer.token}"}
    host = server.url.removeprefix("http://")
    for origin in (f"http://{host}", "https://friend.example"):
        async with connect(
            f"{server.ws_url}/ws",
            origin=origin,  # type: ignore[arg-type]
            additional_headers=cookie,
        ) as conn:
            await conn.send(json.dumps({"type": "video:subscribe", "video_id": "x"}))
            assert (await receive_json(conn))["code"] == "NOT_FOUND"


async def test_hostile_frames_on_ws_get_an_error_and_the_socket_stays_open(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    async with ws_client(server.ws_url, viewer.token) as client:
        for raw, code in (
            ("x" * 5000, "MESSAGE_TOO_LARGE"),
            ("[" * 2000 + "]" * 2000, "INVALID_JSON"),
            ("[]", "INVALID_MESSAGE"),
            ('{"type": "video:subscribe", "video_id": ["a"]}', "BAD_USER_INPUT"),
        ):
            await client.send(raw)
            reply = await client.next()
            assert reply["type"] == "error" and reply["code"] == code, (raw[:20], reply)
        await client.subscribe(video_id)


async def _transport(server: LiveServer, token: str) -> Any:
    conn = await connect(f"{server.ws_url}/graphql", subprotocols=TRANSPORT)
    await conn.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert (await receive_json(conn))["type"] == "connection_ack"
    return conn


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("[]", 4400),
        ('{"id": "1", "type": "subscribe", "payload": "str"}', 4400),
        ('{"type": 7}', 4400),
        ("[" * 2000 + "]" * 2000, 4400),
        ('{"type": "subscribe", "id": "1", "payload": {"query": "' + "#" * 5000 + '"}}', 1009),
    ],
    ids=["list", "payload-string", "type-number", "nested", "too-big"],
)
async def test_hostile_frames_on_graphql_close_with_a_protocol_code_not_a_crash(
    server: LiveServer, viewer: Account, frame: str, code: int, caplog: pytest.LogCaptureFixture
) -> None:
    conn = await _transport(server, viewer.token)
    try:
        await conn.send(frame)
        assert await closed_code(conn) == code
    finally:
        await conn.close()
    assert "Traceback" not in caplog.text


async def test_every_operation_type_runs_on_both_graphql_protocols(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    mutation = (
        f'mutation {{ updateVideoTimestamp(videoId: "{video_id}", timestamp: 4) {{ version }} }}'
    )
    query = "{ me { username } }"
    bad_variable = ("query($id: ID!) { video(id: $id) { id } }", {"id": ["a", "b"]})
    async with graphql_client(server.ws_url, viewer.token, legacy=True) as legacy:
        for op_id, document in (("m", mutation), ("q", query)):
            await legacy.conn.send(
                json.dumps({"id": op_id, "type": "start", "payload": {"query": document}})
            )
            data = await legacy.next_message()
            assert data["type"] == "data" and "errors" not in data["payload"], data
            assert (await legacy.next_message()) == {"type": "complete", "id": op_id}
    async with graphql_client(server.ws_url, viewer.token) as transport:
        await transport.conn.send(
            json.dumps({"id": "q", "type": "subscribe", "payload": {"query": query}})
        )
        result = await transport.next_message()
        assert result["payload"]["data"]["me"]["username"] == viewer.user.username
        assert (await transport.next_message()) == {"id": "q", "type": "complete"}
        document, variables = bad_variable
        await transport.conn.send(
            json.dumps(
                {
                    "id": "v",
                    "type": "subscribe",
                    "payload": {"query": document, "variables": variables},
                }
            )
        )
        answer = await transport.next_message()
        assert answer["id"] == "v" and answer["type"] in ("error", "next"), answer
        if answer["type"] == "next":
            assert answer["payload"]["errors"], answer
            assert (await transport.next_message()) == {"id": "v", "type": "complete"}
        # The socket is still open and working.
        event = await transport.subscribe("s", video_id)
        assert event["timestamp"] == 4


WATCH = "subscription($id: ID!) { videoTimestamp(videoId: $id) { version } }"


async def test_a_document_over_the_byte_cap_is_refused_for_its_operation_unparsed(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    conn = await _transport(server, viewer.token)
    try:
        padded = 'subscription { videoTimestamp(videoId: "x") { version } } #' + "x" * 1200
        await conn.send(
            json.dumps({"id": "big", "type": "subscribe", "payload": {"query": padded}})
        )
        refused = await receive_json(conn)
        assert refused["id"] == "big" and refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
        await conn.send(
            json.dumps(
                {
                    "id": "ok",
                    "type": "subscribe",
                    "payload": {
                        "query": WATCH,
                        "variables": {"id": video_id},
                    },
                }
            )
        )
        assert (await receive_json(conn))["id"] == "ok"
    finally:
        await conn.close()
