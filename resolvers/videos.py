"""Videos: the feed, details and batch loads shared by both faces."""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, func, select, update

from models import Channel, Rendition, User, Video, VideoStatus
from models.db import Database
from resolvers.errors import BadInput, NotFound

MAX_LIMIT = 100
#: keeps OFFSET inside a 64-bit integer on every backend (a fuzzer found the overflow)
MAX_PAGE = 1_000_000
MAX_CATEGORY = 50
CHANNEL_VIDEO_LIMIT = 100


@dataclass(frozen=True)
class FeedPage:
    videos: list[Video]
    creators: dict[str, User]
    total: int
    total_pages: int
    current_page: int


def validate_page(page: int, limit: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise BadInput(f"page must be between 1 and {MAX_PAGE}", field="page")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")


async def feed(*, db: Database, page: int, limit: int, category: str | None) -> FeedPage:
    """Newest transcoded videos first; two statements whatever the page size."""
    validate_page(page, limit)
    category = (category or "").strip() or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise BadInput(f"category: at most {MAX_CATEGORY} characters", field="category")
    where = [Video.status == VideoStatus.TRANSCODED]
    if category is not None:
        where.append(Video.category == category)
    async with db.session() as session:
        total = (await session.exec(select(func.count()).select_from(Video).where(*where))).one()
        rows = (
            await session.exec(
                select(Video, User)
                .join(User, col(User.id) == col(Video.owner_id))
                .where(*where)
                .order_by(col(Video.created_at).desc(), col(Video.id).desc())
                .offset((page - 1) * limit)
                .limit(limit)
            )
        ).all()
    return FeedPage(
        videos=[video for video, _ in rows],
        creators={user.id: user for _, user in rows},
        total=total,
        total_pages=math.ceil(total / limit),
        current_page=page,
    )


async def categories(*, db: Database, limit: int = 20) -> list[str]:
    """The categories of transcoded videos, most used first."""
    count = func.count().label("uses")
    async with db.session() as session:
        rows = (
            await session.exec(
                select(Video.category, count)
                .where(Video.status == VideoStatus.TRANSCODED, col(Video.category).is_not(None))
                .group_by(Video.category)
                .order_by(count.desc(), col(Video.category))
                .limit(limit)
            )
        ).all()
    return [category for category, _ in rows if category]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


async def find_video(*, db: Database, video_id: str) -> Video | None:
    if not _is_uuid(video_id):
        return None
    async with db.session() as session:
        return await session.get(Video, video_id)


async def get_video(*, db: Database, video_id: str) -> Video:
    video = await find_video(db=db, video_id=video_id)
    if video is None:
        raise NotFound("video not found")
    return video


async def record_view(*, db: Database, video_id: str) -> None:
    """Count one view; a single atomic UPDATE, so concurrent viewers never lose a count."""
    async with db.session() as session:
        await session.exec(
            update(Video).where(col(Video.id) == video_id).values(view_count=Video.view_count + 1)
        )
        await session.commit()


async def users_by_ids(*, db: Database, ids: Sequence[str]) -> list[User | None]:
    async with db.session() as session:
        rows = (await session.exec(select(User).where(col(User.id).in_(set(ids))))).all()
    found = {user.id: user for user in rows}
    return [found.get(key) for key in ids]


async def channels_by_owner_ids(*, db: Database, ids: Sequence[str]) -> list[Channel | None]:
    async with db.session() as session:
        rows = (
            await session.exec(select(Channel).where(col(Channel.owner_id).in_(set(ids))))
        ).all()
    found = {channel.owner_id: channel for channel in rows}
    return [found.get(key) for key in ids]


async def videos_by_owner_ids(*, db: Database, ids: Sequence[str]) -> list[list[Video]]:
    """Each owner's newest transcoded videos (at most CHANNEL_VIDEO_LIMIT each)."""
    ranked = (
        select(
            Video,
            func.row_number()
            .over(partition_by=Video.owner_id, order_by=col(Video.created_at).desc())
            .label("rank"),
        )
        .where(col(Video.owner_id).in_(set(ids)), Video.status == VideoStatus.TRANSCODED)
        .subquery()
    )
    query = (
        select(Video)
        .join(ranked, col(Video.id) == ranked.c.id)
        .where(ranked.c.rank <= CHANNEL_VIDEO_LIMIT)
        .order_by(col(Video.created_at).desc())
    )
    async with db.session() as session:
        rows = (await session.exec(query)).all()
    grouped: dict[str, list[Video]] = defaultdict(list)
    for video in rows:
        grouped[video.owner_id].append(video)
    return [grouped.get(key, []) for key in ids]


async def renditions_by_video_ids(*, db: Database, ids: Sequence[str]) -> list[list[Rendition]]:
    async with db.session() as session:
        rows = (
            await session.exec(
                select(Rendition)
                .where(col(Rendition.video_id).in_(set(ids)))
                .order_by(col(Rendition.height))
            )
        ).all()
    grouped: dict[str, list[Rendition]] = defaultdict(list)
    for rendition in rows:
        grouped[rendition.video_id].append(rendition)
    return [grouped.get(key, []) for key in ids]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def live_position(video: Video, at_ms: int | None = None) -> float:
    """Where the shared playhead is now: stored position plus elapsed time while playing."""
    position = video.playback_timestamp
    if video.playback_playing and video.playback_server_time:
        elapsed = max(0, (at_ms if at_ms is not None else now_ms()) - video.playback_server_time)
        position += elapsed / 1000 * video.playback_rate
    if video.duration is not None:
        position = min(position, video.duration)
    return round(max(position, 0.0), 3)
