"""The floor of bench/parties.py: a bare Starlette websocket server relaying a party's frames.

    python bench/party_floor.py --port 8100 [--redis redis://127.0.0.1:6379/0]

It speaks the same `/ws` messages as Cowatch (`party:subscribe`, `party:playback`, `party:ready`)
and answers with frames of the same shapes, so the bench's clients cannot tell them apart:
- `party:subscribe` → `party:snapshot` (the room, its members and playhead) at the room's `seq`;
- `party:playback` → `party:playback` WAITING to every member, waiting for all of them;
- `party:ready` at the new position → `party:member_updated` to every member, and once the last
  member is ready, `party:playback` PLAYING;
- `chat:send` → `party:chat_message` to every member.
Every frame carries the room's event counter `seq`, one more per frame, as Cowatch's do (and a
playback frame the playhead's own `version`, one more per change). The
token in `/ws?token=…` is taken as the member's id: no sign-in, no rules, no storage.

With `--redis`, every process publishes what its sockets say on the room's channel and applies
what it reads back from a pattern subscription, in Redis's order: each process runs the same
room state on the same ordered stream and sends the frames to its own sockets. That is the least
two processes need to share a room (one Redis hop per message); Cowatch's live store, presence
and log are what it adds on top.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

# Imported before main() freezes what is alive out of garbage collection: importing `models`
# brings some 70,000 objects, and collections that walked them would slow the floor.
from models.redis_pool import redis_client

#: A ready report this close to the new position counts (Cowatch's READY_TOLERANCE_S).
READY_TOLERANCE_S = 0.5
#: PLAYING starts this far ahead (ms), as Cowatch's START_MARGIN_MS with no measured latency.
START_MARGIN_MS = 150


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclass
class Room:
    id: str
    seq: int = 0
    version: int = 0
    timestamp: float = 0.0
    state: str = "PAUSED"
    server_time: int = 0
    effective_at: int | None = None
    changed_by: str | None = None
    #: member id -> its fields (every member of the room, in any process)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    #: this process's sockets, by member id
    sockets: dict[str, WebSocket] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def playback(self) -> dict[str, Any]:
        return {
            "party_id": self.id,
            "timestamp": self.timestamp,
            "playing": self.state == "PLAYING",
            "rate": 1.0,
            "server_time": self.server_time,
            "version": self.version,
            "user_id": None,
            "member_id": self.changed_by,
            "state": self.state,
            "effective_at": self.effective_at,
            "waiting_for": [self.members[m] for m in self.waiting if m in self.members],
        }

    def frame(self, kind: str, data: dict[str, Any]) -> str:
        self.seq += 1
        now = int(time.time() * 1000)
        return dumps(
            {
                "type": kind,
                "party_id": self.id,
                "seq": self.seq,
                **data,
                "server_time": now,
                "media_time": self.timestamp,
            }
        )

    def snapshot(self) -> str:
        now = int(time.time() * 1000)
        party = {
            "id": self.id,
            "code": self.id[:11],
            "name": "floor party",
            "video_id": "floor-video",
            "state": self.state,
            "max_members": 50,
            "members": list(self.members.values()),
            "playback": self.playback(),
        }
        return dumps(
            {
                "type": "party:snapshot",
                "party_id": self.id,
                "seq": self.seq,
                "party": party,
                "server_time": now,
                "media_time": self.timestamp,
            }
        )


def member_fields(member_id: str) -> dict[str, Any]:
    return {
        "id": member_id,
        "display_name": member_id,
        "role": "GUEST",
        "user": None,
        "online": True,
        "player": "IDLE",
        "position": None,
        "latency_ms": None,
        "offset_ms": None,
        "joined_at": "2026-01-01T00:00:00Z",
    }


class Floor:
    """The rooms of this process; `apply` is the room's whole logic, fed locally or via Redis."""

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.relay: Callable[[str, dict[str, Any]], Any] | None = None

    def room(self, party_id: str) -> Room:
        room = self.rooms.get(party_id)
        if room is None:
            room = self.rooms[party_id] = Room(party_id)
        return room

    async def submit(self, party_id: str, op: dict[str, Any]) -> None:
        if self.relay is None:
            await self.apply(party_id, op)
        else:
            await self.relay(party_id, op)

    async def apply(self, party_id: str, op: dict[str, Any]) -> None:
        room = self.room(party_id)
        member_id = op["member"]
        frames: list[str] = []
        async with room.lock:  # a send that waits must not let another frame overtake it
            kind = op["op"]
            if kind == "join":
                room.members[member_id] = member_fields(member_id)
                local = room.sockets.get(member_id)
                if local is not None:
                    await local.send_text(room.snapshot())
                return
            if kind == "leave":
                room.members.pop(member_id, None)
                if member_id in room.waiting:
                    room.waiting.remove(member_id)
                return
            if kind == "change":
                room.timestamp = float(op["timestamp"])
                room.version += 1
                room.changed_by = member_id
                room.server_time = int(time.time() * 1000)
                room.effective_at = None
                room.state = "WAITING"
                room.waiting = list(room.members)
                frames.append(room.frame("party:playback", room.playback()))
            elif kind == "ready":
                if room.state != "WAITING" or member_id not in room.waiting:
                    return
                if abs(float(op["position"]) - room.timestamp) > READY_TOLERANCE_S:
                    return
                room.waiting.remove(member_id)
                member = room.members[member_id]
                member["player"], member["position"] = "READY", float(op["position"])
                frames.append(room.frame("party:member_updated", {"member": member}))
            elif kind == "chat":
                message = {
                    "id": f"{member_id}-{room.seq}",
                    "body": op["body"],
                    "author": room.members.get(member_id) or member_fields(member_id),
                    "reply_to": None,
                    "media_time": room.timestamp,
                    "created_at": "2026-01-01T00:00:00Z",
                    "deleted": False,
                }
                frames.append(room.frame("party:chat_message", {"message": message}))
            if room.state == "WAITING" and not room.waiting:
                room.state = "PLAYING"
                room.server_time = room.effective_at = int(time.time() * 1000) + START_MARGIN_MS
                frames.append(room.frame("party:playback", room.playback()))
            for frame in frames:
                for websocket in list(room.sockets.values()):
                    await websocket.send_text(frame)


def app(redis_url: str | None) -> Starlette:
    floor = Floor()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        member_id = websocket.query_params.get("token", "")
        joined: set[str] = set()
        try:
            while True:
                message = json.loads(await websocket.receive_text())
                party_id = message.get("party_id")
                kind = message.get("type")
                if not isinstance(party_id, str):
                    continue
                if kind == "party:subscribe" and party_id not in joined:
                    joined.add(party_id)
                    floor.room(party_id).sockets[member_id] = websocket
                    await floor.submit(party_id, {"op": "join", "member": member_id})
                elif kind == "party:playback" and party_id in joined:
                    op = {"op": "change", "member": member_id, "timestamp": message["timestamp"]}
                    await floor.submit(party_id, op)
                elif kind == "party:ready" and party_id in joined:
                    op = {"op": "ready", "member": member_id, "position": message["position"]}
                    await floor.submit(party_id, op)
                elif kind == "chat:send" and party_id in joined:
                    op = {"op": "chat", "member": member_id, "body": message["body"]}
                    await floor.submit(party_id, op)
        except WebSocketDisconnect:
            pass
        finally:
            for party_id in joined:
                floor.room(party_id).sockets.pop(member_id, None)
                await floor.submit(party_id, {"op": "leave", "member": member_id})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if redis_url is None:
            yield
            return
        # The client Cowatch uses (models/redis_pool.py): redis-py 5.3's default asyncio pool
        # runs one command per event-loop turn under concurrency (redis/redis-py#3692), and
        # sends each a turn or two late. No socket timeout: the pattern subscription's read
        # waits for messages however long the rooms are quiet.
        client = redis_client(redis_url, socket_timeout=None)
        pubsub = client.pubsub()
        await pubsub.psubscribe("floor:*")

        async def relay(party_id: str, op: dict[str, Any]) -> None:
            await client.publish(f"floor:{party_id}", dumps(op))

        async def read() -> None:
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    party_id = message["channel"].decode().split(":", 1)[1]
                    await floor.apply(party_id, json.loads(message["data"]))

        reader = asyncio.create_task(read())
        floor.relay = relay
        try:
            yield
        finally:
            reader.cancel()
            await pubsub.aclose()
            await client.aclose()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", metavar="URL")
    parser.add_argument("--ping-interval", type=float, default=0.5)
    parser.add_argument("--ping-timeout", type=float, default=1.0)
    args = parser.parse_args()
    import uvicorn

    # The same garbage-collection tuning as `cowatch serve` (server.tune_gc): a floor that
    # paused for full collections would flatter Cowatch.
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(50_000, middle, old)
    uvicorn.run(
        app(args.redis),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        ws="websockets-sansio",
        ws_max_size=1 << 20,
        ws_ping_interval=args.ping_interval,
        ws_ping_timeout=args.ping_timeout,
    )


if __name__ == "__main__":
    main()
