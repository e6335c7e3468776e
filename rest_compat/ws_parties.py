"""Watch parties on `/ws`: subscribe to a party's events, report the player, move the playhead.

Client → server: `{"type":"party:subscribe","party_id":…}`, `party:unsubscribe`,
`{"type":"party:ready","party_id":…,"state":"READY"|"BUFFERING"|"IDLE","position":…}`, and (an
addition for clients that seek without HTTP) `{"type":"party:playback","party_id":…,
"timestamp":…,"playing":…,"rate":…}`; chat: `{"type":"chat:send","party_id":…,"body":…,
"reply_to":…}`, `{"type":"party:react","party_id":…,"emoji":…}` and (an addition)
`{"type":"chat:delete","message_id":…}`. Server → client: `party:snapshot` first, then
`party:playback`, `party:member_joined`, `party:member_left`, `party:member_updated`,
`party:ended`, `party:chat_message`, `party:chat_deleted`, `party:reaction`, each
`{"type":…, "party_id":…, "seq":…, …fields}` with `seq` the party's event counter (a playback
frame's `version` is the playhead's own): in order, each once. A kicked member's socket gets its
`party:member_left` and is then closed (4403).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from realtime.connection import CLOSE_UNAUTHENTICATED, Connection
from realtime.delivery import Render
from realtime.events import Event, dumps
from resolvers import chat
from resolvers.errors import DomainError
from resolvers.party_playback import hand_player_state, set_party_playback, snapshot
from resolvers.party_runtime import party_topic
from rest_compat.ws import Handler, Session, error, identifier

#: realtime event kinds → `/ws` frame types
FRAMES = {
    "snapshot": "party:snapshot",
    "playback": "party:playback",
    "member_joined": "party:member_joined",
    "member_left": "party:member_left",
    "member_updated": "party:member_updated",
    "party_ended": "party:ended",
    "chat_message": "party:chat_message",
    "chat_deleted": "party:chat_deleted",
    "reaction": "party:reaction",
}


def frame(event: Event) -> str:
    """An event as a `/ws` frame, encoded once per event per process."""
    found = event.frames.get("ws")
    if found is None:
        party_id = event.topic.partition(":")[2]
        body = {"type": FRAMES.get(event.kind, f"party:{event.kind}"), "party_id": party_id}
        found = event.frames["ws"] = dumps({**body, "seq": event.version, **event.data})
    return found


def renderer(connection: Connection, member_id: Callable[[], str | None]) -> Render:
    def render(event: Event, _first: bool) -> str:
        if event.kind == "member_left" and event.data.get("kicked"):
            member = event.data.get("member") or {}
            if member.get("id") == member_id():  # it still gets the frame, then the close
                connection.close_soon(CLOSE_UNAUTHENTICATED, "removed from the party")
        return frame(event)

    return render


def _party(message: dict[str, Any]) -> str | None:
    return identifier(message, "party_id")


async def subscribe(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error(
            "BAD_USER_INPUT", "party_id must be a non-empty string", request="party:subscribe"
        )
    connection, runtime = session.connection, session.services.parties
    key = party_topic(party_id)
    if key in connection.subscriptions:
        return None
    if connection.full:
        limit = connection.hub.limits.max_subscriptions
        return error("TOO_MANY_SUBSCRIPTIONS", f"at most {limit} subscriptions")
    member_id = None  # known once the snapshot says who the caller is in this party
    try:
        listener = await connection.subscribe(
            key, key, renderer(connection, lambda: member_id), active=False
        )
        # The snapshot is read after joining the room: nothing between is missed or sent twice.
        first, member = await snapshot(runtime=runtime, caller=session.caller, party_id=party_id)
    except DomainError as exc:
        await connection.unsubscribe(key)
        return error(exc.code, exc.message, party_id=party_id)
    member_id = member.id
    listener.start(first=first)
    settings = session.services.settings
    connection.heartbeat(settings.party_ping_interval_s, settings.party_ping_timeout_s)
    session.parties[party_id] = member.id
    await runtime.socket_opened(party_id, member.id, connection.rtt_ms())
    return None


async def unsubscribe(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error(
            "BAD_USER_INPUT", "party_id must be a non-empty string", request="party:unsubscribe"
        )
    await session.connection.unsubscribe(party_topic(party_id))
    member_id = session.parties.pop(party_id, None)
    if member_id is not None:
        await session.services.parties.socket_closed(party_id, member_id)
    return None


async def ready(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error("BAD_USER_INPUT", "party_id must be a non-empty string", request="party:ready")
    svc, connection = session.services, session.connection

    def refused(exc: DomainError) -> None:  # by the party's home, after this handler returned
        connection.send_soon(error(exc.code, exc.message, party_id=party_id, request="party:ready"))

    try:
        await hand_player_state(
            runtime=svc.parties,
            limiter=svc.rate_limiter,
            caller=session.caller,
            party_id=party_id,
            state=message.get("state"),
            position=message.get("position"),
            latency_ms=connection.rtt_ms(),
            refused=refused,
            member_id=session.parties.get(party_id),  # known once subscribed
            offset_ms=message.get("offset_ms"),
        )
    except DomainError as exc:
        return error(exc.code, exc.message, party_id=party_id, request="party:ready")
    return None


async def playback(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error(
            "BAD_USER_INPUT", "party_id must be a non-empty string", request="party:playback"
        )
    try:
        await set_party_playback(
            runtime=session.services.parties,
            caller=session.caller,
            party_id=party_id,
            timestamp=message.get("timestamp"),
            playing=message.get("playing"),
            rate=message.get("rate"),
        )
    except DomainError as exc:
        return error(exc.code, exc.message, party_id=party_id, request="party:playback")
    return None


async def chat_send(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error("BAD_USER_INPUT", "party_id must be a non-empty string", request="chat:send")
    svc = session.services
    reply_to = message.get("reply_to")
    if reply_to is not None and not isinstance(reply_to, str):
        return error("BAD_USER_INPUT", "reply_to must be a message id or null", request="chat:send")
    try:
        await chat.send_message(
            runtime=svc.parties,
            limiter=svc.rate_limiter,
            caller=session.caller,
            party_id=party_id,
            body=message.get("body"),
            reply_to=reply_to,
        )
    except DomainError as exc:
        return error(exc.code, exc.message, party_id=party_id, request="chat:send", **exc.details)
    return None


async def chat_delete(session: Session, message: dict[str, Any]) -> str | None:
    message_id = identifier(message, "message_id")
    if message_id is None:
        return error(
            "BAD_USER_INPUT", "message_id must be a non-empty string", request="chat:delete"
        )
    try:
        await chat.delete_message(
            runtime=session.services.parties, caller=session.caller, message_id=message_id
        )
    except DomainError as exc:
        return error(exc.code, exc.message, message_id=message_id, request="chat:delete")
    return None


async def react(session: Session, message: dict[str, Any]) -> str | None:
    party_id = _party(message)
    if party_id is None:
        return error("BAD_USER_INPUT", "party_id must be a non-empty string", request="party:react")
    svc = session.services
    try:
        await chat.react(
            runtime=svc.parties,
            limiter=svc.rate_limiter,
            caller=session.caller,
            party_id=party_id,
            emoji=message.get("emoji"),
        )
    except DomainError as exc:
        return error(exc.code, exc.message, party_id=party_id, request="party:react", **exc.details)
    return None


handlers: dict[str, Handler] = {
    "party:subscribe": subscribe,
    "party:unsubscribe": unsubscribe,
    "party:ready": ready,
    "party:playback": playback,
    "chat:send": chat_send,
    "chat:delete": chat_delete,
    "party:react": react,
}
