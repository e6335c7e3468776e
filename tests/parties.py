"""Watch party test kit: the GraphQL documents and small helpers both faces' tests share."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from tests.factories import gql

if TYPE_CHECKING:
    from tests.live import GraphQLClient, WsClient

MEMBER = (
    "id displayName role user { id username } online player position latencyMs offsetMs joinedAt"
)
PLAYBACK = (
    "partyId timestamp playing rate serverTime version userId memberId state effectiveAt "
    f"waitingFor {{ {MEMBER} }}"
)
SETTINGS = (
    "id code name visibility control state maxMembers hasPassword chatEnabled inviteUrl createdAt"
)
PARTY = (
    f"{SETTINGS} video {{ id }} host {{ id username }} members {{ {MEMBER} }} "
    f"playback {{ {PLAYBACK} }}"
)

AUTHOR = "id displayName role"
MESSAGE = (
    f"id body author {{ {AUTHOR} }} mediaTime createdAt deleted "
    f"replyTo {{ id body author {{ {AUTHOR} }} mediaTime createdAt deleted }}"
)
REACTION = f"emoji author {{ {AUTHOR} }} mediaTime createdAt"

CREATE = f"""
mutation Create($videoId: ID!, $name: String, $visibility: PartyVisibility, $control: PartyControl,
                $password: String, $maxMembers: Int) {{
  createParty(videoId: $videoId, name: $name, visibility: $visibility, control: $control,
              password: $password, maxMembers: $maxMembers) {{ {PARTY} }}
}}
"""
JOIN = f"""
mutation Join($code: String!, $password: String, $displayName: String) {{
  joinParty(code: $code, password: $password, displayName: $displayName) {{
    party {{ {PARTY} }} member {{ {MEMBER} }} memberToken
  }}
}}
"""
SEEK = f"""
mutation Seek($partyId: ID!, $t: Float!, $playing: Boolean, $rate: Float) {{
  setPartyPlayback(partyId: $partyId, timestamp: $t, playing: $playing, rate: $rate) {{
    {PLAYBACK}
  }}
}}
"""
REPORT = f"""
mutation Report($partyId: ID!, $state: PlayerState!, $position: Float!, $offsetMs: Float) {{
  reportPlayerState(partyId: $partyId, state: $state, position: $position, offsetMs: $offsetMs) {{
    {MEMBER}
  }}
}}
"""
PARTY_BY = f"""
query Party($id: ID, $code: String) {{ party(id: $id, code: $code) {{ {PARTY} }} }}
"""
SETTINGS_BY = f"""
query Party($id: ID, $code: String) {{ party(id: $id, code: $code) {{ {SETTINGS} }} }}
"""
EVENTS = f"""
subscription Events($partyId: ID!) {{
  partyEvents(partyId: $partyId) {{
    __typename
    ... on PartySnapshot {{
      party {{ {SETTINGS} members {{ {MEMBER} }} playback {{ {PLAYBACK} }} }}
    }}
    ... on PlaybackChanged {{ playback {{ {PLAYBACK} }} }}
    ... on MemberJoined {{ member {{ {MEMBER} }} }}
    ... on MemberLeft {{ member {{ {MEMBER} }} kicked gone }}
    ... on MemberUpdated {{ member {{ {MEMBER} }} }}
    ... on ChatMessageAdded {{ message {{ {MESSAGE} }} }}
    ... on ChatMessageDeleted {{ messageId }}
    ... on ReactionAdded {{ reaction {{ {REACTION} }} }}
    ... on PartyEnded {{ partyId }}
  }}
}}
"""


async def ok(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    """A GraphQL operation that must succeed: its data."""
    body = await gql(client, query, variables, token=token)
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def create(
    client: httpx.AsyncClient, token: str, video_id: str, **options: Any
) -> dict[str, Any]:
    party: dict[str, Any] = (await ok(client, CREATE, {"videoId": video_id, **options}, token))[
        "createParty"
    ]
    return party


async def join(
    client: httpx.AsyncClient, code: str, token: str | None = None, **options: Any
) -> dict[str, Any]:
    joined: dict[str, Any] = (await ok(client, JOIN, {"code": code, **options}, token))["joinParty"]
    return joined


SEND = f"""
mutation Send($partyId: ID!, $body: String!, $replyTo: ID) {{
  sendChatMessage(partyId: $partyId, body: $body, replyTo: $replyTo) {{ {MESSAGE} }}
}}
"""
DELETE = "mutation Delete($id: ID!) { deleteChatMessage(id: $id) }"
REACT = f"""
mutation React($partyId: ID!, $emoji: String!) {{
  react(partyId: $partyId, emoji: $emoji) {{ {REACTION} }}
}}
"""
CHAT_SWITCH = """
mutation Chat($partyId: ID!, $on: Boolean!) {
  updateParty(partyId: $partyId, chatEnabled: $on) { chatEnabled }
}
"""
MESSAGES = f"""
query Messages($id: ID!, $first: Int, $after: String) {{
  party(id: $id) {{
    messages(first: $first, after: $after) {{
      totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor node {{ {MESSAGE} }} }}
    }}
  }}
}}
"""
LOG = f"""
query Log($id: ID!, $first: Int, $after: String) {{
  party(id: $id) {{
    events(first: $first, after: $after) {{
      totalCount pageInfo {{ hasNextPage endCursor }}
      edges {{
        cursor seq serverTime mediaTime
        node {{
          __typename
          ... on PartySnapshot {{
            party {{ {SETTINGS} members {{ {MEMBER} }} playback {{ {PLAYBACK} }} }}
          }}
          ... on PlaybackChanged {{ playback {{ {PLAYBACK} }} }}
          ... on MemberJoined {{ member {{ {MEMBER} }} }}
          ... on MemberLeft {{ member {{ {MEMBER} }} kicked gone }}
          ... on MemberUpdated {{ member {{ {MEMBER} }} }}
          ... on ChatMessageAdded {{ message {{ {MESSAGE} }} }}
          ... on ChatMessageDeleted {{ messageId }}
          ... on ReactionAdded {{ reaction {{ {REACTION} }} }}
          ... on PartyEnded {{ partyId }}
        }}
      }}
    }}
  }}
}}
"""


async def errors_of(
    client: httpx.AsyncClient, query: str, variables: dict[str, Any], token: str | None = None
) -> list[str]:
    """A GraphQL operation that must fail: its error codes."""
    body = await gql(client, query, variables, token=token)
    assert body.get("errors"), body
    return [error["extensions"]["code"] for error in body["errors"]]


@dataclass
class WsFollower:
    """A member on `/ws`: frames as they come (snake_case)."""

    client: WsClient
    party_id: str

    async def playback(self) -> dict[str, Any]:
        """The next playhead change (other frames before it are skipped)."""
        frame = await self.client.next_of("party:playback")
        return {**frame, "waiting_for": [m["id"] for m in frame["waiting_for"]]}

    async def member(self, kind: str, member_id: str, **match: Any) -> dict[str, Any]:
        """The next `party:member_<kind>` about `member_id` whose member fields match."""
        frame = await self.client.next_of(
            f"party:member_{kind}",
            lambda f: (
                f["member"]["id"] == member_id
                and all(f["member"].get(k) == v for k, v in match.items())
            ),
        )
        return {
            **frame["member"],
            "kicked": frame.get("kicked"),
            "gone": frame.get("gone"),
            "frame": frame,
        }

    async def members(self, kind: str, ids: Iterable[str], **match: Any) -> dict[str, Any]:
        """The next `party:member_<kind>` about each of `ids` whose fields match, in whatever
        order they come (changes made on different sockets have no order between them)."""
        wanted, found = set(ids), {}
        while wanted:
            frame = await self.client.next_of(
                f"party:member_{kind}",
                lambda f: (
                    f["member"]["id"] in wanted
                    and all(f["member"].get(k) == v for k, v in match.items())
                ),
            )
            wanted.discard(frame["member"]["id"])
            found[frame["member"]["id"]] = {**frame["member"], "frame": frame}
        return found

    async def ready(self, state: str, position: float) -> None:
        await self.client.party_ready(self.party_id, state, position)


TYPENAMES = {"joined": "MemberJoined", "left": "MemberLeft", "updated": "MemberUpdated"}


@dataclass
class GraphQLFollower:
    """A member on a GraphQL socket (`partyEvents`), its events in the `/ws` frames' terms."""

    client: GraphQLClient
    op_id: str

    async def playback(self) -> dict[str, Any]:
        event = await self.client.next_party_event(self.op_id, "PlaybackChanged")
        p = event["playback"]
        return {
            "timestamp": p["timestamp"],
            "playing": p["playing"],
            "version": p["version"],
            "state": p["state"],
            "effective_at": p["effectiveAt"],
            "server_time": p["serverTime"],
            "member_id": p["memberId"],
            "user_id": p["userId"],
            "waiting_for": [m["id"] for m in p["waitingFor"]],
        }

    async def member(self, kind: str, member_id: str, **match: Any) -> dict[str, Any]:
        event = await self.client.next_party_event(
            self.op_id,
            TYPENAMES[kind],
            lambda e: (
                e["member"]["id"] == member_id
                and all(e["member"].get(k) == v for k, v in match.items())
            ),
        )
        return {**event["member"], "kicked": event.get("kicked"), "gone": event.get("gone")}

    async def members(self, kind: str, ids: Iterable[str], **match: Any) -> dict[str, Any]:
        """As `WsFollower.members`."""
        wanted, found = set(ids), {}
        while wanted:
            event = await self.client.next_party_event(
                self.op_id,
                TYPENAMES[kind],
                lambda e: (
                    e["member"]["id"] in wanted
                    and all(e["member"].get(k) == v for k, v in match.items())
                ),
            )
            wanted.discard(event["member"]["id"])
            found[event["member"]["id"]] = event["member"]
        return found
