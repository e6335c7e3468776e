"""Redis clients for the stores every process shares (live store, bus, rate limits).

redis-py 5.3's asyncio `ConnectionPool` holds one lock per pool while it checks that the
connection it hands out has no stale data, and that check waits a turn of the event loop
(redis/redis-py#3692; the 5.x line is what arq allows). So every command of a client queued
behind the previous one's check: one command per loop turn, however many connections were free.
On a busy server that capped each process at a few hundred commands a second, and parties fell
seconds behind with the CPU half idle. `BlockingConnectionPool` makes the same check outside
its lock, so commands proceed side by side; it waits (up to `timeout`) when all
`max_connections` are busy instead of opening more.

Two more event-loop turns per command remain in redis-py 5.3, and on a busy server each turn is
the time every other ready callback takes: the pool's check for stale data is a read with a
zero timeout (it fails on the next turn), and with `socket_timeout` each command is sent through
`asyncio.wait_for`, a task of its own on Python 3.11 that runs a turn later. `FastPool` checks a
connection without waiting where it can (hiredis's buffer and the stream's, both empty and not at
the end), and `FastConnection` writes a command at once, waiting under the timeout only when the
socket's buffer is full. Where redis-py's internals are not what these expect, they leave the
work to redis-py's own code. A round of a watch party waits for three or four commands one after
another (docs/PERFORMANCE.md, "Watch parties at scale").
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

#: Connections per client and process; commands beyond them wait for a free one.
MAX_CONNECTIONS = 64
#: How long a command waits for a free connection before it fails (seconds).
WAIT_S = 5.0


class FastConnection(aioredis.Connection):
    """A connection that sends a command in the caller's turn of the event loop."""

    async def send_packed_command(
        self, command: bytes | str | Iterable[bytes], check_health: bool = True
    ) -> None:
        writer = getattr(self, "_writer", None)
        if writer is None or not self.socket_timeout or writer.transport.is_closing():
            await super().send_packed_command(command, check_health)
            return
        if check_health:
            await self.check_health()  # a PING only when one is due
        if isinstance(command, str):
            command = command.encode()
        if isinstance(command, bytes):
            command = [command]
        try:
            writer.writelines(command)
            if writer.transport.get_write_buffer_size():  # the kernel did not take it all
                await asyncio.wait_for(writer.drain(), self.socket_timeout)
        except TimeoutError:
            await self.disconnect(nowait=True)
            raise RedisTimeoutError("Timeout writing to socket") from None
        except OSError as exc:
            await self.disconnect(nowait=True)
            raise RedisConnectionError(f"Error while writing to socket: {exc!r}") from exc
        except BaseException:
            await self.disconnect(nowait=True)
            raise


def _clean(connection: aioredis.Connection) -> bool:
    """Connected, with nothing unread and no end of stream seen: checked without waiting."""
    stream = getattr(connection, "_reader", None)
    parser = getattr(connection, "_parser", None)
    has_data = getattr(getattr(parser, "_reader", None), "has_data", None)
    buffered = getattr(stream, "_buffer", None)
    if not isinstance(stream, asyncio.StreamReader) or not callable(has_data) or buffered is None:
        return False  # not hiredis on an asyncio stream: redis-py's own check
    return not buffered and not has_data() and not stream.at_eof()


class FastPool(aioredis.BlockingConnectionPool):
    async def ensure_connection(self, connection: Any) -> None:
        if connection.is_connected and _clean(connection):
            return
        await super().ensure_connection(connection)


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client whose commands go out at once, side by side."""
    settings: dict[str, Any] = {
        "max_connections": MAX_CONNECTIONS,
        "timeout": WAIT_S,
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "connection_class": FastConnection,
        **options,
    }
    pool = FastPool.from_url(url, **settings)
    return aioredis.Redis(connection_pool=pool)
