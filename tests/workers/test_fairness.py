"""Rounds for arq scores, on the real Redis: one job per user per round, the clock moves with
the jobs workers start, and a retried job's real due time leaves the clock alone."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.conftest import REDIS_URL
from workers import fairness


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL)
    queue = f"cowatch-test:{uuid.uuid4().hex}"
    try:
        yield client, queue
    finally:
        async for key in client.scan_iter(match=f"{queue}:*"):
            await client.delete(key)
        await client.aclose()


async def _score(redis: Redis, queue: str, owner: str) -> int:
    due = await fairness.assign(redis, queue_name=queue, owner_id=owner)
    return round(due.timestamp() * 1000)  # what arq stores


async def test_rounds_order_users_and_follow_the_started_jobs(
    redis: tuple[Redis, str],
) -> None:
    client, queue = redis
    a = [await _score(client, queue, "a") for _ in range(3)]
    b1 = await _score(client, queue, "b")
    assert a[0] < b1 < a[1] < a[2]
    assert all(score < time.time() * 1000 for score in [*a, b1])  # due at once

    await fairness.advance(client, queue_name=queue, score=a[1])  # a worker took A's 2nd job
    c1 = await _score(client, queue, "c")  # a newcomer takes the round after the running one
    assert c1 // fairness.PER_ROUND == a[2] // fairness.PER_ROUND  # with A's 3rd, after it
    assert c1 > a[2]

    await fairness.advance(client, queue_name=queue, score=int(time.time() * 1000) + 10_000)
    d1 = await _score(client, queue, "d")  # a retried job's real due time moved nothing
    assert d1 // fairness.PER_ROUND == c1 // fairness.PER_ROUND
    await fairness.advance(client, queue_name=queue, score=a[0])  # never backwards
    assert await _score(client, queue, "e") // fairness.PER_ROUND == c1 // fairness.PER_ROUND
