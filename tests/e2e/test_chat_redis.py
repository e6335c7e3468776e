"""Party chat across two `cowatch serve` processes sharing PostgreSQL and Redis: messages,
deletions and reactions sent on either reach members on both, each once and in the order the
server accepted them; the chat limit counts a member's messages on both; history and the log
read the same on both."""

from __future__ import annotations

import asyncio
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import httpx

from tests.factories import gql
from tests.live import GraphQLClient, WsClient, graphql_client, start_servers, wait_for, ws_client
from tests.parties import CREATE, DELETE, LOG, MESSAGES, REACT, SEND, join, ok
from tests.servers import (
    Server,
    broadcast_ready,
    production_env,
    sign_up,
    transcoded_video_row,
)


def server_env(pg_url: str, data_dir: Path) -> dict[str, str]:
    # rate limits stay on: the chat limit is part of what the processes share
    return production_env(pg_url, data_dir)


CHAT_TYPES = ("ChatMessageAdded", "ChatMessageDeleted", "ReactionAdded")
CHAT_FRAMES = ("party:chat_message", "party:chat_deleted", "party:reaction")


async def next_event(socket: GraphQLClient) -> tuple[str, str]:
    """The next chat event of `partyEvents` as (kind, body / message id / emoji)."""
    while True:
        event = await socket.next_data("p", "partyEvents")
        kind = event["__typename"]
        if kind == "ChatMessageAdded":
            return kind, event["message"]["body"]
        if kind == "ChatMessageDeleted":
            return kind, event["messageId"]
        if kind == "ReactionAdded":
            return kind, event["reaction"]["emoji"]


async def next_frame(ws: WsClient, seqs: list[int]) -> tuple[str, str]:
    """The next chat frame of `/ws`, as `next_event` shows it; its `seq` kept in `seqs`."""
    while True:
        frame = await ws.next()
        if frame["type"] in CHAT_FRAMES:
            seqs.append(frame["seq"])
        if frame["type"] == "party:chat_message":
            return "ChatMessageAdded", frame["message"]["body"]
        if frame["type"] == "party:chat_deleted":
            return "ChatMessageDeleted", frame["message_id"]
        if frame["type"] == "party:reaction":
            return "ReactionAdded", frame["reaction"]["emoji"]


async def test_chat_crosses_processes_both_ways(pg_url: str, tmp_path: Path) -> None:
    env = server_env(pg_url, tmp_path / "data")
    with ExitStack() as stack:
        a, b = start_servers(stack, 2, env, tmp_path)
        for server in (a, b):
            wait_for(partial(broadcast_ready, server), f"{server.url} broadcast ready")
        host_id, host_token = await sign_up(a)
        _, member_account = await sign_up(b)
        video_id = await transcoded_video_row(pg_url, host_id, "chat room")
        async with (
            httpx.AsyncClient(base_url=a.url) as http_a,
            httpx.AsyncClient(base_url=b.url) as http_b,
        ):
            party = (await ok(http_a, CREATE, {"videoId": video_id}, host_token))["createParty"]
            pid = party["id"]
            member = (await join(http_b, party["code"], member_account))["memberToken"]
            guest = (await join(http_b, party["code"], displayName="Gus"))["memberToken"]
            await exchange(a, b, http_a, http_b, pid, host_token, member, guest)


async def exchange(
    a: Server,
    b: Server,
    http_a: httpx.AsyncClient,
    http_b: httpx.AsyncClient,
    pid: str,
    host: str,
    member: str,
    guest: str,
) -> None:
    async with (
        graphql_client(a.ws_url, host) as host_socket,
        ws_client(b.ws_url, member) as member_ws,
        graphql_client(b.ws_url, guest) as guest_socket,
    ):
        await host_socket.party_events("p", pid)
        await member_ws.party_subscribe(pid)
        await guest_socket.party_events("p", pid)
        seqs: list[int] = []

        async def everyone_sees(kind: str, what: str) -> None:
            """Each member's next chat item is this one: so each arrives once, in order."""
            assert await next_event(host_socket) == (kind, what)
            assert await next_frame(member_ws, seqs) == (kind, what)
            assert await next_event(guest_socket) == (kind, what)

        ids = []
        for index in range(3):
            said = await ok(http_a, SEND, {"partyId": pid, "body": f"from A {index}"}, host)
            ids.append(said["sendChatMessage"]["id"])
            await everyone_sees("ChatMessageAdded", f"from A {index}")
            await member_ws.send({"type": "chat:send", "party_id": pid, "body": f"from B {index}"})
            await everyone_sees("ChatMessageAdded", f"from B {index}")
        await ok(http_b, REACT, {"partyId": pid, "emoji": "🎉"}, guest)
        await everyone_sees("ReactionAdded", "🎉")
        assert await ok(http_b, DELETE, {"id": ids[0]}, host) == {"deleteChatMessage": True}
        await everyone_sees("ChatMessageDeleted", ids[0])
        await member_ws.send({"type": "party:react", "party_id": pid, "emoji": "👏"})
        await everyone_sees("ReactionAdded", "👏")
        await ok(http_a, SEND, {"partyId": pid, "body": "end"}, guest)
        await everyone_sees("ChatMessageAdded", "end")
        assert seqs == sorted(set(seqs))
        # The chat limit counts the guest's messages on both processes (5 per 5 s).
        for index in range(4):  # with "end": five
            server_http = (http_a, http_b)[index % 2]
            await ok(server_http, SEND, {"partyId": pid, "body": f"g{index}"}, guest)
        refused = await gql(http_a, SEND, {"partyId": pid, "body": "sixth"}, token=guest)
        assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        history_a = await ok(http_a, MESSAGES, {"id": pid, "first": 100}, host)
        history_b = await ok(http_b, MESSAGES, {"id": pid, "first": 100}, member)
        assert history_a == history_b
        nodes = [edge["node"] for edge in history_a["party"]["messages"]["edges"]]
        assert len(nodes) == 11 and "sixth" not in [n["body"] for n in nodes]
        assert [n["id"] for n in nodes if n["deleted"]] == [ids[0]]
        # The log is live and written by both processes: a read may land while the other
        # process's last event (a member's state, a socket closing) is not committed yet.
        # Poll the two processes (no event crosses them) until they tell the same story.
        for _ in range(100):
            log_a = await ok(http_a, LOG, {"id": pid, "first": 100}, host)
            log_b = await ok(http_b, LOG, {"id": pid, "first": 100}, guest)
            if log_a == log_b:
                break
            await asyncio.sleep(0.05)
        assert log_a == log_b
        kinds = [edge["node"]["__typename"] for edge in log_a["party"]["events"]["edges"]]
        assert kinds.count("ChatMessageAdded") == 11 and kinds.count("ReactionAdded") == 2
