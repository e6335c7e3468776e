"""Hostile GraphQL documents are refused before execution with a clear error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from config import Settings
from tests.factories import error_code, gql
from tests.live import live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no data involved

INTROSPECTION = "{ __schema { queryType { name } } }"


def _nested(depth: int) -> str:
    """`{ feed { videos { channel { owner { channel ...` reaching the given depth."""
    fields = ["feed", "videos"]
    while len(fields) < depth:
        fields += ["channel", "owner"] if len(fields) % 2 == 0 else ["owner", "channel"]
    fields = fields[:depth]
    return "{ " + " { ".join(fields) + " { id }" + " }" * depth


async def test_depth_over_ten_is_refused(client: httpx.AsyncClient) -> None:
    ok = await gql(client, _nested(9))
    assert "errors" not in ok, ok
    body = await gql(client, _nested(11))
    assert body.get("data") is None
    assert error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    assert "exceeds maximum operation depth" in body["errors"][0]["message"]


async def test_too_many_aliases_are_refused(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f"a{i}: me {{ id }}" for i in range(16)) + " }"
    body = await gql(client, query)
    assert body.get("data") is None
    assert "aliases found" in body["errors"][0]["message"]


async def test_too_many_tokens_are_refused(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join("me { id }" for _ in range(600)) + " }"
    body = await gql(client, query)
    assert body.get("data") is None
    assert "more than 2000 tokens" in body["errors"][0]["message"]


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ feed(limit: 101) { total } }", {}),
        ("query($n: Int!) { feed(limit: $n) { total } }", {"n": 5000}),
    ],
)
async def test_list_limits_are_capped(
    client: httpx.AsyncClient, query: str, variables: dict[str, int]
) -> None:
    body = await gql(client, query, variables)
    assert body.get("data") is None
    assert error_code(body) == "BAD_USER_INPUT"
    assert body["errors"][0]["message"] == "limit must be at most 100"
    fine = await gql(client, query.replace("101", "100"), {"n": 100} if variables else {})
    assert fine["data"]["feed"]["total"] == 0


async def test_introspection_is_on_by_default(client: httpx.AsyncClient) -> None:
    body = await gql(client, INTROSPECTION)
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


@pytest.fixture
async def no_introspection(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A real uvicorn on a loopback port with introspection off."""
    off = settings.model_copy(update={"graphql_introspection": False})
    async with live_server(off) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


@pytest.fixture
async def introspective(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The same over a real socket with introspection on (the default)."""
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        yield http


async def test_introspection_can_be_turned_off(no_introspection: httpx.AsyncClient) -> None:
    body = await gql(no_introspection, INTROSPECTION)
    assert body.get("data") is None
    assert "introspection" in body["errors"][0]["message"].lower()
    assert (await gql(no_introspection, "{ me { id } }"))["data"] == {"me": None}


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        ("{ me { emial } }", {}),  # Did you mean 'email'?
        ("{ feed(limt: 2) { total } }", {}),  # Did you mean 'limit'?
        ("query($id: ID!) { vide(id: $id) { id } }", {"id": "x"}),  # Did you mean 'video'?
    ],
)
async def test_without_introspection_errors_suggest_no_names(
    introspective: httpx.AsyncClient,
    no_introspection: httpx.AsyncClient,
    query: str,
    variables: dict[str, str],
) -> None:
    suggested = await gql(introspective, query, variables)
    assert "Did you mean" in suggested["errors"][0]["message"]  # introspection on: a hint
    body = await gql(no_introspection, query, variables)
    assert error_code(body) == "GRAPHQL_VALIDATION_FAILED"
    message = body["errors"][0]["message"]
    assert "Did you mean" not in message, message
    assert message.startswith(("Cannot query field", "Unknown argument"))
