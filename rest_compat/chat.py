"""Party chat on the REST face: `GET|POST /api/parties/{id}/messages`.

Members only (an account token or the party's member token as `Authorization: Bearer`). The
history pages newest first in seed 000's `page`/`limit` style; a message is the snake_case shape
members receive on `/ws` (`party:chat_message`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from resolvers import chat
from resolvers.auth import Caller
from rest_compat.common import int_param, json_body, services
from rest_compat.operations import JSON, Shape, operation, requires_member
from rest_compat.party_shapes import Body, PartyMemberOut


class SendBody(Body):
    body: str = Field(
        description="1 to 2,000 characters after trimming; no control characters but line "
        "breaks and tabs. Shown as text everywhere.",
    )
    reply_to: str | None = Field(
        default=None, description="A message of this party that was not deleted."
    )


class MessagesQuery(Body):
    """Empty values (`?page=`) mean the default."""

    page: Annotated[int, Field(ge=1)] | Literal[""] = Field(
        default=1, description="1-based page number; page 1 holds the newest messages."
    )
    limit: Annotated[int, Field(ge=1, le=chat.MAX_PAGE)] | Literal[""] = Field(
        default=20, description="Messages per page."
    )


class RepliedOut(Shape):
    id: str
    body: str | None = Field(description="Null once deleted.")
    author: PartyMemberOut
    reply_to: None = Field(description="Always null: a reply shows one level.")
    media_time: float
    created_at: datetime
    deleted: bool


class ChatMessageOut(Shape):
    id: str
    body: str | None = Field(description="Null once deleted (the message keeps its place).")
    author: PartyMemberOut = Field(description="The sender as the party saw them then.")
    reply_to: RepliedOut | None = Field(description="The message it answers, as it is now.")
    media_time: float = Field(
        ge=0, description="The party's position when the server accepted it, seconds."
    )
    created_at: datetime = Field(description="When the server accepted it.")
    deleted: bool


class MessagesOut(Shape):
    messages: list[ChatMessageOut] = Field(description="At most `limit`, newest first.")
    total_pages: int = Field(ge=0, description="0 when the chat is empty.")
    current_page: int = Field(ge=1)


def _id(request: Request) -> str:
    return str(request.path_params["party_id"])


@operation(
    "the party's chat history, newest first (members; a late joiner sees it all)",
    ok=(200, MessagesOut),
    errors=(400, 404),
    query=MessagesQuery,
)
@requires_member
async def list_messages(request: Request, caller: Caller) -> Response:
    page, limit = int_param(request, "page", 1), int_param(request, "limit", 20)
    items, total = await chat.message_page(
        runtime=services(request).parties,
        caller=caller,
        party_id=_id(request),
        page=page,
        limit=limit,
    )
    return JSON({"messages": items, "total_pages": -(-total // limit), "current_page": page})


@operation(
    "post to the party's chat (members; 403 when chat is off; 429 with Retry-After past "
    "COWATCH_RATE_LIMIT_CHAT per member); members receive it as `party:chat_message`",
    ok=(201, ChatMessageOut),
    errors=(400, 404, 410, 429),
    body=SendBody,
)
@requires_member
async def send_message(request: Request, caller: Caller) -> Response:
    body = await json_body(request, SendBody)
    svc = services(request)
    message = await chat.send_message(
        runtime=svc.parties,
        limiter=svc.rate_limiter,
        caller=caller,
        party_id=_id(request),
        body=body.body,
        reply_to=body.reply_to,
    )
    return JSON(message, status_code=201)


routes = [
    Route("/api/parties/{party_id}/messages", list_messages, methods=["GET"]),
    Route("/api/parties/{party_id}/messages", send_message, methods=["POST"]),
]
