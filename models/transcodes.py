"""What each transcode run cost, per user: the daily transcode-seconds budget reads it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import id_field, utcnow


class TranscodeRun(SQLModel, table=True):
    __tablename__ = "transcode_runs"
    __table_args__ = (sa.Index("ix_transcode_runs_owner_started", "owner_id", "started_at"),)

    id: str = id_field()
    owner_id: str = Field(
        sa_column=sa.Column(
            sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        )
    )
    #: no foreign key: deleting the video must not give the seconds back
    video_id: str = Field(max_length=36)
    started_at: datetime = Field(
        default_factory=utcnow, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False)
    )
    #: wall-clock seconds a worker spent on the run; 0 until it ends
    seconds: float = 0.0
