"""Party chat on the GraphQL face: send, delete, react.

Members receive what these do as `ChatMessageAdded`, `ChatMessageDeleted` and `ReactionAdded` in
`partyEvents` (and `/ws` as `party:chat_message`, `party:chat_deleted`, `party:reaction`); the
rules are `resolvers/chat.py`'s, shared with REST and `/ws`.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers import chat
from schema.chat_types import ChatMessage, Reaction
from schema.context import Context
from schema.permissions import signed_in_or_member

PartyId = Annotated[strawberry.ID, strawberry.argument(description="The party's id.")]
CALLERS = "Send an account token or this party's member token."
REFUSALS = (
    "Not a member, kicked, or chat turned off (`chatEnabled`): FORBIDDEN; nothing is stored "
    "when refused."
)


@strawberry.type
class ChatMutation:
    @strawberry.mutation(
        description="Post to the party's chat (members), stamped with the party's position. "
        "BAD_USER_INPUT: a body empty or over 2,000 characters after trimming, control "
        "characters other than line breaks and tabs, a `replyTo` of another party or deleted. "
        + REFUSALS
        + " RATE_LIMITED (with `retry_after`) past COWATCH_RATE_LIMIT_CHAT per member. "
        + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def send_chat_message(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        body: Annotated[
            str, strawberry.argument(description="1 to 2,000 characters after trimming; text.")
        ],
        reply_to: Annotated[
            strawberry.ID | None,
            strawberry.argument(description="A message of this party that was not deleted."),
        ] = None,
    ) -> ChatMessage:
        services = info.context.services
        message = await chat.send_message(
            runtime=services.parties,
            limiter=services.rate_limiter,
            caller=await info.context.caller(),
            party_id=str(party_id),
            body=body,
            reply_to=str(reply_to) if reply_to is not None else None,
        )
        return ChatMessage.from_fields(message)

    @strawberry.mutation(
        description="Delete a message: authors their own, the host and cohosts any. It keeps "
        "its place (`deleted: true`, no body); members receive ChatMessageDeleted. True also "
        "when it was already deleted. NOT_FOUND: no such message. " + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def delete_chat_message(
        self,
        info: strawberry.Info[Context],
        id: Annotated[strawberry.ID, strawberry.argument(description="The message's id.")],
    ) -> bool:
        return await chat.delete_message(
            runtime=info.context.services.parties,
            caller=await info.context.caller(),
            message_id=str(id),
        )

    @strawberry.mutation(
        description="React over the video at the party's position (members). BAD_USER_INPUT: "
        "not one of 👍 ❤️ 😂 😮 😢 👏 🔥 🎉. "
        + REFUSALS
        + " RATE_LIMITED past COWATCH_RATE_LIMIT_REACTION per member (stricter than chat). "
        + CALLERS,
        extensions=signed_in_or_member(),
    )
    async def react(
        self,
        info: strawberry.Info[Context],
        party_id: PartyId,
        emoji: Annotated[
            str,
            strawberry.argument(
                description="One of 👍 ❤️ 😂 😮 😢 👏 🔥 🎉 (❤ without its variation selector is ❤️)."
            ),
        ],
    ) -> Reaction:
        services = info.context.services
        reaction = await chat.react(
            runtime=services.parties,
            limiter=services.rate_limiter,
            caller=await info.context.caller(),
            party_id=str(party_id),
            emoji=emoji,
        )
        return Reaction.from_fields(reaction)
