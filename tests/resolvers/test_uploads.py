"""Uploads through REST and GraphQL, on local disk and on S3 (moto), transcoded in-process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from config import Settings
from models import VideoStatus
from resolvers.services import Services
from tests.factories import Account, error_code, make_user
from tests.media import (
    create_bucket,
    decoded_height,
    fetch,
    make_clip,
    make_jpeg,
    moto_endpoint,
    row_count,
    s3_settings,
    staged_files,
    wait_for_status,
)

__all__ = ["moto_endpoint"]

UPLOAD_MUTATION = (
    "mutation($file: Upload!, $title: String!, $category: String) "
    "{ uploadVideo(file: $file, title: $title, category: $category) { id title status } }"
)
VIDEO_QUERY = (
    "query($id: ID!) { video(id: $id) { status progress duration width height thumbnailUrl "
    "failureReason renditions { quality url width height } } }"
)


@pytest.fixture(params=["local", "s3"])
async def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """The conftest settings, on local disk or on a fresh bucket of moto's S3 server."""
    if request.param == "local":
        return settings
    on_s3 = s3_settings(settings, request.getfixturevalue("moto_endpoint"))
    await create_bucket(on_s3)
    return on_s3


async def rest_upload(
    client: httpx.AsyncClient,
    account: Account,
    data: bytes,
    fields: dict[str, str] | None = None,
    filename: str = "clip.mp4",
) -> httpx.Response:
    form = {"title": "A clip", "description": "generated", "category": "tests"}
    return await client.post(
        "/api/videos/upload",
        data=form if fields is None else fields,
        files={"file": (filename, data, "video/mp4")},
        headers=account.headers,
    )


async def graphql_upload(
    client: httpx.AsyncClient,
    account: Account,
    data: bytes,
    title: str = "A clip",
    status: int = 200,
) -> dict[str, Any]:
    """The GraphQL multipart request spec: operations, map, then the file part."""
    operations = {
        "query": UPLOAD_MUTATION,
        "variables": {"file": None, "title": title, "category": "tests"},
    }
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("clip.mp4", data, "video/mp4")},
        headers=account.headers,
    )
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


async def assert_nothing_left(services: Services) -> None:
    assert await row_count(services) == 0
    assert await services.storage.keys() == []
    assert await staged_files(services.settings) == []


async def test_rest_upload_of_720p_gets_three_playable_renditions(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    clip = make_clip(tmp_path / "720.mp4", 1280, 720).read_bytes()
    response = await rest_upload(client, account, clip)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["title"] == "A clip"
    assert body["processing_status"] == "PROCESSING"
    assert body["qualities"] == ["240p", "480p", "720p"]

    video = await wait_for_status(services, body["id"])
    assert video.status == VideoStatus.TRANSCODED, video.failure_reason
    assert (video.width, video.height, video.progress) == (1280, 720, 100)
    assert video.duration == pytest.approx(1.0, abs=0.2)

    details = (await client.get(f"/api/videos/{body['id']}")).json()
    assert details["status"] == "TRANSCODED"
    assert details["creator"] == {"id": account.user.id, "username": account.user.username}
    assert {"current_timestamp", "view_count", "description"} <= details.keys()
    assert list(details["video_urls"]) == ["240p", "480p", "720p"]
    for quality, url in details["video_urls"].items():
        media = await fetch(client, url)
        assert media.status_code == 200
        height, has_audio = decoded_height(media.content, tmp_path / f"{quality}.mp4")
        assert height == int(quality.removesuffix("p"))
        assert has_audio
    thumbnail = await fetch(client, details["thumbnail_url"])
    assert thumbnail.content.startswith(b"\xff\xd8\xff")


async def test_graphql_upload_of_360p_gets_only_240p(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    clip = make_clip(tmp_path / "360.mp4", 640, 360, audio=False).read_bytes()
    body = await graphql_upload(client, account, clip)
    uploaded = body["data"]["uploadVideo"]
    assert uploaded["status"] == "PROCESSING"
    await wait_for_status(services, uploaded["id"])

    response = await client.post(
        "/graphql", json={"query": VIDEO_QUERY, "variables": {"id": uploaded["id"]}}
    )
    video = response.json()["data"]["video"]
    assert video["status"] == "TRANSCODED", video["failureReason"]
    assert (video["width"], video["height"], video["progress"]) == (640, 360, 100)
    assert [(r["quality"], r["width"], r["height"]) for r in video["renditions"]] == [
        ("240p", 426, 240)
    ]
    media = await fetch(client, video["renditions"][0]["url"])
    assert decoded_height(media.content, tmp_path / "240p.mp4") == (240, False)
    assert (await fetch(client, video["thumbnailUrl"])).status_code == 200


async def test_a_file_that_is_not_a_video_is_refused_and_nothing_is_kept(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    refused = {
        "text": b"just some text, not a video\n" * 100,
        "jpeg": make_jpeg(tmp_path / "still.jpg").read_bytes(),
        "empty": b"",
    }
    for kind, data in refused.items():
        response = await rest_upload(client, account, data)
        assert response.status_code == 400, (kind, response.text)
        error = response.json()["error"]
        assert error["code"] == "BAD_USER_INPUT"
        assert error["message"].startswith("file: "), kind
        body = await graphql_upload(client, account, data)
        assert error_code(body) == "BAD_USER_INPUT", kind
        assert body["errors"][0]["message"].startswith("file: "), kind
    await assert_nothing_left(services)


async def test_too_large_and_over_quota_are_413(
    client: httpx.AsyncClient, services: Services, tmp_path: Path
) -> None:
    account = await make_user(services)
    clip = make_clip(tmp_path / "clip.mp4", 320, 240).read_bytes()
    services.settings.max_upload_bytes = len(clip) - 1
    response = await rest_upload(client, account, clip)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    too_large = await graphql_upload(client, account, clip, status=413)  # refused at intake
    assert error_code(too_large) == "PAYLOAD_TOO_LARGE"
    await assert_nothing_left(services)

    services.settings.max_upload_bytes = 1000  # declared far over: refused before it is read
    huge = clip + bytes(2 * 1024 * 1024)
    response = await rest_upload(client, account, huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    operations = {"query": UPLOAD_MUTATION, "variables": {"file": None, "title": "t"}}
    response = await client.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("clip.mp4", huge, "video/mp4")},
        headers=account.headers,
    )
    assert response.status_code == 413
    await assert_nothing_left(services)

    services.settings.max_upload_bytes = 10 * len(clip)
    services.settings.user_quota_bytes = len(clip) + len(clip) // 2
    assert (await rest_upload(client, account, clip)).status_code == 202
    second = await rest_upload(client, account, clip)
    assert second.status_code == 413
    assert second.json()["error"]["code"] == "QUOTA_EXCEEDED"
    assert error_code(await graphql_upload(client, account, clip)) == "QUOTA_EXCEEDED"
    assert await row_count(services) == 1
    assert await staged_files(services.settings) == []
