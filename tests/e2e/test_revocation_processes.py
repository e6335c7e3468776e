"""A logout on one `cowatch serve` closes that session's sockets on another (PostgreSQL and
Redis shared): the revocation travels on the bus (`sessions:revoked`), not in one process.

Issue 10, item 5: a socket signed in before logout kept running `me { email }` and mutations.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from realtime.connection import CLOSE_INVALID_TOKEN
from tests.live import receive_json, start_servers, wait_for
from tests.servers import Server, production_env

pytestmark = pytest.mark.timeout(180)
PASSWORD = "revocation test password"


@pytest.fixture(scope="module")
def servers(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    tmp = tmp_path_factory.mktemp("revocation-e2e")
    env = production_env(pg_url, tmp / "data", COWATCH_RATE_LIMIT_ENABLED="false")
    with ExitStack() as stack:
        running = start_servers(stack, 2, env, tmp)
        for server in running:
            wait_for(partial(_broadcast_ready, server), f"{server.url} broadcast ready")
        yield running


def _broadcast_ready(server: Server) -> bool:
    try:
        body = httpx.get(f"{server.url}/readyz", timeout=2).json()
    except (httpx.TransportError, ValueError):
        return False
    return bool(body.get("checks", {}).get("broadcast") == "ok")


async def _two_sessions(server: Server) -> tuple[str, str]:
    """One account, logged in twice: two tokens, two sessions."""
    name = f"rv_{uuid.uuid4().hex[:8]}"
    account = {"email": f"{name}@example.com", "password": PASSWORD, "username": name}
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        assert (await http.post("/api/auth/signup", json=account)).status_code == 201
        tokens = []
        for _ in range(2):
            login = await http.post("/api/auth/login", json=account)
            assert login.status_code == 200, login.text
            tokens.append(str(login.json()["access_token"]))
    return tokens[0], tokens[1]


async def _ws(server: Server, token: str) -> ClientConnection:
    """A signed-in `/ws` socket: it has answered a message, so sign-in is behind it."""
    conn = await connect(
        f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {token}"}
    )
    await conn.send(json.dumps({"type": "video:subscribe", "video_id": "none"}))
    assert (await receive_json(conn))["code"] == "NOT_FOUND"
    return conn


async def _graphql(server: Server, token: str, protocol: str) -> ClientConnection:
    """A GraphQL socket acknowledged (signed in) and running `me { email }` once."""
    conn = await connect(f"{server.ws_url}/graphql", subprotocols=[Subprotocol(protocol)])
    init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    await conn.send(json.dumps(init))
    assert (await receive_json(conn))["type"] == "connection_ack"
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    await conn.send(
        json.dumps({"id": "me", "type": start, "payload": {"query": "{ me { email } }"}})
    )
    answer = await _next(conn)
    assert answer["payload"]["data"]["me"]["email"].startswith("rv_"), answer
    return conn


async def _next(conn: ClientConnection) -> dict[str, Any]:
    while True:
        message = await receive_json(conn)
        if message.get("type") not in ("ping", "ka", "complete"):
            return message


async def _closed_with(conn: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await receive_json(conn)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_logout_on_one_process_closes_the_sessions_sockets_on_the_other(
    servers: list[Server],
) -> None:
    a, b = servers
    token, other = await _two_sessions(a)
    sockets = [
        await _ws(b, token),
        await _graphql(b, token, "graphql-transport-ws"),
        await _graphql(b, token, "graphql-ws"),
    ]
    unaffected = await _graphql(b, other, "graphql-transport-ws")
    try:
        async with httpx.AsyncClient(base_url=a.url) as http:
            logout = await http.post(
                "/api/auth/logout", headers={"Authorization": f"Bearer {token}"}
            )
            assert logout.status_code == 204
        for conn in sockets:
            assert await _closed_with(conn) == (CLOSE_INVALID_TOKEN, "token has been revoked")
        # The same user's other session keeps its socket, and it still answers.
        query = {"id": "again", "type": "subscribe", "payload": {"query": "{ me { email } }"}}
        await unaffected.send(json.dumps(query))
        answer = await _next(unaffected)
        assert answer["payload"]["data"]["me"]["email"].startswith("rv_"), answer
        # A new socket with the revoked token is refused on either process.
        for server in (a, b):
            async with connect(
                f"{server.ws_url}/ws", additional_headers={"Authorization": f"Bearer {token}"}
            ) as refused:
                assert (await _closed_with(refused))[0] == CLOSE_INVALID_TOKEN
    finally:
        for conn in (*sockets, unaffected):
            await conn.close()
    for server in servers:
        assert "ERROR" not in server.log()
