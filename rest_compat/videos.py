"""GET /api/videos/feed, POST /api/videos/upload, GET /api/videos/{id}."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edge.multipart import read_form
from models import User, VideoStatus
from models.values import FeedItemValue, UserValue, VideoValue
from resolvers import uploads, urls, videos
from rest_compat.common import int_param, media_url, public_base, services
from rest_compat.operations import JSON, Shape, operation, requires_user

# Feed and details render plain dicts of exactly these shapes (the hot paths: no model
# instances); tests/rest_compat/test_videos.py validates what they render against the models.


class FeedQuery(BaseModel):
    """Empty values (`?page=`, as HTML forms send them) mean the default."""

    page: Annotated[int, Field(ge=1, le=videos.MAX_PAGE)] | Literal[""] = Field(
        default=1, description="1-based page number."
    )
    limit: Annotated[int, Field(ge=1, le=videos.MAX_LIMIT)] | Literal[""] = Field(
        default=20, description="Videos per page."
    )
    category: str | SkipJsonSchema[None] = Field(
        default=None,
        description="Only this category (exact match).",
        json_schema_extra={"maxLength": videos.MAX_CATEGORY},
    )


class Creator(Shape):
    id: str = Field(description="The uploader's UUID.")
    username: str


class FeedItem(Shape):
    id: str = Field(description="The video's UUID.")
    title: str
    thumbnail_url: str | None = Field(description="A JPEG frame; null if there is none.")
    category: str | None
    creator: Creator
    view_count: int = Field(ge=0)
    duration: float | None = Field(description="Seconds; null if unknown.")
    created_at: datetime = Field(description="Upload time, UTC.")


class Feed(Shape):
    videos: list[FeedItem] = Field(description="At most `limit`, newest first.")
    total_pages: int = Field(ge=0, description="0 when nothing matches.")
    current_page: int = Field(ge=1)


class VideoBase(Shape):
    id: str = Field(description="The video's UUID.")
    title: str
    description: str = Field(description="May be empty.")
    category: str | None
    creator: Creator
    created_at: datetime = Field(description="Upload time, UTC.")


class VideoProcessing(VideoBase):
    status: Literal["PROCESSING"]
    progress: int = Field(ge=0, le=100, description="Transcoding progress, percent.")


class VideoTranscoded(VideoBase):
    status: Literal["TRANSCODED"]
    video_urls: dict[str, str] = Field(
        description='MP4 per quality ("240p", "480p", "720p"); HTTP Range requests work.'
    )
    thumbnail_url: str | None = Field(description="A JPEG frame; null if there is none.")
    duration: float | None = Field(description="Seconds.")
    current_timestamp: float = Field(ge=0, description="The shared playhead now, seconds.")
    view_count: int = Field(ge=1, description="Views, this one included.")


class VideoFailed(VideoBase):
    status: Literal["FAILED"]
    failure_reason: str | None = Field(description="Why transcoding failed.")


VideoDetails = Annotated[
    VideoProcessing | VideoTranscoded | VideoFailed, Field(discriminator="status")
]


class UploadForm(BaseModel):
    file: bytes = Field(
        description="The video (any format FFmpeg reads).",
        json_schema_extra={"format": "binary", "contentMediaType": "video/*"},
    )
    title: str = Field(json_schema_extra={"maxLength": uploads.MAX_TITLE})
    description: str | None = Field(
        default=None, json_schema_extra={"maxLength": uploads.MAX_DESCRIPTION}
    )
    category: str | None = Field(
        default=None, json_schema_extra={"maxLength": uploads.MAX_CATEGORY}
    )


class UploadAccepted(Shape):
    id: str = Field(description="The new video's UUID.")
    title: str
    processing_status: Literal["PROCESSING"]
    qualities: list[str] = Field(description="The renditions being made, e.g. 240p and 480p.")


def creator_out(user: UserValue) -> dict[str, str]:
    return {"id": user.id, "username": user.username}


def iso(video: VideoValue | FeedItemValue) -> str:
    return video.created_at.isoformat().replace("+00:00", "Z")


@operation("newest transcoded videos", ok=(200, Feed), errors=(400,), query=FeedQuery)
async def feed(request: Request) -> Response:
    svc = services(request)
    page = await videos.feed(
        db=svc.db,
        counts=svc.counts,
        page=int_param(request, "page", 1),
        limit=int_param(request, "limit", 20),
        category=request.query_params.get("category"),
    )
    items = []
    base = public_base(request)
    storage = svc.storage
    for video in page.videos:
        key = video.thumbnail_key
        if key is None:
            thumbnail = None
        else:  # local media: the path without I/O; else (presigned S3) through `url`
            path = storage.url_now(key)
            thumbnail = (
                urls.absolute(base, path)
                if path is not None
                else await media_url(request, key, base=base)
            )
        items.append(
            {
                "id": video.id,
                "title": video.title,
                "thumbnail_url": thumbnail,
                "category": video.category,
                "creator": creator_out(page.creators[video.owner_id]),
                "view_count": video.view_count,
                "duration": video.duration,
                "created_at": iso(video),
            }
        )
    return JSON(
        {"videos": items, "total_pages": page.total_pages, "current_page": page.current_page}
    )


@operation(
    "a video: PROCESSING, TRANSCODED with its URLs and the shared playhead, or FAILED",
    ok=(200, VideoDetails),
    errors=(404,),
)
async def details(request: Request) -> Response:
    svc = services(request)
    video = await videos.get_video(db=svc.db, video_id=request.path_params["video_id"])
    (creator,) = await videos.users_by_ids(db=svc.db, ids=[video.owner_id])
    assert creator is not None
    body: dict[str, object] = {
        "id": video.id,
        "title": video.title,
        "description": video.description,
        "category": video.category,
        "creator": creator_out(creator),
        "status": video.status.value,
        "created_at": iso(video),
    }
    if video.status == VideoStatus.TRANSCODED:
        await videos.record_view(db=svc.db, video_id=video.id)
        (renditions,) = await videos.renditions_by_video_ids(db=svc.db, ids=[video.id])
        base = public_base(request)
        body["video_urls"] = {
            r.quality: await media_url(request, r.storage_key, base=base) for r in renditions
        }
        key = video.thumbnail_key
        body["thumbnail_url"] = await media_url(request, key, base=base) if key else None
        body["duration"] = video.duration
        body["current_timestamp"] = videos.live_position(video)
        body["view_count"] = video.view_count + 1
    elif video.status == VideoStatus.PROCESSING:
        body["progress"] = video.progress
    else:
        body["failure_reason"] = video.failure_reason
    return JSON(body)


@operation(
    "upload a video; transcoding runs in the background",
    ok=(202, UploadAccepted),
    errors=(400, 413, 503),
    form=UploadForm,
)
@requires_user
async def upload(request: Request, owner: User) -> Response:
    svc = services(request)
    async with uploads.staging(settings=svc.settings) as staged:
        fields = await read_form(request, staged, file_field="file")
        result = await uploads.upload_video(
            db=svc.db,
            storage=svc.storage,
            queue=svc.queue,
            settings=svc.settings,
            owner=owner,
            staged=staged,
            title=fields.get("title"),
            description=fields.get("description"),
            category=fields.get("category"),
        )
    video = result.video
    accepted = UploadAccepted(
        id=video.id,
        title=video.title,
        processing_status=video.status.value,  # type: ignore[arg-type]
        qualities=result.qualities,
    )
    return JSON(accepted, status_code=202)


routes = [
    Route("/api/videos/feed", feed, methods=["GET"]),
    Route("/api/videos/upload", upload, methods=["POST"]),
    Route("/api/videos/{video_id}", details, methods=["GET"]),
]
