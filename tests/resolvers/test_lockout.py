"""Login lockout (resolvers/lockout.py): 5 failures in 15 minutes lock an account for 15 minutes;
success resets; on both faces.

The lockout reserves each attempt before verifying it: however many guesses arrive at once,
at most `max_failures` per window are ever judged; known and unknown emails answer alike.
Over real sockets (an in-process uvicorn), on SQLite and PostgreSQL; the Redis store for
unknown emails is exercised directly (its script is the multi-process path).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update

from config import Settings
from models import User
from models.base import utcnow
from resolvers.ratelimit import MemoryWindows, RedisWindows, WindowStore
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import PASSWORD, error_code, gql, make_user
from tests.live import LiveServer, live_server

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


GUESSES = 40
MAX_FAILURES = 5


@pytest.fixture
def lockout_settings(settings: Settings) -> Settings:
    """Limits per address high enough that only the lockout refuses; every guess is hashed."""
    return settings.model_copy(
        update={
            "rate_limit_login": "100000/minute",
            "hash_queue": GUESSES,
            "login_failure_window_s": 900,
            "login_lock_s": 600,  # unlike the window: a Retry-After from the wrong clock shows
        }
    )


@pytest.fixture
async def server(lockout_settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(lockout_settings) as running:
        yield running


async def _guess(http: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    return await http.post("/api/auth/login", json={"email": email, "password": password})


def _judged(responses: list[httpx.Response]) -> list[httpx.Response]:
    """The guesses whose password was verified (right or wrong), not refused as locked."""
    for response in responses:
        assert response.status_code in (200, 401, 429), response.text
        if response.status_code == 429:
            assert response.json()["error"]["code"] == "ACCOUNT_LOCKED"
    return [r for r in responses if r.status_code != 429]


async def _concurrent_guesses(server: LiveServer, email: str) -> list[httpx.Response]:
    """40 guesses on 40 connections, the right password last: 39 wrong ones at once, and the
    right one while most of them are still in flight, once one has been told the account is
    locked.

    (Sent all at once, which connection the server reads first is up to the scheduler: under load
    the right one could be among the first attempts reserved, and verifying it then is correct.)
    """
    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
        locked = asyncio.Event()

        async def wrong(index: int) -> httpx.Response:
            response = await _guess(http, email, f"wrong guess {index}")
            if response.status_code == 429:
                locked.set()
            return response

        async def right() -> httpx.Response:
            await asyncio.wait_for(locked.wait(), 60)
            return await _guess(http, email, PASSWORD)

        return await asyncio.gather(*(wrong(i) for i in range(GUESSES - 1)), right())


async def test_forty_concurrent_guesses_verify_five_and_the_right_one_last_is_refused(
    server: LiveServer, services: Services
) -> None:
    account = await make_user(services)
    responses = await _concurrent_guesses(server, account.user.email)
    judged = _judged(responses)
    assert 1 <= len(judged) <= MAX_FAILURES, [r.status_code for r in responses]
    assert responses[-1].status_code == 429, responses[-1].text
    assert all(r.status_code == 401 for r in judged)
    async with httpx.AsyncClient(base_url=server.url) as http:
        assert (await _guess(http, account.user.email, PASSWORD)).status_code == 429


async def test_forty_concurrent_guesses_on_an_unknown_email_verify_five(
    server: LiveServer,
) -> None:
    responses = await _concurrent_guesses(server, f"nobody-{uuid.uuid4().hex[:6]}@example.com")
    judged = _judged(responses)
    assert 1 <= len(judged) <= MAX_FAILURES, [r.status_code for r in responses]


def _answer(response: httpx.Response) -> tuple[int, str, int | None, int | None]:
    error = response.json()["error"]
    retry = response.headers.get("retry-after")
    return (
        response.status_code,
        error["code"],
        error.get("details", {}).get("attempts_remaining"),
        int(retry) if retry else None,
    )


async def test_known_and_unknown_emails_get_the_same_answers_and_retry_after(
    server: LiveServer, services: Services
) -> None:
    account = await make_user(services)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for attempt in range(1, MAX_FAILURES + 3):
            known = _answer(await _guess(http, account.user.email, "wrong password"))
            unknown = _answer(await _guess(http, "nobody@example.com", "wrong password"))
            assert known[:3] == unknown[:3], (attempt, known, unknown)
            if attempt < MAX_FAILURES:
                assert known == (401, "INVALID_CREDENTIALS", MAX_FAILURES - attempt, None)
            else:  # locked for login_lock_s (600 s), not for the rest of the 900 s window
                assert known[:2] == (429, "ACCOUNT_LOCKED")
                assert known[3] is not None and unknown[3] is not None
                assert 540 <= known[3] <= 600, known
                # the same clock (the lock), started one request apart: seconds, not minutes
                assert abs(known[3] - unknown[3]) <= 5, (known, unknown)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[WindowStore]:
    windows: WindowStore
    if request.param == "memory":
        windows = MemoryWindows()
    else:
        windows = RedisWindows(REDIS_URL, f"cowatch-test-{uuid.uuid4().hex}")
    yield windows
    await windows.close()


async def test_the_store_reserves_attempts_atomically(store: WindowStore) -> None:
    key = f"login-attempts:{uuid.uuid4().hex}"
    results = await asyncio.gather(
        *(store.attempt(key, limit=5, window_s=900, lock_s=600) for _ in range(GUESSES))
    )
    numbers = sorted(number for number, _ in results)
    assert numbers == [1, 2, 3, 4, 5] + [6] * (GUESSES - 5)
    lock_left = [left for number, left in results if number > 5]
    assert all(540 <= left <= 600 for left in lock_left), lock_left
