"""The transcode job: same function under arq and in-process; everything arrives through ctx."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from arq import Retry
from sqlmodel import col, delete, select, update

from models import Rendition, Video, VideoStatus
from models.db import Database
from storage.base import Storage
from storage.keys import rendition_key, source_key, thumbnail_key, video_prefix
from workers import budget, media, progress
from workers.processes import ProcessCrashed, run_in_process

__all__ = ["rendition_key", "source_key", "thumbnail_key", "transcode_video", "unfinished"]
log = logging.getLogger("cowatch.transcode")

#: runs of one video's job (first try included) before it is marked FAILED for good
MAX_ATTEMPTS = 3
PROGRESS_POLL_S = 0.5
MAX_REASON = 500


@asynccontextmanager
async def _job_dir(parent: Path | None) -> AsyncIterator[str]:
    """A directory for one job's files, removed in a thread (never a walk on the event loop)."""
    path = await anyio.to_thread.run_sync(
        partial(tempfile.mkdtemp, prefix="cowatch-transcode-", dir=parent)
    )
    try:
        yield path
    finally:
        await anyio.to_thread.run_sync(partial(shutil.rmtree, path, ignore_errors=True))


async def _update(ctx: dict[str, Any], video_id: str, **values: Any) -> None:
    """Change the row and raise its processing version in one statement, then announce it."""
    async with ctx["db"].session() as session:
        row = (
            await session.exec(
                update(Video)
                .where(col(Video.id) == video_id)
                .values(**values, processing_version=col(Video.processing_version) + 1)
                .returning(*_progress_columns())
            )
        ).one()
        await session.commit()
    await progress.announce(ctx.get("publisher"), _progress_event(video_id, row))


def _progress_columns() -> tuple[Any, ...]:
    """What a progress event carries, read back by the statement that changes it."""
    return (
        col(Video.processing_version),
        col(Video.status),
        col(Video.progress),
        col(Video.failure_reason),
    )


def _progress_event(video_id: str, row: Any) -> Any:
    version, status, percent, reason = row
    return progress.progress_event(
        video_id=video_id, version=version, status=status, progress=percent, failure_reason=reason
    )


async def _fail(ctx: dict[str, Any], video_id: str, reason: str) -> None:
    storage: Storage = ctx["storage"]
    log.warning("video %s failed: %s", video_id, reason)
    # Lists this video's prefix only (item 9 of issue 10: never the whole store).
    for key in await storage.keys(video_prefix(video_id)):
        if key != source_key(video_id):
            await storage.delete(key)
    await _update(
        ctx,
        video_id,
        status=VideoStatus.FAILED,
        failure_reason=reason[:MAX_REASON],
        thumbnail_key=None,
    )


async def _follow(
    work: asyncio.Task[media.TranscodeResult],
    progress_file: Path,
    ctx: dict[str, Any],
    video_id: str,
) -> media.TranscodeResult:
    """Await the transcode, copying the child's progress file into the row as it moves."""
    shown = 0
    while True:
        done, _ = await asyncio.wait({work}, timeout=PROGRESS_POLL_S)
        if done:
            return work.result()
        try:
            percent = int(await anyio.Path(progress_file).read_text() or 0)
        except (OSError, ValueError):
            continue
        if percent > shown:
            shown = min(percent, 99)
            await _update(ctx, video_id, progress=shown)


async def _store(ctx: dict[str, Any], video_id: str, result: media.TranscodeResult) -> None:
    """Upload the outputs, then swap in the renditions and the metadata in one transaction."""
    db: Database = ctx["db"]
    storage: Storage = ctx["storage"]
    renditions = []
    for output in result.outputs:
        key = rendition_key(video_id, output.quality)
        size = await storage.put_file(key, Path(output.path), content_type="video/mp4")
        renditions.append(
            Rendition(
                video_id=video_id,
                quality=output.quality,
                width=output.width,
                height=output.height,
                storage_key=key,
                size_bytes=size,
            )
        )
    thumb = None
    if result.thumbnail:
        thumb = thumbnail_key(video_id)
        await storage.put_file(thumb, Path(result.thumbnail), content_type="image/jpeg")
    async with db.session() as session:
        # A retried job replaces what an earlier, interrupted run may have written.
        await session.exec(delete(Rendition).where(col(Rendition.video_id) == video_id))
        session.add_all(renditions)
        row = (
            await session.exec(
                update(Video)
                .where(col(Video.id) == video_id)
                .values(
                    status=VideoStatus.TRANSCODED,
                    progress=100,
                    failure_reason=None,
                    thumbnail_key=thumb,
                    duration=result.duration,
                    width=result.width,
                    height=result.height,
                    processing_version=col(Video.processing_version) + 1,
                )
                .returning(*_progress_columns())
            )
        ).one()
        await session.commit()
    await progress.announce(ctx.get("publisher"), _progress_event(video_id, row))


async def transcode_video(ctx: dict[str, Any], video_id: str) -> str:
    """PROCESSING -> TRANSCODED with renditions, or FAILED with a reason. Safe to run twice.

    Each run is recorded with its wall-clock seconds against the owner's daily budget.
    """
    db: Database = ctx["db"]
    async with db.session() as session:
        video = (await session.exec(select(Video).where(col(Video.id) == video_id))).first()
    if video is None or video.status != VideoStatus.PROCESSING or video.source_key is None:
        return "skipped"
    attempt = int(ctx.get("job_try", 1))
    if attempt > MAX_ATTEMPTS:
        await _fail(ctx, video_id, f"transcoding was interrupted {attempt - 1} times")
        return VideoStatus.FAILED
    log.info("video %s: transcoding, try %d", video_id, attempt)
    run_id = await budget.start_run(db=db, owner_id=video.owner_id, video_id=video_id)
    started = time.monotonic()
    try:
        return await _attempt(ctx, video, attempt)
    finally:
        seconds = time.monotonic() - started
        await asyncio.shield(budget.end_run(db=db, run_id=run_id, seconds=seconds))


async def _attempt(ctx: dict[str, Any], video: Video, attempt: int) -> str:
    storage: Storage = ctx["storage"]
    video_id, source_key = video.id, video.source_key
    assert source_key is not None
    await _update(ctx, video_id, progress=0)
    timeout_s: float | None = ctx.get("timeout_s")
    try:
        # Our own deadline, under arq's: a job arq times out is failed for good without the
        # video hearing of it, so we stop first and say why.
        async with asyncio.timeout(timeout_s):
            # Under the worker's scratch directory (workers/scratch.py) when there is one, so
            # what a killed worker leaves is removed when the next one starts.
            scratch: Path | None = ctx.get("scratch_dir")
            async with _job_dir(scratch) as out_dir:
                progress_file = Path(out_dir) / "progress"
                async with storage.local_copy(source_key, directory=Path(out_dir)) as source:
                    work = asyncio.ensure_future(
                        run_in_process(
                            media.transcode,
                            str(source),
                            out_dir,
                            str(progress_file),
                            ctx.get("pixel_budget"),
                        )
                    )
                    try:
                        result = await _follow(work, progress_file, ctx, video_id)
                    finally:
                        work.cancel()
                await _store(ctx, video_id, result)
    except media.MediaError as exc:
        await _fail(ctx, video_id, str(exc))
        return VideoStatus.FAILED
    except TimeoutError:
        await _fail(ctx, video_id, f"transcoding took longer than {timeout_s:.0f} s")
        return VideoStatus.FAILED
    except ProcessCrashed as exc:
        await _fail(ctx, video_id, f"the transcoder crashed on this video ({exc})")
        return VideoStatus.FAILED
    except Exception as exc:
        if "job_try" in ctx and attempt < MAX_ATTEMPTS:
            log.warning("video %s: try %d failed, retrying", video_id, attempt, exc_info=True)
            raise Retry(defer=10 * attempt) from exc
        log.exception("video %s: transcoding failed", video_id)
        reason = f"internal error while transcoding: {type(exc).__name__}"
        await _fail(ctx, video_id, reason)
        return VideoStatus.FAILED
    log.info("video %s transcoded", video_id)
    return VideoStatus.TRANSCODED


async def unfinished(db: Database) -> list[tuple[str, str]]:
    """(video id, owner id) of videos left PROCESSING, e.g. by a server stopped mid-transcode."""
    async with db.session() as session:
        rows = await session.exec(
            select(Video.id, Video.owner_id)
            .where(Video.status == VideoStatus.PROCESSING, col(Video.source_key).is_not(None))
            .order_by(col(Video.created_at))
        )
        return [(video_id, owner_id) for video_id, owner_id in rows.all()]
