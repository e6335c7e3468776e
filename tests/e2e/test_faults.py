"""Faults with servers the test starts itself: PostgreSQL restarted under `cowatch serve`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_SECRET
from tests.live import wait_for
from tests.pgserver import pg_cluster
from tests.servers import Server, cowatch_serve

pytestmark = pytest.mark.timeout(180)
ACCOUNT = {"email": "fault@example.com", "password": "fault password", "username": "faulty"}


def _traffic(server: Server, token: str) -> list[int]:
    """One round of the calls viewers make: REST reads and writes, GraphQL, authenticated."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, timeout=30) as http:
        return [
            http.get("/api/videos/feed").status_code,
            http.get("/api/channels/faulty-ch", headers=headers).status_code,
            http.post(
                "/graphql", json={"query": "{ me { username } feed { total } }"}, headers=headers
            ).status_code,
            http.post(
                "/api/channels", json={"name": "x", "slug": "another"}, headers=headers
            ).status_code,
        ]


def test_postgres_restart_mid_traffic_heals_without_an_app_restart(tmp_path: Path) -> None:
    with pg_cluster() as pg:
        env = {
            "COWATCH_DATA_DIR": str(tmp_path / "data"),
            "COWATCH_DATABASE_URL": pg.url,
            "COWATCH_JWT_SECRET": TEST_SECRET,
            "COWATCH_REDIS_URL": "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_RATE_LIMIT_API": "100000/minute",
        }
        with cowatch_serve(env, tmp_path) as server:
            assert httpx.post(f"{server.url}/api/auth/signup", json=ACCOUNT).status_code == 201
            login = httpx.post(f"{server.url}/api/auth/login", json=ACCOUNT)
            token = login.json()["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            channel = {"name": "Faulty", "slug": "faulty-ch"}
            created = httpx.post(f"{server.url}/api/channels", json=channel, headers=headers)
            assert created.status_code == 201
            before = _traffic(server, token)
            assert before == [200, 200, 200, 411], before

            pg.stop()
            during = Counter(_traffic(server, token) + _traffic(server, token))
            ready = httpx.get(f"{server.url}/readyz", timeout=30)
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"].startswith("error")
            # Every answer arrived (nothing hung) and said "unavailable", never a bare 500:
            # 503 + Retry-After in REST, SERVICE_UNAVAILABLE in GraphQL (whose HTTP status is 200).
            assert during == Counter({503: 6, 200: 2}), during
            feed = httpx.get(f"{server.url}/api/videos/feed", timeout=30)
            assert feed.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert feed.headers["retry-after"] == "5"
            graphql = httpx.post(
                f"{server.url}/graphql", json={"query": "{ feed { total } }"}, timeout=30
            )
            assert graphql.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            pg.start()

            wait_for(
                lambda: httpx.get(f"{server.url}/readyz", timeout=30).status_code == 200,
                "the app sees the database again",
            )
            after: Counter[int] = Counter()
            for _ in range(10):
                after.update(_traffic(server, token))
            assert after == Counter({200: 30, 411: 10}), after
            assert server.process.poll() is None
