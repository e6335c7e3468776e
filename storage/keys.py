"""Where a video's objects live, and which of them may ever leave the store.

Everything of a video sits under its own prefix, so removing it never lists other videos.
Only what the transcoder publishes (renditions, the thumbnail) is ever served or presigned;
the uploaded source keeps the camera's metadata (GPS, creation time) and never leaves.
"""

from __future__ import annotations

import re

#: the file names under a video's prefix that players and pages may fetch
PUBLISHED_NAME = re.compile(r"^(?:\d{3,4}p\.mp4|thumbnail\.jpg)$")
_VIDEO_KEY = re.compile(r"^videos/([0-9a-f-]{36})/([^/]+)$")


def video_prefix(video_id: str) -> str:
    return f"videos/{video_id}/"


def source_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}source"


def rendition_key(video_id: str, quality: str) -> str:
    return f"{video_prefix(video_id)}{quality}.mp4"


def thumbnail_key(video_id: str) -> str:
    return f"{video_prefix(video_id)}thumbnail.jpg"


def published_video_id(key: str) -> str | None:
    """The video a published key belongs to; None for anything else (a source above all)."""
    match = _VIDEO_KEY.match(key)
    if match is None or not PUBLISHED_NAME.match(match.group(2)):
        return None
    return match.group(1)


def check_published(key: str) -> str:
    """Refuse to hand out an address for a key that is not published media."""
    if published_video_id(key) is None:
        raise ValueError(f"not published media, never served: {key!r}")
    return key
