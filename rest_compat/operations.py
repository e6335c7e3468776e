"""Each REST operation declared once: its shapes, its errors and whether it needs a user.

`@operation(...)` attaches an `Operation` to a handler; `/openapi.json` and `/docs` are generated
from the mounted routes' operations and the pydantic models they name (rest_compat/openapi.py).
`@requires_user` is both the check and its description (security, 401 and 403).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from models import User
from resolvers.auth import Caller
from rest_compat.common import party_caller, require_caller

Endpoint = Callable[[Request], Awaitable[Response]]
UserEndpoint = Callable[[Request, User], Awaitable[Response]]
CallerEndpoint = Callable[[Request, Caller], Awaitable[Response]]
_OPERATION = "__cowatch_operation__"
_SIGNED_IN = "__cowatch_requires_user__"


class Shape(BaseModel):
    """A REST response body: exactly these keys (extra ones are a bug the tests catch)."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Shape):
    code: str = Field(description="Machine-readable, e.g. BAD_USER_INPUT, NOT_FOUND.")
    message: str = Field(description="For people; may change between versions.")
    request_id: str = Field(description="Also in the X-Request-Id header; quote it in reports.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Extra facts, e.g. `field`; absent when there are none."
    )


class ErrorBody(Shape):
    """Every error answer of the REST face."""

    error: ErrorDetail


@dataclass(frozen=True)
class Operation:
    summary: str
    status: int
    #: the success body: a model or an annotated union of models; None means no body
    response: Any
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    #: other documented answers besides the errors: status → (description, body type[, media
    #: types]); a body type of None means no body
    also: Mapping[int, tuple[Any, ...]] = field(default_factory=dict)
    signed_in: bool = False
    media_types: tuple[str, ...] = ("application/json",)


def operation(
    summary: str,
    *,
    ok: tuple[int, Any],
    errors: tuple[int, ...] = (),
    body: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    also: Mapping[int, tuple[Any, ...]] | None = None,
    media_types: tuple[str, ...] = ("application/json",),
) -> Callable[[Endpoint], Endpoint]:
    """Declare what a handler takes and answers; put it above `@requires_user`."""

    def attach(endpoint: Endpoint) -> Endpoint:
        status, response = ok
        described = Operation(
            summary=summary,
            status=status,
            response=response,
            errors=errors,
            body=body,
            form=form,
            query=query,
            also=also or {},
            signed_in=getattr(endpoint, _SIGNED_IN, False),
            media_types=media_types,
        )
        setattr(endpoint, _OPERATION, described)
        return endpoint

    return attach


def described(endpoint: object) -> Operation | None:
    operation: Operation | None = getattr(endpoint, _OPERATION, None)
    return operation


def requires_user(handler: UserEndpoint) -> Endpoint:
    """The route needs a signed-in user: none → 403 (the seed's rule), a bad token → 401."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, await require_caller(request))

    setattr(endpoint, _SIGNED_IN, True)
    return endpoint


def requires_member(handler: CallerEndpoint) -> Endpoint:
    """A party route: an account token or that party's member token (the resolver checks the
    membership); none → 403, a bad one → 401, as for `@requires_user`."""

    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        return await handler(request, await party_caller(request))

    setattr(endpoint, _SIGNED_IN, True)
    return endpoint


class JSON(Response):
    """A JSON answer serialised by pydantic-core: models as declared, dicts as they are."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
