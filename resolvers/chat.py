"""Party chat and reactions on the video's timeline, and the party's replayable log.

Every message and reaction carries the party's position when the server accepted it
(`media_time`). A message goes out as a party event (its version orders it among everything else
the party saw) and is then kept in `chat_messages`; a reaction lives in the party's log only.
`Party.messages` pages the history newest first; `Party.events` pages the whole log oldest first,
which is what a replay plays back.
"""

from __future__ import annotations

import base64
import json
import logging
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from models.base import as_utc, new_id, utcnow
from models.chat import ChatMessage
from models.parties import PartyEvent
from realtime.events import Event
from resolvers import party_rules as rules
from resolvers.auth import Caller
from resolvers.errors import BadInput, DomainError, NotFound, Unavailable
from resolvers.parties import actor, require_view
from resolvers.party_runtime import PartyRuntime
from resolvers.party_state import Change, Live
from resolvers.ratelimit import RateClass, RateLimiter
from resolvers.videos import now_ms

log = logging.getLogger("cowatch.chat")
MAX_BODY = 2000
#: Control characters a message may carry (line breaks and tabs); any other is refused.
ALLOWED_CONTROLS = frozenset("\n\t")
MAX_PAGE = 100
#: The emoji variation selector: "❤" and "❤️" are the same reaction.
VS16 = "\ufe0f"


def clean_body(value: object) -> str:
    if not isinstance(value, str):
        raise BadInput("body must be a string", field="body")
    body = unicodedata.normalize("NFC", value).strip()
    if not 1 <= len(body) <= MAX_BODY:
        raise BadInput(f"body: 1 to {MAX_BODY} characters after trimming", field="body")
    if any(unicodedata.category(ch) == "Cc" and ch not in ALLOWED_CONTROLS for ch in body):
        raise BadInput("body: no control characters", field="body")
    return body


def clean_emoji(value: object) -> str:
    if isinstance(value, str):
        for allowed in rules.REACTIONS:
            if value.strip() in (allowed, allowed.replace(VS16, "")):
                return allowed
    raise BadInput(f"emoji must be one of {' '.join(rules.REACTIONS)}", field="emoji")


def _summary(row: ChatMessage) -> dict[str, Any]:
    """A replied-to message as a reply shows it (one level deep)."""
    return {
        "id": row.id,
        "body": row.body,
        "author": json.loads(row.author),
        "reply_to": None,
        "media_time": row.media_time,
        "created_at": as_utc(row.created_at).isoformat().replace("+00:00", "Z"),
        "deleted": row.deleted_at is not None,
    }


async def send_message(
    *,
    runtime: PartyRuntime,
    limiter: RateLimiter,
    caller: Caller,
    party_id: str,
    body: object,
    reply_to: str | None = None,
) -> dict[str, Any]:
    """Post to the party's chat; the message as members receive it."""
    text = clean_body(body)
    live = await runtime.get(party_id)
    member_id = actor(live, caller)
    rules.require_chat(live, member_id)
    await limiter.check(RateClass.CHAT, f"member:{member_id}")
    replied = None
    if reply_to is not None:
        async with runtime.db.session() as session:
            row = await session.get(ChatMessage, reply_to) if isinstance(reply_to, str) else None
        if row is None or row.party_id != party_id or row.deleted_at is not None:
            raise BadInput(
                "replyTo must be a message of this party that was not deleted", field="replyTo"
            )
        replied = _summary(row)
    message_id = new_id()

    async def keep(events: list[Event]) -> None:
        (event,) = events
        message = event.data["message"]
        await runtime.writer.message(
            {
                "id": message_id,
                "party_id": party_id,
                "seq": event.version,
                "member_id": message["author"]["id"],
                "author": json.dumps(message["author"], separators=(",", ":")),
                "body": text,
                "reply_to_id": replied["id"] if replied else None,
                "media_time": message["media_time"],
                # the moment members were told, so history and live agree
                "created_at": datetime.fromisoformat(message["created_at"]),
                "deleted_at": None,
            }
        )

    def post(state: Live) -> list[Change]:
        return rules.post_message(
            state,
            actor(state, caller),
            message_id=message_id,
            body=text,
            reply_to=replied,
            now=now_ms(),
        )

    try:
        applied = await runtime.apply(party_id, post, keep)
    except DomainError:
        raise
    except Exception as exc:  # announced but not kept: take it back
        log.error("party %s: a message could not be kept: %r", party_id, exc)
        await runtime.apply(party_id, lambda state: rules.retract(state, message_id))
        raise Unavailable("the message could not be kept; try again") from exc
    message: dict[str, Any] = applied.events[0].data["message"]
    return message


async def delete_message(*, runtime: PartyRuntime, caller: Caller, message_id: str) -> bool:
    async with runtime.db.session() as session:
        row = await session.get(ChatMessage, message_id) if isinstance(message_id, str) else None
    if row is None:
        raise NotFound("message not found")
    if row.deleted_at is not None:  # already gone: still only for those who could delete it
        live = await runtime.get(row.party_id)
        rules.delete_message(live, actor(live, caller), message_id=row.id, author_id=row.member_id)
        return True
    await runtime.apply(
        row.party_id,
        lambda state: rules.delete_message(
            state, actor(state, caller), message_id=row.id, author_id=row.member_id
        ),
    )
    await runtime.writer.flush()
    async with runtime.db.engine.begin() as conn:
        await conn.execute(
            update(ChatMessage)
            .where(col(ChatMessage.id) == row.id)
            .values(body=None, deleted_at=utcnow())
        )
        # The log keeps the message's place too, without its text.
        logged = (
            await conn.execute(
                select(PartyEvent.data).where(
                    PartyEvent.party_id == row.party_id, PartyEvent.seq == row.seq
                )
            )
        ).scalar_one_or_none()
        if logged is not None:
            data = json.loads(logged)
            data["message"].update(body=None, deleted=True)
            await conn.execute(
                update(PartyEvent)
                .where(col(PartyEvent.party_id) == row.party_id, col(PartyEvent.seq) == row.seq)
                .values(data=json.dumps(data, separators=(",", ":")))
            )
    return True


async def react(
    *, runtime: PartyRuntime, limiter: RateLimiter, caller: Caller, party_id: str, emoji: object
) -> dict[str, Any]:
    """A reaction over the video, at the party's position; kept in the party's log only."""
    chosen = clean_emoji(emoji)
    live = await runtime.get(party_id)
    member_id = actor(live, caller)
    rules.require_chat(live, member_id)
    await limiter.check(RateClass.REACTION, f"member:{member_id}")
    applied = await runtime.apply(
        party_id, lambda state: rules.react(state, actor(state, caller), emoji=chosen, now=now_ms())
    )
    reaction: dict[str, Any] = applied.events[0].data["reaction"]
    return reaction


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    cursors: list[str]
    has_next: bool


def cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()


def _after(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        kind, _, number = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
        if kind == "seq":
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise BadInput("after: not a cursor of this list", field="after")


def _first(value: int | None) -> int:
    if value is None:
        return 20
    if isinstance(value, bool) or not 0 <= value <= MAX_PAGE:
        raise BadInput(f"first must be between 0 and {MAX_PAGE}", field="first")
    return value


def message_fields(row: ChatMessage, replies: dict[str, ChatMessage]) -> dict[str, Any]:
    fields = _summary(row)
    parent = replies.get(row.reply_to_id or "")
    fields["reply_to"] = _summary(parent) if parent else None
    return fields


async def messages(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, first: int | None, after: str | None
) -> Page:
    """The party's chat history, newest first (members only)."""
    await require_view(runtime=runtime, caller=caller, party_id=party_id)
    limit, before = _first(first), _after(after)
    query = select(ChatMessage).where(ChatMessage.party_id == party_id)
    if before is not None:
        query = query.where(col(ChatMessage.seq) < before)
    async with runtime.db.session() as session:
        rows = list(
            (await session.exec(query.order_by(col(ChatMessage.seq).desc()).limit(limit + 1))).all()
        )
    page = rows[:limit]
    replies = await _parents(runtime, {row.reply_to_id for row in page if row.reply_to_id})
    return Page(
        items=[message_fields(row, replies) for row in page],
        cursors=[cursor(row.seq) for row in page],
        has_next=len(rows) > limit,
    )


async def count_messages(*, runtime: PartyRuntime, party_id: str) -> int:
    """How many messages the party's history holds (deleted ones keep their place)."""
    async with runtime.db.session() as session:
        query = select(func.count()).where(ChatMessage.party_id == party_id)
        return int((await session.exec(query)).one())


async def message_page(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, page: int, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """REST's numbered pages of the history, newest first: the page's messages and the total."""
    await require_view(runtime=runtime, caller=caller, party_id=party_id)
    if not 1 <= limit <= MAX_PAGE:
        raise BadInput(f"limit must be between 1 and {MAX_PAGE}", field="limit")
    if page < 1:
        raise BadInput("page must be 1 or more", field="page")
    query = (
        select(ChatMessage)
        .where(ChatMessage.party_id == party_id)
        .order_by(col(ChatMessage.seq).desc())
        .offset((page - 1) * limit)
        .limit(limit)
    )
    async with runtime.db.session() as session:
        rows = list((await session.exec(query)).all())
    replies = await _parents(runtime, {row.reply_to_id for row in rows if row.reply_to_id})
    total = await count_messages(runtime=runtime, party_id=party_id)
    return [message_fields(row, replies) for row in rows], total


async def _parents(runtime: PartyRuntime, ids: set[str]) -> dict[str, ChatMessage]:
    """The replied-to messages as they are now (a deleted one has lost its text)."""
    if not ids:
        return {}
    async with runtime.db.session() as session:
        found = (await session.exec(select(ChatMessage).where(col(ChatMessage.id).in_(ids)))).all()
    return {row.id: row for row in found}


async def count_events(*, runtime: PartyRuntime, party_id: str) -> int:
    """How many events the party's log holds."""
    await runtime.writer.flush()
    async with runtime.db.session() as session:
        query = select(func.count()).where(PartyEvent.party_id == party_id)
        return int((await session.exec(query)).one())


async def events(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, first: int | None, after: str | None
) -> Page:
    """The party's log, oldest first: playback versions, joins, leaves, roles, chat, reactions."""
    await require_view(runtime=runtime, caller=caller, party_id=party_id)
    limit, since = _first(first), _after(after)
    await runtime.writer.flush()
    query = select(PartyEvent).where(PartyEvent.party_id == party_id)
    if since is not None:
        query = query.where(col(PartyEvent.seq) > since)
    async with runtime.db.session() as session:
        rows = list(
            (await session.exec(query.order_by(col(PartyEvent.seq)).limit(limit + 1))).all()
        )
    page = rows[:limit]
    items = [
        {
            "seq": row.seq,
            "kind": row.kind,
            "data": json.loads(row.data),
            "server_time": row.server_time,
            "media_time": row.media_time,
        }
        for row in page
    ]
    # A reply carries the message it answered as it was when sent: show that one as it is now
    # (a deletion since then took its text away).
    answered = [item["data"]["message"]["reply_to"] for item in items if _is_reply(item)]
    parents = await _parents(runtime, {reply["id"] for reply in answered})
    for reply in answered:
        if reply["id"] in parents:
            reply.update(_summary(parents[reply["id"]]))
    return Page(
        items=items,
        cursors=[cursor(row.seq) for row in page],
        has_next=len(rows) > limit,
    )


def _is_reply(item: dict[str, Any]) -> bool:
    message = item["data"].get("message") if item["kind"] == "chat_message" else None
    return isinstance(message, dict) and isinstance(message.get("reply_to"), dict)
