"""Delivery to sockets: a `Listener` per subscription, an `Outbox` per socket.

Every event a listener is offered reaches its consumer, in version order. An outbox queues
(listener, event) pairs and renders each to a frame only when its socket is about to be written,
through `Event.frames`, so a distinct frame is encoded once per event per process however many
sockets receive it. Memory stays bounded: a consumer more than `MAX_BACKLOG` events behind (a
client that stopped reading) skips to the newest event of each subscription whose newest event is
its whole state (a playhead); a subscription to a log (a party's events) cannot skip, so that
consumer is stopped instead (`Outbox.on_overflow`: its socket is closed and the client resyncs).

Writing: the bus's one flusher task writes every healthy socket in turn. Where the server offers a
`FrameWriter` (`realtime/uvicorn_writer.py`, through the `WRITE_TEXTS` scope extension), a
socket's whole backlog goes out in one synchronous write, one system call however many frames,
so a fan-out that falls behind batches instead of dropping. Elsewhere each frame is an awaited
ASGI send. A socket that cannot take data now gets a writer task of its own, so it holds up the
others once at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, ClassVar

from realtime.events import Event

log = logging.getLogger("cowatch.realtime")

#: A listener's frame for an event (None: nothing to send); `first` is True for its first frame.
Render = Callable[[Event, bool], str | None]
Send = Callable[[str], Awaitable[None]]

#: Events a consumer may fall behind before it skips to the newest (or is stopped).
MAX_BACKLOG = 256
#: How long the flusher writes sockets before it lets the event loop run other work.
SLICE_S = 0.005
#: The ASGI scope extension under which a server offers a `FrameWriter` (`{"writer": …}`).
WRITE_TEXTS = "cowatch.websocket.write_texts"


class Disconnected(ConnectionError):
    """A `FrameWriter` was asked to write to a socket that is gone."""


@dataclass(frozen=True)
class FrameWriter:
    """A server's synchronous, batched websocket send.

    `write(texts)` frames every text and writes them at once; it returns False, writing
    nothing, while the client's buffer is full (`writable` is clear), and raises
    `Disconnected` once the socket is closed. Any other exception means the writer is broken
    (a server upgrade changed what it relies on): the outbox falls back to the ASGI send.
    """

    write: Callable[[Sequence[str]], bool]
    writable: asyncio.Event


@dataclass(frozen=True)
class Keepalive:
    """A server's websocket heartbeat for one socket.

    `set(interval, timeout)` pings the client every `interval` seconds and closes the socket
    when an answer takes longer than `timeout` (so a client that vanished without a close frame
    is noticed); `rtt()` is the last measured round trip in seconds (None before the first).
    """

    set: Callable[[float, float], None]
    rtt: Callable[[], float | None]


#: The ASGI scope extension under which a server offers a `Keepalive` (`{"keepalive": …}`).
KEEPALIVE = "cowatch.websocket.keepalive"


def keepalive(scope: Mapping[str, Any]) -> Keepalive | None:
    """The server's `Keepalive` for this websocket, if it offers one."""
    extension = scope.get("extensions", {}).get(KEEPALIVE)
    found = extension.get("keepalive") if isinstance(extension, dict) else None
    return found if isinstance(found, Keepalive) else None


def frame_writer(scope: Mapping[str, Any]) -> FrameWriter | None:
    """The server's `FrameWriter` for this websocket, if it offers one."""
    extension = scope.get("extensions", {}).get(WRITE_TEXTS)
    writer = extension.get("writer") if isinstance(extension, dict) else None
    return writer if isinstance(writer, FrameWriter) else None


class Backlog:
    """Events waiting for one consumer, oldest first, at most `MAX_BACKLOG` of them.

    Two parallel deques rather than one of (listener, event) tuples: a tuple is an object the
    cyclic garbage collector tracks, and thousands of them alive across each flush made it run
    full collections of the whole heap (seconds a minute in the soak).
    """

    def __init__(self) -> None:
        self._listeners: deque[Listener] = deque()
        self._events: deque[Event] = deque()
        #: events dropped because the consumer fell too far behind
        self.skipped = 0

    def push(self, listener: Listener, event: Event) -> None:
        """Queue an event (a first one, or one behind events its consumer has not taken yet)."""
        self._listeners.append(listener)
        self._events.append(event)
        if len(self._events) > MAX_BACKLOG:
            self._collapse()
        self.wake()

    def wake(self) -> None:
        raise NotImplementedError

    def overflowed(self) -> None:
        """A log subscription fell too far behind to skip anything: stop this consumer."""
        self.clear()

    def deliver(self, listener: Listener, events: list[Event]) -> None:
        """Several events for one listener, oldest first (a flusher pass)."""
        for event in events:
            self.push(listener, event)

    def pending(self) -> int:
        return len(self._events)

    def clear(self) -> None:
        self._listeners.clear()
        self._events.clear()

    def _collapse(self) -> None:
        """Keep only the newest pending event of each listener, if every listener may skip."""
        if not all(listener.collapsible for listener in self._listeners):
            self.overflowed()
            return
        newest = dict(zip(self._listeners, self._events, strict=True))
        self.skipped += len(self._events) - len(newest)
        self.clear()
        self._listeners.extend(newest)
        self._events.extend(newest.values())


class Listener:
    """One subscription: offers events to its consumer, renders them when they are sent.

    An inactive listener keeps what it is offered until `start`, so a face can send its own
    first frame (a snapshot read after joining) and then everything newer, nothing twice.
    """

    __slots__ = ("_pending", "_render", "_sent", "_sink", "active", "collapsible", "version")

    def __init__(
        self, sink: Backlog, render: Render, *, active: bool = True, collapsible: bool = True
    ) -> None:
        self._sink = sink
        self._render = render
        self._sent = -1
        self._pending: list[Event] = []
        #: the newest version offered so far (-1: none)
        self.version = -1
        self.active = active
        #: True when the newest event is all a late consumer needs (a playhead), so a consumer
        #: that fell behind may skip to it
        self.collapsible = collapsible

    def offer(self, event: Event) -> None:
        """One event (a room's current state for a new listener, or a single publish)."""
        self.deliver([event])

    def deliver(self, events: list[Event]) -> None:
        """A flusher pass: the events of `events` newer than any offered so far, at once."""
        known = self.version
        head = events[0].version
        if head is None or head <= known:
            events = [e for e in events if e.version is None or e.version > known]
            if not events:
                return
        for event in reversed(events):  # in version order: the last versioned one is the newest
            if event.version is not None:
                self.version = event.version
                break
        if self.active:
            self._sink.deliver(self, events)
        else:
            self._pending.extend(events)
            if len(self._pending) > MAX_BACKLOG * 4:
                log.warning("a listener waiting to start fell behind; dropping its oldest events")
                del self._pending[: -MAX_BACKLOG * 4]

    def start(self, first: Event | None = None) -> None:
        """Start delivering: `first` and then what is newer, or (without it) the newest event."""
        self.active = True
        pending, self._pending = self._pending, []
        if first is not None:
            assert first.version is not None
            self._sink.push(self, first)
            self.version = max(self.version, first.version)
            for event in pending:
                if event.version is None or event.version > first.version:
                    self._sink.push(self, event)
        elif pending:
            self._sink.push(self, pending[-1])

    def render(self, event: Event) -> str | None:
        """The frame for `event`, or None if it is stale or the listener was stopped."""
        if not self.active:
            return None
        version = event.version
        if version is not None:
            if version <= self._sent:
                return None
            first = self._sent < 0
            self._sent = version
        else:
            first = False
        return self._render(event, first)


class Outbox(Backlog):
    """One socket's sender: the frames of all its listeners, in the order they were offered."""

    #: set once the first broken batched writer was reported (the warning is said once)
    warned_broken_writer: ClassVar[bool] = False

    def __init__(
        self,
        send: Send,
        writer: FrameWriter | None,
        on_close: Callable[[Outbox], None],
        schedule: Callable[[Outbox], None],
    ) -> None:
        super().__init__()
        self._send = send
        self._writer = writer
        self._on_close = on_close
        self._schedule = schedule
        self._unsent: list[str] = []
        self._flushing = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False
        #: called once when a log subscription fell too far behind (the socket should close)
        self.on_overflow: Callable[[], None] | None = None

    def push(self, listener: Listener, event: Event) -> None:
        if not self.closed:
            super().push(listener, event)

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()
        elif not self._flushing:
            self._schedule(self)

    def overflowed(self) -> None:
        log.info("a socket fell %d events behind on a log subscription; closing it", MAX_BACKLOG)
        self.closed = True
        self.clear()
        if self.on_overflow is not None:
            self.on_overflow()

    def deliver(self, listener: Listener, events: list[Event]) -> None:
        # The fast path of a pass: rendered and written at once, unless this socket has frames
        # queued before them (a first event, a backlog) or cannot be written inline. A burst
        # past the bound goes through the bounded queue too.
        writer = self._writer
        queued = self._task is not None or self._events or self.closed
        if writer is None or queued or len(events) > MAX_BACKLOG:
            super().deliver(listener, events)
            return
        frames = []
        for event in events:
            frame = listener.render(event)
            if frame is not None:
                frames.append(frame)
        if not frames:
            return
        self.write(writer, frames)

    def write(self, writer: FrameWriter, frames: list[str]) -> None:
        """Write inline; a full buffer hands the frames to a writer task of this socket's own."""
        try:
            if not writer.write(frames):
                self.own_writer(frames)
        except Disconnected as exc:
            self.failed(exc)
        except Exception as exc:
            self.writer_broken(exc, frames)

    def writer_broken(self, exc: Exception, unsent: list[str]) -> None:
        """The server's batched writer failed for a reason other than a disconnect: from now on
        this socket is written through the ordinary ASGI send, and it is said once, loudly."""
        if not Outbox.warned_broken_writer:
            Outbox.warned_broken_writer = True
            log.warning("batched websocket writes failed (%r); using plain sends", exc)
        self._writer = None
        if self._task is not None:
            self._unsent = unsent + self._unsent
            assert self._wake is not None
            self._wake.set()
        else:
            self.own_writer(unsent)

    def frames(self) -> list[str]:
        """Render everything pending, oldest first."""
        frames = []
        for listener, event in zip(self._listeners, self._events, strict=True):
            frame = listener.render(event)
            if frame is not None:
                frames.append(frame)
        self.clear()
        return frames

    def own_writer(self, unsent: list[str]) -> None:
        """From now on this socket is written by a task of its own, starting with `unsent`."""
        self._unsent = unsent
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="cowatch-outbox")

    def failed(self, exc: Exception) -> None:
        log.debug("outbox stopped: %r", exc)  # the socket went away; its reader cleans up
        self.closed = True
        self.clear()

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while not self.closed:
                if not self._unsent:
                    self._unsent = self.frames()
                    if not self._unsent:
                        await self._wake.wait()
                        self._wake.clear()
                        continue
                writer = self._writer
                if writer is not None:
                    await writer.writable.wait()
                    try:
                        if writer.write(self._unsent):
                            self._unsent = []
                    except Disconnected:
                        raise
                    except Exception as exc:
                        self.writer_broken(exc, [])
                    continue
                frames, self._unsent = self._unsent, []
                for frame in frames:
                    await self._send(frame)
        except Exception as exc:
            self.failed(exc)

    async def close(self) -> None:
        self.closed = True
        self.clear()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._on_close(self)


class Feed(Backlog):
    """A consumer in this process (`Bus.watch`): every event, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()

    def take(self) -> list[Event]:
        events = list(self._events)
        self.clear()
        return events


def unrendered(_event: Event, _first: bool) -> str:
    return ""


async def fan_out(work: list[tuple[list[Listener], list[Event]]]) -> None:
    """The first half of a flusher pass: each room's fresh events to each of its listeners."""
    loop = asyncio.get_running_loop()
    slice_ends = loop.time() + SLICE_S
    for listeners, events in work:
        for listener in listeners:
            if loop.time() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = loop.time() + SLICE_S
            try:
                listener.deliver(events)
            except Exception:
                log.exception("delivery to one subscriber failed")


async def flush_shared(batch: list[Outbox]) -> None:
    """One pass of the bus's flusher: each ready socket without a writer of its own, in turn.

    Deliberately flat (no coroutine or task per socket): at thousands of sockets every frame
    of Python on this path shows up in the fan-out time. With a `FrameWriter` a socket costs
    one synchronous write; one whose buffer is full gets its own writer. Without one, a
    sentinel callback tells whether an awaited send gave the event loop a turn (it waited for
    the client, as a back-pressuring server's send does); that socket then gets its own writer.
    Every `SLICE_S` of work the pass yields to the loop, so requests (the next seek among
    them) keep moving while thousands of sockets are written.
    """
    loop = asyncio.get_running_loop()
    waited = False

    def mark() -> None:
        nonlocal waited
        waited = True

    sentinel = loop.call_soon(mark)
    slice_ends = loop.time() + SLICE_S
    try:
        for outbox in batch:
            if loop.time() >= slice_ends:
                sentinel.cancel()
                await asyncio.sleep(0)
                waited, sentinel = False, loop.call_soon(mark)
                slice_ends = loop.time() + SLICE_S
            if outbox._task is not None or outbox._flushing or outbox.closed:
                continue
            try:
                frames = outbox.frames()
            except Exception:
                log.exception("delivery to one subscriber failed")
                continue
            if not frames:
                continue
            writer = outbox._writer
            if writer is not None:
                outbox.write(writer, frames)
                continue
            outbox._flushing = True
            try:
                for index, frame in enumerate(frames):
                    await outbox._send(frame)
                    if waited:
                        outbox.own_writer(frames[index + 1 :])
                        waited, sentinel = False, loop.call_soon(mark)
                        break
            except Exception as exc:
                outbox.failed(exc)
            finally:
                outbox._flushing = False
            if outbox._events and outbox._task is None and not outbox.closed:
                outbox._schedule(outbox)  # offered while its sends were awaited
    finally:
        sentinel.cancel()
