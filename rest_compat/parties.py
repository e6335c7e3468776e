"""Watch parties on the REST face: /api/parties and its twins of the GraphQL mutations.

A party route takes an account token or the party's member token as `Authorization: Bearer`
(`@requires_member`); the resolvers decide what the caller may do. Answers are the snake_case
shapes members receive on `/ws` (rest_compat/party_shapes.py describes them).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import User
from resolvers import parties, party_playback
from resolvers.auth import Caller
from resolvers.errors import Forbidden, NotFound
from resolvers.party_state import Live, member_fields, party_fields, playback_fields
from resolvers.urls import invite_url
from rest_compat.common import json_body, party_caller, public_base, services
from rest_compat.operations import JSON, operation, requires_member, requires_user
from rest_compat.party_shapes import (
    CreatePartyBody,
    JoinBody,
    PartyJoinOut,
    PartyMemberOut,
    PartyOut,
    PartyPlaybackOut,
    PartyTimeBody,
    ReadyBody,
    RoleBody,
    ScheduleBody,
    UpdatePartyBody,
)

#: what a member's party call can be refused with besides 401/403 (auth, membership, roles)
REFUSALS = (400, 404, 410)


def party_out(request: Request, live: Live) -> dict[str, Any]:
    return {
        **party_fields(live),
        "invite_url": invite_url(base=public_base(request), code=live.code),
    }


def _id(request: Request) -> str:
    return str(request.path_params["party_id"])


@operation(
    "start a party around a transcoded video; the caller is its host",
    ok=(201, PartyOut),
    errors=(400, 404),
    body=CreatePartyBody,
)
@requires_user
async def create_party(request: Request, user: User) -> Response:
    body = await json_body(request, CreatePartyBody)
    svc = services(request)
    live = await parties.create_party(
        runtime=svc.parties,
        hashing=svc.hashing,
        user=user,
        video_id=body.video_id,
        name=body.name,
        visibility=body.visibility,
        control=body.control,
        password=body.password,
        max_members=body.max_members,
    )
    return JSON(party_out(request, live), status_code=201)


@operation(
    "a party, for its members (outsiders: 403; a PRIVATE party or none: 404)",
    ok=(200, PartyOut),
    errors=(404,),
)
@requires_member
async def get_party(request: Request, caller: Caller) -> Response:
    view = await parties.find_party(
        runtime=services(request).parties, caller=caller, party_id=_id(request)
    )
    if view is None:
        raise NotFound("party not found")
    if view.member is None:
        parties.actor(view.live, caller)  # raises: no token, or an outsider (403)
        raise Forbidden("you are not a member of this party")
    return JSON(party_out(request, view.live))


@operation(
    "join by invite code: with an account or member token, or as a guest with a display name "
    "(rate-limited per client address)",
    ok=(200, PartyJoinOut),
    errors=(400, 401, 403, 404, 409, 410),
    body=JoinBody,
)
async def join_party(request: Request) -> Response:
    body = await json_body(request, JoinBody)
    svc = services(request)
    joined = await parties.join_party(
        runtime=svc.parties,
        hashing=svc.hashing,
        limiter=svc.rate_limiter,
        settings=svc.settings,
        secret=svc.jwt_secret,
        caller=await party_caller(request),
        address=request.client.host if request.client else None,
        code=body.code,
        password=body.password,
        display_name=body.display_name,
    )
    return JSON(
        {
            "party": party_out(request, joined.live),
            "member": member_fields(joined.member),
            "member_token": joined.member_token,
        }
    )


@operation("leave the party (a leaving host hands over)", ok=(204, None), errors=REFUSALS)
@requires_member
async def leave_party(request: Request, caller: Caller) -> Response:
    await parties.leave_party(
        runtime=services(request).parties, caller=caller, party_id=_id(request)
    )
    return Response(status_code=204)


@operation("end the party for everyone (the host)", ok=(200, PartyOut), errors=REFUSALS)
@requires_member
async def end_party(request: Request, caller: Caller) -> Response:
    live = await parties.end_party(
        runtime=services(request).parties, caller=caller, party_id=_id(request)
    )
    return JSON(party_out(request, live))


@operation(
    "change the party's settings (the host); absent fields stay as they are",
    ok=(200, PartyOut),
    errors=REFUSALS,
    body=UpdatePartyBody,
)
@requires_member
async def update_party(request: Request, caller: Caller) -> Response:
    body = await json_body(request, UpdatePartyBody)
    svc = services(request)
    live = await parties.update_party(
        runtime=svc.parties,
        hashing=svc.hashing,
        caller=caller,
        party_id=_id(request),
        name=body.name,
        visibility=body.visibility,
        control=body.control,
        password=body.password,
        max_members=body.max_members,
        chat_enabled=body.chat_enabled,
    )
    return JSON(party_out(request, live))


@operation(
    "move the party's playhead (members allowed by `control`); playing waits for the ready barrier",
    ok=(201, PartyPlaybackOut),
    errors=REFUSALS,
    body=PartyTimeBody,
)
@requires_member
async def set_party_time(request: Request, caller: Caller) -> Response:
    body = await json_body(request, PartyTimeBody)
    live = await party_playback.set_party_playback(
        runtime=services(request).parties,
        caller=caller,
        party_id=_id(request),
        timestamp=body.timestamp,
        playing=body.playing,
        rate=body.rate,
    )
    return JSON(playback_fields(live), status_code=201)


@operation(
    "a premiere: paused at `timestamp` until server time `at`, then everyone plays",
    ok=(201, PartyPlaybackOut),
    errors=REFUSALS,
    body=ScheduleBody,
)
@requires_member
async def schedule_party_play(request: Request, caller: Caller) -> Response:
    body = await json_body(request, ScheduleBody)
    live = await party_playback.schedule_party_play(
        runtime=services(request).parties,
        caller=caller,
        party_id=_id(request),
        at=body.at,
        timestamp=body.timestamp,
    )
    return JSON(playback_fields(live), status_code=201)


@operation(
    "the caller's player state (rate-limited per member); may release the ready barrier",
    ok=(200, PartyMemberOut),
    errors=REFUSALS,
    body=ReadyBody,
)
@requires_member
async def report_ready(request: Request, caller: Caller) -> Response:
    body = await json_body(request, ReadyBody)
    svc = services(request)
    member = await party_playback.report_player_state(
        runtime=svc.parties,
        limiter=svc.rate_limiter,
        caller=caller,
        party_id=_id(request),
        state=body.state,
        position=body.position,
        offset_ms=body.offset_ms,
    )
    return JSON(member_fields(member))


@operation(
    "change a member's role (the host)", ok=(200, PartyMemberOut), errors=REFUSALS, body=RoleBody
)
@requires_member
async def set_member_role(request: Request, caller: Caller) -> Response:
    body = await json_body(request, RoleBody)
    member = await parties.set_member_role(
        runtime=services(request).parties,
        caller=caller,
        party_id=_id(request),
        member_id=str(request.path_params["member_id"]),
        role=body.role,
    )
    return JSON(member_fields(member))


@operation(
    "kick a member (the host): its sockets close and it cannot rejoin",
    ok=(204, None),
    errors=REFUSALS,
)
@requires_member
async def kick_member(request: Request, caller: Caller) -> Response:
    await parties.kick_member(
        runtime=services(request).parties,
        caller=caller,
        party_id=_id(request),
        member_id=str(request.path_params["member_id"]),
    )
    return Response(status_code=204)


routes = [
    Route("/api/parties", create_party, methods=["POST"]),
    Route("/api/parties/join", join_party, methods=["POST"]),
    Route("/api/parties/{party_id}", get_party, methods=["GET"]),
    Route("/api/parties/{party_id}", update_party, methods=["PATCH"]),
    Route("/api/parties/{party_id}/leave", leave_party, methods=["POST"]),
    Route("/api/parties/{party_id}/end", end_party, methods=["POST"]),
    Route("/api/parties/{party_id}/time", set_party_time, methods=["PUT"]),
    Route("/api/parties/{party_id}/schedule", schedule_party_play, methods=["POST"]),
    Route("/api/parties/{party_id}/ready", report_ready, methods=["POST"]),
    Route("/api/parties/{party_id}/members/{member_id}/role", set_member_role, methods=["PUT"]),
    Route("/api/parties/{party_id}/members/{member_id}", kick_member, methods=["DELETE"]),
]
