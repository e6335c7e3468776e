"""broadcaster backends chosen by URL scheme: `memory://` (one process) and `redis://`.

Both implement broadcaster's public `BroadcastBackend` interface. Ours differ from the ones
bundled with broadcaster 0.3.1 in one way that matters: when Redis drops, `next_published`
*raises* instead of hanging forever (encode/broadcaster#144), so `realtime.bus.Bus` can notice,
reconnect and resubscribe.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any
from urllib.parse import urlparse

from broadcaster import BroadcastBackend, Event

from models.redis_pool import redis_client

POLL_S = 1.0


class Backend(BroadcastBackend):
    """broadcaster's interface, plus several messages sent at once."""

    async def publish_all(self, messages: list[tuple[str, str]]) -> None:
        """(channel, message) pairs, published in this order."""
        for channel, message in messages:
            await self.publish(channel, message)


class MemoryBackend(Backend):
    """In-process pub/sub for the embedded mode (every subscriber lives in this process)."""

    def __init__(self, url: str) -> None:
        self._subscribed: set[str] = set()
        self._published: asyncio.Queue[Event] = asyncio.Queue()

    async def connect(self) -> None:
        pass

    async def disconnect(self) -> None:
        pass

    async def subscribe(self, channel: str) -> None:
        self._subscribed.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._subscribed.discard(channel)

    async def publish(self, channel: str, message: Any) -> None:
        self._published.put_nowait(Event(channel=channel, message=message))

    async def next_published(self) -> Event:
        while True:
            event = await self._published.get()
            if event.channel in self._subscribed:
                return event


class RedisBackend(Backend):
    """Redis pub/sub; any connection failure surfaces as an exception from every method."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn = redis_client(url, health_check_interval=10)
        self._pubsub = self._conn.pubsub(ignore_subscribe_messages=True)
        self._has_channels = asyncio.Event()

    async def connect(self) -> None:
        await self._conn.ping()

    async def disconnect(self) -> None:
        with suppress(Exception):
            await self._pubsub.aclose()
        with suppress(Exception):
            await self._conn.aclose()

    async def subscribe(self, channel: str) -> None:
        await self._pubsub.subscribe(channel)
        self._has_channels.set()

    async def unsubscribe(self, channel: str) -> None:
        await self._pubsub.unsubscribe(channel)

    async def publish(self, channel: str, message: Any) -> None:
        await self._conn.publish(channel, message)

    async def publish_all(self, messages: list[tuple[str, str]]) -> None:
        """In one round trip (Redis keeps their order: one connection, one pipeline)."""
        if len(messages) == 1:
            await self.publish(*messages[0])
            return
        async with self._conn.pipeline(transaction=False) as pipe:
            for channel, message in messages:
                pipe.publish(channel, message)
            await pipe.execute()

    async def next_published(self) -> Event:
        while True:
            if not self._pubsub.subscribed:
                # No channel: redis-py has no connection to read from, so check liveness.
                self._has_channels.clear()
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._has_channels.wait(), POLL_S)
                if not self._pubsub.subscribed:
                    await self._conn.ping()
                continue
            message = await self._pubsub.get_message(timeout=POLL_S)
            if message is not None and message["type"] == "message":
                return Event(channel=message["channel"].decode(), message=message["data"].decode())


def open_backend(url: str) -> Backend:
    scheme = urlparse(url).scheme
    if scheme == "memory":
        return MemoryBackend(url)
    if scheme in ("redis", "rediss"):
        return RedisBackend(url)
    raise ValueError(f"unsupported broadcast URL scheme: {scheme!r}")
