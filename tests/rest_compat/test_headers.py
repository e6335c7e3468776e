"""Security headers on every answer, CORS only for configured origins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app import create_app
from config import Settings
from tests.live import live_server

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


@pytest.fixture
async def over_tcp(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A real uvicorn on a loopback port: the headers a browser would get."""
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


async def test_graphiql_policy_names_exact_assets_and_hashes(over_tcp: httpx.AsyncClient) -> None:
    page = await over_tcp.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "cannot reach unpkg.com" in page.text  # the offline note, until GraphiQL replaces it
    _assert_common(page)
    csp = page.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    directives = dict(part.strip().split(" ", 1) for part in csp.split(";"))
    scripts = directives["script-src"].split()
    assert "https://unpkg.com/graphiql@3.8.3/graphiql.min.js" in scripts
    assert "https://unpkg.com" not in scripts  # no whole origin, only the files the page names
    assert sum(source.startswith("'sha256-") for source in scripts) == 1
    assert all(source.startswith(("https://unpkg.com/", "'sha256-")) for source in scripts), scripts
    assert directives["connect-src"] == "'self'"


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
