"""What travels on the bus: an `Event` on a topic, ordered by a version per topic.

Topics are strings `<kind>:<id>`: `video:<id>` (a video's public playhead), and as features
arrive `party:<id>`, `user:<id>` (sessions, notifications), `processing:<id>`. A versioned event
(`version >= 1`) is delivered in version order, each version once, gaps held until they fill;
an unversioned one (`version is None`) is delivered as it comes, with no ordering promise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def dumps(value: Any) -> str:
    """Compact JSON text of a frame or an event (msgspec: several times the stdlib's speed; no
    escaping of non-ASCII text, which the frames' UTF-8 carries as it is)."""
    return _encode(value).decode()


@dataclass(frozen=True, eq=False, slots=True)
class Event:
    topic: str
    #: strictly increasing per topic, or None for events without an order (signals)
    version: int | None
    #: what happened, e.g. "playback", "member_joined", "session_revoked"
    kind: str
    #: the event's JSON-able fields, rendered by each face
    data: dict[str, Any]
    #: this process's encoded frames of this event, one per renderer and document, so an event is
    #: rendered once however many sockets receive it (never sent on the wire)
    frames: dict[Any, str] = field(default_factory=dict, repr=False)

    def to_json(self) -> str:
        return dumps(self._wire())

    def _wire(self) -> dict[str, Any]:
        return {"t": self.topic, "v": self.version, "k": self.kind, "d": self.data}

    @staticmethod
    def many_to_json(events: list[Event]) -> str:
        """Several events in one message (one change's events: one publication to hear)."""
        return dumps([event._wire() for event in events])

    @classmethod
    def many_from_json(cls, raw: str | bytes) -> list[Event]:
        """The events of a message: several (`many_to_json`) or one (`to_json`)."""
        message = _decode(raw)
        if isinstance(message, list):
            return [cls._unwire(one) for one in message]
        return [cls._unwire(message)]

    @classmethod
    def _unwire(cls, message: Any) -> Event:
        topic, version, kind, data = message["t"], message["v"], message["k"], message["d"]
        if not isinstance(topic, str) or not isinstance(kind, str) or not isinstance(data, dict):
            raise TypeError("malformed event")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise TypeError("malformed event version")
        return cls(topic=topic, version=version, kind=kind, data=data)


#: Where revocations travel: every process hears every one and closes its sockets of that session.
SESSIONS_TOPIC = "sessions:revoked"


def revocation(*, session_id: str | None = None, user_id: str | None = None) -> Event:
    """The event that closes every socket of a session (or, with no session, of a user)."""
    return Event(
        topic=SESSIONS_TOPIC,
        version=None,
        kind="session_revoked",
        data={"session": session_id, "user": user_id},
    )


def topic(kind: str, ident: str) -> str:
    return f"{kind}:{ident}"


def topic_kind(name: str) -> str:
    return name.partition(":")[0]


class Publisher(Protocol):
    """How domain code announces a change: to this process at once, then to every other."""

    async def publish(self, event: Event) -> None: ...

    async def publish_all(self, events: list[Event]) -> None:
        """Several events of one change, in order."""
        ...


@dataclass(frozen=True)
class Head:
    """Where a topic stands now: its newest version, and its state if it keeps one."""

    version: int | None
    state: Event | None = None


class Source(Protocol):
    """Where a topic kind's truth lives: its head now, and the events after a version."""

    #: True when a topic's newest event is its whole state (a playhead): a new listener is
    #: offered it first, and a listener that fell behind may skip to it
    stateful: ClassVar[bool]

    async def head(self, topic: str) -> Head: ...

    async def since(self, topic: str, version: int | None) -> list[Event]:
        """Events after `version`, oldest first (a stateful topic: its current state)."""
        ...
