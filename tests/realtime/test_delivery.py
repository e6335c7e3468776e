"""Delivery on log topics (every event counts), late starts, unversioned signals, broken writers;
and watch together end to end: a real uvicorn server, real websocket clients, both faces.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any, ClassVar

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from config import Settings
from realtime.bus import Bus
from realtime.delivery import MAX_BACKLOG, FrameWriter, Listener, Outbox
from realtime.events import Event, Head
from resolvers.playback import PlaybackState
from tests.factories import Account, make_user, make_videos
from tests.live import (
    LiveServer,
    graphql_client,
    live_server,
    put_time,
    receive_json,
    ws_client,
)
from tests.realtime.test_bus import Recorder

PARTY = "party:p1"


def entry(version: int | None, topic: str = PARTY) -> Event:
    return Event(topic=topic, version=version, kind="chat", data={"n": version})


def render(event: Event, first: bool) -> str:
    return f"{'first' if first else 'event'}:{event.version}"


class Log:
    """A log topic's source (a party's events table): a head version, and what follows it."""

    stateful: ClassVar[bool] = False

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.asked: list[int | None] = []

    async def head(self, topic: str) -> Head:
        return Head(version=0)

    async def since(self, topic: str, version: int | None) -> list[Event]:
        self.asked.append(version)
        return [e for e in self.events if version is None or (e.version or 0) > version]


@pytest.fixture
async def log() -> Log:
    return Log()


@pytest.fixture
async def bus(log: Log) -> AsyncIterator[Bus]:
    bus = Bus("memory://", sources={"party": log}, gap_wait=0.01)
    await bus.start()
    await bus.connected.wait()
    yield bus
    await bus.close()


async def test_a_late_start_sends_its_snapshot_then_only_what_is_newer(bus: Bus) -> None:
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    listener = Listener(outbox, render, active=False, collapsible=False)
    assert await bus.subscribe(PARTY, listener) == 0
    for version in range(1, 6):  # events keep coming while the face reads its snapshot
        await bus.publish(entry(version))
    listener.start(first=entry(3))
    await bus.publish(entry(6))
    await recorder.until("event:6")
    assert recorder.frames == ["first:3", "event:4", "event:5", "event:6"]
    await outbox.close()


async def test_a_gap_in_a_log_is_filled_from_its_source_each_event_once(bus: Bus, log: Log) -> None:
    log.events = [entry(version) for version in range(1, 6)]
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    await bus.subscribe(PARTY, Listener(outbox, render, collapsible=False))
    await bus.publish(entry(1))
    await bus.publish(entry(3))  # 2's publish was lost; 4 and 5 were never published here
    await recorder.until("event:5")
    assert recorder.frames == ["first:1", *(f"event:{v}" for v in range(2, 6))]
    assert log.asked == [1]
    await outbox.close()


async def test_a_log_subscriber_too_far_behind_is_stopped_rather_than_skipped(bus: Bus) -> None:
    gate = asyncio.Event()
    started = asyncio.Event()

    async def stuck_send(_frame: str) -> None:
        started.set()
        await gate.wait()

    stopped = asyncio.Event()
    outbox = bus.open_outbox(stuck_send)
    outbox.on_overflow = stopped.set
    await bus.subscribe(PARTY, Listener(outbox, render, collapsible=False))
    await bus.publish(entry(1))
    await started.wait()
    for version in range(2, MAX_BACKLOG + 10):
        await bus.publish(entry(version))
    gate.set()  # the first send returns; the next pass finds the whole burst for this socket
    await stopped.wait()
    assert outbox.closed and outbox.pending() == 0 and outbox.skipped == 0
    await outbox.close()


async def test_unversioned_signals_pass_through_in_arrival_order(bus: Bus) -> None:
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    await bus.subscribe("sessions:revoked", Listener(outbox, render, collapsible=False))
    for _ in range(3):
        await bus.publish(entry(None, topic="sessions:revoked"))
    while len(recorder.frames) < 3:
        await recorder.until("event:None")
    assert recorder.frames == ["event:None"] * 3
    await outbox.close()


async def test_a_broken_frame_writer_falls_back_to_the_asgi_send_and_says_so_once(
    bus: Bus, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Outbox, "warned_broken_writer", False)
    writable = asyncio.Event()
    writable.set()

    def broken(_texts: Sequence[str]) -> bool:
        raise AttributeError("a server upgrade removed what the writer used")

    caplog.set_level(logging.WARNING, logger="cowatch.realtime")
    recorders = [Recorder() for _ in range(2)]
    outboxes = []
    for recorder in recorders:
        outbox = bus.open_outbox(recorder.send, FrameWriter(write=broken, writable=writable))
        outboxes.append(outbox)
        await bus.subscribe(PARTY, Listener(outbox, render, collapsible=False))
    for version in (1, 2):
        await bus.publish(entry(version))
    for recorder in recorders:
        await recorder.until("event:2")
        assert recorder.frames == ["first:1", "event:2"]  # nothing dropped
    warnings = [r for r in caplog.records if "batched websocket writes failed" in r.message]
    assert len(warnings) == 1
    for outbox in outboxes:
        await outbox.close()


MUTATION = """
mutation Seek($id: ID!, $t: Float!) {
  updateVideoTimestamp(videoId: $id, timestamp: $t) { version }
}
"""


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    # Rate limits and socket flood control are tested on their own; here they would only throttle.
    unlimited = {"rate_limit_enabled": False, "ws_message_burst": 10_000}
    async with live_server(settings.model_copy(update=unlimited)) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


@pytest.fixture
async def viewer(server: LiveServer) -> Account:
    return await make_user(server.services)


@pytest.fixture
async def video_id(server: LiveServer, viewer: Account) -> str:
    (video,) = await make_videos(server.services, viewer.user, 1, duration=600.0)
    return video.id


async def test_two_ws_subscribers_see_a_rest_put(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    other = await make_user(server.services)
    async with (
        ws_client(server.ws_url, viewer.token) as a,
        ws_client(server.ws_url, other.token) as b,
    ):
        for client in (a, b):
            state = await client.subscribe(video_id)
            assert state["video_id"] == video_id and state["version"] == 0
        put = await put_time(http, video_id, other.token, 45.5, playing=True)
        for client in (a, b):
            event = await client.next()
            assert event == {"type": "video:timestamp_updated", **put}
            assert event["user_id"] == other.user.id and event["timestamp"] == 45.5
            assert set(event) >= {"server_time", "version", "playing", "rate"}


async def test_graphql_mutation_reaches_ws_and_rest_put_reaches_graphql(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    async with (
        ws_client(server.ws_url, viewer.token) as plain,
        graphql_client(server.ws_url, viewer.token) as modern,
        graphql_client(server.ws_url, viewer.token, legacy=True) as legacy,
    ):
        await plain.subscribe(video_id)
        for client in (modern, legacy):
            first = await client.subscribe("w1", video_id)
            assert first["videoId"] == video_id and first["version"] == 0
        mutation = await http.post(
            "/graphql",
            json={"query": MUTATION, "variables": {"id": video_id, "t": 12.5}},
            headers={"Authorization": f"Bearer {viewer.token}"},
        )
        assert mutation.json()["data"]["updateVideoTimestamp"]["version"] == 1
        assert (await plain.next())["timestamp"] == 12.5
        for client in (modern, legacy):
            assert (await client.next_event("w1"))["timestamp"] == 12.5
        await put_time(http, video_id, viewer.token, 20)
        assert (await plain.next())["version"] == 2
        for client in (modern, legacy):
            event = await client.next_event("w1")
            assert (event["timestamp"], event["version"], event["userId"]) == (
                20.0,
                2,
                viewer.user.id,
            )


async def test_unsubscribe_stops_delivery(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    (second,) = await make_videos(server.services, viewer.user, 1)
    async with (
        ws_client(server.ws_url, viewer.token) as plain,
        graphql_client(server.ws_url, viewer.token) as gql,
    ):
        await plain.subscribe(video_id)
        await plain.subscribe(second.id)
        await gql.subscribe("a", video_id)
        await gql.subscribe("b", second.id)
        await plain.unsubscribe(video_id)
        await gql.stop("a")
        # A frame for the first video would be queued before the second video's: none comes.
        await put_time(http, video_id, viewer.token, 1)
        await put_time(http, second.id, viewer.token, 2)
        assert (await plain.next())["video_id"] == second.id
        assert (await gql.next_event("b"))["videoId"] == second.id


async def test_late_joiner_gets_the_current_state_first(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    put = await put_time(http, video_id, viewer.token, 33.0, playing=True, rate=1.25)
    async with (
        ws_client(server.ws_url, viewer.token) as plain,
        graphql_client(server.ws_url, viewer.token) as gql,
    ):
        assert await plain.subscribe(video_id) == {"type": "video:state", **put}
        first = await gql.subscribe("late", video_id)
        assert (first["timestamp"], first["playing"], first["rate"], first["version"]) == (
            33.0,
            True,
            1.25,
            put["version"],
        )


async def test_malformed_ws_messages_get_errors_and_the_socket_stays_open(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    async with ws_client(server.ws_url, viewer.token) as client:
        cases = [
            ("not json", "INVALID_JSON"),
            ("[1, 2]", "INVALID_MESSAGE"),
            (json.dumps({"type": "video:rewind", "video_id": video_id}), "UNKNOWN_TYPE"),
            (json.dumps({"type": "video:subscribe"}), "BAD_USER_INPUT"),
            (json.dumps({"type": "video:subscribe", "video_id": 7}), "BAD_USER_INPUT"),
            (json.dumps({"type": "video:subscribe", "video_id": "nope"}), "NOT_FOUND"),
        ]
        for raw, code in cases:
            await client.send(raw)
            reply = await client.next()
            assert reply["type"] == "error" and reply["code"] == code, reply
            assert reply["message"]
        await client.conn.send(b"\x00binary")
        assert (await client.next())["code"] == "INVALID_MESSAGE"
        await client.subscribe(video_id)
        await put_time(http, video_id, viewer.token, 3)
        assert (await client.next())["timestamp"] == 3


async def test_sockets_require_a_valid_token(server: LiveServer, viewer: Account) -> None:
    for url, code in (
        (f"{server.ws_url}/ws", 4403),
        (f"{server.ws_url}/ws?token=garbage", 4401),
    ):
        async with connect(url) as conn:
            with pytest.raises(ConnectionClosed) as closed:
                await receive_json(conn)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    async with connect(f"{server.ws_url}/ws?token={viewer.token}") as conn:
        await conn.send(json.dumps({"type": "video:subscribe", "video_id": "x"}))
        assert (await receive_json(conn))["code"] == "NOT_FOUND"
    # A bad token is refused alike on both faces (4401); GraphQL sockets may be anonymous.
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(f"{server.ws_url}/graphql", subprotocols=protocols) as conn:
        init = {"Authorization": "Bearer garbage"}
        await conn.send(json.dumps({"type": "connection_init", "payload": init}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(conn)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    # The legacy protocol has its own refusal: connection_error, then the socket closes.
    legacy = [Subprotocol("graphql-ws")]
    async with connect(f"{server.ws_url}/graphql", subprotocols=legacy) as conn:
        init = {"Authorization": "Bearer garbage"}
        await conn.send(json.dumps({"type": "connection_init", "payload": init}))
        assert (await receive_json(conn))["type"] == "connection_error"
        with pytest.raises(ConnectionClosed):
            await receive_json(conn)


async def test_signed_out_viewers_follow_a_public_room_but_cannot_move_it(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    async with graphql_client(server.ws_url, None) as anonymous:
        first = await anonymous.subscribe("watch", video_id)
        await put_time(http, video_id, viewer.token, 12)
        assert (await anonymous.next_event("watch"))["timestamp"] == 12
        seek = (
            f'mutation {{ updateVideoTimestamp(videoId: "{video_id}", timestamp: 3) '
            "{ version } }"
        )
        await anonymous.conn.send(
            json.dumps({"id": "seek", "type": "subscribe", "payload": {"query": seek}})
        )
        refused = await anonymous.next_message()
        assert refused["id"] == "seek", refused
        errors = refused["payload"] if refused["type"] == "error" else refused["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert first["timestamp"] == 0  # the room was not moved by the refused seek
        async with httpx.AsyncClient(base_url=server.url) as plain:
            body = (await plain.get(f"/api/videos/{video_id}")).json()
        assert body["current_timestamp"] >= 12


async def test_concurrent_seeks_all_arrive_in_version_order_and_converge(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    seekers, rounds = 6, 8
    async with (
        ws_client(server.ws_url, viewer.token) as w1,
        ws_client(server.ws_url, viewer.token) as w2,
        graphql_client(server.ws_url, viewer.token) as g1,
        graphql_client(server.ws_url, viewer.token, legacy=True) as g2,
    ):
        for plain in (w1, w2):
            await plain.subscribe(video_id)
        for gql in (g1, g2):
            await gql.subscribe("s", video_id)

        async def seek(seeker: int) -> None:
            for i in range(rounds):
                await put_time(http, video_id, viewer.token, float(seeker * 100 + i))

        await asyncio.gather(*(seek(n) for n in range(seekers)))
        final = (await http.get(f"/api/videos/{video_id}")).json()
        last_version = seekers * rounds

        async def versions_until_last(
            next_event: Callable[[], Awaitable[dict[str, Any]]],
        ) -> list[tuple[int, float]]:
            seen: list[tuple[int, float]] = []
            while not seen or seen[-1][0] < last_version:
                event = await next_event()
                seen.append((event["version"], event["timestamp"]))
            return seen

        streams = [await versions_until_last(plain.next) for plain in (w1, w2)]
        for gql in (g1, g2):
            streams.append(await versions_until_last(partial(gql.next_event, "s")))
        for seen in streams:
            versions = [version for version, _ in seen]
            assert versions == list(range(1, last_version + 1)), versions  # each once, in order
            assert seen[-1] == (last_version, final["current_timestamp"])


@pytest.mark.parametrize("backend", ["sqlite"])  # the bus is the same on both backends
async def test_a_client_that_stops_reading_is_bounded_and_holds_up_no_one(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    bus = server.services.bus
    # A small receive window, and a client library that stops reading once a message waits.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: the window
    sock.connect(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
    headers = {"Authorization": f"Bearer {viewer.token}"}
    seeker = "u" * 4000  # ~4 KB frames: the server's send buffer (up to 4 MB) fills sooner

    def stalled() -> list[Outbox]:
        return [outbox for outbox in bus._outboxes if outbox._task is not None]

    async with (
        connect(f"{server.ws_url}/ws", sock=sock, additional_headers=headers, max_queue=1) as stuck,
        ws_client(server.ws_url, viewer.token) as calm,
    ):
        await stuck.send(json.dumps({"type": "video:subscribe", "video_id": video_id}))
        assert json.loads(await stuck.recv())["type"] == "video:state"
        await calm.subscribe(video_id)
        newest = 0
        # A stream of seeks, a hundred per pass, until the stalled socket is well behind.
        while not (stalled() and stalled()[0].skipped) and newest < 20_000:
            for _ in range(100):
                newest += 1
                state = PlaybackState(video_id, newest, True, 1.0, newest, newest, seeker)
                await bus.publish(state.to_event())
            while (await calm.next())["version"] < newest:  # the calm viewer keeps up
                pass
        (behind,) = stalled()
        assert behind.skipped > 0
        assert behind.pending() <= MAX_BACKLOG
        versions: list[int] = []
        while not versions or versions[-1] < newest:  # it reads again and catches up
            versions.append(json.loads(await stuck.recv())["version"])
        assert versions == sorted(set(versions))
        assert versions[-1] == newest


@pytest.mark.parametrize("backend", ["sqlite"])  # the bus is the same on both backends
async def test_no_subscriber_state_is_left_after_500_disconnects(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    bus = server.services.bus
    for i in range(500):
        if i % 2:
            async with ws_client(server.ws_url, viewer.token) as client:
                await client.subscribe(video_id)
        else:
            async with graphql_client(server.ws_url, viewer.token, legacy=i % 4 == 0) as gql:
                await gql.subscribe("x", video_id)
    # Each client has closed; the server tears down after it sees the close.
    async with asyncio.timeout(30):
        await bus.idle.wait()
    assert bus.stats() == {"channels": 0, "listeners": 0, "outboxes": 0}
    assert [task for task in asyncio.all_tasks() if task.get_name() == "cowatch-outbox"] == []


async def test_documents_outside_the_shared_path_use_strawberrys_stream(
    server: LiveServer, http: httpx.AsyncClient, viewer: Account, video_id: str
) -> None:
    query = (
        "subscription($id: ID!) { ...F } "
        "fragment F on Subscription { videoTimestamp(videoId: $id) { version timestamp } }"
    )
    async with graphql_client(server.ws_url, viewer.token) as gql:
        await gql.conn.send(
            json.dumps(
                {
                    "id": "f",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": {"id": video_id}},
                }
            )
        )
        assert (await gql.next_event("f"))["version"] == 0
        await put_time(http, video_id, viewer.token, 9)
        assert (await gql.next_event("f"))["timestamp"] == 9
        await gql.conn.send(
            json.dumps(
                {
                    "id": "e",
                    "type": "subscribe",
                    "payload": {"query": query, "variables": {"id": "nope"}},
                }
            )
        )
        refused = await gql.next_message()
        assert refused["id"] == "e" and refused["type"] == "next", refused
        assert refused["payload"]["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    async with asyncio.timeout(30):
        await server.services.bus.idle.wait()


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_shared_subscriptions_count_towards_the_per_connection_limit(
    server: LiveServer, viewer: Account, video_id: str
) -> None:
    limit = 100  # Strawberry's max_subscriptions_per_connection
    async with graphql_client(server.ws_url, viewer.token) as gql:
        for n in range(limit):
            await gql.subscribe(str(n), video_id)
        await gql.conn.send(
            json.dumps({"id": "over", "type": "subscribe", "payload": {"query": "{ me { id } }"}})
        )
        refused = await gql.next_message()
        assert refused["type"] == "error" and refused["id"] == "over", refused
        assert refused["payload"][0]["message"] == "Subscription limit reached"
