"""Known queries answered by schema/fastpath.py: the same bytes, headers and limits."""

from __future__ import annotations

import random
from typing import Any

import httpx

from config import Settings
from resolvers.services import Services
from schema.documents import digest
from tests.factories import make_user, make_videos
from tests.resolvers.test_videos import add_renditions
from tests.schema.test_compiled import _document, general  # noqa: F401 (the fixture)

FEED = """query Feed($page: Int!, $limit: Int!) {
  feed(page: $page, limit: $limit) { totalPages currentPage
    videos { id title duration viewCount createdAt status thumbnailUrl currentTimestamp
             creator { id username } channel { slug subscriberCount } renditions { url width } } }
}"""
#: headers that differ between any two answers
VARYING = {"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset", "content-length"}


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.multi_items() if k not in VARYING]


async def _seed(services: Services, client: httpx.AsyncClient) -> dict[str, Any]:
    owners = [await make_user(services) for _ in range(2)]
    made = []
    for n, owner in enumerate(owners):
        made += await make_videos(services, owner.user, 3, category="music" if n else None)
        body = {"name": f"Channel {n}", "slug": f"channel-{n}", "description": "about"}
        assert (await client.post("/api/channels", json=body, headers=owner.headers)).is_success
    await add_renditions(services, made)
    return {
        "page": 1,
        "limit": 3,
        "category": "music",
        "video": made[0].id,
        "slug": "channel-1",
        "user": owners[1].user.id,
    }


async def test_repeated_documents_answer_as_the_general_path(
    client: httpx.AsyncClient,
    general: httpx.AsyncClient,  # noqa: F811
    services: Services,
    app_services: tuple[Any, Services],
) -> None:
    values = await _seed(services, client)
    app = app_services[0]
    schema = app.state.schema
    rng = random.Random(20261202)
    for _ in range(40):
        query, used = _document(rng, schema._schema.query_type)
        variables = {name: values[name] for name in used if rng.random() < 0.9}
        payload = {"query": query, "variables": variables, "operationName": "Q"}
        expected = await general.post("/graphql", json=payload)
        for _ in range(2):  # the first parses, validates and compiles; the second may be fast
            answer = await client.post("/graphql", json=payload)
            assert answer.status_code == expected.status_code, query
            assert answer.content == expected.content, (query, variables)
            assert _headers(answer) == _headers(expected), query
    assert app.state.graphql.fast_answers >= 8, app.state.graphql.fast_answers


async def test_the_fast_path_counts_each_request_once(
    settings: Settings, services: Services
) -> None:
    from app import create_app

    app = create_app(settings.model_copy(update={"rate_limit_api": "3/minute"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            payload = {"query": FEED, "variables": {"page": 1, "limit": 2}}
            answers = [await http.post("/graphql", json=payload) for _ in range(4)]
    remaining = [a.headers.get("x-ratelimit-remaining") for a in answers]
    assert remaining == ["2", "1", "0", "0"], remaining
    assert [a.json().get("errors") is None for a in answers] == [True, True, True, False]
    refused = answers[3].json()
    assert refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED", refused
    assert answers[3].headers["retry-after"]
    assert app.state.graphql.fast_answers == 2  # the first request compiled the plan


async def test_limits_and_bad_variables_are_the_general_paths(
    client: httpx.AsyncClient,
    general: httpx.AsyncClient,  # noqa: F811
    services: Services,
    app_services: tuple[Any, Services],
) -> None:
    await _seed(services, client)
    good = {"query": FEED, "variables": {"page": 1, "limit": 2}}
    assert (await client.post("/graphql", json=good)).json().get("errors") is None
    for variables in ({"page": 1, "limit": 101}, {"page": "1", "limit": 2}, {"page": 1}):
        payload = {"query": FEED, "variables": variables}
        answer, expected = [await http.post("/graphql", json=payload) for http in (client, general)]
        assert answer.json()["errors"], variables
        assert answer.content == expected.content, variables
    assert app_services[0].state.graphql.fast_answers == 0


async def test_a_persisted_query_hash_alone_is_answered_fast(
    client: httpx.AsyncClient, services: Services, app_services: tuple[Any, Services]
) -> None:
    await _seed(services, client)
    persisted = {"persistedQuery": {"version": 1, "sha256Hash": digest(FEED)}}
    variables = {"page": 1, "limit": 3}
    unknown = await client.post("/graphql", json={"variables": variables, "extensions": persisted})
    assert unknown.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    full = {"query": FEED, "variables": variables, "extensions": persisted}
    first = await client.post("/graphql", json=full)
    again = await client.post("/graphql", json={"variables": variables, "extensions": persisted})
    assert first.json()["data"]["feed"]["videos"], first.json()
    assert again.content == first.content
    assert app_services[0].state.graphql.fast_answers == 1
