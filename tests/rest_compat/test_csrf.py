"""Cookie-authenticated writes from another site are refused; our pages, listed origins,
non-browser JSON clients and bearer tokens keep working (a real `cowatch serve`)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from app import create_app
from config import Settings
from tests.conftest import TEST_SECRET
from tests.servers import Server, cowatch_serve

EVIL = "https://evil.example"
LISTED = "https://app.example"
CREATE = 'mutation { createChannel(name: "N", slug: "csrf-gql") { id } }'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("csrf")
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": "",
        "COWATCH_REDIS_URL": "",
        "COWATCH_STORAGE_URL": "",
        "COWATCH_CORS_ORIGINS": LISTED,
        "COWATCH_RATE_LIMIT_SIGNUP": "1000/minute",  # a fresh account per case
        "COWATCH_RATE_LIMIT_LOGIN": "1000/minute",
    }
    with cowatch_serve(env, tmp) as running:
        yield running


def _account(server: Server) -> str:
    """A fresh user's token (each test's channel is its own)."""
    name = f"csrf_{uuid.uuid4().hex[:8]}"
    account = {"email": f"{name}@example.com", "password": "csrf test password", "username": name}
    assert httpx.post(f"{server.url}/api/auth/signup", json=account).status_code == 201
    return str(httpx.post(f"{server.url}/api/auth/login", json=account).json()["access_token"])


def _create(server: Server, headers: dict[str, str]) -> httpx.Response:
    slug = f"s-{uuid.uuid4().hex[:8]}"
    payload = json.dumps({"name": "N", "description": "", "slug": slug})
    return httpx.post(f"{server.url}/api/channels", content=payload, headers=headers)


@pytest.mark.parametrize(
    "extra",
    [
        {"Origin": EVIL, "Content-Type": "application/json"},
        {"Origin": EVIL, "Content-Type": "text/plain"},
        {"Content-Type": "text/plain"},  # the probe: text/plain with the cookie -> 201
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Origin": "null", "Content-Type": "application/json"},  # a sandboxed iframe
    ],
)
def test_cross_site_cookie_writes_are_refused_and_change_nothing(
    server: Server, extra: dict[str, str]
) -> None:
    token = _account(server)
    refused = _create(server, {"Cookie": f"Authentication={token}", **extra})
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "FORBIDDEN"
    assert error["message"].startswith("cross-site request refused")
    # Nothing was created: the same user can still create their one channel.
    assert _create(server, {"Authorization": f"Bearer {token}"}).status_code == 201


def test_cross_site_cookie_uploads_and_mutations_are_refused(server: Server) -> None:
    token = _account(server)
    cookie = {"Cookie": f"Authentication={token}"}
    files = {"file": ("a.mp4", b"\x00" * 64, "video/mp4")}
    for origin in ({}, {"Origin": EVIL}):
        upload = httpx.post(
            f"{server.url}/api/videos/upload",
            data={"title": "t"},
            files=files,
            headers={**cookie, **origin},
        )
        assert upload.status_code == 403, upload.text
        operations = {"query": 'mutation($f: Upload!) { uploadVideo(file: $f, title: "t") { id } }'}
        graphql_upload = httpx.post(
            f"{server.url}/graphql",
            data={"operations": json.dumps(operations), "map": '{"0": ["variables.f"]}'},
            files={"0": files["file"]},
            headers={**cookie, **origin},
        )
        assert graphql_upload.status_code == 403, graphql_upload.text
        assert graphql_upload.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    mutation = httpx.post(
        f"{server.url}/graphql", json={"query": CREATE}, headers={**cookie, "Origin": EVIL}
    )
    assert mutation.status_code == 403
    assert mutation.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "ERROR" not in server.log()


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "{own}", "Content-Type": "application/json"},  # our own pages
        {"Origin": LISTED, "Content-Type": "application/json"},  # COWATCH_CORS_ORIGINS
        {"Content-Type": "application/json"},  # a non-browser client
    ],
)
def test_our_pages_listed_origins_and_json_clients_may_write_with_the_cookie(
    server: Server, headers: dict[str, str]
) -> None:
    token = _account(server)
    headers = {k: v.replace("{own}", server.url) for k, v in headers.items()}
    created = _create(server, {"Cookie": f"Authentication={token}", **headers})
    assert created.status_code == 201, created.text


def test_bearer_tokens_are_not_csrf_able_and_work_from_anywhere(server: Server) -> None:
    token = _account(server)
    headers = {"Authorization": f"Bearer {token}", "Origin": EVIL, "Content-Type": "text/plain"}
    assert _create(server, headers).status_code == 201
    mutation = httpx.post(
        f"{server.url}/graphql",
        json={"query": CREATE.replace("csrf-gql", f"g-{uuid.uuid4().hex[:6]}")},
        headers={"Authorization": f"Bearer {_account(server)}", "Origin": EVIL},
    )
    assert mutation.status_code == 200, mutation.text
    assert "errors" not in mutation.json(), mutation.text


async def test_cors_star_never_allows_credentials(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"cors_origins": "*"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            preflight = await http.options(
                "/graphql",
                headers={"Origin": EVIL, "Access-Control-Request-Method": "POST"},
            )
            assert preflight.headers["access-control-allow-origin"] == "*"
            assert "access-control-allow-credentials" not in preflight.headers
            cookie_write = await http.post(
                "/graphql",
                json={"query": CREATE},
                headers={"Origin": EVIL, "Cookie": "Authentication=whatever"},
            )
            assert cookie_write.status_code == 403


def test_cors_star_cannot_be_mixed_with_origins() -> None:
    settings = Settings(cors_origins=f"*, {LISTED}", jwt_secret=TEST_SECRET)
    with pytest.raises(ValueError, match="cannot be combined"):
        create_app(settings)
