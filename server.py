"""How Cowatch runs under uvicorn: the options `cowatch serve` and the tests share, and a
websocket protocol that writes several frames with one system call.

Fan-out sends thousands of sockets the same small frames; on loopback the write, not the
framing, is most of a frame's price (py-spy, 2,000 sockets at 16 seeks/s: 43 % of the server's
samples in `transport.write`, one per frame). `BatchingWebSocketProtocol` is uvicorn's
sans-I/O protocol plus the `WRITE_TEXTS` scope extension: a `FrameWriter` that frames a batch
and writes it at once, so a socket that is behind gets its backlog in one call.

Framing: with no extension negotiated, a server's text frame is a fixed header and the payload
(RFC 6455 §5.2: FIN + text opcode, unmasked), built here directly; the connection's `websockets`
state machine (three objects and a buffer per frame) is used when compression was negotiated.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request
from websockets.protocol import State

from config import Settings
from resolvers.delivery import WRITE_TEXTS, FrameWriter

#: The largest message a client may send (subscriptions and seeks are small).
WS_MAX_SIZE = 1 << 20
#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


class BatchingWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent when the handshake was refused
        if scope is not None:
            # The ASGI task was created above but has not run yet: it sees the extension.
            writer = FrameWriter(write=self.write_texts, writable=self.writable)
            scope["extensions"][WRITE_TEXTS] = {"writer": writer}

    def write_texts(self, texts: Sequence[str]) -> bool:
        """Frame `texts` and write them at once; False (nothing written) if the buffer is full."""
        if self.disconnected or self.close_sent or not self.handshake_complete:
            raise ClientDisconnected()
        if not self.writable.is_set():
            return False
        conn = self.conn
        if conn.extensions or conn.state is not State.OPEN:
            for text in texts:
                conn.send_text(text.encode())
            self.transport.write(b"".join(conn.data_to_send()))
            return True
        out = conn.data_to_send()  # anything the protocol queued goes first (normally nothing)
        for text in texts:
            payload = text.encode()
            out.append(_header(len(payload)))
            out.append(payload)
        self.transport.write(b"".join(out))
        return True


_SHORT_HEADERS = [bytes((0x81, length)) for length in range(126)]


def _header(length: int) -> bytes:
    """An unmasked, final text frame's header for a payload of `length` bytes."""
    if length < 126:
        return _SHORT_HEADERS[length]
    if length < 1 << 16:
        return bytes((0x81, 126)) + length.to_bytes(2, "big")
    return bytes((0x81, 127)) + length.to_bytes(8, "big")


def tune_gc() -> None:
    """Garbage collection for a long-running server with thousands of sockets.

    With CPython's defaults a collection of the young generation runs every 700 allocations,
    every few milliseconds under load, so request-scoped objects survive into the old
    generations and set off full collections of the whole heap: 250-360 ms pauses, ten of
    them in a soak of 2,000 subscribers, the slowest deliveries of all. A larger young
    generation lets those objects die young (the soak: no full collection while seeking,
    delivery p99 750 ms -> 300 ms); what is alive once the app is built (modules, classes,
    the schema) is frozen out of collections altogether.
    """
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Options for `uvicorn.run` / `uvicorn.Config`, the same for the CLI and the tests."""
    return {
        "log_level": settings.log_level,
        "proxy_headers": True,
        "ws": BatchingWebSocketProtocol,
        "ws_max_size": WS_MAX_SIZE,
    }
