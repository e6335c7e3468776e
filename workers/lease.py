"""A short, renewed hold on a running arq job, so a dead worker's job runs again within seconds.

What this relies on, read in arq 0.28's worker.py: a worker takes a job by setting
`arq:in-progress:<job_id>` (`constants.in_progress_key_prefix`) with PSETEX for
`Worker.in_progress_timeout_s` (largest function timeout + 10 s) inside a WATCH; other workers
skip the job while that key exists. `finish_job` deletes it when the job ends or is retried;
a SIGKILLed worker never does, so its job waits for the key to expire. Each run starts with
INCR `arq:retry:<job_id>`, so the next worker's run sees `ctx["job_try"]` one higher.
The worker shortens that first expiry to the lease and the job renews it while it runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("cowatch.lease")

#: renewals per lease: one can fail or come late (a Redis blip, a busy loop) without a lapse
RENEWALS_PER_LEASE = 3


def in_progress_key(job_id: str) -> str:
    return in_progress_key_prefix + job_id


async def _renew(redis: Redis, key: str, lease_s: float) -> None:
    while True:
        try:
            # XX: only push an existing key forward. The lease never outlives arq's own
            # bookkeeping: once finish_job deletes the key, a late renewal cannot bring it back.
            held = await redis.set(key, b"1", px=int(lease_s * 1000), xx=True)
        except (RedisError, OSError) as exc:
            log.warning("could not renew %s (%s); retrying", key, exc)
        else:
            if not held:
                log.warning("%s had lapsed: another worker may run this job too", key)
        await asyncio.sleep(lease_s / RENEWALS_PER_LEASE)


@asynccontextmanager
async def job_lease(redis: Redis, job_id: str, lease_s: float) -> AsyncIterator[None]:
    """Keep the job marked in progress for `lease_s` past the latest renewal while the body runs."""
    renewing = asyncio.create_task(
        _renew(redis, in_progress_key(job_id), lease_s), name=f"lease {job_id}"
    )
    try:
        yield
    finally:
        renewing.cancel()
        # wait() rather than awaiting the task: its CancelledError must not be mistaken for
        # (or swallow) a cancellation of the job itself.
        await asyncio.wait({renewing})
