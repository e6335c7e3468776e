"""Rate limits for the REST face: one class per route, X-RateLimit-* on every answer."""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resolvers import auth
from resolvers.errors import RateLimited
from resolvers.ratelimit import PER_IP, Decision, RateClass, caller_key
from rest_compat.common import services
from rest_compat.errors import domain_error

#: Not counted here: probes, GraphQL (counted per operation by schema/limits.py), media and
#: static files (a page load fetches a dozen; a CDN or proxy fronts them in production).
EXEMPT = re.compile(r"^/(healthz|readyz|graphql|media/|static/)")
CLASSES: list[tuple[str, re.Pattern[str], RateClass]] = [
    ("POST", re.compile(r"^/api/auth/login/?$"), RateClass.LOGIN),
    ("POST", re.compile(r"^/api/auth/signup/?$"), RateClass.SIGNUP),
    ("POST", re.compile(r"^/api/videos/upload/?$"), RateClass.UPLOAD),
    ("PUT", re.compile(r"^/api/videos/[^/]+/time/?$"), RateClass.TIMESTAMP),
]


def classify(method: str, path: str) -> RateClass | None:
    if EXEMPT.match(path):
        return None
    for want, pattern, rate_class in CLASSES:
        if method == want and pattern.match(path):
            return rate_class
    return RateClass.API


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        rate_class = classify(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if rate_class is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        token = auth.token_from(headers=request.headers, cookies=request.cookies)
        svc = services(request)
        key = caller_key(
            secret=svc.jwt_secret,
            token=token,
            ip=request.client.host if request.client else None,
            per_ip=rate_class in PER_IP,
        )
        decision = await svc.rate_limiter.hit(rate_class, key)
        if decision is None:
            await self.app(scope, receive, send)
            return
        if not decision.allowed:
            retry = decision.retry_after()
            refusal = RateLimited(
                f"too many requests: retry in {retry} s", retry_after=retry, limit=decision.limit
            )
            response = await domain_error(request, refusal)
            response.headers.update(decision.headers())
            await response(scope, receive, send)
            return
        await self.app(scope, receive, _with_headers(send, decision))


def _with_headers(send: Send, decision: Decision) -> Send:
    extra = [(name.lower().encode(), value.encode()) for name, value in decision.headers().items()]

    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *extra]
        await send(message)

    return send_with_headers
