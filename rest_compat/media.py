"""GET /media/...: a local store's published media (renditions, thumbnails), Range included.

Only names the transcoder publishes are served (storage/keys.py), and only while the viewer
may watch the video (resolvers/access.py); the uploaded source never is. An S3 store has no
route here: its media URLs are presigned, and sources are never presigned.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from resolvers import access, videos
from resolvers.errors import InvalidToken
from rest_compat.common import caller, services
from rest_compat.operations import operation
from storage.keys import published_video_id
from storage.local import LocalStorage

#: shared caches must not keep media whose access may change (a video made private, deleted)
CACHE_CONTROL = "private"


def _not_found() -> Response:
    return Response(status_code=404, headers={"Cache-Control": "no-store"})


async def _viewer_id(request: Request) -> str | None:
    try:
        viewer = await caller(request)
    except InvalidToken:
        return None  # media are fetched by players and <img>: no 401 dance, just not allowed
    return viewer.id if viewer else None


MEDIA_TYPES = ("video/mp4", "image/jpeg")


@operation(
    "a published rendition (NNNp.mp4) or thumbnail.jpg of a video the caller may watch",
    ok=(200, bytes),
    media_types=MEDIA_TYPES,
    also={
        206: (
            "the requested byte range (HTTP Range)",
            bytes,
            (*MEDIA_TYPES, "multipart/byteranges"),
        ),
        404: ("no such published file, or not the caller's to watch", None),
        416: ("the range lies outside the file; see Content-Range", None),
    },
)
async def media(request: Request) -> Response:
    key = f"videos/{request.path_params['video_id']}/{request.path_params['name']}"
    video_id = published_video_id(key)
    storage = services(request).storage
    if video_id is None or not isinstance(storage, LocalStorage):
        return _not_found()
    video = await videos.find_video(db=services(request).db, video_id=video_id)
    if video is None:
        return _not_found()
    # The viewer is looked up only when the answer for a signed-out viewer is no.
    if not access.may_watch(video=video, viewer_id=None) and not access.may_watch(
        video=video, viewer_id=await _viewer_id(request)
    ):
        return _not_found()
    path = storage.path(key)
    if not path.is_file():
        return _not_found()
    return FileResponse(path, headers={"Cache-Control": CACHE_CONTROL})


routes = [Route("/media/videos/{video_id}/{name}", media, methods=["GET", "HEAD"])]
