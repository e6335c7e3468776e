"""What every REST route needs: services, the caller, and a validated JSON body."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import HTTPConnection, Request

from models import User
from resolvers import auth, permissions
from resolvers.errors import BadInput
from resolvers.services import Services

M = TypeVar("M", bound=BaseModel)


def services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]


async def caller(conn: HTTPConnection) -> User | None:
    """The authenticated user, None without a token; InvalidToken for a bad one."""
    svc = services(conn)
    return await auth.presented_user(
        db=svc.db, secret=svc.jwt_secret, headers=conn.headers, cookies=conn.cookies
    )


async def require_caller(conn: HTTPConnection) -> User:
    return permissions.require_user(await caller(conn))


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"


async def json_body(request: Request, model: type[M]) -> M:
    """Parse and type-check a JSON object body; 400 with the first problem otherwise.

    The body's size is capped while it arrives (`rest_compat/bodylimit.py`, 413).
    """
    raw = await request.body()
    try:
        data: Any = json.loads(raw) if raw else None
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
