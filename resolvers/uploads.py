"""Uploads: stage the file with the size cap, probe it, store it, queue the transcode."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from sqlmodel import col, func, select

from models import User, Video, VideoStatus
from models.db import Database
from resolvers.errors import BadInput, NotFound, PayloadTooLarge, QuotaExceeded, Unavailable
from resolvers.videos import find_video
from storage.base import Storage
from workers import media
from workers.jobs import source_key
from workers.processes import run_in_process

if TYPE_CHECKING:
    from config import Settings
    from workers.queue import JobQueue

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_CATEGORY = 50
#: how often a progress subscription re-reads the row (the transcoder may be another machine)
PROGRESS_POLL_S = 0.5
STALE_STAGING_S = 24 * 3600


class StagedUpload:
    """An upload arriving into a temporary file; the size cap is applied as the bytes come in."""

    def __init__(self, path: Path, *, limit: int) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self._file: Any = None

    async def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.limit:
            raise PayloadTooLarge(
                f"file: larger than the {self.limit} byte limit", field="file", limit=self.limit
            )
        if self._file is None:
            self._file = await anyio.open_file(self.path, "wb")
        await self._file.write(chunk)

    async def finish(self) -> None:
        if self._file is not None:
            await self._file.aclose()
            self._file = None


def _sweep(directory: Path) -> None:
    """Drop staging files a killed server left; a day old, so no live upload is touched."""
    stale = time.time() - STALE_STAGING_S
    for path in directory.glob("*.part"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < stale:
                path.unlink()


@asynccontextmanager
async def staging(*, settings: Settings) -> AsyncIterator[StagedUpload]:
    """A staging file under the data dir (not /tmp, often RAM); removed on every path out."""
    directory = settings.data_dir / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    _sweep(directory)
    staged = StagedUpload(directory / f"{uuid.uuid4().hex}.part", limit=settings.max_upload_bytes)
    try:
        yield staged
    finally:
        await staged.finish()
        staged.path.unlink(missing_ok=True)


def validate_fields(title: str | None, description: str | None, category: str | None) -> str:
    """Check the text fields (before the file is probed); the cleaned title."""
    title = (title or "").strip()
    if not title:
        raise BadInput("title: required", field="title")
    if len(title) > MAX_TITLE:
        raise BadInput(f"title: at most {MAX_TITLE} characters", field="title")
    if description is not None and len(description) > MAX_DESCRIPTION:
        raise BadInput(f"description: at most {MAX_DESCRIPTION} characters", field="description")
    if category is not None and len(category.strip()) > MAX_CATEGORY:
        raise BadInput(f"category: at most {MAX_CATEGORY} characters", field="category")
    return title


@dataclass(frozen=True)
class Uploaded:
    video: Video
    qualities: list[str]


def _bytes_used(owner_id: str) -> Any:
    total = func.coalesce(func.sum(Video.source_bytes), 0)
    return select(total).where(col(Video.owner_id) == owner_id)


async def quota_used(*, db: Database, owner_id: str) -> int:
    async with db.session() as session:
        return int((await session.exec(_bytes_used(owner_id))).one())


def _check_quota(used: int, size: int, settings: Settings) -> None:
    if used + size > settings.user_quota_bytes:
        raise QuotaExceeded(
            f"upload quota exceeded: {used} of {settings.user_quota_bytes} bytes used",
            used=used,
            quota=settings.user_quota_bytes,
        )


async def upload_video(
    *,
    db: Database,
    storage: Storage,
    queue: JobQueue,
    settings: Settings,
    owner: User,
    staged: StagedUpload,
    title: str | None,
    description: str | None,
    category: str | None,
) -> Uploaded:
    """Accept a fully received upload: nothing is kept (row or object) unless all of it works."""
    title = validate_fields(title, description, category)
    await staged.finish()
    if staged.size == 0:
        raise BadInput("file: required (an empty file was sent)", field="file")
    _check_quota(await quota_used(db=db, owner_id=owner.id), staged.size, settings)
    try:
        probe = await run_in_process(media.probe, str(staged.path), settings.max_duration_s)
    except media.MediaError as exc:
        raise BadInput(f"file: {exc}", field="file") from exc
    video = Video(
        owner_id=owner.id,
        title=title,
        description=description or "",
        category=(category or "").strip() or None,
        status=VideoStatus.PROCESSING,
        source_bytes=staged.size,
        width=probe.width,
        height=probe.height,
        duration=probe.duration,
    )
    video.source_key = source_key(video.id)
    await storage.put_file(video.source_key, staged.path)
    try:
        async with db.session() as session:
            # Checked again under a lock on the owner's row: two uploads at once cannot both fit
            # in the last of the quota (PostgreSQL; SQLite runs one writer at a time anyway).
            await session.exec(select(User.id).where(col(User.id) == owner.id).with_for_update())
            used = (await session.exec(_bytes_used(owner.id))).one()
            _check_quota(int(used), staged.size, settings)
            session.add(video)
            await session.commit()
    except BaseException:
        await storage.delete(video.source_key)
        raise
    try:
        await queue.enqueue_transcode(video.id)
    except Exception as exc:
        await _forget(db=db, storage=storage, video=video)
        raise Unavailable("the transcoding queue is unavailable; try again later") from exc
    return Uploaded(video=video, qualities=probe.qualities)


async def _forget(*, db: Database, storage: Storage, video: Video) -> None:
    async with db.session() as session:
        row = await session.get(Video, video.id)
        if row is not None:
            await session.delete(row)
            await session.commit()
    await storage.delete_prefix(f"videos/{video.id}/")


async def processing_updates(
    *, db: Database, video_id: str, poll_s: float = PROGRESS_POLL_S
) -> AsyncIterator[Video]:
    """The video now, then whenever its status or progress changes, until it leaves PROCESSING."""
    last: tuple[VideoStatus, int] | None = None
    while True:
        video = await find_video(db=db, video_id=video_id)
        if video is None:
            raise NotFound("video not found")
        if (video.status, video.progress) != last:
            last = (video.status, video.progress)
            yield video
        if video.status != VideoStatus.PROCESSING:
            return
        await asyncio.sleep(poll_s)
