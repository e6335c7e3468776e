"""Shared subscription execution: one adapter over graphql-core, same bytes on either path."""

from __future__ import annotations

import json
import logging

import pytest
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
    found = shared.plan(schema.documents, DOCUMENT, None)
    assert found is not None and found.topic({"id": "v"}) == "video:v"
    assert shared.plan(schema.documents, DOCUMENT, None) is found  # parsed and planned once
    assert schema.documents.lookup(DOCUMENT) is not None  # the parse Strawberry will reuse
    assert shared.plan(schema.documents, "subscription { x(videoId: 1) { id } }", None) is None
    assert shared.plan(schema.documents, "{ me { id } }", None) is None
    assert shared.plan(schema.documents, "not graphql {", None) is None
