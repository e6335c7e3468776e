"""Party chat through its resolvers on both databases: input rules, who may delete, history and
live agreeing, the log's replies, and reactions leaving an hour after their party ended."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlmodel import col

from models.base import utcnow
from models.parties import Party
from resolvers import chat, parties
from resolvers.auth import Caller, identify
from resolvers.errors import BadInput, Forbidden, NotFound, RateLimited, Unavailable
from resolvers.party_rules import REACTIONS
from resolvers.party_state import Live
from resolvers.services import Services
from tests.factories import make_user, make_videos


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("  hi  ", "hi"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("e\u0301", "\u00e9"),  # NFC: one character, as every client compares it
        ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # text, shown as text
        (" " + "z" * 2000 + "\n", "z" * 2000),
    ],
)
def test_a_body_is_trimmed_and_kept_as_text(given: str, kept: str) -> None:
    assert chat.clean_body(given) == kept


@pytest.mark.parametrize(
    "given", ["", "   ", "\n\t", "z" * 2001, "bell\x07", "del\x7f", "c1\x85c1", "nul\x00", 7, None]
)
def test_a_bad_body_is_refused(given: object) -> None:
    with pytest.raises(BadInput):
        chat.clean_body(given)


def test_reactions_are_the_documented_eight() -> None:
    assert REACTIONS == ("👍", "❤️", "😂", "😮", "😢", "👏", "🔥", "🎉")
    for emoji in REACTIONS:
        assert chat.clean_emoji(emoji) == emoji
        assert chat.clean_emoji(emoji.replace("\ufe0f", "")) == emoji
    for bad in ("🦄", "", "👍👍", "like", 1, None):
        with pytest.raises(BadInput):
            chat.clean_emoji(bad)


class Room:
    def __init__(self, live: Live, host: Caller, member: Caller, guest: Caller) -> None:
        self.id = live.id
        self.host, self.member, self.guest = host, member, guest


async def _room(services: Services) -> Room:
    host = await make_user(services)
    account = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=90.0)
    live = await parties.create_party(
        runtime=services.parties, hashing=services.hashing, user=host.user, video_id=video.id
    )
    tokens = []
    for caller, name in ((Caller(user=account.user), None), (Caller(), "Gus")):
        joined = await parties.join_party(
            runtime=services.parties,
            hashing=services.hashing,
            limiter=services.rate_limiter,
            settings=services.settings,
            secret=services.jwt_secret,
            caller=caller,
            address="127.0.0.1",
            code=live.code,
            display_name=name,
        )
        tokens.append(joined.member_token)
    member, guest = [
        await identify(db=services.db, secret=services.jwt_secret, token=token) for token in tokens
    ]
    return Room(live, Caller(user=host.user), member, guest)


async def _say(
    services: Services, room: Room, caller: Caller, body: str, reply_to: str | None = None
) -> dict[str, Any]:
    return await chat.send_message(
        runtime=services.parties,
        limiter=services.rate_limiter,
        caller=caller,
        party_id=room.id,
        body=body,
        reply_to=reply_to,
    )


async def test_who_may_delete(services: Services) -> None:
    room, other = await _room(services), await _room(services)
    runtime = services.parties
    mine = await _say(services, room, room.member, "mine")
    with pytest.raises(Forbidden):  # a guest, not its author
        await chat.delete_message(runtime=runtime, caller=room.guest, message_id=str(mine["id"]))
    with pytest.raises(Forbidden):  # another party's member
        await chat.delete_message(runtime=runtime, caller=other.guest, message_id=str(mine["id"]))
    assert await chat.delete_message(runtime=runtime, caller=room.member, message_id=mine["id"])
    # Once deleted, still only for those who could delete it (true again for them).
    with pytest.raises(Forbidden):
        await chat.delete_message(runtime=runtime, caller=other.guest, message_id=str(mine["id"]))
    assert await chat.delete_message(runtime=runtime, caller=room.host, message_id=mine["id"])
    theirs = await _say(services, room, room.guest, "theirs")
    assert await chat.delete_message(runtime=runtime, caller=room.host, message_id=theirs["id"])
    with pytest.raises(NotFound):
        await chat.delete_message(runtime=runtime, caller=room.host, message_id="nothing")


async def test_history_reads_as_members_were_told(services: Services) -> None:
    room = await _room(services)
    sent = [await _say(services, room, room.guest, f"m{i}") for i in range(3)]
    page = await chat.messages(
        runtime=services.parties, caller=room.member, party_id=room.id, first=None, after=None
    )
    assert page.items == list(reversed(sent)) and not page.has_next
    items, total = await chat.message_page(
        runtime=services.parties, caller=room.member, party_id=room.id, page=2, limit=2
    )
    assert (items, total) == ([sent[0]], 3)
    for first, after in ((-1, None), (101, None), (True, None), (None, "bm90IGEgY3Vyc29y")):
        with pytest.raises(BadInput):
            await chat.messages(
                runtime=services.parties,
                caller=room.member,
                party_id=room.id,
                first=first,  # type: ignore[arg-type]
                after=after,
            )


async def test_a_refused_message_is_not_stored(services: Services) -> None:
    room = await _room(services)
    for index in range(5):
        await _say(services, room, room.guest, f"m{index}")
    with pytest.raises(RateLimited) as refused:
        await _say(services, room, room.guest, "sixth")
    assert refused.value.retry_after >= 1
    await parties.update_party(
        runtime=services.parties,
        hashing=services.hashing,
        caller=room.host,
        party_id=room.id,
        chat_enabled=False,
    )
    with pytest.raises(Forbidden):
        await _say(services, room, room.member, "chat is off")
    with pytest.raises(Forbidden):
        await chat.react(
            runtime=services.parties,
            limiter=services.rate_limiter,
            caller=room.member,
            party_id=room.id,
            emoji="👍",
        )
    assert await chat.count_messages(runtime=services.parties, party_id=room.id) == 5


#: A database trigger that refuses one message body: the one way to make a real database refuse
#: a single chat row (both dialects).
REFUSE = {
    "sqlite": [
        "CREATE TRIGGER refuse_chat BEFORE INSERT ON chat_messages WHEN NEW.body = 'refused'"
        " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_chat() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " IF NEW.body = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF;"
        " RETURN NEW; END $$",
        "CREATE TRIGGER refuse_chat BEFORE INSERT ON chat_messages"
        " FOR EACH ROW EXECUTE FUNCTION refuse_chat()",
    ],
}
ALLOW = {
    "sqlite": ["DROP TRIGGER refuse_chat"],
    "postgresql": ["DROP TRIGGER refuse_chat ON chat_messages", "DROP FUNCTION refuse_chat()"],
}


async def test_a_message_the_database_refuses_is_taken_back_and_alone(services: Services) -> None:
    """Messages sent together share one commit; a row the database refuses fails its own sender
    (UNAVAILABLE, and the party is told it is gone), not the messages committed beside it."""
    room = await _room(services)
    engine = services.db.engine
    dialect = engine.dialect.name
    async with engine.begin() as conn:
        for statement in REFUSE[dialect]:
            await conn.execute(text(statement))
    try:
        sent = await asyncio.gather(
            _say(services, room, room.guest, "before"),
            _say(services, room, room.member, "refused"),
            _say(services, room, room.host, "after"),
            return_exceptions=True,
        )
    finally:
        async with engine.begin() as conn:
            for statement in ALLOW[dialect]:
                await conn.execute(text(statement))
    before, refused, after = sent
    assert isinstance(refused, Unavailable), refused
    assert isinstance(before, dict) and isinstance(after, dict), sent
    page = await chat.messages(
        runtime=services.parties, caller=room.member, party_id=room.id, first=None, after=None
    )
    assert [item["body"] for item in page.items] == ["after", "before"]
    log = await chat.events(
        runtime=services.parties, caller=room.guest, party_id=room.id, first=100, after=None
    )
    posted = [i["data"]["message"]["id"] for i in log.items if i["kind"] == "chat_message"]
    taken_back = [i["data"]["message_id"] for i in log.items if i["kind"] == "chat_deleted"]
    assert len(posted) == 3 and len(taken_back) == 1
    assert taken_back[0] not in {before["id"], after["id"]}


async def test_the_log_shows_a_reply_without_the_text_deleted_since(services: Services) -> None:
    room = await _room(services)
    first = await _say(services, room, room.member, "first")
    reply = await _say(services, room, room.guest, "re", reply_to=str(first["id"]))
    await chat.delete_message(runtime=services.parties, caller=room.host, message_id=first["id"])
    log = await chat.events(
        runtime=services.parties, caller=room.guest, party_id=room.id, first=100, after=None
    )
    messages = {
        item["data"]["message"]["id"]: item["data"]["message"]
        for item in log.items
        if item["kind"] == "chat_message"
    }
    assert (messages[first["id"]]["body"], messages[first["id"]]["deleted"]) == (None, True)
    answered = messages[reply["id"]]["reply_to"]
    assert (answered["id"], answered["body"], answered["deleted"]) == (first["id"], None, True)
    assert await chat.count_events(runtime=services.parties, party_id=room.id) == len(log.items)


async def test_reactions_leave_an_hour_after_the_party_ended(services: Services) -> None:
    room = await _room(services)
    runtime = services.parties
    await chat.react(
        runtime=runtime,
        limiter=services.rate_limiter,
        caller=room.guest,
        party_id=room.id,
        emoji="🔥",
    )
    await _say(services, room, room.guest, "stays")

    async def kinds() -> list[str]:
        log = await chat.events(
            runtime=runtime, caller=room.host, party_id=room.id, first=100, after=None
        )
        return [item["kind"] for item in log.items]

    await runtime.prune_reactions()
    assert "reaction" in await kinds()  # a live party keeps them
    await parties.end_party(runtime=runtime, caller=room.host, party_id=room.id)
    await runtime.prune_reactions()
    assert "reaction" in await kinds()  # and for an hour after it ended
    async with services.db.engine.begin() as conn:
        await conn.execute(
            update(Party)
            .where(col(Party.id) == room.id)
            .values(ended_at=utcnow() - timedelta(hours=1, minutes=1))
        )
    await runtime.prune_reactions()
    left = await kinds()
    assert "reaction" not in left and "chat_message" in left


async def test_reactions_are_limited_harder_than_messages(services: Services) -> None:
    room = await _room(services)

    async def react(caller: Caller) -> dict[str, object]:
        return await chat.react(
            runtime=services.parties,
            limiter=services.rate_limiter,
            caller=caller,
            party_id=room.id,
            emoji="👏",
        )

    for _ in range(3):  # COWATCH_RATE_LIMIT_REACTION's default: 3 per 5 s per member
        await react(room.guest)
    with pytest.raises(RateLimited):
        await react(room.guest)
    assert (await react(room.member))["emoji"] == "👏"  # another member is not affected
    said = await _say(services, room, room.guest, "still may talk")  # nor the guest's chat
    assert said["body"] == "still may talk"
