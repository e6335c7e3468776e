"""Accounts (resolvers/auth.py) through REST and GraphQL: signup, login, tokens, `me`, logout;
new passwords are neither blank nor common; emails have one spelling (NFKC, lower case).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from sqlmodel import select

from config import Settings
from models import RevokedToken
from models.base import utcnow
from resolvers import auth
from resolvers.services import Services
from tests.factories import PASSWORD, error_code, gql, make_user
from tests.live import live_server

SIGNUP_MUTATION = (
    "mutation($e: String!, $p: String!, $u: String!) "
    "{ signup(email: $e, password: $p, username: $u) { id username } }"
)
SIGNUP = {"email": "ada@example.com", "password": "long enough pw", "username": "ada_l"}


async def test_signup_then_login_sets_the_seed_cookie(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/auth/signup", json=SIGNUP)
    assert created.status_code == 201
    assert created.json()["username"] == "ada_l"
    assert "password" not in created.text

    # The seed's exact cookie wherever a browser keeps a Secure one: HTTPS, or a local host.
    for origin in ("https://testserver", "http://localhost:8000", "http://127.0.0.1"):
        response = await client.post(
            f"{origin}/api/auth/login",
            json={"email": "ADA@example.com", "password": "long enough pw"},
        )
        assert response.status_code == 200
        body = response.json()
        assert body["user"] == {
            "id": created.json()["id"],
            "username": "ada_l",
            "email": "ada@example.com",
        }
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(
            f"Authentication={body['access_token']}; HttpOnly; Secure; SameSite=Strict"
        ), origin

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == body["user"]["id"]
    assert {"exp", "iat", "jti"} <= claims.keys()
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"username": "ab"}, "username"),
        ({"username": "has space"}, "username"),
        ({"username": "x" * 31}, "username"),
        ({"password": "short"}, "password"),
    ],
)
async def test_signup_validation_is_400(
    client: httpx.AsyncClient, change: dict[str, str], field: str
) -> None:
    response = await client.post("/api/auth/signup", json={**SIGNUP, **change})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(field)
    assert error["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"email": "a@b.co"}', b'{"email": 1, "password": "x", "username": "y"}'],
)
async def test_signup_malformed_body_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/api/auth/signup", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    "change",
    [
        {"username": "other"},
        {"email": "other@example.com"},
        {"username": "ADA_L", "email": "x@example.com"},
    ],
)
async def test_signup_taken_is_409(client: httpx.AsyncClient, change: dict[str, str]) -> None:
    assert (await client.post("/api/auth/signup", json=SIGNUP)).status_code == 201
    duplicate = {**SIGNUP, **change}
    if "email" not in change:
        duplicate["email"] = SIGNUP["email"]
    response = await client.post("/api/auth/signup", json=duplicate)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada@example.com", "password": "wrong password"},
        {"email": "nobody@example.com", "password": "long enough pw"},
        {"email": "not an email", "password": "long enough pw"},
    ],
)
async def test_login_wrong_credentials_is_401(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    await client.post("/api/auth/signup", json=SIGNUP)
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("body", [{}, {"email": "ada@example.com"}, {"email": "", "password": ""}])
async def test_login_missing_fields_is_400(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/api/auth/login", json=body)
    assert response.status_code == 400


def _forge(claims: dict[str, object], alg: str, secret: str) -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _alg_none(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


async def test_bad_tokens_are_401_and_missing_is_403(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    now = datetime.now(UTC)
    claims = {"sub": account.user.id, "iat": now, "exp": now + timedelta(hours=1), "jti": "j1"}
    expired = {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}
    head, _payload, signature = account.token.split(".")
    tampered_payload = (
        base64.urlsafe_b64encode(
            json.dumps({**claims, "sub": "someone-else", "iat": 1, "exp": 4102444800}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    bad_tokens = {
        "expired": _forge(expired, "HS256", services.jwt_secret),
        "wrong key": _forge(claims, "HS256", "another-secret-" + "y" * 40),
        "alg none": _alg_none({"sub": account.user.id, "iat": 1, "exp": 4102444800, "jti": "x"}),
        "tampered": f"{head}.{tampered_payload}.{signature}",
        "garbage": "garbage",
        "no jti": _forge(
            {k: v for k, v in claims.items() if k != "jti"}, "HS256", services.jwt_secret
        ),
    }
    channel = {"name": "n", "slug": "some-slug"}
    for name, token in bad_tokens.items():
        response = await client.post(
            "/api/channels", json=channel, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"
        body = await gql(client, "{ me { id } }", token=token)
        assert error_code(body) == "UNAUTHENTICATED", name

    missing = await client.post("/api/channels", json=channel)
    assert missing.status_code == 403
    assert missing.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_graphql_signup_login_me(client: httpx.AsyncClient) -> None:
    body = await gql(
        client,
        SIGNUP_MUTATION,
        {"e": "grace@example.com", "p": PASSWORD, "u": "grace"},
    )
    assert body["data"]["signup"]["username"] == "grace"

    response = await client.post(
        "/graphql",
        json={
            "query": 'mutation($p: String!) { login(email: "grace@example.com", password: $p) '
            "{ accessToken user { username email } } }",
            "variables": {"p": PASSWORD},
        },
    )
    login = response.json()["data"]["login"]
    assert login["user"] == {"username": "grace", "email": "grace@example.com"}
    assert response.headers["set-cookie"].startswith("Authentication=")

    me = await gql(client, "{ me { username email } }", token=login["accessToken"])
    assert me["data"]["me"] == {"username": "grace", "email": "grace@example.com"}
    client.cookies.clear()  # plain HTTP at a non-local host: the login cookie came back bare
    anonymous = await gql(client, "{ me { id } }")
    assert anonymous["data"]["me"] is None


async def test_graphql_errors_carry_codes(client: httpx.AsyncClient, services: Services) -> None:
    await make_user(services, "taken")
    duplicate = await gql(
        client,
        SIGNUP_MUTATION,
        {"e": "taken@example.com", "p": PASSWORD, "u": "taken"},
    )
    assert error_code(duplicate) == "CONFLICT"
    invalid = await gql(
        client,
        SIGNUP_MUTATION,
        {"e": "x", "p": PASSWORD, "u": "okname"},
    )
    assert error_code(invalid) == "BAD_USER_INPUT"
    wrong = await gql(
        client,
        'mutation { login(email: "taken@example.com", password: "nope nope") { accessToken } }',
    )
    assert error_code(wrong) == "INVALID_CREDENTIALS"


async def test_email_is_only_visible_to_self(client: httpx.AsyncClient, services: Services) -> None:
    alice = await make_user(services, "alice")
    bob = await make_user(services, "bob")
    await client.post(
        "/api/channels", json={"name": "A", "slug": "alice-ch"}, headers=alice.headers
    )
    query = '{ channel(slug: "alice-ch") { owner { username email } } }'
    as_alice = await gql(client, query, token=alice.token)
    as_bob = await gql(client, query, token=bob.token)
    assert as_alice["data"]["channel"]["owner"]["email"] == "alice@example.com"
    assert as_bob["data"]["channel"]["owner"]["email"] is None


async def test_rest_logout_revokes_only_that_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    other = auth.issue_token(secret=services.jwt_secret, user_id=account.user.id, ttl_s=600)

    response = await client.post("/api/auth/logout", headers=account.headers)
    assert response.status_code == 204
    assert response.headers["set-cookie"].startswith("Authentication=;")

    refused = await client.post(
        "/api/channels", json={"name": "n", "slug": "slug-1"}, headers=account.headers
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "token has been revoked"
    assert error_code(await gql(client, "{ me { id } }", token=account.token)) == "UNAUTHENTICATED"
    again = await client.post("/api/auth/logout", headers=account.headers)
    assert again.status_code == 401

    me = await gql(client, "{ me { id } }", token=other)
    assert me["data"]["me"]["id"] == account.user.id
    assert (await client.post("/api/auth/logout")).status_code == 403


async def test_graphql_logout_and_pruning(client: httpx.AsyncClient, services: Services) -> None:
    account = await make_user(services)
    async with services.db.session() as session:
        session.add(RevokedToken(jti="long-gone", expires_at=utcnow() - timedelta(hours=1)))
        await session.commit()

    body = await gql(client, "mutation { logout }", token=account.token)
    assert body == {"data": {"logout": True}}
    assert error_code(await gql(client, "{ me { id } }", token=account.token)) == "UNAUTHENTICATED"
    assert error_code(await gql(client, "mutation { logout }")) == "UNAUTHENTICATED"

    async with services.db.session() as session:
        jtis = (await session.exec(select(RevokedToken.jti))).all()
    claims = auth.decode_token(secret=services.jwt_secret, token=account.token)
    assert jtis == [claims.jti]


FULLWIDTH_ADA = "\uff21\uff24\uff21"


@pytest.fixture
async def over_tcp(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A real uvicorn on a loopback port: the probe's weak passwords and twins, as it sent them."""
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("12345678", "password: too common"),
        ("Password1", "password: too common"),  # case does not help
        ("iloveyou", "password: too common"),
        ("        ", "password: must not be only spaces"),
        ("\t\t\t\t\t\t\t\t", "password: must not be only spaces"),
    ],
)
async def test_weak_passwords_are_refused_on_both_faces(
    over_tcp: httpx.AsyncClient, password: str, message: str
) -> None:
    client = over_tcp
    body = {"email": "weak@example.com", "password": password, "username": "weakling"}
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(message)
    answer = await gql(
        client, SIGNUP_MUTATION, {"e": "weak@example.com", "p": password, "u": "weakling"}
    )
    assert error_code(answer) == "BAD_USER_INPUT"
    assert answer["errors"][0]["message"].startswith(message)


async def test_look_alike_emails_are_one_account(over_tcp: httpx.AsyncClient) -> None:
    client = over_tcp
    first = {"email": "ada@example.com", "password": "analytical engine", "username": "ada"}
    assert (await client.post("/api/auth/signup", json=first)).status_code == 201
    for twin in (f"{FULLWIDTH_ADA}@example.com", "Ada@EXAMPLE.com", "\uff41da@example.com"):
        again = {"email": twin, "password": "analytical engine", "username": "ada_twin"}
        response = await client.post("/api/auth/signup", json=again)
        assert response.status_code == 409, (twin, response.text)
        assert response.json()["error"]["details"]["field"] == "email"
        login = {"email": twin, "password": "analytical engine"}
        assert (await client.post("/api/auth/login", json=login)).status_code == 200, twin
