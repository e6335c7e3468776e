"""Delivery to sockets: a `Listener` per subscription, an `Outbox` per socket.

Every state a listener is offered reaches its consumer, in version order. An outbox queues
(listener, state) pairs and renders each to a frame only when its socket is about to be
written, through `PlaybackState.memo`, so a distinct frame is encoded once per event per
process however many sockets receive it. Memory stays bounded: a consumer more than
`MAX_BACKLOG` states behind (a client that stopped reading) skips to the newest state of each
of its subscriptions, and catches up from there.

Writing: the bus's one flusher task writes every healthy socket in turn. Where the server
offers a `FrameWriter` (`server.py`, through the `WRITE_TEXTS` scope extension), a socket's
whole backlog goes out in one synchronous write, one system call however many frames, so a
fan-out that falls behind batches instead of dropping. Elsewhere each frame is an awaited ASGI
send. A socket that cannot take data now gets a writer task of its own, so it holds up the
others once at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from resolvers.playback import PlaybackState

log = logging.getLogger("cowatch.bus")

Render = Callable[[PlaybackState, bool], str]
Send = Callable[[str], Awaitable[None]]

#: States a consumer may fall behind before it skips to the newest state of each subscription.
MAX_BACKLOG = 256
#: How long the flusher writes sockets before it lets the event loop run other work.
SLICE_S = 0.005
#: The ASGI scope extension under which a server offers a `FrameWriter` (`{"writer": …}`).
WRITE_TEXTS = "cowatch.websocket.write_texts"


@dataclass(frozen=True)
class FrameWriter:
    """A server's synchronous, batched websocket send.

    `write(texts)` frames every text and writes them at once; it returns False, writing
    nothing, while the client's buffer is full (`writable` is clear), and raises OSError
    once the socket is closed.
    """

    write: Callable[[Sequence[str]], bool]
    writable: asyncio.Event


def frame_writer(scope: Mapping[str, Any]) -> FrameWriter | None:
    """The server's `FrameWriter` for this websocket, if it offers one."""
    extension = scope.get("extensions", {}).get(WRITE_TEXTS)
    writer = extension.get("writer") if isinstance(extension, dict) else None
    return writer if isinstance(writer, FrameWriter) else None


class Backlog:
    """States waiting for one consumer, oldest first, at most `MAX_BACKLOG` of them.

    Two parallel deques rather than one of (listener, state) tuples: a tuple is an object the
    cyclic garbage collector tracks, and thousands of them alive across each flush made it run
    full collections of the whole heap (seconds a minute in the soak).
    """

    def __init__(self) -> None:
        self._listeners: deque[Listener] = deque()
        self._states: deque[PlaybackState] = deque()
        #: states dropped because the consumer fell too far behind
        self.skipped = 0

    def push(self, listener: Listener, state: PlaybackState) -> None:
        """Queue a state (a first state, or one behind states its consumer has not taken yet)."""
        self._listeners.append(listener)
        self._states.append(state)
        if len(self._states) > MAX_BACKLOG:
            self._collapse()
        self.wake()

    def wake(self) -> None:
        raise NotImplementedError

    def deliver(self, listener: Listener, states: list[PlaybackState]) -> None:
        """Several states for one listener, oldest first (a flusher pass)."""
        for state in states:
            self.push(listener, state)

    def pending(self) -> int:
        return len(self._states)

    def clear(self) -> None:
        self._listeners.clear()
        self._states.clear()

    def _collapse(self) -> None:
        """Keep only the newest pending state of each listener."""
        newest = dict(zip(self._listeners, self._states, strict=True))
        self.skipped += len(self._states) - len(newest)
        self.clear()
        self._listeners.extend(newest)
        self._states.extend(newest.values())


class Listener:
    """One subscription: offers states to its consumer, renders them when they are sent."""

    __slots__ = ("_render", "_sent", "_sink", "_state", "active")

    def __init__(self, sink: Backlog, render: Render, *, active: bool = True) -> None:
        self._sink = sink
        self._render = render
        self._state: PlaybackState | None = None
        self._sent = -1
        self.active = active

    def offer(self, state: PlaybackState) -> None:
        if self._state is None or state.version > self._state.version:
            self._state = state
            if self.active:
                self._sink.push(self, state)

    @property
    def state(self) -> PlaybackState | None:
        return self._state

    def activate(self) -> None:
        """Start delivering, from the newest state offered so far."""
        self.active = True
        if self._state is not None:
            self._sink.push(self, self._state)

    def deliver(self, states: list[PlaybackState]) -> None:
        """A flusher pass: the states of `states` newer than any offered so far, at once."""
        known = self._state
        if known is not None:
            if states[-1].version <= known.version:
                return
            if states[0].version <= known.version:
                states = [state for state in states if state.version > known.version]
        self._state = states[-1]
        if self.active:
            self._sink.deliver(self, states)

    def render(self, state: PlaybackState) -> str | None:
        """The frame for `state`, or None if it is stale or the listener was stopped."""
        if not self.active or state.version <= self._sent:
            return None
        first = self._sent < 0
        self._sent = state.version
        return self._render(state, first)


class Outbox(Backlog):
    """One socket's sender: the frames of all its listeners, in the order they were offered."""

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

    def push(self, listener: Listener, state: PlaybackState) -> None:
        if not self.closed:
            super().push(listener, state)

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()
        elif not self._flushing:
            self._schedule(self)

    def deliver(self, listener: Listener, states: list[PlaybackState]) -> None:
        # The fast path of a pass: rendered and written at once, unless this socket has
        # frames queued before them (a first state, a backlog) or cannot be written inline.
        # A burst past the bound goes through the bounded queue too.
        writer = self._writer
        queued = self._task is not None or self._states or self.closed
        if writer is None or queued or len(states) > MAX_BACKLOG:
            super().deliver(listener, states)
            return
        frames = []
        for state in states:
            frame = listener.render(state)
            if frame is not None:
                frames.append(frame)
        if not frames:
            return
        try:
            if not writer.write(frames):
                self.own_writer(frames)
        except Exception as exc:
            self.failed(exc)

    def frames(self) -> list[str]:
        """Render everything pending, oldest first."""
        frames = []
        for listener, state in zip(self._listeners, self._states, strict=True):
            frame = listener.render(state)
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
                if self._writer is not None:
                    await self._writer.writable.wait()
                    if self._writer.write(self._unsent):
                        self._unsent = []
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
    """A consumer in this process (`PlaybackBus.watch`): every state, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    def wake(self) -> None:
        self.event.set()

    def take(self) -> list[PlaybackState]:
        states = list(self._states)
        self.clear()
        return states


def unrendered(_state: PlaybackState, _first: bool) -> str:
    return ""


async def fan_out(work: list[tuple[list[Listener], list[PlaybackState]]]) -> None:
    """The first half of a flusher pass: each room's fresh states to each of its listeners."""
    loop = asyncio.get_running_loop()
    slice_ends = loop.time() + SLICE_S
    for listeners, states in work:
        for listener in listeners:
            if loop.time() >= slice_ends:
                await asyncio.sleep(0)
                slice_ends = loop.time() + SLICE_S
            try:
                listener.deliver(states)
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
                try:
                    if not writer.write(frames):
                        outbox.own_writer(frames)
                except Exception as exc:
                    outbox.failed(exc)
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
            if outbox._states and outbox._task is None and not outbox.closed:
                outbox._schedule(outbox)  # offered while its sends were awaited
    finally:
        sentinel.cancel()
