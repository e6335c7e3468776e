"""Local storage reads only the directories a prefix names, in a worker thread."""

from __future__ import annotations

import threading
from pathlib import Path

from storage.local import LocalStorage
from tests.media import aiter_chunks, scanned_directories


async def test_a_video_prefix_is_listed_and_deleted_without_walking_the_store(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "media")
    for video in ("a", "b", "c"):
        for name in ("source", "240p.mp4", "thumbnail.jpg"):
            await storage.put_stream(f"videos/{video}/{name}", aiter_chunks(b"x", 1))
    await storage.put_stream("videos/a/hls/seg1.m4s", aiter_chunks(b"x", 1))
    own = storage.root / "videos" / "a"
    loop_thread = threading.get_ident()

    with scanned_directories() as listing:
        keys = await storage.keys("videos/a/")
    assert keys == [
        "videos/a/240p.mp4", "videos/a/hls/seg1.m4s", "videos/a/source", "videos/a/thumbnail.jpg"
    ]  # fmt: skip
    assert listing.paths and all(Path(p).is_relative_to(own) for p in listing.paths), listing
    assert loop_thread not in listing.threads

    with scanned_directories() as deleting:
        await storage.delete_prefix("videos/a/")
    assert deleting.paths and all(Path(p).is_relative_to(own) for p in deleting.paths), deleting
    assert loop_thread not in deleting.threads
    assert not own.exists()
    assert await storage.keys("videos/") == [
        f"videos/{video}/{name}" for video in ("b", "c") for name in
        ("240p.mp4", "source", "thumbnail.jpg")
    ]  # fmt: skip
    assert await storage.keys("videos/missing/") == []
