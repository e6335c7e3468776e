"""A watch party's rules, as pure transitions of its live state: no I/O, no clock, no framework.

Each transition checks its rules, changes the `Live` it was handed, and returns the `Change`s it
made (the events members receive, in order); `PartyRuntime.apply` reads, applies and writes with
compare-and-set, so two processes changing one party at once never lose a change.

The playhead (the contract's "Watch parties"): a change by someone allowed to control puts the
party in WAITING until every online member that is not IDLE reports READY at the new position,
or the ready timeout passes (the laggards are marked BUFFERING and left behind); it then plays
from `effective_at`, a server time far enough ahead for every member's measured latency, so a
fast and a slow connection start the same frame. A pause needs no barrier.
"""

from __future__ import annotations

from typing import Any

from models.parties import PartyControl, PartyRole, PartyState, PlayerState
from resolvers.errors import BadInput, DomainError, Forbidden
from resolvers.party_state import (
    Change,
    Live,
    Member,
    iso,
    media_time,
    member_fields,
    ordered,
    party_fields,
    playback_fields,
)

#: A position this close to the new one counts as ready there (seconds).
READY_TOLERANCE_S = 0.5
#: Added to the slowest member's round trip before a synchronised start (ms).
START_MARGIN_MS = 150
#: The slowest round trip a start waits for (ms): a member slower than this starts late.
MAX_LEAD_MS = 2000
#: Positions up to this far past the end are the end (players report durations a bit long).
END_SLACK_S = 1.0
#: A host offline this long hands the party over (ms).
HOST_AWAY_MS = 60_000
#: The largest sync offset a member may report (ms): a player further off is catching up.
MAX_OFFSET_MS = 60_000.0
MIN_RATE = 0.25
MAX_RATE = 4.0


class PartyFull(DomainError):
    code = "PARTY_FULL"


class PartyEnded(DomainError):
    code = "PARTY_ENDED"


class BadPassword(DomainError):
    code = "BAD_PASSWORD"


def require_open(live: Live) -> None:
    if live.ended:
        raise PartyEnded("the party has ended")


def require_member(live: Live, member_id: str | None) -> Member:
    require_open(live)
    member = live.members.get(member_id) if member_id else None
    if member is None:
        raise Forbidden("you are not a member of this party")
    return member


def require_host(live: Live, member_id: str | None) -> Member:
    member = require_member(live, member_id)
    if member.role != PartyRole.HOST:
        raise Forbidden("only the party's host may do this")
    return member


def may_control(live: Live, member: Member) -> bool:
    if live.control == PartyControl.EVERYONE:
        return True
    return member.role in (PartyRole.HOST, PartyRole.COHOST)


def clamp_position(live: Live, value: object) -> float:
    """A finite, non-negative position; up to END_SLACK_S past the end is the end."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadInput("timestamp must be a number", field="timestamp")
    position = float(value)
    if position < 0 or position in (float("inf"), float("-inf")):
        raise BadInput("timestamp must be a finite, non-negative number", field="timestamp")
    if live.duration is not None and position > live.duration:
        if position > live.duration + END_SLACK_S:
            raise BadInput(
                f"timestamp is past the end of the video ({live.duration:g} s)", field="timestamp"
            )
        position = live.duration
    return position


def check_rate(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise BadInput("rate must be a number", field="rate")
    if not MIN_RATE <= value <= MAX_RATE:
        raise BadInput(f"rate must be between {MIN_RATE} and {MAX_RATE}", field="rate")
    return float(value)


def unique_name(live: Live, wanted: str) -> str:
    """`wanted`, or `wanted (2)`, `(3)`, … if another member already has that name."""
    taken = {m.name.casefold() for m in live.members.values()}
    if wanted.casefold() not in taken:
        return wanted
    n = 2
    while f"{wanted} ({n})".casefold() in taken:
        n += 1
    return f"{wanted} ({n})"


# -- transitions ---------------------------------------------------------------------------


def join(live: Live, member: Member) -> list[Change]:
    """Add `member` (already named and roled by the caller); full and banned parties refuse."""
    require_open(live)
    if member.id in live.banned or (member.user_id and member.user_id in live.banned):
        raise Forbidden("you were removed from this party")
    if len(live.members) >= live.max_members:
        raise PartyFull(f"the party is full ({live.max_members} members)")
    member.name = unique_name(live, member.name)
    live.members[member.id] = member
    if member.role == PartyRole.HOST:
        live.host_id = member.id
    return [Change("member_joined", {"member": member_fields(member)})]


def leave(live: Live, member_id: str, now: int, *, kicked: bool = False) -> list[Change]:
    member = live.members.pop(member_id, None)
    if member is None:
        return []
    if kicked:
        live.banned.append(member.user_id or member.id)
    member.online = False
    left = {"member": member_fields(member), "kicked": kicked, "gone": True}
    changes = [Change("member_left", left)]
    changes += _stop_waiting_for(live, member_id, now)
    if live.host_id == member_id:
        live.host_id = None
        changes += hand_over(live, now)
    return changes


def hand_over(live: Live, now: int) -> list[Change]:
    """The longest-present cohost (else member with an account) becomes host, online first."""
    candidates = [m for m in ordered(live) if m.id != live.host_id and m.user_id is not None]
    ranked = sorted(candidates, key=lambda m: (not m.online, m.role != PartyRole.COHOST))
    return hand_over_to(live, ranked[0]) if ranked else []


def host_away(live: Live, now: int) -> list[Change]:
    """Hand over if the host has been offline for HOST_AWAY_MS."""
    host = live.members.get(live.host_id) if live.host_id else None
    if live.ended or host is None or host.online or host.offline_since is None:
        return []
    if now - host.offline_since < HOST_AWAY_MS:
        return []
    return hand_over(live, now)


def set_role(live: Live, actor_id: str | None, member_id: str, role: str, now: int) -> list[Change]:
    require_host(live, actor_id)
    member = live.members.get(member_id)
    if member is None:
        raise BadInput("no such member in this party", field="memberId")
    if role == member.role:
        return []
    if role == PartyRole.GUEST or (member.user_id is None and role != PartyRole.COHOST):
        raise BadInput("guests may be cohosts; accounts cannot be made guests", field="role")
    if role == PartyRole.HOST:
        return hand_over_to(live, member)
    if member.id == live.host_id:
        raise BadInput("the host hands over by making another member host", field="role")
    member.role = role
    return [Change("member_updated", {"member": member_fields(member)})]


def hand_over_to(live: Live, member: Member) -> list[Change]:
    changes = []
    old = live.members.get(live.host_id) if live.host_id else None
    if old is not None:
        old.role = PartyRole.COHOST
        changes.append(Change("member_updated", {"member": member_fields(old)}))
    member.role = PartyRole.HOST
    live.host_id = member.id
    live.host_user_id = member.user_id or live.host_user_id
    changes.append(Change("member_updated", {"member": member_fields(member)}))
    return changes


def kick(live: Live, actor_id: str | None, member_id: str, now: int) -> list[Change]:
    require_host(live, actor_id)
    if member_id == actor_id:
        raise BadInput("the host cannot kick themself; end the party instead", field="memberId")
    if member_id not in live.members:
        raise BadInput("no such member in this party", field="memberId")
    return leave(live, member_id, now, kicked=True)


def _lead_ms(live: Live) -> int:
    latencies = [m.latency_ms or 0.0 for m in live.members.values() if m.online]
    return START_MARGIN_MS + int(min(MAX_LEAD_MS, max(latencies, default=0.0)))


def _playback_changed(live: Live) -> Change:
    return Change("playback", playback_fields(live))


def set_playback(
    live: Live,
    actor_id: str | None,
    *,
    timestamp: object,
    playing: object,
    rate: object,
    now: int,
    ready_timeout_ms: int,
) -> list[Change]:
    member = require_member(live, actor_id)
    if not may_control(live, member):
        raise Forbidden("only the host and cohosts may change the playhead in this party")
    position = clamp_position(live, timestamp)
    if playing is not None and not isinstance(playing, bool):
        raise BadInput("playing must be a boolean", field="playing")
    speed = check_rate(rate)
    playback = live.playback
    will_play = playback.playing if playing is None else playing
    playback.version += 1
    playback.timestamp = position
    playback.rate = speed if speed is not None else playback.rate
    playback.user_id = member.user_id
    playback.member_id = member.id
    playback.server_time = now
    playback.scheduled = False
    if not will_play:
        playback.playing = False
        playback.state = PartyState.PAUSED
        playback.effective_at = None
        playback.deadline = None
        playback.waiting_for = []
        return [_playback_changed(live)]
    waiting = [m.id for m in ordered(live) if m.online and m.player != PlayerState.IDLE]
    playback.playing = False
    playback.state = PartyState.WAITING
    playback.effective_at = None
    playback.deadline = now + ready_timeout_ms
    playback.waiting_for = waiting
    changes = [_playback_changed(live)]
    if not waiting:
        changes += _start(live, now)
    return changes


def _start(live: Live, now: int, *, at: int | None = None) -> list[Change]:
    """WAITING (or a premiere) → PLAYING from `timestamp` at `at` (default: now + the lead)."""
    playback = live.playback
    start = at if at is not None else now + _lead_ms(live)
    playback.state = PartyState.PLAYING
    playback.playing = True
    playback.server_time = start
    playback.effective_at = start
    playback.deadline = None
    playback.waiting_for = []
    playback.scheduled = False
    return [_playback_changed(live)]


def report(
    live: Live,
    member_id: str | None,
    *,
    state: str,
    position: object,
    latency_ms: float | None,
    now: int,
    offset_ms: object = None,
) -> list[Change]:
    """A member's player: READY or BUFFERING at `position`; may release the barrier.
    `offset_ms`: how far the player is from the shared position as its page measures it."""
    member = require_member(live, member_id)
    if state not in (PlayerState.READY, PlayerState.BUFFERING, PlayerState.IDLE):
        raise BadInput("state must be READY, BUFFERING or IDLE", field="state")
    if isinstance(position, bool) or not isinstance(position, int | float) or position != position:
        raise BadInput("position must be a number", field="position")
    if position < 0:
        raise BadInput("position must not be negative", field="position")
    offset = _offset(offset_ms)
    changed = member.player != state
    member.player = state
    member.position = round(float(position), 3)
    if latency_ms is not None:
        member.latency_ms = round(latency_ms, 1)
    if offset is not None and offset != member.offset_ms:
        member.offset_ms = offset  # every member's list shows it: an update when it changes
        changed = True
    playback = live.playback
    released: list[Change] = []
    if playback.state == PartyState.WAITING and member.id in playback.waiting_for:
        ready_here = abs(float(position) - playback.timestamp) <= READY_TOLERANCE_S
        if (state == PlayerState.READY and ready_here) or state == PlayerState.IDLE:
            released = _stop_waiting_for(live, member.id, now)
            changed = True  # the barrier's progress: "waiting for N" counts these
    update = [Change("member_updated", {"member": member_fields(member)}, logged=False)]
    return (update if changed else []) + released


def _offset(offset_ms: object) -> float | None:
    """A reported sync offset in whole ms (0 to MAX_OFFSET_MS), or None when not reported."""
    if offset_ms is None:
        return None
    if (
        isinstance(offset_ms, bool)
        or not isinstance(offset_ms, int | float)
        or not 0 <= offset_ms <= MAX_OFFSET_MS  # NaN fails this too
    ):
        raise BadInput(
            f"the sync offset must be a number of ms from 0 to {MAX_OFFSET_MS:.0f}",
            field="offset_ms",
        )
    return float(round(offset_ms))


def _stop_waiting_for(live: Live, member_id: str, now: int) -> list[Change]:
    playback = live.playback
    if playback.state != PartyState.WAITING or member_id not in playback.waiting_for:
        return []
    playback.waiting_for = [m for m in playback.waiting_for if m != member_id]
    if playback.waiting_for:
        return []
    return _start(live, now)


def barrier_timeout(live: Live, version: int, now: int) -> list[Change]:
    """The ready timeout passed: laggards are marked BUFFERING and the party plays anyway."""
    playback = live.playback
    if live.ended or playback.state != PartyState.WAITING or playback.version != version:
        return []
    if playback.deadline is not None and now < playback.deadline:
        return []
    changes = []
    for member_id in playback.waiting_for:
        member = live.members.get(member_id)
        if member is not None and member.player != PlayerState.BUFFERING:
            member.player = PlayerState.BUFFERING
            changes.append(Change("member_updated", {"member": member_fields(member)}, False))
    return changes + _start(live, now)


def schedule(
    live: Live, actor_id: str | None, *, at: object, timestamp: object, now: int
) -> list[Change]:
    """A premiere: PAUSED at `timestamp` until server time `at`, then everyone plays."""
    member = require_member(live, actor_id)
    if not may_control(live, member):
        raise Forbidden("only the host and cohosts may change the playhead in this party")
    position = clamp_position(live, timestamp)
    if isinstance(at, bool) or not isinstance(at, int | float) or at != at:
        raise BadInput("at must be a server time in epoch milliseconds", field="at")
    if not now < at <= now + 7 * 24 * 3600 * 1000:
        raise BadInput("at must be in the future (within a week)", field="at")
    playback = live.playback
    playback.version += 1
    playback.timestamp = position
    playback.playing = False
    playback.state = PartyState.PAUSED
    playback.server_time = now
    playback.effective_at = int(at)
    playback.deadline = None
    playback.waiting_for = []
    playback.scheduled = True
    playback.user_id = member.user_id
    playback.member_id = member.id
    return [_playback_changed(live)]


def start_scheduled(live: Live, version: int, now: int) -> list[Change]:
    """Announce a premiere's start, ahead of it by the lead so every member starts together."""
    playback = live.playback
    if live.ended or not playback.scheduled or playback.version != version:
        return []
    at = playback.effective_at or now
    if now < at - _lead_ms(live):
        return []
    return _start(live, now, at=max(at, now))


def presence(
    live: Live, member_id: str, *, online: bool, latency_ms: float | None, now: int
) -> list[Change]:
    """A member's first socket opened (online) or its last one closed (MemberLeft)."""
    member = live.members.get(member_id)
    if member is None or live.ended or member.online == online:
        if member is not None and online and latency_ms is not None:
            member.latency_ms = round(latency_ms, 1)
        return []
    member.online = online
    if latency_ms is not None:
        member.latency_ms = round(latency_ms, 1)
    if online:
        member.offline_since = None
        return [Change("member_updated", {"member": member_fields(member)})]
    member.offline_since = now
    # Offline, not gone: it stays in `members` until it comes back, leaves or the party ends.
    left = {"member": member_fields(member), "kicked": False, "gone": False}
    return [Change("member_left", left), *_stop_waiting_for(live, member_id, now)]


def update(live: Live, actor_id: str | None, settings: dict[str, Any]) -> list[Change]:
    """The host changes the party's settings; members receive the party anew (a snapshot)."""
    require_host(live, actor_id)
    for name, value in settings.items():
        setattr(live, name, value)
    return [Change("snapshot", {"party": party_fields(live)})]


def end(live: Live) -> list[Change]:
    if live.ended:
        return []
    live.ended = True
    live.playback.state = PartyState.ENDED
    live.playback.playing = False
    live.playback.waiting_for = []
    live.playback.deadline = None
    return [Change("party_ended", {"party_id": live.id})]


# -- chat and reactions (issue 14) ----------------------------------------------------------

#: The reactions members may send (anything else is BAD_USER_INPUT).
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "👏", "🔥", "🎉")


def require_chat(live: Live, member_id: str | None) -> Member:
    member = require_member(live, member_id)
    if not live.chat_enabled:
        raise Forbidden("chat is turned off in this party")
    return member


def post_message(
    live: Live,
    member_id: str | None,
    *,
    message_id: str,
    body: str,
    reply_to: dict[str, Any] | None,
    now: int,
) -> list[Change]:
    """A chat message, stamped with the party's position when the server accepted it."""
    member = require_chat(live, member_id)
    message = {
        "id": message_id,
        "body": body,
        "author": member_fields(member),
        "reply_to": reply_to,
        "media_time": media_time(live, now),
        "created_at": iso(now),
        "deleted": False,
    }
    return [Change("chat_message", {"message": message})]


def delete_message(
    live: Live, actor_id: str | None, *, message_id: str, author_id: str
) -> list[Change]:
    """Authors delete their own messages; the host and cohosts delete any."""
    member = require_member(live, actor_id)
    if member.id != author_id and member.role not in (PartyRole.HOST, PartyRole.COHOST):
        raise Forbidden("only its author, the host or a cohost may delete a message")
    return [Change("chat_deleted", {"message_id": message_id})]


def retract(live: Live, message_id: str) -> list[Change]:
    """Take back a message that went out but could not be kept."""
    return [Change("chat_deleted", {"message_id": message_id})]


def react(live: Live, member_id: str | None, *, emoji: str, now: int) -> list[Change]:
    member = require_chat(live, member_id)
    reaction = {
        "emoji": emoji,
        "author": member_fields(member),
        "media_time": media_time(live, now),
        "created_at": iso(now),
    }
    return [Change("reaction", {"reaction": reaction})]
