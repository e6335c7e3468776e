"""Party chat on the REST face, on both databases: `GET|POST /api/parties/{id}/messages`, their
statuses and bodies (each answer checked against /openapi.json by the `client` fixture), the
errors leaving nothing stored, and a REST message reaching members on both socket faces."""

from __future__ import annotations

from typing import Any

import httpx

from config import Settings
from resolvers.services import Services
from tests.factories import gql, make_user
from tests.live import graphql_client, live_server, ws_client
from tests.parties import CHAT_SWITCH, DELETE
from tests.rest_compat.test_parties import _join, _party, bearer, code_of


async def _room(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    host, party = await _party(client, services)
    account = await make_user(services)
    member = await _join(client, party["code"], account.token)
    guest = await _join(client, party["code"], display_name="Gus")
    return {
        "id": party["id"],
        "code": party["code"],
        "host": host.token,
        "member": member["member_token"],
        "guest": guest["member_token"],
    }


async def post(
    client: httpx.AsyncClient, room: dict[str, Any], token: str | None, **body: Any
) -> httpx.Response:
    headers = bearer(token) if token else {}
    return await client.post(f"/api/parties/{room['id']}/messages", json=body, headers=headers)


async def say(
    client: httpx.AsyncClient, room: dict[str, Any], token: str, body: str, **extra: Any
) -> dict[str, Any]:
    response = await post(client, room, token, body=body, **extra)
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


async def history(
    client: httpx.AsyncClient, room: dict[str, Any], token: str, **params: Any
) -> httpx.Response:
    return await client.get(
        f"/api/parties/{room['id']}/messages", params=params, headers=bearer(token)
    )


async def test_post_and_page_the_history(client: httpx.AsyncClient, services: Services) -> None:
    room = await _room(client, services)
    first = await say(client, room, room["host"], "  <script>alert(1)</script>  ")
    assert first["body"] == "<script>alert(1)</script>"  # kept as text, trimmed
    assert first["author"]["role"] == "HOST" and first["deleted"] is False
    assert first["reply_to"] is None and first["media_time"] == 0.0
    sent = [first]
    for index in range(4):
        token = (room["member"], room["guest"])[index % 2]
        sent.append(await say(client, room, token, f"m{index}"))
    reply = await say(client, room, room["guest"], "re", reply_to=sent[1]["id"])
    assert reply["reply_to"]["id"] == sent[1]["id"] and reply["reply_to"]["body"] == "m0"
    deleted = await gql(client, DELETE, {"id": sent[2]["id"]}, token=room["guest"])
    assert deleted == {"data": {"deleteChatMessage": True}}
    late = await make_user(services)
    token = (await _join(client, room["code"], late.token))["member_token"]
    pages = []
    for page in (1, 2, 3):
        response = await history(client, room, token, page=page, limit=4)
        assert response.status_code == 200, response.text
        body = response.json()
        assert (body["total_pages"], body["current_page"]) == (2, page)
        pages.append(body["messages"])
    assert [len(page) for page in pages] == [4, 2, 0]
    listed = pages[0] + pages[1]
    assert [m["id"] for m in listed] == [reply["id"], *(m["id"] for m in reversed(sent))]
    assert (listed[3]["body"], listed[3]["deleted"]) == (None, True)
    assert listed[0] == reply and listed[5] == first
    default = (await history(client, room, token)).json()
    assert default["messages"] == listed and default["current_page"] == 1


async def test_refusals_store_nothing(client: httpx.AsyncClient, services: Services) -> None:
    room, other = await _room(client, services), await _room(client, services)
    theirs = await say(client, other, other["host"], "elsewhere")
    gone = await say(client, room, room["host"], "gone")
    await gql(client, DELETE, {"id": gone["id"]}, token=room["host"])
    refusals: list[tuple[str | None, dict[str, Any], int, str]] = [
        (room["member"], {"body": ""}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": " \n "}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": "x" * 2001}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": "esc\x1b[31m"}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": 7}, 400, "BAD_USER_INPUT"),
        (room["member"], {}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": "re", "reply_to": theirs["id"]}, 400, "BAD_USER_INPUT"),
        (room["member"], {"body": "re", "reply_to": gone["id"]}, 400, "BAD_USER_INPUT"),
        (None, {"body": "anyone?"}, 403, "UNAUTHENTICATED"),
        (other["guest"], {"body": "let me in"}, 403, "FORBIDDEN"),
    ]
    for token, body, status, code in refusals:
        response = await post(client, room, token, **body)
        assert (response.status_code, code_of(response)) == (status, code), (body, response.text)
    unknown = await client.post(
        "/api/parties/no-such-party/messages", json={"body": "hi"}, headers=bearer(room["host"])
    )
    assert unknown.status_code == 404
    for params in ({"page": 0}, {"limit": 0}, {"limit": 101}, {"page": "x"}):
        response = await history(client, room, room["host"], **params)
        assert response.status_code == 400, params
    outsider = await history(client, room, other["guest"])
    assert (outsider.status_code, code_of(outsider)) == (403, "FORBIDDEN")
    switched = await gql(client, CHAT_SWITCH, {"partyId": room["id"], "on": False}, room["host"])
    assert "errors" not in switched
    off = await post(client, room, room["guest"], body="hello?")
    assert (off.status_code, code_of(off)) == (403, "FORBIDDEN")
    listed = (await history(client, room, room["host"])).json()["messages"]
    assert [m["id"] for m in listed] == [gone["id"]]


async def test_a_flooder_gets_429_with_retry_after(
    client: httpx.AsyncClient, services: Services
) -> None:
    room = await _room(client, services)
    for index in range(5):  # COWATCH_RATE_LIMIT_CHAT's default: 5 per 5 s per member
        await say(client, room, room["guest"], f"flood {index}")
    refused = await post(client, room, room["guest"], body="one too many")
    assert (refused.status_code, code_of(refused)) == (429, "RATE_LIMITED")
    assert int(refused.headers["Retry-After"]) >= 1
    await say(client, room, room["member"], "unaffected")
    listed = (await history(client, room, room["host"])).json()["messages"]
    assert [m["body"] for m in listed] == ["unaffected", *(f"flood {i}" for i in range(4, -1, -1))]


async def test_a_rest_message_reaches_members_on_both_sockets(settings: Settings) -> None:
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        room = await _room(http, server.services)
        async with (
            ws_client(server.ws_url, room["member"]) as ws,
            graphql_client(server.ws_url, room["guest"]) as socket,
        ):
            await ws.party_subscribe(room["id"])
            await socket.party_events("p", room["id"])
            message = await say(http, room, room["host"], "over REST")
            frame = await ws.next_of("party:chat_message")
            assert frame["message"] == message
            event = await socket.next_party_event("p", "ChatMessageAdded")
            assert event["message"]["id"] == message["id"]
            assert event["message"]["body"] == "over REST"
            assert event["message"]["mediaTime"] == message["media_time"]
