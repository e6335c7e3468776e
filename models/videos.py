"""Videos, their renditions and their shared playback state."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


class VideoStatus(StrEnum):
    #: uploaded, waiting for or inside the transcoder
    PROCESSING = "PROCESSING"
    #: every rendition is stored and playable
    TRANSCODED = "TRANSCODED"
    #: the transcoder gave up; `failure_reason` says why
    FAILED = "FAILED"


class Video(SQLModel, table=True):
    __tablename__ = "videos"
    __table_args__ = (sa.Index("ix_videos_feed", "status", "created_at"),)

    id: str = id_field()
    owner_id: str = Field(foreign_key="users.id", max_length=36, index=True)
    title: str = Field(max_length=200)
    description: str = Field(default="", max_length=5000)
    category: str | None = Field(default=None, max_length=50, index=True)
    status: VideoStatus = Field(
        default=VideoStatus.PROCESSING,
        sa_column=sa.Column(
            sa.Enum(
                VideoStatus,
                native_enum=False,
                length=16,
                values_callable=lambda statuses: [status.value for status in statuses],
            ),
            nullable=False,
            default=VideoStatus.PROCESSING,
        ),
    )
    progress: int = 0
    #: grows by one at every change of status or progress: orders the `processing:<id>` events
    processing_version: int = 0
    failure_reason: str | None = Field(default=None, max_length=500)
    source_key: str | None = Field(default=None, max_length=255)
    source_bytes: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    thumbnail_key: str | None = Field(default=None, max_length=255)
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    view_count: int = 0
    created_at: datetime = created_field()
    # The shared playback state: what every viewer of this video is watching.
    playback_timestamp: float = 0.0
    playback_playing: bool = False
    playback_rate: float = 1.0
    playback_server_time: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
    playback_version: int = 0
    playback_user_id: str | None = Field(default=None, max_length=36)


class Rendition(SQLModel, table=True):
    __tablename__ = "renditions"
    __table_args__ = (sa.UniqueConstraint("video_id", "quality"),)

    id: str = id_field()
    video_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("videos.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    quality: str = Field(max_length=8)
    width: int
    height: int
    storage_key: str = Field(max_length=255)
    size_bytes: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))
