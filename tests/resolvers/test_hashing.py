"""Password hashing is bounded: `concurrency` at once, `queue` waiting, the rest refused with a
503 and Retry-After on both faces (RSS under load: bench/login_memory.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator

import httpx
import pytest

from config import Settings
from resolvers.errors import Unavailable
from resolvers.hashing import PasswordHashing
from resolvers.services import Services
from tests.factories import PASSWORD, make_user
from tests.live import LiveServer, live_server


async def _held(
    hashing: PasswordHashing, count: int
) -> tuple[threading.Event, list[asyncio.Task[bool]]]:
    """`count` jobs admitted to the hashing pool that hold it until the event is set."""
    release = threading.Event()
    tasks = [asyncio.create_task(hashing.run(release.wait)) for _ in range(count)]
    await asyncio.sleep(0)  # one turn of the loop: each task takes its place (synchronously)
    assert hashing._admitted == count
    return release, tasks


async def test_the_queue_refuses_beyond_concurrency_plus_queue() -> None:
    hashing = PasswordHashing(concurrency=1, queue=1)
    release, held = await _held(hashing, 2)  # one hashing, one waiting
    with pytest.raises(Unavailable) as refused:
        await hashing.hash("any password at all")
    assert refused.value.code == "SERVICE_UNAVAILABLE"
    assert refused.value.retry_after == 1
    release.set()
    assert await asyncio.gather(*held) == [True, True]
    assert await hashing.verify(await hashing.hash("now it fits"), "now it fits")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"hash_concurrency": 1, "hash_queue": 0})


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as running:
        yield running


async def test_a_full_pool_answers_503_with_retry_after_on_both_faces(
    server: LiveServer, services: Services
) -> None:
    account = await make_user(services)
    credentials = {"email": account.user.email, "password": PASSWORD}
    login = "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { accessToken } }"
    release, held = await _held(server.services.hashing, 1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        rest = await http.post("/api/auth/login", json=credentials)
        assert rest.status_code == 503, rest.text
        assert rest.headers["retry-after"] == "1"
        assert rest.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        signup = {"email": "new@example.com", "password": "another fine one", "username": "newbie"}
        assert (await http.post("/api/auth/signup", json=signup)).status_code == 503

        variables = {"e": credentials["email"], "p": PASSWORD}
        graphql = await http.post("/graphql", json={"query": login, "variables": variables})
        error = graphql.json()["errors"][0]
        assert error["extensions"] == {"code": "SERVICE_UNAVAILABLE", "retry_after": 1}

        release.set()
        await asyncio.gather(*held)
        assert (await http.post("/api/auth/login", json=credentials)).status_code == 200


async def test_attempts_refused_for_a_full_pool_still_count_toward_the_lockout(
    server: LiveServer, services: Services
) -> None:
    """Each attempt is reserved before it waits for a hash: a flood that only meets 503s still
    locks the account, so a full pool is no way around the lockout."""
    account = await make_user(services)
    release, held = await _held(server.services.hashing, 1)
    async with httpx.AsyncClient(base_url=server.url) as http:
        for _ in range(server.services.settings.login_max_failures):
            guess = {"email": account.user.email, "password": "wrong guess"}
            assert (await http.post("/api/auth/login", json=guess)).status_code == 503
        release.set()
        await asyncio.gather(*held)
        right = {"email": account.user.email, "password": PASSWORD}
        locked = await http.post("/api/auth/login", json=right)
        assert locked.status_code == 429, locked.text
        assert locked.json()["error"]["code"] == "ACCOUNT_LOCKED"
