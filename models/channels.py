"""Channels: one per user."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


class Channel(SQLModel, table=True):
    __tablename__ = "channels"

    id: str = id_field()
    owner_id: str = Field(foreign_key="users.id", max_length=36, sa_column_kwargs={"unique": True})
    slug: str = Field(max_length=50, sa_column_kwargs={"unique": True})
    name: str = Field(max_length=100)
    description: str = Field(default="", max_length=5000)
    subscriber_count: int = 0
    created_at: datetime = created_field()
