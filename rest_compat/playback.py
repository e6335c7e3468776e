"""PUT /api/videos/{id}/time (seed 000) and GET /api/time (clock sync)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from resolvers import playback
from resolvers.errors import BadInput
from rest_compat.common import json_body, require_caller, services


class TimeBody(BaseModel):
    # Types are checked by the resolver, so a string or NaN gets its precise message there.
    model_config = ConfigDict(arbitrary_types_allowed=True)

    timestamp: object
    video_id: str | None = None
    playing: object = None
    rate: object = None


def state_out(state: playback.PlaybackState) -> dict[str, object]:
    return state.fields()


async def set_time(request: Request) -> JSONResponse:
    user = await require_caller(request)
    body = await json_body(request, TimeBody)
    video_id = request.path_params["video_id"]
    if body.video_id is not None and body.video_id != video_id:
        raise BadInput("video_id in the body does not match the URL", field="video_id")
    svc = services(request)
    state = await playback.set_playback(
        db=svc.db,
        bus=svc.bus,
        user=user,
        video_id=video_id,
        timestamp=body.timestamp,
        playing=body.playing,
        rate=body.rate,
    )
    return JSONResponse(state_out(state), status_code=201)


async def server_time(_request: Request) -> JSONResponse:
    received_at = playback.precise_now_ms()
    reading = playback.clock(received_at=received_at)
    return JSONResponse({"received_at": reading.received_at, "sent_at": reading.sent_at})


routes = [
    Route("/api/videos/{video_id}/time", set_time, methods=["PUT"]),
    Route("/api/time", server_time, methods=["GET"]),
]
