"""CountCache: one query per key per TTL, shared by concurrent readers, errors never cached."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from resolvers.counts import CountCache


async def test_a_count_is_served_from_memory_within_the_ttl() -> None:
    cache = CountCache(ttl_s=3600)
    calls: list[str] = []

    async def count() -> int:
        calls.append("x")
        return len(calls)

    assert await cache.get("a", count) == 1
    assert await cache.get("a", count) == 1
    assert await cache.get("b", count) == 2  # keys are counted apart
    cache.forget("a")
    assert await cache.get("a", count) == 3
    assert await CountCache(ttl_s=0).get("a", count) == 4  # ttl 0: always counted


async def test_concurrent_misses_share_one_count() -> None:
    cache = CountCache(ttl_s=3600)
    started, release = asyncio.Event(), asyncio.Event()
    calls = 0

    async def count() -> int:
        nonlocal calls
        calls += 1
        started.set()
        await release.wait()
        return 7

    readers = [asyncio.create_task(cache.get("k", count)) for _ in range(5)]
    await started.wait()
    release.set()
    assert await asyncio.gather(*readers) == [7] * 5
    assert calls == 1


async def test_a_failed_count_is_not_kept() -> None:
    cache = CountCache(ttl_s=3600)
    outcomes: Iterator[Exception | int] = iter([RuntimeError("db down"), 5])

    async def count() -> int:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with pytest.raises(RuntimeError):
        await cache.get("k", count)
    assert await cache.get("k", count) == 5
