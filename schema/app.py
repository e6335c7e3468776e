"""The Strawberry ASGI view with Cowatch's context."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from resolvers import auth
from resolvers.services import Services
from schema.context import Context, Loaders


class CowatchGraphQL(GraphQL[Context, None]):
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
