"""The transcode queue behind one small interface: in-process (embedded) or arq (with Redis)."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from workers import fairness
from workers.jobs import transcode_video, unfinished

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from config import Settings
    from models.db import Database
    from realtime.events import Publisher
    from storage.base import Storage

log = logging.getLogger("cowatch.queue")
TRANSCODE = "transcode_video"
#: a job still waiting this long after it was queued is dropped by arq
JOB_EXPIRES = timedelta(days=7)


class JobQueue(Protocol):
    async def enqueue_transcode(self, video_id: str, *, owner_id: str) -> None:
        """Queue the video's transcode; a video already queued or running is not queued twice.
        Users take turns: one job of each user with work waiting before anyone's next."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class InProcessQueue:
    """Runs jobs as tasks of this server, round-robin across owners; PyAV in a child process."""

    def __init__(
        self,
        *,
        db: Database,
        storage: Storage,
        concurrency: int,
        timeout_s: float | None = None,
        pixel_budget: int | None = None,
        publisher: Publisher | None = None,
    ) -> None:
        self._ctx: dict[str, Any] = {
            "db": db,
            "storage": storage,
            "timeout_s": timeout_s,
            "pixel_budget": pixel_budget,
            "publisher": publisher,  # the server's bus: progress reaches its subscribers
        }
        self._concurrency = concurrency
        #: owner -> their waiting videos in arrival order; the dict's order is the turn order
        self._waiting: dict[str, deque[str]] = {}
        self._known: set[str] = set()  # waiting or running
        self._changed = asyncio.Condition()
        self._running = 0
        self._runners: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the runners; pick up videos a previous run of the server left half-done."""
        self._runners = [
            asyncio.create_task(self._runner(), name=f"transcode runner {number}")
            for number in range(self._concurrency)
        ]
        for video_id, owner_id in await unfinished(self._ctx["db"]):
            await self.enqueue_transcode(video_id, owner_id=owner_id)

    async def enqueue_transcode(self, video_id: str, *, owner_id: str) -> None:
        async with self._changed:
            if video_id in self._known:
                return
            self._known.add(video_id)
            self._waiting.setdefault(owner_id, deque()).append(video_id)
            self._changed.notify_all()

    def _next(self) -> str:
        """The first owner in turn gives one video, then goes to the back if it has more."""
        owner_id = next(iter(self._waiting))
        videos = self._waiting.pop(owner_id)
        video_id = videos.popleft()
        if videos:
            self._waiting[owner_id] = videos
        return video_id

    async def _runner(self) -> None:
        while True:
            async with self._changed:
                await self._changed.wait_for(lambda: bool(self._waiting))
                video_id = self._next()
                self._running += 1
            try:
                await transcode_video(self._ctx, video_id)
            except Exception:
                log.exception("transcode of %s failed", video_id)
            finally:
                async with self._changed:
                    self._running -= 1
                    self._known.discard(video_id)
                    self._changed.notify_all()

    async def join(self) -> None:
        """Wait until every queued job is done (tests and graceful shutdowns)."""
        async with self._changed:
            await self._changed.wait_for(lambda: not self._waiting and not self._running)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        for task in self._runners:
            task.cancel()
        await asyncio.gather(*self._runners, return_exceptions=True)


class ArqQueue:
    """Jobs go to Redis; `cowatch worker` processes run them. The job id is the video id;
    the score is the owner's round (workers/fairness.py)."""

    def __init__(self, redis: ArqRedis, *, queue_name: str) -> None:
        self._redis = redis
        self.queue_name = queue_name

    @classmethod
    async def connect(cls, settings: Settings) -> ArqQueue:
        from arq import create_pool

        from workers.worker import redis_settings

        redis = await create_pool(
            redis_settings(settings), default_queue_name=settings.transcode_queue
        )
        return cls(redis, queue_name=settings.transcode_queue)

    async def enqueue_transcode(self, video_id: str, *, owner_id: str) -> None:
        # Enqueueing a video whose job is queued or running is a no-op (arq dedups by job id).
        due = await fairness.assign(self._redis, queue_name=self.queue_name, owner_id=owner_id)
        await self._redis.enqueue_job(
            TRANSCODE,
            video_id,
            _job_id=f"transcode:{video_id}",
            _queue_name=self.queue_name,
            _defer_until=due,
            # arq would count the expiry from the (virtual, long past) due time
            _expires=JOB_EXPIRES,
        )

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


async def open_queue(
    settings: Settings, *, db: Database, storage: Storage, publisher: Publisher | None = None
) -> JobQueue:
    """arq when COWATCH_REDIS_URL is set, otherwise the in-process queue."""
    if settings.redis_url:
        return await ArqQueue.connect(settings)
    queue = InProcessQueue(
        db=db,
        storage=storage,
        concurrency=settings.transcode_workers,
        timeout_s=settings.transcode_timeout_s,
        pixel_budget=settings.transcode_max_pixels,
        publisher=publisher,
    )
    await queue.start()
    return queue
