"""Rate limits: the N+1-th request in the window is refused, with the headers clients need."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from config import Settings
from models import User
from resolvers.errors import RateLimited
from resolvers.ratelimit import (
    MemoryWindows,
    RateClass,
    RateLimiter,
    RedisWindows,
    Rule,
    open_rate_limiter,
)
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import PASSWORD, error_code, gql, make_user


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with budgets small enough to exhaust in a test."""
    return settings.model_copy(
        update={
            "rate_limit_api": "3/minute",
            "rate_limit_login": "2/minute",
            "rate_limit_signup": "2/minute",
        }
    )


def _assert_headers(response: httpx.Response, limit: int, remaining: int) -> None:
    assert response.headers["x-ratelimit-limit"] == str(limit)
    assert response.headers["x-ratelimit-remaining"] == str(remaining)
    reset = int(response.headers["x-ratelimit-reset"])
    assert time.time() - 1 <= reset <= time.time() + 61


async def test_rest_refuses_the_fourth_request(client: httpx.AsyncClient) -> None:
    for remaining in (2, 1, 0):
        response = await client.get("/api/videos/feed")
        assert response.status_code == 200
        _assert_headers(response, 3, remaining)
    refused = await client.get("/api/videos/feed", headers={"x-request-id": "rl-1"})
    assert refused.status_code == 429
    _assert_headers(refused, 3, 0)
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    error = refused.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["request_id"] == "rl-1"
    assert error["details"]["retry_after"] == int(refused.headers["retry-after"])
    # Probes are never limited.
    assert (await client.get("/healthz")).status_code == 200


async def test_budgets_are_per_user_and_per_class(
    client: httpx.AsyncClient, services: Services
) -> None:
    alice = await make_user(services)
    for _ in range(3):
        assert (await client.get("/api/videos/feed")).status_code == 200
    assert (await client.get("/api/videos/feed")).status_code == 429
    signed_in = await client.get("/api/videos/feed", headers=alice.headers)
    assert signed_in.status_code == 200
    _assert_headers(signed_in, 3, 2)

    login = {"email": alice.user.email, "password": PASSWORD}
    first = await client.post("/api/auth/login", json=login)
    assert first.status_code == 200
    _assert_headers(first, 2, 1)
    assert (await client.post("/api/auth/login", json=login)).status_code == 200
    refused = await client.post("/api/auth/login", json=login)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "RATE_LIMITED"


async def test_graphql_shares_the_api_budget(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/videos/feed")).status_code == 200
    for remaining in (1, 0):
        response = await client.post("/graphql", json={"query": "{ feed { total } }"})
        assert response.json()["data"]["feed"]["total"] == 0
        _assert_headers(response, 3, remaining)
    refused = await client.post("/graphql", json={"query": "{ feed { total } }"})
    assert refused.status_code == 200
    body = refused.json()
    assert body["data"] is None
    assert error_code(body) == "RATE_LIMITED"
    assert body["errors"][0]["extensions"]["retry_after"] == int(refused.headers["retry-after"])
    _assert_headers(refused, 3, 0)


async def test_aliased_logins_cost_one_each(client: httpx.AsyncClient, services: Services) -> None:
    account = await make_user(services)
    fields = " ".join(
        f'l{i}: login(email: "{account.user.email}", password: "wrong {i}") {{ accessToken }}'
        for i in range(3)
    )
    body = await gql(client, f"mutation {{ {fields} }}")
    assert error_code(body) == "RATE_LIMITED"
    assert body["data"] is None
    # Refused before execution: no attempt reached the lockout counter.
    async with services.db.session() as session:
        user = await session.get(User, account.user.id)
    assert user is not None
    assert user.failed_logins == 0


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_window_stores_count_alike(store: str) -> None:
    windows = MemoryWindows() if store == "memory" else RedisWindows(REDIS_URL, uuid.uuid4().hex)
    limiter = RateLimiter(windows, {RateClass.API: Rule(2, 60)}, enabled=True)
    try:
        first = await limiter.hit(RateClass.API, "k")
        second = await limiter.hit(RateClass.API, "k")
        third = await limiter.hit(RateClass.API, "k")
        other = await limiter.hit(RateClass.API, "other")
    finally:
        await limiter.close()
    assert first and second and third and other
    assert [first.allowed, second.allowed, third.allowed, other.allowed] == [1, 1, 0, 1]
    assert [first.remaining, second.remaining, third.remaining] == [1, 0, 0]
    # The window's end as limits reads it: Redis's PTTL in whole ms, memory's float arithmetic.
    assert first.reset_at <= third.reset_at + 0.002
    assert third.reset_at <= time.time() + 60


async def test_an_unreachable_store_fails_open() -> None:
    windows = RedisWindows("redis://127.0.0.1:1/0", "unreachable")
    limiter = RateLimiter(windows, {RateClass.API: Rule(1, 60)}, enabled=True)
    try:
        assert await limiter.hit(RateClass.API, "k") is None
    finally:
        await limiter.close()


def test_rules_parse() -> None:
    assert Rule.parse("600/minute") == Rule(600, 60)
    assert Rule.parse("5 per 15 minutes") == Rule(5, 900)
    assert Rule.parse("50/10 seconds") == Rule(50, 10)
    with pytest.raises(ValueError):
        Rule.parse("lots")


class CountingWindows(MemoryWindows):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def hit(self, key: str, rule: Rule) -> bool:
        self.calls.append("hit")
        return await super().hit(key, rule)

    async def window(self, key: str, rule: Rule) -> tuple[float, int]:
        self.calls.append("window")
        return await super().window(key, rule)


async def test_check_reads_the_window_only_to_refuse() -> None:
    """A party's reports, chat and joins cost one store call (one Redis round trip) each."""
    windows = CountingWindows()
    limiter = RateLimiter(windows, {RateClass.CHAT: Rule(1, 60)}, enabled=True)
    try:
        await limiter.check(RateClass.CHAT, "member:m")
        assert windows.calls == ["hit"]
        with pytest.raises(RateLimited) as refused:
            await limiter.check(RateClass.CHAT, "member:m")
        assert windows.calls == ["hit", "hit", "window"]
        assert 1 <= refused.value.retry_after <= 60
        windows.calls.clear()
        assert await limiter.hit(RateClass.CHAT, "member:other")
        assert windows.calls == ["hit", "window"]  # the headers need the window
    finally:
        await limiter.close()


async def test_player_reports_are_counted_in_this_process() -> None:
    """Beside a shared store, a member's player reports cost no round trip: they are counted
    in the process whose socket received them; everything else is still shared."""
    shared, local = CountingWindows(), CountingWindows()
    rules = {RateClass.PLAYER_STATE: Rule(1, 60), RateClass.CHAT: Rule(1, 60)}
    limiter = RateLimiter(shared, rules, enabled=True, local=local)
    try:
        await limiter.check(RateClass.PLAYER_STATE, "member:m")
        with pytest.raises(RateLimited):
            await limiter.check(RateClass.PLAYER_STATE, "member:m")
        await limiter.check(RateClass.CHAT, "member:m")
        assert local.calls == ["hit", "hit", "window"]
        assert shared.calls == ["hit"]
    finally:
        await limiter.close()


async def test_the_production_limiter_keeps_player_reports_local(settings: Settings) -> None:
    limiter = open_rate_limiter(settings.model_copy(update={"redis_url": REDIS_URL}))
    embedded = open_rate_limiter(settings.model_copy(update={"redis_url": None}))
    try:
        assert isinstance(limiter.store, RedisWindows)
        assert isinstance(limiter.local, MemoryWindows)
        assert embedded.local is embedded.store
    finally:
        await limiter.close()
        await embedded.close()
