"""Channels: one per user, addressed by slug."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from models import Channel, User
from models.db import Database
from models.values import ChannelValue, select_of
from resolvers.errors import AlreadyHasChannel, BadInput, Conflict, NotFound

SLUG_RE = re.compile(r"^[a-z0-9_-]{3,50}$")
MAX_NAME = 100
MAX_DESCRIPTION = 5000


def _validate(name: str, description: str, slug: str) -> None:
    if not SLUG_RE.fullmatch(slug):  # `$` alone would let a trailing newline in
        raise BadInput(
            "slug: 3 to 50 characters of lowercase letters, digits, '-' and '_'", field="slug"
        )
    if not name.strip() or len(name) > MAX_NAME:
        raise BadInput(f"name: 1 to {MAX_NAME} characters", field="name")
    if len(description) > MAX_DESCRIPTION:
        raise BadInput(f"description: at most {MAX_DESCRIPTION} characters", field="description")


async def create_channel(
    *, db: Database, owner: User, name: str, slug: str, description: str | None
) -> Channel:
    """Create the owner's one channel."""
    description = description or ""
    _validate(name, description, slug)
    async with db.session() as session:
        if (await session.exec(select(Channel).where(Channel.owner_id == owner.id))).first():
            raise AlreadyHasChannel("this user already has a channel")
        if (await session.exec(select(Channel).where(Channel.slug == slug))).first():
            raise Conflict("slug is already taken", field="slug")
        channel = Channel(owner_id=owner.id, name=name.strip(), slug=slug, description=description)
        session.add(channel)
        try:
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            mine = (await session.exec(select(Channel).where(Channel.owner_id == owner.id))).first()
            if mine is not None:
                raise AlreadyHasChannel("this user already has a channel") from exc
            raise Conflict("slug is already taken", field="slug") from exc
        return channel


async def get_channel(*, db: Database, slug: str) -> ChannelValue:
    channel = await read_channel(db=db, slug=slug)
    if channel is None:
        raise NotFound("channel not found")
    return channel


_CHANNEL = select_of(ChannelValue).where(
    ChannelValue.table.__table__.c.slug == sa.bindparam("slug")
)


async def read_channel(*, db: Database, slug: str) -> ChannelValue | None:
    """A channel's readable columns by slug, without an ORM session."""
    rows = await db.fetch(_CHANNEL, {"slug": slug})
    return ChannelValue.from_row(rows[0]) if rows else None
