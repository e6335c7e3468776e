"""POST /api/auth/signup, POST /api/auth/login."""

from __future__ import annotations

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from models import User
from resolvers import auth
from resolvers.lockout import Lockout
from rest_compat.common import json_body, services


class SignupBody(BaseModel):
    email: str
    password: str
    username: str


class LoginBody(BaseModel):
    email: str
    password: str


def user_out(user: User) -> dict[str, str]:
    return {"id": user.id, "username": user.username, "email": user.email}


async def signup(request: Request) -> JSONResponse:
    body = await json_body(request, SignupBody)
    user = await auth.signup(
        db=services(request).db, email=body.email, password=body.password, username=body.username
    )
    return JSONResponse(user_out(user), status_code=201)


async def login(request: Request) -> JSONResponse:
    body = await json_body(request, LoginBody)
    svc = services(request)
    ttl = svc.settings.jwt_ttl_s
    result = await auth.login(
        db=svc.db,
        secret=svc.jwt_secret,
        ttl_s=ttl,
        email=body.email,
        password=body.password,
        policy=Lockout.from_settings(svc.settings),
        limiter=svc.rate_limiter,
    )
    response = JSONResponse({"access_token": result.access_token, "user": user_out(result.user)})
    response.headers.append("set-cookie", auth.session_cookie(result.access_token, ttl_s=ttl))
    return response


async def logout(request: Request) -> Response:
    svc = services(request)
    token = auth.token_from(headers=request.headers, cookies=request.cookies)
    await auth.logout(db=svc.db, secret=svc.jwt_secret, token=token)
    response = Response(status_code=204)
    response.headers.append("set-cookie", auth.session_cookie("", ttl_s=0))
    return response


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
]
