"""PUT /api/videos/{id}/time (seed 000) and GET /api/time (clock sync)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models import User
from resolvers import playback
from resolvers.errors import BadInput
from rest_compat.common import json_body, services
from rest_compat.operations import JSON, Shape, operation, requires_user


def _documented(**schema: object) -> Callable[[dict[str, Any]], None]:
    """What the resolver accepts, for the document: an optional field may be absent, not null."""

    def extra(field: dict[str, Any]) -> None:
        field.pop("default", None)
        field.update(schema)

    return extra


class TimeBody(BaseModel):
    # Types are checked by the resolver, so a string or NaN gets its precise message there;
    # the document says what it accepts.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    timestamp: object = Field(
        description="Seconds, from 0 to the video's duration; up to 1 s past it is the end.",
        json_schema_extra=_documented(type="number", minimum=0),
    )
    video_id: str | None = Field(default=None, description="If sent, must be the URL's video id.")
    playing: object = Field(
        default=None,
        description="Play or pause; absent: unchanged.",
        json_schema_extra=_documented(type="boolean"),
    )
    rate: object = Field(
        default=None,
        description="Playback speed; absent: unchanged.",
        json_schema_extra=_documented(
            type="number", minimum=playback.MIN_RATE, maximum=playback.MAX_RATE
        ),
    )
    at: object = Field(
        default=None,
        description="With `playing: true`: the server-clock time (epoch ms, synced with "
        "`GET /api/time`) at which `timestamp` is the sender's position; the server moves the "
        "position by the time from `at` to its stamp. Ignored when more than 1 s off or not "
        "playing; absent: the timestamp is taken as it is.",
        json_schema_extra=_documented(type="number"),
    )


class PlaybackStateOut(Shape):
    video_id: str
    timestamp: float = Field(ge=0, description="Seconds into the video at `server_time`.")
    user_id: str | None = Field(description="Who set it; null: nobody yet.")
    playing: bool = Field(description="True: the playhead advances from `server_time`.")
    rate: float = Field(ge=playback.MIN_RATE, le=playback.MAX_RATE, description="Speed.")
    server_time: int = Field(description="When it was set, epoch milliseconds.")
    version: int = Field(ge=0, description="Strictly increasing per video.")


class ServerTime(Shape):
    received_at: float = Field(description="When the request arrived, epoch ms.")
    sent_at: float = Field(description="When the answer left, epoch ms.")


def state_out(state: playback.PlaybackState) -> dict[str, object]:
    """The seek's answer, a PlaybackStateOut rendered from the state's own dict (hot path)."""
    return state.fields()


@operation(
    "move the shared playhead; every subscriber is told",
    ok=(201, PlaybackStateOut),
    errors=(400, 404),
    body=TimeBody,
)
@requires_user
async def set_time(request: Request, user: User) -> Response:
    body = await json_body(request, TimeBody)
    video_id = request.path_params["video_id"]
    if body.video_id is not None and body.video_id != video_id:
        raise BadInput("video_id in the body does not match the URL", field="video_id")
    svc = services(request)
    state = await playback.set_playback(
        db=svc.db,
        publisher=svc.bus,
        user=user,
        video_id=video_id,
        timestamp=body.timestamp,
        playing=body.playing,
        rate=body.rate,
        at=body.at,
    )
    return JSON(state_out(state), status_code=201)


@operation("the server clock, for sync (NTP-style sample)", ok=(200, ServerTime))
async def server_time(_request: Request) -> Response:
    received_at = playback.precise_now_ms()
    reading = playback.clock(received_at=received_at)
    return JSON(ServerTime(received_at=reading.received_at, sent_at=reading.sent_at))


routes = [
    Route("/api/videos/{video_id}/time", set_time, methods=["PUT"]),
    Route("/api/time", server_time, methods=["GET"]),
]
