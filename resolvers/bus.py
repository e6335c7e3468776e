"""The playback bus: one backend subscription per video per process, fanned out locally.

Shape of the fan-out, from the backend to the socket:

- `PlaybackBus` holds one `_Room` per video that has local subscribers, subscribed once on
  the backend (broadcaster's memory or Redis pub/sub). Each incoming state is decoded once,
  dropped if it is not newer than the room's newest (echoes, reordering across processes),
  then *offered* to every `Listener` of the room. Offering is synchronous and O(1): no
  per-subscriber queue, task or encoding on the hot path.
- A `Listener` is one subscription (a `/ws` video or a GraphQL operation). It keeps only the
  newest state it was offered (a buffer of one, so a slow client skips intermediate seeks
  and memory stays bounded) and renders it to a frame only when its socket is ready to send.
  Rendering goes through `PlaybackState.memo`, so each distinct frame is encoded once per
  event per process, whatever the number of sockets.
- An `Outbox` is one socket's sender. One flusher task per process writes every healthy
  socket in turn (no task switch per subscriber); a socket whose send blocks gets a writer
  task of its own (`resolvers/delivery.py`).

Supervision: the pump task reads the backend; when it fails (Redis went away) the bus keeps
every room and listener, reconnects with exponential backoff, resubscribes the live channels
and re-offers each room's current state read from the database, because pub/sub is
at-most-once and anything published during the outage is lost. Publishing while the backend
is down still reaches this process's own subscribers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field

from broadcaster import BroadcastBackend

from resolvers.broadcast import open_backend
from resolvers.delivery import Listener, Outbox, Send, Signal, flush_shared, unrendered
from resolvers.playback import PlaybackState

log = logging.getLogger("cowatch.bus")
CHANNEL_PREFIX = "cowatch:playback:"

LoadState = Callable[[str], Awaitable[PlaybackState]]


@dataclass
class _Room:
    listeners: set[Listener] = field(default_factory=set)
    latest: PlaybackState | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    joining: int = 0


class PlaybackBus:
    def __init__(
        self, url: str, *, load: LoadState, min_backoff: float = 0.05, max_backoff: float = 5.0
    ) -> None:
        self.url = url
        self._load = load
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._rooms: dict[str, _Room] = {}
        self._outboxes: set[Outbox] = set()
        self._backend: BroadcastBackend | None = None
        self._pump: asyncio.Task[None] | None = None
        self._dirty: dict[Outbox, None] = {}
        self._flush_wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        #: Set whenever no room, listener or outbox is alive (what a leak check waits for).
        self.idle = asyncio.Event()
        self.idle.set()
        self.recoveries = 0

    async def start(self) -> None:
        self._pump = asyncio.create_task(self._supervise())
        self._flusher = asyncio.create_task(self._flush_forever())

    async def close(self) -> None:
        for task in (self._pump, self._flusher):
            if task is not None:
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        for outbox in list(self._outboxes):
            await outbox.close()
        await self._drop_backend()

    async def ping(self) -> None:
        if not self.connected.is_set():
            raise ConnectionError("broadcast backend is not connected")

    def stats(self) -> dict[str, int]:
        """Live rooms, listeners and socket writers in this process (for leak checks)."""
        return {
            "channels": len(self._rooms),
            "listeners": sum(len(room.listeners) for room in self._rooms.values()),
            "outboxes": len(self._outboxes),
        }

    def open_outbox(self, send: Send) -> Outbox:
        outbox = Outbox(send, self._outbox_closed, self._schedule)
        self._outboxes.add(outbox)
        self.idle.clear()
        return outbox

    def _schedule(self, outbox: Outbox) -> None:
        self._dirty[outbox] = None
        self._flush_wake.set()

    async def _flush_forever(self) -> None:
        """One task writes every healthy socket: no task switch per subscriber."""
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            await flush_shared(self._dirty)

    def _outbox_closed(self, outbox: Outbox) -> None:
        self._outboxes.discard(outbox)
        self._dirty.pop(outbox, None)
        self._check_idle()

    def _check_idle(self) -> None:
        if not self._rooms and not self._outboxes:
            self.idle.set()

    async def publish(self, state: PlaybackState) -> None:
        """Deliver here at once, then to the other processes (the echo is dropped by version)."""
        self._deliver(state)
        backend = self._backend
        if backend is None or not self.connected.is_set():
            log.warning("broadcast backend is down; %s reached this process only", state.video_id)
            return
        try:
            await backend.publish(CHANNEL_PREFIX + state.video_id, state.to_json())
        except Exception as exc:
            log.warning("publish failed (%r); the state is stored and resent on recovery", exc)

    async def subscribe(self, video_id: str, listener: Listener) -> PlaybackState:
        """Join a video's room; the listener is offered the current state, then every change."""
        while True:
            room = self._rooms.get(video_id)
            if room is None:
                room = self._rooms[video_id] = _Room()
                self.idle.clear()
                room.joining += 1
                try:
                    await self._backend_call("subscribe", video_id)
                    self._deliver(await self._load(video_id))
                finally:
                    room.joining -= 1
                    room.ready.set()
                    if room.latest is None and self._forget_if_empty(video_id, room):
                        await self._backend_call("unsubscribe", video_id)
                break
            room.joining += 1
            try:
                await room.ready.wait()
            finally:
                room.joining -= 1
            if room.latest is not None and self._rooms.get(video_id) is room:
                break
        room.listeners.add(listener)
        assert room.latest is not None
        listener.offer(room.latest)
        return room.latest

    async def watch(self, video_id: str) -> AsyncGenerator[PlaybackState, None]:
        """The current state, then every newer one (intermediate states may be skipped)."""
        signal = Signal()
        listener = Listener(signal, unrendered)
        await self.subscribe(video_id, listener)
        try:
            sent = -1
            while True:
                await signal.event.wait()
                signal.event.clear()
                state = listener.state
                if state is not None and state.version > sent:
                    sent = state.version
                    yield state
        finally:
            await self.unsubscribe(video_id, listener)

    async def unsubscribe(self, video_id: str, listener: Listener) -> None:
        room = self._rooms.get(video_id)
        if room is not None:
            room.listeners.discard(listener)
            if self._forget_if_empty(video_id, room):
                await self._backend_call("unsubscribe", video_id)

    def _forget_if_empty(self, video_id: str, room: _Room) -> bool:
        if room.listeners or room.joining or self._rooms.get(video_id) is not room:
            return False
        del self._rooms[video_id]
        room.ready.set()
        self._check_idle()
        return True

    def _deliver(self, state: PlaybackState) -> None:
        room = self._rooms.get(state.video_id)
        if room is None or (room.latest is not None and state.version <= room.latest.version):
            return
        room.latest = state
        for listener in room.listeners:
            listener.offer(state)

    async def _backend_call(self, method: str, video_id: str) -> None:
        backend = self._backend
        if backend is None or not self.connected.is_set():
            return  # the supervisor subscribes every live room when it reconnects
        try:
            await getattr(backend, method)(CHANNEL_PREFIX + video_id)
        except Exception as exc:
            log.warning("broadcast %s failed: %r", method, exc)

    async def _drop_backend(self) -> None:
        self.connected.clear()
        backend, self._backend = self._backend, None
        if backend is not None:
            with suppress(Exception):
                await backend.disconnect()

    async def _connect(self) -> BroadcastBackend:
        backend = open_backend(self.url)
        try:
            await backend.connect()
            for video_id in list(self._rooms):
                await backend.subscribe(CHANNEL_PREFIX + video_id)
        except BaseException:
            with suppress(Exception):
                await backend.disconnect()
            raise
        return backend

    async def _resync(self) -> None:
        """After an outage: re-offer every live room's state from the database."""
        for video_id in list(self._rooms):
            try:
                self._deliver(await self._load(video_id))
            except Exception as exc:
                log.warning("could not reload %s after reconnect: %r", video_id, exc)

    async def _supervise(self) -> None:
        delay = self._min_backoff
        failed = False
        while True:
            try:
                self._backend = await self._connect()
                self.connected.set()
                delay = self._min_backoff
                if failed:
                    self.recoveries += 1
                    log.warning("broadcast backend is back; resent current states")
                    await self._resync()
                while True:
                    event = await self._backend.next_published()
                    self._on_message(event.channel, event.message)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not failed or self.connected.is_set():
                    log.warning("broadcast backend failed (%r); reconnecting", exc)
                failed = True
                await self._drop_backend()
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    def _on_message(self, channel: str, message: str) -> None:
        try:
            state = PlaybackState.from_json(message)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring malformed broadcast on %s: %r", channel, exc)
            return
        self._deliver(state)
