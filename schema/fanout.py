"""Shared execution of `videoTimestamp` subscriptions, for both GraphQL websocket protocols.

Strawberry executes a subscription's document once per subscriber per event (~170 µs each,
so 5,000 viewers cost ~0.8 s per seek). The handlers here serve the common case, a document
whose only root field is `videoTimestamp`, from the playback bus instead:

1. Subscribe: Strawberry's own pipeline still runs once per subscribe (parsing, validation,
   the security extensions, the resolver's authentication) and must yield a clean first
   result. Anything else (errors, other documents, several root fields) falls back to
   Strawberry's normal per-subscriber stream, unchanged, so errors look exactly as before.
2. Join: a `Listener` joins the video's room on the bus; its first frame is the current state.
3. Deliver: per event, the document is executed once per distinct (document, operation name,
   variables): the encoded payload is memoised on the event itself (`PlaybackState.memo`, an
   execution cache keyed by the event's version), and every subscriber with the same
   document gets the same bytes, with only its operation id spliced in as a pre-encoded
   prefix. Execution uses a viewer-less context, so no viewer's data can reach another
   viewer; `TimestampEvent` has no viewer-dependent fields, so nothing is lost.
"""

from __future__ import annotations

import inspect
import json
import logging
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    IntValueNode,
    OperationType,
    StringValueNode,
    VariableNode,
    get_operation_ast,
    parse,
)
from graphql.execution import Executor, execute_subscription_event
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    CompleteMessage,
    ErrorMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as LegacyError
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage, StopMessage
from strawberry.types.execution import ExecutionResult, PreExecutionError

from resolvers.delivery import Listener, Outbox, frame_writer
from resolvers.errors import DomainError
from resolvers.playback import PlaybackState
from schema.context import Context, Loaders
from schema.playback import TimestampEvent
from schema.throttle import FloodGuarded

log = logging.getLogger("cowatch.graphql.fanout")
FIELD = "videoTimestamp"
ARGUMENT = "videoId"
MAX_PLANS = 512
LIMIT_REACHED = "Subscription limit reached"
MASKED = {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}


@dataclass(frozen=True)
class Plan:
    """A document the fast path can serve: one `videoTimestamp` field, nothing else."""

    document: DocumentNode
    argument: Any

    def video_id(self, variables: dict[str, Any]) -> str | None:
        node = self.argument
        if isinstance(node, VariableNode):
            value = variables.get(node.name.value)
        elif isinstance(node, StringValueNode | IntValueNode):
            value = node.value
        else:
            return None
        return value if isinstance(value, str) else None


_plans: dict[tuple[str, str | None], Plan | None] = {}


def plan(query: str, operation_name: str | None) -> Plan | None:
    key = (query, operation_name)
    if key not in _plans:
        if len(_plans) >= MAX_PLANS:
            _plans.clear()
        _plans[key] = _make_plan(query, operation_name)
    return _plans[key]


def _make_plan(query: str, operation_name: str | None) -> Plan | None:
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operation = get_operation_ast(document, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    root = selections[0]
    arguments = root.arguments or ()
    if root.name.value != FIELD or root.directives or len(arguments) != 1:
        return None
    argument = arguments[0]
    if argument.name.value != ARGUMENT:
        return None
    return Plan(document=document, argument=argument.value)


def _payload(executor: Executor, state: PlaybackState) -> str:
    result = execute_subscription_event(
        executor.build_per_event_executor(TimestampEvent.from_state(state))
    )
    if inspect.isawaitable(result):
        raise TypeError("videoTimestamp fields must resolve synchronously")
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        log.error("shared subscription execution failed: %s", result.errors)
        body["errors"] = [MASKED]
    return json.dumps(body, separators=(",", ":"))


class SharedSubscriptions:
    """Mixed into Strawberry's protocol handlers: the fast path and its bookkeeping."""

    #: `{"id":…,"type":"next","payload":` or the legacy `{"type":"data","id":…,"payload":`
    frame_template: str

    context: Context
    schema: Any
    root_value: Any
    websocket: Any
    max_subscriptions_per_connection: int | None

    def _shared(self) -> dict[str, tuple[str, Listener]]:
        shared: dict[str, tuple[str, Listener]] | None = self.__dict__.get("_shared_ops")
        if shared is None:
            shared = self.__dict__["_shared_ops"] = {}
        return shared

    def _outbox(self) -> Outbox:
        outbox: Outbox | None = self.__dict__.get("_shared_outbox")
        if outbox is None:
            bus = self.context.services.bus
            ws = self.websocket.ws
            outbox = bus.open_outbox(ws.send_text, frame_writer(ws.scope))
            self.__dict__["_shared_outbox"] = outbox
        return outbox

    def over_limit(self, in_flight: int) -> bool:
        """Strawberry's per-connection cap, counting shared and Strawberry-run operations."""
        limit = self.max_subscriptions_per_connection
        return limit is not None and in_flight >= limit

    async def try_shared(self, op_id: str, payload: Any) -> bool:
        """Serve this subscribe from the bus; False to let Strawberry handle it."""
        if not isinstance(payload, dict):
            return False
        query, variables = payload.get("query"), payload.get("variables") or {}
        operation_name = payload.get("operationName")
        if not isinstance(query, str) or not isinstance(variables, dict):
            return False
        found = plan(query, operation_name if isinstance(operation_name, str) else None)
        video_id = found.video_id(variables) if found else None
        if found is None or video_id is None:
            return False
        services = self.context.services
        public = Context(
            services=services,
            request=self.context.request,
            response=None,
            token=None,
            loaders=Loaders(services),
        )
        executor = Executor.build(
            self.schema._schema,
            found.document,
            context_value=public,
            raw_variable_values=variables,
            operation_name=operation_name,
        )
        if isinstance(executor, list):
            return False
        memo_key = ("graphql", query, operation_name, json.dumps(variables, sort_keys=True))
        prefix = self.frame_template.format(id=json.dumps(op_id))

        def render(state: PlaybackState, _first: bool) -> str:
            body = state.memo.get(memo_key)
            if body is None:
                body = state.memo[memo_key] = _payload(executor, state)
            return prefix + body + "}"

        listener = Listener(self._outbox(), render, active=False)
        try:
            await services.bus.subscribe(video_id, listener)
        except DomainError:
            return False
        if not await self._first_result_is_clean(query, variables, operation_name):
            await services.bus.unsubscribe(video_id, listener)
            return False
        self._shared()[op_id] = (video_id, listener)
        listener.activate()
        return True

    async def _first_result_is_clean(
        self, query: str, variables: dict[str, Any], operation_name: Any
    ) -> bool:
        stream = await self.schema.subscribe(
            query,
            variable_values=variables,
            context_value=self.context,
            root_value=self.root_value,
            operation_name=operation_name,
        )
        async with aclosing(stream):
            first = await anext(stream, None)
        return (
            isinstance(first, ExecutionResult)
            and not isinstance(first, PreExecutionError)
            and not first.errors
        )

    async def drop_shared(self, op_id: str) -> bool:
        entry = self._shared().pop(op_id, None)
        if entry is None:
            return False
        await self.context.services.bus.unsubscribe(*entry)
        return True

    async def close_shared(self) -> None:
        for op_id in list(self._shared()):
            await self.drop_shared(op_id)
        outbox = self.__dict__.pop("_shared_outbox", None)
        if outbox is not None:
            await outbox.close()


class TransportWSHandler(
    FloodGuarded, SharedSubscriptions, BaseGraphQLTransportWSHandler[Context, None]
):
    frame_template = '{{"id":{id},"type":"next","payload":'

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        op_id = message["id"]
        if op_id in self._shared():
            await self.websocket.close(code=4409, reason=f"Subscriber for {op_id} already exists")
            return
        if self.connection_acknowledged and op_id not in self.operations:
            if self.over_limit(len(self.operations) + len(self._shared())):
                error = GraphQLError(LIMIT_REACHED).formatted
                await self.send_message(ErrorMessage(id=op_id, type="error", payload=[error]))
                return
            if await self.try_shared(op_id, message["payload"]):
                return
        await super().handle_subscribe(message)

    async def handle_complete(self, message: CompleteMessage) -> None:
        if not await self.drop_shared(message["id"]):
            await super().handle_complete(message)

    async def shutdown(self) -> None:
        await self.close_shared()
        await super().shutdown()


class LegacyWSHandler(FloodGuarded, SharedSubscriptions, BaseGraphQLWSHandler[Context, None]):
    frame_template = '{{"type":"data","id":{id},"payload":'

    async def handle_start(self, message: StartMessage) -> None:
        op_id = message["id"]
        await self.drop_shared(op_id)
        if self.connection_acknowledged and op_id not in self.tasks:
            if self.over_limit(len(self.tasks) + len(self._shared())):
                error = GraphQLError(LIMIT_REACHED).formatted
                await self.send_message(LegacyError(type="error", id=op_id, payload=error))
                return
            if await self.try_shared(op_id, message["payload"]):
                return
        await super().handle_start(message)

    async def handle_stop(self, message: StopMessage) -> None:
        if await self.drop_shared(message["id"]):
            await self.send_message({"type": "complete", "id": message["id"]})
        else:
            await super().handle_stop(message)

    async def cleanup(self) -> None:
        await self.close_shared()
        await super().cleanup()
