"""The Strawberry ASGI view with Cowatch's context."""

from __future__ import annotations

from functools import cached_property

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.websockets import WebSocket
from strawberry.exceptions import ConnectionRejectionError
from strawberry.types.unset import UNSET, UnsetType

from resolvers import auth
from resolvers.errors import DomainError
from resolvers.services import Services
from schema.context import Context, Loaders
from schema.fanout import LegacyWSHandler, TransportWSHandler
from schema.ide import IdePage
from schema.intake import GraphQLIntake


class CowatchGraphQL(GraphQLIntake):
    graphql_transport_ws_handler_class = TransportWSHandler
    graphql_ws_handler_class = LegacyWSHandler

    @cached_property
    def ide_page(self) -> IdePage:
        return IdePage.from_strawberry(self.graphql_ide_html)

    async def render_graphql_ide(self, request: Request) -> Response:
        """GraphiQL with an offline note, under a policy of exact URLs and hashes."""
        page = self.ide_page
        return HTMLResponse(page.html, headers={"Content-Security-Policy": page.csp})

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """Sockets must sign in: `connection_init` payload `Authorization` (or the handshake's)."""
        params = context.connection_params or {}
        sent = params.get("Authorization", params.get("authorization"))
        token = (
            auth.token_from(headers={"authorization": sent}, cookies={})
            if isinstance(sent, str)
            else context.token
        )
        if not token:
            raise ConnectionRejectionError({"message": "authentication required"})
        services = context.services
        try:
            user = await auth.authenticate(db=services.db, secret=services.jwt_secret, token=token)
        except DomainError as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        context.token = token
        context.signed_in(user)
        return UNSET

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
