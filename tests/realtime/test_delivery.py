"""Delivery on log topics (every event counts), late starts, unversioned signals, broken writers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import ClassVar

import pytest

from realtime.bus import Bus
from realtime.delivery import MAX_BACKLOG, FrameWriter, Listener, Outbox
from realtime.events import Event, Head
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
