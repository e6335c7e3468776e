"""A watch party's live state: what every process sees of a party, and how members see it.

`Live` is the whole party (settings, members, playhead), stored in the live store
(`models/live.py`) and changed only by the transitions of `resolvers/party_rules.py`. The
`*_fields` functions give the JSON shapes members receive (snake_case, as REST and `/ws` send
them; the GraphQL face builds its types from the same dicts).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from models.parties import PartyControl, PartyState, PartyVisibility, PlayerState


class Member(msgspec.Struct, kw_only=True):
    id: str
    name: str
    role: str
    user_id: str | None = None
    username: str | None = None
    joined_at: int
    player: str = PlayerState.IDLE
    position: float | None = None
    latency_ms: float | None = None
    #: how far its player is from the shared position as its page measures it (ms, ≥ 0)
    offset_ms: float | None = None
    online: bool = False
    #: when its last socket closed (ms): a host away for HOST_AWAY_MS hands over
    offline_since: int | None = None


class Playback(msgspec.Struct, kw_only=True):
    timestamp: float = 0.0
    playing: bool = False
    rate: float = 1.0
    #: when `timestamp` was the position (epoch ms); in the future for a scheduled start
    server_time: int = 0
    #: strictly increasing per party, one per change of the playhead
    version: int = 0
    user_id: str | None = None
    member_id: str | None = None
    state: str = PartyState.PAUSED
    #: when members start playing `timestamp` (epoch ms), after a barrier or for a premiere
    effective_at: int | None = None
    #: WAITING: when the barrier gives up (ms), and the members it still waits for
    deadline: int | None = None
    waiting_for: list[str] = msgspec.field(default_factory=list)
    #: a premiere: the start is announced (PLAYING) once `effective_at` is this close (ms)
    scheduled: bool = False


class Live(msgspec.Struct, kw_only=True):
    id: str
    code: str
    name: str
    video_id: str
    duration: float | None = None
    visibility: str = PartyVisibility.UNLISTED
    control: str = PartyControl.HOST
    max_members: int = 50
    chat_enabled: bool = True
    has_password: bool = False
    host_id: str | None = None
    host_user_id: str
    created_at: int
    ended: bool = False
    #: the party topic's version: one per event members received
    seq: int = 0
    playback: Playback = msgspec.field(default_factory=Playback)
    members: dict[str, Member] = msgspec.field(default_factory=dict)
    #: accounts and member ids that were kicked (they cannot join again)
    banned: list[str] = msgspec.field(default_factory=list)


def live_key(party_id: str) -> str:
    """The party's key in the live store (its record, presence and home)."""
    return f"party:{party_id}"


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Live)


def encode(live: Live) -> bytes:
    return _encoder.encode(live)


def decode(raw: bytes) -> Live:
    return _decoder.decode(raw)


@dataclass(frozen=True)
class Change:
    """One event for the members: its kind, its fields, and whether the party's log keeps it."""

    kind: str
    data: dict[str, Any]
    logged: bool = True


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def member_fields(member: Member) -> dict[str, Any]:
    user = {"id": member.user_id, "username": member.username} if member.user_id else None
    return {
        "id": member.id,
        "display_name": member.name,
        "role": member.role,
        "user": user,
        "online": member.online,
        "player": member.player,
        "position": member.position,
        "latency_ms": member.latency_ms,
        "offset_ms": member.offset_ms,
        "joined_at": iso(member.joined_at),
    }


def playback_fields(live: Live) -> dict[str, Any]:
    playback = live.playback
    return {
        "party_id": live.id,
        "timestamp": playback.timestamp,
        "playing": playback.playing,
        "rate": playback.rate,
        "server_time": playback.server_time,
        "version": playback.version,
        "user_id": playback.user_id,
        "member_id": playback.member_id,
        "state": playback.state,
        "effective_at": playback.effective_at,
        "waiting_for": [
            member_fields(live.members[m]) for m in playback.waiting_for if m in live.members
        ],
    }


def party_fields(live: Live) -> dict[str, Any]:
    """The party as a member sees it (a snapshot)."""
    return {
        "id": live.id,
        "code": live.code,
        "name": live.name,
        "video_id": live.video_id,
        "host_user_id": live.host_user_id,
        "host_member_id": live.host_id,
        "visibility": live.visibility,
        "control": live.control,
        "state": PartyState.ENDED if live.ended else live.playback.state,
        "max_members": live.max_members,
        "has_password": live.has_password,
        "chat_enabled": live.chat_enabled,
        "created_at": iso(live.created_at),
        "members": [member_fields(m) for m in ordered(live)],
        "playback": playback_fields(live),
    }


def ordered(live: Live) -> list[Member]:
    return sorted(live.members.values(), key=lambda m: (m.joined_at, m.id))


def position_at(playback: Playback, now: int) -> float:
    """Where the party's playhead is at `now` (epoch ms)."""
    if not playback.playing or playback.state != PartyState.PLAYING:
        return playback.timestamp
    elapsed = max(0, now - playback.server_time) / 1000
    return playback.timestamp + elapsed * playback.rate


def media_time(live: Live, now: int) -> float:
    position = position_at(live.playback, now)
    if live.duration is not None:
        position = min(position, live.duration)
    return round(max(position, 0.0), 3)
