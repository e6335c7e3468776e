"""The uvicorn adapter checks itself: batched writes where it can, plain sends where not; its
per-socket heartbeat blames a client only for a silence that is the client's; and a remote
client's frames are followed by a segment that lets a lost one be resent early."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from realtime import uvicorn_writer
from realtime.delivery import frame_writer, keepalive
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


TEXT, CLOSE, PONG = 0x1, 0x8, 0xA


async def raw_client(
    port: int, headers: bytes = b""
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket client that shows every frame the server sends (control frames too);
    `headers`: more request header lines, each ending in CRLF."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n" + headers + b"\r\n"
    )
    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    return reader, writer


def send_raw(writer: asyncio.StreamWriter, text: bytes) -> None:
    """A short text frame, masked with a zero key."""
    writer.write(bytes((0x81, 0x80 | len(text))) + b"\x00" * 4 + text)


async def read_raw(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame's opcode and payload (short frames only)."""
    head = await reader.readexactly(2)
    return head[0] & 0x0F, await reader.readexactly(head[1] & 0x7F)


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
async def batching_server(
    handler: Callable[[WebSocket], Awaitable[None]] = slow_handler,
    follow_up: uvicorn_writer.FollowUp = "remote",
) -> AsyncIterator[int]:
    """`handler` under uvicorn with Cowatch's protocol, in this event loop; its port."""
    protocol = uvicorn_writer.protocol_class(follow_up)
    assert isinstance(protocol, type)
    app = Starlette(routes=[WebSocketRoute("/ws", handler)])
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
        reader, writer = await raw_client(port)
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            for text in (b"slow", b"next"):  # pings never answered
                send_raw(writer, text)
            frames = []
            while True:
                frames.append(await read_raw(reader))
                if frames[-1][0] == CLOSE:
                    break
        texts = [payload for opcode, payload in frames if opcode == 0x1]
        assert texts == [b"heartbeat on", b"handled next"]  # closed after the slow handler
        code = int.from_bytes(frames[-1][1][:2], "big")
        assert (code, frames[-1][1][2:]) == (1011, b"keepalive ping timeout")
        writer.close()


# The follow-up segment: one unsolicited pong behind each turn's frames, for remote clients.


async def turns_handler(websocket: WebSocket) -> None:
    """Two batched writes in one turn; after the client's "go", one ASGI send; then it closes."""
    await websocket.accept()
    writer = frame_writer(websocket.scope)
    assert writer is not None
    assert writer.write(["a"]) and writer.write(["b"])
    assert await websocket.receive_text() == "go"
    await websocket.send_text("c")
    assert await websocket.receive_text() == "bye"
    await websocket.close()


async def frames_of_a_session(
    port: int, *, follow_ups: bool, headers: bytes = b""
) -> list[tuple[int, bytes]]:
    reader, writer = await raw_client(port, headers)
    frames: list[tuple[int, bytes]] = []

    async def until(text: bytes) -> None:
        while (TEXT, text) not in frames:
            frames.append(await read_raw(reader))
        if follow_ups:  # the segment behind it, before anything else can come
            frames.append(await read_raw(reader))

    async with asyncio.timeout(RECEIVE_TIMEOUT_S):
        await until(b"b")
        send_raw(writer, b"go")
        await until(b"c")
        send_raw(writer, b"bye")
        while not frames or frames[-1][0] != CLOSE:
            frames.append(await read_raw(reader))
    writer.close()
    return frames


async def test_each_turns_frames_are_followed_by_one_pong_when_the_client_may_be_remote() -> None:
    async with batching_server(turns_handler, follow_up="always") as port:
        frames = await frames_of_a_session(port, follow_ups=True)
    opcodes = [opcode for opcode, _ in frames]
    assert opcodes == [TEXT, TEXT, PONG, TEXT, PONG, CLOSE]
    assert [payload for opcode, payload in frames if opcode == PONG] == [b"", b""]


async def test_a_client_on_this_host_gets_no_follow_up() -> None:
    async with batching_server(turns_handler) as port:  # "remote", the default
        frames = await frames_of_a_session(port, follow_ups=False)
        # Through a proxy on this host too, when the client it names is this host.
        proxied_local = await frames_of_a_session(
            port, follow_ups=False, headers=b"X-Forwarded-For: 127.0.0.1\r\n"
        )
    assert [opcode for opcode, _ in frames] == [TEXT, TEXT, TEXT, CLOSE]
    assert [opcode for opcode, _ in proxied_local] == [TEXT, TEXT, TEXT, CLOSE]


async def test_a_remote_client_behind_a_proxy_on_this_host_gets_its_follow_ups() -> None:
    # The peer is loopback (the proxy), the trusted proxy's header names a client elsewhere:
    # "remote", the default, follows its frames up (a moment later, for the proxy to send
    # the frames on first; bench/tail_loss.py --proxy nginx).
    async with batching_server(turns_handler) as port:
        frames = await frames_of_a_session(
            port, follow_ups=True, headers=b"X-Forwarded-For: 203.0.113.9\r\n"
        )
    assert [opcode for opcode, _ in frames] == [TEXT, TEXT, PONG, TEXT, PONG, CLOSE]


async def test_never_means_no_follow_up_even_for_a_remote_client() -> None:
    async with batching_server(turns_handler, follow_up="never") as port:
        frames = await frames_of_a_session(
            port, follow_ups=False, headers=b"X-Forwarded-For: 203.0.113.9\r\n"
        )
    assert [opcode for opcode, _ in frames] == [TEXT, TEXT, TEXT, CLOSE]


@pytest.mark.parametrize(
    ("client", "local"),
    [
        (("127.0.0.1", 5000), True),
        (("127.8.0.1", 5000), True),
        (("::1", 5000), True),
        (("::ffff:127.0.0.1", 5000), True),
        (None, True),  # a Unix socket
        (("10.77.0.2", 5000), False),
        (("192.168.1.5", 5000), False),
        (("2001:db8::5", 5000), False),
    ],
)
def test_which_peers_are_on_this_host(client: tuple[str, int] | None, local: bool) -> None:
    assert uvicorn_writer.is_local(client) is local
