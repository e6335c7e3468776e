"""A byte cap on every request body, counted as the bytes arrive (chunked bodies too).

Multipart uploads may be as large as the upload cap plus room for the form around the file;
every other body (REST JSON, GraphQL JSON, forms) is capped at `COWATCH_MAX_JSON_BYTES`. A
declared `Content-Length` over the cap is refused before anything is read; a body that grows
past it is refused (413) at the chunk that crosses it, whatever the headers said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from edge.refusal import refusal
from resolvers.errors import PayloadTooLarge

if TYPE_CHECKING:
    from config import Settings

#: room for the multipart framing and the text fields around the file
ENVELOPE_BYTES = 1024 * 1024


def body_cap(headers: Headers, settings: Settings) -> int:
    """The most bytes a body with these headers may have."""
    if headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return settings.max_upload_bytes + ENVELOPE_BYTES
    return settings.max_json_bytes


def too_large(cap: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body: larger than the {cap} byte limit", limit=cap)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        cap = body_cap(headers, self.settings)
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await refusal(scope, too_large(cap))(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    raise too_large(cap)
            return message

        await self.app(scope, counted, send)
