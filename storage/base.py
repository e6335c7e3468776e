"""The storage interface and the factory that picks an implementation by URL scheme."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from config import Settings


class Storage(Protocol):
    async def url(self, key: str) -> str:
        """An address a browser can fetch (and seek in, with Range requests)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def open_storage(settings: Settings) -> Storage:
    url = settings.effective_storage_url
    if url.startswith("file://"):
        from storage.local import LocalStorage

        return LocalStorage(url.removeprefix("file://"), public_url=settings.public_url)
    raise ValueError(f"unsupported COWATCH_STORAGE_URL scheme: {url}")
