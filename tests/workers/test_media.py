"""Transcoding cost on a real server: every frame's size is checked, and the pixel budget is
applied when the upload is probed and again while it is decoded; local disk and S3."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from config import Settings
from models import VideoStatus
from storage.keys import source_key
from tests.factories import make_user
from tests.live import live_server
from tests.media import (
    create_bucket,
    make_clip,
    make_size_switch_clip,
    moto_endpoint,
    s3_settings,
    wait_for_status,
)
from tests.resolvers.test_uploads import rest_upload

__all__ = ["moto_endpoint"]


@pytest.fixture(params=["local", "s3"])
async def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.param == "local":
        return settings
    on_s3 = s3_settings(settings, request.getfixturevalue("moto_endpoint"))
    await create_bucket(on_s3)
    return on_s3


async def _upload_and_wait(
    settings: Settings, data: bytes, expected_status: int = 202
) -> tuple[str, str | None, list[str]]:
    """Upload a clip to a live server; (status, failure reason, storage keys) once done."""
    async with live_server(settings) as server, httpx.AsyncClient(base_url=server.url) as http:
        account = await make_user(server.services)
        response = await rest_upload(http, account, data)
        assert response.status_code == expected_status, response.text
        if expected_status != 202:
            return "", response.json()["error"]["message"], await server.services.storage.keys()
        video = await wait_for_status(server.services, response.json()["id"])
        return video.status, video.failure_reason, await server.services.storage.keys()


async def test_a_stream_that_grows_past_the_size_limit_midway_fails_and_leaves_no_renditions(
    settings: Settings, tmp_path: Path
) -> None:
    clip = make_size_switch_clip(tmp_path / "switch.ts", (320, 240), (7696, 64)).read_bytes()
    status, reason, keys = await _upload_and_wait(settings, clip)  # probed as 320x240: accepted
    assert status == VideoStatus.FAILED
    assert reason == "the video changes size mid-stream to 7696x64; the limit is 7680x4320"
    assert len(keys) == 1 and keys[0].endswith("/source"), keys
    assert keys == [source_key(keys[0].split("/")[1])]


async def test_the_pixel_budget_is_checked_at_probe_time(
    settings: Settings, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "c.mp4", 320, 240, fps=10).read_bytes()  # 768,000 pixels
    _, message, keys = await _upload_and_wait(
        settings.model_copy(update={"transcode_max_pixels": 700_000}), clip, expected_status=400
    )
    assert message == (
        "file: the video is too costly to transcode: 320x240 at 10 frames/s for 1 s "
        "is 7.68e+05 pixels; the limit is 7e+05"
    )
    assert keys == []


async def test_the_pixel_budget_is_enforced_while_decoding(
    settings: Settings, tmp_path: Path
) -> None:
    # Declares 320x240 at 10 frames/s for 2 s (1.5 million pixels), decodes 10 million.
    clip = make_size_switch_clip(tmp_path / "grows.ts", (320, 240), (1280, 720)).read_bytes()
    status, reason, keys = await _upload_and_wait(
        settings.model_copy(update={"transcode_max_pixels": 2_000_000}), clip
    )
    assert status == VideoStatus.FAILED
    assert reason == (
        "the video decodes to more pixels than it declares: over the budget of 2e+06 "
        "(width x height x frames)"
    )
    assert len(keys) == 1 and keys[0].endswith("/source"), keys
