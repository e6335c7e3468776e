"""videoProcessing over real sockets: progress comes over the bus from whoever transcodes (an
arq worker through Redis, or the server itself), only the uploader may listen, a user holds a
capped number of subscriptions, and an event costs no database work per subscriber; a video in
processing has no renditions yet, and an upload without title or file, too long or too wide is
refused with nothing kept."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from websockets.exceptions import ConnectionClosedError

from config import Settings
from models import VideoStatus
from resolvers.services import Services
from tests.conftest import REDIS_URL
from tests.factories import gql, make_user, make_videos
from tests.live import GraphQLClient, graphql_client, live_server
from tests.media import make_clip
from tests.resolvers.test_uploads import rest_upload
from workers.progress import progress_event
from workers.queue import ArqQueue
from workers.worker import build_worker

PROCESSING = (
    "subscription($id: ID!) { videoProcessing(videoId: $id) "
    "{ status progress failureReason renditions { quality } } }"
)


async def _subscribe(socket: GraphQLClient, op_id: str, video_id: str) -> dict[str, Any]:
    """Start videoProcessing; its first message (an event, or the error that refused it)."""
    payload = {"query": PROCESSING, "variables": {"id": video_id}}
    await socket.conn.send(json.dumps({"id": op_id, "type": "subscribe", "payload": payload}))
    while (message := await socket.next_message()).get("id") != op_id:
        pass  # the end of an earlier, refused operation
    return message


def _event(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "next" and "errors" not in message["payload"], message
    data: dict[str, Any] = message["payload"]["data"]["videoProcessing"]
    return data


def _error_code(message: dict[str, Any]) -> str:
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    code: str = errors[0]["extensions"]["code"]
    return code


# arq 0.28 closes its pool with redis-py's deprecated close(): not ours to fix.
@pytest.mark.filterwarnings("ignore:Call to deprecated close:DeprecationWarning")
async def test_an_arq_workers_progress_reaches_the_uploader_through_redis(
    settings: Settings, tmp_path: Path
) -> None:
    production = settings.model_copy(
        update={"redis_url": REDIS_URL, "transcode_queue": f"cowatch-test:{uuid.uuid4().hex}"}
    )
    clip = make_clip(tmp_path / "c.mp4", 640, 360, seconds=2).read_bytes()
    async with live_server(production) as server, httpx.AsyncClient(base_url=server.url) as http:
        assert isinstance(server.services.queue, ArqQueue)
        account = await make_user(server.services)
        video_id = (await rest_upload(http, account, clip)).json()["id"]
        async with graphql_client(server.ws_url, account.token) as socket:
            events = [_event(await _subscribe(socket, "p", video_id))]
            assert events[0]["status"] == "PROCESSING"
            worker = build_worker(production, burst=True, poll_delay=0, handle_signals=False)
            try:
                await worker.main()  # another Redis client: its events travel through Redis
            finally:
                await worker.close()
            while (message := await socket.next_message())["type"] != "complete":
                events.append(_event(message))
    assert events[-1] == {
        "status": "TRANSCODED", "progress": 100, "failureReason": None,
        "renditions": [{"quality": "240p"}],
    }  # fmt: skip
    assert len(events) > 2  # progress in between, not only the start and the end
    assert all(e["status"] == "PROCESSING" for e in events[:-1])
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)


async def test_only_the_uploader_subscribes_and_at_most_the_cap_at_once(
    settings: Settings,
) -> None:
    settings = settings.model_copy(update={"max_processing_subscriptions_per_user": 2})
    async with live_server(settings) as server:
        owner, other = await make_user(server.services), await make_user(server.services)
        (video,) = await make_videos(server.services, owner.user, 1, status=VideoStatus.PROCESSING)
        async with graphql_client(server.ws_url, other.token) as socket:
            assert _error_code(await _subscribe(socket, "x", video.id)) == "FORBIDDEN"
        try:  # a signed-out socket is refused (4403) or its subscription is
            async with graphql_client(server.ws_url, None) as socket:
                assert _error_code(await _subscribe(socket, "x", video.id)) == "UNAUTHENTICATED"
        except ConnectionClosedError as refused:
            assert refused.rcvd is not None and refused.rcvd.code == 4403
        cap = server.services.processing_subscriptions
        async with graphql_client(server.ws_url, owner.token) as second:
            async with graphql_client(server.ws_url, owner.token) as first:
                assert _event(await _subscribe(first, "a", video.id))["progress"] == 0
                assert _event(await _subscribe(second, "b", video.id))["progress"] == 0
                assert _error_code(await _subscribe(second, "c", video.id)) == "RATE_LIMITED"
            deadline = time.monotonic() + 15
            while cap.count(owner.user.id) > 1:  # the closed socket's subscription ends
                assert time.monotonic() < deadline, "the closed socket kept its subscription"
                await asyncio.sleep(0.01)  # the server's cleanup has no event to await
            assert _event(await _subscribe(second, "d", video.id))["progress"] == 0


async def test_progress_reaches_every_subscriber_with_no_database_statement(
    settings: Settings,
) -> None:
    subscribers, steps = 20, 5
    settings = settings.model_copy(update={"max_processing_subscriptions_per_user": subscribers})
    async with live_server(settings) as server:
        services = server.services
        owner = await make_user(services)
        (video,) = await make_videos(services, owner.user, 1, status=VideoStatus.PROCESSING)
        statements: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        async with graphql_client(server.ws_url, owner.token) as socket:
            for number in range(subscribers):
                assert _event(await _subscribe(socket, f"s{number}", video.id))["progress"] == 0
            event.listen(services.db.engine.sync_engine, "before_cursor_execute", record)
            try:
                for step in range(1, steps + 1):  # what a transcoder publishes
                    await services.bus.publish(
                        progress_event(video_id=video.id, version=step, status=video.status,
                                       progress=step * 10, failure_reason=None)
                    )  # fmt: skip
                seen = [_event(await socket.next_message()) for _ in range(subscribers * steps)]
            finally:
                event.remove(services.db.engine.sync_engine, "before_cursor_execute", record)
    assert sorted(e["progress"] for e in seen) == sorted(
        step * 10 for step in range(1, steps + 1) for _ in range(subscribers)
    )
    assert statements == []


async def test_processing_shape_and_missing_fields(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    (video,) = await make_videos(services, account.user, 1, status=VideoStatus.PROCESSING)
    details = (await client.get(f"/api/videos/{video.id}")).json()
    assert details["status"] == "PROCESSING"
    assert {"id", "title", "description", "creator", "status"} <= details.keys()
    assert "video_urls" not in details
    body = await gql(client, "query($id: ID!) { video(id: $id) { renditions { url } } }",
                     {"id": video.id})  # fmt: skip
    assert body["data"]["video"]["renditions"] == []

    clip = make_clip(tmp_path / "c.mp4", 320, 240).read_bytes()
    no_title = await rest_upload(client, account, clip, fields={"description": "x"})
    assert no_title.status_code == 400
    assert no_title.json()["error"]["message"] == "title: required"
    assert list((services.settings.data_dir / "uploads").iterdir()) == []
    no_file = await client.post(
        "/api/videos/upload", data={"title": "t"}, files={"other": ("a.txt", b"a", "text/plain")},
        headers=account.headers,
    )  # fmt: skip
    assert no_file.status_code == 400
    services.settings.max_duration_s = 0.5
    too_long = await rest_upload(client, account, clip)
    assert too_long.status_code == 400
    assert too_long.json()["error"]["message"] == "file: the video lasts 1 s; the limit is 0 s"
    wide = make_clip(tmp_path / "wide.mp4", 7688, 16, seconds=0.2).read_bytes()
    too_wide = await rest_upload(client, account, wide)
    assert too_wide.status_code == 400
    assert "the limit is 7680x4320" in too_wide.json()["error"]["message"]
    assert await services.storage.keys() == []
    anonymous = await client.post(
        "/api/videos/upload", data={"title": "t"}, files={"file": ("c.mp4", clip, "video/mp4")}
    )
    assert anonymous.status_code == 403


async def test_video_processing_subscription_streams_until_done(
    settings: Settings, tmp_path: Path
) -> None:
    async with live_server(settings) as server:
        account = await make_user(server.services)
        clip = make_clip(tmp_path / "sub.mp4", 640, 360, seconds=2).read_bytes()
        async with httpx.AsyncClient(base_url=server.url) as client:
            video_id = (await rest_upload(client, account, clip)).json()["id"]
        events = []
        async with graphql_client(server.ws_url, account.token) as socket:
            subscribe = {"query": PROCESSING, "variables": {"id": video_id}}
            await socket.conn.send(
                json.dumps({"id": "1", "type": "subscribe", "payload": subscribe})
            )
            while (message := await socket.next_message())["type"] != "complete":
                assert message["type"] == "next", message
                events.append(message["payload"]["data"]["videoProcessing"])
    assert events[-1]["status"] == "TRANSCODED", events[-1]
    assert events[-1]["progress"] == 100
    assert events[-1]["renditions"] == [{"quality": "240p"}]
    assert all(event["status"] == "PROCESSING" for event in events[:-1])
    progress = [event["progress"] for event in events]
    assert progress == sorted(progress)
