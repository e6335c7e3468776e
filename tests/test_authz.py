"""The authorization matrix: every protected REST route, mutation and socket, every bad token.

No token → 403 / UNAUTHENTICATED (the seed's rule); an expired, tampered, `alg: none`,
wrongly signed or revoked token → 401 / UNAUTHENTICATED. No operation today acts on a
resource owned by someone else (videos, channels and the shared playhead have no owner-only
actions), so there is no FORBIDDEN row yet; `email` being visible only to its owner is
tested in tests/resolvers/test_auth.py.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from config import Settings
from resolvers import auth
from resolvers.services import Services
from tests.factories import Account, error_code, make_user, make_videos
from tests.live import LiveServer, live_server, receive_json

Call = Callable[[httpx.AsyncClient, dict[str, str]], Awaitable[httpx.Response]]


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def bad_tokens(services: Services, account: Account) -> dict[str, str]:
    now = datetime.now(UTC)
    claims = {"sub": account.user.id, "iat": now, "exp": now + timedelta(hours=1), "jti": "j1"}
    long_lived = {"sub": account.user.id, "iat": 1, "exp": 4102444800, "jti": "j2"}
    head, _payload, signature = account.token.split(".")
    revoked = auth.issue_token(secret=services.jwt_secret, user_id=account.user.id, ttl_s=600)
    await auth.logout(
        db=services.db, publisher=services.bus, secret=services.jwt_secret, token=revoked
    )
    return {
        "expired": jwt.encode(
            {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
            services.jwt_secret,
            algorithm="HS256",
        ),
        "tampered": f"{head}.{_b64({**long_lived, 'sub': 'someone-else'})}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(long_lived)}.",
        "wrong key": jwt.encode(claims, "another-secret-" + "y" * 40, algorithm="HS256"),
        "revoked": revoked,
    }


def _rest_calls(video_id: str) -> dict[str, Call]:
    upload_files = {"file": ("clip.mp4", b"\x00" * 64, "video/mp4")}
    return {
        "POST /api/channels": lambda c, h: c.post(
            "/api/channels", json={"name": "N", "slug": "a-slug"}, headers=h
        ),
        "GET /api/channels/{slug}": lambda c, h: c.get("/api/channels/a-slug", headers=h),
        "POST /api/videos/upload": lambda c, h: c.post(
            "/api/videos/upload", data={"title": "t"}, files=upload_files, headers=h
        ),
        "PUT /api/videos/{id}/time": lambda c, h: c.put(
            f"/api/videos/{video_id}/time", json={"timestamp": 1.0}, headers=h
        ),
        "POST /api/auth/logout": lambda c, h: c.post("/api/auth/logout", headers=h),
    }


def _graphql_calls(video_id: str) -> dict[str, Call]:
    def post(query: str, variables: dict[str, Any] | None = None) -> Call:
        return lambda c, h: c.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=h
        )

    def upload(c: httpx.AsyncClient, h: dict[str, str]) -> Awaitable[httpx.Response]:
        operations = {
            "query": 'mutation($f: Upload!) { uploadVideo(file: $f, title: "t") { id } }',
            "variables": {"f": None},
        }
        return c.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
            files={"0": ("clip.mp4", b"\x00" * 64, "video/mp4")},
            headers=h,
        )

    return {
        "createChannel": post('mutation { createChannel(name: "N", slug: "a-slug") { id } }'),
        "updateVideoTimestamp": post(
            "mutation($v: ID!) { updateVideoTimestamp(videoId: $v, timestamp: 1) { version } }",
            {"v": video_id},
        ),
        "logout": post("mutation { logout }"),
        "uploadVideo": upload,
    }


@pytest.fixture
async def setup(services: Services) -> tuple[Account, str, dict[str, str]]:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1)
    return account, video.id, await bad_tokens(services, account)


async def test_rest_routes(
    client: httpx.AsyncClient, setup: tuple[Account, str, dict[str, str]]
) -> None:
    _account, video_id, tokens = setup
    for name, call in _rest_calls(video_id).items():
        missing = await call(client, {})
        assert missing.status_code == 403, (name, missing.text)
        assert missing.json()["error"]["code"] == "UNAUTHENTICATED", name
        for kind, token in tokens.items():
            for headers in (
                {"Authorization": f"Bearer {token}"},
                # our own page (rest_compat/csrf.py refuses cookie writes from elsewhere)
                {"Cookie": f"Authentication={token}", "Origin": "http://testserver"},
            ):
                refused = await call(client, headers)
                assert refused.status_code == 401, (name, kind, headers, refused.text)
                assert refused.json()["error"]["code"] == "UNAUTHENTICATED", (name, kind)


async def test_mutations(
    client: httpx.AsyncClient, setup: tuple[Account, str, dict[str, str]]
) -> None:
    _account, video_id, tokens = setup
    for name, call in _graphql_calls(video_id).items():
        for kind, headers in (
            ("missing", {}),
            *((kind, {"Authorization": f"Bearer {token}"}) for kind, token in tokens.items()),
        ):
            response = await call(client, headers)
            body = response.json()
            if name == "uploadVideo":  # refused at intake, before the body is read
                assert response.status_code == (403 if kind == "missing" else 401), body
                assert "data" not in body, (name, kind, body)
            else:
                assert response.status_code == 200, (name, kind, response.text)
                assert body["data"] is None, (name, kind, body)
            assert error_code(body) == "UNAUTHENTICATED", (name, kind, body)


async def test_a_valid_token_passes_every_gate(
    client: httpx.AsyncClient, setup: tuple[Account, str, dict[str, str]]
) -> None:
    """The control row: the same calls with a good token get past authentication."""
    account, video_id, _tokens = setup
    for name, call in {**_rest_calls(video_id), **_graphql_calls(video_id)}.items():
        if "logout" in name:
            continue
        response = await call(client, account.headers)
        assert response.status_code not in (401, 403), (name, response.text)
        if response.headers["content-type"].startswith("application/json") and name[0].islower():
            assert "UNAUTHENTICATED" not in response.text, (name, response.text)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    async with live_server(settings) as running:
        yield running


async def _closed_with(url: str, code: int, init: dict[str, Any] | None = None) -> None:
    protocols = [Subprotocol("graphql-transport-ws")] if init is not None else None
    async with connect(url, subprotocols=protocols) as conn:
        if init is not None:
            await conn.send(json.dumps({"type": "connection_init", "payload": init}))
        with pytest.raises(ConnectionClosed) as closed:
            await receive_json(conn)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == code, url


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sockets_refuse_every_bad_token(server: LiveServer) -> None:
    account = await make_user(server.services)
    tokens = await bad_tokens(server.services, account)
    await _closed_with(f"{server.ws_url}/ws", 4403)
    for token in tokens.values():
        await _closed_with(f"{server.ws_url}/ws?token={token}", 4401)
        init = {"Authorization": f"Bearer {token}"}
        await _closed_with(f"{server.ws_url}/graphql", 4401, init=init)
