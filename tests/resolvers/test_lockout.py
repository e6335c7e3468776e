"""The lockout reserves each attempt before verifying it: however many guesses arrive at once,
at most `max_failures` per window are ever judged; known and unknown emails answer alike.

Over real sockets (an in-process uvicorn), on SQLite and PostgreSQL; the Redis store for
unknown emails is exercised directly (its script is the multi-process path).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from config import Settings
from resolvers.ratelimit import MemoryWindows, RedisWindows, WindowStore
from resolvers.services import Services
from tests.factories import PASSWORD, make_user
from tests.realtime import LiveServer, live_server

GUESSES = 40
MAX_FAILURES = 5


@pytest.fixture
def settings(settings: Settings) -> Settings:
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
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as running:
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
    """40 guesses at once on 40 connections, the right password last."""
    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as http:
        passwords = [f"wrong guess {i}" for i in range(GUESSES - 1)] + [PASSWORD]
        return await asyncio.gather(*(_guess(http, email, p) for p in passwords))


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
        windows = RedisWindows("redis://127.0.0.1:6379/0", f"cowatch-test-{uuid.uuid4().hex}")
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
