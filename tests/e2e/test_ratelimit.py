"""Rate limits shared by two `cowatch serve` processes through Redis."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx

from tests.resolvers.test_ratelimit import REDIS_URL
from tests.servers import cowatch_serve


def test_two_servers_share_one_budget_through_redis(tmp_path: Path) -> None:
    prefix = f"cowatch-test-{uuid.uuid4().hex}"
    env = {
        "COWATCH_REDIS_URL": REDIS_URL,
        "COWATCH_RATE_LIMIT_PREFIX": prefix,
        "COWATCH_RATE_LIMIT_API": "5/minute",
        "COWATCH_DATABASE_URL": "",
        "COWATCH_STORAGE_URL": "",
    }
    with (
        cowatch_serve({**env, "COWATCH_DATA_DIR": str(tmp_path / "a")}, tmp_path) as a,
        cowatch_serve({**env, "COWATCH_DATA_DIR": str(tmp_path / "b")}, tmp_path) as b,
    ):
        remaining = []
        for server in (a, b, a, b, a):
            response = httpx.get(f"{server.url}/api/videos/feed")
            assert response.status_code == 200, response.text
            remaining.append(int(response.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        for server in (a, b):
            refused = httpx.get(f"{server.url}/api/videos/feed")
            assert refused.status_code == 429
            assert refused.json()["error"]["code"] == "RATE_LIMITED"
            assert int(refused.headers["retry-after"]) >= 1
