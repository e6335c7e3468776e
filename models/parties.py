"""Watch parties: private rooms around a video, their members and their event log.

What changes many times a second (the playhead, who is ready, who is online) lives in the live
store (`models/live.py`) and reaches these tables behind it; what is rare (a party's settings,
who joined with which role, who was kicked) is written here first.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from models.base import created_field, id_field


def _enum(enum: type[StrEnum], length: int = 16) -> sa.Enum:
    return sa.Enum(
        enum,
        native_enum=False,
        length=length,
        values_callable=lambda items: [i.value for i in items],
    )


class PartyVisibility(StrEnum):
    #: listed on the video's page (`parties(videoId)`); anyone with the code may join
    PUBLIC = "PUBLIC"
    #: not listed; anyone with the code (the invite link) may join
    UNLISTED = "UNLISTED"
    #: not listed; the code and the password are needed to join
    PRIVATE = "PRIVATE"


class PartyControl(StrEnum):
    #: the host and the cohosts may change the playhead
    HOST = "HOST"
    #: every member may change the playhead
    EVERYONE = "EVERYONE"


class PartyRole(StrEnum):
    HOST = "HOST"
    COHOST = "COHOST"
    MEMBER = "MEMBER"
    #: joined without an account
    GUEST = "GUEST"


class PartyState(StrEnum):
    PLAYING = "PLAYING"
    PAUSED = "PAUSED"
    #: held until the members are ready at the new position (or the ready timeout passes)
    WAITING = "WAITING"
    ENDED = "ENDED"


class PlayerState(StrEnum):
    #: the player is ready to play at its position
    READY = "READY"
    #: the player is loading
    BUFFERING = "BUFFERING"
    #: nothing reported yet: the barrier does not wait for this member
    IDLE = "IDLE"


class Party(SQLModel, table=True):
    __tablename__ = "parties"
    __table_args__ = (sa.Index("ix_parties_video_listed", "video_id", "visibility", "ended_at"),)

    id: str = id_field()
    code: str = Field(max_length=32, sa_column_kwargs={"unique": True})
    name: str = Field(max_length=100)
    video_id: str = Field(
        sa_column=sa.Column(
            sa.String(36), sa.ForeignKey("videos.id", ondelete="CASCADE"), nullable=False
        )
    )
    host_user_id: str = Field(
        sa_column=sa.Column(
            sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
        )
    )
    visibility: PartyVisibility = Field(
        default=PartyVisibility.UNLISTED,
        sa_column=sa.Column(_enum(PartyVisibility), nullable=False),
    )
    control: PartyControl = Field(
        default=PartyControl.HOST, sa_column=sa.Column(_enum(PartyControl), nullable=False)
    )
    password_hash: str | None = Field(default=None, max_length=255)
    max_members: int = 50
    chat_enabled: bool = True
    created_at: datetime = created_field()
    ended_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    #: the live state as last written behind (JSON), to rebuild the live store after a restart
    snapshot: str | None = Field(default=None, sa_column=sa.Column(sa.Text, nullable=True))
    #: when someone was last online (epoch ms): a party idle for COWATCH_PARTY_IDLE_S ends
    active_at: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False))


class PartyMember(SQLModel, table=True):
    __tablename__ = "party_members"
    __table_args__ = (sa.Index("ix_party_members_user", "user_id", "party_id"),)

    id: str = id_field()
    party_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("parties.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        )
    )
    user_id: str | None = Field(
        default=None,
        sa_column=sa.Column(
            sa.String(36), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=True
        ),
    )
    display_name: str = Field(max_length=60)
    role: PartyRole = Field(sa_column=sa.Column(_enum(PartyRole), nullable=False))
    joined_at: datetime = created_field()
    left_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )
    kicked_at: datetime | None = Field(
        default=None, sa_column=sa.Column(sa.DateTime(timezone=True), nullable=True)
    )


class PartyEvent(SQLModel, table=True):
    """The party's ordered log: what `Party.events` pages and a replay plays back."""

    __tablename__ = "party_events"

    party_id: str = Field(
        sa_column=sa.Column(
            sa.String(36),
            sa.ForeignKey("parties.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        )
    )
    seq: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, nullable=False))
    kind: str = Field(max_length=32)
    #: the event's fields as sent to members (JSON)
    data: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    #: server time of the event, epoch ms
    server_time: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    #: the party's media position when it happened, seconds
    media_time: float = 0.0
