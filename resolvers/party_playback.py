"""A party's playhead, its ready barrier and its premieres; what a new listener sees first."""

from __future__ import annotations

from collections.abc import Callable

from realtime.events import Event
from resolvers import party_rules as rules
from resolvers.auth import Caller
from resolvers.errors import DomainError, Forbidden
from resolvers.parties import actor, require_view
from resolvers.party_runtime import PartyRuntime, now_ms, party_topic
from resolvers.party_state import Live, Member, media_time, party_fields
from resolvers.ratelimit import RateClass, RateLimiter


async def set_party_playback(
    *,
    runtime: PartyRuntime,
    caller: Caller,
    party_id: str,
    timestamp: object,
    playing: object = None,
    rate: object = None,
) -> Live:
    """Move the party's playhead; playing waits for the members' READY (the barrier)."""
    timeout_ms = int(runtime.settings.party_ready_timeout_s * 1000)
    applied = await runtime.apply(
        party_id,
        lambda live: rules.set_playback(
            live,
            actor(live, caller),
            timestamp=timestamp,
            playing=playing,
            rate=rate,
            now=now_ms(),
            ready_timeout_ms=timeout_ms,
        ),
    )
    return applied.live


async def schedule_party_play(
    *, runtime: PartyRuntime, caller: Caller, party_id: str, at: object, timestamp: object
) -> Live:
    """A premiere: the party holds PAUSED at `timestamp` until server time `at` (epoch ms)."""
    applied = await runtime.apply(
        party_id,
        lambda live: rules.schedule(
            live, actor(live, caller), at=at, timestamp=timestamp, now=now_ms()
        ),
    )
    return applied.live


async def report_player_state(
    *,
    runtime: PartyRuntime,
    limiter: RateLimiter,
    caller: Caller,
    party_id: str,
    state: object,
    position: object,
    latency_ms: float | None = None,
    offset_ms: object = None,
) -> Member:
    """A member's player is READY or BUFFERING at `position` (rate-limited per member);
    `offset_ms`, if given, is how far it is from the shared position as its page measures it."""
    member_id = await _reporter(runtime, limiter, caller, party_id)
    live = await runtime.homes.report(
        party_id,
        member_id,
        state=str(state),
        position=position,
        latency_ms=latency_ms,
        offset_ms=offset_ms,
    )
    member = live.members.get(member_id)
    if member is None:  # kicked in the same write
        raise Forbidden("you are not a member of this party")
    return member


async def hand_player_state(
    *,
    runtime: PartyRuntime,
    limiter: RateLimiter,
    caller: Caller,
    party_id: str,
    state: object,
    position: object,
    latency_ms: float | None,
    refused: Callable[[DomainError], None],
    member_id: str | None = None,
    offset_ms: object = None,
) -> None:
    """`report_player_state` for a socket, which answers a report only to refuse it: handed to
    the party's home without waiting for the state after it; a refusal that the home sends back
    later goes to `refused` (one found here is raised). `member_id`: the caller's, when the
    socket already knows it (its party subscription); the transition checks it again."""
    member_id = await _reporter(runtime, limiter, caller, party_id, member_id)
    await runtime.homes.hand(
        party_id,
        member_id,
        state=str(state),
        position=position,
        latency_ms=latency_ms,
        refused=refused,
        offset_ms=offset_ms,
    )


async def _reporter(
    runtime: PartyRuntime,
    limiter: RateLimiter,
    caller: Caller,
    party_id: str,
    member_id: str | None = None,
) -> str:
    """The reporting caller's member id, counted against its player-report budget."""
    # Who the caller is, for the rate limit (the transition checks it again on the state):
    # from this process's last copy, read anew if that copy does not know the caller yet.
    if member_id is None:
        try:
            member_id = actor(await runtime.peek(party_id), caller)
        except DomainError:
            member_id = actor(await runtime.get(party_id), caller)
    await limiter.check(RateClass.PLAYER_STATE, f"member:{member_id}")
    return member_id


async def snapshot(*, runtime: PartyRuntime, caller: Caller, party_id: str) -> tuple[Event, Member]:
    """What a member's new subscription starts with: the whole party, at the topic's version."""
    view = await require_view(runtime=runtime, caller=caller, party_id=party_id)
    assert view.member is not None
    live = view.live
    now = now_ms()
    event = Event(
        topic=party_topic(party_id),
        version=live.seq,
        kind="snapshot",
        data={
            "party": party_fields(live),
            "server_time": now,
            "media_time": media_time(live, now),
        },
    )
    return event, view.member
