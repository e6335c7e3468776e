"""Answers given before a route runs (body too large, cross-site write, busy): the face's shape.

`/graphql` gets a GraphQL response without `data` (the request was not executed) and the
status REST would use; every other path gets the REST error body.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse
from starlette.types import Scope

from edge.errors import STATUS, error_response
from resolvers.errors import DomainError

GRAPHQL_PATH = "/graphql"


def is_graphql(scope: Scope) -> bool:
    return str(scope.get("path", "")).rstrip("/") == GRAPHQL_PATH


def graphql_error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> JSONResponse:
    extensions = {"code": code, **(details or {})}
    headers = {}
    if "retry_after" in extensions:
        headers["Retry-After"] = str(extensions["retry_after"])
    body = {"errors": [{"message": message, "extensions": extensions}]}
    return JSONResponse(body, status_code=status, headers=headers)


def refusal(scope: Scope, exc: DomainError) -> JSONResponse:
    """The answer to `exc` raised before the route: GraphQL- or REST-shaped by path."""
    status = STATUS.get(type(exc), 400)
    if is_graphql(scope):
        return graphql_error_response(status, exc.code, exc.message, exc.details)
    headers = {}
    retry_after = exc.details.get("retry_after")
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return error_response(status, exc.code, exc.message, exc.details or None, headers)
