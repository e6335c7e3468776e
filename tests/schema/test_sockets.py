"""GraphQL sockets parse a document once, however many sockets send it, and never parse what
they refuse: a throttled `subscribe`, a document over the byte cap (issue 10, item 2: a
graphql-transport-ws `subscribe` was parsed up to three times, even when rate-limited).

A real uvicorn on a loopback port; every parse graphql-core does is recorded (the parser class
itself, so Strawberry's own parse would be seen too).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest
from graphql.language.parser import Parser

from config import Settings
from tests.factories import make_user, make_videos
from tests.live import graphql_client, live_server

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
BURST = 6


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text of every document graphql-core parses while the test runs."""
    texts: list[str] = []
    parse_document = Parser.parse_document

    def recorded(self: Parser) -> object:
        texts.append(self._lexer.source.body)
        return parse_document(self)

    monkeypatch.setattr(Parser, "parse_document", recorded)
    yield texts


async def test_one_parse_per_document_and_none_for_what_is_refused(
    settings: Settings, parsed: list[str]
) -> None:
    limits = {"ws_message_burst": BURST, "ws_message_rate": 0.001, "graphql_max_bytes": 1024}
    async with live_server(settings.model_copy(update=limits)) as server:
        account = await make_user(server.services)
        (video,) = await make_videos(server.services, account.user, 1)
        mark = uuid.uuid4().hex  # a text no earlier test can have cached
        watch = (
            f"subscription Watch{mark}($id: ID!) "
            "{ videoTimestamp(videoId: $id) { videoId timestamp version } }"
        )
        # Unparseable on purpose: parsed, it would be a syntax error (4400), not the size refusal.
        oversized = f"subscription Big{mark} {{ videoTimestamp(videoId: " + "#" * 1100
        throttled = (
            f"subscription Late{mark}($id: ID!) {{ videoTimestamp(videoId: $id) {{ version }} }}"
        )
        clients = [
            graphql_client(server.ws_url, account.token, legacy=legacy)
            for legacy in (False, False, False, True, True)
        ]
        for opened in clients:
            async with opened as client:
                start = "start" if client.legacy else "subscribe"
                payload = {"query": watch, "variables": {"id": video.id}}
                await client.conn.send(json.dumps({"id": "w", "type": start, "payload": payload}))
                first = await client.next_message()
                assert first["payload"]["data"]["videoTimestamp"]["videoId"] == video.id, first

        async with graphql_client(server.ws_url, account.token) as client:
            await client.conn.send(
                json.dumps({"id": "big", "type": "subscribe", "payload": {"query": oversized}})
            )
            refused = await client.next_message()
            assert refused["id"] == "big" and refused["type"] == "error", refused
            assert refused["payload"][0]["extensions"]["code"] == "PAYLOAD_TOO_LARGE"
            # Spend the rest of the burst (connection_init and the refusal took two).
            for n in range(BURST - 2):
                await client.conn.send(json.dumps({"type": "ping", "id": str(n)}))
                assert (await client.next_message())["type"] == "pong"
            payload = {"query": throttled, "variables": {"id": video.id}}
            await client.conn.send(
                json.dumps({"id": "late", "type": "subscribe", "payload": payload})
            )
            late = await client.next_message()
            assert late["id"] == "late" and late["type"] == "error", late
            assert late["payload"][0]["extensions"]["code"] == "RATE_LIMITED"

    assert parsed.count(watch) == 1, f"{parsed.count(watch)} parses of one document"
    assert not [text for text in parsed if mark in text and text != watch], parsed
