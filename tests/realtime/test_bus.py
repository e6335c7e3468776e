"""The bus on its own: every version in order, bounded backlogs, recovery, cleanup."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import pytest

from realtime.backends import MemoryBackend
from realtime.bus import Bus
from realtime.delivery import MAX_BACKLOG, FrameWriter, Listener
from realtime.events import Event, Head

V1 = "video:v1"


def state(version: int, topic: str = V1) -> Event:
    return Event(topic=topic, version=version, kind="playback", data={"timestamp": version})


class Store:
    """The database stand-in for a stateful topic kind: the stored state per topic."""

    stateful: ClassVar[bool] = True

    def __init__(self) -> None:
        self.states = {V1: state(0)}
        self.loads = 0

    async def head(self, topic: str) -> Head:
        self.loads += 1
        if topic not in self.states:
            raise LookupError("video not found")
        found = self.states[topic]
        return Head(version=found.version, state=found)

    async def since(self, topic: str, version: int | None) -> list[Event]:
        found = self.states[topic]
        return [found] if version is None or (found.version or 0) > version else []


@pytest.fixture
async def store() -> Store:
    return Store()


@pytest.fixture
async def bus(store: Store) -> AsyncIterator[Bus]:
    bus = Bus("memory://", sources={"video": store})
    await bus.start()
    await bus.connected.wait()
    yield bus
    await bus.close()


def render(item: Event, first: bool) -> str:
    return f"{'state' if first else 'update'}:{item.version}"


class Recorder:
    """An outbox's send that keeps every frame; `until` waits for a given one to arrive."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self._got = asyncio.Event()

    async def send(self, frame: str) -> None:
        self.frames.append(frame)
        self._got.set()

    def frame_writer(self) -> FrameWriter:
        """The same record, as a server's batched writer that is always writable."""
        writable = asyncio.Event()
        writable.set()

        def write(texts: Sequence[str]) -> bool:
            self.frames.extend(texts)
            self._got.set()
            return True

        return FrameWriter(write=write, writable=writable)

    async def until(self, last: str) -> None:
        while not self.frames or self.frames[-1] != last:
            self._got.clear()
            await self._got.wait()


async def test_a_socket_that_is_behind_gets_every_version_in_order(bus: Bus) -> None:
    gate = asyncio.Event()
    sent: list[str] = []
    first_sent = asyncio.Event()
    done = asyncio.Event()

    async def slow_send(frame: str) -> None:
        sent.append(frame)
        first_sent.set()
        if frame == "update:100":
            done.set()
        await gate.wait()

    outbox = bus.open_outbox(slow_send)
    listener = Listener(outbox, render)
    await bus.subscribe(V1, listener)
    await first_sent.wait()  # the socket is now stuck sending the first frame
    for version in range(1, 101):
        await bus.publish(state(version))
    gate.set()  # the client catches up
    await done.wait()
    assert sent == ["state:0", *(f"update:{v}" for v in range(1, 101))]
    assert outbox.skipped == 0
    await bus.unsubscribe(V1, listener)
    await outbox.close()


async def test_a_socket_far_behind_skips_to_the_newest_with_bounded_memory(
    bus: Bus,
) -> None:
    gate = asyncio.Event()
    sent: list[str] = []
    first_sent = asyncio.Event()
    newest = 3 * MAX_BACKLOG
    done = asyncio.Event()

    async def slow_send(frame: str) -> None:
        sent.append(frame)
        first_sent.set()
        if frame == f"update:{newest}":
            done.set()
        await gate.wait()

    outbox = bus.open_outbox(slow_send)
    await bus.subscribe(V1, Listener(outbox, render))
    await first_sent.wait()
    for version in range(1, newest + 1):
        await bus.publish(state(version))
        assert outbox.pending() <= MAX_BACKLOG
    gate.set()
    await done.wait()
    versions = [int(frame.split(":")[1]) for frame in sent]
    assert versions == sorted(set(versions))
    assert len(sent) - 1 + outbox.skipped == newest  # every version either sent or skipped
    assert 0 < outbox.skipped < newest
    await outbox.close()


class Writer:
    """A server's FrameWriter stand-in: records batches; `full` plays a client not reading."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.writable = asyncio.Event()
        self.writable.set()
        self.wrote = asyncio.Event()
        self.refused = asyncio.Event()

    def write(self, texts: Sequence[str]) -> bool:
        if not self.writable.is_set():
            self.refused.set()
            return False
        self.batches.append(list(texts))
        self.wrote.set()
        return True

    def frame_writer(self) -> FrameWriter:
        return FrameWriter(write=self.write, writable=self.writable)


async def test_a_frame_writer_gets_the_backlog_in_one_write_and_waits_when_full(
    bus: Bus,
) -> None:
    async def never(_frame: str) -> None:
        raise AssertionError("the ASGI send is not used when the server offers a writer")

    writer = Writer()
    outbox = bus.open_outbox(never, writer.frame_writer())
    await bus.subscribe(V1, Listener(outbox, render))
    await writer.wrote.wait()
    assert writer.batches == [["state:0"]]
    writer.wrote.clear()
    bus._deliver(state(1))  # two seeks arrive before the flusher runs: one write
    bus._deliver(state(2))
    await writer.wrote.wait()
    assert writer.batches[1:] == [["update:1", "update:2"]]

    writer.writable.clear()  # the client stops reading
    writer.wrote.clear()
    for version in (3, 4, 5):
        await bus.publish(state(version))
    await writer.refused.wait()  # the flusher found the buffer full
    assert not writer.wrote.is_set()
    assert [task for task in asyncio.all_tasks() if task.get_name() == "cowatch-outbox"]
    writer.writable.set()  # the client drains its buffer
    await writer.wrote.wait()
    assert writer.batches[2:] == [["update:3", "update:4", "update:5"]]
    await outbox.close()


async def test_every_version_arrives_once_in_order_whatever_order_it_was_published_in(
    bus: Bus,
) -> None:
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    await bus.subscribe(V1, Listener(outbox, render))
    for version in (3, 2, 1, 3, 5, 4):  # concurrent seeks, published out of order
        await bus.publish(state(version))
    await recorder.until("update:5")
    assert recorder.frames == ["state:0", *(f"update:{version}" for version in range(1, 6))]
    await outbox.close()


async def test_a_version_that_never_comes_is_given_up_after_the_gap_wait(store: Store) -> None:
    bus = Bus("memory://", sources={"video": store}, gap_wait=0.01)
    await bus.start()
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    await bus.subscribe(V1, Listener(outbox, render))
    await bus.publish(state(1))
    await bus.publish(state(3))  # its publisher's 2 is lost (crashed after committing)
    await recorder.until("update:3")
    assert recorder.frames == ["state:0", "update:1", "update:3"]
    await bus.close()


@pytest.mark.parametrize("batched", [True, False], ids=["frame-writer", "asgi-send"])
async def test_a_frame_that_fails_to_render_does_not_stop_delivery_to_others(
    bus: Bus, caplog: pytest.LogCaptureFixture, batched: bool
) -> None:
    def broken(item: Event, first: bool) -> str:
        if not first:
            raise TypeError("a bug in one document")
        return render(item, first)

    recorders = [Recorder() for _ in range(4)]
    for index, recorder in enumerate(recorders):  # broken ones before and after healthy ones
        outbox = bus.open_outbox(recorder.send, recorder.frame_writer() if batched else None)
        await bus.subscribe(V1, Listener(outbox, broken if index % 2 else render))
    for recorder in recorders:
        await recorder.until("state:0")  # from now on the flusher writes each socket at once
    await bus.publish(state(1))
    await bus.publish(state(2))
    for recorder in recorders[::2]:
        await recorder.until("update:2")
        assert recorder.frames == ["state:0", "update:1", "update:2"]
    assert "delivery to one subscriber failed" in caplog.text


async def test_one_backend_subscription_per_video_and_full_cleanup(bus: Bus, store: Store) -> None:
    outbox = bus.open_outbox(lambda frame: asyncio.sleep(0))
    listeners = [Listener(outbox, render) for _ in range(50)]
    await asyncio.gather(*(bus.subscribe(V1, listener) for listener in listeners))
    assert store.loads == 1
    assert bus.stats() == {"channels": 1, "listeners": 50, "outboxes": 1}
    with pytest.raises(LookupError):
        await bus.subscribe("video:missing", Listener(outbox, render))
    for listener in listeners:
        await bus.unsubscribe(V1, listener)
    await outbox.close()
    assert bus.stats() == {"channels": 0, "listeners": 0, "outboxes": 0}
    assert bus.idle.is_set()


class FlakyBackend(MemoryBackend):
    """Fails `next_published` once, like a Redis connection that dropped."""

    failures = 1

    async def next_published(self):  # type: ignore[no-untyped-def]
        if FlakyBackend.failures:
            FlakyBackend.failures -= 1
            raise ConnectionError("connection lost")
        return await super().next_published()


async def test_after_a_backend_failure_the_bus_reconnects_and_resends_stored_state(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("realtime.bus.open_backend", FlakyBackend)
    FlakyBackend.failures = 0
    bus = Bus("memory://", sources={"video": store}, min_backoff=0.001)
    await bus.start()
    recorder = Recorder()
    outbox = bus.open_outbox(recorder.send)
    await bus.subscribe(V1, Listener(outbox, render))
    await recorder.until("state:0")
    # The state changes while the connection is down (stored, never broadcast), then it fails.
    store.states[V1] = state(7)
    FlakyBackend.failures = 1
    await bus.publish(state(0))  # stale: dropped, but it wakes the pump into the failure
    await recorder.until("update:7")
    assert recorder.frames == ["state:0", "update:7"]
    assert bus.recoveries == 1
    await bus.close()


async def test_a_socket_whose_send_waits_gets_its_own_writer_and_keeps_receiving(
    bus: Bus,
) -> None:
    received: list[str] = []
    got = asyncio.Event()

    async def waiting_send(frame: str) -> None:
        await asyncio.sleep(0)  # gives the loop a turn, as a back-pressured send would
        received.append(frame)
        got.set()

    outbox = bus.open_outbox(waiting_send)
    await bus.subscribe(V1, Listener(outbox, render))
    await got.wait()
    writers = [task for task in asyncio.all_tasks() if task.get_name() == "cowatch-outbox"]
    assert len(writers) == 1
    got.clear()
    await bus.publish(state(1))
    await got.wait()
    assert received == ["state:0", "update:1"]
    await outbox.close()
    assert writers[0].done()


async def test_sockets_whose_sends_never_wait_share_the_flusher(bus: Bus) -> None:
    got = asyncio.Event()

    async def send(_frame: str) -> None:
        got.set()

    outbox = bus.open_outbox(send)
    await bus.subscribe(V1, Listener(outbox, render))
    await got.wait()
    assert [task for task in asyncio.all_tasks() if task.get_name() == "cowatch-outbox"] == []
    await outbox.close()


async def test_a_change_of_several_events_is_one_message_on_redis_and_arrives_whole() -> None:
    import redis.asyncio as aioredis

    from realtime.bus import CHANNEL_PREFIX
    from tests.conftest import REDIS_URL

    one, two = f"party:{uuid.uuid4().hex}", f"party:{uuid.uuid4().hex}"
    sender, hearer = Bus(REDIS_URL), Bus(REDIS_URL)
    raw = aioredis.from_url(REDIS_URL)
    pubsub = raw.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL_PREFIX + one)
    recorders = {one: Recorder(), two: Recorder()}
    try:
        for bus in (sender, hearer):
            await bus.start()
            await bus.connected.wait()
        for name, recorder in recorders.items():
            await hearer.subscribe(name, Listener(hearer.open_outbox(recorder.send), render))

        await sender.publish_all([state(1, one), state(2, one), state(3, one), state(1, two)])

        await recorders[one].until("update:3")
        await recorders[two].until("state:1")  # a listener's first frame renders as a state
        assert recorders[one].frames == ["state:1", "update:2", "update:3"]
        heard = []
        async with asyncio.timeout(10):
            async for message in pubsub.listen():  # everything sent is in Redis by now
                heard.append(message["data"])
                if message["type"] == "message":
                    break
        assert [e.version for e in Event.many_from_json(heard[-1])] == [1, 2, 3]
        assert await pubsub.get_message(timeout=0.1) is None  # the three were one message
    finally:
        for bus in (sender, hearer):
            await bus.close()
        await pubsub.aclose()
        await raw.aclose()
