"""watch parties: parties, their members and their event log

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    op.create_table(
        "parties",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("video_id", sa.String(length=36), nullable=False),
        sa.Column("host_user_id", sa.String(length=36), nullable=False),
        sa.Column(
            "visibility", _enum("partyvisibility", "PUBLIC", "UNLISTED", "PRIVATE"), nullable=False
        ),
        sa.Column("control", _enum("partycontrol", "HOST", "EVERYONE"), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("max_members", sa.Integer(), nullable=False),
        sa.Column("chat_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("snapshot", sa.Text(), nullable=True),
        sa.Column("active_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["host_user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_parties_created_at", "parties", ["created_at"])
    op.create_index("ix_parties_video_listed", "parties", ["video_id", "visibility", "ended_at"])
    op.create_table(
        "party_members",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("user_id", sa.String(length=36), nullable=True),
        sa.Column("display_name", sa.String(length=60), nullable=False),
        sa.Column("role", _enum("partyrole", "HOST", "COHOST", "MEMBER", "GUEST"), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("kicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_party_members_party_id", "party_members", ["party_id"])
    op.create_index("ix_party_members_joined_at", "party_members", ["joined_at"])
    op.create_index("ix_party_members_user", "party_members", ["user_id", "party_id"])
    op.create_table(
        "party_events",
        sa.Column("party_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("server_time", sa.BigInteger(), nullable=False),
        sa.Column("media_time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["party_id"], ["parties.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("party_id", "seq"),
    )


def downgrade() -> None:
    op.drop_table("party_events")
    op.drop_table("party_members")
    op.drop_table("parties")
