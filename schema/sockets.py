"""GraphQL over websockets: graphql-transport-ws and the legacy graphql-ws, on one Connection.

The socket (Origin, caps, sign-in, flood guard, outbox, close codes) is
`realtime.connection.Connection`; this face parses the two protocols' messages and renders their
frames. Operations run through Strawberry's public `Schema.stream` (queries and mutations too, on
either protocol); a subscription whose document `schema/shared.py` can plan is served from the
bus with shared execution instead, after Strawberry's pipeline (validation, limits, rate limits,
the resolver's own checks) has run once for it and produced a clean first result.

Sign-in is by the `connection_init` payload's `Authorization`, or the handshake's header or
cookie (a cross-origin page's cookie is ignored): an account token, or a party member token (a
guest's: good for its party's operations only). Without a token the socket is anonymous and
each operation says whether it needs one (`videoTimestamp`, a video's public room, does not); a
bad token → 4401 (legacy: `connection_error` first). A frame over `COWATCH_WS_MAX_MESSAGE_BYTES`
is refused unparsed: graphql-transport-ws closes with 1009, and with 4400 on any message it
cannot read (its protocol requires both); the legacy graphql-ws answers an id-less `error` frame
for either and keeps the socket open, as subscriptions-transport-ws does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import aclosing, suppress
from dataclasses import replace
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.types.execution import ExecutionResult, PreExecutionError

from realtime.connection import (
    CLOSE_INVALID_TOKEN,
    CLOSE_TOO_BIG,
    Connection,
    Principal,
)
from realtime.events import Event
from realtime.flood import Verdict
from resolvers import auth
from resolvers.errors import DomainError, InvalidToken
from resolvers.services import Services
from schema.context import Context, Loaders
from schema.intake import check_document_size
from schema.shared import Adapter, plan

log = logging.getLogger("cowatch.graphql.sockets")

TRANSPORT_WS = "graphql-transport-ws"
LEGACY_WS = "graphql-ws"
#: Messages that only free resources: never throttled.
ALWAYS_ADMITTED = frozenset({"complete", "stop", "connection_terminate"})
THROTTLED = GraphQLError(
    "too many messages; slow down", extensions={"code": "RATE_LIMITED"}
).formatted
LIMIT_REACHED = "Subscription limit reached"
INIT_TIMEOUT_S = 60.0


class Sockets:
    """What every GraphQL socket of this app shares: the schema, its plans, the adapter."""

    def __init__(self, schema: Any) -> None:
        if not callable(getattr(schema, "stream", None)):
            raise RuntimeError("GraphQL sockets need strawberry-graphql >= 0.320 (Schema.stream)")
        self.schema = schema
        self.adapter = Adapter(schema)

    async def endpoint(self, websocket: WebSocket) -> None:
        services: Services = websocket.app.state.services
        offered = websocket.scope.get("subprotocols") or []
        protocol = next((p for p in (TRANSPORT_WS, LEGACY_WS) if p in offered), None)
        connection = Connection(services.hub, websocket)
        if not await connection.accept(protocol):
            return
        if protocol is None:
            await connection.close(4406, "Subprotocol not acceptable")
            await connection.release()
            return
        session_class = TransportSession if protocol == TRANSPORT_WS else LegacySession
        await session_class(self, services, connection).serve()


class Session:
    """One GraphQL socket's protocol state; the two protocols differ in the subclasses."""

    #: the beginning of a result frame, before the JSON-encoded operation id
    frame_template: str

    def __init__(self, sockets: Sockets, services: Services, connection: Connection) -> None:
        self.sockets = sockets
        self.services = services
        self.connection = connection
        self.websocket = connection.websocket
        self.context: Context | None = None
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.initialised = False

    # -- the message loop -------------------------------------------------------------
    async def serve(self) -> None:
        try:
            await self.on_open()
            while not self.connection.closed:
                message = await self.websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                await self.receive(message.get("text"))
        except WebSocketDisconnect:
            pass
        finally:
            await self.shutdown()
            await self.connection.release()

    async def receive(self, text: str | None) -> None:
        if text is None:
            await self.not_text()
            return
        if self.connection.too_big(text):
            await self.too_big()
            return
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            await self.invalid("WebSocket message must be valid JSON")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.invalid("Failed to parse message")
            return
        kind = message["type"]
        if kind not in ALWAYS_ADMITTED:
            verdict = await self.connection.admit()
            if verdict is Verdict.CLOSE:
                return
            if verdict is Verdict.THROTTLE:
                op_id = message.get("id")
                if kind in ("subscribe", "start") and isinstance(op_id, str):
                    await self.send_error(op_id, [THROTTLED])
                return
        await self.dispatch(kind, message)

    async def on_open(self) -> None:
        pass

    async def too_big(self) -> None:
        """A frame over `COWATCH_WS_MAX_MESSAGE_BYTES`, refused unparsed."""
        await self.connection.close(CLOSE_TOO_BIG, "message too big")

    async def not_text(self) -> None:
        raise NotImplementedError

    async def invalid(self, reason: str) -> None:
        raise NotImplementedError

    async def dispatch(self, kind: str, message: dict[str, Any]) -> None:
        raise NotImplementedError

    async def send(self, message: dict[str, Any]) -> None:
        with suppress(Exception):  # a client that went away is cleaned up by the loop
            await self.websocket.send_text(json.dumps(message, separators=(",", ":")))

    async def send_error(self, op_id: str, errors: list[Any]) -> None:
        raise NotImplementedError

    # -- sign-in ----------------------------------------------------------------------
    async def sign_in(self, payload: dict[str, Any]) -> str | None:
        """Authenticate from the init payload or the handshake; None if the socket was closed."""
        sent = payload.get("Authorization", payload.get("authorization"))
        websocket = self.websocket
        cookies = {} if self.connection.cross_origin else websocket.cookies
        token = (
            auth.token_from(headers={"authorization": sent}, cookies={})
            if isinstance(sent, str)
            else auth.token_from(headers=websocket.headers, cookies=cookies)
        )
        services = self.services
        context = Context(
            services=services,
            request=websocket,
            response=None,
            token=token,
            loaders=Loaders(services),
            connection_params=payload,
        )
        if not token:  # anonymous: public subscriptions only (each operation checks its own)
            self.context = context
            return ""
        try:
            caller = await auth.identify(db=services.db, secret=services.jwt_secret, token=token)
        except InvalidToken as exc:
            await self.refuse(CLOSE_INVALID_TOKEN, exc.message)
            return None
        assert caller.claims is not None
        principal = Principal(
            user_id=caller.user.id if caller.user else None,
            session_id=caller.claims.jti,
            expires_at=caller.claims.expires_at.timestamp(),
        )
        if not await self.connection.sign_in(principal):
            return None
        if caller.user is not None:
            context.signed_in(caller.user)
        self.context = context
        return token

    async def refuse(self, code: int, reason: str) -> None:
        await self.connection.close(code, reason)

    def operation_context(self) -> Context:
        """A context per operation: DataLoaders cache, so they never outlive one operation."""
        assert self.context is not None
        return replace(self.context, loaders=Loaders(self.services))

    # -- operations -------------------------------------------------------------------
    def in_flight(self) -> int:
        return len(self.operations) + len(self.connection.subscriptions)

    async def start(self, op_id: str, payload: Any) -> None:
        """Run one operation: shared from the bus if it can be, else through Strawberry."""
        if not isinstance(payload, dict) or not isinstance(payload.get("query"), str):
            await self.send_error(op_id, [GraphQLError("payload.query must be a string").formatted])
            return
        query: str = payload["query"]
        variables = payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(variables, dict) or not isinstance(operation_name, str | None):
            error = GraphQLError("variables must be an object, operationName a string")
            await self.send_error(op_id, [error.formatted])
            return
        try:
            check_document_size(query, self.services.settings)
        except DomainError as exc:
            error = GraphQLError(exc.message, extensions={"code": exc.code, **exc.details})
            await self.send_error(op_id, [error.formatted])
            return
        if await self.try_shared(op_id, query, variables, operation_name):
            return
        task = asyncio.create_task(self.run(op_id, query, variables, operation_name))
        self.operations[op_id] = task
        task.add_done_callback(lambda done: self._forget(op_id, done))

    def _forget(self, op_id: str, task: asyncio.Task[None]) -> None:
        if self.operations.get(op_id) is task:
            del self.operations[op_id]

    async def run(
        self, op_id: str, query: str, variables: dict[str, Any], operation_name: str | None
    ) -> None:
        try:
            stream = await self.sockets.schema.stream(
                query,
                variable_values=variables,
                context_value=self.operation_context(),
                operation_name=operation_name,
            )
            async with aclosing(stream):
                first = True
                async for result in stream:
                    if first and isinstance(result, PreExecutionError):
                        await self.pre_execution_error(op_id, result)
                        return
                    if not isinstance(result, ExecutionResult):
                        error = GraphQLError("Incremental delivery is not supported")
                        await self.send_error(op_id, [error.formatted])
                        return
                    await self.send_result(op_id, result)
                    first = False
            await self.completed(op_id)
        except asyncio.CancelledError:
            await self.cancelled(op_id)
            raise
        except Exception:
            log.exception("a GraphQL socket operation failed")
            await self.completed(op_id)

    async def pre_execution_error(self, op_id: str, result: PreExecutionError) -> None:
        await self.send_error(op_id, [error.formatted for error in result.errors or []])

    async def send_result(self, op_id: str, result: ExecutionResult) -> None:
        raise NotImplementedError

    async def completed(self, op_id: str) -> None:
        raise NotImplementedError

    async def cancelled(self, op_id: str) -> None:
        pass

    async def stop(self, op_id: str) -> bool:
        """Stop an operation; True if it was one served from the bus."""
        if await self.connection.unsubscribe(op_id):
            return True
        task = self.operations.pop(op_id, None)
        if task is not None:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
        return False

    async def shutdown(self) -> None:
        tasks = list(self.operations.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with suppress(asyncio.CancelledError, Exception):
                await task

    # -- shared execution -------------------------------------------------------------
    async def try_shared(
        self, op_id: str, query: str, variables: dict[str, Any], operation_name: str | None
    ) -> bool:
        """Serve this subscription from the bus; False to let Strawberry handle it."""
        sockets = self.sockets
        found = plan(sockets.schema, query, operation_name)
        topic = found.topic(variables) if found else None
        if found is None or topic is None:
            return False
        public = Context(
            services=self.services,
            request=self.websocket,
            response=None,
            token=None,
            loaders=Loaders(self.services),
        )
        run = sockets.adapter.executor(found.document, variables, operation_name, public)
        if run is None:
            return False
        memo_key = ("graphql", found.key, operation_name, json.dumps(variables, sort_keys=True))
        prefix = self.frame_template.format(id=json.dumps(op_id))
        root = found.field.root

        def render(event: Event, _first: bool) -> str:
            body = event.frames.get(memo_key)
            if body is None:
                body = event.frames[memo_key] = run(root(event))
            return prefix + body + "}"

        try:
            listener = await self.connection.subscribe(op_id, topic, render, active=False)
        except (DomainError, ConnectionError):
            return False
        first = None
        try:
            if not await self.first_result_is_clean(query, variables, operation_name):
                raise LookupError("not served shared")
            if found.field.snapshot is not None:
                first = await found.field.snapshot(self.operation_context(), topic)
        except (DomainError, LookupError):
            await self.connection.unsubscribe(op_id)
            return False
        listener.start(first)
        return True

    async def first_result_is_clean(
        self, query: str, variables: dict[str, Any], operation_name: str | None
    ) -> bool:
        stream = await self.sockets.schema.subscribe(
            query,
            variable_values=variables,
            context_value=self.operation_context(),
            operation_name=operation_name,
        )
        async with aclosing(stream):
            first = await anext(stream, None)
        return (
            isinstance(first, ExecutionResult)
            and not isinstance(first, PreExecutionError)
            and not first.errors
        )


class TransportSession(Session):
    """graphql-transport-ws (github.com/enisdenjo/graphql-ws, PROTOCOL.md)."""

    frame_template = '{{"id":{id},"type":"next","payload":'

    async def on_open(self) -> None:
        self._init_timer = asyncio.get_running_loop().call_later(
            INIT_TIMEOUT_S, self.connection.close_soon, 4408, "Connection initialisation timeout"
        )

    async def shutdown(self) -> None:
        self._init_timer.cancel()
        await super().shutdown()

    async def not_text(self) -> None:
        await self.connection.close(4400, "WebSocket message type must be text")

    async def invalid(self, reason: str) -> None:
        await self.connection.close(4400, reason)

    async def dispatch(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "connection_init":
            await self.init(message.get("payload"))
        elif kind == "ping":
            await self.send({"type": "pong"})
        elif kind == "pong":
            pass
        elif kind == "subscribe":
            await self.subscribe(message)
        elif kind == "complete":
            op_id = message.get("id")
            if isinstance(op_id, str):
                await self.stop(op_id)
        else:
            await self.invalid(f"Unknown message type: {kind}")

    async def init(self, payload: Any) -> None:
        self._init_timer.cancel()
        if payload is not None and not isinstance(payload, dict):
            await self.connection.close(4400, "Invalid connection init payload")
            return
        if self.initialised:
            await self.connection.close(4429, "Too many initialisation requests")
            return
        self.initialised = True
        if await self.sign_in(payload or {}) is not None:
            await self.send({"type": "connection_ack"})

    async def subscribe(self, message: dict[str, Any]) -> None:
        op_id = message.get("id")
        if not isinstance(op_id, str) or not isinstance(message.get("payload"), dict):
            await self.invalid("Failed to parse message")
            return
        if self.context is None:
            await self.connection.close(4401, "Unauthorized")
            return
        if op_id in self.operations or op_id in self.connection.subscriptions:
            await self.connection.close(4409, f"Subscriber for {op_id} already exists")
            return
        if self.in_flight() >= self.connection.hub.limits.max_subscriptions:
            await self.send_error(op_id, [GraphQLError(LIMIT_REACHED).formatted])
            return
        await self.start(op_id, message["payload"])

    async def pre_execution_error(self, op_id: str, result: PreExecutionError) -> None:
        errors = result.errors or []
        if errors and isinstance(errors[0], GraphQLSyntaxError):
            await self.connection.close(4400, errors[0].message)
            return
        await super().pre_execution_error(op_id, result)

    async def send_error(self, op_id: str, errors: list[Any]) -> None:
        await self.send({"id": op_id, "type": "error", "payload": errors})

    async def send_result(self, op_id: str, result: ExecutionResult) -> None:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        await self.send({"id": op_id, "type": "next", "payload": payload})

    async def completed(self, op_id: str) -> None:
        await self.send({"id": op_id, "type": "complete"})


class LegacySession(Session):
    """The legacy graphql-ws protocol (apollographql/subscriptions-transport-ws)."""

    frame_template = '{{"type":"data","id":{id},"payload":'

    async def not_text(self) -> None:
        await self.connection.close(1002, "WebSocket message type must be text")

    async def invalid(self, reason: str) -> None:
        """A message that could not be read: counted by the flood guard like any other."""
        if await self.connection.admit() is Verdict.ACCEPT:
            await self.refused(reason)

    async def refused(self, reason: str) -> None:
        # As subscriptions-transport-ws does: an error frame (no id), and the socket stays open.
        await self.send({"type": "error", "payload": {"message": reason}})

    async def too_big(self) -> None:
        limit = self.connection.hub.limits.max_message_bytes
        await self.invalid(f"message too big: the limit is {limit} bytes")

    async def refuse(self, code: int, reason: str) -> None:
        await self.send({"type": "connection_error", "payload": {"message": reason}})
        await self.connection.close(code, reason)

    async def dispatch(self, kind: str, message: dict[str, Any]) -> None:
        if kind == "connection_init":
            payload = message.get("payload")
            if payload is not None and not isinstance(payload, dict):
                await self.send({"type": "connection_error"})
                await self.connection.close(1000)
                return
            if await self.sign_in(payload or {}) is not None:
                self.initialised = True
                await self.send({"type": "connection_ack"})
        elif kind == "connection_terminate":
            await self.connection.close(1000)
        elif kind == "start":
            await self.start_message(message)
        elif kind == "stop":
            op_id = message.get("id")
            if isinstance(op_id, str) and await self.stop(op_id):
                await self.completed(op_id)
        else:
            await self.refused(f"Unknown message type: {kind}")

    async def start_message(self, message: dict[str, Any]) -> None:
        op_id = message.get("id")
        if not isinstance(op_id, str):
            await self.refused("start needs a string id")
            return
        if self.context is None:
            await self.connection.close(4401, "Unauthorized")
            return
        await self.stop(op_id)
        if self.in_flight() >= self.connection.hub.limits.max_subscriptions:
            await self.send({"type": "error", "id": op_id, "payload": {"message": LIMIT_REACHED}})
            return
        await self.start(op_id, message.get("payload"))

    async def send_error(self, op_id: str, errors: list[Any]) -> None:
        await self.send({"type": "error", "id": op_id, "payload": errors[0] if errors else {}})

    async def send_result(self, op_id: str, result: ExecutionResult) -> None:
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            payload["extensions"] = result.extensions
        await self.send({"type": "data", "id": op_id, "payload": payload})

    async def completed(self, op_id: str) -> None:
        await self.send({"type": "complete", "id": op_id})

    async def cancelled(self, op_id: str) -> None:
        await self.completed(op_id)
