"""Local-disk storage for the embedded mode; the app serves it under /media."""

from __future__ import annotations

from pathlib import Path


class LocalStorage:
    def __init__(self, root: str | Path, *, public_url: str) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.public_url = public_url.rstrip("/")

    async def url(self, key: str) -> str:
        return f"{self.public_url}/media/{key}"

    async def ping(self) -> None:
        if not self.root.is_dir():
            raise OSError(f"storage root {self.root} is missing")

    async def close(self) -> None:
        return None
