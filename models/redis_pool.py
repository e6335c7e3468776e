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

`InOrder` sends commands on one connection of its own in the order they are called, without
waiting for the one before to be answered (pipelining), and hands each its own answer: what a
party's home needs to write a change while the one before it is still on its way
(`resolvers/party_runtime.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from typing import Any

from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
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


class InOrder:
    """Commands on one connection of their own, sent in the order `execute` is called and each
    answered in turn, a command not waiting for the answer to the one before it. Redis runs a
    connection's commands in the order they arrive, so two commands called in order run in
    that order. If the connection fails, every command waiting fails with it (whether Redis
    ran them is unknown, as for any command whose answer is lost) and the next one reconnects.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: aioredis.Connection | None = None
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._sending = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    async def execute(self, *args: Any) -> Any:
        return await (await self.send(*args))

    async def send(self, *args: Any) -> asyncio.Future[Any]:
        """Send a command and return its answer to come. Once connected this does not wait
        (unless the socket's buffer is full): a caller may send many before any is answered."""
        async with self._sending:  # first come, first sent (uncontended: no wait)
            connection = self._connection
            if connection is None or not connection.is_connected:
                connection = await self._connect()
            answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._waiting.append(answer)
            self._wake.set()
            try:
                await connection.send_packed_command(
                    connection.pack_command(*args), check_health=False
                )
            except Exception as exc:
                self._broken(connection, exc)
                raise
        return answer

    async def _connect(self) -> aioredis.Connection:
        await self.close()
        connection = self._pool.make_connection()
        await connection.connect()
        self._connection = connection
        self._reader = asyncio.create_task(self._read(connection), name="cowatch-redis-in-order")
        return connection

    async def _read(self, connection: aioredis.Connection) -> None:
        waiting = self._waiting
        while True:
            while not waiting:
                self._wake.clear()
                await self._wake.wait()
            try:
                answer: Any = await connection.read_response()
            except ResponseError as exc:  # this command's own error: the next ones go on
                answer = exc
            except Exception as exc:
                self._broken(connection, exc)
                return
            done = waiting.popleft()
            if done.done():  # its caller gave up
                continue
            if isinstance(answer, ResponseError):
                done.set_exception(answer)
            else:
                done.set_result(answer)

    def _broken(self, connection: aioredis.Connection, exc: Exception) -> None:
        """Fail every command waiting on `connection`; the next command connects anew."""
        if self._connection is not connection:
            return
        self._connection = None
        self._fail_waiting(
            exc
            if isinstance(exc, RedisConnectionError | RedisTimeoutError)
            else RedisConnectionError(f"the connection failed: {exc!r}")
        )
        # redis-py disconnected it already (a failed read or write disconnects)

    def _fail_waiting(self, exc: Exception) -> None:
        while self._waiting:
            done = self._waiting.popleft()
            if not done.done():
                done.set_exception(exc)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.disconnect(nowait=True)
        self._fail_waiting(RedisConnectionError("the connection was closed"))
