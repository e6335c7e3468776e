"""Light read values: the columns a read needs, selected with SQLAlchemy Core, as frozen tuples
of attributes that both faces render. Writes keep the ORM tables; reads on hot paths use these.

A value class names its columns by its fields (same names as the table's), so `select_of`
builds the SELECT and `from_row` the value without an ORM session or instance state.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, Self

import sqlalchemy as sa

from models.channels import Channel
from models.users import User
from models.videos import Rendition, Video, VideoStatus

_COLUMNS: dict[type, list[sa.ColumnElement[Any]]] = {}


class Value:
    table: ClassVar[Any]

    @classmethod
    def columns(cls) -> list[sa.ColumnElement[Any]]:
        """The table's columns named by the value's fields, in field order."""
        found: list[sa.ColumnElement[Any]] | None = _COLUMNS.get(cls)
        if found is None:
            table = cls.table.__table__
            found = _COLUMNS[cls] = [table.c[f.name] for f in fields(cls)]  # type: ignore[arg-type]
        return found

    @classmethod
    def from_row(cls, row: Any) -> Self:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class UserValue(Value):
    """A user's public face (creators, owners): no email, no credentials."""

    table: ClassVar[Any] = User
    id: str
    username: str


@dataclass(frozen=True, slots=True)
class ChannelValue(Value):
    table: ClassVar[Any] = Channel
    id: str
    owner_id: str
    slug: str
    name: str
    description: str
    subscriber_count: int


@dataclass(frozen=True, slots=True)
class RenditionValue(Value):
    table: ClassVar[Any] = Rendition
    video_id: str
    quality: str
    width: int
    height: int
    storage_key: str


@dataclass(frozen=True, slots=True)
class VideoValue(Value):
    """Everything a video's readers show (no storage bookkeeping, no playback version)."""

    table: ClassVar[Any] = Video
    id: str
    owner_id: str
    title: str
    description: str
    category: str | None
    status: VideoStatus
    progress: int
    failure_reason: str | None
    thumbnail_key: str | None
    duration: float | None
    width: int | None
    height: int | None
    view_count: int
    created_at: datetime
    playback_timestamp: float
    playback_playing: bool
    playback_rate: float
    playback_server_time: int

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:  # SQLite hands back naive datetimes; all are UTC
            object.__setattr__(self, "created_at", self.created_at.replace(tzinfo=UTC))


@dataclass(frozen=True, slots=True)
class FeedItemValue(Value):
    """What a feed entry shows (REST's feed items, the web's cards): 8 of the video's columns."""

    table: ClassVar[Any] = Video
    id: str
    owner_id: str
    title: str
    category: str | None
    thumbnail_key: str | None
    view_count: int
    duration: float | None
    created_at: datetime

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:  # SQLite hands back naive datetimes; all are UTC
            object.__setattr__(self, "created_at", self.created_at.replace(tzinfo=UTC))


def select_of(*values: type[Value]) -> sa.Select[Any]:
    """SELECT the columns of each value class, in order (split rows with `split`)."""
    return sa.select(*[column for value in values for column in value.columns()])


_SPANS: dict[tuple[type[Value], ...], list[tuple[type[Value], int, int]]] = {}


def split(row: Any, *values: type[Value]) -> list[Any]:
    """One joined row back into its values, in the order `select_of` took them."""
    spans = _SPANS.get(values)
    if spans is None:
        spans, start = [], 0
        for value in values:
            width = len(value.columns())
            spans.append((value, start, start + width))
            start += width
        _SPANS[values] = spans
    return [value(*row[start:end]) for value, start, end in spans]
