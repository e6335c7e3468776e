"""POST /api/channels, GET /api/channels/{slug}."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from models import Channel, Video
from resolvers import channels, videos
from rest_compat.common import json_body, require_caller, services


class ChannelBody(BaseModel):
    name: str
    slug: str
    description: str | None = Field(default=None)


def channel_out(channel: Channel) -> dict[str, object]:
    return {
        "id": channel.id,
        "name": channel.name,
        "slug": channel.slug,
        "description": channel.description,
        "subscriber_count": channel.subscriber_count,
    }


async def create_channel(request: Request) -> JSONResponse:
    owner = await require_caller(request)
    body = await json_body(request, ChannelBody)
    channel = await channels.create_channel(
        db=services(request).db,
        owner=owner,
        name=body.name,
        slug=body.slug,
        description=body.description,
    )
    return JSONResponse(channel_out(channel), status_code=201)


async def _video_summary(request: Request, video: Video) -> dict[str, object]:
    storage = services(request).storage
    thumbnail = await storage.url(video.thumbnail_key) if video.thumbnail_key else None
    return {"id": video.id, "title": video.title, "thumbnail_url": thumbnail}


async def channel_details(request: Request) -> JSONResponse:
    await require_caller(request)
    db = services(request).db
    channel = await channels.get_channel(db=db, slug=request.path_params["slug"])
    (owned,) = await videos.videos_by_owner_ids(db=db, ids=[channel.owner_id])
    body = channel_out(channel)
    body["videos"] = [await _video_summary(request, video) for video in owned]
    return JSONResponse(body)


routes = [
    Route("/api/channels", create_channel, methods=["POST"]),
    Route("/api/channels/{slug}", channel_details, methods=["GET"]),
]
