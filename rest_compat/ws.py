"""The seed's `/ws` endpoint: `video:subscribe` / `video:unsubscribe`, playback events out."""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from resolvers import auth
from resolvers.bus import PlaybackBus
from resolvers.delivery import Listener, Outbox, frame_writer
from resolvers.errors import DomainError, InvalidToken
from resolvers.playback import PlaybackState
from resolvers.throttle import WS_CLOSE_FLOODING, Verdict, flood_guard
from rest_compat.common import services

#: graphql-ws's codes, reused: no credentials / credentials refused.
CLOSE_UNAUTHENTICATED = 4403
CLOSE_INVALID_TOKEN = 4401
MAX_SUBSCRIPTIONS = 100


def render(state: PlaybackState, first: bool) -> str:
    """`video:state` for the first frame after a subscribe, then `video:timestamp_updated`."""
    kind = "video:state" if first else "video:timestamp_updated"
    frame = state.memo.get(kind)
    if frame is None:
        frame = state.memo[kind] = json.dumps(
            {"type": kind, **state.fields()}, separators=(",", ":")
        )
    return frame


def error(code: str, message: str, **extra: Any) -> str:
    return json.dumps({"type": "error", "code": code, "message": message, **extra})


class Session:
    """One `/ws` connection's subscriptions."""

    def __init__(self, websocket: WebSocket, bus: PlaybackBus, outbox: Outbox) -> None:
        self.websocket = websocket
        self.bus = bus
        self.outbox = outbox
        self.listeners: dict[str, Listener] = {}

    async def handle(self, raw: str) -> str | None:
        """Act on one client message; the error frame to send back, if any."""
        try:
            message = json.loads(raw)
        except ValueError:
            return error("INVALID_JSON", "messages must be JSON objects")
        if not isinstance(message, dict):
            return error("INVALID_MESSAGE", "messages must be JSON objects")
        kind, video_id = message.get("type"), message.get("video_id")
        if kind not in ("video:subscribe", "video:unsubscribe"):
            return error("UNKNOWN_TYPE", "type must be video:subscribe or video:unsubscribe")
        if not isinstance(video_id, str) or not video_id:
            return error("BAD_USER_INPUT", "video_id must be a non-empty string", request=kind)
        if kind == "video:unsubscribe":
            listener = self.listeners.pop(video_id, None)
            if listener is not None:
                await self.bus.unsubscribe(video_id, listener)
            return None
        if video_id in self.listeners:
            return None
        if len(self.listeners) >= MAX_SUBSCRIPTIONS:
            return error("TOO_MANY_SUBSCRIPTIONS", f"at most {MAX_SUBSCRIPTIONS} videos")
        listener = Listener(self.outbox, render)
        try:
            await self.bus.subscribe(video_id, listener)
        except DomainError as exc:
            return error(exc.code, exc.message, video_id=video_id)
        self.listeners[video_id] = listener
        return None

    async def close(self) -> None:
        for video_id, listener in self.listeners.items():
            await self.bus.unsubscribe(video_id, listener)
        self.listeners.clear()
        await self.outbox.close()


async def watch(websocket: WebSocket) -> None:
    svc = services(websocket)
    token = auth.token_from(
        headers=websocket.headers, cookies=websocket.cookies, query=websocket.query_params
    )
    await websocket.accept()
    if token is None:
        await websocket.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return
    try:
        await auth.authenticate(db=svc.db, secret=svc.jwt_secret, token=token)
    except InvalidToken as exc:
        await websocket.close(CLOSE_INVALID_TOKEN, exc.message)
        return
    outbox = svc.bus.open_outbox(websocket.send_text, frame_writer(websocket.scope))
    session = Session(websocket, svc.bus, outbox)
    guard = flood_guard(svc.settings)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            verdict = guard.admit()
            if verdict is Verdict.CLOSE:
                await websocket.close(WS_CLOSE_FLOODING, "too many messages")
                break
            text = message.get("text")
            if verdict is Verdict.THROTTLE:
                reply: str | None = error("RATE_LIMITED", "too many messages; slow down")
            elif text is None:
                reply = error("INVALID_MESSAGE", "binary messages are not supported")
            else:
                reply = await session.handle(text)
            if reply is not None:
                await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()


routes = [WebSocketRoute("/ws", watch)]
