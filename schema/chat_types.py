"""Party chat types: messages, reactions, their events, and the history's and log's pages.

Built from the JSON shapes of `resolvers/party_rules.py` and `resolvers/chat.py` (what REST and
`/ws` send too), so a mutation's answer, a `partyEvents` event and a history page render a message
the same way. Everything here resolves synchronously from that data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import strawberry

from resolvers.chat import Page

if TYPE_CHECKING:
    from schema.party_types import PartyMember


def _member(fields: dict[str, Any]) -> PartyMember:
    from schema.party_types import PartyMember

    return PartyMember.from_fields(fields)


@strawberry.type(
    description="A chat message in a party, on the video's timeline. HTML in `body` is text: "
    "clients must show it as such."
)
class ChatMessage:
    id: strawberry.ID = strawberry.field(description="The message's id.")
    body: str | None = strawberry.field(
        description="1 to 2,000 characters, trimmed (line breaks and tabs kept); null once deleted."
    )
    author: Annotated[PartyMember, strawberry.lazy("schema.party_types")] = strawberry.field(
        description="Who sent it, as the party saw them then (they may have left since)."
    )
    reply_to: ChatMessage | None = strawberry.field(
        description="The message of the same party it answers (its own `replyTo` is null: one "
        "level); null when it answers none."
    )
    media_time: float = strawberry.field(
        description="Seconds into the video: the party's position when the server accepted it."
    )
    created_at: datetime = strawberry.field(description="When the server accepted it, UTC.")
    deleted: bool = strawberry.field(
        description="True: deleted by its author, the host or a cohost; it keeps its place in "
        "the history without its text."
    )

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> ChatMessage:
        reply = fields.get("reply_to")
        return cls(
            id=strawberry.ID(fields["id"]),
            body=fields["body"],
            author=_member(fields["author"]),
            reply_to=ChatMessage.from_fields(reply) if reply else None,
            media_time=fields["media_time"],
            created_at=datetime.fromisoformat(fields["created_at"]),
            deleted=fields["deleted"],
        )


@strawberry.type(
    description="A reaction floating over the video: one of 👍 ❤️ 😂 😮 😢 👏 🔥 🎉. Kept in "
    "the party's log for its life and an hour after it ends."
)
class Reaction:
    emoji: str = strawberry.field(description="One of 👍 ❤️ 😂 😮 😢 👏 🔥 🎉.")
    author: Annotated[PartyMember, strawberry.lazy("schema.party_types")] = strawberry.field(
        description="Who reacted, as the party saw them then."
    )
    media_time: float = strawberry.field(
        description="Seconds into the video: the party's position when the server accepted it."
    )
    created_at: datetime = strawberry.field(description="When the server accepted it, UTC.")

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> Reaction:
        return cls(
            emoji=fields["emoji"],
            author=_member(fields["author"]),
            media_time=fields["media_time"],
            created_at=datetime.fromisoformat(fields["created_at"]),
        )


@strawberry.type(description="A member posted to the party's chat.")
class ChatMessageAdded:
    message: ChatMessage = strawberry.field(description="The message.")


@strawberry.type(
    description="A message was deleted: it keeps its place, with `deleted: true` and no body."
)
class ChatMessageDeleted:
    message_id: strawberry.ID = strawberry.field(description="The deleted message's id.")


@strawberry.type(description="A member reacted.")
class ReactionAdded:
    reaction: Reaction = strawberry.field(description="The reaction.")


@strawberry.type(description="Where a page of a list stands.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="True: `after: endCursor` gives more.")
    end_cursor: str | None = strawberry.field(
        description="The last edge's cursor; null for an empty page."
    )


@strawberry.type(description="A message in the party's history.")
class ChatMessageEdge:
    cursor: str = strawberry.field(description="Pass as `after` for the messages before it.")
    node: ChatMessage = strawberry.field(description="The message.")


@strawberry.type(description="A page of a party's chat history, newest first.")
class ChatMessageConnection:
    edges: list[ChatMessageEdge] = strawberry.field(description="The messages, newest first.")
    page_info: PageInfo = strawberry.field(description="Whether older messages follow.")
    _count: strawberry.Private[Callable[[], Awaitable[int]]]

    @strawberry.field(description="How many messages the history holds, deleted ones included.")
    async def total_count(self) -> int:
        return await self._count()

    @classmethod
    def from_page(cls, page: Page, count: Callable[[], Awaitable[int]]) -> ChatMessageConnection:
        return cls(
            edges=[
                ChatMessageEdge(cursor=cursor, node=ChatMessage.from_fields(item))
                for item, cursor in zip(page.items, page.cursors, strict=True)
            ],
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=page.cursors[-1] if page.cursors else None
            ),
            _count=count,
        )
