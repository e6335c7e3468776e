"""The one adapter onto uvicorn's internals: a websocket protocol that writes many frames at once
and offers a per-socket heartbeat.

Fan-out sends thousands of sockets the same small frames; on loopback the write, not the framing,
is most of a frame's price (py-spy, 2,000 sockets at 16 seeks/s: 43 % of the server's samples in
`transport.write`, one per frame). `BatchingWebSocketProtocol` is uvicorn's sans-I/O protocol plus
the `WRITE_TEXTS` scope extension: a `FrameWriter` that frames a batch and writes it at once, so a
socket that is behind gets its backlog in one call. The `KEEPALIVE` extension lets a socket that
needs it (a party member's: presence must notice a tab that vanished) ping faster than uvicorn's
global `ws_ping_interval`, and reads the measured round trip.

A frame to a client across a network is followed by a 2-byte unsolicited pong (RFC 6455 §5.5.3:
allowed, and answered by nobody; browsers and uvicorn ignore it) in the next event-loop turn, once
per socket per turn (5 ms later for a client behind a proxy on this host, so that the proxy has
sent the frames on before the pong comes: `PROXIED_FOLLOW_UP_S`). A change is usually one small
frame, one TCP segment with nothing behind it; when that segment is lost, Linux notices only when
its loss probe fires, two smoothed round trips plus the 200 ms minimum RTO later when one segment
is in flight. With a second segment behind it
the client's selective acknowledgement reveals the hole and the frame is sent again about a round
trip later (bench/tail_loss.py, 50 ± 10 ms each way, 1 % loss: p99 428 ms -> 155 ms). Clients on
loopback get none (no loss to cover, and no extra write for the fan-out benches), unless a trusted
proxy's X-Forwarded-For says the client is elsewhere, or `COWATCH_WS_FOLLOW_UP=always`.

It subclasses a private uvicorn class and reads its attributes, so `protocol_class()` checks the
installed uvicorn at start-up: outside the tested range, or missing anything used here, Cowatch
runs on uvicorn's own protocol (every frame an ordinary ASGI send) and says so once at WARNING,
instead of failing on every write and leaving subscribers with nothing.

Framing: with no extension negotiated, a server's text frame is a fixed header and the payload
(RFC 6455 §5.2: FIN + text opcode, unmasked), built here directly; the connection's `websockets`
state machine is used when compression was negotiated.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import version
from ipaddress import ip_address
from typing import Any, Literal

from realtime.delivery import KEEPALIVE, WRITE_TEXTS, Disconnected, FrameWriter, Keepalive

log = logging.getLogger("cowatch.realtime")

#: The uvicorn releases this adapter is tested with (pyproject.toml pins the same range).
TESTED = ((0, 53), (0, 55))
#: What the adapter reads or calls on uvicorn's protocol instances.
NEEDED = (
    "disconnected",
    "close_sent",
    "handshake_complete",
    "writable",
    "conn",
    "transport",
    "ping_interval",
    "ping_timeout",
    "last_ping_rtt",
    "ping_timer",
    "pong_timer",
    "pending_ping_payload",
    "read_paused",
    "client",
    "loop",
)
#: Methods of uvicorn's protocol the heartbeat calls.
METHODS = ("handle_connect", "start_keepalive", "stop_keepalive", "keepalive_timeout", "receive")
#: What the adapter reads that uvicorn's protocol sets when the request comes (`handle_connect`).
NEEDED_ON_CONNECT = ("scope",)
#: Behind a proxy on this host, how long after a turn's frames their follow-up goes (seconds). In
#: the next turn the proxy reads both at once and sends them on as one segment, which protects
#: nothing (bench/tail_loss.py --proxy nginx, 1 % loss: p99 413 ms with the follow-up in the next
#: turn against 404 ms without; 155 ms with it 1 ms later, 144 ms 5 ms later).
PROXIED_FOLLOW_UP_S = 0.005


def _version_tuple(text: str) -> tuple[int, int]:
    major, minor = text.split(".")[:2]
    return int(major), int("".join(ch for ch in minor if ch.isdigit()) or 0)


def problems() -> list[str]:
    """Why the batched writer cannot run on the installed uvicorn (empty: it can)."""
    try:
        from uvicorn.protocols.websockets.websockets_sansio_impl import (
            WebSocketsSansIOProtocol,
        )
        from websockets.protocol import State  # noqa: F401
    except ImportError as exc:
        return [f"uvicorn's sans-I/O websocket protocol is not importable: {exc}"]
    found: list[str] = []
    installed = _version_tuple(version("uvicorn"))
    if not TESTED[0] <= installed < TESTED[1]:
        found.append(f"uvicorn {version('uvicorn')} is outside the tested range {TESTED}")
    source = WebSocketsSansIOProtocol.__init__.__code__.co_names
    missing = [name for name in NEEDED if name not in source]
    if missing:
        found.append(f"uvicorn's protocol no longer sets {', '.join(missing)}")
    for method in METHODS:
        if not callable(getattr(WebSocketsSansIOProtocol, method, None)):
            found.append(f"uvicorn's protocol has no {method}")
    connect = getattr(WebSocketsSansIOProtocol, "handle_connect", None)
    on_connect = connect.__code__.co_names if callable(connect) else ()
    for name in NEEDED_ON_CONNECT:
        if name not in on_connect:
            found.append(f"uvicorn's protocol no longer sets {name} on connect")
    return found


#: Which sockets get a follow-up segment after their frames: those of clients not on this host,
#: directly or through a trusted proxy on this host ("remote"), every socket, or none.
FollowUp = Literal["remote", "always", "never"]


def is_local(client: tuple[str, int] | None) -> bool:
    """Whether a peer address is this host (loopback, or a Unix socket: no address)."""
    if not client:
        return True
    try:
        address = ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def protocol_class(follow_up: FollowUp = "remote") -> type[Any] | str:
    """Our batching protocol, or uvicorn's default ("auto") with one warning if it cannot run."""
    found = problems()
    if found:
        log.warning(
            "batched websocket writes are off (every frame is a plain ASGI send): %s",
            "; ".join(found),
        )
        return "auto"
    return _batching_protocol(follow_up)


def _batching_protocol(follow_up: FollowUp) -> type[Any]:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.http11 import Request
    from websockets.protocol import State

    class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
        #: how long after a turn's frames their follow-up goes (seconds; 0: the next turn), or
        #: None for none; decided at the first frame, once the proxy headers have been read
        follow_up_after: float | None = None
        follow_up_decided = False
        #: a follow-up is scheduled
        follow_up_pending = False

        def decide_follow_up(self) -> None:
            """Whom this socket's follow-ups are for: a client across a network (at once), a
            client behind a proxy on this host (a moment later, for the proxy to send the frames
            first), or nobody. Behind a trusted proxy uvicorn's proxy headers have replaced the
            scope's client with the proxy's client by the time the app sends a frame."""
            self.follow_up_decided = True
            if follow_up == "never":
                return
            if not is_local(self.client):  # the transport's peer: the client itself
                self.follow_up_after = 0.0
            elif follow_up == "always" or not is_local(self.scope.get("client")):
                self.follow_up_after = PROXIED_FOLLOW_UP_S

        def schedule_follow_up(self) -> None:
            if not self.follow_up_decided:
                self.decide_follow_up()
            after = self.follow_up_after
            if after is None or self.follow_up_pending:
                return
            self.follow_up_pending = True
            if after:
                self.loop.call_later(after, self.send_follow_up)
            else:
                self.loop.call_soon(self.send_follow_up)

        def send_follow_up(self) -> None:
            """The segment behind the turn's frames: an unsolicited pong, answered by nobody."""
            self.follow_up_pending = False
            if self.disconnected or self.close_sent or self.transport.is_closing():
                return
            conn = self.conn
            if conn.state is State.OPEN:
                conn.send_pong(b"")
                self.transport.write(b"".join(conn.data_to_send()))

        async def send(self, message: Any) -> None:
            await super().send(message)
            if message["type"] == "websocket.send":
                self.schedule_follow_up()

        def handle_connect(self, event: Request) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)  # absent when the handshake was refused
            if scope is not None:
                # The ASGI task was created above but has not run yet: it sees the extensions.
                writer = FrameWriter(write=self.write_texts, writable=self.writable)
                scope["extensions"][WRITE_TEXTS] = {"writer": writer}
                heartbeat = Keepalive(set=self.set_keepalive, rtt=self.round_trip)
                scope["extensions"][KEEPALIVE] = {"keepalive": heartbeat}

        def set_keepalive(self, interval: float, timeout: float) -> None:
            """Ping this socket every `interval` s; close it if an answer takes over `timeout` s."""
            if (self.ping_interval, self.ping_timeout) == (interval, timeout):
                return
            self.ping_interval, self.ping_timeout = interval, timeout
            if self.handshake_complete and not self.close_sent and self.pong_timer is None:
                self.stop_keepalive()
                self.start_keepalive()

        # The pong deadline. uvicorn reads a socket one message ahead of the app: while a
        # handler works on one message and the next is queued, it stops reading the socket
        # (`read_paused`), so the client's pong waits unread in the buffer and the deadline
        # passes although the client answered in time. A deadline that falls while the server
        # is not reading is the server's delay, not the client's: it is held over and runs
        # again, a whole `ping_timeout` long, once the app takes the next message and reading
        # resumes (a client that really stopped answering is closed then). Without this, a
        # party member whose messages the server was slow to handle was closed with 1011
        # "keepalive ping timeout" although it answered every ping (bench/parties.py, 100
        # parties with chat: a host's `party:playback` queued 1.07 s behind its previous message).
        pong_overdue = False

        def keepalive_timeout(self) -> None:
            if self.read_paused and not self.close_sent and not self.transport.is_closing():
                self.pong_timer = None
                self.pong_overdue = True  # the ping stays pending: its pong may be unread
                return
            super().keepalive_timeout()

        async def receive(self) -> Any:
            message = await super().receive()
            if self.pong_overdue and not self.read_paused:
                self.pong_overdue = False
                timeout = self.ping_timeout
                if self.pending_ping_payload is not None and not self.close_sent and timeout:
                    self.pong_timer = self.loop.call_later(timeout, self.keepalive_timeout)
            return message

        def stop_keepalive(self) -> None:
            super().stop_keepalive()
            self.pong_overdue = False

        def round_trip(self) -> float | None:
            return self.last_ping_rtt or None

        def write_texts(self, texts: Sequence[str]) -> bool:
            """Frame `texts`, write them at once; False (nothing written) if the buffer is full."""
            if self.disconnected or self.close_sent or not self.handshake_complete:
                raise Disconnected()
            if not self.writable.is_set():
                return False
            conn = self.conn
            if conn.extensions or conn.state is not State.OPEN:
                for text in texts:
                    conn.send_text(text.encode())
                self.transport.write(b"".join(conn.data_to_send()))
                self.schedule_follow_up()
                return True
            out = conn.data_to_send()  # anything the protocol queued goes first (normally nothing)
            for text in texts:
                payload = text.encode()
                out.append(_header(len(payload)))
                out.append(payload)
            self.transport.write(b"".join(out))
            self.schedule_follow_up()
            return True

    return BatchingWebSocketProtocol


_SHORT_HEADERS = [bytes((0x81, length)) for length in range(126)]


def _header(length: int) -> bytes:
    """An unmasked, final text frame's header for a payload of `length` bytes."""
    if length < 126:
        return _SHORT_HEADERS[length]
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")
