"""What every REST route needs: services, the caller, and a validated JSON body."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection, Request

from models import User
from resolvers import auth, permissions, urls
from resolvers.errors import BadInput
from resolvers.services import Services

M = TypeVar("M", bound=BaseModel)


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]


def public_base(conn: HTTPConnection) -> str:
    """The origin this client reaches us at (`COWATCH_PUBLIC_URL`, else the request's own)."""
    return urls.public_base(configured=services(conn).settings.public_url, scope=conn.scope)


async def media_url(conn: HTTPConnection, key: str, *, base: str | None = None) -> str:
    """An absolute address of published media for this client (`base`: its public_base)."""
    url = await services(conn).storage.url(key)
    return urls.absolute(base or public_base(conn), url)


def session_cookie(conn: HTTPConnection, token: str, *, ttl_s: int) -> str:
    """The Set-Cookie value for this request: `Secure` wherever the browser keeps it."""
    configured = services(conn).settings.public_url
    secure = urls.secure_cookie(configured=configured, scope=conn.scope)
    return auth.session_cookie(token, ttl_s=ttl_s, secure=secure)


async def caller(conn: HTTPConnection) -> User | None:
    """The authenticated user, None without a token; InvalidToken for a bad one."""
    svc = services(conn)
    return await auth.presented_user(
        db=svc.db, secret=svc.jwt_secret, headers=conn.headers, cookies=conn.cookies
    )


async def require_caller(conn: HTTPConnection) -> User:
    return permissions.require_user(await caller(conn))


async def party_caller(conn: HTTPConnection) -> auth.Caller:
    """Who calls a party route: an account, a party member token, or nobody (no token)."""
    svc = services(conn)
    token = auth.token_from(headers=conn.headers, cookies=conn.cookies)
    return await auth.identify(db=svc.db, secret=svc.jwt_secret, token=token)


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


def _number(text: str) -> int | float:
    """A JSON number with a fraction or exponent: `126.0` is the integer 126, as JSON Schema's
    "integer" (what /openapi.json promises) counts it; strict validation then takes it for an
    int field, and a float field takes an int as it always did."""
    value = float(text)
    return int(value) if value.is_integer() else value


async def json_body(request: Request, model: type[M]) -> M:
    """Parse and type-check a JSON object body; 400 with the first problem otherwise.

    The body's size is capped while it arrives (`rest_compat/bodylimit.py`, 413).
    """
    raw = await request.body()
    try:
        data: Any = json.loads(raw, parse_float=_number) if raw else None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput("request body must be JSON") from exc
    except RecursionError as exc:
        raise BadInput("request body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise BadInput("request body must be a JSON object")
    try:
        return model.model_validate(data, strict=True)
    except ValidationError as exc:
        raise BadInput(_describe(exc)) from exc


def int_param(request: Request, name: str, default: int) -> int:
    """A query parameter as an integer: `default` when absent or empty, 400 when not a number."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BadInput(f"{name} must be an integer", field=name) from exc
