"""Cross-site request forgery: a write that the session cookie authenticates must come from us.

The cookie is the one credential a browser attaches by itself, so a state change (POST, PUT,
PATCH, DELETE) that carries it and no `Authorization`/`X-API-Key` header is accepted only
- with an `Origin` header naming our own origin (the request's host, or `COWATCH_PUBLIC_URL`)
  or one listed in `COWATCH_CORS_ORIGINS` (`*` lists none: it never goes with cookies): our
  pages' JSON calls, uploads and forms; browsers send `Origin` on every write and a page
  cannot forge it;
- or, without an `Origin` (a non-browser client), with a JSON body: a browser cannot send one
  cross-site without a CORS preflight, so a form or `text/plain` body (or a multipart upload)
  with the cookie and no `Origin` is refused.
Bearer tokens and API keys are never attached by a browser on its own: those requests pass
from anywhere. Refusals are 403 `FORBIDDEN`, shaped for the face (GraphQL or REST).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.refusal import refusal
from resolvers.auth import COOKIE_NAME
from resolvers.errors import Forbidden

if TYPE_CHECKING:
    from config import Settings

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else None


class CrossSiteGuard:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        listed = [] if settings.cors_any_origin else settings.cors_origin_list
        configured = [settings.public_url] if settings.public_url else []
        self.allowed = {o for o in (origin_of(url) for url in (*configured, *listed)) if o}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in UNSAFE:
            problem = self._problem(scope)
            if problem is not None:
                await refusal(scope, Forbidden(f"cross-site request refused: {problem}"))(
                    scope, receive, send
                )
                return
        await self.app(scope, receive, send)

    def _problem(self, scope: Scope) -> str | None:
        """Why this request may be forged, or None when it may not be."""
        conn = HTTPConnection(scope)
        headers: Headers = conn.headers
        if "authorization" in headers or "x-api-key" in headers:
            return None
        if COOKIE_NAME not in conn.cookies:
            return None
        origin = headers.get("origin")
        if origin is not None:
            if self._allowed(origin, scope, headers):
                return None
            return f"origin {origin} is not allowed to write with the session cookie"
        kind = headers.get("content-type", "").partition(";")[0].strip().lower()
        if kind == "application/json":
            return None
        return "a write with the session cookie needs an allowed Origin, or a JSON body"

    def _allowed(self, origin: str, scope: Scope, headers: Headers) -> bool:
        origin = origin.lower()
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}".lower()
        return origin == own or origin in self.allowed
