"""Login lockout: 5 failures in 15 minutes lock an account for 15 minutes; success resets."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import update

from models import User
from models.base import utcnow
from resolvers.services import Services
from tests.factories import PASSWORD, error_code, gql, make_user

LOGIN_MUTATION = (
    "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
)


async def _login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"email": email, "password": password})


async def _failures(client: httpx.AsyncClient, email: str, count: int) -> list[int]:
    remaining = []
    for _ in range(count):
        response = await _login(client, email, "wrong password")
        assert response.status_code == 401, response.text
        remaining.append(response.json()["error"]["details"]["attempts_remaining"])
    return remaining


async def test_five_failures_lock_and_success_resets(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    email = account.user.email
    assert await _failures(client, email, 4) == [4, 3, 2, 1]
    assert (await _login(client, email, PASSWORD)).status_code == 200
    assert await _failures(client, email, 4) == [4, 3, 2, 1]

    fifth = await _login(client, email, "wrong password")
    assert fifth.status_code == 429
    assert fifth.json()["error"]["code"] == "ACCOUNT_LOCKED"
    assert fifth.headers["retry-after"] == "900"

    right_but_locked = await _login(client, email, PASSWORD)
    assert right_but_locked.status_code == 429
    assert 0 < int(right_but_locked.headers["retry-after"]) <= 900
    assert right_but_locked.json()["error"]["details"]["retry_after"] == int(
        right_but_locked.headers["retry-after"]
    )
    body = await gql(client, LOGIN_MUTATION, {"e": email, "p": PASSWORD})
    assert error_code(body) == "ACCOUNT_LOCKED"
    assert body["errors"][0]["extensions"]["retry_after"] > 0

    # The lock and the failure window end (moved into the past rather than waited for).
    past = utcnow() - timedelta(minutes=16)
    async with services.db.engine.begin() as conn:
        await conn.execute(
            update(User)
            .where(User.id == account.user.id)  # type: ignore[arg-type]
            .values(locked_until=past, first_failed_at=past - timedelta(minutes=1))
        )
    assert (await _login(client, email, PASSWORD)).status_code == 200
    assert await _failures(client, email, 1) == [4]


async def test_concurrent_failures_are_counted_atomically(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    responses = await asyncio.gather(
        *(_login(client, account.user.email, f"wrong {i}") for i in range(5))
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [401, 401, 401, 401, 429]
    remaining = sorted(
        r.json()["error"]["details"]["attempts_remaining"]
        for r in responses
        if r.status_code == 401
    )
    assert remaining == [1, 2, 3, 4]
    assert (await _login(client, account.user.email, PASSWORD)).status_code == 429


async def test_unknown_email_answers_like_a_known_one(client: httpx.AsyncClient) -> None:
    assert await _failures(client, "nobody@example.com", 4) == [4, 3, 2, 1]
    fifth = await _login(client, "nobody@example.com", "wrong password")
    assert fifth.status_code == 429
    assert fifth.json()["error"]["code"] == "ACCOUNT_LOCKED"
    assert fifth.headers["retry-after"] == "900"
    assert (await _login(client, "nobody@example.com", "anything")).status_code == 429


async def test_graphql_failures_count_too(client: httpx.AsyncClient, services: Services) -> None:
    account = await make_user(services)
    for left in (4, 3, 2, 1):
        body = await gql(client, LOGIN_MUTATION, {"e": account.user.email, "p": "nope nope"})
        assert error_code(body) == "INVALID_CREDENTIALS"
        assert body["errors"][0]["extensions"]["attempts_remaining"] == left
    body = await gql(client, LOGIN_MUTATION, {"e": account.user.email, "p": "nope nope"})
    assert error_code(body) == "ACCOUNT_LOCKED"
