"""GET /api/videos/feed, POST /api/videos/upload, GET /api/videos/{id}."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models import User, Video, VideoStatus
from models.base import as_utc
from resolvers import uploads, videos
from resolvers.errors import BadInput
from rest_compat.common import require_caller, services
from rest_compat.multipart import read_form


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise BadInput(f"{name} must be an integer", field=name) from exc


def creator_out(user: User) -> dict[str, str]:
    return {"id": user.id, "username": user.username}


def iso(video: Video) -> str:
    return as_utc(video.created_at).isoformat().replace("+00:00", "Z")


async def feed(request: Request) -> JSONResponse:
    svc = services(request)
    page = await videos.feed(
        db=svc.db,
        page=_int_param(request, "page", 1),
        limit=_int_param(request, "limit", 20),
        category=request.query_params.get("category"),
    )
    items = []
    for video in page.videos:
        thumbnail = await svc.storage.url(video.thumbnail_key) if video.thumbnail_key else None
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
    return JSONResponse(
        {"videos": items, "total_pages": page.total_pages, "current_page": page.current_page}
    )


async def details(request: Request) -> JSONResponse:
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
        body["video_urls"] = {r.quality: await svc.storage.url(r.storage_key) for r in renditions}
        body["thumbnail_url"] = (
            await svc.storage.url(video.thumbnail_key) if video.thumbnail_key else None
        )
        body["duration"] = video.duration
        body["current_timestamp"] = videos.live_position(video)
        body["view_count"] = video.view_count + 1
    elif video.status == VideoStatus.PROCESSING:
        body["progress"] = video.progress
    else:
        body["failure_reason"] = video.failure_reason
    return JSONResponse(body)


async def upload(request: Request) -> JSONResponse:
    owner = await require_caller(request)
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
    body = {
        "id": video.id,
        "title": video.title,
        "processing_status": video.status.value,
        "qualities": result.qualities,
    }
    return JSONResponse(body, status_code=202)


routes = [
    Route("/api/videos/feed", feed, methods=["GET"]),
    Route("/api/videos/upload", upload, methods=["POST"]),
    Route("/api/videos/{video_id}", details, methods=["GET"]),
]
