"""POST /api/auth/signup, POST /api/auth/login."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import User
from resolvers import auth
from resolvers.lockout import Lockout
from rest_compat.common import json_body, services, session_cookie
from rest_compat.operations import JSON, Shape, operation, requires_user


# The resolvers check these bodies (with their own messages); `json_schema_extra` only tells
# the document's readers (and fuzzers) what the resolvers accept.
class SignupBody(BaseModel):
    email: str = Field(
        description="A valid address; stored lower-cased.",
        json_schema_extra={"format": "email", "maxLength": 254},
    )
    password: str = Field(
        json_schema_extra={"minLength": auth.MIN_PASSWORD, "maxLength": auth.MAX_PASSWORD}
    )
    username: str = Field(
        description="Unique, ignoring case.",
        json_schema_extra={"pattern": auth.USERNAME_RE.pattern},
    )


class LoginBody(BaseModel):
    email: str = Field(json_schema_extra={"minLength": 1})
    password: str = Field(json_schema_extra={"minLength": 1})


class UserOut(Shape):
    id: str = Field(description="The user's UUID.")
    username: str
    email: str = Field(description="Only ever shown to the user themself.")

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(id=user.id, username=user.username, email=user.email)


class LoginOut(Shape):
    access_token: str = Field(
        description="A JWT for `Authorization: Bearer`; also set as the Authentication cookie."
    )
    user: UserOut


@operation("create an account", ok=(201, UserOut), errors=(400, 409), body=SignupBody)
async def signup(request: Request) -> Response:
    body = await json_body(request, SignupBody)
    user = await auth.signup(
        db=services(request).db,
        hashing=services(request).hashing,
        email=body.email,
        password=body.password,
        username=body.username,
    )
    return JSON(UserOut.of(user), status_code=201)


@operation(
    "sign in: a JWT, also set as the Authentication cookie",
    ok=(200, LoginOut),
    errors=(400, 401),
    body=LoginBody,
)
async def login(request: Request) -> Response:
    body = await json_body(request, LoginBody)
    svc = services(request)
    ttl = svc.settings.jwt_ttl_s
    result = await auth.login(
        db=svc.db,
        hashing=svc.hashing,
        secret=svc.jwt_secret,
        ttl_s=ttl,
        email=body.email,
        password=body.password,
        policy=Lockout.from_settings(svc.settings),
        limiter=svc.rate_limiter,
    )
    response = JSON(LoginOut(access_token=result.access_token, user=UserOut.of(result.user)))
    response.headers.append("set-cookie", session_cookie(request, result.access_token, ttl_s=ttl))
    return response


@operation("revoke the token this request carries", ok=(204, None))
@requires_user
async def logout(request: Request, _user: User) -> Response:
    svc = services(request)
    token = auth.token_from(headers=request.headers, cookies=request.cookies)
    await auth.logout(db=svc.db, publisher=svc.bus, secret=svc.jwt_secret, token=token)
    response = Response(status_code=204)
    response.headers.append("set-cookie", session_cookie(request, "", ttl_s=0))
    return response


routes = [
    Route("/api/auth/signup", signup, methods=["POST"]),
    Route("/api/auth/login", login, methods=["POST"]),
    Route("/api/auth/logout", logout, methods=["POST"]),
]
