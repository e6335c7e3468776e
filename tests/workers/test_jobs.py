"""The transcode job's failure path: only the video's own prefix is listed and cleaned, and no
directory is listed on the event loop (issue 10, item 9: a failure walked the whole media
directory there). The truncated upload goes to a real uvicorn over a socket."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import boto3
import httpx
import pytest

from config import Settings
from models import VideoStatus
from storage.keys import source_key
from storage.local import LocalStorage
from tests.factories import make_user
from tests.live import LiveServer, live_server
from tests.media import (
    aiter_chunks,
    create_bucket,
    make_clip,
    moto_endpoint,
    s3_settings,
    scanned_directories,
    wait_for_status,
)
from tests.resolvers.test_uploads import rest_upload

__all__ = ["moto_endpoint"]
OTHER_VIDEOS = 50


@pytest.fixture(params=["local", "s3"])
async def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.param == "local":
        return settings
    on_s3 = s3_settings(settings, request.getfixturevalue("moto_endpoint"))
    await create_bucket(on_s3)
    return on_s3


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[LiveServer]:
    """A real uvicorn on a loopback port, in this event loop (its thread is the loop's)."""
    async with live_server(settings) as running:
        yield running


async def test_a_failed_transcode_cleans_its_own_prefix_without_listing_the_store(
    server: LiveServer, tmp_path: Path
) -> None:
    services = server.services
    storage = services.storage
    others = [
        f"videos/{i:08d}-0000-4000-8000-000000000000/{name}"
        for i in range(OTHER_VIDEOS)
        for name in ("source", "240p.mp4", "thumbnail.jpg")
    ]
    for key in others:
        await storage.put_stream(key, aiter_chunks(b"x", 1))
    account = await make_user(services)
    clip = make_clip(tmp_path / "whole.mp4", 320, 240, seconds=2).read_bytes()

    loop_thread = threading.get_ident()
    with scanned_directories() as scans:
        async with httpx.AsyncClient(base_url=server.url) as client:
            response = await rest_upload(client, account, clip[: len(clip) // 2])
        assert response.status_code == 202, response.text
        video = await wait_for_status(services, response.json()["id"])
    assert video.status == VideoStatus.FAILED
    assert "truncated or corrupt" in (video.failure_reason or "")
    assert sorted(await storage.keys()) == sorted([*others, source_key(video.id)])
    if isinstance(storage, LocalStorage):
        in_store = [Path(p) for p in scans.paths if Path(p).is_relative_to(storage.root)]
        own = storage.root / "videos" / video.id
        assert in_store and all(path.is_relative_to(own) for path in in_store), in_store
    # boto reads its bundled API models once, when the first client is made: not ours.
    scanned = zip(scans.paths, scans.order, strict=True)
    ours = [
        (p, t) for p, t in scanned if not Path(p).is_relative_to(Path(boto3.__file__).parents[1])
    ]
    on_loop = [path for path, thread in ours if thread == loop_thread]
    assert not on_loop, on_loop
