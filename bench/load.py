"""A small HTTP/1.1 load generator: N keep-alive connections, each sending its next request as
soon as the previous answer is complete (closed loop), latencies recorded per request.

Written on raw asyncio protocols (no HTTP client library) so the client side costs little CPU and
the same for every server it loads; run it on uvloop.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


def request(method: str, path: str, body: bytes = b"", content_type: str = "") -> bytes:
    """One pre-encoded request for a keep-alive connection to 127.0.0.1."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body:
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class Run:
    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    first_failure: bytes = b""


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line[15:])
        if len(self.buffer) < end + 4 + length:
            return
        body = bytes(self.buffer[end + 4 : end + 4 + length])
        del self.buffer[: end + 4 + length]
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((int(head[9:12]), body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("server closed the connection"))

    async def send(self, payload: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return await self.waiter


async def fetch(port: int, payload: bytes) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    loop = asyncio.get_running_loop()
    transport, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
    try:
        return await conn.send(payload)
    finally:
        transport.close()


async def load(
    port: int,
    payloads: Sequence[bytes],
    *,
    clients: int,
    warmup_s: float,
    seconds: float,
    marks: tuple[Callable[[], None], Callable[[], None]] | None = None,
) -> Run:
    """Keep `clients` connections busy for warmup + seconds; record the measured part only.

    `marks` are called when the measured part starts and when it ends (e.g. to read CPU time).
    """
    loop = asyncio.get_running_loop()
    run = Run()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup_s, start + warmup_s + seconds
    if marks is not None:
        loop.call_later(warmup_s, marks[0])
        loop.call_later(warmup_s + seconds, marks[1])

    async def client(offset: int) -> None:
        transport, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
        cycle = itertools.islice(itertools.cycle(payloads), offset, None)
        try:
            for payload in cycle:
                sent = time.perf_counter()
                if sent >= stop_at:
                    return
                status, body = await conn.send(payload)
                if sent >= measure_from:
                    run.latencies.append(time.perf_counter() - sent)
                    if status != 200:
                        run.failures += 1
                        run.first_failure = run.first_failure or body[:300]
        finally:
            transport.close()

    await asyncio.gather(*(client(i * 7) for i in range(clients)))
    return run
