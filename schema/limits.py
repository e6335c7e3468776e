"""What a GraphQL document may cost: rate limits per operation, depth, aliases, tokens, list sizes.

Classification: every operation costs one `api` hit; each top-level mutation field named in
`MUTATION_CLASSES` (aliases and fragments included) costs one more hit of its stricter class,
so ten aliased `login`s cost ten login attempts. All checks run before execution.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    visit,
)
from graphql.language import ArgumentNode, Visitor
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    QueryDepthLimiter,
    SchemaExtension,
)

from resolvers.errors import BadInput, DomainError, RateLimited
from resolvers.ratelimit import PER_IP, Decision, RateClass, caller_key
from schema.engine import current_document
from schema.fastpath import DECIDED
from schema.intake import PRECOUNTED

if TYPE_CHECKING:
    from config import Settings
    from schema.context import Context

MUTATION_CLASSES: dict[str, RateClass] = {
    "login": RateClass.LOGIN,
    "signup": RateClass.SIGNUP,
    "uploadVideo": RateClass.UPLOAD,
    "updateVideoTimestamp": RateClass.TIMESTAMP,
}
LIMIT_ARGUMENTS = frozenset({"limit", "first", "last"})


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((op for op in operations if op.name and op.name.value == name), None)


def _root_fields(
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    seen: frozenset[str] = frozenset(),
) -> Iterator[str]:
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _root_fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name in fragments and name not in seen:
                yield from _root_fields(fragments[name].selection_set, fragments, seen | {name})


def rate_classes(document: DocumentNode, operation_name: str | None) -> list[RateClass]:
    """The hits one operation costs: API once, plus one per strictly limited mutation field."""
    classes = [RateClass.API]
    operation = _operation(document, operation_name)
    if operation is None or operation.operation != OperationType.MUTATION:
        return classes
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    for field in _root_fields(operation.selection_set, fragments):
        if field in MUTATION_CLASSES:
            classes.append(MUTATION_CLASSES[field])
    return classes


def _domain_error(error: DomainError) -> GraphQLError:
    return GraphQLError(error.message, original_error=error)


class RateLimitOperations(SchemaExtension):
    """Counts each operation against the caller's budgets; refuses before execution."""

    async def on_validate(self) -> AsyncIterator[None]:  # type: ignore[override]
        if self.execution_context.pre_execution_errors is None:
            error = await self._check()
            if error is not None:
                self.execution_context.pre_execution_errors = [error]
        yield

    def _classes(self) -> list[RateClass] | None:
        execution = self.execution_context
        name = execution.operation_name
        cached = current_document(execution)
        if cached is not None:
            return cached.plan(("rate_classes", name), lambda d: rate_classes(d.ast, name))
        document = execution.graphql_document
        return None if document is None else rate_classes(document, name)

    async def _check(self) -> GraphQLError | None:
        context: Context = self.execution_context.context
        classes = self._classes()
        if classes is None:
            return None
        services = context.services
        ip = context.request.client.host if context.request.client else None
        decisions: list[Decision] = []
        precounted = context.request.scope.get(PRECOUNTED, ())
        if precounted:  # e.g. an upload's, counted at intake (the plan's list is shared: copy)
            classes = list(classes)
            for counted in precounted:
                if counted in classes:
                    classes.remove(counted)
        decided = context.request.scope.get(DECIDED)
        for rate_class in classes if decided is None else ():
            key = caller_key(
                secret=services.jwt_secret, token=context.token, ip=ip, per_ip=rate_class in PER_IP
            )
            decision = await services.rate_limiter.hit(rate_class, key)
            if decision is not None:
                decisions.append(decision)
        if decided is not None:  # the fast path (schema/fastpath.py) counted this request
            decisions = list(decided)
        if not decisions:
            return None
        refused = next((d for d in decisions if not d.allowed), None)
        shown = refused or min(decisions, key=lambda d: d.remaining)
        if context.response is not None:
            context.response.headers.update(shown.headers())
            if refused:
                context.response.headers["Retry-After"] = str(refused.retry_after())
        if refused is None:
            return None
        retry = refused.retry_after()
        return _domain_error(
            RateLimited(
                f"too many requests: retry in {retry} s", retry_after=retry, limit=refused.limit
            )
        )


#: A limit-like argument in a document: its name and its literal value or variable's name.
LimitArgument = tuple[str, int | str]


def limit_arguments(document: DocumentNode) -> list[LimitArgument]:
    """Every `limit`/`first`/`last` argument given as an integer literal or a variable."""
    found: list[LimitArgument] = []

    class Finder(Visitor):
        def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
            if node.name.value not in LIMIT_ARGUMENTS:
                return
            if isinstance(node.value, IntValueNode):
                found.append((node.name.value, int(node.value.value)))
            elif isinstance(node.value, VariableNode):
                found.append((node.name.value, node.value.name.value))

    visit(document, Finder())
    return found


def _value(given: int | str, variables: dict[str, Any]) -> int | None:
    value = variables.get(given) if isinstance(given, str) else given
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ListLimitCap(SchemaExtension):
    """Refuses `limit:` (and `first`/`last`) arguments above the cap, literal or variable.

    Where the arguments are is worked out once per cached document; their values are checked
    on every request (variables differ).
    """

    def __init__(self, *, cap: int) -> None:
        self.cap = cap

    def on_validate(self) -> Iterator[None]:
        execution = self.execution_context
        if execution.graphql_document is not None and execution.pre_execution_errors is None:
            cached = current_document(execution)
            arguments = (
                cached.plan("limit_arguments", lambda d: limit_arguments(d.ast))
                if cached is not None
                else limit_arguments(execution.graphql_document)
            )
            error = self._check(arguments, execution.variables or {})
            if error is not None:
                execution.pre_execution_errors = [error]
        yield

    def _check(
        self, arguments: list[LimitArgument], variables: dict[str, Any]
    ) -> GraphQLError | None:
        cap = self.cap
        too_big = [name for name, given in arguments if (_value(given, variables) or 0) > cap]
        if not too_big:
            return None
        return _domain_error(
            BadInput(f"{too_big[0]} must be at most {cap}", field=too_big[0], max=cap)
        )


SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class HideSuggestions(MaskErrors):
    """With introspection off, graphql-core's "Did you mean 'email'?" would name hidden fields."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        for error in errors:
            error.message = SUGGESTION.sub("", error.message)
        return errors


def security_extensions(settings: Settings) -> list[Callable[[], SchemaExtension] | type]:
    """Extension factories (never shared instances) for build_schema(extensions=...)."""
    # The depth and alias rules are validation rule classes, stateless: built once here (the
    # limiters build a new class per instance), added to each operation's validation.
    rules = [
        *QueryDepthLimiter(max_depth=settings.graphql_max_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=settings.graphql_max_aliases).validation_rules,
    ]
    extensions: list[Callable[[], SchemaExtension] | type] = [
        lambda: MaxTokensLimiter(max_token_count=settings.graphql_max_tokens),
        lambda: AddValidationRules(rules),
        RateLimitOperations,
        lambda: ListLimitCap(cap=settings.graphql_max_list_limit),
    ]
    if not settings.graphql_introspection:
        extensions += [DisableIntrospection, HideSuggestions]
    return extensions
