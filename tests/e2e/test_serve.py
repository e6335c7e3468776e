"""`cowatch serve` on the embedded defaults, as a fresh machine would run it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.servers import cowatch_serve


def test_serve_embedded_answers_health_and_graphiql(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    env = {"COWATCH_DATA_DIR": str(data_dir)}
    for name in ("COWATCH_DATABASE_URL", "COWATCH_REDIS_URL", "COWATCH_STORAGE_URL"):
        env[name] = ""
    with cowatch_serve(env, tmp_path) as server:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200, ready.text
        page = httpx.get(f"{server.url}/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "graphiql" in page.text.lower()
        signup = httpx.post(
            f"{server.url}/api/auth/signup",
            json={
                "email": "e@example.com",
                "password": "embedded password",
                "username": "embedded",
            },
        )
        assert signup.status_code == 201
    assert (data_dir / "cowatch.db").exists()
    assert (data_dir / "jwt_secret").stat().st_mode & 0o077 == 0
