"""A party's log on GraphQL: `Party.events`, the events members received, oldest first.

Each entry is the `PartyEvent` union member `partyEvents` delivered, on an edge that adds the
event's counter, server time and media time: what a replay needs to play the party back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import strawberry

from realtime.events import Event
from resolvers.chat import Page
from resolvers.party_runtime import party_topic
from schema.chat_types import PageInfo
from schema.party_types import PartyEvent, party_event


@strawberry.type(
    description="One entry of a party's log: an event as members received it, with when it "
    "happened on the server's clock and on the video's."
)
class PartyEventEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the events after it.")
    node: PartyEvent = strawberry.field(
        description="The event as `partyEvents` delivered it (a deleted message without text)."
    )
    seq: int = strawberry.field(
        description="The party's event counter: strictly increasing, the order members saw."
    )
    server_time: float = strawberry.field(
        description="When it happened, server epoch ms (a playhead change: when its "
        "`timestamp` holds)."
    )
    media_time: float = strawberry.field(
        description="The party's position in the video then, seconds."
    )


@strawberry.type(
    description="A page of a party's log, oldest first: playback versions, joins, leaves, role "
    "and presence changes, settings, messages, deletions, reactions. Playing it back replays "
    "the party."
)
class PartyEventConnection:
    edges: list[PartyEventEdge] = strawberry.field(description="The events, oldest first.")
    page_info: PageInfo = strawberry.field(description="Whether later events follow.")
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many events the log holds.")
    async def total_count(self) -> int:
        return await self._count()

    @classmethod
    def from_page(
        cls, party_id: str, page: Page, count: Callable[[], Awaitable[int]]
    ) -> PartyEventConnection:
        edges = [_edge(party_id, item, c) for item, c in zip(page.items, page.cursors, strict=True)]
        return cls(
            edges=[edge for edge in edges if edge is not None],
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None
            ),
            _count=count,
        )


def _edge(party_id: str, item: dict[str, Any], cursor: str) -> PartyEventEdge | None:
    event = Event(
        topic=party_topic(party_id),
        version=item["seq"],
        kind=item["kind"],
        data={**item["data"], "server_time": item["server_time"], "media_time": item["media_time"]},
    )
    node = party_event(event)
    if node is None:
        return None
    return PartyEventEdge(
        cursor=cursor,
        node=node,
        seq=item["seq"],
        server_time=float(item["server_time"]),
        media_time=item["media_time"],
    )
