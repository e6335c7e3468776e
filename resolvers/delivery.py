"""Delivery to sockets: a `Listener` per subscription, an `Outbox` per socket.

A `Listener` keeps only the newest state it was offered (a buffer of one: a slow client skips
intermediate seeks and memory stays bounded) and renders it to a frame only when its socket
is about to send, through `PlaybackState.memo`, so each distinct frame is encoded once per
event per process however many sockets receive it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Protocol

from resolvers.playback import PlaybackState

log = logging.getLogger("cowatch.bus")

Render = Callable[[PlaybackState, bool], str]
Send = Callable[[str], Awaitable[None]]


class Sink(Protocol):
    def ready(self, listener: Listener) -> None: ...


class Outbox:
    """One socket's sender: the newest frame of each of its ready listeners, in order.

    Healthy sockets are written by the bus's one flusher task, one after another, the way a
    hand-written loop over sockets would: an ASGI send that does not block costs no task
    switch, which is most of the fan-out's price at thousands of sockets. A socket whose
    send ever waits (a slow client on a server that applies back-pressure) gets a writer task
    of its own from then on, so it can hold up the others once at most.
    """

    def __init__(
        self, send: Send, on_close: Callable[[Outbox], None], schedule: Callable[[Outbox], None]
    ) -> None:
        self._send = send
        self._on_close = on_close
        self._schedule = schedule
        self._ready: dict[int, Listener] = {}
        self._flushing = False
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    def ready(self, listener: Listener) -> None:
        if self.closed:
            return
        self._ready[id(listener)] = listener
        if self._wake is not None:
            self._wake.set()
        elif not self._flushing:
            self._schedule(self)

    def next_frame(self) -> str | None:
        while self._ready:
            frame = self._ready.pop(next(iter(self._ready))).take()
            if frame is not None:
                return frame
        return None

    def own_writer(self) -> None:
        """From now on this socket is written by a task of its own."""
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="cowatch-outbox")

    def failed(self, exc: Exception) -> None:
        log.debug("outbox stopped: %r", exc)  # the socket went away; its reader cleans up
        self.closed = True

    async def flush(self) -> None:
        """Send what is ready (this socket's own writer)."""
        if self._flushing or self.closed:
            return
        self._flushing = True
        try:
            while (frame := self.next_frame()) is not None:
                await self._send(frame)
        except Exception as exc:
            self.failed(exc)
        finally:
            self._flushing = False

    async def _run(self) -> None:
        assert self._wake is not None
        while not self.closed:
            if not self._ready:
                await self._wake.wait()
                self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        self.closed = True
        self._ready.clear()
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
        self._on_close(self)


class Listener:
    """One subscription: the newest state offered, rendered when its socket can take it."""

    __slots__ = ("_outbox", "_render", "_sent", "_state", "active")

    def __init__(self, outbox: Sink, render: Render, *, active: bool = True) -> None:
        self._outbox = outbox
        self._render = render
        self._state: PlaybackState | None = None
        self._sent = -1
        self.active = active

    def offer(self, state: PlaybackState) -> None:
        if self._state is None or state.version > self._state.version:
            self._state = state
            if self.active:
                self._outbox.ready(self)

    @property
    def state(self) -> PlaybackState | None:
        return self._state

    def activate(self) -> None:
        self.active = True
        if self._state is not None:
            self._outbox.ready(self)

    def take(self) -> str | None:
        """The frame to send now, or None when the newest state was already sent."""
        state = self._state
        if state is None or state.version <= self._sent:
            return None
        first = self._sent < 0
        self._sent = state.version
        return self._render(state, first)


class Signal:
    """A sink for in-process consumers (`PlaybackBus.watch`): just wakes one waiter."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def ready(self, listener: Listener) -> None:
        self.event.set()


def unrendered(_state: PlaybackState, _first: bool) -> str:
    return ""


async def flush_shared(outboxes: dict[Outbox, None]) -> None:
    """The bus's flusher: each ready socket without a writer of its own, in turn, inline.

    Deliberately flat (no coroutine or task per socket): at thousands of sockets every frame
    of Python on this path shows up in the fan-out time. A sentinel callback tells whether a
    send gave the event loop a turn (it waited for the client, as a back-pressuring server's
    send does when the socket's buffer is full); that socket then gets its own writer, so it
    can delay the others once at most. uvicorn's websocket sends never wait.
    """
    loop = asyncio.get_running_loop()
    waited = False

    def mark() -> None:
        nonlocal waited
        waited = True

    sentinel = loop.call_soon(mark)
    try:
        while outboxes:
            # Take the whole batch: popping a dict from the front one key at a time is
            # quadratic (each next(iter()) skips every slot deleted before it).
            batch = list(outboxes)
            outboxes.clear()
            for outbox in batch:
                if outbox._task is not None or outbox._flushing or outbox.closed:
                    continue
                outbox._flushing = True
                try:
                    while (frame := outbox.next_frame()) is not None:
                        await outbox._send(frame)
                        if waited:
                            outbox.own_writer()
                            waited, sentinel = False, loop.call_soon(mark)
                            break
                except Exception as exc:
                    outbox.failed(exc)
                finally:
                    outbox._flushing = False
    finally:
        sentinel.cancel()
