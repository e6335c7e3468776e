"""Party chat and reactions on `/ws`: exactly once, in order, to members only; history; the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlmodel import select
from websockets.asyncio.client import ClientConnection, connect

from config import Settings
from models.chat import ChatMessage
from resolvers import chat, parties
from resolvers.auth import identify
from tests.live import LiveServer, live_server, receive_json
from tests.rest_compat.test_ws_parties import Party, make_party, member_socket, next_of, send

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings.model_copy(update={"rate_limit_chat": "5/5 seconds"})) as live:
        yield live


async def say(conn: ClientConnection, party: Party, body: Any, **extra: Any) -> None:
    await send(conn, type="chat:send", party_id=party.id, body=body, **extra)


async def test_every_member_gets_every_message_once_in_the_order_accepted(
    server: LiveServer,
) -> None:
    party = await make_party(server.services)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, party.member, party.id) as member,
        member_socket(server, party.guest, party.id) as guest,
    ):
        speakers = [host, member, guest]
        for index in range(9):
            await say(speakers[index % 3], party, f"line {index}")
        streams = []
        for conn in speakers:
            bodies: list[str] = []
            versions: list[int] = []
            while len(bodies) < 9:
                frame = await next_of(conn, "party:chat_message")
                bodies.append(frame["message"]["body"])
                versions.append(frame["seq"])
            assert versions == sorted(set(versions))
            streams.append(bodies)
        assert streams[0] == streams[1] == streams[2]
        assert sorted(streams[0]) == sorted(f"line {i}" for i in range(9))


async def test_outsiders_hear_nothing_and_a_flooder_is_limited_alone(server: LiveServer) -> None:
    party, other = await make_party(server.services), await make_party(server.services)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, party.guest, party.id) as guest,
        connect(f"{server.ws_url}/ws?token={other.guest.token}") as outsider,
    ):
        await send(outsider, type="party:subscribe", party_id=party.id)
        assert (await receive_json(outsider))["code"] == "FORBIDDEN"
        await say(outsider, party, "let me in")
        assert (await receive_json(outsider))["code"] == "FORBIDDEN"
        for index in range(6):
            await say(guest, party, f"flood {index}")
        refused = await next_of(guest, "error")
        assert refused["code"] == "RATE_LIMITED" and refused["retry_after"] >= 1
        await say(host, party, "calm")
        received = []
        while "calm" not in received:
            received.append((await next_of(host, "party:chat_message"))["message"]["body"])
        assert received == [*(f"flood {i}" for i in range(5)), "calm"]
    async with server.services.db.session() as session:
        bodies = (await session.exec(select(ChatMessage.body))).all()
    assert sorted(b or "" for b in bodies) == sorted(["calm", *(f"flood {i}" for i in range(5))])


async def test_bad_messages_are_refused_and_nothing_is_stored(server: LiveServer) -> None:
    party, other = await make_party(server.services), await make_party(server.services)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, other.host, other.id) as elsewhere,
    ):
        await say(elsewhere, other, "over there")
        theirs = (await next_of(elsewhere, "party:chat_message"))["message"]["id"]
        for body, extra in (
            ("", {}),
            ("   ", {}),
            ("x" * 2001, {}),
            ("bell\x07", {}),
            (7, {}),
            ("reply", {"reply_to": theirs}),
            ("reply", {"reply_to": "no-such-message"}),
            ("reply", {"reply_to": 5}),
            ("reply", {"reply_to": ["a list"]}),
        ):
            await say(host, party, body, **extra)
            refused = await next_of(host, "error")
            assert refused["code"] == "BAD_USER_INPUT", (body, refused)
        await send(host, type="party:react", party_id=party.id, emoji="🦄")
        assert (await next_of(host, "error"))["code"] == "BAD_USER_INPUT"
    async with server.services.db.session() as session:
        stored = (await session.exec(select(ChatMessage.party_id))).all()
    assert stored == [other.id]


async def test_history_pages_newest_first_deleted_keep_their_place_chat_can_be_turned_off(
    server: LiveServer,
) -> None:
    party = await make_party(server.services)
    services = server.services
    host_caller = await identify(db=services.db, secret=services.jwt_secret, token=party.host.token)
    async with member_socket(server, party.host, party.id) as host:
        for index in range(4):  # four and a reply: within the chat limit of 5 in 5 s
            await say(host, party, f"m{index}")
        ids = [(await next_of(host, "party:chat_message"))["message"]["id"] for _ in range(4)]
        await say(host, party, "a reply", reply_to=ids[1])
        reply = (await next_of(host, "party:chat_message"))["message"]
        assert reply["reply_to"]["id"] == ids[1] and reply["reply_to"]["body"] == "m1"
        await send(host, type="chat:delete", message_id=ids[2])
        assert (await next_of(host, "party:chat_deleted"))["message_id"] == ids[2]
        await parties.update_party(
            runtime=services.parties,
            hashing=services.hashing,
            caller=host_caller,
            party_id=party.id,
            chat_enabled=False,
        )
        await say(host, party, "anyone?")
        assert (await next_of(host, "error"))["code"] == "FORBIDDEN"
    late = await identify(db=services.db, secret=services.jwt_secret, token=party.guest.token)
    first = await chat.messages(
        runtime=services.parties, caller=late, party_id=party.id, first=4, after=None
    )
    assert [m["body"] for m in first.items] == ["a reply", "m3", None, "m1"]
    assert first.items[2]["deleted"] and first.has_next
    rest = await chat.messages(
        runtime=services.parties, caller=late, party_id=party.id, first=4, after=first.cursors[-1]
    )
    assert [m["body"] for m in rest.items] == ["m0"] and not rest.has_next


async def test_media_time_is_the_party_position_and_the_log_replays_what_happened(
    server: LiveServer,
) -> None:
    party = await make_party(server.services)
    services = server.services
    received: list[dict[str, Any]] = []
    async with member_socket(server, party.host, party.id) as host:
        await send(host, type="party:playback", party_id=party.id, timestamp=42, playing=True)
        started = await next_of(host, "party:playback", state="PLAYING")  # nobody to wait for
        await say(host, party, "at 42 or so")
        said = await next_of(host, "party:chat_message")
        await send(host, type="party:react", party_id=party.id, emoji="❤")
        reacted = await next_of(host, "party:reaction")
        assert reacted["reaction"]["emoji"] == "❤️"
        received = [started, said, reacted]
    expected = started["timestamp"] + max(0, said["server_time"] - started["server_time"]) / 1000
    assert abs(said["message"]["media_time"] - expected) <= 0.05
    caller = await identify(db=services.db, secret=services.jwt_secret, token=party.host.token)
    log = await chat.events(
        runtime=services.parties, caller=caller, party_id=party.id, first=100, after=None
    )
    by_version = {item["seq"]: item for item in log.items}
    for frame in received:
        logged = by_version[frame["seq"]]
        assert (
            logged["kind"]
            == {
                "party:playback": "playback",
                "party:chat_message": "chat_message",
                "party:reaction": "reaction",
            }[frame["type"]]
        )
        assert logged["server_time"] == frame["server_time"]
        framing = ("type", "seq", "party_id", "server_time", "media_time")
        shown = {k: v for k, v in frame.items() if k not in framing}
        kept = {k: v for k, v in logged["data"].items() if k != "party_id"}
        assert kept == shown
