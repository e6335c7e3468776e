"""The bus: one backend subscription per topic per process, fanned out locally.

Shape of the fan-out, from the backend to the socket:

- `Bus` holds one `Room` per topic that has local listeners (`realtime/rooms.py`), subscribed
  once on the backend (memory, or Redis pub/sub: `realtime/backends.py`). Each incoming event is
  decoded once and taken by its room in version order (echoes dropped, a version that overtook
  another held until the gap fills). Taking an event is O(1): the room notes it as fresh and wakes
  the flusher; a publish does no per-subscriber work.
- The flusher, one task per process, makes passes: every fresh room's events go to each of its
  `Listener`s (one subscription: a `/ws` topic or a GraphQL operation) at once, rendered through
  `Event.frames` (each distinct frame encoded once per event per process) and written to the
  socket in one call where the server allows it; then the `Outbox` queues that needed it (a new
  subscriber's first event, a slow socket, a server without batched writes) are flushed
  (`realtime/delivery.py`). Every subscriber gets every version, in order; one that stops
  reading falls back to the newest state (or, on a log topic, is stopped) with bounded memory.

Sources: a topic kind may have a `Source`, where its truth lives (the database). A new room
reads the head from it (a playhead's current state, or a log's newest version); a gap that does
not fill in time, and every room after a backend outage, asks it what was missed. Pub/sub is
at-most-once, so this is what heals listeners.

Supervision: the pump task reads the backend; when it fails (Redis went away) the bus keeps every
room and listener, reconnects with exponential backoff, resubscribes the live channels and catches
every room up from its source. Publishing while the backend is down still reaches this process's
own listeners.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import suppress

from realtime.backends import Backend, open_backend
from realtime.delivery import (
    Feed,
    FrameWriter,
    Listener,
    Outbox,
    Send,
    fan_out,
    flush_shared,
    unrendered,
)
from realtime.events import Event, Source, topic_kind
from realtime.rooms import Room

log = logging.getLogger("cowatch.realtime")
CHANNEL_PREFIX = "cowatch:"
#: A flush taking at least this long (seconds) is followed by an equal pause (`_flush_forever`).
PACE_AFTER_S = 0.005
#: How long (seconds) events that overtook a missing version wait for it before a catch-up.
GAP_WAIT_S = 1.0


class Bus:
    def __init__(
        self,
        url: str,
        *,
        sources: dict[str, Source] | None = None,
        min_backoff: float = 0.05,
        max_backoff: float = 5.0,
        pace_after: float = PACE_AFTER_S,
        gap_wait: float = GAP_WAIT_S,
    ) -> None:
        self.url = url
        self.sources: dict[str, Source] = dict(sources or {})
        self._pace_after = pace_after
        self._gap_wait = gap_wait
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._rooms: dict[str, Room] = {}
        self._fresh: dict[Room, None] = {}
        self._outboxes: set[Outbox] = set()
        self._backend: Backend | None = None
        self._pump: asyncio.Task[None] | None = None
        self._dirty: dict[Outbox, None] = {}
        self._flush_wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        #: Set whenever no room, listener or outbox is alive (what a leak check waits for).
        self.idle = asyncio.Event()
        self.idle.set()
        self.recoveries = 0

    async def start(self) -> None:
        self._pump = asyncio.create_task(self._supervise())
        self._flusher = asyncio.create_task(self._flush_forever())

    async def close(self) -> None:
        for task in (self._pump, self._flusher, *self._tasks):
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

    def stateful(self, topic: str) -> bool:
        source = self.sources.get(topic_kind(topic))
        return source is not None and source.stateful

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
        took. Without it each publish's fan-out would start as soon as it arrived, so every
        pass would carry one event per socket and cost one write per socket per event; with it
        the next pass carries every event that arrived meanwhile, several per socket in one
        write each. Fan-out then takes at most about half of a saturated loop, and an event
        waits at most about two passes.
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

    async def publish(self, event: Event) -> None:
        """Deliver here at once, then to the other processes (the echo is dropped by version)."""
        self._deliver(event)
        backend = self._backend
        if backend is None or not self.connected.is_set():
            log.warning("broadcast backend is down; %s reached this process only", event.topic)
            return
        try:
            await backend.publish(CHANNEL_PREFIX + event.topic, event.to_json())
        except Exception as exc:
            log.warning("publish failed (%r); the event is stored and resent on recovery", exc)

    async def publish_all(self, events: list[Event]) -> None:
        """Several events, in order: delivered here at once, then sent in one round trip."""
        if not events:
            return
        self.deliver_here(events)
        backend = self._backend
        if backend is None or not self.connected.is_set():
            log.warning("broadcast backend is down; %s reached this process only", events[0].topic)
            return
        try:
            await backend.publish_all(_messages(events))
        except Exception as exc:
            log.warning("publish failed (%r); the event is stored and resent on recovery", exc)

    def wire(self, events: list[Event], redis_url: str | None) -> list[tuple[str, str]] | None:
        """The (channel, message) pairs `publish_all` would send, for a writer that publishes
        them itself through `redis_url` (the live store's script); None unless that is the
        Redis this bus listens to. The writer then calls `deliver_here`."""
        if redis_url is None or redis_url != self.url:
            return None
        return _messages(events)

    def deliver_here(self, events: list[Event]) -> None:
        """Deliver to this process's listeners only (the others heard through Redis)."""
        for event in events:
            self._deliver(event)

    async def subscribe(self, topic: str, listener: Listener) -> int | None:
        """Join a topic's room; the version it stands at (a stateful topic offers its state)."""
        while True:
            room = self._rooms.get(topic)
            if room is None:
                room = self._rooms[topic] = Room(topic)
                self.idle.clear()
                room.joining += 1
                try:
                    await self._backend_call("subscribe", topic)
                    await self._start_room(room)
                finally:
                    room.joining -= 1
                    room.ready.set()
                    if not room.started and self._forget_if_empty(room):
                        await self._backend_call("unsubscribe", topic)
                break
            room.joining += 1
            try:
                await room.ready.wait()
            finally:
                room.joining -= 1
            if room.started and self._rooms.get(topic) is room:
                break
        room.listeners.add(listener)
        if room.state is not None and self.stateful(topic):
            listener.offer(room.state)
        return room.version

    async def _start_room(self, room: Room) -> None:
        source = self.sources.get(topic_kind(room.topic))
        if source is not None:
            head = await source.head(room.topic)
            if head.state is not None:
                self._deliver(head.state, authoritative=True)
            elif head.version is not None and (room.version is None or head.version > room.version):
                room.version = head.version
        room.started = True

    async def watch(self, topic: str) -> AsyncGenerator[Event, None]:
        """A stateful topic's current state, then every newer event, in order."""
        feed = Feed()
        listener = Listener(feed, unrendered, collapsible=self.stateful(topic))
        await self.subscribe(topic, listener)
        try:
            while True:
                await feed.event.wait()
                feed.event.clear()
                for event in feed.take():
                    yield event
        finally:
            await self.unsubscribe(topic, listener)

    async def unsubscribe(self, topic: str, listener: Listener) -> None:
        listener.active = False  # nothing more is sent for it, even what is queued
        room = self._rooms.get(topic)
        if room is not None:
            room.listeners.discard(listener)
            if self._forget_if_empty(room):
                await self._backend_call("unsubscribe", topic)

    def _forget_if_empty(self, room: Room) -> bool:
        if room.listeners or room.joining or self._rooms.get(room.topic) is not room:
            return False
        del self._rooms[room.topic]
        self._fresh.pop(room, None)
        if room.gap_timer is not None:
            room.gap_timer.cancel()
        room.ready.set()
        self._check_idle()
        return True

    def _deliver(self, event: Event, *, authoritative: bool = False) -> None:
        room = self._rooms.get(event.topic)
        if room is None:
            return
        if room.accept(event, authoritative=authoritative):
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
        if not room.held or self._rooms.get(room.topic) is not room:
            return
        task = asyncio.create_task(self._fill_gap(room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fill_gap(self, room: Room) -> None:
        """Ask the source what the gap missed; go on without it if it cannot say."""
        await self._catch_up(room)
        if not room.held or room.version is None:
            return
        skipped = room.give_up_gap()
        log.warning(
            "%s: versions %s never arrived within %.1f s; went on without them",
            room.topic,
            skipped,
            self._gap_wait,
        )
        self._fresh[room] = None
        self._flush_wake.set()

    async def _catch_up(self, room: Room) -> None:
        source = self.sources.get(topic_kind(room.topic))
        if source is None:
            return
        try:
            missed = await source.since(room.topic, room.version)
        except Exception as exc:
            log.warning("could not catch %s up: %r", room.topic, exc)
            return
        for event in missed:
            self._deliver(event, authoritative=True)

    async def _backend_call(self, method: str, topic: str) -> None:
        backend = self._backend
        if backend is None or not self.connected.is_set():
            return  # the supervisor subscribes every live room when it reconnects
        try:
            await getattr(backend, method)(CHANNEL_PREFIX + topic)
        except Exception as exc:
            log.warning("broadcast %s failed: %r", method, exc)

    async def _drop_backend(self) -> None:
        self.connected.clear()
        backend, self._backend = self._backend, None
        if backend is not None:
            with suppress(Exception):
                await backend.disconnect()

    async def _connect(self) -> Backend:
        backend = open_backend(self.url)
        try:
            await backend.connect()
            for topic in list(self._rooms):
                await backend.subscribe(CHANNEL_PREFIX + topic)
        except BaseException:
            with suppress(Exception):
                await backend.disconnect()
            raise
        return backend

    async def _resync(self) -> None:
        """After an outage: catch every live room up from its source."""
        for room in list(self._rooms.values()):
            await self._catch_up(room)

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
                    log.warning("broadcast backend is back; caught every room up")
                    await self._resync()
                while True:
                    message = await self._backend.next_published()
                    self._on_message(message.channel, message.message)
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
            events = Event.many_from_json(message)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring malformed broadcast on %s: %r", channel, exc)
            return
        for event in events:
            self._deliver(event)


def _messages(events: list[Event]) -> list[tuple[str, str]]:
    """(channel, message) pairs for events in order: the run of events of one topic goes in one
    message (a change's events: one publication for every process to read, not one each)."""
    messages: list[tuple[str, str]] = []
    start = 0
    for end in range(1, len(events) + 1):
        if end == len(events) or events[end].topic != events[start].topic:
            run = events[start:end]
            message = run[0].to_json() if len(run) == 1 else Event.many_to_json(run)
            messages.append((CHANNEL_PREFIX + run[0].topic, message))
            start = end
    return messages
