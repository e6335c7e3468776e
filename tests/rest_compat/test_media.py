"""Media over a real server: sources never leave, renditions carry no camera metadata, and
nothing of a video that is not watchable is served; Range requests keep working."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from sqlmodel import col, update

from config import Settings
from models import Video, VideoStatus
from storage.keys import rendition_key, source_key, thumbnail_key
from storage.local import LocalStorage
from tests.factories import gql, make_user, make_videos
from tests.live import live_server
from tests.media import (
    CAMERA_METADATA,
    aiter_chunks,
    create_bucket,
    make_clip,
    media_metadata,
    moto_endpoint,
    s3_settings,
    wait_for_status,
)
from tests.resolvers.test_uploads import rest_upload

__all__ = ["moto_endpoint"]
GPS = "48.8584"
VIDEO_MEDIA = "query($id: ID!) { video(id: $id) { thumbnailUrl renditions { url } } }"


@pytest.fixture(params=["local", "s3"])
async def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    if request.param == "local":
        return settings
    on_s3 = s3_settings(settings, request.getfixturevalue("moto_endpoint"))
    await create_bucket(on_s3)
    return on_s3


def on_server(server_url: str, url: str) -> str:
    """Local media URLs carry the configured public origin; ask the live server instead."""
    parts = urlsplit(url)
    if parts.path.startswith("/media/"):
        return f"{server_url}{parts.path}"
    return url  # presigned, on the S3 endpoint


async def test_renditions_and_thumbnail_carry_no_camera_metadata_and_sources_never_leave(
    settings: Settings, tmp_path: Path
) -> None:
    source = make_clip(tmp_path / "phone.mp4", 640, 360, metadata=CAMERA_METADATA)
    assert GPS in media_metadata(source)["location"]  # the attack's premise: the source has it
    async with live_server(settings) as server, httpx.AsyncClient() as http:
        services = server.services
        account = await make_user(services)
        http.base_url = httpx.URL(server.url)
        response = await rest_upload(http, account, source.read_bytes())
        assert response.status_code == 202, response.text
        video_id = response.json()["id"]
        assert (await wait_for_status(services, video_id)).status == VideoStatus.TRANSCODED
        details = (await http.get(f"/api/videos/{video_id}")).json()
        urls = {**details["video_urls"], "thumbnail": details["thumbnail_url"]}
        assert list(urls) == ["240p", "thumbnail"]
        for name, url in urls.items():
            fetched = await http.get(on_server(server.url, url))
            assert fetched.status_code == 200, (name, fetched.text)
            path = tmp_path / f"out-{name}"
            path.write_bytes(fetched.content)
            found = media_metadata(path)
            assert not set(found) & (set(CAMERA_METADATA) - {"location"}), (name, found)
            assert not any(GPS in value for value in found.values()), (name, found)
            assert GPS.encode() not in fetched.content
            assert "location" not in found and "creation_time" not in found

        ranged = await http.get(
            on_server(server.url, urls["240p"]), headers={"Range": "bytes=100-199"}
        )
        assert ranged.status_code == 206
        assert ranged.headers["content-range"].startswith("bytes 100-199/")
        assert len(ranged.content) == 100

        with pytest.raises(ValueError, match="never served"):
            await services.storage.url(source_key(video_id))
        if isinstance(services.storage, LocalStorage):
            for name in ("source", ".source.part", "source.mp4", "thumbnail.jpg.part"):
                probe = await http.get(f"/media/videos/{video_id}/{name}")
                assert probe.status_code == 404, name
            escape = await http.get(f"/media/videos/{video_id}/..%2F..%2Fcowatch.db")
            assert escape.status_code == 404


async def test_media_of_videos_not_transcoded_are_served_to_nobody(
    settings: Settings,
) -> None:
    async with live_server(settings) as server, httpx.AsyncClient() as http:
        services = server.services
        http.base_url = httpx.URL(server.url)
        owner = await make_user(services)
        processing, failed = await make_videos(services, owner.user, 2)
        for video, status in ((processing, VideoStatus.PROCESSING), (failed, VideoStatus.FAILED)):
            async with services.db.session() as session:
                await session.exec(
                    update(Video)
                    .where(col(Video.id) == video.id)
                    .values(status=status, thumbnail_key=thumbnail_key(video.id))
                )
                await session.commit()
            # What an interrupted run can leave behind, and the source itself.
            for key in (source_key(video.id), rendition_key(video.id, "240p"),
                        thumbnail_key(video.id)):  # fmt: skip
                await services.storage.put_stream(key, aiter_chunks(b"media bytes", 4))

        for video in (processing, failed):
            details = (await http.get(f"/api/videos/{video.id}")).json()
            assert "video_urls" not in details and details.get("thumbnail_url") is None
            body = await gql(http, VIDEO_MEDIA, {"id": video.id})
            assert body["data"]["video"]["renditions"] == []
            if not isinstance(services.storage, LocalStorage):
                continue
            for name in ("source", "240p.mp4", "thumbnail.jpg"):
                for headers in ({}, owner.headers):
                    got = await http.get(f"/media/videos/{video.id}/{name}", headers=headers)
                    assert got.status_code == 404, (video.status, name, headers)

        if isinstance(services.storage, LocalStorage):
            # The same files become servable (the source excepted) once the video is watchable.
            async with services.db.session() as session:
                await session.exec(
                    update(Video)
                    .where(col(Video.id) == processing.id)
                    .values(status=VideoStatus.TRANSCODED)
                )
                await session.commit()
            served = await http.get(f"/media/videos/{processing.id}/240p.mp4")
            assert served.status_code == 200
            assert served.content == b"media bytes"
            assert served.headers["accept-ranges"] == "bytes"
            assert served.headers["cache-control"] == "private"
            part = await http.get(
                f"/media/videos/{processing.id}/240p.mp4", headers={"Range": "bytes=6-10"}
            )
            assert (part.status_code, part.content) == (206, b"bytes")
            source = await http.get(f"/media/videos/{processing.id}/source")
            assert source.status_code == 404
