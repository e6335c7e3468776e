"""Shared subscription execution: one adapter over graphql-core, same bytes on either path."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator

import pytest
import strawberry
from graphql import parse

from realtime.events import Event
from resolvers.playback import PlaybackState
from schema import shared
from schema.root import build_schema

DOCUMENT = (
    "subscription($id: ID!) { videoTimestamp(videoId: $id) "
    "{ videoId timestamp userId playing rate serverTime version } }"
)


def event() -> Event:
    state = PlaybackState(
        video_id="v", timestamp=1.5, playing=True, rate=1.0, server_time=7, version=3, user_id="u"
    )
    return state.to_event()


def test_the_fast_and_the_public_executor_give_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    schema = build_schema()
    fast = shared.Adapter(schema)
    assert fast.fast
    monkeypatch.setattr(shared, "problems", lambda: ["graphql-core 9.9 is outside the range"])
    caplog.set_level(logging.WARNING, logger="cowatch.graphql.shared")
    public = shared.Adapter(schema)
    assert not public.fast
    assert "graphql.execute (slower)" in caplog.text
    field = shared.SHARED["videoTimestamp"]
    payloads = []
    for adapter in (fast, public):
        run = adapter.executor(parse(DOCUMENT), {"id": "v"}, None, context=None)
        assert run is not None
        payloads.append(run(field.root(event())))
    assert payloads[0] == payloads[1]
    assert json.loads(payloads[0])["data"]["videoTimestamp"]["version"] == 3


def test_a_shared_plan_is_made_once_per_document_in_the_schemas_cache() -> None:
    schema = build_schema()
    found = shared.plan(schema, DOCUMENT, None)
    assert found is not None and found.topic({"id": "v"}) == "video:v"
    assert shared.plan(schema, DOCUMENT, None) is found  # parsed and planned once
    assert schema.documents.lookup(DOCUMENT) is not None  # the parse Strawberry will reuse
    assert shared.plan(schema, "subscription { x(videoId: 1) { id } }", None) is None
    assert shared.plan(schema, "{ me { id } }", None) is None
    assert shared.plan(schema, "not graphql {", None) is None


@strawberry.type
class Author:
    name: str

    @strawberry.field
    async def followers(self) -> int:
        return 0


@strawberry.type
class Said:
    text: str
    author: Author


@strawberry.type
class Query:
    ok: bool = True


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def said(self, room: str) -> AsyncGenerator[Said, None]:
        yield Said(text="hi", author=Author(name="a"))


def test_only_documents_read_straight_from_event_data_are_shared() -> None:
    schema = strawberry.Schema(query=Query, subscription=Subscription)
    inner = shared.graphql_schema(schema)
    plain = parse('subscription { said(room: "r") { text author { name } } }')
    awaits = parse('subscription { said(room: "r") { text author { followers } } }')
    assert shared.plain_selections(inner, plain)
    assert not shared.plain_selections(inner, awaits)
