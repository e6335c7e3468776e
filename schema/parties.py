"""Watch parties on the GraphQL face: the queries, the mutations and `partyEvents`.

Party calls take an account token or a party member token (`Context.caller`); the types are
`schema/party_types.py`'s. Who may do what is decided by `resolvers/parties.py` and the rules.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from starlette.websockets import WebSocket

from realtime.delivery import Feed, Listener, keepalive, unrendered
from resolvers import parties, party_playback
from resolvers.auth import Caller
from resolvers.errors import DomainError
from resolvers.party_runtime import party_topic
from resolvers.party_state import Live, member_fields, party_fields, playback_fields
from schema.context import Context
from schema.party_types import (
    MemberLeft,
    Party,
    PartyControl,
    PartyEnded,
    PartyEvent,
    PartyEventRoot,
    PartyJoin,
    PartyMember,
    PartyPlayback,
    PartyRole,
    PartyVisibility,
    PlayerState,
    party_event,
)
from schema.permissions import signed_in, signed_in_or_member

PartyId = Annotated[strawberry.ID, strawberry.argument(description="The party's id.")]
MemberId = Annotated[
    strawberry.ID, strawberry.argument(description="The member's id (`PartyMember.id`).")
]
CALLERS = "Send an account token or this party's member token."


def _party(live: Live, *, member: bool = True) -> Party:
    return Party.from_fields(party_fields(live), member=member)


def _is_member(live: Live, caller: Caller) -> bool:
    """For lists: a member token of another party just means "not a member" here."""
    try:
        return parties.member_of(live, caller) is not None
    except DomainError:
        return False


@strawberry.type
class PartyQuery:
    @strawberry.field(
        description="A party by id or by invite code (give one). Null when there is none, and "
        "for a PRIVATE party the caller is not a member of (the same answer). " + CALLERS
    )
    async def party(
        self,
        info: strawberry.Info[Context],
        id: Annotated[
            strawberry.ID | None, strawberry.argument(description="The party's id.")
        ] = None,
        code: Annotated[
            str | None, strawberry.argument(description="The invite code (`Party.code`).")
        ] = None,
    ) -> Party | None:
        view = await parties.find_party(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(id) if id is not None else None,
            code=code,
        )
        return _party(view.live, member=view.member is not None) if view else None

    @strawberry.field(
        description="The video's PUBLIC parties that have not ended, newest first (at most "
        "100). Anyone may call it."
    )
    async def parties(
        self,
        info: strawberry.Info[Context],
        video_id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
    ) -> list[Party]:
        listed = await parties.public_parties(
            runtime=info.context.services.parties, video_id=str(video_id)
        )
        caller = await info.context.caller()
        return [_party(live, member=_is_member(live, caller)) for live in listed]

    @strawberry.field(
        description="The parties the signed-in user is in that have not ended, newest first "
        "(at most 100). Account tokens only.",
        extensions=signed_in(),
    )
    async def my_parties(self, info: strawberry.Info[Context]) -> list[Party]:
        mine = await parties.my_parties(
            runtime=info.context.services.parties, user=info.context.user
        )
        return [_party(live) for live in mine]


@strawberry.type
class PartyMutation:
    @strawberry.mutation(
        description="Start a party around a TRANSCODED video, with the caller as its host "
        "(signed-in users; a member token is UNAUTHENTICATED).",
        extensions=signed_in(),
    )
    async def create_party(
        self,
        info: strawberry.Info[Context],
        video_id: Annotated[strawberry.ID, strawberry.argument(description="The video's UUID.")],
        name: Annotated[
            str | None,
            strawberry.argument(description='1 to 100 characters; default: "<username>\'s party".'),
        ] = None,
        visibility: Annotated[
            PartyVisibility,  # type: ignore[valid-type]
            strawberry.argument(description="PUBLIC, UNLISTED or PRIVATE (needs a password)."),
        ] = PartyVisibility.UNLISTED,  # type: ignore[attr-defined]
        control: Annotated[
            PartyControl,  # type: ignore[valid-type]
            strawberry.argument(description="Who may change the playhead."),
        ] = PartyControl.HOST,  # type: ignore[attr-defined]
        password: Annotated[
            str | None,
            strawberry.argument(description="4 to 128 characters; joining then needs it."),
        ] = None,
        max_members: Annotated[
            int, strawberry.argument(description="2 to 500, the host included.")
        ] = 50,
    ) -> Party:
        services = info.context.services
        live = await parties.create_party(
            runtime=services.parties,
            hashing=services.hashing,
            user=info.context.user,
            video_id=str(video_id),
            name=name,
            visibility=visibility,
            control=control,
            password=password,
            max_members=max_members,
        )
        return _party(live)

    @strawberry.mutation(
        description="Join by invite code: signed in, with this party's member token (again), "
        "or as a guest with a `displayName`. BAD_PASSWORD, PARTY_FULL, PARTY_ENDED, NOT_FOUND "
        "(unknown code), FORBIDDEN (kicked); RATE_LIMITED per client address "
        "(COWATCH_RATE_LIMIT_PARTY_JOIN)."
    )
    async def join_party(
        self,
        info: strawberry.Info[Context],
        code: Annotated[str, strawberry.argument(description="The invite code.")],
        password: Annotated[
            str | None, strawberry.argument(description="The party's password, if it has one.")
        ] = None,
        display_name: Annotated[
            str | None,
            strawberry.argument(
                description="1 to 40 characters, trimmed, no control characters: required for "
                "guests; default for accounts: the username."
            ),
        ] = None,
    ) -> PartyJoin:
        services = info.context.services
        joined = await parties.join_party(
            runtime=services.parties,
            hashing=services.hashing,
            limiter=services.rate_limiter,
            settings=services.settings,
            secret=services.jwt_secret,
            caller=await info.context.caller(),
            address=info.context.address,
            code=code,
            password=password,
            display_name=display_name,
        )
        return PartyJoin(
            party=_party(joined.live),
            member=PartyMember.from_fields(member_fields(joined.member)),
            member_token=joined.member_token,
        )

    @strawberry.mutation(
        description="Leave the party (members). A leaving host hands over to the "
        "longest-present cohost, else member with an account. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def leave_party(self, info: strawberry.Info[Context], party_id: PartyId) -> bool:
        return await parties.leave_party(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
        )

    @strawberry.mutation(
        description="End the party for everyone (the host). " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def end_party(self, info: strawberry.Info[Context], party_id: PartyId) -> Party:
        live = await parties.end_party(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
        )
        return _party(live)

    @strawberry.mutation(
        description="Move the playhead (members allowed by `control`, else FORBIDDEN). Playing "
        "waits for the members to be READY (WAITING), then starts everyone at `effectiveAt`; a "
        "pause applies at once. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def set_party_playback(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        timestamp: Annotated[
            float,
            strawberry.argument(
                description="Seconds, 0 to the duration; up to 1 s past it is the end."
            ),
        ],
        playing: Annotated[
            bool | None, strawberry.argument(description="Play or pause; null: unchanged.")
        ] = None,
        rate: Annotated[
            float | None, strawberry.argument(description="Speed, 0.25 to 4.0; null: unchanged.")
        ] = None,
    ) -> PartyPlayback:
        live = await party_playback.set_party_playback(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
            timestamp=timestamp,
            playing=playing,
            rate=rate,
        )
        return PartyPlayback.from_fields(playback_fields(live))

    @strawberry.mutation(
        description="A premiere: hold PAUSED at `timestamp` until server time `at`, then every "
        "member starts together (members allowed by `control`). " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def schedule_party_play(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        at: Annotated[
            float,
            strawberry.argument(
                description="Server epoch ms (see `serverClock`), in the future, within 7 days."
            ),
        ],
        timestamp: Annotated[
            float, strawberry.argument(description="Seconds into the video to start from.")
        ],
    ) -> PartyPlayback:
        live = await party_playback.schedule_party_play(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
            at=at,
            timestamp=timestamp,
        )
        return PartyPlayback.from_fields(playback_fields(live))

    @strawberry.mutation(
        description="The caller's player is READY or BUFFERING at `position` (members); may "
        "release the ready barrier. RATE_LIMITED per member (COWATCH_RATE_LIMIT_PLAYER_STATE). "
        + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def report_player_state(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        state: Annotated[
            PlayerState,  # type: ignore[valid-type]
            strawberry.argument(description="READY, BUFFERING, or IDLE (not waited for)."),
        ],
        position: Annotated[
            float, strawberry.argument(description="Seconds, where the player is (≥ 0).")
        ],
        offset_ms: Annotated[
            float | None,
            strawberry.argument(
                description="How far the player is from the party's shared position as the "
                "page measures it, ms (0 to 60,000); shown in the member list. Optional."
            ),
        ] = None,
    ) -> PartyMember:
        services = info.context.services
        member = await party_playback.report_player_state(
            runtime=services.parties,
            limiter=services.rate_limiter,
            caller=await info.context.caller(),
            party_id=str(party_id),
            state=state,
            position=position,
            offset_ms=offset_ms,
        )
        return PartyMember.from_fields(member_fields(member))

    @strawberry.mutation(
        description="Change a member's role (the host). HOST hands the party over (the old "
        "host becomes COHOST); guests may be COHOST or GUEST only. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def set_member_role(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        member_id: MemberId,
        role: Annotated[
            PartyRole,  # type: ignore[valid-type]
            strawberry.argument(description="HOST, COHOST or MEMBER (GUEST for guests)."),
        ],
    ) -> PartyMember:
        member = await parties.set_member_role(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
            member_id=str(member_id),
            role=role,
        )
        return PartyMember.from_fields(member_fields(member))

    @strawberry.mutation(
        description="Remove a member (the host): its sockets close and neither its account nor "
        "its token may join again. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def kick_member(
        self, info: strawberry.Info[Context], party_id: PartyId, member_id: MemberId
    ) -> bool:
        return await parties.kick_member(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            party_id=str(party_id),
            member_id=str(member_id),
        )

    @strawberry.mutation(
        description="Change the party's settings (the host); null leaves a setting as it is. "
        "Members receive the party anew (PartySnapshot). " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def update_party(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        name: Annotated[str | None, strawberry.argument(description="1 to 100 characters.")] = None,
        visibility: Annotated[
            PartyVisibility | None,  # type: ignore[valid-type]
            strawberry.argument(description="PRIVATE needs a password (set or already there)."),
        ] = None,
        control: Annotated[
            PartyControl | None,  # type: ignore[valid-type]
            strawberry.argument(description="Who may change the playhead."),
        ] = None,
        password: Annotated[
            str | None,
            strawberry.argument(description='4 to 128 characters; "" removes the password.'),
        ] = None,
        max_members: Annotated[
            int | None,
            strawberry.argument(description="2 to 500; members already in stay."),
        ] = None,
        chat_enabled: Annotated[
            bool | None, strawberry.argument(description="Whether members may chat.")
        ] = None,
    ) -> Party:
        services = info.context.services
        live = await parties.update_party(
            runtime=services.parties,
            hashing=services.hashing,
            caller=await info.context.caller(),
            party_id=str(party_id),
            name=name,
            visibility=visibility,
            control=control,
            password=password,
            max_members=max_members,
            chat_enabled=chat_enabled,
        )
        return _party(live)


@strawberry.type
class PartySubscription:
    @strawberry.subscription(
        description="A party's events for its members: PartySnapshot first, then every event "
        "in order; PartyEnded is the last, as is the caller's own MemberLeft when kicked. The "
        "member is online while a subscription of it (here or on /ws) is open. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def party_events(
        self, info: strawberry.Info[Context], party_id: PartyId
    ) -> AsyncGenerator[PartyEvent, None]:
        services = info.context.services
        caller = await info.context.caller()
        await parties.require_view(runtime=services.parties, caller=caller, party_id=str(party_id))
        # Join the topic before reading the snapshot, so nothing published in between is lost:
        # the listener holds what arrives until it starts after the snapshot's version.
        feed = Feed()
        listener = Listener(feed, unrendered, active=False, collapsible=False)
        await services.bus.subscribe(party_topic(str(party_id)), listener)
        try:
            first, member = await party_playback.snapshot(
                runtime=services.parties, caller=caller, party_id=str(party_id)
            )
            listener.start(first)
            latency = _heartbeat(info.context)
            await services.parties.socket_opened(str(party_id), member.id, latency)
            try:
                while True:
                    await feed.event.wait()
                    feed.event.clear()
                    for event in feed.take():
                        root = party_event(event)
                        if root is not None:
                            yield root
                        if _last(root, member.id):
                            return
            finally:
                await services.parties.socket_closed(str(party_id), member.id)
        finally:
            await services.bus.unsubscribe(party_topic(str(party_id)), listener)


def _heartbeat(context: Context) -> float | None:
    """A party subscription makes its member online: ping its socket often enough to notice a
    vanished tab (the server's keepalive, where it offers one); the socket's round trip (ms)."""
    found = keepalive(context.request.scope) if isinstance(context.request, WebSocket) else None
    if found is None:
        return None
    settings = context.services.settings
    found.set(settings.party_ping_interval_s, settings.party_ping_timeout_s)
    rtt = found.rtt()
    return round(rtt * 1000, 1) if rtt else None


def _last(root: PartyEventRoot | None, member_id: str) -> bool:
    if isinstance(root, PartyEnded):
        return True
    return isinstance(root, MemberLeft) and root.kicked and root.member.id == member_id
