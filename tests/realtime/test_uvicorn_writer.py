"""The uvicorn adapter checks itself: batched writes where it can, plain sends where not; and
its per-socket heartbeat blames a client only for a silence that is the client's."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from realtime import uvicorn_writer
from realtime.delivery import keepalive
from tests.live import RECEIVE_TIMEOUT_S


def test_on_the_installed_uvicorn_the_batching_protocol_is_used() -> None:
    assert uvicorn_writer.problems() == []
    protocol = uvicorn_writer.protocol_class()
    assert isinstance(protocol, type) and protocol.__name__ == "BatchingWebSocketProtocol"


def test_outside_the_tested_range_it_falls_back_to_uvicorns_own_protocol_loudly(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(uvicorn_writer, "TESTED", ((0, 1), (0, 2)))
    monkeypatch.setattr(uvicorn_writer, "NEEDED", (*uvicorn_writer.NEEDED, "gone_in_this_release"))
    caplog.set_level(logging.WARNING, logger="cowatch.realtime")
    assert uvicorn_writer.protocol_class() == "auto"
    (warning,) = [r for r in caplog.records if "batched websocket writes are off" in r.message]
    assert "outside the tested range" in warning.message
    assert "gone_in_this_release" in warning.message


# The heartbeat against a real uvicorn on a loopback port, on the batching protocol.

#: A fast party heartbeat, as tests/rest_compat/test_ws_parties.py uses.
INTERVAL_S, TIMEOUT_S = 0.1, 0.3
#: How long the slow handler works: longer than a ping's interval and deadline together, so a
#: pong deadline certainly falls inside it (the scenario itself, not a wait for something).
SLOW_S = 3 * (INTERVAL_S + TIMEOUT_S)


async def slow_handler(websocket: WebSocket) -> None:
    """Sets the party heartbeat, takes SLOW_S over the first message, then answers the next."""
    await websocket.accept()
    found = keepalive(websocket.scope)
    assert found is not None
    found.set(INTERVAL_S, TIMEOUT_S)
    await websocket.send_text("heartbeat on")
    await websocket.receive_text()
    await asyncio.sleep(SLOW_S)  # a handler slower than the pong deadline (a slow database)
    second = await websocket.receive_text()
    await websocket.send_text(f"handled {second}")
    await websocket.receive_text()  # until the client goes


@asynccontextmanager
async def batching_server() -> AsyncIterator[int]:
    """`slow_handler` under uvicorn with Cowatch's protocol, in this event loop; its port."""
    protocol = uvicorn_writer.protocol_class()
    assert isinstance(protocol, type)
    app = Starlette(routes=[WebSocketRoute("/ws", slow_handler)])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(
        app, lifespan="off", log_level="warning", ws=protocol, timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


async def test_a_client_that_answers_every_ping_survives_a_handler_slower_than_the_deadline() -> (
    None
):
    # While a handler works, uvicorn stops reading the socket (one message ahead of the app):
    # the client's pongs wait unread in the server's buffer. That is the server's delay, not
    # the client's: it used to close such a socket with 1011 "keepalive ping timeout".
    async with batching_server() as port, connect(f"ws://127.0.0.1:{port}/ws") as conn:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):  # the client answers pings itself
            assert await conn.recv() == "heartbeat on"
            await conn.send("slow")
            await conn.send("next")
            assert await conn.recv() == "handled next"


async def test_a_client_that_stopped_answering_is_still_closed_once_the_server_reads_again() -> (
    None
):
    async with batching_server() as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            for text in (b"slow", b"next"):  # masked with a zero key; pings never answered
                writer.write(bytes((0x81, 0x80 | len(text))) + b"\x00" * 4 + text)
            frames = []
            while True:
                head = await reader.readexactly(2)
                payload = await reader.readexactly(head[1] & 0x7F)
                frames.append((head[0] & 0x0F, payload))
                if head[0] & 0x0F == 0x8:
                    break
        texts = [payload for opcode, payload in frames if opcode == 0x1]
        assert texts == [b"heartbeat on", b"handled next"]  # closed after the slow handler
        code = int.from_bytes(frames[-1][1][:2], "big")
        assert (code, frames[-1][1][2:]) == (1011, b"keepalive ping timeout")
        writer.close()
