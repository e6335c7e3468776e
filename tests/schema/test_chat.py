"""Party chat on GraphQL over a real server and real sockets, on both databases: the mutations,
`ChatMessageAdded` / `ChatMessageDeleted` / `ReactionAdded` in `partyEvents` (each once, in the
order accepted, members only), `Party.messages` and the replay log `Party.events`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from config import Settings
from tests.factories import make_user, make_videos
from tests.live import GraphQLClient, LiveServer, graphql_client, live_server, ws_client
from tests.parties import (
    CHAT_SWITCH,
    DELETE,
    EVENTS,
    LOG,
    MESSAGES,
    REACT,
    SEEK,
    SEND,
    create,
    errors_of,
    join,
    ok,
)

ROLE = """
mutation R($partyId: ID!, $memberId: ID!) {
  setMemberRole(partyId: $partyId, memberId: $memberId, role: COHOST) { id role }
}
"""
LEAVE = "mutation L($partyId: ID!) { leaveParty(partyId: $partyId) }"
KICK = """
mutation K($partyId: ID!, $memberId: ID!) { kickMember(partyId: $partyId, memberId: $memberId) }
"""
END = "mutation E($partyId: ID!) { endParty(partyId: $partyId) { id } }"


@dataclass
class Room:
    id: str
    code: str
    host: str
    member: str
    guest: str
    member_id: str
    guest_id: str


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as live:
        yield live


@pytest.fixture
async def http(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url) as client:
        yield client


async def make_room(server: LiveServer, http: httpx.AsyncClient) -> Room:
    """A party with a host, a member with an account and a guest (member tokens for both)."""
    host = await make_user(server.services)
    account = await make_user(server.services)
    (video,) = await make_videos(server.services, host.user, 1, duration=120.0)
    party = await create(http, host.token, video.id)
    member = await join(http, party["code"], account.token)
    guest = await join(http, party["code"], displayName="Gus")
    return Room(
        id=party["id"],
        code=party["code"],
        host=host.token,
        member=member["memberToken"],
        guest=guest["memberToken"],
        member_id=member["member"]["id"],
        guest_id=guest["member"]["id"],
    )


async def say(
    http: httpx.AsyncClient, room: Room, token: str, body: str, reply_to: str | None = None
) -> dict[str, Any]:
    data = await ok(http, SEND, {"partyId": room.id, "body": body, "replyTo": reply_to}, token)
    message: dict[str, Any] = data["sendChatMessage"]
    return message


async def chat_until(socket: GraphQLClient, op_id: str, last: str) -> list[dict[str, Any]]:
    """Every chat event of `op_id` up to the message whose body is `last` (other kinds skipped)."""
    seen: list[dict[str, Any]] = []
    while True:
        event = await socket.next_data(op_id, "partyEvents")
        if event["__typename"] in ("ChatMessageAdded", "ChatMessageDeleted", "ReactionAdded"):
            seen.append(event)
            if event["__typename"] == "ChatMessageAdded" and event["message"]["body"] == last:
                return seen


async def test_three_members_get_each_message_once_in_the_order_accepted(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    async with AsyncExitStack() as stack:
        sockets = []
        for token in (room.host, room.member, room.guest):
            socket = await stack.enter_async_context(graphql_client(server.ws_url, token))
            await socket.party_events("p", room.id)
            sockets.append(socket)
        # The same party on /ws too: one delivery path, two renderings.
        ws = await stack.enter_async_context(ws_client(server.ws_url, room.member))
        await ws.party_subscribe(room.id)
        speakers = [room.host, room.member, room.guest]
        sent = [await say(http, room, speakers[i % 3], f"line {i}") for i in range(9)]
        await say(http, room, room.host, "end")
        for socket in sockets:
            received = await chat_until(socket, "p", "end")
            assert [e["message"] for e in received[:-1]] == sent
        frames: list[dict[str, Any]] = []
        while len(frames) < 10:
            frames.append(await ws.next_of("party:chat_message"))
        assert [f["message"]["body"] for f in frames] == [*(m["body"] for m in sent), "end"]
        assert [f["seq"] for f in frames] == sorted(set(f["seq"] for f in frames))
        assert [f["message"]["id"] for f in frames[:-1]] == [m["id"] for m in sent]


async def test_outsiders_hear_nothing(server: LiveServer, http: httpx.AsyncClient) -> None:
    room, other = await make_room(server, http), await make_room(server, http)
    async with graphql_client(server.ws_url, other.guest) as outsider:
        await outsider.start("a", EVENTS, {"partyId": room.id})
        message = await outsider.next_message()
        assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert await outsider.next_message() == {"id": "a", "type": "complete"}
        await outsider.party_events("b", other.id)  # its own party: allowed
        assert await errors_of(http, SEND, {"partyId": room.id, "body": "hi"}, other.guest) == [
            "FORBIDDEN"
        ]
        assert await errors_of(http, REACT, {"partyId": room.id, "emoji": "👍"}, other.guest) == [
            "FORBIDDEN"
        ]
        await say(http, room, room.host, "secret")
        await say(http, other, other.host, "their own")
        received = await chat_until(outsider, "b", "their own")
        assert [e["message"]["body"] for e in received] == ["their own"]
    page = (await ok(http, MESSAGES, {"id": room.id}, room.guest))["party"]["messages"]
    assert [e["node"]["body"] for e in page["edges"]] == ["secret"]
    for query in (MESSAGES, LOG):
        assert await errors_of(http, query, {"id": room.id}, other.guest) == ["FORBIDDEN"]


async def test_a_flooder_is_rate_limited_and_the_others_are_not(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    async with graphql_client(server.ws_url, room.member) as listener:
        await listener.party_events("p", room.id)
        for index in range(5):  # the default limit: 5 per 5 s per member
            await say(http, room, room.guest, f"flood {index}")
        body = await http.post(
            "/graphql",
            json={"query": SEND, "variables": {"partyId": room.id, "body": "one too many"}},
            headers={"Authorization": f"Bearer {room.guest}"},
        )
        (error,) = body.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retry_after"] >= 1
        assert body.headers["Retry-After"] == str(error["extensions"]["retry_after"])
        await say(http, room, room.host, "calm")
        await say(http, room, room.member, "still here")
        received = await chat_until(listener, "p", "still here")
        assert [e["message"]["body"] for e in received] == [
            *(f"flood {i}" for i in range(5)),
            "calm",
            "still here",
        ]
    page = (await ok(http, MESSAGES, {"id": room.id, "first": 100}, room.host))["party"]
    assert page["messages"]["totalCount"] == 7  # nothing kept of the refused one


async def test_bad_input_is_refused_and_nothing_is_stored(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room, other = await make_room(server, http), await make_room(server, http)
    theirs = await say(http, other, other.host, "over there")
    mine = await say(http, room, room.host, "to be deleted")
    await ok(http, DELETE, {"id": mine["id"]}, room.host)
    for body, reply_to in (
        ("", None),
        ("   \n\t ", None),
        ("x" * 2001, None),
        ("bell\x07", None),
        ("nul\x00", None),
        ("reply", theirs["id"]),
        ("reply", mine["id"]),
        ("reply", "no-such-message"),
    ):
        variables = {"partyId": room.id, "body": body, "replyTo": reply_to}
        assert await errors_of(http, SEND, variables, room.member) == ["BAD_USER_INPUT"], body
    long_but_trimmed = "  " + "y" * 2000 + "  "
    assert (await say(http, room, room.member, long_but_trimmed))["body"] == "y" * 2000
    for emoji in ("🦄", "", "👍👍", "<b>"):
        variables = {"partyId": room.id, "emoji": emoji}
        assert await errors_of(http, REACT, variables, room.member) == ["BAD_USER_INPUT"]
    page = (await ok(http, MESSAGES, {"id": room.id}, room.host))["party"]["messages"]
    assert page["totalCount"] == 2
    log = (await ok(http, LOG, {"id": room.id, "first": 100}, room.host))["party"]["events"]
    assert not [e for e in log["edges"] if e["node"]["__typename"] == "ReactionAdded"]


async def test_chat_off_is_forbidden_and_only_the_host_switches_it(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    variables = {"partyId": room.id, "on": False}
    assert await errors_of(http, CHAT_SWITCH, variables, room.member) == ["FORBIDDEN"]
    switched = await ok(http, CHAT_SWITCH, variables, room.host)
    assert switched["updateParty"]["chatEnabled"] is False
    for token in (room.host, room.member, room.guest):
        assert await errors_of(http, SEND, {"partyId": room.id, "body": "hello?"}, token) == [
            "FORBIDDEN"
        ]
        assert await errors_of(http, REACT, {"partyId": room.id, "emoji": "👍"}, token) == [
            "FORBIDDEN"
        ]
    await ok(http, CHAT_SWITCH, {"partyId": room.id, "on": True}, room.host)
    assert (await say(http, room, room.guest, "back"))["body"] == "back"


async def test_a_late_joiner_pages_the_history_newest_first(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    sent = []
    for index in range(9):
        speaker = (room.host, room.member, room.guest)[index % 3]
        sent.append(await say(http, room, speaker, f"m{index}"))
    reply = await say(http, room, room.host, "re m2", reply_to=sent[2]["id"])
    await ok(http, DELETE, {"id": sent[4]["id"]}, room.member)  # its author
    late = await make_user(server.services)
    joined = await join(http, room.code, late.token)
    token = joined["memberToken"]
    pages, after = [], None
    while True:
        data = await ok(http, MESSAGES, {"id": room.id, "first": 4, "after": after}, token)
        connection = data["party"]["messages"]
        assert connection["totalCount"] == 10
        pages.append([edge["node"] for edge in connection["edges"]])
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]
    assert [len(page) for page in pages] == [4, 4, 2]
    history = [node for page in pages for node in page]
    assert [node["id"] for node in history] == [reply["id"], *(m["id"] for m in reversed(sent))]
    deleted = history[5]
    assert (deleted["id"], deleted["deleted"], deleted["body"]) == (sent[4]["id"], True, None)
    assert history[0]["replyTo"]["id"] == sent[2]["id"]
    assert history[0]["replyTo"]["body"] == "m2"
    kept = [node for node in history if not node["deleted"]]
    live = {m["id"]: m for m in [reply, *sent]}
    assert all(node == live[node["id"]] for node in kept)  # history reads as it was sent


async def test_a_deletion_reaches_every_member(server: LiveServer, http: httpx.AsyncClient) -> None:
    room = await make_room(server, http)
    async with AsyncExitStack() as stack:
        sockets = []
        for token in (room.host, room.member, room.guest):
            socket = await stack.enter_async_context(graphql_client(server.ws_url, token))
            await socket.party_events("p", room.id)
            sockets.append(socket)
        ws = await stack.enter_async_context(ws_client(server.ws_url, room.guest))
        await ws.party_subscribe(room.id)
        message = await say(http, room, room.member, "oops")
        assert await errors_of(http, DELETE, {"id": message["id"]}, room.guest) == ["FORBIDDEN"]
        assert await ok(http, DELETE, {"id": message["id"]}, room.host) == {
            "deleteChatMessage": True
        }
        await say(http, room, room.host, "end")
        for socket in sockets:
            received = await chat_until(socket, "p", "end")
            assert [e["__typename"] for e in received] == [
                "ChatMessageAdded",
                "ChatMessageDeleted",
                "ChatMessageAdded",
            ]
            assert received[1]["messageId"] == message["id"]
        assert (await ws.next_of("party:chat_deleted"))["message_id"] == message["id"]
    assert await errors_of(http, DELETE, {"id": "no-such-message"}, room.host) == ["NOT_FOUND"]
    page = (await ok(http, MESSAGES, {"id": room.id}, room.member))["party"]["messages"]
    assert [(e["node"]["body"], e["node"]["deleted"]) for e in page["edges"]] == [
        ("end", False),
        (None, True),
    ]


async def test_media_time_is_the_party_position_from_its_playhead(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    # Nobody is online, so nobody is waited for: the party plays at once.
    played = await ok(http, SEEK, {"partyId": room.id, "t": 42.0, "playing": True}, room.host)
    playback = played["setPartyPlayback"]
    assert playback["state"] == "PLAYING"
    message = await say(http, room, room.member, "at 42 or so")
    reaction = (await ok(http, REACT, {"partyId": room.id, "emoji": "🔥"}, room.guest))["react"]
    for item in (message, reaction):
        at_ms = datetime.fromisoformat(item["createdAt"]).timestamp() * 1000
        elapsed = max(0.0, at_ms - playback["serverTime"]) / 1000
        expected = playback["timestamp"] + elapsed * playback["rate"]
        assert abs(item["mediaTime"] - expected) <= 0.05, (item, playback)
    paused = await ok(http, SEEK, {"partyId": room.id, "t": 7.25, "playing": False}, room.host)
    assert paused["setPartyPlayback"]["state"] == "PAUSED"
    assert (await say(http, room, room.host, "paused"))["mediaTime"] == 7.25


async def test_the_replay_log_equals_what_happened(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    async with graphql_client(server.ws_url, room.host) as host:
        await host.party_events("p", room.id)
        online = await host.next_data("p", "partyEvents")  # the subscription: host online
        assert online["__typename"] == "MemberUpdated"
        happened = [online]

        async def then() -> None:
            happened.append(await host.next_data("p", "partyEvents"))

        await ok(http, SEEK, {"partyId": room.id, "t": 10.0, "playing": False}, room.host)
        await then()
        first = await say(http, room, room.member, "hello")
        await then()
        await ok(http, REACT, {"partyId": room.id, "emoji": "❤"}, room.guest)
        await then()
        await ok(http, ROLE, {"partyId": room.id, "memberId": room.guest_id}, room.host)
        await then()
        await say(http, room, room.guest, "hi all", reply_to=first["id"])
        await then()
        await ok(http, SEEK, {"partyId": room.id, "t": 30.5, "playing": False}, room.host)
        await then()
        doomed = await say(http, room, room.host, "typo")
        await then()
        await ok(http, DELETE, {"id": doomed["id"]}, room.guest)  # a cohost now
        await then()
        await ok(http, LEAVE, {"partyId": room.id}, room.member)
        await then()
        await ok(http, CHAT_SWITCH, {"partyId": room.id, "on": False}, room.host)
        await then()
        edges = await whole_log(http, room)  # before the host goes offline (another event)
    kinds = [event["__typename"] for event in happened]
    assert kinds == [
        "MemberUpdated",
        "PlaybackChanged",
        "ChatMessageAdded",
        "ReactionAdded",
        "MemberUpdated",
        "ChatMessageAdded",
        "PlaybackChanged",
        "ChatMessageAdded",
        "ChatMessageDeleted",
        "MemberLeft",
        "PartySnapshot",
    ]
    seqs = [edge["seq"] for edge in edges]
    assert seqs == sorted(set(seqs))
    logged = [edge["node"] for edge in edges][-len(happened) :]
    # What happened, except that the deleted message has lost its text since.
    expected = [dict(event) for event in happened]
    gone = expected[7]["message"]
    expected[7] = {**expected[7], "message": {**gone, "body": None, "deleted": True}}
    assert logged == expected
    # The host's join and the others' joins come first: the whole party is in the log.
    assert [edge["node"]["__typename"] for edge in edges[: -len(happened)]].count(
        "MemberJoined"
    ) == 3
    tail = edges[-len(happened) :]
    for edge, event in zip(tail, happened, strict=True):
        if event["__typename"] == "PlaybackChanged":
            assert edge["serverTime"] == event["playback"]["serverTime"]
            assert edge["mediaTime"] == event["playback"]["timestamp"]
        if event["__typename"] == "ChatMessageAdded":
            assert edge["mediaTime"] == event["message"]["mediaTime"]
        if event["__typename"] == "ReactionAdded":
            assert edge["mediaTime"] == event["reaction"]["mediaTime"]
    assert tail[3]["node"]["reaction"]["emoji"] == "❤️"


async def whole_log(http: httpx.AsyncClient, room: Room) -> list[dict[str, Any]]:
    """Every edge of the party's log, five at a time."""
    edges: list[dict[str, Any]] = []
    after = None
    while True:
        data = await ok(http, LOG, {"id": room.id, "first": 5, "after": after}, room.host)
        connection = data["party"]["events"]
        edges += connection["edges"]
        if not connection["pageInfo"]["hasNextPage"]:
            assert connection["totalCount"] == len(edges)
            return edges
        after = connection["pageInfo"]["endCursor"]


async def test_kicked_members_are_refused_and_an_ended_party_keeps_its_history(
    server: LiveServer, http: httpx.AsyncClient
) -> None:
    room = await make_room(server, http)
    said = await say(http, room, room.guest, "before the kick")
    await ok(http, KICK, {"partyId": room.id, "memberId": room.guest_id}, room.host)
    for query, variables in (
        (SEND, {"partyId": room.id, "body": "again"}),
        (REACT, {"partyId": room.id, "emoji": "👍"}),
        (DELETE, {"id": said["id"]}),
        (MESSAGES, {"id": room.id}),
        (LOG, {"id": room.id}),
    ):
        assert await errors_of(http, query, variables, room.guest) == ["FORBIDDEN"], query
    await ok(http, END, {"partyId": room.id}, room.host)
    assert await errors_of(http, SEND, {"partyId": room.id, "body": "late"}, room.member) == [
        "PARTY_ENDED"
    ]
    history = (await ok(http, MESSAGES, {"id": room.id}, room.member))["party"]["messages"]
    assert [edge["node"]["body"] for edge in history["edges"]] == ["before the kick"]
    log = (await ok(http, LOG, {"id": room.id, "first": 100}, room.member))["party"]["events"]
    assert log["edges"][-1]["node"] == {"__typename": "PartyEnded", "partyId": room.id}
