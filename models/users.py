"""Accounts and revoked tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: str = id_field()
    email: str = Field(max_length=254, sa_column_kwargs={"unique": True})
    username: str = Field(max_length=30, sa_column_kwargs={"unique": True})
    username_key: str = Field(max_length=30, sa_column_kwargs={"unique": True})
    password_hash: str = Field(max_length=255)
    failed_logins: int = 0
    first_failed_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    locked_until: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    created_at: datetime = created_field()


class RevokedToken(SQLModel, table=True):
    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    expires_at: datetime = Field(
        sa_column=sa.Column(sa.DateTime(timezone=True), nullable=False, index=True)
    )
