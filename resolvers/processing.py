"""Transcoding progress as bus events: whoever transcodes publishes, the owner's
subscriptions listen (no polling), at most a few at once per user."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from models import User, Video, VideoStatus
from models.db import Database
from realtime.bus import Bus
from realtime.events import Event, Head
from resolvers.errors import NotFound, RateLimited
from resolvers.permissions import require_owner, require_user
from resolvers.videos import find_video
from workers.progress import processing_topic, progress_event

#: a refused subscription may try again this many seconds later
RETRY_AFTER_S = 5


def _state(video: Video) -> Event:
    return progress_event(
        video_id=video.id,
        version=video.processing_version,
        status=video.status,
        progress=video.progress,
        failure_reason=video.failure_reason,
    )


class ProcessingStates:
    """The truth of `processing:<id>` topics: the videos row (a Source for the bus)."""

    stateful: ClassVar[bool] = True

    def __init__(self, db: Database) -> None:
        self._db = db

    async def head(self, name: str) -> Head:
        video = await find_video(db=self._db, video_id=name.partition(":")[2])
        if video is None:
            return Head(version=None)
        return Head(version=video.processing_version, state=_state(video))

    async def since(self, name: str, version: int | None) -> list[Event]:
        video = await find_video(db=self._db, video_id=name.partition(":")[2])
        if video is None or (version is not None and video.processing_version <= version):
            return []
        return [_state(video)]


class SubscriptionCap:
    """Open progress subscriptions per user in this process, at most `limit` each."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def count(self, user_id: str) -> int:
        return self._open[user_id]

    @contextmanager
    def hold(self, user_id: str) -> Iterator[None]:
        if self._open[user_id] >= self.limit:
            raise RateLimited(
                f"at most {self.limit} progress subscriptions at once per user",
                retry_after=RETRY_AFTER_S,
            )
        self._open[user_id] += 1
        try:
            yield
        finally:
            self._open[user_id] -= 1
            if not self._open[user_id]:
                del self._open[user_id]


def _apply(video: Video, data: dict[str, Any], version: int) -> None:
    video.status = VideoStatus(data["status"])
    video.progress = int(data["progress"])
    video.failure_reason = data.get("failure_reason")
    video.processing_version = version


async def processing_updates(
    *, db: Database, bus: Bus, cap: SubscriptionCap, viewer: User | None, video_id: str
) -> AsyncIterator[Video]:
    """The owner's video now, then at every status or progress change, until it leaves
    PROCESSING; FORBIDDEN for anyone else. Listens on the bus: no database polling."""
    user = require_user(viewer)
    video = await find_video(db=db, video_id=video_id)
    if video is None:
        raise NotFound("video not found")
    require_owner(user, video.owner_id, what="video")
    with cap.hold(user.id):
        yield video
        if video.status != VideoStatus.PROCESSING:
            return
        async for event in bus.watch(processing_topic(video_id)):
            if event.version is None or event.version <= video.processing_version:
                continue
            _apply(video, event.data, event.version)
            if video.status != VideoStatus.PROCESSING:
                # The final row: duration and picture size come with TRANSCODED.
                video = await find_video(db=db, video_id=video_id) or video
            yield video
            if video.status != VideoStatus.PROCESSING:
                return
