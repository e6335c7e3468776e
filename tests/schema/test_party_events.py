"""`partyEvents` over a real GraphQL socket on a real server, on both databases: the snapshot
first, then every event of the party in order, each as its union member; outsiders refused."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from config import Settings
from tests.factories import make_user, make_videos
from tests.live import RECEIVE_TIMEOUT_S, GraphQLClient, graphql_client, live_server
from tests.parties import EVENTS, SEEK, create, join, ok

KICK = """
mutation K($partyId: ID!, $memberId: ID!) { kickMember(partyId: $partyId, memberId: $memberId) }
"""
RENAME = 'mutation U($partyId: ID!) { updateParty(partyId: $partyId, name: "Renamed") { id } }'
END = "mutation E($partyId: ID!) { endParty(partyId: $partyId) { id } }"


async def test_party_events_start_with_a_snapshot_then_follow_the_party(
    settings: Settings,
) -> None:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        services = server.services
        host = await make_user(services)
        (video,) = await make_videos(services, host.user, 1)
        party = await create(http, host.token, video.id)
        pid = party["id"]
        async with graphql_client(server.ws_url, host.token) as socket:
            await socket.start("p", EVENTS, {"partyId": pid})
            first = await socket.next_data("p", "partyEvents")
            assert first["__typename"] == "PartySnapshot"
            snapshot = first["party"]
            assert (snapshot["id"], snapshot["name"], snapshot["state"]) == (
                pid,
                party["name"],
                "PAUSED",
            )
            assert [m["role"] for m in snapshot["members"]] == ["HOST"]
            assert snapshot["inviteUrl"] == f"http://testserver/p/{party['code']}"

            async def next_event() -> dict[str, Any]:
                return await socket.next_data("p", "partyEvents")

            online = await next_event()  # the subscription makes its member online
            assert online["__typename"] == "MemberUpdated"
            assert (online["member"]["role"], online["member"]["online"]) == ("HOST", True)
            guest = await join(http, party["code"], displayName="Guest")
            joined = await next_event()
            assert joined["__typename"] == "MemberJoined"
            assert joined["member"]["id"] == guest["member"]["id"]
            assert joined["member"]["role"] == "GUEST" and joined["member"]["user"] is None
            seek = await ok(http, SEEK, {"partyId": pid, "t": 12.5}, host.token)
            changed = await next_event()
            assert changed == {
                "__typename": "PlaybackChanged",
                "playback": seek["setPartyPlayback"],
            }
            await ok(http, KICK, {"partyId": pid, "memberId": guest["member"]["id"]}, host.token)
            left = await next_event()
            assert (left["__typename"], left["kicked"]) == ("MemberLeft", True)
            assert left["member"]["id"] == guest["member"]["id"]
            await ok(http, RENAME, {"partyId": pid}, host.token)
            renamed = await next_event()
            assert renamed["__typename"] == "PartySnapshot"
            assert renamed["party"]["name"] == "Renamed"
            await ok(http, END, {"partyId": pid}, host.token)
            assert await next_event() == {"__typename": "PartyEnded", "partyId": pid}
            done = await socket.next_message()
            assert done == {"id": "p", "type": "complete"}  # PartyEnded is the last event


async def _refusal(socket: GraphQLClient, op_id: str) -> str:
    """The error code an operation was refused with (then it completes)."""
    message = await socket.next_message()
    assert (message["id"], message["type"]) == (op_id, "next"), message
    assert message["payload"]["data"] is None
    code: str = message["payload"]["errors"][0]["extensions"]["code"]
    assert await socket.next_message() == {"id": op_id, "type": "complete"}
    return code


async def test_outsiders_cannot_follow_a_party(settings: Settings) -> None:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        services = server.services
        host = await make_user(services)
        stranger = await make_user(services)
        (video,) = await make_videos(services, host.user, 1)
        party = await create(http, host.token, video.id)
        async with graphql_client(server.ws_url, stranger.token) as socket:
            await socket.start("p", EVENTS, {"partyId": party["id"]})
            assert await _refusal(socket, "p") == "FORBIDDEN"
            await socket.start("q", EVENTS, {"partyId": "no-such-party"})
            assert await _refusal(socket, "q") == "NOT_FOUND"
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            await services.bus.idle.wait()  # nothing left subscribed
