"""Watch party types: the party, its members, its playhead, and the events members receive.

Every type is built from the JSON shapes of `resolvers/party_state.py` (what REST and `/ws` send
too), so a mutation's answer and an event render the same way. The event types and
`PartyMember` / `PartyPlayback` resolve synchronously from that data (no loaders): a
`partyEvents` document that selects only them can be executed once per event and shared by its
subscribers (schema/shared.py). `Party.video` and `Party.host` read the database.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from models import User as UserModel
from models.parties import PartyControl as PartyControlEnum
from models.parties import PartyRole as PartyRoleEnum
from models.parties import PartyState as PartyStateEnum
from models.parties import PartyVisibility as PartyVisibilityEnum
from models.parties import PlayerState as PlayerStateEnum
from realtime.events import Event
from resolvers import chat, urls, videos
from resolvers.errors import Forbidden
from schema.chat_types import (
    ChatMessage,
    ChatMessageAdded,
    ChatMessageConnection,
    ChatMessageDeleted,
    Reaction,
    ReactionAdded,
)
from schema.context import Context
from schema.enums import described_enum

if TYPE_CHECKING:
    from schema.party_log import PartyEventConnection
    from schema.users import User
    from schema.videos import Video

PartyVisibility = described_enum(
    PartyVisibilityEnum,
    name="PartyVisibility",
    description="Who can find a party and what joining it takes.",
    values={
        "PUBLIC": "Listed on its video (`parties(videoId)`); anyone with the code may join.",
        "UNLISTED": "Not listed; anyone with the code (the invite link) may join.",
        "PRIVATE": "Not listed, invisible to outsiders; joining needs the code and the password.",
    },
)
PartyControl = described_enum(
    PartyControlEnum,
    name="PartyControl",
    description="Who may change a party's playhead.",
    values={
        "HOST": "The host and the cohosts.",
        "EVERYONE": "Every member, guests included.",
    },
)
PartyRole = described_enum(
    PartyRoleEnum,
    name="PartyRole",
    description="A member's role in a party.",
    values={
        "HOST": "Exactly one: changes settings, roles, kicks, ends the party; counts as a member.",
        "COHOST": "May change the playhead even when `control` is HOST.",
        "MEMBER": "Joined with an account.",
        "GUEST": "Joined without an account (with a display name and a member token).",
    },
)
PartyState = described_enum(
    PartyStateEnum,
    name="PartyState",
    description="Where a party's playhead stands.",
    values={
        "PLAYING": "Playing `timestamp` from `effectiveAt` at `rate`.",
        "PAUSED": "Paused at `timestamp` (a premiere holds here until `effectiveAt`).",
        "WAITING": "Held after a change until the members in `waitingFor` report READY, or "
        "COWATCH_PARTY_READY_TIMEOUT_S passes.",
        "ENDED": "The host ended it, or nobody was online for COWATCH_PARTY_IDLE_S.",
    },
)
PlayerState = described_enum(
    PlayerStateEnum,
    name="PlayerState",
    description="What a member's player last reported (`reportPlayerState`).",
    values={
        "READY": "Ready to play at its `position`.",
        "BUFFERING": "Loading (or left behind by the ready timeout).",
        "IDLE": "Nothing reported yet: the ready barrier does not wait for it.",
    },
)


def _ms(value: Any) -> float | None:
    return None if value is None else float(value)


def _user(fields: dict[str, Any] | None) -> User | None:
    from schema.users import User

    if fields is None:
        return None
    # The public face only (what members receive): `email` reads as null here, ask `me` for it.
    account = UserModel(id=fields["id"], username=fields["username"])  # type: ignore[call-arg]
    return User.from_model(account)


@strawberry.type(description="Someone in a party: an account or a guest.")
class PartyMember:
    id: strawberry.ID = strawberry.field(description="The member's id (not the user's).")
    display_name: str = strawberry.field(
        description="1 to 40 characters; a taken name gets a suffix like ` (2)`."
    )
    role: PartyRole = strawberry.field(description="HOST, COHOST, MEMBER or GUEST.")  # type: ignore[valid-type]
    user: Annotated[User, strawberry.lazy("schema.users")] | None = strawberry.field(
        description="The member's account (id and username); null for a guest."
    )
    online: bool = strawberry.field(
        description="True while at least one socket of the member subscribes to the party."
    )
    player: PlayerState = strawberry.field(  # type: ignore[valid-type]
        description="What the member's player last reported; IDLE until the first report."
    )
    position: float | None = strawberry.field(
        description="Seconds, where the player last reported it was; null before any report."
    )
    latency_ms: float | None = strawberry.field(
        description="The member's measured round trip to the server (ms); null until measured."
    )
    offset_ms: float | None = strawberry.field(
        description="How far the member's player is from the party's shared position, as its "
        "page last measured and reported it (whole ms, 0 to 60,000: in sync, the RMS of its "
        "recent errors with its clock's error, what its own sync indicator shows as ±N ms; "
        "catching up, how far off it is); null until reported."
    )
    joined_at: datetime = strawberry.field(description="When the member (last) joined, UTC.")

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> PartyMember:
        return cls(
            id=strawberry.ID(fields["id"]),
            display_name=fields["display_name"],
            role=PartyRoleEnum(fields["role"]),
            user=_user(fields["user"]),
            online=fields["online"],
            player=PlayerStateEnum(fields["player"]),
            position=fields["position"],
            latency_ms=fields["latency_ms"],
            offset_ms=fields["offset_ms"],
            joined_at=datetime.fromisoformat(fields["joined_at"]),
        )


@strawberry.type(description="A party's playhead after a change (every member follows it).")
class PartyPlayback:
    party_id: strawberry.ID = strawberry.field(description="The party's id.")
    timestamp: float = strawberry.field(
        description="Seconds into the video at `serverTime` (from 0 to the duration)."
    )
    playing: bool = strawberry.field(
        description="True: the playhead advances from `serverTime` at `rate` (PLAYING only)."
    )
    rate: float = strawberry.field(description="Playback speed, 0.25 to 4.0 (1.0: normal).")
    server_time: float = strawberry.field(
        description="When `timestamp` is the position, epoch ms (the start, once PLAYING)."
    )
    version: int = strawberry.field(description="Strictly increasing per party, one per change.")
    user_id: strawberry.ID | None = strawberry.field(
        description="The account that made the change; null for a guest or nobody yet."
    )
    member_id: strawberry.ID | None = strawberry.field(
        description="The member that made the change; null: nobody yet."
    )
    state: PartyState = strawberry.field(  # type: ignore[valid-type]
        description="PLAYING, PAUSED, WAITING (the ready barrier holds) or ENDED."
    )
    effective_at: float | None = strawberry.field(
        description="When every member starts playing `timestamp`, server epoch ms (after the "
        "barrier, or a premiere's start); null otherwise."
    )
    waiting_for: list[PartyMember] = strawberry.field(
        description="WAITING: the online members not yet READY at `timestamp`; else empty."
    )

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> PartyPlayback:
        return cls(
            party_id=strawberry.ID(fields["party_id"]),
            timestamp=fields["timestamp"],
            playing=fields["playing"],
            rate=fields["rate"],
            server_time=float(fields["server_time"]),
            version=fields["version"],
            user_id=strawberry.ID(fields["user_id"]) if fields["user_id"] else None,
            member_id=strawberry.ID(fields["member_id"]) if fields["member_id"] else None,
            state=PartyStateEnum(fields["state"]),
            effective_at=_ms(fields["effective_at"]),
            waiting_for=[PartyMember.from_fields(m) for m in fields["waiting_for"]],
        )


MEMBERS_ONLY = "only the party's members may see its members and playhead; join it first"


@strawberry.type(
    description="A watch party: a room around one video with its own playhead, members and "
    "roles. Anyone who may see it (members; outsiders for PUBLIC and UNLISTED parties) reads "
    "its settings; `members` and `playback` are for members only (FORBIDDEN otherwise)."
)
class Party:
    id: strawberry.ID = strawberry.field(description="The party's id.")
    code: str = strawberry.field(
        description="The invite code: 11 URL-safe characters (64 random bits)."
    )
    name: str = strawberry.field(description="1 to 100 characters.")
    visibility: PartyVisibility = strawberry.field(  # type: ignore[valid-type]
        description="PUBLIC, UNLISTED or PRIVATE."
    )
    control: PartyControl = strawberry.field(  # type: ignore[valid-type]
        description="Who may change the playhead: HOST (host + cohosts) or EVERYONE."
    )
    state: PartyState = strawberry.field(  # type: ignore[valid-type]
        description="The playhead's state; ENDED once the party is over."
    )
    max_members: int = strawberry.field(description="2 to 500; the host counts.")
    has_password: bool = strawberry.field(description="True: joining needs the password.")
    chat_enabled: bool = strawberry.field(description="True: members may chat.")
    created_at: datetime = strawberry.field(description="When it was created, UTC.")
    _fields: strawberry.Private[dict[str, Any]]
    _member: strawberry.Private[bool]

    @classmethod
    def from_fields(cls, fields: dict[str, Any], *, member: bool) -> Party:
        """The party as `party_fields` shapes it; `member`: the viewer belongs to it."""
        return cls(
            id=strawberry.ID(fields["id"]),
            code=fields["code"],
            name=fields["name"],
            visibility=PartyVisibilityEnum(fields["visibility"]),
            control=PartyControlEnum(fields["control"]),
            state=PartyStateEnum(fields["state"]),
            max_members=fields["max_members"],
            has_password=fields["has_password"],
            chat_enabled=fields["chat_enabled"],
            created_at=datetime.fromisoformat(fields["created_at"]),
            _fields=fields,
            _member=member,
        )

    @strawberry.field(description="`<public url>/p/<code>`: the page that opens the party.")
    def invite_url(self, info: strawberry.Info[Context]) -> str:
        return urls.invite_url(base=info.context.public_base, code=self.code)

    @strawberry.field(description="The video the party watches.")
    async def video(
        self, info: strawberry.Info[Context]
    ) -> Annotated[Video, strawberry.lazy("schema.videos")]:
        from schema.videos import Video

        model = await videos.find_video(
            db=info.context.services.db, video_id=self._fields["video_id"]
        )
        assert model is not None  # a party's video_id is a foreign key (deleting cascades)
        return Video.from_model(model)

    @strawberry.field(description="The host's account (the host always has one).")
    async def host(
        self, info: strawberry.Info[Context]
    ) -> Annotated[User, strawberry.lazy("schema.users")]:
        from schema.users import User

        model = await info.context.loaders.users.load(self._fields["host_user_id"])
        assert model is not None  # a foreign key
        return User.from_model(model)

    @strawberry.field(
        description="Everyone in the party, online or not, in the order they joined (members only)."
    )
    def members(self) -> list[PartyMember]:
        if not self._member:
            raise Forbidden(MEMBERS_ONLY)
        return [PartyMember.from_fields(m) for m in self._fields["members"]]

    @strawberry.field(description="The playhead now (members only).")
    def playback(self) -> PartyPlayback:
        if not self._member:
            raise Forbidden(MEMBERS_ONLY)
        return PartyPlayback.from_fields(self._fields["playback"])

    @strawberry.field(
        description="The chat's history, newest first (members only; a member who joined late "
        "sees it all). Deleted messages keep their place without their text."
    )
    async def messages(
        self,
        info: strawberry.Info[Context],
        first: Annotated[
            int | None, strawberry.argument(description="0 to 100 messages; default 20.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(description="An edge's cursor: the messages older than it."),
        ] = None,
    ) -> ChatMessageConnection:
        runtime = info.context.services.parties
        page = await chat.messages(
            runtime=runtime,
            caller=await info.context.caller(),
            party_id=self.id,
            first=first,
            after=after,
        )
        return ChatMessageConnection.from_page(
            page, lambda: chat.count_messages(runtime=runtime, party_id=self.id)
        )

    @strawberry.field(
        description="The party's log, oldest first, with each event's server time and media "
        "time (members only): what a replay plays back."
    )
    async def events(
        self,
        info: strawberry.Info[Context],
        first: Annotated[
            int | None, strawberry.argument(description="0 to 100 events; default 20.")
        ] = None,
        after: Annotated[
            str | None,
            strawberry.argument(description="An edge's cursor: the events after it."),
        ] = None,
    ) -> Annotated[PartyEventConnection, strawberry.lazy("schema.party_log")]:
        from schema.party_log import PartyEventConnection

        runtime = info.context.services.parties
        page = await chat.events(
            runtime=runtime,
            caller=await info.context.caller(),
            party_id=self.id,
            first=first,
            after=after,
        )
        return PartyEventConnection.from_page(
            self.id, page, lambda: chat.count_events(runtime=runtime, party_id=self.id)
        )


@strawberry.type(description="What `joinParty` returns.")
class PartyJoin:
    party: Party = strawberry.field(description="The party joined.")
    member: PartyMember = strawberry.field(description="The caller's member in it.")
    member_token: str = strawberry.field(
        description="A token for this party only: send it as `Authorization: Bearer <token>` "
        "on its party calls, `/ws` and `partyEvents` (guests have no other). Valid for "
        "COWATCH_PARTY_MEMBER_TTL_S seconds (default 7 days)."
    )


@strawberry.type(
    description="The first event of `partyEvents`: the whole party now; sent again when the "
    "host changes its settings."
)
class PartySnapshot:
    party: Party = strawberry.field(description="The party, with its members and playhead.")


@strawberry.type(description="The playhead changed (a seek, play, pause, barrier, premiere).")
class PlaybackChanged:
    playback: PartyPlayback = strawberry.field(description="The new playhead.")


@strawberry.type(description="Someone joined the party.")
class MemberJoined:
    member: PartyMember = strawberry.field(description="The new member.")


@strawberry.type(
    description="A member left, was kicked, or lost its last socket (then it stays in "
    "`members` with `online: false`)."
)
class MemberLeft:
    member: PartyMember = strawberry.field(description="The member as it left.")
    kicked: bool = strawberry.field(description="True: the host removed it (it cannot rejoin).")
    gone: bool = strawberry.field(
        description="True: no longer a member (it left or was kicked). False: only its last "
        "socket closed; it stays in `Party.members` with `online: false` until it comes back, "
        "leaves or the party ends."
    )


@strawberry.type(
    description="A member changed: role, online again, player state or position, latency."
)
class MemberUpdated:
    member: PartyMember = strawberry.field(description="The member now.")


@strawberry.type(description="The party is over: the last event of `partyEvents`.")
class PartyEnded:
    party_id: strawberry.ID = strawberry.field(description="The party that ended.")


PartyEventRoot = (
    PartySnapshot
    | PlaybackChanged
    | MemberJoined
    | MemberLeft
    | MemberUpdated
    | ChatMessageAdded
    | ChatMessageDeleted
    | ReactionAdded
    | PartyEnded
)
PartyEvent = Annotated[
    PartyEventRoot,
    strawberry.union(
        "PartyEvent", description="One event of a party, as `partyEvents` delivers it."
    ),
]


def party_event(event: Event) -> PartyEventRoot | None:
    """The union member for a `party:<id>` topic event; None for kinds this face does not send."""
    data = event.data
    kind = event.kind
    if kind == "snapshot":
        return PartySnapshot(party=Party.from_fields(data["party"], member=True))
    if kind == "playback":
        return PlaybackChanged(playback=PartyPlayback.from_fields(data))
    if kind == "member_joined":
        return MemberJoined(member=PartyMember.from_fields(data["member"]))
    if kind == "member_left":
        return MemberLeft(
            member=PartyMember.from_fields(data["member"]),
            kicked=data["kicked"],
            # logged before `gone` existed: only a kick is known to have removed the member
            gone=data.get("gone", data["kicked"]),
        )
    if kind == "member_updated":
        return MemberUpdated(member=PartyMember.from_fields(data["member"]))
    if kind == "chat_message":
        return ChatMessageAdded(message=ChatMessage.from_fields(data["message"]))
    if kind == "chat_deleted":
        return ChatMessageDeleted(message_id=strawberry.ID(data["message_id"]))
    if kind == "reaction":
        return ReactionAdded(reaction=Reaction.from_fields(data["reaction"]))
    if kind == "party_ended":
        return PartyEnded(party_id=strawberry.ID(data["party_id"]))
    return None
