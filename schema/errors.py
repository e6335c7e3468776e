"""Domain errors become `extensions.code`; anything else is masked."""

from __future__ import annotations

import logging

from graphql.error import GraphQLError
from strawberry.extensions import MaskErrors

from resolvers.errors import DomainError
from resolvers.faults import is_unavailable

log = logging.getLogger("cowatch.graphql")


def _domain_error(error: GraphQLError) -> DomainError | None:
    original = error.original_error
    return original if isinstance(original, DomainError) else None


def _is_input_error(error: GraphQLError) -> bool:
    """graphql-core refusing a variable's value (a list for an `ID!`): the caller's mistake."""
    return error.path is None and isinstance(error.original_error, GraphQLError | ValueError)


class DomainErrors(MaskErrors):
    """Map DomainError to its code, leave GraphQL's own validation errors, mask the rest."""

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        return [self._process(error) for error in errors]

    def _process(self, error: GraphQLError) -> GraphQLError:
        domain = _domain_error(error)
        if domain is not None:
            self._retry_after(domain)
            return GraphQLError(
                message=domain.message,
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": domain.code, **domain.details},
            )
        if error.original_error is None or _is_input_error(error):
            extensions = {"code": "GRAPHQL_VALIDATION_FAILED", **(error.extensions or {})}
            error.extensions = extensions
            return error
        if is_unavailable(error.original_error):
            log.warning("dependency unavailable in %s: %r", error.path, error.original_error)
            return GraphQLError(
                message="a service this request needs is unavailable; try again shortly",
                nodes=error.nodes,
                source=error.source,
                positions=error.positions,
                path=error.path,
                extensions={"code": "SERVICE_UNAVAILABLE"},
            )
        log.error("unexpected error in %s", error.path, exc_info=error.original_error)
        masked = self.anonymise_error(error)
        masked.extensions = {"code": "INTERNAL_SERVER_ERROR"}
        return masked

    def _retry_after(self, domain: DomainError) -> None:
        """A refusal that says when to retry (RATE_LIMITED) says it in the HTTP header too."""
        retry = getattr(domain, "retry_after", None)
        response = getattr(self.execution_context.context, "response", None)
        if retry is not None and response is not None:
            response.headers["Retry-After"] = str(retry)
