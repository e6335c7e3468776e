"""The seed's `/ws` endpoint: `video:subscribe` / `video:unsubscribe`, playback events out.

The socket itself (Origin, caps, sign-in, flood guard, outbox, close codes) is
`realtime.connection.Connection`; this face only parses the client's messages and renders
frames. A token is required (seed 000): none → 4403, a bad one → 4401.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime.connection import (
    CLOSE_INVALID_TOKEN,
    CLOSE_UNAUTHENTICATED,
    Connection,
    Principal,
)
from realtime.events import Event
from realtime.flood import Verdict
from resolvers import auth
from resolvers.errors import DomainError, InvalidToken
from resolvers.playback import video_topic
from rest_compat.common import services


def render(event: Event, first: bool) -> str:
    """`video:state` for the first frame after a subscribe, then `video:timestamp_updated`."""
    kind = "video:state" if first else "video:timestamp_updated"
    frame = event.frames.get(kind)
    if frame is None:
        frame = event.frames[kind] = json.dumps({"type": kind, **event.data}, separators=(",", ":"))
    return frame


def error(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, **extra})


def parse(raw: str) -> dict[str, Any] | str:
    """A client message as a JSON object, or the error frame to answer it with."""
    try:
        message = json.loads(raw)
    except (ValueError, RecursionError):
        return error("INVALID_JSON", "messages must be JSON objects")
    if not isinstance(message, dict):
        return error("INVALID_MESSAGE", "messages must be JSON objects")
    return message


async def handle(connection: Connection, raw: str) -> str | None:
    """Act on one client message; the error frame to send back, if any."""
    if connection.too_big(raw):
        return error("MESSAGE_TOO_LARGE", "message is too large")
    message = parse(raw)
    if isinstance(message, str):
        return message
    kind, video_id = message.get("type"), message.get("video_id")
    if kind not in ("video:subscribe", "video:unsubscribe"):
        return error("UNKNOWN_TYPE", "type must be video:subscribe or video:unsubscribe")
    if not isinstance(video_id, str) or not video_id:
        return error("BAD_USER_INPUT", "video_id must be a non-empty string", request=kind)
    if kind == "video:unsubscribe":
        await connection.unsubscribe(video_id)
        return None
    if video_id in connection.subscriptions:
        return None
    if connection.full:
        limit = connection.hub.limits.max_subscriptions
        return error("TOO_MANY_SUBSCRIPTIONS", f"at most {limit} videos")
    try:
        await connection.subscribe(video_id, video_topic(video_id), render)
    except DomainError as exc:
        return error(exc.code, exc.message, video_id=video_id)
    return None


async def sign_in(connection: Connection, websocket: WebSocket) -> bool:
    svc = services(websocket)
    token = auth.token_from(
        headers=websocket.headers,
        cookies={} if connection.cross_origin else websocket.cookies,
        query=websocket.query_params,
    )
    if token is None:
        await connection.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return False
    try:
        session = await auth.authenticate_session(db=svc.db, secret=svc.jwt_secret, token=token)
    except InvalidToken as exc:
        await connection.close(CLOSE_INVALID_TOKEN, exc.message)
        return False
    principal = Principal(
        user_id=session.user.id,
        session_id=session.claims.jti,
        expires_at=session.claims.expires_at.timestamp(),
    )
    return await connection.sign_in(principal)


async def watch(websocket: WebSocket) -> None:
    connection = Connection(services(websocket).hub, websocket)
    if not await connection.accept():
        return
    try:
        if not await sign_in(connection, websocket):
            return
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            verdict = await connection.admit()
            if verdict is Verdict.CLOSE:
                break
            text = message.get("text")
            if verdict is Verdict.THROTTLE:
                reply: str | None = error("RATE_LIMITED", "too many messages; slow down")
            elif text is None:
                reply = error("INVALID_MESSAGE", "binary messages are not supported")
            else:
                reply = await handle(connection, text)
            if reply is not None:
                await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass
    finally:
        await connection.release()


routes = [WebSocketRoute("/ws", watch)]
