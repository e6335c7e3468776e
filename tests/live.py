"""Real-time test kit: an in-process uvicorn server and small `/ws` and GraphQL socket clients."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from app import create_app
from config import Settings
from resolvers.services import Services
from server import uvicorn_options
from tests.parties import EVENTS as PARTY_EVENTS
from tests.servers import Server, cowatch_serve

#: A safety net so a broken test fails instead of hanging; never a speed assertion.
RECEIVE_TIMEOUT_S = 15


@dataclass
class LiveServer:
    url: str
    app: Starlette
    services: Services

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1)


@asynccontextmanager
async def live_server(settings: Settings) -> AsyncIterator[LiveServer]:
    """The real app under a real uvicorn on a loopback port, inside this event loop.

    The lifespan runs first and the socket is listening before `serve()` starts, so clients
    can connect at once (they wait in the backlog) without polling for readiness.
    """
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(512)
        port = sock.getsockname()[1]
        options = {**uvicorn_options(settings), "log_level": "warning"}
        config = uvicorn.Config(app, lifespan="off", timeout_graceful_shutdown=2, **options)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            yield LiveServer(url=f"http://127.0.0.1:{port}", app=app, services=app.state.services)
        finally:
            server.should_exit = True
            await task
            sock.close()


async def receive_json(conn: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        raw = await conn.recv()
    message: dict[str, Any] = json.loads(raw)
    return message


@dataclass
class WsClient:
    """The seed's `/ws` protocol."""

    conn: ClientConnection

    async def send(self, message: Any) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def subscribe(self, video_id: str) -> dict[str, Any]:
        """Subscribe and return the `video:state` that must come first."""
        await self.send({"type": "video:subscribe", "video_id": video_id})
        state = await self.next()
        assert state["type"] == "video:state", state
        return state

    async def unsubscribe(self, video_id: str) -> None:
        await self.send({"type": "video:unsubscribe", "video_id": video_id})

    async def next(self) -> dict[str, Any]:
        return await receive_json(self.conn)

    async def party_subscribe(self, party_id: str) -> dict[str, Any]:
        """Subscribe to a party and return the `party:snapshot` that must come first."""
        await self.send({"type": "party:subscribe", "party_id": party_id})
        snapshot = await self.next()
        assert snapshot["type"] == "party:snapshot", snapshot
        return snapshot

    async def party_ready(self, party_id: str, state: str, position: float) -> None:
        await self.send(
            {"type": "party:ready", "party_id": party_id, "state": state, "position": position}
        )

    async def next_of(
        self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda _frame: True
    ) -> dict[str, Any]:
        """The next frame of type `kind` that `where` accepts (frames before it are skipped)."""
        while True:
            frame = await self.next()
            if frame["type"] == kind and where(frame):
                return frame


@asynccontextmanager
async def ws_client(server_ws_url: str, token: str) -> AsyncIterator[WsClient]:
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(f"{server_ws_url}/ws", additional_headers=headers) as conn:
        yield WsClient(conn)


@dataclass
class GraphQLClient:
    """graphql-transport-ws, or the legacy graphql-ws when `legacy`."""

    conn: ClientConnection
    legacy: bool
    ids: dict[str, int] = field(default_factory=dict)

    async def subscribe(self, op_id: str, video_id: str, fields: str = "") -> dict[str, Any]:
        """Start `videoTimestamp` and return the first event (the current state)."""
        query = (
            "subscription Watch($id: ID!) { videoTimestamp(videoId: $id) {"
            f" videoId timestamp userId playing rate serverTime version {fields} }} }}"
        )
        await self.conn.send(
            json.dumps(
                {
                    "id": op_id,
                    "type": "start" if self.legacy else "subscribe",
                    "payload": {"query": query, "variables": {"id": video_id}},
                }
            )
        )
        return await self.next_event(op_id)

    async def start(self, op_id: str, query: str, variables: dict[str, Any]) -> None:
        """Start any operation; its messages arrive through `next_message`."""
        payload = {"query": query, "variables": variables}
        kind = "start" if self.legacy else "subscribe"
        await self.conn.send(json.dumps({"id": op_id, "type": kind, "payload": payload}))

    async def next_data(self, op_id: str, field_name: str) -> dict[str, Any]:
        """The next result of operation `op_id`: its root field's value (errors fail)."""
        message = await self.next_message()
        assert message.get("id") == op_id, message
        assert message["type"] == ("data" if self.legacy else "next"), message
        assert "errors" not in message["payload"], message
        value: dict[str, Any] = message["payload"]["data"][field_name]
        return value

    async def party_events(self, op_id: str, party_id: str) -> dict[str, Any]:
        """Start `partyEvents` and return its first event (the PartySnapshot)."""
        await self.start(op_id, PARTY_EVENTS, {"partyId": party_id})
        first = await self.next_data(op_id, "partyEvents")
        assert first["__typename"] == "PartySnapshot", first
        return first

    async def next_party_event(
        self,
        op_id: str,
        typename: str,
        where: Callable[[dict[str, Any]], bool] = lambda _event: True,
    ) -> dict[str, Any]:
        """The next `partyEvents` event of `typename` that `where` accepts (others skipped)."""
        while True:
            event = await self.next_data(op_id, "partyEvents")
            if event["__typename"] == typename and where(event):
                return event

    async def stop(self, op_id: str) -> None:
        kind = "stop" if self.legacy else "complete"
        await self.conn.send(json.dumps({"id": op_id, "type": kind}))

    async def next_message(self) -> dict[str, Any]:
        while True:
            message = await receive_json(self.conn)
            if message["type"] != "ka":
                return message

    async def next_event(self, op_id: str) -> dict[str, Any]:
        message = await self.next_message()
        assert message["id"] == op_id, message
        assert message["type"] == ("data" if self.legacy else "next"), message
        assert "errors" not in message["payload"], message
        event: dict[str, Any] = message["payload"]["data"]["videoTimestamp"]
        return event


@asynccontextmanager
async def graphql_client(
    server_ws_url: str, token: str | None, *, legacy: bool = False
) -> AsyncIterator[GraphQLClient]:
    protocol = "graphql-ws" if legacy else "graphql-transport-ws"
    async with connect(f"{server_ws_url}/graphql", subprotocols=[Subprotocol(protocol)]) as conn:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await conn.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = await receive_json(conn)
        assert ack["type"] == "connection_ack", ack
        yield GraphQLClient(conn, legacy)


async def put_time(
    http: Any, video_id: str, token: str, timestamp: float, **extra: Any
) -> dict[str, Any]:
    response = await http.put(
        f"/api/videos/{video_id}/time",
        json={"video_id": video_id, "timestamp": timestamp, **extra},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 30) -> None:
    """Poll another process's state (there is no event to await across processes)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout_s} s")
        time.sleep(0.05)


def start_servers(stack: ExitStack, count: int, env: dict[str, str], log_dir: Path) -> list[Server]:
    """Start `count` `cowatch serve` processes at once (start-up dominates these tests)."""
    managers = [cowatch_serve(env, log_dir) for _ in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(manager.__enter__) for manager in managers]
        servers = []
        for manager, future in zip(managers, futures, strict=True):
            servers.append(future.result())
            stack.push(manager.__exit__)
    return servers
