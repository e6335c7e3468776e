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


async def test_a_swap_sent_after_another_is_written_only_if_that_one_was(
    store: LiveStore, key: str
) -> None:
    first = await store.swap(key, 0, b"one", token="a")
    second = await store.swap(key, first.revision, b"two", token="b", after="a")
    assert second.written
    # Another writer's swap lands where this writer's third was expected: at the same revision.
    other = await store.swap(key, second.revision, b"other", token="x")
    assert other.written
    # This writer's next swap had been sent behind its third (`after="c"`), which never was:
    # its revision matches the other writer's, but it must not overwrite it.
    behind = await store.swap(key, other.revision, b"four", token="d", after="c")
    assert (behind.written, behind.value) == (False, b"other")
    assert await store.read(key) == (other.revision, b"other")
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


async def test_a_home_is_claimed_by_the_first_process_and_renewed_only_by_it(
    key: str,
) -> None:
    store = RedisLive(REDIS_URL)
    try:
        assert await store.claim(key, "one", 60_000) == "one"
        assert await store.claim(key, "two", 60_000) == "one"
        tended = await store.refresh({key: {"member|two": 1}}, "two", 60_000)
        assert tended[key].home == "one"  # the refresh of another process renews nothing
        assert 0 < await store._redis.pttl(PREFIX + "home:" + key) <= 60_000
        await store.forget(key)  # the lease gone (expired, or the store lost it)
        assert await store.claim(key, "two", 60_000) == "two"
    finally:
        await store.forget(key)
        await store.close()


async def test_in_memory_the_one_process_is_every_home(key: str) -> None:
    store = MemoryLive()
    assert await store.claim(key, "one", 3000) == "one"
    assert (await store.refresh({key: {}}, "one", 3000))[key].home == "one"
    assert not await store.post("one", b"hello")  # no other process to hand anything to


async def test_a_message_posted_to_a_process_reaches_its_inbox_and_nobody_else(
    key: str,
) -> None:
    store = RedisLive(REDIS_URL)
    got: list[bytes] = []
    arrived = asyncio.Event()
    listening = asyncio.Event()

    def handle(message: bytes) -> None:
        got.append(message)
        arrived.set()

    inbox = asyncio.create_task(store.listen(key, handle, listening))
    try:
        await listening.wait()
        assert not await store.post(key + "-other", b"lost")  # nobody listens there
        assert await store.post(key, b"hello")
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [b"hello"]
    finally:
        inbox.cancel()
        await asyncio.gather(inbox, return_exceptions=True)
        await store.close()


async def test_an_inbox_stays_open_while_nothing_is_posted_for_longer_than_the_socket_timeout(
    key: str,
) -> None:
    store = RedisLive(REDIS_URL)
    store._redis.connection_pool.connection_kwargs["socket_timeout"] = 0.3
    got: list[bytes] = []
    arrived = asyncio.Event()
    listening = asyncio.Event()

    def handle(message: bytes) -> None:
        got.append(message)
        arrived.set()

    inbox = asyncio.create_task(store.listen(key, handle, listening))
    try:
        await listening.wait()
        await asyncio.sleep(1.0)  # the quiet itself: over three socket timeouts
        assert not inbox.done()
        assert await store.post(key, b"still here")
        await asyncio.wait_for(arrived.wait(), 10)
        assert got == [b"still here"]
    finally:
        inbox.cancel()
        await asyncio.gather(inbox, return_exceptions=True)
        await store.close()


async def test_a_refresh_keeps_this_process_entries_and_reads_every_key_back(
    store: LiveStore,
) -> None:
    """The presence pass: this process's entries refreshed, each key's entries (every
    process's), its record and its home, for several keys at once."""
    first, second, empty = (f"test:{uuid.uuid4().hex}" for _ in range(3))
    try:
        await store.present(first, {"a|other": 5_000})
        written = await store.swap(second, 0, b"state")
        tended = await store.refresh(
            {first: {"a|one": 2_000, "b|one": 3_000}, second: {"c|one": 4_000}, empty: {}},
            "one",
            60_000,
        )
        assert tended[first].presence == {"a|other": 5_000, "a|one": 2_000, "b|one": 3_000}
        assert tended[first].record is None
        assert tended[second].presence == {"c|one": 4_000}
        assert tended[second].record == (written.revision, b"state")
        assert tended[empty].presence == {}
        assert {t.home for t in tended.values()} == {"one"}
        again = await store.refresh({first: {"a|one": 9_000}}, "two", 60_000)
        assert again[first].presence["a|one"] == 9_000
        # Another process's refresh renews nothing; in memory the one process is every home.
        assert again[first].home == ("one" if isinstance(store, RedisLive) else "two")
    finally:
        for key in (first, second, empty):
            await store.forget(key)
