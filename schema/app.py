"""The Strawberry ASGI view with Cowatch's context."""

from __future__ import annotations

from functools import cached_property

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket

from resolvers import auth
from resolvers.services import Services
from schema.context import Context, Loaders
from schema.ide import IdePage
from schema.intake import GraphQLIntake


class CowatchGraphQL(GraphQLIntake):
    """Queries and mutations over HTTP (and GraphiQL); sockets are `schema/sockets.py`'s."""

    @cached_property
    def ide_page(self) -> IdePage:
        return IdePage.from_strawberry(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with an offline note, under a policy of exact URLs and hashes."""
        page = self.ide_page
        return HTMLResponse(page.html, headers={"Content-Security-Policy": page.csp})

    def encode_json(self, data: object) -> bytes:
        """Answers as compact UTF-8 JSON (msgspec: a fraction of `json.dumps`' time, the same
        values), on every path, so the fast path and the general one give the same bytes."""
        return msgspec.json.encode(data)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        services: Services = request.app.state.services
        token = auth.token_from(headers=request.headers, cookies=request.cookies)
        return Context(
            services=services,
            request=request,
            response=response if isinstance(response, Response) else None,
            token=token,
            loaders=Loaders(services),
        )
