"""Security headers on every answer, CORS only for configured origins, the OpenAPI document."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app import create_app
from config import Settings
from rest_compat.openapi import OPERATIONS

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no data involved

ORIGIN = "https://watch.example.org"


def _assert_common(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    # Pages may choose a stricter one (web/ sends same-origin); the default is ours.
    assert response.headers["referrer-policy"] in ("strict-origin-when-cross-origin", "same-origin")
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]


async def test_api_answers_get_the_strict_policy(client: httpx.AsyncClient) -> None:
    for response in (
        await client.get("/api/videos/feed"),
        await client.get("/api/videos/nope"),
        await client.get("/healthz"),
        await client.post("/graphql", json={"query": "{ me { id } }"}),
    ):
        _assert_common(response)
        assert response.headers["content-security-policy"].startswith("default-src 'none'")


async def test_graphiql_gets_a_policy_that_lets_it_load(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "unpkg.com" in page.text
    _assert_common(page)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline' https://unpkg.com" in csp
    assert "style-src 'self' 'unsafe-inline' https://unpkg.com" in csp


async def test_pages_load_only_same_origin_code(client: httpx.AsyncClient) -> None:
    page = await client.get("/", headers={"accept": "text/html"})
    assert page.status_code == 200
    _assert_common(page)
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "unsafe-inline" not in csp


async def test_no_cors_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/videos/feed", headers={"origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers
    preflight = await client.options(
        "/graphql",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers


@pytest.fixture
async def cors_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings.model_copy(update={"cors_origins": f"{ORIGIN}, https://b.example"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_cors_allows_only_configured_origins(cors_client: httpx.AsyncClient) -> None:
    preflight = await cors_client.options(
        "/graphql",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.headers["access-control-allow-credentials"] == "true"
    response = await cors_client.get("/api/videos/feed", headers={"origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    _assert_common(response)
    other = await cors_client.get("/api/videos/feed", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers
    refused = await cors_client.options(
        "/graphql",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert refused.status_code == 400


async def test_openapi_lists_every_mounted_rest_route(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"
    listed = {(path, method) for path, item in document["paths"].items() for method in item}
    assert listed == set(OPERATIONS)
    signup = document["paths"]["/api/auth/signup"]["post"]
    body = signup["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["email", "password", "username"]
    upload = document["paths"]["/api/videos/upload"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["security"] == [{"bearer": []}]
    assert "429" in document["paths"]["/api/videos/{video_id}/time"]["put"]["responses"]
