"""Transcoding progress on the realtime bus, published by whoever transcodes.

The topic is `processing:<video id>`; its version is the row's `processing_version`, raised by
the same statement that changes the status or progress, so it only grows. The in-process queue
publishes through the server's bus; an arq worker, which serves no sockets, through a
publish-only connection to the same Redis (`BackendPublisher`).
"""

from __future__ import annotations

import logging
from typing import Any

from models import VideoStatus
from realtime.backends import open_backend
from realtime.bus import CHANNEL_PREFIX
from realtime.events import Event, Publisher, topic

log = logging.getLogger("cowatch.progress")
KIND = "processing"


def processing_topic(video_id: str) -> str:
    return topic(KIND, video_id)


def progress_event(
    *,
    video_id: str,
    version: int,
    status: VideoStatus,
    progress: int,
    failure_reason: str | None,
) -> Event:
    data: dict[str, Any] = {
        "status": VideoStatus(status).value,
        "progress": progress,
        "failure_reason": failure_reason,
    }
    return Event(topic=processing_topic(video_id), version=version, kind=KIND, data=data)


async def announce(publisher: Publisher | None, event: Event) -> None:
    """Publish, never failing the transcode: a listener that missed it catches up from the row."""
    if publisher is None:
        return
    try:
        await publisher.publish(event)
    except Exception as exc:
        log.warning("progress of %s not published (%r)", event.topic, exc)


class BackendPublisher:
    """Publishes to every server's bus without subscribing to anything (an arq worker's)."""

    def __init__(self, url: str) -> None:
        self._backend = open_backend(url)

    async def start(self) -> None:
        await self._backend.connect()

    async def publish(self, event: Event) -> None:
        await self._backend.publish(CHANNEL_PREFIX + event.topic, event.to_json())

    async def close(self) -> None:
        await self._backend.disconnect()
