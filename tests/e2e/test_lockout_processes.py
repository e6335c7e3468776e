"""Two `cowatch serve` processes on one PostgreSQL and one Redis: 40 guesses split between them
at once still get at most five verifications, for an account and for an unknown email; the
right password after such a burst is refused while the lock holds."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.live import start_servers
from tests.servers import Server, production_env

GUESSES = 40
MAX_FAILURES = 5
PASSWORD = "two process password"
pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def servers(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Server]]:
    tmp = tmp_path_factory.mktemp("lockout-e2e")
    env = production_env(
        pg_url,
        tmp / "data",
        COWATCH_RATE_LIMIT_LOGIN="100000/minute",
        COWATCH_HASH_QUEUE=str(GUESSES),
    )
    with ExitStack() as stack:
        yield start_servers(stack, 2, env, tmp)


async def _guesses(servers: list[Server], email: str) -> list[httpx.Response]:
    """Wrong passwords at once, alternating servers."""
    passwords = [f"wrong guess {i}" for i in range(GUESSES)]
    limits = httpx.Limits(max_connections=GUESSES)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        return await asyncio.gather(
            *(
                http.post(
                    f"{servers[i % 2].url}/api/auth/login",
                    json={"email": email, "password": password},
                )
                for i, password in enumerate(passwords)
            )
        )


def _judged(responses: list[httpx.Response]) -> int:
    for response in responses:
        assert response.status_code in (401, 429), response.text
    return sum(response.status_code != 429 for response in responses)


async def test_two_processes_share_one_lockout(servers: list[Server]) -> None:
    name = f"twin_{uuid.uuid4().hex[:8]}"
    account = {"email": f"{name}@example.com", "password": PASSWORD, "username": name}
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{servers[0].url}/api/auth/signup", json=account)
        ).status_code == 201
    responses = await _guesses(servers, account["email"])
    assert 1 <= _judged(responses) <= MAX_FAILURES
    # The right password goes after the burst has been answered: sent within it, it could be
    # one of the five verified, and then a 200 is the right answer.
    async with httpx.AsyncClient() as http:
        for server in servers:
            right = await http.post(
                f"{server.url}/api/auth/login",
                json={"email": account["email"], "password": PASSWORD},
            )
            assert right.status_code == 429, right.text


async def test_two_processes_share_one_count_for_unknown_emails(servers: list[Server]) -> None:
    responses = await _guesses(servers, f"nobody-{uuid.uuid4().hex[:8]}@example.com")
    assert 1 <= _judged(responses) <= MAX_FAILURES
    for server in servers:
        assert "ERROR" not in server.log()
