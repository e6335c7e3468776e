"""Watch parties: create, join, leave, end and configure a party; its members and roles.

The playhead of a party (set, schedule, the ready barrier) is `resolvers/party_playback.py`; the
rules are `resolvers/party_state.py`; storage, events and presence are `PartyRuntime`. Every
function here takes the caller as a `Caller` (an account, a member token, or nobody) and checks
what it may do against the party's live state.
"""

from __future__ import annotations

import secrets
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import insert, update
from sqlmodel import col, select

from models import User, VideoStatus
from models.base import new_id, utcnow
from models.parties import (
    Party,
    PartyControl,
    PartyMember,
    PartyRole,
    PartyVisibility,
)
from resolvers import party_rules as rules
from resolvers.auth import Caller, issue_member_token
from resolvers.errors import BadInput, Forbidden, NotFound, Unauthenticated
from resolvers.hashing import DUMMY_HASH, PasswordHashing
from resolvers.party_log import live_of
from resolvers.party_rules import BadPassword, PartyEnded
from resolvers.party_runtime import PartyRuntime, now_ms
from resolvers.party_state import Live, Member
from resolvers.ratelimit import RateClass, RateLimiter
from resolvers.videos import find_video

if TYPE_CHECKING:
    from config import Settings

#: 8 random bytes: 64 bits, 11 URL-safe characters
CODE_BYTES = 8
MAX_PARTY_NAME = 100
MAX_DISPLAY_NAME = 40
MIN_PASSWORD = 4
MAX_PASSWORD = 128
MAX_MEMBERS = 500


@dataclass(frozen=True)
class Joined:
    live: Live
    member: Member
    member_token: str


def member_of(live: Live, caller: Caller) -> Member | None:
    """The caller's member in this party, if it is one (a member token names its party)."""
    if caller.member is not None:
        if caller.member.party_id != live.id:
            raise Forbidden("this member token belongs to another party")
        return live.members.get(caller.member.member_id)
    if caller.user is not None:
        user_id = caller.user.id
        return next((m for m in live.members.values() if m.user_id == user_id), None)
    return None


def actor(live: Live, caller: Caller) -> str:
    """The caller's member id; Unauthenticated without credentials, Forbidden if not a member."""
    if caller.user is None and caller.member is None:
        raise Unauthenticated("authentication required: send Authorization: Bearer <token>")
    member = member_of(live, caller)
    if member is None:
        rules.require_open(live)
        raise Forbidden("you are not a member of this party")
    return member.id


def clean_display_name(value: object) -> str:
    if not isinstance(value, str):
        raise BadInput("displayName: required to join without an account", field="displayName")
    name = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(name) <= MAX_DISPLAY_NAME:
        raise BadInput(f"displayName: 1 to {MAX_DISPLAY_NAME} characters", field="displayName")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise BadInput("displayName: no control characters", field="displayName")
    return name


def _party_name(value: str | None, default: str) -> str:
    name = (value or "").strip() or default
    if len(name) > MAX_PARTY_NAME or any(unicodedata.category(c) == "Cc" for c in name):
        raise BadInput(
            f"name: 1 to {MAX_PARTY_NAME} characters, no control characters", field="name"
        )
    return name


def _password(value: str | None) -> str | None:
    if value is None:
        return None
    if not MIN_PASSWORD <= len(value) <= MAX_PASSWORD:
        raise BadInput(f"password: {MIN_PASSWORD} to {MAX_PASSWORD} characters", field="password")
    return value


def _max_members(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_MEMBERS:
        raise BadInput(f"maxMembers must be between 2 and {MAX_MEMBERS}", field="maxMembers")
    return value


def _enum(
    kind: type[PartyVisibility] | type[PartyControl] | type[PartyRole], value: object, field: str
) -> str:
    try:
        return kind(str(value)).value
    except ValueError as exc:
        allowed = ", ".join(item.value for item in kind)
        raise BadInput(f"{field} must be one of {allowed}", field=field) from exc


async def create_party(
    *,
    runtime: PartyRuntime,
    hashing: PasswordHashing,
    user: User,
    video_id: str,
    name: str | None = None,
    visibility: object = PartyVisibility.UNLISTED,
    control: object = PartyControl.HOST,
    password: str | None = None,
    max_members: int = 50,
) -> Live:
    """A party around a transcoded video, with the caller as its host and first member."""
    video = await find_video(db=runtime.db, video_id=video_id)
    if video is None:
        raise NotFound("video not found")
    if video.status != VideoStatus.TRANSCODED:
        raise BadInput("the video is not transcoded yet", field="videoId")
    seen = _enum(PartyVisibility, visibility, "visibility")
    mode = _enum(PartyControl, control, "control")
    secret = _password(password)
    if seen == PartyVisibility.PRIVATE and secret is None:
        raise BadInput("a PRIVATE party needs a password", field="password")
    party = Party(
        code=secrets.token_urlsafe(CODE_BYTES),
        name=_party_name(name, f"{user.username}'s party"),
        video_id=video.id,
        host_user_id=user.id,
        visibility=PartyVisibility(seen),
        control=PartyControl(mode),
        password_hash=await hashing.hash(secret) if secret else None,
        max_members=_max_members(max_members),
        active_at=now_ms(),
    )
    host = PartyMember(
        party_id=party.id, user_id=user.id, display_name=user.username, role=PartyRole.HOST
    )
    async with runtime.db.session() as session:
        session.add(party)
        await session.flush()
        session.add(host)
        await session.commit()
    live = live_of(party, duration=video.duration)
    host_live = Member(
        id=host.id,
        name=host.display_name,
        role=PartyRole.HOST,
        user_id=user.id,
        username=user.username,
        joined_at=now_ms(),
    )
    await runtime.create(live)
    applied = await runtime.apply(party.id, lambda state: rules.join(state, host_live))
    return applied.live


async def _party_by_code(runtime: PartyRuntime, code: str) -> Party | None:
    if not isinstance(code, str) or not 1 <= len(code) <= 32:
        return None
    async with runtime.db.session() as session:
        return (await session.exec(select(Party).where(Party.code == code))).first()


async def join_party(
    *,
    runtime: PartyRuntime,
    hashing: PasswordHashing,
    limiter: RateLimiter,
    settings: Settings,
    secret: str,
    caller: Caller,
    address: str | None,
    code: str,
    password: str | None = None,
    display_name: str | None = None,
) -> Joined:
    """Join by invite code: with an account, with a member token (again), or as a guest."""
    await limiter.check(RateClass.PARTY_JOIN, "ip:" + (address or "unknown"))
    party = await _party_by_code(runtime, code)
    if party is None:
        if password:
            await hashing.verify(DUMMY_HASH, password)  # as long as a wrong password takes
        raise NotFound("party not found")
    if party.ended_at is not None:
        raise PartyEnded("the party has ended")
    if party.password_hash is not None:
        if not password:
            raise BadPassword("this party needs its password")
        if not await hashing.verify(party.password_hash, password):
            raise BadPassword("the password is wrong")
    live = await runtime.get(party.id)
    existing = member_of(live, caller) if caller.member or caller.user else None
    if existing is not None:
        token = issue_member_token(
            secret=secret,
            party_id=party.id,
            member_id=existing.id,
            ttl_s=settings.party_member_ttl_s,
        )
        return Joined(live=live, member=existing, member_token=token)
    member = await _new_member(runtime, live, caller, display_name)
    applied = await runtime.apply(party.id, lambda state: rules.join(state, member))
    joined = applied.live.members[member.id]
    try:
        await _store_member(runtime, party.id, joined, caller)
    except Exception:
        await runtime.apply(party.id, lambda state: rules.leave(state, member.id, now_ms()))
        raise
    token = issue_member_token(
        secret=secret, party_id=party.id, member_id=member.id, ttl_s=settings.party_member_ttl_s
    )
    return Joined(live=applied.live, member=joined, member_token=token)


async def _new_member(
    runtime: PartyRuntime, live: Live, caller: Caller, display_name: str | None
) -> Member:
    if caller.member is not None:  # a member token of this party whose member left: same id
        if caller.member.party_id != live.id:
            raise Forbidden("this member token belongs to another party")
        async with runtime.db.session() as session:
            row = await session.get(PartyMember, caller.member.member_id)
        if row is None:
            raise Forbidden("this member token is no longer valid")
        return Member(
            id=row.id,
            name=row.display_name,
            role=row.role,
            user_id=row.user_id,
            joined_at=now_ms(),
        )
    user = caller.user
    if user is None:
        return Member(
            id=new_id(),
            name=clean_display_name(display_name),
            role=PartyRole.GUEST,
            joined_at=now_ms(),
        )
    name = clean_display_name(display_name) if display_name else user.username
    role = (
        PartyRole.HOST
        if user.id == live.host_user_id and live.host_id is None
        else PartyRole.MEMBER
    )
    return Member(
        id=new_id(),
        name=name,
        role=role,
        user_id=user.id,
        username=user.username,
        joined_at=now_ms(),
    )


async def _store_member(
    runtime: PartyRuntime, party_id: str, member: Member, caller: Caller
) -> None:
    async with runtime.db.engine.begin() as conn:
        found = await conn.execute(
            update(PartyMember)
            .where(col(PartyMember.id) == member.id)
            .values(left_at=None, display_name=member.name, role=member.role)
        )
        if found.rowcount == 0:
            await conn.execute(
                insert(PartyMember).values(
                    id=member.id,
                    party_id=party_id,
                    user_id=member.user_id,
                    display_name=member.name,
                    role=member.role,
                    joined_at=utcnow(),
                )
            )


async def leave_party(*, runtime: PartyRuntime, caller: Caller, party_id: str) -> bool:
    member_id = actor(await runtime.get(party_id), caller)
    applied = await runtime.apply(
        party_id,
        lambda live: (
            rules.require_member(live, member_id),
            rules.leave(live, member_id, now_ms()),
        )[1],
    )
    await _mark_member(runtime, member_id, left_at=utcnow())
    await _sync_host(runtime, applied.live)
    return True


async def end_party(*, runtime: PartyRuntime, caller: Caller, party_id: str) -> Live:
    applied = await runtime.apply(
        party_id, lambda live: (rules.require_host(live, actor(live, caller)), rules.end(live))[1]
    )
    await runtime.mark_ended(party_id)
    return applied.live


async def set_member_role(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, member_id: str, role: object
) -> Member:
    wanted = _enum(PartyRole, role, "role")
    applied = await runtime.apply(
        party_id,
        lambda live: rules.set_role(live, actor(live, caller), member_id, wanted, now_ms()),
    )
    for member in applied.live.members.values():
        await _mark_member(runtime, member.id, role=member.role)
    await _sync_host(runtime, applied.live)
    return applied.live.members[member_id]


async def kick_member(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, member_id: str
) -> bool:
    applied = await runtime.apply(
        party_id, lambda live: rules.kick(live, actor(live, caller), member_id, now_ms())
    )
    await _mark_member(runtime, member_id, kicked_at=utcnow())
    await _sync_host(runtime, applied.live)
    return True


async def update_party(
    *,
    runtime: PartyRuntime,
    hashing: PasswordHashing,
    caller: Caller,
    party_id: str,
    name: str | None = None,
    visibility: object = None,
    control: object = None,
    password: str | None = None,
    max_members: int | None = None,
    chat_enabled: bool | None = None,
) -> Live:
    """The host changes the party's settings; a password of "" removes it."""
    live = await runtime.get(party_id)
    rules.require_host(live, actor(live, caller))
    changes: dict[str, object] = {}
    row: dict[str, object] = {}
    if name is not None:
        changes["name"] = row["name"] = _party_name(name, live.name)
    if visibility is not None:
        changes["visibility"] = row["visibility"] = _enum(PartyVisibility, visibility, "visibility")
    if control is not None:
        changes["control"] = row["control"] = _enum(PartyControl, control, "control")
    if max_members is not None:
        changes["max_members"] = row["max_members"] = _max_members(max_members)
    if chat_enabled is not None:
        if not isinstance(chat_enabled, bool):
            raise BadInput("chatEnabled must be a boolean", field="chatEnabled")
        changes["chat_enabled"] = row["chat_enabled"] = chat_enabled
    if password is not None:
        secret = _password(password) if password else None
        row["password_hash"] = await hashing.hash(secret) if secret else None
        changes["has_password"] = secret is not None
    final = changes.get("visibility", live.visibility)
    if final == PartyVisibility.PRIVATE and not changes.get("has_password", live.has_password):
        raise BadInput("a PRIVATE party needs a password", field="password")
    applied = await runtime.apply(
        party_id, lambda state: rules.update(state, actor(state, caller), changes)
    )
    if row:
        async with runtime.db.engine.begin() as conn:
            await conn.execute(update(Party).where(col(Party.id) == party_id).values(**row))
    return applied.live


async def _mark_member(runtime: PartyRuntime, member_id: str, **values: object) -> None:
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            update(PartyMember).where(col(PartyMember.id) == member_id).values(**values)
        )


async def _sync_host(runtime: PartyRuntime, live: Live) -> None:
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            update(Party).where(col(Party.id) == live.id).values(host_user_id=live.host_user_id)
        )


@dataclass(frozen=True)
class PartyView:
    """A party as the caller may see it: `member` is None for someone outside it."""

    live: Live
    member: Member | None


async def find_party(
    *, runtime: PartyRuntime, caller: Caller, party_id: str | None = None, code: str | None = None
) -> PartyView | None:
    """A party by id or code. PRIVATE ones exist only for their members: anyone else gets None,
    the same answer as for a code that never existed."""
    if code is not None:
        party = await _party_by_code(runtime, code)
        if party is None:
            return None
        party_id = party.id
    if party_id is None:
        raise BadInput("give the party's id or its code")
    try:
        live = await runtime.get(party_id)
    except NotFound:
        return None
    try:
        member = member_of(live, caller) if caller.member or caller.user else None
    except Forbidden:  # another party's member token
        if live.visibility == PartyVisibility.PRIVATE:
            return None  # an outsider: the same answer as for a party that does not exist
        raise
    if member is None and live.visibility == PartyVisibility.PRIVATE:
        return None
    return PartyView(live=live, member=member)


async def require_view(*, runtime: PartyRuntime, caller: Caller, party_id: str) -> PartyView:
    """A party its caller belongs to (members, playback, messages, events need that)."""
    live = await runtime.get(party_id)
    member = member_of(live, caller)
    if member is None:
        actor(live, caller)
    return PartyView(live=live, member=member)


async def public_parties(*, runtime: PartyRuntime, video_id: str) -> list[Live]:
    """The PUBLIC parties of a video that have not ended, newest first."""
    async with runtime.db.session() as session:
        ids = (
            await session.exec(
                select(Party.id)
                .where(
                    Party.video_id == video_id,
                    Party.visibility == PartyVisibility.PUBLIC,
                    col(Party.ended_at).is_(None),
                )
                .order_by(col(Party.created_at).desc())
                .limit(100)
            )
        ).all()
    return [await runtime.get(party_id) for party_id in ids]


async def my_parties(*, runtime: PartyRuntime, user: User) -> list[Live]:
    """The parties the user is a member of that have not ended."""
    async with runtime.db.session() as session:
        ids = (
            await session.exec(
                select(Party.id)
                .join(PartyMember, col(PartyMember.party_id) == col(Party.id))
                .where(
                    PartyMember.user_id == user.id,
                    col(PartyMember.left_at).is_(None),
                    col(PartyMember.kicked_at).is_(None),
                    col(Party.ended_at).is_(None),
                )
                .order_by(col(Party.created_at).desc())
                .limit(100)
            )
        ).all()
    return [await runtime.get(party_id) for party_id in ids]
