"""Redis clients for the stores every process shares (live store, bus, rate limits).

redis-py 5.3's asyncio `ConnectionPool` holds one lock per pool while it checks that the
connection it hands out has no stale data, and that check waits a turn of the event loop
(redis/redis-py#3692; the 5.x line is what arq allows). So every command of a client queued
behind the previous one's check: one command per loop turn, however many connections were free.
On a busy server that capped each process at a few hundred commands a second, and parties fell
seconds behind with the CPU half idle. `BlockingConnectionPool` makes the same check outside
its lock, so commands proceed side by side; it waits (up to `timeout`) when all
`max_connections` are busy instead of opening more.
"""

from __future__ import annotations

from typing import Any

from redis import asyncio as aioredis

#: Connections per client and process; commands beyond them wait for a free one.
MAX_CONNECTIONS = 64
#: How long a command waits for a free connection before it fails (seconds).
WAIT_S = 5.0


def redis_client(url: str, **options: Any) -> aioredis.Redis:
    """A client whose commands do not queue behind each other's connection checks."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=WAIT_S,
        socket_connect_timeout=2,
        socket_timeout=5,
        **options,
    )
    return aioredis.Redis(connection_pool=pool)
