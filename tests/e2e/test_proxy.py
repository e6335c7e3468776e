"""Behind a real reverse proxy (nginx on loopback) rate limits are per client, not per proxy,
when the proxy's address is in `FORWARDED_ALLOW_IPS`; a client cannot spoof its address; the
GraphQL websocket works through the proxy.

Clients come from different loopback addresses (127.0.0.2, 127.0.0.3) so nginx sees two
clients; it replaces X-Forwarded-For with the address it saw.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.e2e.nginx import nginx
from tests.servers import Server, cowatch_serve

API_LIMIT = 5
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("proxy")
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": "",
        "COWATCH_REDIS_URL": "",
        "COWATCH_STORAGE_URL": "",
        "COWATCH_RATE_LIMIT_API": f"{API_LIMIT}/minute",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",  # the proxy below connects from 127.0.0.1
    }
    with cowatch_serve(env, tmp) as running:
        yield running


@pytest.fixture(scope="module")
def trusted_proxy(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with nginx(server.port, tmp_path_factory.mktemp("nginx")) as url:
        yield url


@pytest.fixture(scope="module")
def untrusted_proxy(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A proxy whose address (127.0.0.5) is not in FORWARDED_ALLOW_IPS: its headers are ignored."""
    with nginx(server.port, tmp_path_factory.mktemp("nginx-untrusted"), bind="127.0.0.5") as url:
        yield url


def client(base_url: str, source: str) -> httpx.Client:
    """A client connecting from the loopback address `source`."""
    return httpx.Client(base_url=base_url, transport=httpx.HTTPTransport(local_address=source))


def feed(http: httpx.Client, headers: dict[str, str] | None = None) -> int:
    return http.get("/api/videos/feed", headers=headers).status_code


def test_rate_limits_count_each_client_behind_a_trusted_proxy(trusted_proxy: str) -> None:
    with client(trusted_proxy, "127.0.0.2") as a, client(trusted_proxy, "127.0.0.3") as b:
        assert [feed(a) for _ in range(API_LIMIT)] == [200] * API_LIMIT
        assert feed(a) == 429
        # A spoofed X-Forwarded-For is replaced by nginx: still client a.
        assert feed(a, {"X-Forwarded-For": "198.51.100.7"}) == 429
        assert feed(b) == 200  # b has its own budget


def test_an_untrusted_proxy_makes_every_client_one(untrusted_proxy: str) -> None:
    """What a missing FORWARDED_ALLOW_IPS does: the proxy's address is the only client."""
    with client(untrusted_proxy, "127.0.0.6") as a, client(untrusted_proxy, "127.0.0.7") as b:
        assert [feed(a) for _ in range(API_LIMIT)] == [200] * API_LIMIT
        assert feed(b) == 429  # b never sent a request, but it is counted as the proxy


def test_the_graphql_websocket_works_through_the_proxy(trusted_proxy: str, server: Server) -> None:
    account = {"email": "proxy@example.com", "password": "through the proxy", "username": "proxied"}
    with client(trusted_proxy, "127.0.0.4") as http:
        assert http.post("/api/auth/signup", json=account).status_code == 201
        token = http.post("/api/auth/login", json=account).json()["access_token"]
    url = trusted_proxy.replace("http://", "ws://") + "/graphql"
    with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
        ws.send(json.dumps(init))
        assert json.loads(ws.recv(timeout=15))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": "{ me { id } }"}}))
        answer = json.loads(ws.recv(timeout=15))
        assert answer["type"] == "next", answer
        assert answer["payload"]["data"]["me"]["id"]
    assert "ERROR" not in server.log()
