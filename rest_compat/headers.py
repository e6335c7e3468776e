"""Security headers on every HTTP answer; a Content-Security-Policy chosen by what is answered.

JSON and media get `default-src 'none'`; our own pages load only same-origin scripts and
styles. A response that brings its own policy keeps it: GraphiQL (schema/ide.py) and /docs
(rest_compat/docs.py) allow exact asset URLs and hashes of their inline code.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from config import Settings
from resolvers import urls

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def page_csp(settings: Settings, base: str) -> str:
    """Our pages: same-origin code; media and thumbnails also from the public/storage origins.

    `base` is the origin the page was asked at (`COWATCH_PUBLIC_URL`, else the request's own):
    its websocket twin is named outright, not left to `'self'`, which older browsers do not
    stretch to `ws:`/`wss:`.
    """
    media = " ".join(
        sorted(
            {
                origin
                for origin in (
                    _origin(base),
                    _origin(settings.s3_public_endpoint_url or settings.s3_endpoint_url),
                )
                if origin
            }
        )
    )
    public = urlsplit(base)
    socket = f"{'wss' if public.scheme == 'https' else 'ws'}://{public.netloc}"
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: {media}; media-src 'self' blob: {media}; "
        f"connect-src 'self' {socket} {media}; object-src 'none'; base-uri 'self'; "
        "form-action 'self'; frame-ancestors 'none'"
    )


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        #: with a configured public URL the page policy is the same for every request
        self.page_csp = page_csp(settings, settings.public_url) if settings.public_url else None
        self.hsts = (settings.public_url or "").startswith("https://")
        #: the headers every answer gets unless it brings its own (in this order)
        self.fixed = [
            (name.lower().encode(), value.encode())
            for name, value in (
                ("X-Content-Type-Options", "nosniff"),
                ("Referrer-Policy", "strict-origin-when-cross-origin"),
                ("X-Frame-Options", "DENY"),
                ("Cross-Origin-Opener-Policy", "same-origin"),
                ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
                *([("Strict-Transport-Security", "max-age=31536000")] if self.hsts else []),
            )
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = list(message.get("headers", ()))
                names = {bytes(name).lower() for name, _ in raw}
                raw += [pair for pair in self.fixed if pair[0] not in names]
                if b"content-security-policy" not in names:
                    csp = self._csp(scope, MutableHeaders(raw=raw))
                    raw.append((b"content-security-policy", csp.encode("latin-1")))
                message["headers"] = raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _csp(self, scope: Scope, headers: MutableHeaders) -> str:
        if not headers.get("content-type", "").startswith("text/html"):
            return API_CSP
        if self.page_csp is not None:
            return self.page_csp
        return page_csp(self.settings, urls.public_base(configured=None, scope=scope))
