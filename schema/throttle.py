"""Flood control for GraphQL sockets: a per-connection FloodGuard before Strawberry's handlers.

Mixed in before Strawberry's protocol handler classes. `complete`/`stop`/`connection_terminate`
always pass (they only free resources). A throttled `subscribe`/`start` is answered with a
RATE_LIMITED error for its id; other throttled messages (pings) are dropped. A client that keeps
flooding is closed with 1008; nothing is shared between connections.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)

from resolvers.throttle import WS_CLOSE_FLOODING, FloodGuard, Verdict, flood_guard

ALWAYS_ADMITTED = frozenset({"complete", "stop", "connection_terminate"})
THROTTLED = GraphQLError(
    "too many messages; slow down", extensions={"code": "RATE_LIMITED"}
).formatted


class FloodGuarded:
    context: Any
    websocket: Any

    def _guard(self) -> FloodGuard:
        guard: FloodGuard | None = self.__dict__.get("_flood_guard")
        if guard is None:
            guard = self.__dict__["_flood_guard"] = flood_guard(self.context.services.settings)
        return guard

    async def handle_message(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind not in ALWAYS_ADMITTED:
            verdict = self._guard().admit()
            if verdict is Verdict.CLOSE:
                await self.websocket.close(code=WS_CLOSE_FLOODING, reason="too many messages")
                return
            if verdict is Verdict.THROTTLE:
                await self._refuse(kind, message.get("id"))
                return
        await super().handle_message(message)  # type: ignore[misc]

    async def _refuse(self, kind: str | None, op_id: Any) -> None:
        if kind not in ("subscribe", "start") or not isinstance(op_id, str):
            return
        send = self.send_message  # type: ignore[attr-defined]
        if isinstance(self, BaseGraphQLTransportWSHandler):
            await send({"id": op_id, "type": "error", "payload": [THROTTLED]})
        else:
            await send({"id": op_id, "type": "error", "payload": THROTTLED})
