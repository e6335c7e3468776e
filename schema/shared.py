"""Shared execution of topic-backed subscriptions, and the one adapter onto graphql-core's.

Strawberry executes a subscription's document once per subscriber per event (~170 µs each, so
5,000 viewers cost ~0.8 s per seek). A document whose only root field is a topic-backed
subscription (`SHARED`: `videoTimestamp` today) is served from the bus instead: per event, the
document is executed once per distinct (document, operation, variables) per process, the
encoded payload cached on the event (`Event.frames`), and every subscriber with that document
gets the same bytes with only its operation id spliced in. Execution uses a viewer-less context,
so no viewer's data can reach another viewer.

graphql-core internals: per-event execution uses 3.3's `Executor.build` (once per subscription)
and `execute_subscription_event` (per event); `problems()` checks the installed versions at
start-up and, if those are missing, execution falls back to the public `graphql.execute`
(slower, same results) with one warning. Strawberry's graphql-core schema is read from its
private `_schema` attribute, checked the same way.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import graphql
from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    OperationType,
    StringValueNode,
    TypeInfo,
    TypeInfoVisitor,
    VariableNode,
    Visitor,
    get_operation_ast,
    visit,
)
from strawberry.schema.schema_converter import GraphQLCoreConverter

from realtime.events import Event
from schema.documents import Document

log = logging.getLogger("cowatch.graphql.shared")
DEFINITION_BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF
MASKED = {"message": "Unexpected error.", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}
#: graphql-core releases the fast per-event path is tested with (pyproject.toml pins them).
TESTED_GRAPHQL_CORE = ((3, 3), (3, 4))


@dataclass(frozen=True)
class SharedField:
    """A subscription field served from a topic: its argument names the topic.

    A topic whose newest event is its whole state (a playhead) starts each subscriber with that
    state; a log topic (a party) needs `snapshot`: the subscriber's first event, read for it
    after it joined the room (a DomainError refuses it), with the version it stands at.
    """

    argument: str
    topic: Callable[[str], str]
    #: the value the field resolves to for one event (what the Strawberry resolver yields)
    root: Callable[[Event], Any]
    snapshot: Callable[[Any, str], Awaitable[Event]] | None = None


#: Topic-backed subscription fields by GraphQL name; schema modules register theirs.
SHARED: dict[str, SharedField] = {}


def register(name: str, field: SharedField) -> None:
    SHARED[name] = field


def problems() -> list[str]:
    """Why the fast per-event executor cannot be used here (empty: it can)."""
    found = []
    installed = tuple(int(part) for part in version("graphql-core").split(".")[:2])
    if not TESTED_GRAPHQL_CORE[0] <= installed < TESTED_GRAPHQL_CORE[1]:
        found.append(f"graphql-core {version('graphql-core')} is outside {TESTED_GRAPHQL_CORE}")
    execution = graphql.execution
    for name in ("Executor", "execute_subscription_event"):
        if not hasattr(execution, name):
            found.append(f"graphql.execution has no {name}")
    executor = getattr(execution, "Executor", None)
    if executor is not None and not hasattr(executor, "build_per_event_executor"):
        found.append("Executor has no build_per_event_executor")
    return found


def graphql_schema(schema: Any) -> GraphQLSchema:
    """The graphql-core schema inside a Strawberry schema (a private attribute, checked)."""
    inner = getattr(schema, "_schema", None)
    if not isinstance(inner, GraphQLSchema):
        raise RuntimeError("strawberry.Schema no longer keeps its graphql-core schema in _schema")
    return inner


class Adapter:
    """Chosen once at start-up: the fast per-event executor, or the public fallback."""

    def __init__(self, schema: Any) -> None:
        self.schema = graphql_schema(schema)
        found = problems()
        self.fast = not found
        if found:
            log.warning("shared subscriptions use graphql.execute (slower): %s", "; ".join(found))

    def executor(
        self,
        document: DocumentNode,
        variables: dict[str, Any],
        operation_name: str | None,
        context: Any,
    ) -> Callable[[Any], str] | None:
        """A function from a root value to the encoded payload; None if variables do not fit."""
        if self.fast:
            from graphql.execution import Executor, execute_subscription_event

            built = Executor.build(
                self.schema,
                document,
                context_value=context,
                raw_variable_values=variables,
                operation_name=operation_name,
            )
            if isinstance(built, list):
                return None

            def run(root: Any) -> str:
                return _encode(execute_subscription_event(built.build_per_event_executor(root)))

            return run

        def run_public(root: Any) -> str:
            return _encode(
                graphql.execute(
                    self.schema,
                    document,
                    root_value=root,
                    context_value=context,
                    variable_values=variables,
                    operation_name=operation_name,
                )
            )

        return run_public


def _encode(result: Any) -> str:
    if inspect.isawaitable(result):
        result.close()  # type: ignore[attr-defined]
        raise TypeError("shared subscription fields must resolve synchronously")
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        log.error("shared subscription execution failed: %s", result.errors)
        body["errors"] = [MASKED]
    return json.dumps(body, separators=(",", ":"))


@dataclass(frozen=True)
class Plan:
    """A document the shared path can serve: one topic-backed root field, nothing else."""

    key: str
    document: DocumentNode
    field: SharedField
    argument: Any

    def topic(self, variables: dict[str, Any]) -> str | None:
        node = self.argument
        if isinstance(node, VariableNode):
            value = variables.get(node.name.value)
        elif isinstance(node, StringValueNode | IntValueNode):
            value = node.value
        else:
            return None
        return self.field.topic(value) if isinstance(value, str) and value else None


def plan(schema: Any, query: str, operation_name: str | None) -> Plan | None:
    """The shared plan of a document, planned once per document in the schema's document cache
    (the same parse Strawberry's pipeline then uses), or None when it cannot be served shared."""
    try:
        document = schema.documents.get_or_parse(query)
    except GraphQLError:
        return None
    inner = graphql_schema(schema)
    return document.plan(("shared", operation_name), lambda d: _make_plan(inner, d, operation_name))


def _may_await(definition: Any) -> bool:
    return bool(getattr(definition, "is_async", False) or getattr(definition, "extensions", None))


def plain_selections(schema: GraphQLSchema, document: DocumentNode) -> bool:
    """True when every field below the subscription's root is read straight from its event's
    data: no async resolver and no field extension (a permission check may await), so one
    synchronous execution per event can serve every subscriber of the document."""
    info = TypeInfo(schema)
    unsafe: list[str] = []
    depth = 0

    class Check(Visitor):
        def enter_field(self, node: FieldNode, *_args: Any) -> None:
            nonlocal depth
            depth += 1
            field = info.get_field_def()
            definition = (field.extensions or {}).get(DEFINITION_BACKREF) if field else None
            if depth > 1 and definition is not None and _may_await(definition):
                unsafe.append(node.name.value)

        def leave_field(self, *_args: Any) -> None:
            nonlocal depth
            depth -= 1

    visit(document, TypeInfoVisitor(info, Check()))
    return not unsafe


def _make_plan(
    schema: GraphQLSchema, document: Document, operation_name: str | None
) -> Plan | None:
    operation = get_operation_ast(document.ast, operation_name)
    if operation is None or operation.operation != OperationType.SUBSCRIPTION:
        return None
    selections = operation.selection_set.selections
    if len(selections) != 1 or not isinstance(selections[0], FieldNode):
        return None
    root = selections[0]
    shared = SHARED.get(root.name.value)
    arguments = root.arguments or ()
    if shared is None or root.directives or len(arguments) != 1:
        return None
    argument = arguments[0]
    if argument.name.value != shared.argument or not plain_selections(schema, document.ast):
        return None
    return Plan(key=document.sha256, document=document.ast, field=shared, argument=argument.value)
