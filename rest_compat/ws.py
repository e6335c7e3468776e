"""The seed's `/ws` endpoint: a video's public room (seed 000) and watch parties.

The socket itself (Origin, caps, sign-in, flood guard, outbox, close codes) is
`realtime.connection.Connection`; this face parses the client's messages and renders frames. A
token is required (seed 000): none → 4403, a bad one → 4401. An account token or a party member
token (a guest's) signs in; party messages are `rest_compat/ws_parties.py`'s.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from realtime.connection import (
    CLOSE_INVALID_TOKEN,
    CLOSE_UNAUTHENTICATED,
    Connection,
    Principal,
)
from realtime.events import Event, dumps
from realtime.flood import Verdict
from resolvers import auth
from resolvers.auth import Caller
from resolvers.errors import DomainError, InvalidToken
from resolvers.playback import video_topic
from resolvers.services import Services
from rest_compat.common import services


@dataclass
class Session:
    """One `/ws` connection: its socket, who signed in, the parties it listens to."""

    connection: Connection
    services: Services
    caller: Caller = field(default_factory=Caller)
    #: party id → the caller's member id, for each party subscription
    parties: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Session, dict[str, Any]], Awaitable[str | None]]


def render(event: Event, first: bool) -> str:
    """`video:state` for the first frame after a subscribe, then `video:timestamp_updated`."""
    kind = "video:state" if first else "video:timestamp_updated"
    frame = event.frames.get(kind)
    if frame is None:
        frame = event.frames[kind] = dumps({"type": kind, **event.data})
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


def identifier(message: dict[str, Any], name: str) -> str | None:
    value = message.get(name)
    return value if isinstance(value, str) and value else None


async def video_subscribe(session: Session, message: dict[str, Any]) -> str | None:
    video_id = identifier(message, "video_id")
    if video_id is None:
        return error(
            "BAD_USER_INPUT", "video_id must be a non-empty string", request=message["type"]
        )
    connection = session.connection
    if video_id in connection.subscriptions:
        return None
    if connection.full:
        limit = connection.hub.limits.max_subscriptions
        return error("TOO_MANY_SUBSCRIPTIONS", f"at most {limit} subscriptions")
    try:
        await connection.subscribe(video_id, video_topic(video_id), render)
    except DomainError as exc:
        return error(exc.code, exc.message, video_id=video_id)
    return None


async def video_unsubscribe(session: Session, message: dict[str, Any]) -> str | None:
    video_id = identifier(message, "video_id")
    if video_id is None:
        return error(
            "BAD_USER_INPUT", "video_id must be a non-empty string", request=message["type"]
        )
    await session.connection.unsubscribe(video_id)
    return None


def handlers() -> dict[str, Handler]:
    from rest_compat import ws_parties

    return {
        "video:subscribe": video_subscribe,
        "video:unsubscribe": video_unsubscribe,
        **ws_parties.handlers,
    }


async def handle(session: Session, raw: str, table: dict[str, Handler]) -> str | None:
    """Act on one client message; the error frame to send back, if any."""
    if session.connection.too_big(raw):
        return error("MESSAGE_TOO_LARGE", "message is too large")
    message = parse(raw)
    if isinstance(message, str):
        return message
    handler = table.get(message.get("type"))  # type: ignore[arg-type]
    if handler is None:
        return error("UNKNOWN_TYPE", f"type must be one of {', '.join(sorted(table))}")
    return await handler(session, message)


async def sign_in(session: Session, websocket: WebSocket) -> bool:
    svc, connection = session.services, session.connection
    token = auth.token_from(
        headers=websocket.headers,
        cookies={} if connection.cross_origin else websocket.cookies,
        query=websocket.query_params,
    )
    if token is None:
        await connection.close(CLOSE_UNAUTHENTICATED, "authentication required")
        return False
    try:
        caller = await auth.identify(db=svc.db, secret=svc.jwt_secret, token=token)
    except InvalidToken as exc:
        await connection.close(CLOSE_INVALID_TOKEN, exc.message)
        return False
    assert caller.claims is not None
    session.caller = caller
    principal = Principal(
        user_id=caller.user.id if caller.user else None,
        session_id=caller.claims.jti,
        expires_at=caller.claims.expires_at.timestamp(),
    )
    return await connection.sign_in(principal)


async def watch(websocket: WebSocket) -> None:
    svc = services(websocket)
    session = Session(connection=Connection(svc.hub, websocket), services=svc)
    connection = session.connection
    if not await connection.accept():
        return
    table = handlers()
    try:
        if not await sign_in(session, websocket):
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
                reply = await handle(session, text, table)
            if reply is not None:
                await websocket.send_text(reply)
    except WebSocketDisconnect:
        pass
    finally:
        for party_id, member_id in list(session.parties.items()):
            await svc.parties.socket_closed(party_id, member_id)
        await connection.release()


routes = [WebSocketRoute("/ws", watch)]
