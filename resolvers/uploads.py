"""Uploads: stage the file with the size cap, probe it, store it, queue the transcode."""

from __future__ import annotations

import contextlib
import fcntl
import os
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
from resolvers.errors import (
    BadInput,
    PayloadTooLarge,
    QuotaExceeded,
    RateLimited,
    Unavailable,
)
from storage.base import Storage
from storage.keys import source_key, video_prefix
from workers import budget, media
from workers.processes import run_in_process

if TYPE_CHECKING:
    from config import Settings
    from workers.queue import JobQueue

MAX_TITLE = 200
MAX_DESCRIPTION = 5000
MAX_CATEGORY = 50
NEW_FILE_GRACE_S = 3600


class StagedUpload:
    """An upload arriving into a temporary file; the size cap is applied as the bytes come in.

    The file stays flock-ed by this process until the upload is done with (`release`), so a
    starting server sharing the data dir can tell it from what a killed server left behind.
    """

    def __init__(self, path: Path, *, limit: int, lock_fd: int = -1) -> None:
        self.path = path
        self.limit = limit
        self.size = 0
        self._file: Any = None
        self._lock_fd = lock_fd

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
        """Close the writer; the file stays locked (it is probed and stored after this)."""
        if self._file is not None:
            await self._file.aclose()
            self._file = None

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


def _create_locked(directory: Path) -> tuple[Path, int]:
    """A new staging file, locked before it takes the name a sweeper looks at."""
    name = uuid.uuid4().hex
    building = directory / f".{name}.new"
    fd = os.open(building, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        path = directory / f"{name}.part"
        os.rename(building, path)
    except BaseException:
        os.close(fd)
        building.unlink(missing_ok=True)
        raise
    return path, fd


def _orphaned(path: Path) -> bool:
    """Remove `path` if no live process holds its lock; whether it was removed."""
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False  # gone already, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live upload of some process
    else:
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def sweep_staging(directory: Path) -> int:
    """Remove the staging files no live process holds (run at start-up); how many went.

    Blocking: call it in a thread. A file is held by its upload's process through a flock
    that dies with the process, so the files of other servers sharing the data dir stay.
    """
    if not directory.is_dir():
        return 0
    removed = sum(_orphaned(path) for path in directory.glob("*.part"))
    # A file dies between its creation and its rename only with its process, within
    # microseconds of being made: an hour-old one is certainly abandoned.
    stale = time.time() - NEW_FILE_GRACE_S
    for path in directory.glob(".*.new"):
        with contextlib.suppress(FileNotFoundError):
            if path.stat().st_mtime < stale:
                path.unlink()
                removed += 1
    return removed


@asynccontextmanager
async def staging(*, settings: Settings) -> AsyncIterator[StagedUpload]:
    """A staging file under the data dir (not /tmp, often RAM); removed on every path out."""
    directory = settings.data_dir / "uploads"
    directory.mkdir(parents=True, exist_ok=True)
    path, lock_fd = _create_locked(directory)
    staged = StagedUpload(path, limit=settings.max_upload_bytes, lock_fd=lock_fd)
    try:
        yield staged
    finally:
        await staged.finish()
        staged.path.unlink(missing_ok=True)
        staged.release()


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


async def _check_transcode_budget(*, db: Database, owner_id: str, settings: Settings) -> None:
    """Refuse an upload while the owner's transcodes of the last 24 h used the day's budget."""
    allowed = settings.transcode_seconds_per_day
    used, retry_after = await budget.spent(db=db, owner_id=owner_id, budget_s=allowed)
    if retry_after:
        raise RateLimited(
            f"daily transcoding budget used: {used:.0f} of {allowed} s in the last 24 h",
            retry_after=retry_after,
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
    await _check_transcode_budget(db=db, owner_id=owner.id, settings=settings)
    try:
        probe = await run_in_process(
            media.probe, str(staged.path), settings.max_duration_s, settings.transcode_max_pixels
        )
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
        await queue.enqueue_transcode(video.id, owner_id=owner.id)
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
    await storage.delete_prefix(video_prefix(video.id))
