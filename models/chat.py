"""A party's chat: its messages, in the order the server accepted them.

Reactions are not kept here: they live in the party's event log (`party_events`) for the
party's life, which is all a replay needs.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"
    __table_args__ = (sa.Index("ix_chat_messages_party_seq", "party_id", "seq"),)

    id: str = id_field()
    party_id: str = Field(
        sa_column=sa.Column(
            sa.String(36), sa.ForeignKey("parties.id", ondelete="CASCADE"), nullable=False
        )
    )
    #: the party's event version of the message: its order, and the history's cursor
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    member_id: str = Field(max_length=36)
    #: the author as members saw them when it was sent (members leave; messages stay)
    author: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    #: None once deleted: the message keeps its place, its text is gone
    body: str | None = Field(default=None, max_length=2000)
    reply_to_id: str | None = Field(default=None, max_length=36)
    #: the party's position when the server accepted it, seconds
    media_time: float = 0.0
    created_at: datetime = created_field()
    deleted_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
