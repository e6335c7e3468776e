"""The transcode queue behind one small interface: in-process (embedded) or arq (with Redis)."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Protocol

from workers.jobs import transcode_video, unfinished

if TYPE_CHECKING:
    from arq.connections import ArqRedis

    from config import Settings
    from models.db import Database
    from storage.base import Storage

log = logging.getLogger("cowatch.queue")
TRANSCODE = "transcode_video"


class JobQueue(Protocol):
    async def enqueue_transcode(self, video_id: str) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class InProcessQueue:
    """Runs the job as a task of this server; the PyAV work goes to a child process."""

    def __init__(
        self, *, db: Database, storage: Storage, concurrency: int, timeout_s: float | None = None
    ) -> None:
        self._ctx: dict[str, Any] = {"db": db, "storage": storage, "timeout_s": timeout_s}
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Pick up videos a previous run of the server left half-done."""
        for video_id in await unfinished(self._ctx["db"]):
            await self.enqueue_transcode(video_id)

    async def enqueue_transcode(self, video_id: str) -> None:
        if video_id in self._tasks:
            return
        task = asyncio.create_task(self._run(video_id), name=f"transcode {video_id}")
        self._tasks[video_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(video_id, None))

    async def _run(self, video_id: str) -> None:
        async with self._slots:
            try:
                await transcode_video(self._ctx, video_id)
            except Exception:
                log.exception("transcode of %s failed", video_id)

    async def join(self) -> None:
        """Wait until every queued job is done (tests and graceful shutdowns)."""
        while self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ArqQueue:
    """Jobs go to Redis; `cowatch worker` processes run them. The job id is the video id."""

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

    async def enqueue_transcode(self, video_id: str) -> None:
        # Enqueueing a video whose job is queued or running is a no-op (arq dedups by job id).
        await self._redis.enqueue_job(
            TRANSCODE, video_id, _job_id=f"transcode:{video_id}", _queue_name=self.queue_name
        )

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


async def open_queue(settings: Settings, *, db: Database, storage: Storage) -> JobQueue:
    """arq when COWATCH_REDIS_URL is set, otherwise the in-process queue."""
    if settings.redis_url:
        return await ArqQueue.connect(settings)
    queue = InProcessQueue(
        db=db,
        storage=storage,
        concurrency=settings.transcode_workers,
        timeout_s=settings.transcode_timeout_s,
    )
    await queue.start()
    return queue
