"""One client socket, whichever face speaks on it: the part both socket faces share.

`/ws` (the seed's protocol, `rest_compat/ws.py`) and `/graphql` (graphql-transport-ws and the
legacy graphql-ws, `schema/sockets.py`) differ only in how they parse a client's message and
render a frame. Everything else is here, written once: the Origin check and the per-address cap
at the handshake, sign-in (the principal, the per-user cap, the session's expiry and revocation),
the flood guard, the subscription cap, the outbox, and the close codes:

- 4401: a token was sent but is invalid, expired or revoked — also when it expires or is revoked
  while the socket is open;
- 4403: no token where the face requires one;
- 4429: too many sockets from this user or this address (`COWATCH_MAX_SOCKETS_PER_USER`,
  `COWATCH_MAX_SOCKETS_PER_ADDRESS`, counted per process);
- 1008: kept sending while throttled (flooding);
- 1009: a message over the size cap (GraphQL; `/ws` answers an error and stays open);
- 1013: fell too far behind on a log subscription to skip anything (reconnect and resync).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketState

from realtime.bus import Bus
from realtime.delivery import Backlog, Listener, Outbox, Render, frame_writer, keepalive
from realtime.events import SESSIONS_TOPIC, Event
from realtime.flood import FloodGuard, Verdict

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("cowatch.realtime")

CLOSE_INVALID_TOKEN = 4401
CLOSE_UNAUTHENTICATED = 4403
CLOSE_TOO_MANY_SOCKETS = 4429
CLOSE_FLOODING = 1008
CLOSE_TOO_BIG = 1009
CLOSE_BEHIND = 1013
#: Expiry timers further away than this are not armed (the per-message check still applies).
MAX_TIMER_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Principal:
    """Who a socket signed in as, as far as delivery cares."""

    user_id: str | None
    #: the token's id: revoking it closes every socket signed in with it
    session_id: str | None
    #: epoch seconds when the token stops being valid (None: never)
    expires_at: float | None

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


@dataclass(frozen=True)
class Limits:
    message_rate: float
    message_burst: int
    flood_strikes: int
    max_subscriptions: int
    max_sockets_per_user: int
    max_sockets_per_address: int
    #: the largest client message read at all (bytes); larger ones are refused unparsed
    max_message_bytes: int
    #: origins allowed to open sockets besides the socket's own (`COWATCH_CORS_ORIGINS`)
    allowed_origins: tuple[str, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            message_rate=settings.ws_message_rate,
            message_burst=settings.ws_message_burst,
            flood_strikes=settings.ws_flood_strikes,
            max_subscriptions=settings.ws_max_subscriptions,
            max_sockets_per_user=settings.max_sockets_per_user,
            max_sockets_per_address=settings.max_sockets_per_address,
            max_message_bytes=settings.ws_max_message_bytes,
            allowed_origins=tuple(settings.cors_origin_list),
        )


class _Signals(Backlog):
    """A sink that acts on each event at once (the hub's revocations), never queues them."""

    def __init__(self, hub: Hub) -> None:
        super().__init__()
        self._hub = hub

    def push(self, listener: Listener, event: Event) -> None:
        self._hub.revoked(event)

    def wake(self) -> None:
        pass


class Hub:
    """This process's sockets: the bus they listen on, their limits, who holds how many."""

    def __init__(self, bus: Bus, limits: Limits) -> None:
        self.bus = bus
        self.limits = limits
        self.per_address: Counter[str] = Counter()
        self.per_user: Counter[str] = Counter()
        self._sessions: dict[str, set[Connection]] = {}
        self._users: dict[str, set[Connection]] = {}
        self._revocations = Listener(_Signals(self), lambda _e, _f: None, collapsible=False)
        # Revocations are listened to while some socket is signed in (so an idle process holds
        # no room at all); the lock orders the joins and leaves of that one subscription.
        self._signed_in = 0
        self._listening = asyncio.Lock()
        self._changed = asyncio.Event()

    def _counts_changed(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, check: Callable[[], bool]) -> None:
        """Return once `check()` holds, re-checked whenever a socket is counted or let go
        (tests await the server's own bookkeeping instead of guessing when it is done)."""
        while not check():
            await self._changed.wait()

    def revoked(self, event: Event) -> None:
        doomed: set[Connection] = set()
        session, user = event.data.get("session"), event.data.get("user")
        if isinstance(session, str):
            doomed |= self._sessions.get(session, set())
        if isinstance(user, str) and session is None:
            doomed |= self._users.get(user, set())
        for connection in doomed:
            connection.close_soon(CLOSE_INVALID_TOKEN, "token has been revoked")

    async def _track(self, connection: Connection, principal: Principal) -> None:
        # Counted before the first await, so concurrent sign-ins cannot both pass a cap.
        if principal.session_id is not None:
            self._sessions.setdefault(principal.session_id, set()).add(connection)
        if principal.user_id is not None:
            self._users.setdefault(principal.user_id, set()).add(connection)
            self.per_user[principal.user_id] += 1
        self._counts_changed()
        async with self._listening:
            if self._signed_in == 0:
                await self.bus.subscribe(SESSIONS_TOPIC, self._revocations)
            self._signed_in += 1

    async def _untrack(self, connection: Connection, principal: Principal) -> None:
        tables = ((principal.session_id, self._sessions), (principal.user_id, self._users))
        for key, table in tables:
            if key is not None and key in table:
                table[key].discard(connection)
                if not table[key]:
                    del table[key]
        if principal.user_id is not None:
            _decrement(self.per_user, principal.user_id)
        self._counts_changed()
        async with self._listening:
            self._signed_in -= 1
            if self._signed_in == 0:
                await self.bus.unsubscribe(SESSIONS_TOPIC, self._revocations)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


def _host_port(value: str, scheme: str) -> str:
    parts = urlsplit(f"{scheme}://{value}" if "://" not in value else value)
    default = 443 if parts.scheme in ("https", "wss") else 80
    return f"{(parts.hostname or '').lower()}:{parts.port or default}"


def same_origin(origin: str, host: str | None, scheme: str) -> bool:
    if not host:
        return False
    web = "https" if scheme in ("wss", "https") else "http"
    return _host_port(origin, web) == _host_port(host, web)


class Connection:
    """One socket: accepted, maybe signed in, guarded, subscribed, and closed once."""

    def __init__(self, hub: Hub, websocket: WebSocket) -> None:
        self.hub = hub
        self.websocket = websocket
        limits = hub.limits
        self.guard = FloodGuard(
            rate=limits.message_rate, burst=limits.message_burst, strikes=limits.flood_strikes
        )
        self.address = websocket.client.host if websocket.client else "unknown"
        self.principal: Principal | None = None
        self.subscriptions: dict[str, tuple[str, Listener]] = {}
        self._outbox: Outbox | None = None
        self._counted = False
        self._expiry: asyncio.TimerHandle | None = None
        self._closing: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self.closed = False

    @property
    def cross_origin(self) -> bool:
        """True for a browser page of another origin (never allowed to use the cookie)."""
        origin = self.websocket.headers.get("origin")
        if origin is None or origin in self.hub.limits.allowed_origins:
            return False
        return not same_origin(
            origin, self.websocket.headers.get("host"), self.websocket.url.scheme
        )

    async def accept(self, subprotocol: str | None = None) -> bool:
        """Open the socket, unless its origin or its address may not (then False, closed)."""
        if self.cross_origin and "*" not in self.hub.limits.allowed_origins:
            await self.websocket.close(CLOSE_UNAUTHENTICATED)  # before accept: HTTP 403
            self.closed = True
            return False
        await self.websocket.accept(subprotocol)
        hub = self.hub
        if hub.per_address[self.address] >= hub.limits.max_sockets_per_address:
            await self.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets from this address")
            return False
        hub.per_address[self.address] += 1
        self._counted = True
        hub._counts_changed()
        return True

    async def sign_in(self, principal: Principal) -> bool:
        """Bind the socket to a principal; False (closed) if over the per-user cap or expired."""
        if principal.expired():
            await self.close(CLOSE_INVALID_TOKEN, "token has expired")
            return False
        hub = self.hub
        user = principal.user_id
        if user is not None and hub.per_user[user] >= hub.limits.max_sockets_per_user:
            await self.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets for this account")
            return False
        self.principal = principal
        await hub._track(self, principal)
        if principal.expires_at is not None:
            delay = principal.expires_at - time.time()
            if delay < MAX_TIMER_S:
                loop = asyncio.get_running_loop()
                self._expiry = loop.call_later(
                    max(0.0, delay), self.close_soon, CLOSE_INVALID_TOKEN, "token has expired"
                )
        return True

    async def admit(self) -> Verdict:
        """Whether to handle the client's next message; CLOSE means the socket was closed
        (a token that expired meanwhile: 4401; a client that kept flooding: 1008)."""
        if self.principal is not None and self.principal.expired():
            await self.close(CLOSE_INVALID_TOKEN, "token has expired")
            return Verdict.CLOSE
        verdict = self.guard.admit()
        if verdict is Verdict.CLOSE:
            await self.close(CLOSE_FLOODING, "too many messages")
        return verdict

    def heartbeat(self, interval: float, timeout: float) -> bool:
        """Ping this socket faster (presence needs it); False where the server cannot."""
        found = keepalive(self.websocket.scope)
        if found is None:
            return False
        found.set(interval, timeout)
        return True

    def rtt_ms(self) -> float | None:
        """The socket's last measured round trip, in milliseconds."""
        found = keepalive(self.websocket.scope)
        rtt = found.rtt() if found is not None else None
        return round(rtt * 1000, 1) if rtt else None

    def too_big(self, text: str) -> bool:
        return len(text) > self.hub.limits.max_message_bytes

    @property
    def outbox(self) -> Outbox:
        if self._outbox is None:
            websocket = self.websocket
            self._outbox = self.hub.bus.open_outbox(
                websocket.send_text, frame_writer(websocket.scope)
            )
            self._outbox.on_overflow = lambda: self.close_soon(CLOSE_BEHIND, "fell too far behind")
        return self._outbox

    @property
    def full(self) -> bool:
        return len(self.subscriptions) >= self.hub.limits.max_subscriptions

    async def subscribe(
        self, key: str, topic: str, render: Render, *, active: bool = True
    ) -> Listener:
        """Listen to `topic` under `key` (a video id, an operation id); errors propagate."""
        listener = Listener(
            self.outbox, render, active=active, collapsible=self.hub.bus.stateful(topic)
        )
        await self.hub.bus.subscribe(topic, listener)
        if self.closed:
            await self.hub.bus.unsubscribe(topic, listener)
            raise ConnectionError("the socket closed while subscribing")
        self.subscriptions[key] = (topic, listener)
        return listener

    async def unsubscribe(self, key: str) -> bool:
        entry = self.subscriptions.pop(key, None)
        if entry is None:
            return False
        await self.hub.bus.unsubscribe(*entry)
        return True

    def keys(self) -> Iterable[str]:
        return self.subscriptions.keys()

    def send_soon(self, text: str) -> None:
        """Send a frame from outside the face's loop (a refusal that came after the reply)."""
        if self.closed:
            return
        task = asyncio.create_task(self._send_quietly(text))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _send_quietly(self, text: str) -> None:
        with suppress(Exception):  # the client may be gone already
            await self.websocket.send_text(text)

    def close_soon(self, code: int, reason: str) -> None:
        """Close from outside the face's loop (revocation, expiry, a reader too far behind)."""
        if self._closing is None and not self.closed:
            self._closing = asyncio.create_task(self.close(code, reason))

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        websocket = self.websocket
        if websocket.application_state != WebSocketState.DISCONNECTED:
            with suppress(Exception):  # the client may be gone already
                await websocket.close(code, reason)

    async def release(self) -> None:
        """Everything this socket held, given back (the face calls it once, on the way out)."""
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        for key in list(self.subscriptions):
            await self.unsubscribe(key)
        if self._outbox is not None:
            await self._outbox.close()
        if self.principal is not None:
            await self.hub._untrack(self, self.principal)
        if self._counted:
            _decrement(self.hub.per_address, self.address)
            self._counted = False
            self.hub._counts_changed()
        if self._closing is not None and self._closing is not asyncio.current_task():
            with suppress(asyncio.CancelledError):
                await self._closing
