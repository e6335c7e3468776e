"""Watch parties on the GraphQL face, on both databases: every query and mutation of the
contract's "Watch parties", with the errors each can give and what they leave unchanged."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from config import Settings
from models import VideoStatus
from resolvers.services import Services
from tests.factories import Account, error_code, gql, make_user, make_videos
from tests.parties import (
    CREATE,
    JOIN,
    PARTY_BY,
    REPORT,
    SEEK,
    SETTINGS_BY,
    create,
    join,
    ok,
)

ROLE = """
mutation Role($partyId: ID!, $memberId: ID!, $role: PartyRole!) {
  setMemberRole(partyId: $partyId, memberId: $memberId, role: $role) { id role }
}
"""
KICK = """
mutation K($partyId: ID!, $memberId: ID!) { kickMember(partyId: $partyId, memberId: $memberId) }
"""
LEAVE = "mutation L($partyId: ID!) { leaveParty(partyId: $partyId) }"
END = "mutation E($partyId: ID!) { endParty(partyId: $partyId) { id state } }"
UPDATE = """
mutation U($partyId: ID!, $name: String, $visibility: PartyVisibility, $control: PartyControl,
           $password: String, $maxMembers: Int, $chatEnabled: Boolean) {
  updateParty(partyId: $partyId, name: $name, visibility: $visibility, control: $control,
              password: $password, maxMembers: $maxMembers, chatEnabled: $chatEnabled) {
    id name visibility control maxMembers hasPassword chatEnabled
  }
}
"""
SCHEDULE = """
mutation S($partyId: ID!, $at: Float!, $t: Float!) {
  schedulePartyPlay(partyId: $partyId, at: $at, timestamp: $t) {
    state playing timestamp effectiveAt version
  }
}
"""
LISTED = "query P($videoId: ID!) { parties(videoId: $videoId) { id visibility } }"
MINE = "query { myParties { id name } }"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A ready timeout no test waits for: the barrier is released by the members here."""
    return settings.model_copy(update={"party_ready_timeout_s": 60.0})


async def _host(services: Services, duration: float = 60.0) -> tuple[Account, str]:
    host = await make_user(services)
    (video,) = await make_videos(services, host.user, 1, duration=duration)
    return host, video.id


async def _playback_version(client: httpx.AsyncClient, party: dict[str, Any], token: str) -> int:
    data = await ok(client, PARTY_BY, {"id": party["id"]}, token)
    version: int = data["party"]["playback"]["version"]
    return version


async def test_create_party_answers_the_whole_party(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id, name="Movie night")
    assert party["name"] == "Movie night"
    assert (party["visibility"], party["control"], party["state"]) == ("UNLISTED", "HOST", "PAUSED")
    assert (party["maxMembers"], party["hasPassword"], party["chatEnabled"]) == (50, False, True)
    assert len(party["code"]) >= 11
    assert party["inviteUrl"] == f"http://testserver/p/{party['code']}"
    assert party["video"] == {"id": video_id}
    assert party["host"] == {"id": host.user.id, "username": host.user.username}
    (member,) = party["members"]
    assert member["role"] == "HOST" and member["user"]["id"] == host.user.id
    assert (member["online"], member["player"], member["position"]) == (False, "IDLE", None)
    playback = party["playback"]
    assert (playback["partyId"], playback["version"], playback["state"]) == (
        party["id"],
        0,
        "PAUSED",
    )
    assert playback["waitingFor"] == []
    default_name = await create(client, host.token, video_id)
    assert default_name["name"] == f"{host.user.username}'s party"


async def test_create_party_refusals(client: httpx.AsyncClient, services: Services) -> None:
    host, video_id = await _host(services)
    (processing,) = await make_videos(services, host.user, 1, status=VideoStatus.PROCESSING)
    variables = {"videoId": video_id}
    assert error_code(await gql(client, CREATE, variables)) == "UNAUTHENTICATED"
    party = await create(client, host.token, video_id)
    guest = await join(client, party["code"], displayName="Guest")
    as_guest = await gql(client, CREATE, variables, token=guest["memberToken"])
    assert error_code(as_guest) == "UNAUTHENTICATED"  # a member token is not an account
    cases: list[tuple[dict[str, Any], str]] = [
        ({"videoId": str(uuid.uuid4())}, "NOT_FOUND"),
        ({"videoId": processing.id}, "BAD_USER_INPUT"),
        ({**variables, "visibility": "PRIVATE"}, "BAD_USER_INPUT"),  # no password
        ({**variables, "password": "abc"}, "BAD_USER_INPUT"),
        ({**variables, "maxMembers": 501}, "BAD_USER_INPUT"),
        ({**variables, "maxMembers": 1}, "BAD_USER_INPUT"),
        ({**variables, "name": "x" * 101}, "BAD_USER_INPUT"),
    ]
    for sent, code in cases:
        assert error_code(await gql(client, CREATE, sent, token=host.token)) == code, sent
    mine = await ok(client, MINE, {}, host.token)
    assert [p["id"] for p in mine["myParties"]] == [party["id"]]  # nothing half-made


async def test_join_as_guest_account_and_again(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    guest = await join(client, party["code"], displayName="  Ana  ")
    assert guest["member"]["role"] == "GUEST" and guest["member"]["displayName"] == "Ana"
    assert guest["member"]["user"] is None
    assert [m["displayName"] for m in guest["party"]["members"]][1:] == ["Ana"]
    twin = await join(client, party["code"], displayName="ana")
    assert twin["member"]["displayName"] == "ana (2)"  # a suffix, not an error
    friend = await make_user(services)
    joined = await join(client, party["code"], friend.token)
    assert joined["member"]["role"] == "MEMBER"
    assert joined["member"]["displayName"] == friend.user.username
    again = await join(client, party["code"], friend.token)
    assert again["member"]["id"] == joined["member"]["id"]  # the same member, not a second one
    by_token = await join(client, party["code"], guest["memberToken"])
    assert by_token["member"]["id"] == guest["member"]["id"]
    assert len(by_token["party"]["members"]) == 4
    for bad in (None, "", "   ", "x" * 41, "bell\x07"):
        body = await gql(client, JOIN, {"code": party["code"], "displayName": bad})
        assert error_code(body) == "BAD_USER_INPUT", bad
    assert error_code(await gql(client, JOIN, {"code": "nope", "displayName": "Bo"})) == "NOT_FOUND"


async def test_passwords_full_ended_and_foreign_tokens(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    locked = await create(client, host.token, video_id, password="s3cret!", maxMembers=2)
    assert locked["hasPassword"] is True
    for wrong in (None, "guess"):
        body = await gql(
            client, JOIN, {"code": locked["code"], "displayName": "Bo", "password": wrong}
        )
        assert error_code(body) == "BAD_PASSWORD"
        assert body["errors"][0]["message"]
    await join(client, locked["code"], displayName="Bo", password="s3cret!")
    full = await gql(
        client, JOIN, {"code": locked["code"], "displayName": "Cy", "password": "s3cret!"}
    )
    assert error_code(full) == "PARTY_FULL"
    other = await create(client, host.token, video_id)
    foreign = await join(client, other["code"], displayName="Dee")
    token = foreign["memberToken"]
    # A member token only works for its own party.
    assert (
        error_code(await gql(client, SEEK, {"partyId": locked["id"], "t": 1}, token)) == "FORBIDDEN"
    )
    assert error_code(await gql(client, PARTY_BY, {"id": locked["id"]}, token)) == "FORBIDDEN"
    assert (
        error_code(await gql(client, JOIN, {"code": locked["code"], "password": "s3cret!"}, token))
        == "FORBIDDEN"
    )
    await ok(client, END, {"partyId": other["id"]}, host.token)
    ended = await gql(client, JOIN, {"code": other["code"], "displayName": "Eve"})
    assert error_code(ended) == "PARTY_ENDED"
    for after in (SEEK, LEAVE):
        body = await gql(client, after, {"partyId": other["id"], "t": 1}, token)
        assert error_code(body) == "PARTY_ENDED"


async def test_outsiders_see_settings_but_not_members_and_never_private_parties(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    stranger = await make_user(services)
    unlisted = await create(client, host.token, video_id)
    seen = await ok(client, SETTINGS_BY, {"code": unlisted["code"]}, stranger.token)
    assert seen["party"]["id"] == unlisted["id"]
    by_id = await ok(client, SETTINGS_BY, {"id": unlisted["id"]})
    assert by_id["party"]["code"] == unlisted["code"]
    hidden = await gql(client, PARTY_BY, {"id": unlisted["id"]}, token=stranger.token)
    assert error_code(hidden) == "FORBIDDEN"  # members and playback are for members
    private = await create(client, host.token, video_id, visibility="PRIVATE", password="s3cret!")
    unknown = await ok(client, SETTINGS_BY, {"code": "no-such-code"}, stranger.token)
    assert unknown == {"party": None}
    for variables in ({"code": private["code"]}, {"id": private["id"]}):
        for token in (None, stranger.token):
            assert await ok(client, SETTINGS_BY, variables, token) == unknown
    member = await ok(client, PARTY_BY, {"id": private["id"]}, host.token)
    assert member["party"]["members"][0]["role"] == "HOST"
    assert error_code(await gql(client, SETTINGS_BY, {})) == "BAD_USER_INPUT"


async def test_parties_lists_only_public_parties_and_my_parties_mine(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    public = await create(client, host.token, video_id, visibility="PUBLIC", name="open")
    await create(client, host.token, video_id, visibility="PRIVATE", password="s3cret!")
    await create(client, host.token, video_id, visibility="UNLISTED")
    ended = await create(client, host.token, video_id, visibility="PUBLIC")
    await ok(client, END, {"partyId": ended["id"]}, host.token)
    for token in (None, host.token):
        listed = await ok(client, LISTED, {"videoId": video_id}, token)
        assert listed["parties"] == [{"id": public["id"], "visibility": "PUBLIC"}]
    friend = await make_user(services)
    await join(client, public["code"], friend.token)
    assert (await ok(client, MINE, {}, friend.token))["myParties"] == [
        {"id": public["id"], "name": "open"}
    ]
    assert len((await ok(client, MINE, {}, host.token))["myParties"]) == 3
    guest = await join(client, public["code"], displayName="G")
    for token in (None, guest["memberToken"]):  # account-only: a guest's token is refused
        assert error_code(await gql(client, MINE, {}, token=token)) == "UNAUTHENTICATED"


async def test_control_modes_decide_who_moves_the_playhead(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    guest = await join(client, party["code"], displayName="Guest")
    token = guest["memberToken"]
    refused = await gql(client, SEEK, {"partyId": party["id"], "t": 10}, token=token)
    assert error_code(refused) == "FORBIDDEN"
    assert await _playback_version(client, party, host.token) == 0  # nothing changed
    moved = (await ok(client, SEEK, {"partyId": party["id"], "t": 10}, host.token))[
        "setPartyPlayback"
    ]
    assert (moved["timestamp"], moved["version"], moved["state"]) == (10.0, 1, "PAUSED")
    assert moved["userId"] == host.user.id and moved["memberId"] == party["members"][0]["id"]
    await ok(client, UPDATE, {"partyId": party["id"], "control": "EVERYONE"}, host.token)
    by_guest = (await ok(client, SEEK, {"partyId": party["id"], "t": 20, "playing": True}, token))[
        "setPartyPlayback"
    ]
    # Nobody is online, so the barrier has nobody to wait for: playing at once, from a future start.
    assert by_guest["state"] == "PLAYING" and by_guest["playing"] is True
    assert by_guest["userId"] is None and by_guest["memberId"] == guest["member"]["id"]
    assert by_guest["effectiveAt"] == by_guest["serverTime"]


async def test_playhead_input_is_checked_and_clamped(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services, duration=60.0)
    party = await create(client, host.token, video_id)
    pid = party["id"]
    for bad in ({"t": -1}, {"t": 61.5}, {"t": 5, "rate": 5.0}, {"t": 5, "rate": 0.1}):
        body = await gql(client, SEEK, {"partyId": pid, **bad}, token=host.token)
        assert error_code(body) == "BAD_USER_INPUT", bad
    assert await _playback_version(client, party, host.token) == 0
    end = (await ok(client, SEEK, {"partyId": pid, "t": 60.9}, host.token))["setPartyPlayback"]
    assert end["timestamp"] == 60.0
    missing = await gql(client, SEEK, {"partyId": str(uuid.uuid4()), "t": 1}, token=host.token)
    assert error_code(missing) == "NOT_FOUND"
    anonymous = await gql(client, SEEK, {"partyId": pid, "t": 1})
    assert error_code(anonymous) == "UNAUTHENTICATED"


async def test_the_barrier_waits_for_online_members_who_reported(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    friend = await make_user(services)
    joined = await join(client, party["code"], friend.token)
    member_id = joined["member"]["id"]
    await services.parties.socket_opened(party["id"], member_id, 40.0)  # as its socket would
    report = {"partyId": party["id"], "state": "BUFFERING", "position": 0}
    buffering = (await ok(client, REPORT, report, friend.token))["reportPlayerState"]
    assert (buffering["player"], buffering["online"], buffering["latencyMs"]) == (
        "BUFFERING",
        True,
        40.0,
    )
    held = (await ok(client, SEEK, {"partyId": party["id"], "t": 30, "playing": True}, host.token))[
        "setPartyPlayback"
    ]
    assert held["state"] == "WAITING" and held["playing"] is False
    assert [m["id"] for m in held["waitingFor"]] == [member_id]
    not_there = {**report, "state": "READY", "position": 5}
    await ok(client, REPORT, not_there, friend.token)  # ready, but not at the new position
    assert (await ok(client, PARTY_BY, {"id": party["id"]}, host.token))["party"][
        "state"
    ] == "WAITING"
    before = time.time() * 1000
    await ok(client, REPORT, {**report, "state": "READY", "position": 30.2}, friend.token)
    playback = (await ok(client, PARTY_BY, {"id": party["id"]}, host.token))["party"]["playback"]
    assert playback["state"] == "PLAYING" and playback["waitingFor"] == []
    assert playback["effectiveAt"] > before  # a start in the future, for every member alike
    bad = await gql(client, REPORT, {**report, "position": -1}, token=friend.token)
    assert error_code(bad) == "BAD_USER_INPUT"
    # Playing: the page reports how far it is from the shared position; members see it.
    steady = {**report, "state": "READY", "position": 31, "offsetMs": 6.4}
    assert (await ok(client, REPORT, steady, friend.token))["reportPlayerState"]["offsetMs"] == 6.0
    too_far = await gql(client, REPORT, {**steady, "offsetMs": 60_001}, token=friend.token)
    assert error_code(too_far) == "BAD_USER_INPUT"
    seen = (await ok(client, PARTY_BY, {"id": party["id"]}, host.token))["party"]["members"]
    assert [m["offsetMs"] for m in seen if m["id"] == member_id] == [6.0]
    outsider = await make_user(services)
    assert error_code(await gql(client, REPORT, report, token=outsider.token)) == "FORBIDDEN"


async def test_schedule_a_premiere(client: httpx.AsyncClient, services: Services) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    guest = await join(client, party["code"], displayName="Guest")
    at = time.time() * 1000 + 3_600_000
    variables = {"partyId": party["id"], "at": at, "t": 12.5}
    assert (
        error_code(await gql(client, SCHEDULE, variables, token=guest["memberToken"]))
        == "FORBIDDEN"
    )
    held = (await ok(client, SCHEDULE, variables, host.token))["schedulePartyPlay"]
    assert (held["state"], held["playing"], held["timestamp"]) == ("PAUSED", False, 12.5)
    assert held["effectiveAt"] == int(at) and held["version"] == 1
    for wrong in (time.time() * 1000 - 1000, at + 8 * 24 * 3_600_000):
        body = await gql(client, SCHEDULE, {**variables, "at": wrong}, token=host.token)
        assert error_code(body) == "BAD_USER_INPUT"


async def test_roles_kicks_and_hand_over(client: httpx.AsyncClient, services: Services) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    pid = party["id"]
    friend = await make_user(services)
    member = (await join(client, party["code"], friend.token))["member"]
    guest = await join(client, party["code"], displayName="Guest")
    guest_id = guest["member"]["id"]
    promote = {"partyId": pid, "memberId": member["id"], "role": "COHOST"}
    assert error_code(await gql(client, ROLE, promote, token=friend.token)) == "FORBIDDEN"
    assert (await ok(client, ROLE, promote, host.token))["setMemberRole"]["role"] == "COHOST"
    as_member = {"partyId": pid, "memberId": guest_id, "role": "MEMBER"}
    assert error_code(await gql(client, ROLE, as_member, token=host.token)) == "BAD_USER_INPUT"
    # A cohost may move the playhead in a HOST party, but not kick.
    await ok(client, SEEK, {"partyId": pid, "t": 3}, friend.token)
    kick = {"partyId": pid, "memberId": guest_id}
    assert error_code(await gql(client, KICK, kick, token=friend.token)) == "FORBIDDEN"
    assert (await ok(client, KICK, kick, host.token))["kickMember"] is True
    token = guest["memberToken"]
    assert error_code(await gql(client, PARTY_BY, {"id": pid}, token=token)) == "FORBIDDEN"
    rejoin = await gql(client, JOIN, {"code": party["code"]}, token=token)
    assert error_code(rejoin) == "FORBIDDEN"
    # The host leaves: the cohost (longest present with an account) becomes host.
    assert (await ok(client, LEAVE, {"partyId": pid}, host.token))["leaveParty"] is True
    members = (await ok(client, PARTY_BY, {"id": pid}, friend.token))["party"]["members"]
    assert [(m["id"], m["role"]) for m in members] == [(member["id"], "HOST")]
    host_now = await ok(
        client, "query P($id: ID) { party(id: $id) { host { id } } }", {"id": pid}, friend.token
    )
    assert host_now["party"]["host"]["id"] == friend.user.id
    assert error_code(await gql(client, LEAVE, {"partyId": pid}, token=host.token)) == "FORBIDDEN"


async def test_update_and_end_are_for_the_host(
    client: httpx.AsyncClient, services: Services
) -> None:
    host, video_id = await _host(services)
    party = await create(client, host.token, video_id)
    pid = party["id"]
    guest = await join(client, party["code"], displayName="Guest")
    changes = {"partyId": pid, "name": "Renamed", "maxMembers": 10, "chatEnabled": False}
    assert error_code(await gql(client, UPDATE, changes, token=guest["memberToken"])) == "FORBIDDEN"
    updated = (await ok(client, UPDATE, changes, host.token))["updateParty"]
    assert (updated["name"], updated["maxMembers"], updated["chatEnabled"]) == (
        "Renamed",
        10,
        False,
    )
    private = {"partyId": pid, "visibility": "PRIVATE"}
    assert error_code(await gql(client, UPDATE, private, token=host.token)) == "BAD_USER_INPUT"
    locked = (await ok(client, UPDATE, {**private, "password": "s3cret!"}, host.token))[
        "updateParty"
    ]
    assert (locked["visibility"], locked["hasPassword"]) == ("PRIVATE", True)
    assert (
        error_code(
            await gql(client, UPDATE, {"partyId": pid, "maxMembers": 1000}, token=host.token)
        )
        == "BAD_USER_INPUT"
    )
    assert (
        error_code(await gql(client, END, {"partyId": pid}, token=guest["memberToken"]))
        == "FORBIDDEN"
    )
    ended = (await ok(client, END, {"partyId": pid}, host.token))["endParty"]
    assert ended == {"id": pid, "state": "ENDED"}
    assert error_code(await gql(client, END, {"partyId": pid}, token=host.token)) == "PARTY_ENDED"


class TestLimits:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        """Budgets small enough to exhaust in a test."""
        return settings.model_copy(
            update={"rate_limit_party_join": "3/minute", "rate_limit_player_state": "2/minute"}
        )

    async def test_join_and_reports_are_rate_limited(
        self, client: httpx.AsyncClient, services: Services
    ) -> None:
        host, video_id = await _host(services)
        party = await create(client, host.token, video_id)
        await join(client, party["code"], displayName="A")
        guessing = [
            await gql(client, JOIN, {"code": f"guess-{n}", "displayName": "B"}) for n in range(2)
        ]
        assert [error_code(b) for b in guessing] == ["NOT_FOUND", "NOT_FOUND"]
        refused = await gql(client, JOIN, {"code": party["code"], "displayName": "C"})
        assert error_code(refused) == "RATE_LIMITED"
        assert refused["errors"][0]["extensions"]["retry_after"] >= 1
        report = {"partyId": party["id"], "state": "READY", "position": 0}
        for _ in range(2):
            await ok(client, REPORT, report, host.token)
        limited = await gql(client, REPORT, report, token=host.token)
        assert error_code(limited) == "RATE_LIMITED"
