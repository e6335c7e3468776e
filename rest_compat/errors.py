"""The REST face's exception handlers: domain errors, HTTP errors, outages, bugs."""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy.exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from edge.errors import HTTP_CODES, STATUS, error_response, request_id
from resolvers import errors
from resolvers.faults import is_unavailable

log = logging.getLogger("cowatch.rest")


async def domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    status = STATUS.get(type(exc), 500)
    headers = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return error_response(status, exc.code, exc.message, exc.details or None, headers)


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error (request %s)", request_id.get(), exc_info=exc)
    return error_response(500, "INTERNAL_SERVER_ERROR", "internal error")


async def dependency_error(request: Request, exc: Exception) -> JSONResponse:
    """A database that is down or restarting is a 503 to retry, not a 500."""
    if not is_unavailable(exc):
        return await internal_error(request, exc)
    log.warning("dependency unavailable (request %s): %r", request_id.get(), exc)
    message = "a service this request needs is unavailable; try again shortly"
    return error_response(503, "SERVICE_UNAVAILABLE", message, headers={"Retry-After": "5"})


handlers: dict[Any, Any] = {
    errors.DomainError: domain_error,
    HTTPException: http_error,
    OSError: dependency_error,
    sqlalchemy.exc.DBAPIError: dependency_error,
    sqlalchemy.exc.TimeoutError: dependency_error,
    Exception: internal_error,
}
