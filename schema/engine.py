"""What the read path relies on in Strawberry beyond its documented API, in one place.

`CachedDocuments` serves parsing and validation from `schema.documents`. It relies on three
behaviours of Strawberry's operation pipeline (strawberry-graphql 0.341, pinned below 0.342):

1. an `on_parse` hook that sets `execution_context.graphql_document` before yielding skips
   parsing (documented for parser caches);
2. `execution_context.pre_execution_errors` set (to a list) before validation skips
   validation, and is then what validation would have returned;
3. `ExecutionContext` takes extra attributes (the operation's `Document` rides on it).

`self_check()` runs at start-up against the installed Strawberry: it executes a valid and an
invalid document twice each through a tiny schema and fails loudly if the second answers differ
from the first or parsing/validation ran again.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import strawberry
from graphql.validation import ValidationContext, ValidationRule
from strawberry.extensions import AddValidationRules, SchemaExtension
from strawberry.types import ExecutionContext

from schema.documents import Document, DocumentCache, copy_errors, persisted_query_text

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


@functools.cache
def self_check() -> None:
    """Fail at start-up when the installed Strawberry breaks what CachedDocuments relies on."""
    runs = {"validations": 0}

    class Counted(ValidationRule):
        def __init__(self, context: ValidationContext) -> None:
            super().__init__(context)
            runs["validations"] += 1

    @strawberry.type
    class Query:
        @strawberry.field
        def ok(self) -> bool:
            return True

    class Quiet(strawberry.Schema):
        def process_errors(self, errors: Any, execution_context: Any = None) -> None:
            """The probe's validation error is expected: nothing to log."""

    cache = DocumentCache(max_bytes=4096)
    probe = Quiet(
        query=Query,
        extensions=[lambda: AddValidationRules([Counted]), lambda: CachedDocuments(cache=cache)],
    )
    for text in ("{ ok }", "{ missing }"):
        before = runs["validations"]
        answers: list[Any] = []
        for _ in range(2):
            result = probe.execute_sync(text)
            answers.append((result.data, [e.formatted for e in result.errors or ()]))
        document = cache.lookup(text)
        if (
            answers[0] != answers[1]
            or document is None
            or document.validation is None
            or runs["validations"] != before + 1
        ):
            raise RuntimeError(
                f"strawberry-graphql {strawberry_version()} no longer skips parsing and "
                "validation for cached documents as schema/engine.py expects; "
                "check its pipeline and the pin in pyproject.toml"
            )


def strawberry_version() -> str:
    from importlib.metadata import version

    return version("strawberry-graphql")
