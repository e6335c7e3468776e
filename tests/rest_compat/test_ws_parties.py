"""Watch parties on `/ws`: snapshot first, every event once and in order, the barrier, presence.

The party is made through its resolvers (the HTTP faces have their own tests); everything a
member sees goes through a real server and real sockets.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from config import Settings
from models.parties import PartyControl
from resolvers import parties
from resolvers.auth import Caller, identify
from resolvers.services import Services
from tests.factories import make_user, make_videos
from tests.live import LiveServer, live_server, receive_json

pytestmark = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    fast = {"party_ready_timeout_s": 2.0, "party_ping_interval_s": 0.2, "party_ping_timeout_s": 0.4}
    async with live_server(settings.model_copy(update=fast)) as live:
        yield live


@dataclass
class Member:
    name: str
    token: str
    member_id: str


@dataclass
class Party:
    id: str
    host: Member
    member: Member
    guest: Member


async def make_party(services: Services, control: str = PartyControl.HOST) -> Party:
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=120.0)
    live = await parties.create_party(
        runtime=services.parties,
        hashing=services.hashing,
        user=host.user,
        video_id=video.id,
        control=control,
    )
    account = await make_user(services)
    people = []
    for caller, name in (
        (Caller(user=host.user), None),
        (Caller(user=account.user), None),
        (Caller(), "Gus"),
    ):
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
        people.append(Member(joined.member.name, joined.member_token, joined.member.id))
    return Party(live.id, *people)


@asynccontextmanager
async def member_socket(server: LiveServer, member: Member, party_id: str) -> AsyncIterator[Any]:
    async with connect(f"{server.ws_url}/ws?token={member.token}") as conn:
        await conn.send(json.dumps({"type": "party:subscribe", "party_id": party_id}))
        snapshot = await receive_json(conn)
        assert snapshot["type"] == "party:snapshot", snapshot
        yield conn


async def next_of(
    conn: ClientConnection, kind: str, member: str | None = None, **match: Any
) -> dict[str, Any]:
    """The next frame of `kind` whose fields match (and about `member`, if given)."""
    while True:
        frame = await receive_json(conn)
        if frame["type"] != kind or any(frame.get(k) != v for k, v in match.items()):
            continue
        if member is None or frame.get("member", {}).get("id") == member:
            return frame


async def send(conn: ClientConnection, **message: Any) -> None:
    await conn.send(json.dumps(message))


async def test_a_guest_may_not_seek_a_host_party_and_the_barrier_starts_everyone_together(
    server: LiveServer,
) -> None:
    party = await make_party(server.services)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, party.member, party.id) as member,
        member_socket(server, party.guest, party.id) as guest,
    ):
        for conn in (host, member, guest):  # everyone reports a player: the barrier waits for them
            await send(conn, type="party:ready", party_id=party.id, state="READY", position=0)
        await send(guest, type="party:playback", party_id=party.id, timestamp=50, playing=True)
        refused = await next_of(guest, "error")
        assert refused["code"] == "FORBIDDEN" and refused["request"] == "party:playback"
        await send(host, type="party:playback", party_id=party.id, timestamp=30, playing=True)
        for conn in (host, member, guest):
            waiting = await next_of(conn, "party:playback", state="WAITING")
            assert waiting["timestamp"] == 30 and len(waiting["waiting_for"]) == 3
        for conn in (host, guest):
            await send(conn, type="party:ready", party_id=party.id, state="READY", position=30)
        await send(member, type="party:ready", party_id=party.id, state="BUFFERING", position=29)
        await send(member, type="party:ready", party_id=party.id, state="READY", position=30)
        starts = [
            await next_of(conn, "party:playback", state="PLAYING") for conn in (host, member, guest)
        ]
        assert {frame["effective_at"] for frame in starts} == {starts[0]["effective_at"]}
        assert starts[0]["effective_at"] > starts[0]["server_time"] - 1  # a start in the future
        assert all(frame["timestamp"] == 30 for frame in starts)
        # Playing: the guest's page says how far off it is; every member's list hears it.
        await send(
            guest, type="party:ready", party_id=party.id, state="READY", position=30, offset_ms=12
        )
        for conn in (host, member):
            updated = await next_of(conn, "party:member_updated", party.guest.member_id)
            while updated["member"]["offset_ms"] is None:  # the barrier's updates come first
                updated = await next_of(conn, "party:member_updated", party.guest.member_id)
            assert updated["member"]["offset_ms"] == 12.0
        await send(
            guest, type="party:ready", party_id=party.id, state="READY", position=30, offset_ms=-1
        )
        refused = await next_of(guest, "error", request="party:ready")
        assert refused["code"] == "BAD_USER_INPUT"


async def test_every_member_gets_every_event_once_in_order(server: LiveServer) -> None:
    party = await make_party(server.services, control=PartyControl.EVERYONE)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, party.member, party.id) as member,
    ):
        for position in range(1, 21):
            await send(
                member, type="party:playback", party_id=party.id, timestamp=position, playing=False
            )
        for conn in (host, member):
            versions: list[int] = []
            positions: list[float] = []
            while len(positions) < 20:
                frame = await receive_json(conn)
                versions.append(frame["seq"])
                if frame["type"] == "party:playback":
                    positions.append(frame["timestamp"])
            assert versions == sorted(set(versions)) and positions == list(range(1, 21))


async def test_a_kicked_member_gets_the_news_then_its_socket_closes(server: LiveServer) -> None:
    party = await make_party(server.services)
    async with (
        member_socket(server, party.host, party.id) as host,
        member_socket(server, party.guest, party.id) as guest,
    ):
        services = server.services
        host_caller = await identify(
            db=services.db, secret=services.jwt_secret, token=party.host.token
        )
        await parties.kick_member(
            runtime=services.parties,
            caller=host_caller,
            party_id=party.id,
            member_id=party.guest.member_id,
        )
        left = await next_of(guest, "party:member_left")
        assert left["kicked"] and left["member"]["id"] == party.guest.member_id
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(guest)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        seen = await next_of(host, "party:member_left", member=party.guest.member_id)
        assert seen["kicked"]
    async with connect(f"{server.ws_url}/ws?token={party.guest.token}") as again:
        await send(again, type="party:subscribe", party_id=party.id)
        assert (await receive_json(again))["code"] == "FORBIDDEN"


async def test_a_member_whose_tab_vanished_is_announced_gone_by_the_heartbeat(
    server: LiveServer,
) -> None:
    party = await make_party(server.services)
    port = int(server.url.rsplit(":", 1)[1])
    async with member_socket(server, party.host, party.id) as host:
        # A client that stops answering without a close frame: its reads stop (no pong ever).
        sock = socket.create_connection(("127.0.0.1", port))
        quiet = await connect(f"{server.ws_url}/ws?token={party.guest.token}", sock=sock)
        await send(quiet, type="party:subscribe", party_id=party.id)
        assert (await receive_json(quiet))["type"] == "party:snapshot"
        online = await next_of(host, "party:member_updated", member=party.guest.member_id)
        assert online["member"]["online"]
        quiet.transport.pause_reading()  # type: ignore[attr-defined]
        gone = await next_of(host, "party:member_left", member=party.guest.member_id)
        assert not gone["member"]["online"] and not gone["kicked"]
        quiet.transport.abort()  # type: ignore[attr-defined]
        members = (await server.services.parties.get(party.id)).members
        assert not members[party.guest.member_id].online
