"""Compiled plans answer byte for byte what graphql-core's field-by-field execution answers."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType

from app import create_app
from config import Settings
from models import VideoStatus
from resolvers.services import Services
from schema.documents import DocumentCache
from tests.factories import make_user, make_videos
from tests.resolvers.test_videos import add_renditions

DOCUMENTS = 120
#: root fields with the arguments to try: literals, variables (declared as given), bad values
ROOTS: dict[str, list[tuple[str, dict[str, str]]]] = {
    "feed": [
        ("(page: 1, limit: 3)", {}),
        ('(limit: 2, category: "music")', {}),
        ("(page: $page, limit: $limit)", {"page": "Int!", "limit": "Int!"}),
        ("(page: $page, limit: 4)", {"page": "Int = 2"}),
        ("(limit: $limit, category: $category)", {"limit": "Int!", "category": "String"}),
        ("", {}),
        ("(page: 0)", {}),
    ],
    "video": [("(id: $video)", {"video": "ID!"}), ('(id: "not-a-uuid")', {})],
    "channel": [("(slug: $slug)", {"slug": "String!"}), ('(slug: "nobody")', {})],
    "user": [("(id: $user)", {"user": "ID!"})],
    "me": [("", {})],
}  # serverClock is left out: its answer is the time


def _unwrap(graphql_type: Any) -> Any:
    while isinstance(graphql_type, GraphQLNonNull | GraphQLList):
        graphql_type = graphql_type.of_type
    return graphql_type


def _selection(rng: random.Random, parent: GraphQLObjectType, depth: int) -> str:
    names = [name for name, field in parent.fields.items() if not field.args]
    rng.shuffle(names)
    parts = []
    for name in names[: rng.randint(1, len(names))]:
        inner = _unwrap(parent.fields[name].type)
        if isinstance(inner, GraphQLObjectType):
            if depth == 0:
                continue
            text = f"{name} {{ {_selection(rng, inner, depth - 1)} }}"
        else:
            text = name
        if rng.random() < 0.15:
            text = f"a{rng.randint(0, 9)}_{name}: {text}"
        parts.append(text)
    if rng.random() < 0.2:
        parts.append("__typename")
    if rng.random() < 0.15 and parts:
        parts.append(f"... on {parent.name} {{ {parts.pop()} }}")
    if rng.random() < 0.1 and parts:
        parts.append(f"... {{ {parts.pop()} @include(if: true) }}")
    return " ".join(parts) or "__typename"


def _document(rng: random.Random, query: GraphQLObjectType) -> tuple[str, set[str]]:
    chosen = rng.sample(sorted(ROOTS), rng.randint(1, 3))
    declared: dict[str, str] = {}
    parts = []
    for name in chosen:
        arguments, variables = rng.choice(ROOTS[name])
        declared.update(variables)
        selection = _selection(rng, _unwrap(query.fields[name].type), rng.randint(0, 3))
        parts.append(f"{name}{arguments} {{ {selection} }}")
    header = ", ".join(f"${name}: {kind}" for name, kind in declared.items())
    return f"query Q{f'({header})' if header else ''} {{ {' '.join(parts)} }}", set(declared)


@pytest.fixture
async def general(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second app on the same database that never compiles a plan."""
    app = create_app(settings.model_copy(update={"graphql_compiled_plans": False}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


async def test_random_documents_answer_alike_compiled_or_not(
    client: httpx.AsyncClient,
    general: httpx.AsyncClient,
    services: Services,
    app_services: tuple[Any, Services],
) -> None:
    owners = [await make_user(services) for _ in range(3)]
    made = []
    for n, owner in enumerate(owners):
        made += await make_videos(services, owner.user, 4, category="music" if n else None)
        if n < 2:
            body = {"name": f"Channel {n}", "slug": f"channel-{n}", "description": "about"}
            assert (await client.post("/api/channels", json=body, headers=owner.headers)).is_success
    await make_videos(services, owners[0].user, 2, status=VideoStatus.PROCESSING)
    await add_renditions(services, made)
    values = {
        "page": 1,
        "limit": 3,
        "category": "music",
        "video": made[0].id,
        "slug": "channel-1",
        "user": owners[2].user.id,
    }
    schema = app_services[0].state.schema
    cache: DocumentCache = schema.documents
    rng = random.Random(20261201)
    compiled = 0
    for _ in range(DOCUMENTS):
        query, used = _document(rng, schema._schema.query_type)
        variables = {name: values[name] for name in used if rng.random() < 0.9}
        if rng.random() < 0.1 and "limit" in variables:
            variables["limit"] = "3"  # the wrong type: an error either way
        payload = {"query": query, "variables": variables, "operationName": "Q"}
        headers = owners[0].headers if rng.random() < 0.5 else {}
        answers = [
            await http.post("/graphql", json=payload, headers=headers) for http in (general, client)
        ]
        assert answers[0].status_code == answers[1].status_code, query
        assert answers[0].content == answers[1].content, (query, variables)
        document = cache.lookup(query)
        compiled += bool(document and document.plans.get(("compiled", "Q")))
    # many ran compiled (not those with directives, User.email's permission, bad variables)
    assert compiled >= DOCUMENTS // 5, compiled
