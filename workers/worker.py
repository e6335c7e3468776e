"""The arq worker behind `cowatch worker`: resources in on_startup, the job in ctx."""

from __future__ import annotations

from typing import Any

from arq import Worker, func
from arq.connections import RedisSettings

from config import Settings
from models.db import Database
from storage import open_storage
from workers import fairness
from workers.jobs import MAX_ATTEMPTS, transcode_video
from workers.lease import job_lease
from workers.progress import BackendPublisher
from workers.queue import TRANSCODE
from workers.scratch import Scratch

TIMEOUT_MARGIN_S = 60


def redis_settings(settings: Settings) -> RedisSettings:
    assert settings.redis_url, "COWATCH_REDIS_URL is not set"
    return RedisSettings.from_dsn(settings.redis_url)


async def leased_transcode(ctx: dict[str, Any], video_id: str) -> str:
    """The transcode job, holding its lease (workers/lease.py) while it runs."""
    await fairness.advance(ctx["redis"], queue_name=ctx["queue_name"], score=ctx["score"])
    async with job_lease(ctx["redis"], ctx["job_id"], ctx["lease_s"]):
        return await transcode_video(ctx, video_id)


def build_worker(settings: Settings, **overrides: Any) -> Worker:
    """A Worker for the transcode queue; tests pass burst=True, handle_signals=False."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["db"] = Database(settings.effective_database_url)
        ctx["storage"] = open_storage(settings)
        ctx["timeout_s"] = settings.transcode_timeout_s
        ctx["lease_s"] = settings.transcode_lease_s
        ctx["pixel_budget"] = settings.transcode_max_pixels
        ctx["queue_name"] = settings.transcode_queue
        # Progress goes to the servers' buses through Redis; a worker listens to nothing.
        ctx["publisher"] = BackendPublisher(str(settings.redis_url))
        await ctx["publisher"].start()
        ctx["scratch"] = Scratch()
        ctx["scratch_dir"] = ctx["scratch"].path

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "publisher" in ctx:
            await ctx["publisher"].close()
        if "scratch" in ctx:
            ctx["scratch"].close()
        if "storage" in ctx:
            await ctx["storage"].close()
        if "db" in ctx:
            await ctx["db"].dispose()

    # arq gives up after max_tries without calling the job; one extra try lets the job itself
    # mark the video FAILED, so a video whose worker keeps dying never stays PROCESSING. The job
    # keeps its own deadline (ctx["timeout_s"]); arq's, a minute later, is only a backstop.
    job = func(
        leased_transcode,
        name=TRANSCODE,
        timeout=settings.transcode_timeout_s + TIMEOUT_MARGIN_S,
        keep_result=0,
        max_tries=MAX_ATTEMPTS + 1,
    )
    options: dict[str, Any] = {
        "functions": [job],
        "queue_name": settings.transcode_queue,
        "redis_settings": redis_settings(settings),
        "on_startup": startup,
        "on_shutdown": shutdown,
        "max_jobs": settings.transcode_workers,
        "job_timeout": settings.transcode_timeout_s + TIMEOUT_MARGIN_S,
        **overrides,
    }
    worker = Worker(**options)
    # arq would mark a taken job in progress for the job timeout + 10 s (over an hour), so a
    # killed worker's job would wait that long; the job's lease renews the mark while it runs.
    # Every function here must hold the lease, or it could be run twice.
    if not hasattr(worker, "in_progress_timeout_s"):
        raise RuntimeError("arq no longer has Worker.in_progress_timeout_s: see workers/lease.py")
    worker.in_progress_timeout_s = settings.transcode_lease_s
    return worker


def run_worker(settings: Settings) -> None:
    """Run until SIGINT/SIGTERM; a job cut short is picked up again by arq."""
    build_worker(settings).run()
