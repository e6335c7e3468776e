"""Domain errors as HTTP statuses (once, for both faces), the JSON error body, request ids."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers import errors, party_rules

request_id: ContextVar[str] = ContextVar("request_id", default="-")

STATUS: dict[type[errors.DomainError], int] = {
    errors.BadInput: 400,
    errors.Unauthenticated: 403,
    errors.InvalidToken: 401,
    errors.InvalidCredentials: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.AlreadyHasChannel: 411,
    errors.PayloadTooLarge: 413,
    errors.QuotaExceeded: 413,
    errors.RateLimited: 429,
    errors.AccountLocked: 429,
    errors.Unavailable: 503,
    party_rules.BadPassword: 403,
    party_rules.PartyFull: 409,
    party_rules.PartyEnded: 410,
}
HTTP_CODES = {
    400: "BAD_REQUEST",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message, "request_id": request_id.get()}
    if details:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


class RequestIdMiddleware:
    """Give every request an id (or keep a sane one the client sent) and echo it back."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        sent = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = sent if 0 < len(sent) <= 64 and sent.isprintable() else uuid.uuid4().hex
        # Not reset afterwards: Starlette's outermost error handler reads it after we return.
        request_id.set(rid)
        if scope["type"] == "websocket":
            # Sockets get the id for their logs but no send wrapper: only HTTP responses carry
            # the header, and every pushed frame (thousands per seek) would pay for the wrapper.
            await self.app(scope, receive, send)
            return

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
