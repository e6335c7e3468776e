"""The storage interface and the factory that picks an implementation by URL scheme."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from config import Settings

CHUNK = 1024 * 1024
KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class ObjectNotFound(KeyError):
    pass


def check_key(key: str) -> str:
    """Keys are ours, but a key that could climb out of the store is refused all the same."""
    if not KEY_RE.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid storage key: {key!r}")
    return key


class Storage(Protocol):
    async def put_stream(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> int:
        """Store the chunks under `key` without holding them all in memory; the byte count."""
        ...

    async def put_file(self, key: str, path: Path, *, content_type: str | None = None) -> int: ...

    def stream(self, key: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Bytes `start`..`end` (inclusive, like HTTP Range) in chunks."""
        ...

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> bytes: ...

    async def size(self, key: str) -> int: ...

    def local_copy(
        self, key: str, *, directory: Path | None = None
    ) -> AbstractAsyncContextManager[Path]:
        """A local file holding the object while the context lasts (downloads go in `directory`)."""
        ...

    async def keys(self, prefix: str = "") -> list[str]: ...

    async def delete(self, key: str) -> None: ...

    async def delete_prefix(self, prefix: str) -> None: ...

    async def url(self, key: str) -> str:
        """An address a browser can fetch (and seek in, with Range requests): absolute (S3), or
        a path on this server (local disk) that faces join to the public origin with
        `resolvers.urls.absolute`; published media only (storage/keys.py), ValueError otherwise."""
        ...

    def url_now(self, key: str) -> str | None:
        """The same address when making it needs no I/O (local disk); None otherwise."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def open_storage(settings: Settings) -> Storage:
    url = settings.effective_storage_url
    if url.startswith("file://"):
        from storage.local import LocalStorage

        return LocalStorage(url.removeprefix("file://"))
    if url.startswith("s3://"):
        from storage.s3 import S3Storage

        return S3Storage.from_settings(settings)
    raise ValueError(f"unsupported COWATCH_STORAGE_URL scheme: {url}")
