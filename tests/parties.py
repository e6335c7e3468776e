"""Watch party test kit: the GraphQL documents and small helpers both faces' tests share."""

from __future__ import annotations

from typing import Any

import httpx

from tests.factories import gql

MEMBER = "id displayName role user { id username } online player position latencyMs joinedAt"
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
mutation Report($partyId: ID!, $state: PlayerState!, $position: Float!) {{
  reportPlayerState(partyId: $partyId, state: $state, position: $position) {{ {MEMBER} }}
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
    ... on MemberLeft {{ member {{ {MEMBER} }} kicked }}
    ... on MemberUpdated {{ member {{ {MEMBER} }} }}
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
