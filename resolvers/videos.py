"""Videos: the feed, details and batch loads shared by both faces."""

from __future__ import annotations

import math
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, func, select, update

from models import Channel, Rendition, User, Video, VideoStatus
from models.db import Database
from models.values import (
    ChannelValue,
    FeedItemValue,
    RenditionValue,
    UserValue,
    VideoValue,
    select_of,
    split,
)
from resolvers.counts import CountCache
from resolvers.errors import BadInput, NotFound

VIDEOS = sa.inspect(Video).local_table
USERS = sa.inspect(User).local_table
CHANNELS = sa.inspect(Channel).local_table
RENDITIONS = sa.inspect(Rendition).local_table

MAX_LIMIT = 100
#: keeps OFFSET inside a 64-bit integer on every backend (a fuzzer found the overflow)
MAX_PAGE = 1_000_000
MAX_CATEGORY = 50
CHANNEL_VIDEO_LIMIT = 100


@dataclass(frozen=True)
class FeedPage:
    videos: list[FeedItemValue]
    creators: dict[str, UserValue]
    total: int
    total_pages: int
    current_page: int


@dataclass(frozen=True)
class FeedSlice:
    """One page of videos and their creators, without the count (see `feed_total`)."""

    videos: list[VideoValue]
    creators: dict[str, UserValue]
    current_page: int
    #: by owner id, when asked for (None: the owner has no channel)
    channels: dict[str, ChannelValue | None] = field(default_factory=dict)


def validate_page(page: int, limit: int) -> None:
    if not 1 <= page <= MAX_PAGE:
        raise BadInput(f"page must be between 1 and {MAX_PAGE}", field="page")
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}", field="limit")


def _category(category: str | None) -> str | None:
    category = (category or "").strip() or None
    if category is not None and len(category) > MAX_CATEGORY:
        raise BadInput(f"category: at most {MAX_CATEGORY} characters", field="category")
    return category


# Reads are built once with bound parameters: a call only binds values (no statement to build).
_TRANSCODED = VIDEOS.c.status == VideoStatus.TRANSCODED
_IN_CATEGORY = VIDEOS.c.category == sa.bindparam("category")
_WITH_OWNER = VIDEOS.join(USERS, USERS.c.id == VIDEOS.c.owner_id)
_WITH_CHANNEL = _WITH_OWNER.outerjoin(CHANNELS, CHANNELS.c.owner_id == VIDEOS.c.owner_id)


def _feed_statement(*, channels: bool, category: bool) -> sa.Select[Any]:
    values = (VideoValue, UserValue, ChannelValue) if channels else (VideoValue, UserValue)
    statement = (
        select_of(*values)
        .select_from(_WITH_CHANNEL if channels else _WITH_OWNER)
        .where(_TRANSCODED, *([_IN_CATEGORY] if category else []))
        .order_by(VIDEOS.c.created_at.desc(), VIDEOS.c.id.desc())
        .offset(sa.bindparam("offset"))
        .limit(sa.bindparam("limit"))
    )
    return statement


_FEEDS = {
    (channels, category): _feed_statement(channels=channels, category=category)
    for channels in (False, True)
    for category in (False, True)
}
#: the feed's entries (REST, web): only the columns an entry shows, by category filter or not
_FEED_ITEMS = {
    category: select_of(FeedItemValue, UserValue)
    .select_from(_WITH_OWNER)
    .where(_TRANSCODED, *([_IN_CATEGORY] if category else []))
    .order_by(VIDEOS.c.created_at.desc(), VIDEOS.c.id.desc())
    .offset(sa.bindparam("offset"))
    .limit(sa.bindparam("limit"))
    for category in (False, True)
}
_COUNT = sa.select(sa.func.count()).select_from(VIDEOS).where(_TRANSCODED)
_COUNT_IN_CATEGORY = _COUNT.where(_IN_CATEGORY)


async def feed_slice(
    *, db: Database, page: int, limit: int, category: str | None, channels: bool = False
) -> FeedSlice:
    """Newest transcoded videos first, with their creators (and, if asked, the creators'
    channels): one statement, no ORM."""
    validate_page(page, limit)
    category = _category(category)
    statement = _FEEDS[(channels, category is not None)]
    params = {"offset": (page - 1) * limit, "limit": limit, "category": category}
    rows = await db.fetch(statement, params)
    if not channels:
        pairs = [split(row, VideoValue, UserValue) for row in rows]
        return FeedSlice(
            videos=[video for video, _ in pairs],
            creators={user.id: user for _, user in pairs},
            current_page=page,
        )
    triples = [split(row, VideoValue, UserValue, ChannelValue) for row in rows]
    return FeedSlice(
        videos=[video for video, _, _ in triples],
        creators={user.id: user for _, user, _ in triples},
        current_page=page,
        channels={user.id: channel if channel.id else None for _, user, channel in triples},
    )


async def feed_total(*, db: Database, counts: CountCache, category: str | None) -> int:
    """Transcoded videos in the feed (per category), counted at most every few seconds."""
    category = _category(category)

    async def count() -> int:
        statement = _COUNT if category is None else _COUNT_IN_CATEGORY
        ((counted,),) = await db.fetch(statement, {"category": category})
        return int(counted)

    return await counts.get(("feed", category), count)


def pages(total: int, limit: int) -> int:
    return math.ceil(total / limit)


async def feed(
    *, db: Database, counts: CountCache, page: int, limit: int, category: str | None
) -> FeedPage:
    """A page of the feed's entries and how many pages there are (the count from the count
    cache); one statement selecting only what an entry shows."""
    validate_page(page, limit)
    category = _category(category)
    params = {"offset": (page - 1) * limit, "limit": limit, "category": category}
    rows = await db.fetch(_FEED_ITEMS[category is not None], params)
    pairs = [split(row, FeedItemValue, UserValue) for row in rows]
    total = await feed_total(db=db, counts=counts, category=category)
    return FeedPage(
        videos=[video for video, _ in pairs],
        creators={user.id: user for _, user in pairs},
        total=total,
        total_pages=pages(total, limit),
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


async def get_video(*, db: Database, video_id: str) -> VideoValue:
    video = await read_video(db=db, video_id=video_id)
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


_VIDEO = select_of(VideoValue).where(VIDEOS.c.id == sa.bindparam("id"))
_USERS = select_of(UserValue).where(USERS.c.id.in_(sa.bindparam("ids", expanding=True)))
_CHANNELS = select_of(ChannelValue).where(
    CHANNELS.c.owner_id.in_(sa.bindparam("ids", expanding=True))
)
_RENDITIONS = (
    select_of(RenditionValue)
    .where(RENDITIONS.c.video_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(RENDITIONS.c.height)
)
_RANKED = (
    sa.select(
        *VideoValue.columns(),
        sa.func.row_number()
        .over(partition_by=VIDEOS.c.owner_id, order_by=VIDEOS.c.created_at.desc())
        .label("rank"),
    )
    .where(VIDEOS.c.owner_id.in_(sa.bindparam("ids", expanding=True)), _TRANSCODED)
    .subquery()
)
_OWNERS_VIDEOS = (
    sa.select(*list(_RANKED.c)[: len(VideoValue.columns())])
    .where(_RANKED.c.rank <= CHANNEL_VIDEO_LIMIT)
    .order_by(_RANKED.c.created_at.desc())
)


async def read_video(*, db: Database, video_id: str) -> VideoValue | None:
    """A video's readable columns by id (any status); None for an unknown or malformed id."""
    if not _is_uuid(video_id):
        return None
    rows = await db.fetch(_VIDEO, {"id": video_id})
    return VideoValue.from_row(rows[0]) if rows else None


_VIDEO_WITH_OWNER = (
    select_of(VideoValue, UserValue, ChannelValue)
    .select_from(_WITH_CHANNEL)
    .where(VIDEOS.c.id == sa.bindparam("id"))
)


async def read_video_with_owner(
    *, db: Database, video_id: str
) -> tuple[VideoValue, UserValue, ChannelValue | None] | None:
    """A video with its creator and the creator's channel, in one statement."""
    if not _is_uuid(video_id):
        return None
    rows = await db.fetch(_VIDEO_WITH_OWNER, {"id": video_id})
    if not rows:
        return None
    video, user, channel = split(rows[0], VideoValue, UserValue, ChannelValue)
    return video, user, channel if channel.id else None


async def users_by_ids(*, db: Database, ids: Sequence[str]) -> list[UserValue | None]:
    rows = await db.fetch(_USERS, {"ids": list(set(ids))})
    found = {row[0]: UserValue.from_row(row) for row in rows}
    return [found.get(key) for key in ids]


async def channels_by_owner_ids(*, db: Database, ids: Sequence[str]) -> list[ChannelValue | None]:
    rows = await db.fetch(_CHANNELS, {"ids": list(set(ids))})
    found = {channel.owner_id: channel for channel in map(ChannelValue.from_row, rows)}
    return [found.get(key) for key in ids]


async def videos_by_owner_ids(*, db: Database, ids: Sequence[str]) -> list[list[VideoValue]]:
    """Each owner's newest transcoded videos (at most CHANNEL_VIDEO_LIMIT each)."""
    rows = await db.fetch(_OWNERS_VIDEOS, {"ids": list(set(ids))})
    grouped: dict[str, list[VideoValue]] = defaultdict(list)
    for video in map(VideoValue.from_row, rows):
        grouped[video.owner_id].append(video)
    return [grouped.get(key, []) for key in ids]


async def renditions_by_video_ids(
    *, db: Database, ids: Sequence[str]
) -> list[list[RenditionValue]]:
    rows = await db.fetch(_RENDITIONS, {"ids": list(set(ids))})
    grouped: dict[str, list[RenditionValue]] = defaultdict(list)
    for rendition in map(RenditionValue.from_row, rows):
        grouped[rendition.video_id].append(rendition)
    return [grouped.get(key, []) for key in ids]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def live_position(video: Video | VideoValue, at_ms: int | None = None) -> float:
    """Where the shared playhead is now: stored position plus elapsed time while playing."""
    position = video.playback_timestamp
    if video.playback_playing and video.playback_server_time:
        elapsed = max(0, (at_ms if at_ms is not None else now_ms()) - video.playback_server_time)
        position += elapsed / 1000 * video.playback_rate
    if video.duration is not None:
        position = min(position, video.duration)
    return round(max(position, 0.0), 3)
