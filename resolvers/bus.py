"""The playback bus: one backend subscription per video per process, fanned out locally.

Shape of the fan-out, from the backend to the socket:

- `PlaybackBus` holds one `Room` per video that has local subscribers (`resolvers/rooms.py`),
  subscribed once on the backend (broadcaster's memory or Redis pub/sub). Each incoming
  state is decoded once and taken by its room in version order (echoes dropped, a version
  that overtook another held until the gap fills). Taking a state is O(1): the room notes
  it as fresh and wakes the flusher; a seek does no per-subscriber work.
- The flusher, one task per process, makes passes: every fresh room's states go to each of
  its `Listener`s (one subscription: a `/ws` video or a GraphQL operation) at once, rendered
  through `PlaybackState.memo` (each distinct frame encoded once per event per process) and
  written to the socket in one call where the server allows it; then the `Outbox` queues
  that needed it (a new subscriber's first state, a slow socket, a server without batched
  writes) are flushed (`resolvers/delivery.py`). Every subscriber gets every version, in
  order; one that stops reading falls back to the newest states with bounded memory.

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

from broadcaster import BroadcastBackend

from resolvers.broadcast import open_backend
from resolvers.delivery import (
    Feed,
    FrameWriter,
    Listener,
    Outbox,
    Send,
    fan_out,
    flush_shared,
    unrendered,
)
from resolvers.playback import PlaybackState
from resolvers.rooms import Room

log = logging.getLogger("cowatch.bus")
CHANNEL_PREFIX = "cowatch:playback:"
#: A flush taking at least this long (seconds) is followed by an equal pause (`_flush_forever`).
PACE_AFTER_S = 0.005
#: How long (seconds) states that overtook a missing version wait for it before going out.
GAP_WAIT_S = 1.0

LoadState = Callable[[str], Awaitable[PlaybackState]]


class PlaybackBus:
    def __init__(
        self,
        url: str,
        *,
        load: LoadState,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        pace_after: float = PACE_AFTER_S,
        gap_wait: float = GAP_WAIT_S,
    ) -> None:
        self.url = url
        self._pace_after = pace_after
        self._gap_wait = gap_wait
        self._load = load
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._rooms: dict[str, Room] = {}
        self._fresh: dict[Room, None] = {}
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
        for room in self._rooms.values():
            if room.gap_timer is not None:
                room.gap_timer.cancel()
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

    def open_outbox(self, send: Send, writer: FrameWriter | None = None) -> Outbox:
        outbox = Outbox(send, writer, self._outbox_closed, self._schedule)
        self._outboxes.add(outbox)
        self.idle.clear()
        return outbox

    def _schedule(self, outbox: Outbox) -> None:
        self._dirty[outbox] = None
        self._flush_wake.set()

    async def _flush_forever(self) -> None:
        """One task writes every healthy socket: no task switch per subscriber.

        A pass that took long (thousands of sockets) is followed by a pause as long as it
        took. Without it each seek's fan-out would start as soon as the seek was stored, so
        every pass would carry one state per socket and cost one write per socket per seek;
        with it the next pass carries every state that arrived meanwhile, several per socket
        in one write each. Fan-out then takes at most about half of a saturated loop, and a
        state waits at most about two passes.
        """
        loop = asyncio.get_running_loop()
        while True:
            await self._flush_wake.wait()
            self._flush_wake.clear()
            started = loop.time()
            rooms = list(self._fresh)
            self._fresh.clear()
            work = [(list(room.listeners), fresh) for room in rooms if (fresh := room.take_fresh())]
            try:
                await fan_out(work)
                batch = list(self._dirty)
                self._dirty.clear()
                await flush_shared(batch)
            except Exception:
                # A bug in one frame must not stop delivery to everyone: log it, go on.
                log.exception("a fan-out pass failed")
            took = loop.time() - started
            if took >= self._pace_after:
                await asyncio.sleep(took)

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
                room = self._rooms[video_id] = Room()
                self.idle.clear()
                room.joining += 1
                try:
                    await self._backend_call("subscribe", video_id)
                    self._deliver(await self._load(video_id), authoritative=True)
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
        """The current state, then every newer one, in order."""
        feed = Feed()
        listener = Listener(feed, unrendered)
        await self.subscribe(video_id, listener)
        try:
            while True:
                await feed.event.wait()
                feed.event.clear()
                for state in feed.take():
                    yield state
        finally:
            await self.unsubscribe(video_id, listener)

    async def unsubscribe(self, video_id: str, listener: Listener) -> None:
        listener.active = False  # nothing more is sent for it, even what is queued
        room = self._rooms.get(video_id)
        if room is not None:
            room.listeners.discard(listener)
            if self._forget_if_empty(video_id, room):
                await self._backend_call("unsubscribe", video_id)

    def _forget_if_empty(self, video_id: str, room: Room) -> bool:
        if room.listeners or room.joining or self._rooms.get(video_id) is not room:
            return False
        del self._rooms[video_id]
        self._fresh.pop(room, None)
        if room.gap_timer is not None:
            room.gap_timer.cancel()
        room.ready.set()
        self._check_idle()
        return True

    def _deliver(self, state: PlaybackState, *, authoritative: bool = False) -> None:
        room = self._rooms.get(state.video_id)
        if room is None:
            return
        if room.accept(state, authoritative=authoritative):
            self._fresh[room] = None
            self._flush_wake.set()
        if room.held and room.gap_timer is None:
            loop = asyncio.get_running_loop()
            room.gap_timer = loop.call_later(self._gap_wait, self._gap_expired, room)
        elif not room.held and room.gap_timer is not None:
            room.gap_timer.cancel()
            room.gap_timer = None

    def _gap_expired(self, room: Room) -> None:
        room.gap_timer = None
        if not room.held or room.latest is None:
            return
        skipped = room.give_up_gap()
        log.warning(
            "video %s: versions %s never arrived within %.1f s; went on without them",
            room.latest.video_id,
            skipped,
            self._gap_wait,
        )
        self._fresh[room] = None
        self._flush_wake.set()

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
                self._deliver(await self._load(video_id), authoritative=True)
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
