"""Watch parties on the REST face, on both databases: every route, its statuses and bodies
(each answer is checked against /openapi.json by the `client` fixture), a member token as
`Authorization: Bearer`, and the errors each route can give, leaving nothing changed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from config import Settings
from resolvers.services import Services
from tests.factories import Account, make_user, make_videos


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def code_of(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def _party(
    client: httpx.AsyncClient, services: Services, **body: Any
) -> tuple[Account, dict[str, Any]]:
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=60.0)
    created = await client.post(
        "/api/parties", json={"video_id": video.id, **body}, headers=host.headers
    )
    assert created.status_code == 201, created.text
    party: dict[str, Any] = created.json()
    return host, party


async def _join(
    client: httpx.AsyncClient, code: str, token: str | None = None, **body: Any
) -> dict[str, Any]:
    headers = bearer(token) if token else {}
    response = await client.post("/api/parties/join", json={"code": code, **body}, headers=headers)
    assert response.status_code == 200, response.text
    joined: dict[str, Any] = response.json()
    return joined


async def _version(client: httpx.AsyncClient, party_id: str, token: str) -> int:
    response = await client.get(f"/api/parties/{party_id}", headers=bearer(token))
    version: int = response.json()["playback"]["version"]
    return version


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A ready timeout no test waits for: the barrier is released by the members here."""
    return settings.model_copy(update={"party_ready_timeout_s": 60.0})


async def test_create_and_read_a_party(client: httpx.AsyncClient, services: Services) -> None:
    host, party = await _party(
        client, services, name="Movie night", visibility="PUBLIC", control="EVERYONE"
    )
    assert (party["name"], party["visibility"], party["control"]) == (
        "Movie night",
        "PUBLIC",
        "EVERYONE",
    )
    assert party["invite_url"] == f"http://testserver/p/{party['code']}"
    assert party["host_user_id"] == host.user.id
    (member,) = party["members"]
    assert member["user"] == {"id": host.user.id, "username": host.user.username}
    assert party["host_member_id"] == member["id"] and member["role"] == "HOST"
    assert party["playback"]["state"] == "PAUSED" and party["max_members"] == 50
    read = await client.get(f"/api/parties/{party['id']}", headers=host.headers)
    assert read.status_code == 200 and read.json() == party


async def test_create_refusals(client: httpx.AsyncClient, services: Services) -> None:
    host, party = await _party(client, services)
    video_id = party["video_id"]
    assert (await client.post("/api/parties", json={"video_id": video_id})).status_code == 403
    guest = await _join(client, party["code"], display_name="Guest")
    as_guest = await client.post(
        "/api/parties", json={"video_id": video_id}, headers=bearer(guest["member_token"])
    )
    assert as_guest.status_code == 401  # a member token is not an account
    bad_bodies: list[dict[str, Any]] = [
        {},
        {"video_id": 7},
        {"video_id": video_id, "visibility": "SECRET"},
        {"video_id": video_id, "control": "host"},
        {"video_id": video_id, "max_members": "ten"},
        {"video_id": video_id, "max_members": 501},
        {"video_id": video_id, "visibility": "PRIVATE"},
        {"video_id": video_id, "password": "abc"},
    ]
    for body in bad_bodies:
        response = await client.post("/api/parties", json=body, headers=host.headers)
        assert (response.status_code, code_of(response)) == (400, "BAD_USER_INPUT"), body
    unknown = await client.post(
        "/api/parties", json={"video_id": str(uuid.uuid4())}, headers=host.headers
    )
    assert unknown.status_code == 404


async def test_join_answers_party_member_and_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    _host, party = await _party(client, services)
    guest = await _join(client, party["code"], display_name="Ana")
    assert set(guest) == {"party", "member", "member_token"}
    assert guest["member"]["role"] == "GUEST" and guest["member"]["user"] is None
    assert [m["display_name"] for m in guest["party"]["members"]][1:] == ["Ana"]
    # The member token is the guest's bearer token on every party route.
    token = guest["member_token"]
    read = await client.get(f"/api/parties/{party['id']}", headers=bearer(token))
    assert read.status_code == 200 and len(read.json()["members"]) == 2
    friend = await make_user(services)
    member = await _join(client, party["code"], friend.token, display_name="Friendly")
    assert member["member"]["role"] == "MEMBER"
    assert member["member"]["display_name"] == "Friendly"
    assert member["member"]["user"]["id"] == friend.user.id


async def test_join_refusals(client: httpx.AsyncClient, services: Services) -> None:
    host, party = await _party(client, services, password="s3cret!", max_members=2)
    url = "/api/parties/join"
    code = party["code"]
    for password in (None, "guess"):
        wrong = await client.post(
            url, json={"code": code, "display_name": "B", "password": password}
        )
        assert (wrong.status_code, code_of(wrong)) == (403, "BAD_PASSWORD")
    for body in ({"code": code, "password": "s3cret!"}, {"code": 5}, {"display_name": "B"}):
        response = await client.post(url, json=body)
        assert (response.status_code, code_of(response)) == (400, "BAD_USER_INPUT"), body
    unknown = await client.post(url, json={"code": "no-such-code", "display_name": "B"})
    assert (unknown.status_code, code_of(unknown)) == (404, "NOT_FOUND")
    bad_token = await client.post(
        url, json={"code": code, "password": "s3cret!"}, headers=bearer("not-a-token")
    )
    assert bad_token.status_code == 401
    await _join(client, code, display_name="B", password="s3cret!")
    full = await client.post(url, json={"code": code, "display_name": "C", "password": "s3cret!"})
    assert (full.status_code, code_of(full)) == (409, "PARTY_FULL")
    ended = await client.post(f"/api/parties/{party['id']}/end", headers=host.headers)
    assert ended.status_code == 200 and ended.json()["state"] == "ENDED"
    late = await client.post(url, json={"code": code, "display_name": "D", "password": "s3cret!"})
    assert (late.status_code, code_of(late)) == (410, "PARTY_ENDED")


async def test_who_may_read_a_party(client: httpx.AsyncClient, services: Services) -> None:
    _host, party = await _party(client, services)
    url = f"/api/parties/{party['id']}"
    stranger = await make_user(services)
    outsider = await client.get(url, headers=stranger.headers)
    assert (outsider.status_code, code_of(outsider)) == (403, "FORBIDDEN")
    assert (await client.get(url)).status_code == 403
    _, private = await _party(client, services, visibility="PRIVATE", password="s3cret!")
    unknown = await client.get(f"/api/parties/{uuid.uuid4()}", headers=stranger.headers)
    hidden = await client.get(f"/api/parties/{private['id']}", headers=stranger.headers)
    assert unknown.status_code == hidden.status_code == 404
    assert unknown.json()["error"]["message"] == hidden.json()["error"]["message"]
    foreign = await _join(client, party["code"], display_name="Guest")
    elsewhere = await client.get(
        f"/api/parties/{private['id']}", headers=bearer(foreign["member_token"])
    )
    assert elsewhere.status_code == 404  # another party's token: still an outsider of PRIVATE
    _, other = await _party(client, services)
    other_url = f"/api/parties/{other['id']}"
    forbidden = await client.get(other_url, headers=bearer(foreign["member_token"]))
    assert (forbidden.status_code, code_of(forbidden)) == (403, "FORBIDDEN")
    bad = await client.get(url, headers=bearer("not-a-token"))
    assert bad.status_code == 401


async def test_the_playhead_by_host_guest_and_everyone(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, party = await _party(client, services)
    pid = party["id"]
    guest = await _join(client, party["code"], display_name="Guest")
    token = guest["member_token"]
    refused = await client.put(
        f"/api/parties/{pid}/time", json={"timestamp": 5}, headers=bearer(token)
    )
    assert (refused.status_code, code_of(refused)) == (403, "FORBIDDEN")
    assert await _version(client, pid, host.token) == 0
    moved = await client.put(
        f"/api/parties/{pid}/time", json={"timestamp": 60.4, "rate": 1.5}, headers=host.headers
    )
    assert moved.status_code == 201, moved.text
    body = moved.json()
    assert (body["timestamp"], body["rate"], body["version"], body["state"]) == (
        60.0,
        1.5,
        1,
        "PAUSED",
    )
    for bad in (
        {"timestamp": -1},
        {"timestamp": 62},
        {"timestamp": "5"},
        {},
        {"timestamp": 1, "playing": "yes"},
    ):
        response = await client.put(f"/api/parties/{pid}/time", json=bad, headers=host.headers)
        assert (response.status_code, code_of(response)) == (400, "BAD_USER_INPUT"), bad
    assert await _version(client, pid, host.token) == 1
    patched = await client.patch(
        f"/api/parties/{pid}", json={"control": "EVERYONE"}, headers=host.headers
    )
    assert patched.status_code == 200 and patched.json()["control"] == "EVERYONE"
    by_guest = await client.put(
        f"/api/parties/{pid}/time", json={"timestamp": 3, "playing": True}, headers=bearer(token)
    )
    assert by_guest.status_code == 201
    assert by_guest.json()["member_id"] == guest["member"]["id"]
    assert by_guest.json()["user_id"] is None and by_guest.json()["state"] == "PLAYING"
    at = int(time.time() * 1000) + 60_000
    premiere = await client.post(
        f"/api/parties/{pid}/schedule", json={"at": at, "timestamp": 0}, headers=host.headers
    )
    assert premiere.status_code == 201
    assert (premiere.json()["state"], premiere.json()["effective_at"]) == ("PAUSED", at)
    past = await client.post(
        f"/api/parties/{pid}/schedule", json={"at": 5, "timestamp": 0}, headers=host.headers
    )
    assert past.status_code == 400


async def test_ready_reports_release_the_barrier(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, party = await _party(client, services)
    pid = party["id"]
    guest = await _join(client, party["code"], display_name="Guest")
    token = guest["member_token"]
    await services.parties.socket_opened(pid, guest["member"]["id"], 25.0)  # as its socket would
    ready = f"/api/parties/{pid}/ready"
    buffering = await client.post(
        ready, json={"state": "BUFFERING", "position": 0}, headers=bearer(token)
    )
    assert buffering.status_code == 200
    assert (buffering.json()["player"], buffering.json()["online"]) == ("BUFFERING", True)
    held = await client.put(
        f"/api/parties/{pid}/time", json={"timestamp": 20, "playing": True}, headers=host.headers
    )
    assert held.json()["state"] == "WAITING"
    assert [m["id"] for m in held.json()["waiting_for"]] == [guest["member"]["id"]]
    released = await client.post(
        ready, json={"state": "READY", "position": 20}, headers=bearer(token)
    )
    assert released.json()["player"] == "READY"
    playback = (await client.get(f"/api/parties/{pid}", headers=host.headers)).json()["playback"]
    assert playback["state"] == "PLAYING" and playback["effective_at"] == playback["server_time"]
    steady = await client.post(
        ready, json={"state": "READY", "position": 21, "offset_ms": 9.2}, headers=bearer(token)
    )
    assert steady.json()["offset_ms"] == 9.0
    for bad in (
        {"state": "DONE", "position": 1},
        {"state": "READY"},
        {"state": "READY", "position": -2},
        {"state": "READY", "position": 1, "offset_ms": "far"},
        {"state": "READY", "position": 1, "offset_ms": -5},
    ):
        response = await client.post(ready, json=bad, headers=bearer(token))
        assert response.status_code == 400, bad
    members = (await client.get(f"/api/parties/{pid}", headers=host.headers)).json()["members"]
    assert [m["offset_ms"] for m in members if m["id"] == guest["member"]["id"]] == [9.0]
    stranger = await make_user(services)
    outsider = await client.post(
        ready, json={"state": "READY", "position": 0}, headers=stranger.headers
    )
    assert outsider.status_code == 403
    assert (await client.post(ready, json={"state": "READY", "position": 0})).status_code == 403


async def test_roles_kick_leave_and_end(client: httpx.AsyncClient, services: Services) -> None:
    host, party = await _party(client, services)
    pid = party["id"]
    friend = await make_user(services)
    member = (await _join(client, party["code"], friend.token))["member"]
    guest = await _join(client, party["code"], display_name="Guest")
    guest_id = guest["member"]["id"]
    role_url = f"/api/parties/{pid}/members/{member['id']}/role"
    not_host = await client.put(role_url, json={"role": "COHOST"}, headers=friend.headers)
    assert not_host.status_code == 403
    promoted = await client.put(role_url, json={"role": "COHOST"}, headers=host.headers)
    assert promoted.status_code == 200 and promoted.json()["role"] == "COHOST"
    bad_role = await client.put(role_url, json={"role": "KING"}, headers=host.headers)
    assert bad_role.status_code == 400
    unknown = await client.put(
        f"/api/parties/{pid}/members/{uuid.uuid4()}/role",
        json={"role": "COHOST"},
        headers=host.headers,
    )
    assert unknown.status_code == 400
    kick_url = f"/api/parties/{pid}/members/{guest_id}"
    assert (await client.delete(kick_url, headers=friend.headers)).status_code == 403
    kicked = await client.delete(kick_url, headers=host.headers)
    assert kicked.status_code == 204 and kicked.content == b""
    token = bearer(guest["member_token"])
    assert (await client.get(f"/api/parties/{pid}", headers=token)).status_code == 403
    rejoin = await client.post("/api/parties/join", json={"code": party["code"]}, headers=token)
    assert (rejoin.status_code, code_of(rejoin)) == (403, "FORBIDDEN")
    members = (await client.get(f"/api/parties/{pid}", headers=host.headers)).json()["members"]
    assert guest_id not in [m["id"] for m in members]
    left = await client.post(f"/api/parties/{pid}/leave", headers=host.headers)
    assert left.status_code == 204
    after = (await client.get(f"/api/parties/{pid}", headers=friend.headers)).json()
    assert after["host_user_id"] == friend.user.id and after["host_member_id"] == member["id"]
    again = await client.post(f"/api/parties/{pid}/leave", headers=host.headers)
    assert again.status_code == 403
    assert (await client.post(f"/api/parties/{pid}/end", headers=host.headers)).status_code == 403
    ended = await client.post(f"/api/parties/{pid}/end", headers=friend.headers)
    assert ended.status_code == 200 and ended.json()["state"] == "ENDED"
    gone = await client.put(
        f"/api/parties/{pid}/time", json={"timestamp": 1}, headers=friend.headers
    )
    assert (gone.status_code, code_of(gone)) == (410, "PARTY_ENDED")
    patch = await client.patch(f"/api/parties/{pid}", json={"name": "x"}, headers=friend.headers)
    assert patch.status_code == 410


async def test_update_party(client: httpx.AsyncClient, services: Services) -> None:
    host, party = await _party(client, services)
    url = f"/api/parties/{party['id']}"
    changed = await client.patch(
        url,
        json={"name": "Renamed", "max_members": 10, "chat_enabled": False, "password": "s3cret!"},
        headers=host.headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["name"], body["max_members"], body["chat_enabled"], body["has_password"]) == (
        "Renamed",
        10,
        False,
        True,
    )
    cleared = await client.patch(url, json={"password": ""}, headers=host.headers)
    assert cleared.json()["has_password"] is False
    for bad in ({"visibility": "PRIVATE"}, {"max_members": 0}, {"chat_enabled": "no"}):
        response = await client.patch(url, json=bad, headers=host.headers)
        assert response.status_code == 400, bad
    guest = await _join(client, party["code"], display_name="Guest")
    refused = await client.patch(url, json={"name": "Mine"}, headers=bearer(guest["member_token"]))
    assert refused.status_code == 403
    assert (await client.get(url, headers=host.headers)).json()["name"] == "Renamed"


async def test_party_routes_are_described(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    join = paths["/api/parties/join"]["post"]
    assert "security" not in join and {"403", "404", "409", "410", "429"} <= set(join["responses"])
    seek = paths["/api/parties/{party_id}/time"]["put"]
    assert seek["security"] == [{"bearer": []}, {"cookie": []}]
    assert {"201", "400", "401", "403", "404", "410"} <= set(seek["responses"])
    assert set(paths["/api/parties/{party_id}"]) == {"get", "patch"}
    assert set(paths["/api/parties/{party_id}/members/{member_id}"]) == {"delete"}


class TestLimits:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        """Budgets small enough to exhaust in a test."""
        return settings.model_copy(
            update={"rate_limit_party_join": "2/minute", "rate_limit_player_state": "1/minute"}
        )

    async def test_join_per_address_and_reports_per_member(
        self, client: httpx.AsyncClient, services: Services
    ) -> None:
        host, party = await _party(client, services)
        await _join(client, party["code"], display_name="A")
        guess = await client.post("/api/parties/join", json={"code": "guess", "display_name": "B"})
        assert guess.status_code == 404
        limited = await client.post(
            "/api/parties/join", json={"code": party["code"], "display_name": "C"}
        )
        assert (limited.status_code, code_of(limited)) == (429, "RATE_LIMITED")
        assert int(limited.headers["retry-after"]) >= 1
        ready = f"/api/parties/{party['id']}/ready"
        body = {"state": "READY", "position": 0}
        assert (await client.post(ready, json=body, headers=host.headers)).status_code == 200
        again = await client.post(ready, json=body, headers=host.headers)
        assert (again.status_code, code_of(again)) == (429, "RATE_LIMITED")
        assert int(again.headers["retry-after"]) >= 1
