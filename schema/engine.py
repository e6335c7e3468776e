"""What the read path relies on in Strawberry beyond its documented API, in one place.

`CachedDocuments` serves parsing and validation from `schema.documents`; `CompiledPlans` runs
queries by their compiled plan (`schema.compiled`). They rely on four behaviours of Strawberry's
operation pipeline (strawberry-graphql 0.341, pinned below 0.342) and on graphql-core 3.3's
type classes (pinned below 3.4):

1. an `on_parse` hook that sets `execution_context.graphql_document` before yielding skips
   parsing (documented for parser caches);
2. `execution_context.pre_execution_errors` set (to a list) before validation skips
   validation, and is then what validation would have returned;
3. `ExecutionContext` takes extra attributes (the operation's `Document` rides on it);
4. an `on_execute` hook that sets `execution_context.result` before yielding skips execution;
   resolvers are `StrawberryField.base_resolver.wrapped_func`, plain fields read
   `python_name`.

`self_check()` runs at start-up against the installed Strawberry: it executes a valid and an
invalid document twice each through a tiny schema and fails loudly if the second answers differ
from the first, parsing/validation ran again, or a compiled query was executed twice.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any

import strawberry
from graphql import ExecutionResult as GraphQLExecutionResult
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionContext

from schema.compiled import Plan, Unsupported, coerce_variables, compile_plan, run
from schema.documents import Document, DocumentCache, copy_errors, persisted_query_text
from schema.fastpath import PLAN_FAILED

_DOCUMENT = "cowatch_document"


def current_document(execution_context: ExecutionContext) -> Document | None:
    """The cached Document the operation runs (None before parsing or when it failed)."""
    document: Document | None = getattr(execution_context, _DOCUMENT, None)
    return document


class CachedDocuments(SchemaExtension):
    """Persisted queries, then parse and validate each document text once per cache lifetime.

    Listed after the extensions whose `on_validate` checks must run on every request (rate
    limits, list caps): their pre-validation checks see `pre_execution_errors is None` first.
    """

    def __init__(self, *, cache: DocumentCache) -> None:
        self.cache = cache

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.query = persisted_query_text(
            self.cache, context.query, context.operation_extensions
        )
        yield

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        document = None
        if context.graphql_document is None and context.query:
            document = self.cache.lookup(context.query)
            if document is not None:
                context.graphql_document = document.ast
        yield
        if document is None and context.graphql_document is not None and context.query:
            document = self.cache.add(context.query, context.graphql_document)
        setattr(context, _DOCUMENT, document)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = current_document(context)
        validating = document is not None and context.pre_execution_errors is None
        if validating and document is not None and document.validation is not None:
            context.pre_execution_errors = document.validation_errors()
            validating = False
        yield
        if validating and document is not None and context.pre_execution_errors is not None:
            document.validation = copy_errors(context.pre_execution_errors)


class CompiledPlans(SchemaExtension):
    """Queries whose document compiles run by their plan; the rest (and any failure) as before."""

    async def on_execute(self) -> AsyncIterator[None]:  # type: ignore[override]
        context = self.execution_context
        document = current_document(context)
        request = getattr(context.context, "request", None)
        gave_up = request is not None and request.scope.get(PLAN_FAILED, False)
        if (
            document is not None
            and context.result is None
            and not context.pre_execution_errors
            and not gave_up
        ):
            name = context.operation_name
            plan: Plan | None = document.plan(
                ("compiled", name), lambda d: compile_plan(context.schema, d.ast, name)
            )
            if plan is not None:
                data = await _run(plan, context)
                if data is not None:
                    context.result = GraphQLExecutionResult(data=data)
        yield


async def _run(plan: Plan, context: ExecutionContext) -> dict[str, Any] | None:
    try:
        variables = coerce_variables(plan, context.variables or {})
        return await run(
            plan, context=context.context, root_value=context.root_value, variables=variables
        )
    except Unsupported:
        return None
    except Exception:  # the general path runs it again and reports the error its own way
        return None


@functools.cache
def self_check() -> None:
    """Fail at start-up when the installed Strawberry breaks what CachedDocuments relies on."""
    runs = {"validations": 0}

    class Counted(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            runs["validations"] += 1

    calls: list[str] = []

    @strawberry.type
    class Query:
        @strawberry.field
        def ok(self, info: strawberry.Info) -> bool:
            calls.append(type(info).__module__)
            return True

    class Quiet(strawberry.Schema):
        def process_errors(self, errors: Any, execution_context: Any = None) -> None:
            """The probe's validation error is expected: nothing to log."""

    cache = DocumentCache(max_bytes=4096)
    probe = Quiet(
        query=Query,
        extensions=[
            lambda: AddValidationRules([Counted]),
            lambda: CachedDocuments(cache=cache),
            CompiledPlans,
        ],
    )
    for text in ("{ ok }", "{ missing }"):
        before = runs["validations"]
        answers: list[Any] = []
        for _ in range(2):
            result = _without_loop(probe.execute(text))
            answers.append((result.data, [e.formatted for e in result.errors or ()]))
        document = cache.lookup(text)
        if (
            answers[0] != answers[1]
            or document is None
            or document.validation is None
            or runs["validations"] != before + 1
            or calls != ["schema.compiled"] * 2  # compiled, and each query run once
        ):
            raise RuntimeError(
                f"strawberry-graphql {strawberry_version()} no longer skips parsing and "
                "validation for cached documents as schema/engine.py expects; "
                "check its pipeline and the pin in pyproject.toml"
            )


def _without_loop(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never waits for I/O (the probe's), inside or outside a loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    coroutine.close()
    raise RuntimeError("the self-check's probe waited for I/O")


def strawberry_version() -> str:
    from importlib.metadata import version

    return version("strawberry-graphql")
