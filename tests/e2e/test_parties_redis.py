"""Watch parties across processes: two `cowatch serve` on one PostgreSQL and one Redis.

Members joined through either process, with sockets on either, are one party: each process's
`Party.members` shows every member and who is online anywhere, a change made through one
process reaches the sockets of the other, and the ready barrier counts READY reports from both
before everyone starts at one instant. A process that dies takes its members' presence with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import asyncio as aioredis
from websockets.exceptions import ConnectionClosed

from tests.conftest import REDIS_URL
from tests.live import RECEIVE_TIMEOUT_S, graphql_client, start_servers, wait_for, ws_client
from tests.parties import JOIN, REPORT, GraphQLFollower, WsFollower, ok
from tests.servers import (
    Server,
    broadcast_ready,
    cowatch_serve,
    production_env,
    sign_up,
    transcoded_video_row,
)


def server_env(pg_url: str, data_dir: Path) -> dict[str, str]:
    return production_env(
        pg_url,
        data_dir,
        # Limits are tested in-process.
        COWATCH_RATE_LIMIT_ENABLED="false",
        # The barrier is released by the members here, never by its timeout.
        COWATCH_PARTY_READY_TIMEOUT_S="60",
        COWATCH_PARTY_PING_INTERVAL_S="0.2",
        COWATCH_PARTY_PING_TIMEOUT_S="0.4",
    )


@pytest.fixture(scope="module")
def env(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return server_env(pg_url, tmp_path_factory.mktemp("parties-redis") / "data")


@pytest.fixture(scope="module")
def servers(
    env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Server]]:
    """Processes A and B, shared by the module's tests."""
    with ExitStack() as stack:
        both = start_servers(stack, 2, env, tmp_path_factory.mktemp("logs"))
        for server in both:
            wait_for(partial(broadcast_ready, server), f"{server.url} broadcast ready")
        yield both


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def members_seen(http: httpx.AsyncClient, party_id: str, token: str) -> dict[str, Any]:
    """`Party.members` as a process tells it: member id → (role, online)."""
    response = await http.get(f"/api/parties/{party_id}", headers=bearer(token))
    assert response.status_code == 200, response.text
    return {m["id"]: (m["role"], m["online"]) for m in response.json()["members"]}


async def test_two_processes_share_members_and_playhead(servers: list[Server], pg_url: str) -> None:
    a, b = servers
    host_user, host_token = await sign_up(a)
    _friend_user, friend_token = await sign_up(b)
    video_id = await transcoded_video_row(pg_url, host_user, "party across processes")
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as http_b,
    ):
        created = await http_a.post(
            "/api/parties", json={"video_id": video_id}, headers=bearer(host_token)
        )
        assert created.status_code == 201, created.text
        party = created.json()
        pid, host_id = party["id"], party["host_member_id"]
        # The member joins through B (REST), the guest through B (GraphQL).
        joined = await http_b.post(
            "/api/parties/join", json={"code": party["code"]}, headers=bearer(friend_token)
        )
        assert joined.status_code == 200, joined.text
        member_id = joined.json()["member"]["id"]
        guest = (await ok(http_b, JOIN, {"code": party["code"], "displayName": "Gus"}))["joinParty"]
        guest_id, guest_token = guest["member"]["id"], guest["memberToken"]
        everyone = {host_id, member_id, guest_id}
        # A knows them all, though they joined through B.
        assert set(await members_seen(http_a, pid, host_token)) == everyone

        async with (
            ws_client(a.ws_url, host_token) as host_ws,
            ws_client(b.ws_url, friend_token) as member_ws,
            graphql_client(b.ws_url, guest_token) as guest_gql,
        ):
            host = WsFollower(host_ws, pid)
            member = WsFollower(member_ws, pid)
            guest_sub = GraphQLFollower(guest_gql, "p")
            first = await host_ws.party_subscribe(pid)
            assert {m["id"] for m in first["party"]["members"]} == everyone
            await member_ws.party_subscribe(pid)
            await guest_gql.party_events("p", pid)
            # Presence from B's sockets reaches A's, and each process's members agree.
            await host.members("updated", [member_id, guest_id], online=True)
            online = {host_id: ("HOST", True), member_id: ("MEMBER", True)}
            online[guest_id] = ("GUEST", True)
            assert await members_seen(http_a, pid, host_token) == online
            assert await members_seen(http_b, pid, guest_token) == online

            # Everyone reports a player, on the process of its socket (the guest over HTTP, on A).
            await host.ready("READY", 0)
            await member.ready("READY", 0)
            variables = {"partyId": pid, "state": "READY", "position": 0}
            await ok(http_a, REPORT, variables, guest_token)
            await host.members("updated", everyone, player="READY", position=0)

            # The host seeks through B, where it has no socket: the barrier spans both processes.
            seek = await http_b.put(
                f"/api/parties/{pid}/time",
                json={"timestamp": 20, "playing": True},
                headers=bearer(host_token),
            )
            assert seek.status_code == 201 and seek.json()["state"] == "WAITING", seek.text
            for follower in (host, member, guest_sub):
                waiting = await follower.playback()
                assert (waiting["state"], waiting["timestamp"]) == ("WAITING", 20)
                assert set(waiting["waiting_for"]) == everyone
            await host.ready("READY", 20)
            await ok(http_a, REPORT, {**variables, "position": 20}, guest_token)
            await member.members("updated", [host_id, guest_id], player="READY", position=20)
            held = (await http_a.get(f"/api/parties/{pid}", headers=bearer(host_token))).json()
            assert held["playback"]["state"] == "WAITING"
            assert [m["id"] for m in held["playback"]["waiting_for"]] == [member_id]
            await member.ready("READY", 20)  # on B: releases the barrier for everyone
            starts = [await f.playback() for f in (host, member, guest_sub)]
            assert {(s["state"], s["timestamp"], s["version"]) for s in starts} == {
                ("PLAYING", 20, 1)
            }
            assert len({s["effective_at"] for s in starts}) == 1
            for http in (http_a, http_b):
                playback = await http.get(f"/api/parties/{pid}", headers=bearer(host_token))
                assert playback.json()["playback"]["effective_at"] == starts[0]["effective_at"]

            # A refused report gets its error frame on either process: one of them is not the
            # party's home, and hands the report on without waiting for the home's answer.
            for follower in (host, member):
                await follower.ready("SLEEPING", 20)
                refused = await follower.client.next_of("error")
                assert (refused["code"], refused["request"]) == ("BAD_USER_INPUT", "party:ready")
                assert refused["party_id"] == pid

            # A kick made on A closes the member's socket on B.
            kicked = await http_a.delete(
                f"/api/parties/{pid}/members/{member_id}", headers=bearer(host_token)
            )
            assert kicked.status_code == 204
            assert (await member.member("left", member_id))["kicked"] is True
            with pytest.raises(ConnectionClosed) as closed:
                await member_ws.next()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
            again = await http_a.post(
                "/api/parties/join", json={"code": party["code"]}, headers=bearer(friend_token)
            )
            assert again.status_code == 403

            # The guest's socket on B closes: A announces it gone, and both processes agree.
            await guest_gql.conn.close()
            gone = await host.member("left", guest_id)
            assert (gone["online"], gone["kicked"]) == (False, False)
            after = {host_id: ("HOST", True), guest_id: ("GUEST", False)}
            assert await members_seen(http_a, pid, host_token) == after
            assert await members_seen(http_b, pid, host_token) == after


async def until_entries(party_id: str, member_id: str, count: int) -> None:
    """Poll the live store until `count` processes hold a presence entry for the member
    (another process's state: there is no event to await). Polls without blocking the loop,
    so the sockets keep answering the servers' pings meanwhile."""
    key = f"cowatch:live:presence:party:{party_id}"
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        async with asyncio.timeout(RECEIVE_TIMEOUT_S):
            while True:
                entries = await client.zrange(key, 0, -1)
                if sum(1 for e in entries if e.decode().split("|")[0] == member_id) == count:
                    return
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()


async def test_a_member_stays_online_while_a_socket_on_either_process_is_open(
    servers: list[Server], pg_url: str
) -> None:
    a, b = servers
    host_user, host_token = await sign_up(a)
    video_id = await transcoded_video_row(pg_url, host_user, "party across processes")
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=60) as http_a,
        httpx.AsyncClient(base_url=b.url, timeout=60) as http_b,
    ):
        created = await http_a.post(
            "/api/parties", json={"video_id": video_id}, headers=bearer(host_token)
        )
        party = created.json()
        pid, host_id = party["id"], party["host_member_id"]
        guest = (await ok(http_a, JOIN, {"code": party["code"], "displayName": "Gus"}))["joinParty"]
        async with ws_client(a.ws_url, guest["memberToken"]) as watcher_ws:
            watcher = WsFollower(watcher_ws, pid)
            await watcher_ws.party_subscribe(pid)
            async with ws_client(a.ws_url, host_token) as on_a:
                await on_a.party_subscribe(pid)
                await watcher.member("updated", host_id, online=True)
                async with ws_client(b.ws_url, host_token) as on_b:
                    await on_b.party_subscribe(pid)
                    await until_entries(pid, host_id, 2)
                await until_entries(pid, host_id, 1)  # B's is gone
                # The host still has its socket on A: no MemberLeft; the next event is this seek.
                seek = await http_b.put(
                    f"/api/parties/{pid}/time", json={"timestamp": 9}, headers=bearer(host_token)
                )
                assert seek.status_code == 201, seek.text
                while (frame := await watcher_ws.next())["type"] != "party:playback":
                    assert frame["type"] != "party:member_left", frame
                for http in (http_a, http_b):
                    online = await members_seen(http, pid, host_token)
                    assert online[host_id] == ("HOST", True)
            # Its last socket closed: now it is gone.
            gone = await watcher.member("left", host_id)
            assert gone["online"] is False
            assert (await members_seen(http_b, pid, guest["memberToken"]))[host_id] == (
                "HOST",
                False,
            )


async def test_a_process_that_dies_takes_its_members_presence_with_it(
    servers: list[Server], env: dict[str, str], pg_url: str, tmp_path: Path
) -> None:
    a, _b = servers
    host_user, host_token = await sign_up(a)
    video_id = await transcoded_video_row(pg_url, host_user, "party across processes")
    async with httpx.AsyncClient(base_url=a.url, timeout=60) as http_a:
        created = await http_a.post(
            "/api/parties", json={"video_id": video_id}, headers=bearer(host_token)
        )
        assert created.status_code == 201, created.text
        party = created.json()
        pid = party["id"]
        with cowatch_serve(env, tmp_path) as doomed:
            wait_for(partial(broadcast_ready, doomed), f"{doomed.url} broadcast ready")
            async with ws_client(a.ws_url, host_token) as host_ws:
                host = WsFollower(host_ws, pid)
                await host_ws.party_subscribe(pid)
                async with httpx.AsyncClient(base_url=doomed.url, timeout=60) as http_c:
                    joined = (
                        await ok(http_c, JOIN, {"code": party["code"], "displayName": "Gus"})
                    )["joinParty"]
                guest_id, guest_token = joined["member"]["id"], joined["memberToken"]
                async with ws_client(doomed.ws_url, guest_token) as guest_ws:
                    await guest_ws.party_subscribe(pid)
                    await host.member("updated", guest_id, online=True)
                    # The process dies at once: no close frame, no goodbye to Redis.
                    doomed.process.kill()
                    doomed.process.wait()
                    gone = await host.member("left", guest_id)
                    assert (gone["online"], gone["kicked"]) == (False, False)
                seen = await members_seen(http_a, pid, host_token)
                assert seen == {
                    party["host_member_id"]: ("HOST", True),
                    guest_id: ("GUEST", False),
                }
