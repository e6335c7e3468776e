"""The document cache and persisted queries: same answers cached or not, bounded by bytes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import parse

from app import create_app
from config import Settings
from resolvers.services import Services
from schema.documents import DocumentCache, digest
from tests.factories import gql, make_user, make_videos

FEED = """query Feed($page: Int!, $limit: Int!) { feed(page: $page, limit: $limit) {
  totalPages currentPage total
  videos { id title description category status viewCount createdAt duration thumbnailUrl
           currentTimestamp creator { id username } channel { slug name subscriberCount }
           renditions { quality url } } } }"""
TWO_OPERATIONS = "query A { feed { total } } query B { me { id } }"


def _nested(depth: int) -> str:
    fields = ["feed", "videos", *(["channel", "owner"] * depth)][:depth]
    return "{ " + " { ".join(fields) + " { id }" + " }" * depth


@pytest.fixture
async def uncached(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database whose document cache keeps nothing."""
    app = create_app(settings.model_copy(update={"graphql_document_cache_bytes": 0}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


def _documents(video_id: str, slug: str) -> list[tuple[str, dict[str, Any], str | None]]:
    return [
        (FEED, {"page": 1, "limit": 3}, None),
        (FEED, {"page": 2, "limit": 2}, None),
        (FEED, {"page": 1, "limit": 5000}, None),  # over the list cap, given by a variable
        (
            "query($id: ID!) { video(id: $id) { id title creator { username } } }",
            {"id": video_id},
            None,
        ),
        (
            "query($s: String!) { channel(slug: $s) { slug videos { title } owner { username } } }",
            {"s": slug},
            None,
        ),
        ("{ me { id username email } }", {}, None),
        (TWO_OPERATIONS, {}, "A"),
        (TWO_OPERATIONS, {}, "B"),
        (TWO_OPERATIONS, {}, None),  # which operation? an error
        ("{ nope }", {}, None),  # validation error
        (_nested(11), {}, None),  # too deep
        ("{ " + " ".join(f"a{i}: me {{ id }}" for i in range(16)) + " }", {}, None),
        ("{ feed { ", {}, None),  # syntax error
        ('mutation { createChannel(name: "x", slug: "!!") { id } }', {}, None),
    ]


async def test_cached_and_uncached_paths_answer_alike(
    client: httpx.AsyncClient,
    uncached: httpx.AsyncClient,
    services: Services,
    app_services: tuple[Any, Services],
) -> None:
    owner = await make_user(services, "owner")
    videos = await make_videos(services, owner.user, 5)
    slug = "owners-channel"
    created = await client.post(
        "/api/channels", json={"name": "Own", "slug": slug}, headers=owner.headers
    )
    assert created.status_code == 201
    cache: DocumentCache = app_services[0].state.schema.documents
    documents = _documents(videos[0].id, slug)
    for query, variables, operation in documents:
        payload = {"query": query, "variables": variables, "operationName": operation}
        answers = []
        for http in (uncached, client, client):  # uncached, then a cache miss, then a hit
            response = await http.post("/graphql", json=payload, headers=owner.headers)
            answers.append((response.status_code, response.json()))
        assert answers[0] == answers[1] == answers[2], query
    # each document went twice through the cached app: the second time a hit (syntax error aside)
    assert cache.hits >= len(documents) - 1


async def test_persisted_query_sequence(client: httpx.AsyncClient, services: Services) -> None:
    owner = await make_user(services)
    await make_videos(services, owner.user, 2)
    query = "{ feed { total videos { title } } }"
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest(query)}}

    first = (await client.post("/graphql", json={"extensions": persisted})).json()
    assert first["errors"][0]["message"] == "PersistedQueryNotFound"
    assert first["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"

    registered = await client.post("/graphql", json={"query": query, "extensions": persisted})
    expected = {"feed": {"total": 2, "videos": [{"title": "video 1"}, {"title": "video 0"}]}}
    assert registered.json() == {"data": expected}

    by_hash = await client.post("/graphql", json={"extensions": persisted})
    assert by_hash.json() == {"data": expected}
    by_get = await client.get(
        "/graphql",
        params={"extensions": json.dumps(persisted)},
        headers={"Accept": "application/json"},
    )
    assert by_get.json() == {"data": expected}

    wrong = {"persistedQuery": {"version": 1, "sha256Hash": digest("{ me { id } }")}}
    mismatch = (await client.post("/graphql", json={"query": query, "extensions": wrong})).json()
    assert mismatch["errors"][0]["message"] == "provided sha does not match query"
    assert mismatch["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_forgotten_persisted_query_is_asked_for_again(settings: Settings) -> None:
    small = settings.model_copy(update={"graphql_document_cache_bytes": 40})
    app = create_app(small)
    first, second = "{ feed { total } }", "{ feed { currentPage } }"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            for query in (first, second):  # 18 + 24 bytes: the second evicts the first
                assert "errors" not in await gql(http, query)
            hashed = {"persistedQuery": {"version": 1, "sha256Hash": digest(first)}}
            again = (await http.post("/graphql", json={"extensions": hashed})).json()
    assert again["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"


def test_cache_is_bounded_by_bytes_and_least_recent_goes_first() -> None:
    cache = DocumentCache(max_bytes=30)
    texts = ["{ a }", "{ bb }", "{ ccc }", "{ dddd }"]  # 5, 6, 7, 8 bytes
    for text in texts:
        cache.get_or_parse(text)
    assert cache.bytes == 26 and len(cache) == 4
    assert cache.lookup("{ a }") is not None  # now the most recent
    cache.get_or_parse("{ eeeeeee }")  # 11 bytes: 37 > 30, evict the least recent ({ bb })
    assert cache.lookup("{ bb }") is None
    assert cache.lookup("{ a }") is not None
    assert cache.bytes <= 30
    big = cache.get_or_parse("{ " + "x" * 40 + " }")
    assert big.ast is not None and cache.lookup(big.text) is None  # over the budget: not kept


def test_plans_are_built_once_per_document() -> None:
    cache = DocumentCache(max_bytes=1000)
    built: list[str] = []

    def build(document: Any) -> int:
        built.append(document.text)
        return len(document.ast.definitions)

    document = cache.get_or_parse("{ a } ")
    assert document.plan("count", build) == 1
    assert cache.get_or_parse("{ a } ").plan("count", build) == 1
    assert built == ["{ a } "]
    assert cache.lookup("{ a } ") is document
    assert parse("{ a }") is not document.ast
