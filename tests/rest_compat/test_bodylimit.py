"""Every request body is capped while it arrives, whatever its headers say (a real server)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.rawhttp import rss_bytes, send
from tests.servers import Server, cowatch_serve

MiB = 1024 * 1024
JSON_CAP = 64 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("bodylimit")
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": "",
        "COWATCH_REDIS_URL": "",
        "COWATCH_STORAGE_URL": "",
    }
    with cowatch_serve(env, tmp) as running:
        yield running


def huge_json(total: int) -> Iterator[bytes]:
    """A JSON string of `total` bytes, in 1 MiB chunks."""
    yield b'{"email": "'
    for _ in range(total // MiB):
        yield b"a" * MiB
    yield b'", "password": "x"}'


@pytest.mark.parametrize("path", ["/api/auth/login", "/graphql", "/api/auth/signup"])
async def test_a_chunked_json_body_is_cut_off_at_the_cap(server: Server, path: str) -> None:
    rss = rss_bytes(server.process.pid)
    answer = await send(f"{server.url}{path}", headers=JSON, chunks=huge_json(300 * MiB))
    assert answer.status == 413, answer.body
    assert not answer.sent_all
    assert answer.sent < 64 * MiB
    assert rss_bytes(server.process.pid) - rss < 32 * MiB
    body = answer.json()
    if path == "/graphql":
        error = body["errors"][0]
        assert error["extensions"] == {"code": "PAYLOAD_TOO_LARGE", "limit": JSON_CAP}
    else:
        assert body["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert body["error"]["details"] == {"limit": JSON_CAP}


async def test_a_declared_length_over_the_cap_is_refused_unread(server: Server) -> None:
    answer = await send(
        f"{server.url}/api/auth/signup",
        headers={**JSON, "Content-Length": str(300 * MiB)},
        chunks=huge_json(300 * MiB),
        chunked=False,
    )
    assert answer.status == 413
    assert not answer.sent_all


async def test_a_body_that_lies_about_its_length_is_still_counted(server: Server) -> None:
    """A small Content-Length followed by more: the server reads only what was declared."""
    answer = await send(
        f"{server.url}/api/auth/login",
        headers={**JSON, "Content-Length": "20"},
        chunks=[b'{"email": "a", "p": 1}' + b" " * MiB],
        chunked=False,
    )
    assert answer.status in (400, 401), answer.body


@pytest.mark.parametrize("path", ["/api/auth/login", "/graphql"])
async def test_json_nested_too_deeply_is_a_400(server: Server, path: str) -> None:
    answer = await send(f"{server.url}{path}", headers=JSON, chunks=[b"[" * 60_000])
    assert answer.status == 400, answer.body
    assert "ERROR" not in server.log()
