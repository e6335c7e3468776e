"""A job's lease on the real Redis: renewed while the job runs, stopped on every way out."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis as AsyncRedis

from tests.workers.test_worker import REDIS_URL
from workers.lease import in_progress_key, job_lease


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll Redis (no event to await for a key's expiry) until `check` holds."""
    deadline = time.monotonic() + 30
    while not await check():
        assert time.monotonic() < deadline, f"{what}: not reached within 30 s"
        await asyncio.sleep(0.02)


async def test_a_job_lease_is_renewed_while_the_job_runs_and_stops_on_every_way_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = f"lease-test:{uuid.uuid4().hex}"
    key = in_progress_key(job_id)
    lease_s = 3
    client = AsyncRedis.from_url(REDIS_URL)

    def renewing() -> list[asyncio.Task[Any]]:
        return [task for task in asyncio.all_tasks() if task.get_name() == f"lease {job_id}"]

    async def renewed_after(ttl_ms: int) -> bool:
        return bool(ttl_ms < await client.pttl(key) <= lease_s * 1000)

    try:
        await client.set(key, b"1", px=3_600_000)  # as arq leaves it when a worker takes a job
        with pytest.raises(RuntimeError, match="the job failed"):
            async with job_lease(client, job_id, lease_s):
                await _until(lambda: renewed_after(0), "the first renewal shortens the hold")
                first = await client.pttl(key)
                await _until(lambda: renewed_after(first), "a later renewal extends it")
                raise RuntimeError("the job failed")
        assert not renewing()

        async def job() -> None:
            async with job_lease(client, job_id, lease_s):
                await asyncio.Event().wait()

        async def lease_running() -> bool:
            return bool(renewing())

        running = asyncio.create_task(job())
        await _until(lease_running, "the lease is held")
        running.cancel()  # a worker shutting down, or arq's own timeout
        with pytest.raises(asyncio.CancelledError):
            await running
        assert not renewing()

        async def lapse_logged() -> bool:
            return "had lapsed" in caplog.text

        await client.delete(key)  # the job ended: arq's finish_job removed the key
        async with job_lease(client, job_id, lease_s):
            await _until(lapse_logged, "the lapse is noticed")
        assert not await client.exists(key), "a renewal brought back a deleted key"
    finally:
        await client.delete(key)
        await client.aclose()
