"""Who may watch a video: one answer for the pages, both faces and the media route."""

from __future__ import annotations

from models import Video, VideoStatus


def may_watch(*, video: Video, viewer_id: str | None) -> bool:
    """Whether `viewer_id` (None when signed out) may play `video` and fetch its media.

    Only a TRANSCODED video has anything to watch: while PROCESSING or after FAILED its media
    are never served, to the owner neither. Today every transcoded video is public; when videos
    get a visibility (PUBLIC, UNLISTED, PRIVATE), a PRIVATE one answers True for its owner only,
    here, and the media route already asks again with the signed-in viewer when the signed-out
    answer is no.
    """
    return video.status == VideoStatus.TRANSCODED
