"""The storage interface on local disk and on moto's real S3 HTTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from config import Settings
from storage import Storage, open_storage
from storage.base import ObjectNotFound
from storage.s3 import PART_SIZE
from tests.media import aiter_chunks, create_bucket, moto_endpoint, s3_settings

__all__ = ["moto_endpoint"]


@pytest.fixture(params=["local", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, Storage]]:
    settings = Settings(data_dir=tmp_path / "data")
    if request.param == "s3":
        settings = s3_settings(settings, request.getfixturevalue("moto_endpoint"))
        await create_bucket(settings)
    storage = open_storage(settings)
    try:
        yield request.param, storage
    finally:
        await storage.close()


async def test_put_get_ranges_size_delete(store: tuple[str, Storage], tmp_path: Path) -> None:
    _, storage = store
    data = bytes(range(256)) * 1000
    assert await storage.put_stream("videos/a/source", aiter_chunks(data, 4096)) == len(data)
    assert await storage.size("videos/a/source") == len(data)
    assert await storage.get("videos/a/source") == data
    assert await storage.get("videos/a/source", start=10, end=19) == data[10:20]
    assert await storage.get("videos/a/source", start=len(data) - 5) == data[-5:]
    streamed = [chunk async for chunk in storage.stream("videos/a/source", start=1000)]
    assert b"".join(streamed) == data[1000:]

    file = tmp_path / "upload.bin"
    file.write_bytes(b"file contents")
    assert await storage.put_file("videos/a/240p.mp4", file) == 13
    assert await storage.put_file("videos/b/240p.mp4", file) == 13
    async with storage.local_copy("videos/a/240p.mp4") as copy:
        assert copy.read_bytes() == b"file contents"
    assert await storage.keys("videos/a/") == ["videos/a/240p.mp4", "videos/a/source"]

    await storage.delete("videos/a/240p.mp4")
    await storage.delete("videos/a/never-existed")
    assert await storage.keys("videos/a/") == ["videos/a/source"]
    await storage.delete_prefix("videos/a/")
    assert await storage.keys() == ["videos/b/240p.mp4"]
    with pytest.raises(ObjectNotFound):
        await storage.size("videos/a/source")
    with pytest.raises(ObjectNotFound):
        await storage.get("videos/a/source")
    await storage.ping()


async def test_large_objects_and_urls_serve_ranges(
    store: tuple[str, Storage], client: httpx.AsyncClient
) -> None:
    kind, storage = store
    data = b"0123456789abcdef" * ((PART_SIZE + 1024 * 1024) // 16)  # multipart on S3
    await storage.put_stream("videos/big/source", aiter_chunks(data, 256 * 1024))
    assert await storage.size("videos/big/source") == len(data)
    assert (
        await storage.get("videos/big/source", start=PART_SIZE - 8, end=PART_SIZE + 7)
        == (data[PART_SIZE - 8 : PART_SIZE + 8])
    )
    with pytest.raises(ValueError, match="never served"):
        await storage.url("videos/big/source")
    published = f"videos/{uuid.UUID(int=1)}/720p.mp4"
    await storage.put_stream(published, aiter_chunks(data, 1024 * 1024))
    url = await storage.url(published)
    if kind == "local":  # served by rest_compat/media.py: tests/rest_compat/test_media.py
        assert url == f"/media/{published}"  # the faces put the public origin in front
        return
    async with httpx.AsyncClient() as outside:
        response = await outside.get(url, headers={"Range": "bytes=16-31"})
    assert response.status_code == 206
    assert response.content == data[16:32]


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "", "a//b"])
async def test_keys_cannot_escape(store: tuple[str, Storage], key: str) -> None:
    _, storage = store
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.put_stream(key, aiter_chunks(b"x", 1))


def test_migrate_creates_the_s3_bucket(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cli import main

    bucket = f"s3://cowatch-migrate-{tmp_path.name.lower().replace('_', '-')[-20:]}"
    env = {
        "COWATCH_DATA_DIR": str(tmp_path / "data"),
        "COWATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        "COWATCH_STORAGE_URL": bucket,
        "COWATCH_S3_ENDPOINT_URL": moto_endpoint,
        "COWATCH_S3_ACCESS_KEY_ID": "testing",
        "COWATCH_S3_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["migrate"]) == 0
    assert main(["migrate"]) == 0  # a second run finds everything in place

    async def ping() -> None:
        storage = open_storage(Settings())
        try:
            await storage.ping()
        finally:
            await storage.close()

    asyncio.run(ping())
