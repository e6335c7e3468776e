"""Watch party shapes on the REST face: request bodies and the answers' models.

Answers are the dicts of `resolvers/party_state.py` (what `/ws` members receive too) rendered as
they are; these models describe them for /openapi.json, and the tests check every answer against
that. Values are checked by the resolvers (their messages name the field), so bodies declare
types and ranges for the document and leave the rules to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.parties import PartyControl, PartyRole, PartyState, PartyVisibility, PlayerState
from resolvers import parties
from resolvers.party_rules import MAX_RATE, MIN_RATE
from rest_compat.operations import Shape

Visibility = Literal["PUBLIC", "UNLISTED", "PRIVATE"]
Control = Literal["HOST", "EVERYONE"]
Role = Literal["HOST", "COHOST", "MEMBER", "GUEST"]
Player = Literal["READY", "BUFFERING", "IDLE"]


def _number(**schema: Any) -> Any:
    """A field the resolver type-checks (a string or NaN gets its precise message there)."""

    def extra(field: dict[str, Any]) -> None:
        field.pop("default", None)
        field.update({"type": "number", **schema})

    return extra


class Body(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)


class CreatePartyBody(Body):
    video_id: str = Field(description="The video's UUID; it must be TRANSCODED.")
    name: str | None = Field(
        default=None,
        description='Default: "<username>\'s party".',
        json_schema_extra={"maxLength": parties.MAX_PARTY_NAME},
    )
    visibility: Visibility = Field(default="UNLISTED", description="PRIVATE needs a password.")
    control: Control = Field(default="HOST", description="Who may change the playhead.")
    password: str | None = Field(
        default=None,
        description="Joining then needs it.",
        json_schema_extra={"minLength": parties.MIN_PASSWORD, "maxLength": parties.MAX_PASSWORD},
    )
    max_members: int = Field(default=50, ge=2, le=parties.MAX_MEMBERS, description="Host included.")


class JoinBody(Body):
    code: str = Field(description="The invite code.")
    password: str | None = Field(default=None, description="The party's password, if any.")
    display_name: str | None = Field(
        default=None,
        description="Required for guests (no token); default for accounts: the username.",
        json_schema_extra={"minLength": 1, "maxLength": parties.MAX_DISPLAY_NAME},
    )


class PartyTimeBody(Body):
    timestamp: object = Field(
        description="Seconds, 0 to the duration; up to 1 s past it is the end.",
        json_schema_extra=_number(minimum=0),
    )
    playing: bool | None = Field(default=None, description="Play or pause; absent: unchanged.")
    rate: object = Field(
        default=None,
        description="Speed; absent: unchanged.",
        json_schema_extra=_number(minimum=MIN_RATE, maximum=MAX_RATE),
    )


class ScheduleBody(Body):
    at: object = Field(
        description="Server epoch ms (see GET /api/time), in the future, within 7 days.",
        json_schema_extra=_number(),
    )
    timestamp: object = Field(
        description="Seconds into the video to start from.", json_schema_extra=_number(minimum=0)
    )


class ReadyBody(Body):
    state: Player = Field(description="READY, BUFFERING, or IDLE (not waited for).")
    position: object = Field(
        description="Seconds, where the player is.", json_schema_extra=_number(minimum=0)
    )
    offset_ms: object = Field(
        default=None,
        description="How far the player is from the party's shared position as the page "
        "measures it, ms (0 to 60,000); the member list shows it. Optional.",
        json_schema_extra=_number(minimum=0, maximum=60_000),
    )


class RoleBody(Body):
    role: Role = Field(description="HOST hands the party over; guests: COHOST or GUEST only.")


class UpdatePartyBody(Body):
    name: str | None = Field(default=None, json_schema_extra={"maxLength": parties.MAX_PARTY_NAME})
    visibility: Visibility | None = Field(default=None, description="PRIVATE needs a password.")
    control: Control | None = None
    password: str | None = Field(default=None, description='"" removes the password.')
    max_members: int | None = Field(default=None, ge=2, le=parties.MAX_MEMBERS)
    chat_enabled: bool | None = None


class MemberUser(Shape):
    id: str = Field(description="The account's UUID.")
    username: str


class PartyMemberOut(Shape):
    id: str = Field(description="The member's id (not the user's).")
    display_name: str
    role: PartyRole
    user: MemberUser | None = Field(description="Null for a guest.")
    online: bool = Field(description="At least one socket of it subscribes to the party.")
    player: PlayerState = Field(description="IDLE until its first report.")
    position: float | None = Field(description="Seconds, as last reported.")
    latency_ms: float | None = Field(description="Measured round trip, ms.")
    offset_ms: float | None = Field(
        description="How far its player is from the shared position, ms, as its page last "
        "reported it (whole ms, ≥ 0; in sync, the ±N ms its indicator shows); null until "
        "reported."
    )
    joined_at: datetime


class PartyPlaybackOut(Shape):
    party_id: str
    timestamp: float = Field(ge=0, description="Seconds into the video at `server_time`.")
    playing: bool
    rate: float = Field(ge=MIN_RATE, le=MAX_RATE)
    server_time: int = Field(description="When `timestamp` is the position, epoch ms.")
    version: int = Field(ge=0, description="Strictly increasing per party.")
    user_id: str | None = Field(description="The account that made the change; null: a guest.")
    member_id: str | None = Field(description="The member that made the change.")
    state: PartyState
    effective_at: int | None = Field(description="When members start playing, epoch ms.")
    waiting_for: list[PartyMemberOut] = Field(description="WAITING: who is not READY yet.")


class PartyOut(Shape):
    id: str
    code: str = Field(description="The invite code.")
    name: str
    video_id: str
    host_user_id: str = Field(description="The host's account.")
    host_member_id: str | None = Field(description="The host's member id.")
    visibility: PartyVisibility
    control: PartyControl
    state: PartyState
    max_members: int
    has_password: bool
    chat_enabled: bool
    created_at: datetime
    invite_url: str = Field(description="`<public url>/p/<code>`.")
    members: list[PartyMemberOut] = Field(description="In the order they joined.")
    playback: PartyPlaybackOut


class PartyJoinOut(Shape):
    party: PartyOut
    member: PartyMemberOut = Field(description="The caller's member.")
    member_token: str = Field(
        description="A bearer token for this party only (its REST calls, /ws, GraphQL)."
    )
