"""The live store: compare-and-set records, and messages published with a write (Redis)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from models.live import PREFIX, LiveStore, MemoryLive, RedisLive
from tests.conftest import REDIS_URL


@pytest.fixture
def store(live_store: LiveStore) -> LiveStore:
    return live_store


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_a_swap_writes_only_from_the_revision_it_names(store: LiveStore, key: str) -> None:
    first = await store.swap(key, 0, b"one")
    assert first.written
    late = await store.swap(key, 0, b"other")  # created meanwhile: refused, with what is there
    assert (late.written, late.revision, late.value) == (False, first.revision, b"one")
    second = await store.swap(key, first.revision, b"two")
    assert second.written and second.revision == first.revision + 1
    assert await store.read(key) == (second.revision, b"two")
    await store.forget(key)


async def test_the_memory_store_does_not_publish_what_a_swap_carries(key: str) -> None:
    store = MemoryLive()
    swap = await store.swap(key, 0, b"one", [("cowatch:test", "message")])
    assert swap.written and not swap.published  # the caller publishes itself


async def test_a_redis_swap_publishes_its_messages_with_the_write_and_a_refused_one_none(
    key: str,
) -> None:
    store = RedisLive(REDIS_URL)
    listener = aioredis.from_url(REDIS_URL)
    pubsub = listener.pubsub(ignore_subscribe_messages=True)
    channel = f"cowatch:test:{uuid.uuid4().hex}"
    await pubsub.subscribe(channel)
    try:
        written = await store.swap(key, 0, b"one", [(channel, "first"), (channel, "second")])
        refused = await store.swap(key, 0, b"two", [(channel, "refused")])
        await listener.publish(channel, "after")

        assert written.written and written.published
        assert not refused.written and not refused.published
        heard: list[str] = []
        async with asyncio.timeout(10):  # None answers: the subscription's confirmation
            while len(heard) < 3:
                message = await pubsub.get_message(timeout=1.0)
                if message is not None:
                    heard.append(message["data"].decode())
        assert heard == ["first", "second", "after"]
        assert await store.read(key) == (written.revision, b"one")
    finally:
        await pubsub.aclose()
        await listener.delete(PREFIX + key)
        await listener.aclose()
        await store.close()
