"""POST /api/channels, GET /api/channels/{slug}."""

from __future__ import annotations

from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import Channel, User
from models.values import ChannelValue, VideoValue
from resolvers import channels, videos
from rest_compat.common import json_body, media_url, services
from rest_compat.operations import JSON, Shape, operation, requires_user


class ChannelBody(BaseModel):
    name: str = Field(json_schema_extra={"pattern": r"\S", "maxLength": channels.MAX_NAME})
    slug: str = Field(
        description="Lowercase letters, digits, '-' and '_'; unique.",
        json_schema_extra={"pattern": channels.SLUG_RE.pattern},
    )
    description: str | None = Field(
        default=None, json_schema_extra={"maxLength": channels.MAX_DESCRIPTION}
    )


class ChannelOut(Shape):
    id: str = Field(description="The channel's UUID.")
    name: str
    slug: str
    description: str = Field(description="May be empty.")
    subscriber_count: int = Field(ge=0)


class VideoSummary(Shape):
    id: str
    title: str
    thumbnail_url: str | None = Field(description="A JPEG frame; null if there is none.")


class ChannelDetails(ChannelOut):
    videos: list[VideoSummary] = Field(description="The newest transcoded videos, at most 100.")


def channel_fields(channel: Channel | ChannelValue) -> dict[str, object]:
    return {
        "id": channel.id,
        "name": channel.name,
        "slug": channel.slug,
        "description": channel.description,
        "subscriber_count": channel.subscriber_count,
    }


@operation(
    "create the caller's channel (one per user)",
    ok=(201, ChannelOut),
    errors=(400, 409, 411),
    body=ChannelBody,
)
@requires_user
async def create_channel(request: Request, owner: User) -> Response:
    body = await json_body(request, ChannelBody)
    channel = await channels.create_channel(
        db=services(request).db,
        owner=owner,
        name=body.name,
        slug=body.slug,
        description=body.description,
    )
    return JSON(ChannelOut(**channel_fields(channel)), status_code=201)


async def _video_summary(request: Request, video: VideoValue) -> VideoSummary:
    key = video.thumbnail_key
    thumbnail = await media_url(request, key) if key else None
    return VideoSummary(id=video.id, title=video.title, thumbnail_url=thumbnail)


@operation("a channel and its videos", ok=(200, ChannelDetails), errors=(404,))
@requires_user
async def channel_details(request: Request, _user: User) -> Response:
    db = services(request).db
    channel = await channels.get_channel(db=db, slug=request.path_params["slug"])
    (owned,) = await videos.videos_by_owner_ids(db=db, ids=[channel.owner_id])
    summaries = [await _video_summary(request, video) for video in owned]
    return JSON(ChannelDetails(**channel_fields(channel), videos=summaries))


routes = [
    Route("/api/channels", create_channel, methods=["POST"]),
    Route("/api/channels/{slug}", channel_details, methods=["GET"]),
]
