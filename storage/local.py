"""Local-disk storage for the embedded mode; the app serves it under /media."""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import anyio

from storage.base import CHUNK, ObjectNotFound, check_key
from storage.keys import check_published


class LocalStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _existing(self, key: str) -> Path:
        path = self.path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return path

    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        written = 0
        try:
            async with await anyio.open_file(partial, "wb") as out:
                async for chunk in chunks:
                    await out.write(chunk)
                    written += len(chunk)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return written

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> int:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
        try:
            await anyio.to_thread.run_sync(shutil.copyfile, path, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target.stat().st_size

    async def stream(
        self, key: str, *, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        path = self._existing(key)
        remaining = (path.stat().st_size if end is None else end + 1) - start
        async with await anyio.open_file(path, "rb") as source:
            await source.seek(start)
            while remaining > 0:
                chunk = await source.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> bytes:
        return b"".join([chunk async for chunk in self.stream(key, start=start, end=end)])

    async def size(self, key: str) -> int:
        return self._existing(key).stat().st_size

    @asynccontextmanager
    async def local_copy(self, key: str, *, directory: Path | None = None) -> AsyncIterator[Path]:
        yield self._existing(key)

    def _walk(self, prefix: str) -> list[str]:
        """Keys under `prefix`, reading only the directory the prefix names (never the root
        for a video's prefix): a store of many videos is not walked to find one video's files."""
        head = prefix.rpartition("/")[0]
        base = self.root / check_key(head) if head else self.root
        found = []
        for directory, _, files in os.walk(base):
            for name in files:
                key = (Path(directory) / name).relative_to(self.root).as_posix()
                if key.startswith(prefix) and not name.startswith("."):
                    found.append(key)
        return sorted(found)

    async def keys(self, prefix: str = "") -> list[str]:
        return await anyio.to_thread.run_sync(self._walk, prefix)

    async def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    async def delete_prefix(self, prefix: str) -> None:
        if not prefix.endswith("/"):
            for key in await self.keys(prefix):
                await self.delete(key)
            return
        directory = self.root / check_key(prefix.rstrip("/"))
        await anyio.to_thread.run_sync(partial(shutil.rmtree, directory, ignore_errors=True))

    async def url(self, key: str) -> str:
        """The path of published media, served by rest_compat/media.py (ValueError otherwise);
        faces put the public origin in front (resolvers/urls.py), the app knows where it is."""
        return self.url_now(key)

    def url_now(self, key: str) -> str:
        return _media_path(key)

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"storage root {self.root} is missing")

    async def close(self) -> None:
        return None


@functools.lru_cache(maxsize=65536)
def _media_path(key: str) -> str:
    """The served path of a published key (checked once per key: reads ask for the same keys
    on every page; a refused key raises every time, exceptions are not cached)."""
    return f"/media/{check_published(check_key(key))}"
