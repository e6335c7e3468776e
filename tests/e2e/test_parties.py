"""Watch parties end to end, on both databases: issue 13's "Tests" with real parts.

Real uvicorn servers (shared by the module's tests, one set per database) and real socket
clients: three members — the host and a member with accounts on `/ws`, a guest on a GraphQL
`partyEvents` socket — while calls go over HTTP (REST and GraphQL). Nothing waits by sleeping:
each step awaits the event that shows it happened. The two-process (Redis) scenario is
`tests/e2e/test_parties_redis.py`.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from config import Settings
from tests.conftest import TEST_SECRET, empty_pg_database
from tests.factories import error_code, gql, make_user, make_videos
from tests.live import (
    GraphQLClient,
    LiveServer,
    graphql_client,
    live_server,
    receive_json,
    ws_client,
)
from tests.parties import (
    EVENTS,
    JOIN,
    PARTY_BY,
    REPORT,
    SEEK,
    SETTINGS_BY,
    GraphQLFollower,
    WsFollower,
    ok,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

#: Heartbeats quick enough to notice a vanished socket at once; a ready timeout no test
#: reaches on `server` (the barrier is released by the members there).
BASE = {
    "party_ready_timeout_s": 60.0,
    "party_ping_interval_s": 0.2,
    "party_ping_timeout_s": 0.4,
    "rate_limit_party_join": "10000/minute",
    "rate_limit_player_state": "10000/minute",
}
#: The ready timeout of `quick`: small, so a silent member is left behind soon; long enough
#: for the members who do answer (they report as soon as they see the change).
QUICK_TIMEOUT_S = 3.0
LEAVE = "mutation L($partyId: ID!) { leaveParty(partyId: $partyId) }"
KICK = """
mutation K($partyId: ID!, $memberId: ID!) { kickMember(partyId: $partyId, memberId: $memberId) }
"""
LISTED = "query P($videoId: ID!) { parties(videoId: $videoId) { id visibility } }"
UPDATE = """
mutation U($partyId: ID!, $visibility: PartyVisibility, $password: String) {
  updateParty(partyId: $partyId, visibility: $visibility, password: $password) { id visibility }
}
"""


# -- servers: one set per database, shared by the module's tests --------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def databases(
    backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], str]:
    """A database for each server: a fresh SQLite file each, or the session's PostgreSQL
    database emptied once for the module (its servers share it; each party lives on one)."""
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")

        def fresh_file() -> str:
            target = tmp_path_factory.mktemp("parties") / "cowatch.db"
            shutil.copy(template, target)
            return f"sqlite+aiosqlite:///{target}"

        return fresh_file
    url: str = request.getfixturevalue("pg_url")
    await empty_pg_database(url)
    return lambda: url


@asynccontextmanager
async def running(
    databases: Callable[[], str], root: Path, **update: Any
) -> AsyncIterator[LiveServer]:
    settings = Settings(
        data_dir=root / "data",
        database_url=databases(),
        jwt_secret=TEST_SECRET,
        public_url="http://party.test",
        **{**BASE, **update},
    )
    async with live_server(settings) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(
    databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    async with running(databases, tmp_path_factory.mktemp("server")) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def quick(
    databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """A server whose barrier gives up after QUICK_TIMEOUT_S."""
    root = tmp_path_factory.mktemp("quick")
    async with running(databases, root, party_ready_timeout_s=QUICK_TIMEOUT_S) as live:
        yield live


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(
    databases: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[LiveServer]:
    """A server with budgets small enough to exhaust in a test."""
    root = tmp_path_factory.mktemp("limited")
    budgets = {"rate_limit_party_join": "3/minute", "rate_limit_player_state": "2/minute"}
    async with running(databases, root, **budgets) as live:
        yield live


# -- a party of three and their sockets ------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Person:
    token: str
    member_id: str
    user_id: str | None


@dataclass
class Trio:
    id: str
    code: str
    video_id: str
    host: Person
    member: Person
    guest: Person


async def make_trio(server: LiveServer, http: httpx.AsyncClient, **body: Any) -> Trio:
    """A party (REST) with its host, a member with an account (REST) and a guest (GraphQL)."""
    services = server.services
    host = await make_user(services)
    friend = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=120.0)
    created = await http.post(
        "/api/parties", json={"video_id": video.id, **body}, headers=host.headers
    )
    assert created.status_code == 201, created.text
    party = created.json()
    password = body.get("password")
    joined = await http.post(
        "/api/parties/join",
        json={"code": party["code"], "password": password},
        headers=friend.headers,
    )
    assert joined.status_code == 200, joined.text
    variables = {"code": party["code"], "displayName": "Gus", "password": password}
    guest = (await ok(http, JOIN, variables))["joinParty"]
    return Trio(
        id=party["id"],
        code=party["code"],
        video_id=video.id,
        host=Person(host.token, party["host_member_id"], host.user.id),
        member=Person(friend.token, joined.json()["member"]["id"], friend.user.id),
        guest=Person(guest["memberToken"], guest["member"]["id"], None),
    )


@dataclass
class Sockets:
    host: WsFollower
    member: WsFollower
    guest: GraphQLFollower

    @property
    def all(self) -> tuple[WsFollower, WsFollower, GraphQLFollower]:
        return (self.host, self.member, self.guest)


@asynccontextmanager
async def follow(server: LiveServer, party: Trio) -> AsyncIterator[Sockets]:
    """The three members online: host and member on `/ws`, the guest on GraphQL."""
    async with (
        ws_client(server.ws_url, party.host.token) as host,
        ws_client(server.ws_url, party.member.token) as member,
        graphql_client(server.ws_url, party.guest.token) as guest,
    ):
        await host.party_subscribe(party.id)
        await member.party_subscribe(party.id)
        await guest.party_events("p", party.id)
        yield Sockets(
            WsFollower(host, party.id), WsFollower(member, party.id), GraphQLFollower(guest, "p")
        )


async def report(
    http: httpx.AsyncClient, party: Trio, who: Person, state: str, position: float
) -> dict[str, Any]:
    """`reportPlayerState` over HTTP (the guest's way: its socket is a GraphQL one)."""
    variables = {"partyId": party.id, "state": state, "position": position}
    member: dict[str, Any] = (await ok(http, REPORT, variables, who.token))["reportPlayerState"]
    return member


async def all_ready(
    http: httpx.AsyncClient, party: Trio, sockets: Sockets, position: float
) -> None:
    """Everyone reports READY at `position` (so the barrier waits for everyone); the host has
    seen all three online and READY when this returns."""
    await sockets.host.ready("READY", position)
    await sockets.member.ready("READY", position)
    await report(http, party, party.guest, "READY", position)
    ids = (party.host.member_id, party.member.member_id, party.guest.member_id)
    await sockets.host.members("updated", ids, player="READY", online=True, position=position)


async def party_as(http: httpx.AsyncClient, party: Trio, who: Person) -> dict[str, Any]:
    response = await http.get(f"/api/parties/{party.id}", headers=bearer(who.token))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@asynccontextmanager
async def http_to(server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        yield http


# -- the playhead ----------------------------------------------------------------------------


async def test_a_guests_seek_in_a_host_party_is_refused_and_changes_nothing(
    server: LiveServer,
) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http, control="HOST")
        async with follow(server, party) as sockets:
            before = (await party_as(http, party, party.host))["playback"]
            # The guest tries every face: GraphQL, REST and its own `/ws` socket.
            variables = {"partyId": party.id, "t": 50, "playing": True}
            refused = await gql(http, SEEK, variables, token=party.guest.token)
            assert error_code(refused) == "FORBIDDEN"
            put = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 50, "playing": True},
                headers=bearer(party.guest.token),
            )
            assert (put.status_code, put.json()["error"]["code"]) == (403, "FORBIDDEN")
            async with ws_client(server.ws_url, party.guest.token) as guest_ws:
                await guest_ws.send(
                    {"type": "party:playback", "party_id": party.id, "timestamp": 50}
                )
                frame = await guest_ws.next_of("error")
                assert (frame["code"], frame["request"]) == ("FORBIDDEN", "party:playback")
            # A member without a role may not either.
            by_member = await gql(http, SEEK, variables, token=party.member.token)
            assert error_code(by_member) == "FORBIDDEN"
            assert (await party_as(http, party, party.host))["playback"] == before
            # Nothing reached anyone: the next change each socket sees is the host's pause.
            moved = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 7, "playing": False},
                headers=bearer(party.host.token),
            )
            assert moved.status_code == 201, moved.text
            for follower in sockets.all:
                seen = await follower.playback()
                assert (seen["version"], seen["timestamp"]) == (before["version"] + 1, 7)
                assert seen["member_id"] == party.host.member_id


async def test_a_members_seek_in_an_everyone_party_reaches_all(server: LiveServer) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http, control="EVERYONE")
        async with follow(server, party) as sockets:
            await sockets.member.client.send(
                {"type": "party:playback", "party_id": party.id, "timestamp": 42, "playing": False}
            )
            seen = [await follower.playback() for follower in sockets.all]
            assert {(s["version"], s["timestamp"], s["state"]) for s in seen} == {(1, 42, "PAUSED")}
            assert {(s["member_id"], s["user_id"]) for s in seen} == {
                (party.member.member_id, party.member.user_id)
            }
            # The guest may move it too in such a party (over GraphQL): everyone hears it.
            variables = {"partyId": party.id, "t": 12.5, "playing": False}
            moved = (await ok(http, SEEK, variables, party.guest.token))["setPartyPlayback"]
            assert moved["memberId"] == party.guest.member_id and moved["userId"] is None
            for follower in sockets.all:
                seen_again = await follower.playback()
                assert (seen_again["version"], seen_again["timestamp"]) == (2, 12.5)


async def test_the_barrier_holds_for_a_buffering_member_then_everyone_starts_together(
    server: LiveServer,
) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        async with follow(server, party) as sockets:
            await all_ready(http, party, sockets, 0)
            seek = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 30, "playing": True},
                headers=bearer(party.host.token),
            )
            assert seek.status_code == 201 and seek.json()["state"] == "WAITING"
            everyone = {party.host.member_id, party.member.member_id, party.guest.member_id}
            for follower in sockets.all:
                waiting = await follower.playback()
                assert (waiting["state"], waiting["timestamp"]) == ("WAITING", 30)
                assert set(waiting["waiting_for"]) == everyone and waiting["effective_at"] is None
            await sockets.member.ready("BUFFERING", 29)
            await sockets.host.member("updated", party.member.member_id, player="BUFFERING")
            await sockets.host.ready("READY", 30)
            await report(http, party, party.guest, "READY", 30)
            # All three reports are in (the host saw them), and the party still waits.
            await sockets.host.members(
                "updated",
                [party.host.member_id, party.guest.member_id],
                player="READY",
                position=30,
            )
            held_party = await party_as(http, party, party.host)
            players = {m["id"]: m["player"] for m in held_party["members"]}
            assert players[party.member.member_id] == "BUFFERING"
            held = held_party["playback"]
            assert held["state"] == "WAITING"
            assert [m["id"] for m in held["waiting_for"]] == [party.member.member_id]
            sent = time.time() * 1000
            await sockets.member.ready("READY", 30)
            released = await sockets.host.member(
                "updated", party.member.member_id, player="READY", position=30
            )
            starts = [await follower.playback() for follower in sockets.all]
            # The very next change everyone sees is the start, right after the last READY.
            assert starts[0]["seq"] == released["frame"]["seq"] + 1
            assert {(s["state"], s["playing"], s["timestamp"]) for s in starts} == {
                ("PLAYING", True, 30)
            }
            assert len({s["effective_at"] for s in starts}) == 1
            effective_at = starts[0]["effective_at"]
            # In the future of the moment the barrier was released, on the server's clock.
            assert effective_at > released["frame"]["server_time"] and effective_at > sent
            assert all(s["waiting_for"] == [] for s in starts)


async def test_a_silent_member_is_left_behind_after_the_ready_timeout(
    quick: LiveServer,
) -> None:
    async with http_to(quick) as http:
        party = await make_trio(quick, http)
        async with follow(quick, party) as sockets:
            await all_ready(http, party, sockets, 0)
            seek = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 30, "playing": True},
                headers=bearer(party.host.token),
            )
            assert seek.json()["state"] == "WAITING"
            for follower in (sockets.host, sockets.guest):
                assert (await follower.playback())["state"] == "WAITING"
            await sockets.host.ready("READY", 30)
            await report(http, party, party.guest, "READY", 30)
            # The member says nothing: after the timeout it is marked BUFFERING and left behind.
            for follower in sockets.all:
                behind = await follower.member(
                    "updated", party.member.member_id, player="BUFFERING"
                )
                assert (behind["online"], behind["position"]) == (True, 0)
                start = await follower.playback()
                assert (start["state"], start["timestamp"], start["waiting_for"]) == (
                    "PLAYING",
                    30,
                    [],
                )
            after = await party_as(http, party, party.host)
            players = {m["id"]: m["player"] for m in after["members"]}
            assert players == {
                party.host.member_id: "READY",
                party.member.member_id: "BUFFERING",
                party.guest.member_id: "READY",
            }
            assert after["playback"]["state"] == "PLAYING"


# -- members: kicks, hand-over, presence --------------------------------------------------------


async def test_a_kicked_member_is_disconnected_and_cannot_rejoin(server: LiveServer) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        async with follow(server, party) as sockets:
            kicked = await http.delete(
                f"/api/parties/{party.id}/members/{party.member.member_id}",
                headers=bearer(party.host.token),
            )
            assert kicked.status_code == 204
            news = await sockets.member.member("left", party.member.member_id)
            assert (news["kicked"], news["gone"]) == (True, True)
            with pytest.raises(ConnectionClosed) as closed:
                await sockets.member.client.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
            for follower in (sockets.host, sockets.guest):
                assert (await follower.member("left", party.member.member_id))["kicked"] is True
            # The same account can neither join again nor listen again.
            again = await http.post(
                "/api/parties/join", json={"code": party.code}, headers=bearer(party.member.token)
            )
            assert (again.status_code, again.json()["error"]["code"]) == (403, "FORBIDDEN")
            rejoin = await gql(http, JOIN, {"code": party.code}, token=party.member.token)
            assert error_code(rejoin) == "FORBIDDEN"
            async with ws_client(server.ws_url, party.member.token) as retry:
                await retry.send({"type": "party:subscribe", "party_id": party.id})
                assert (await retry.next_of("error"))["code"] == "FORBIDDEN"
            # The guest, kicked over GraphQL: its subscription ends with its own MemberLeft,
            # and its member token no longer joins.
            kick = {"partyId": party.id, "memberId": party.guest.member_id}
            assert (await ok(http, KICK, kick, party.host.token))["kickMember"] is True
            gone = await sockets.guest.member("left", party.guest.member_id)
            assert gone["kicked"] is True
            done = await sockets.guest.client.next_message()
            assert done == {"id": "p", "type": "complete"}
            token_again = await gql(http, JOIN, {"code": party.code}, token=party.guest.token)
            assert error_code(token_again) == "FORBIDDEN"
            members = (await party_as(http, party, party.host))["members"]
            assert [m["id"] for m in members] == [party.host.member_id]


async def test_the_host_leaving_hands_the_party_over(server: LiveServer) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        async with follow(server, party) as sockets:
            assert (await ok(http, LEAVE, {"partyId": party.id}, party.host.token))["leaveParty"]
            for follower in (sockets.member, sockets.guest):
                left = await follower.member("left", party.host.member_id)
                assert (left["kicked"], left["gone"]) == (False, True)
                # The member with an account (the guest has none) is the host now.
                promoted = await follower.member("updated", party.member.member_id)
                assert promoted["role"] == "HOST"
            after = await party_as(http, party, party.member)
            assert (after["host_member_id"], after["host_user_id"]) == (
                party.member.member_id,
                party.member.user_id,
            )
            roles = {m["id"]: m["role"] for m in after["members"]}
            assert roles == {party.member.member_id: "HOST", party.guest.member_id: "GUEST"}
            # The new host controls the playhead of this HOST party; the old one is out.
            moved = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 5},
                headers=bearer(party.member.token),
            )
            assert moved.status_code == 201, moved.text
            assert (await sockets.guest.playback())["member_id"] == party.member.member_id
            old = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 6},
                headers=bearer(party.host.token),
            )
            assert (old.status_code, old.json()["error"]["code"]) == (403, "FORBIDDEN")


async def test_a_leaving_host_hands_over_to_a_cohost_with_an_account_first(
    server: LiveServer,
) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        late = await make_user(server.services)
        joined = await http.post(
            "/api/parties/join", json={"code": party.code}, headers=late.headers
        )
        assert joined.status_code == 200, joined.text
        late_id = joined.json()["member"]["id"]
        # The guest and the last to join are cohosts; the member joined before both.
        for member_id in (party.guest.member_id, late_id):
            role = await http.put(
                f"/api/parties/{party.id}/members/{member_id}/role",
                json={"role": "COHOST"},
                headers=bearer(party.host.token),
            )
            assert role.status_code == 200, role.text
        async with follow(server, party) as sockets, ws_client(server.ws_url, late.token) as ws:
            await ws.party_subscribe(party.id)
            await sockets.member.member("updated", late_id, online=True)
            await ok(http, LEAVE, {"partyId": party.id}, party.host.token)
            # The cohost with an account takes over (a guest is never host), though the
            # member has been there longer.
            for follower in sockets.member, sockets.guest:
                await follower.member("left", party.host.member_id)
                assert (await follower.member("updated", late_id))["role"] == "HOST"
            roles = {
                m["id"]: m["role"] for m in (await party_as(http, party, party.member))["members"]
            }
            assert roles == {
                party.member.member_id: "MEMBER",
                party.guest.member_id: "COHOST",
                late_id: "HOST",
            }
            # When that host leaves too, the member with an account is next, not the guest.
            await ok(http, LEAVE, {"partyId": party.id}, late.token)
            for follower in sockets.member, sockets.guest:
                await follower.member("left", late_id)
                assert (await follower.member("updated", party.member.member_id))["role"] == "HOST"
            after = await party_as(http, party, party.guest)
            assert (after["host_member_id"], after["host_user_id"]) == (
                party.member.member_id,
                party.member.user_id,
            )


async def test_presence_follows_sockets_that_die_without_a_close_frame(
    server: LiveServer,
) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        port = int(server.url.rsplit(":", 1)[1])
        async with ws_client(server.ws_url, party.host.token) as host_ws:
            host = WsFollower(host_ws, party.id)
            await host_ws.party_subscribe(party.id)
            # The member's `/ws` socket: its TCP connection is torn down under it, no close frame.
            conn = await connect(
                f"{server.ws_url}/ws", additional_headers=bearer(party.member.token)
            )
            await conn.send(json.dumps({"type": "party:subscribe", "party_id": party.id}))
            assert (await receive_json(conn))["type"] == "party:snapshot"
            await host.member("updated", party.member.member_id, online=True)
            conn.transport.abort()
            gone = await host.member("left", party.member.member_id)
            assert (gone["online"], gone["kicked"], gone["gone"]) == (False, False, False)
            # The guest's GraphQL socket goes quiet (a tab that vanished: no pong, no FIN).
            sock = socket.create_connection(("127.0.0.1", port))
            quiet = await connect(
                f"{server.ws_url}/graphql",
                sock=sock,
                subprotocols=[Subprotocol("graphql-transport-ws")],
            )
            guest = GraphQLClient(quiet, legacy=False)
            init = {"type": "connection_init", "payload": bearer(party.guest.token)}
            await quiet.send(json.dumps(init))
            assert (await receive_json(quiet))["type"] == "connection_ack"
            await guest.party_events("p", party.id)
            await host.member("updated", party.guest.member_id, online=True)
            quiet.transport.pause_reading()
            silent = await host.member("left", party.guest.member_id)
            assert (silent["online"], silent["kicked"], silent["gone"]) == (False, False, False)
            quiet.transport.abort()
            # `Party.members` tells the truth: both stay members, offline.
            members = {m["id"]: m for m in (await party_as(http, party, party.host))["members"]}
            assert set(members) == {
                party.host.member_id,
                party.member.member_id,
                party.guest.member_id,
            }
            online = {member_id: m["online"] for member_id, m in members.items()}
            assert online == {
                party.host.member_id: True,
                party.member.member_id: False,
                party.guest.member_id: False,
            }
            # A member who comes back is online again.
            async with ws_client(server.ws_url, party.member.token) as back:
                await back.party_subscribe(party.id)
                await host.member("updated", party.member.member_id, online=True)
                members = (await party_as(http, party, party.host))["members"]
                assert {m["id"] for m in members if m["online"]} == {
                    party.host.member_id,
                    party.member.member_id,
                }


async def test_a_buffering_member_whose_socket_dies_no_longer_holds_the_barrier(
    server: LiveServer,
) -> None:
    """On `server` the ready timeout is a minute: only the member's going offline can release
    the barrier within the test's receive timeout."""
    async with http_to(server) as http:
        party = await make_trio(server, http)
        async with follow(server, party) as sockets:
            await all_ready(http, party, sockets, 0)
            seek = await http.put(
                f"/api/parties/{party.id}/time",
                json={"timestamp": 30, "playing": True},
                headers=bearer(party.host.token),
            )
            assert seek.json()["state"] == "WAITING"
            await sockets.member.ready("BUFFERING", 3)
            await sockets.host.member("updated", party.member.member_id, player="BUFFERING")
            await sockets.host.ready("READY", 30)
            await report(http, party, party.guest, "READY", 30)
            await sockets.host.members(
                "updated",
                [party.host.member_id, party.guest.member_id],
                player="READY",
                position=30,
            )
            sockets.member.client.conn.transport.abort()
            for follower in (sockets.host, sockets.guest):
                gone = await follower.member("left", party.member.member_id)
                assert gone["online"] is False
                start = await follower.playback()
                assert (start["state"], start["timestamp"], start["waiting_for"]) == (
                    "PLAYING",
                    30,
                    [],
                )


# -- who sees what, and refusals -------------------------------------------------------------


async def test_private_parties_never_appear_in_the_parties_of_a_video(server: LiveServer) -> None:
    async with http_to(server) as http:
        private = await make_trio(server, http, visibility="PRIVATE", password="s3cret!")
        host = bearer(private.host.token)
        made = {}
        for visibility in ("PUBLIC", "UNLISTED", "PRIVATE"):
            body = {"video_id": private.video_id, "visibility": visibility}
            if visibility == "PRIVATE":
                body["password"] = "s3cret!"
            created = await http.post("/api/parties", json=body, headers=host)
            assert created.status_code == 201, created.text
            made[visibility] = created.json()["id"]
        stranger = await make_user(server.services)
        askers = (None, stranger.token, private.host.token, private.member.token)
        async with follow(server, private):  # its members online: a party in full swing
            for token in (*askers, private.guest.token):
                listed = await ok(http, LISTED, {"videoId": private.video_id}, token)
                assert listed["parties"] == [{"id": made["PUBLIC"], "visibility": "PUBLIC"}]
            # The PUBLIC party turned PRIVATE leaves the list at once, for everyone.
            hide = {"partyId": made["PUBLIC"], "visibility": "PRIVATE", "password": "s3cret!"}
            assert (await ok(http, UPDATE, hide, private.host.token))["updateParty"] == {
                "id": made["PUBLIC"],
                "visibility": "PRIVATE",
            }
            for token in askers:
                assert (await ok(http, LISTED, {"videoId": private.video_id}, token)) == {
                    "parties": []
                }
            # And a PRIVATE one made PUBLIC is listed (the list is not simply empty).
            show = {"partyId": private.id, "visibility": "PUBLIC"}
            await ok(http, UPDATE, show, private.host.token)
            listed = await ok(http, LISTED, {"videoId": private.video_id}, stranger.token)
            assert listed["parties"] == [{"id": private.id, "visibility": "PUBLIC"}]


async def test_a_member_token_is_refused_by_another_partys_every_face(server: LiveServer) -> None:
    async with http_to(server) as http:
        party = await make_trio(server, http)
        other = await make_trio(server, http)
        foreign = other.guest.token  # a member token of `other`, used for `party`
        got = await http.get(f"/api/parties/{party.id}", headers=bearer(foreign))
        assert (got.status_code, got.json()["error"]["code"]) == (403, "FORBIDDEN")
        put = await http.put(
            f"/api/parties/{party.id}/time", json={"timestamp": 1}, headers=bearer(foreign)
        )
        assert (put.status_code, put.json()["error"]["code"]) == (403, "FORBIDDEN")
        ready = await http.post(
            f"/api/parties/{party.id}/ready",
            json={"state": "READY", "position": 0},
            headers=bearer(foreign),
        )
        assert (ready.status_code, ready.json()["error"]["code"]) == (403, "FORBIDDEN")
        joined = await http.post(
            "/api/parties/join", json={"code": party.code}, headers=bearer(foreign)
        )
        assert (joined.status_code, joined.json()["error"]["code"]) == (403, "FORBIDDEN")
        for query, variables in (
            (SEEK, {"partyId": party.id, "t": 1}),
            (REPORT, {"partyId": party.id, "state": "READY", "position": 0}),
            (PARTY_BY, {"id": party.id}),
            (JOIN, {"code": party.code}),
        ):
            assert error_code(await gql(http, query, variables, token=foreign)) == "FORBIDDEN"
        async with ws_client(server.ws_url, foreign) as ws:
            await ws.send({"type": "party:subscribe", "party_id": party.id})
            assert (await ws.next_of("error"))["code"] == "FORBIDDEN"
            await ws.party_ready(party.id, "READY", 0)
            refused = await ws.next_of("error")
            assert (refused["code"], refused["request"]) == ("FORBIDDEN", "party:ready")
        async with graphql_client(server.ws_url, foreign) as sub:
            await sub.start("x", EVENTS, {"partyId": party.id})
            message = await sub.next_message()
            assert message["payload"]["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        # Its own party still takes it.
        assert (await party_as(http, other, other.guest))["id"] == other.id


async def test_a_private_party_answers_outsiders_as_if_it_did_not_exist(
    server: LiveServer,
) -> None:
    async with http_to(server) as http:
        private = await make_trio(server, http, visibility="PRIVATE", password="s3cret!")
        other = await make_trio(server, http)
        stranger = await make_user(server.services)
        unknown_code, unknown_id = "no-such-code", str(uuid.uuid4())
        for token in (None, stranger.token, other.guest.token):
            headers = bearer(token) if token else {}
            by_code = [
                await gql(http, SETTINGS_BY, {"code": code}, token=token)
                for code in (unknown_code, private.code)
            ]
            assert by_code[0] == by_code[1] == {"data": {"party": None}}
            by_id = [
                await gql(http, SETTINGS_BY, {"id": party_id}, token=token)
                for party_id in (unknown_id, private.id)
            ]
            assert by_id[0] == by_id[1] == {"data": {"party": None}}
            rest = [
                await http.get(f"/api/parties/{party_id}", headers=headers)
                for party_id in (unknown_id, private.id)
            ]
            assert rest[0].status_code == rest[1].status_code == 404
            errors = [response.json()["error"] for response in rest]
            for error in errors:  # each answer's own id, for the logs
                assert error.pop("request_id")
            assert errors[0] == errors[1] == {"code": "NOT_FOUND", "message": "party not found"}
            assert rest[0].headers["content-type"] == rest[1].headers["content-type"]
        # Its members see it.
        assert (await party_as(http, private, private.guest))["visibility"] == "PRIVATE"


async def test_joins_are_limited_per_address_and_reports_per_member(limited: LiveServer) -> None:
    async with http_to(limited) as http:
        party = await make_trio(limited, http)  # from 127.0.0.1: another address's budget
        one, two = {"X-Forwarded-For": "198.51.100.7"}, {"X-Forwarded-For": "198.51.100.8"}
        # Guessing codes spends the address's budget as joining does.
        for code in ("guess-1", "guess-2"):
            guess = await http.post(
                "/api/parties/join", json={"code": code, "display_name": "Eve"}, headers=one
            )
            assert guess.status_code == 404
        last = await http.post(
            "/api/parties/join", json={"code": party.code, "display_name": "Eve"}, headers=one
        )
        assert last.status_code == 200, last.text
        limited_rest = await http.post(
            "/api/parties/join", json={"code": party.code, "display_name": "Eve"}, headers=one
        )
        assert (limited_rest.status_code, limited_rest.json()["error"]["code"]) == (
            429,
            "RATE_LIMITED",
        )
        assert int(limited_rest.headers["retry-after"]) >= 1
        body = {"query": JOIN, "variables": {"code": party.code, "displayName": "Eve"}}
        limited_gql = (await http.post("/graphql", json=body, headers=one)).json()
        assert error_code(limited_gql) == "RATE_LIMITED"
        # Another address is not held back.
        other = await http.post(
            "/api/parties/join", json={"code": party.code, "display_name": "Zed"}, headers=two
        )
        assert other.status_code == 200, other.text

        # Player reports: two per member here, on any face.
        async with ws_client(limited.ws_url, party.host.token) as ws:
            host = WsFollower(ws, party.id)
            await ws.party_subscribe(party.id)
            await host.ready("READY", 1)
            await host.member("updated", party.host.member_id, player="READY")
            await host.ready("BUFFERING", 2)
            await host.member("updated", party.host.member_id, player="BUFFERING")
            await host.ready("READY", 3)
            refused = await ws.next_of("error")
            assert (refused["code"], refused["request"]) == ("RATE_LIMITED", "party:ready")
        ready_url = f"/api/parties/{party.id}/ready"
        report_body = {"state": "READY", "position": 4}
        again = await http.post(ready_url, json=report_body, headers=bearer(party.host.token))
        assert (again.status_code, again.json()["error"]["code"]) == (429, "RATE_LIMITED")
        assert int(again.headers["retry-after"]) >= 1
        variables = {"partyId": party.id, "state": "READY", "position": 4}
        assert error_code(await gql(http, REPORT, variables, party.host.token)) == "RATE_LIMITED"
        # Another member of the same party is not held back.
        member = await http.post(ready_url, json=report_body, headers=bearer(party.member.token))
        assert member.status_code == 200 and member.json()["player"] == "READY"
        host_now = next(
            m
            for m in (await party_as(http, party, party.member))["members"]
            if m["id"] == party.host.member_id
        )
        assert (host_now["player"], host_now["position"]) == ("BUFFERING", 2)  # nothing changed
