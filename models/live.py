"""The live store: small records that change many times a second, shared by every process.

Two things, each behind the same tiny interface in memory (one process, the embedded mode) and in
Redis (the production shape):

- records with a revision: `read` returns (revision, bytes), `write` replaces the bytes only if
  the revision is still the one read (compare-and-set), so concurrent writers on any number of
  processes never lose each other's changes — the loser reads again and retries;
- presence: per key, entries that are alive until their expiry (epoch ms); a process refreshes
  the entries of its own sockets and drops them when they close, so entries of a process that
  died expire by themselves.
"""

from __future__ import annotations

from typing import Protocol

from models.redis_pool import redis_client

PREFIX = "cowatch:live:"
#: A record nobody wrote for this long is dropped (it is rebuilt from the database if needed).
RECORD_TTL_MS = 7 * 24 * 3600 * 1000

_CAS = """
local rev = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if rev ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'r', rev + 1, 'v', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return rev + 1
"""


class LiveStore(Protocol):
    async def read(self, key: str) -> tuple[int, bytes] | None: ...

    async def write(self, key: str, revision: int, value: bytes) -> int:
        """Store `value` if `key` is still at `revision` (0: absent); the new revision, or 0."""
        ...

    async def forget(self, key: str) -> None: ...

    async def present(self, key: str, entries: dict[str, int]) -> None:
        """Set (or refresh) presence entries with their expiry, epoch ms."""
        ...

    async def absent(self, key: str, entry: str) -> None: ...

    async def presence(self, key: str) -> dict[str, int]:
        """Every presence entry of `key` with its expiry (expired ones included)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryLive:
    """One process's live store (the embedded mode)."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[int, bytes]] = {}
        self._presence: dict[str, dict[str, int]] = {}

    async def read(self, key: str) -> tuple[int, bytes] | None:
        return self._records.get(key)

    async def write(self, key: str, revision: int, value: bytes) -> int:
        found = self._records.get(key)
        if (found[0] if found else 0) != revision:
            return 0
        self._records[key] = (revision + 1, value)
        return revision + 1

    async def forget(self, key: str) -> None:
        self._records.pop(key, None)
        self._presence.pop(key, None)

    async def present(self, key: str, entries: dict[str, int]) -> None:
        self._presence.setdefault(key, {}).update(entries)

    async def absent(self, key: str, entry: str) -> None:
        entries = self._presence.get(key)
        if entries is not None:
            entries.pop(entry, None)
            if not entries:
                del self._presence[key]

    async def presence(self, key: str) -> dict[str, int]:
        return dict(self._presence.get(key, {}))

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        self._records.clear()
        self._presence.clear()


class RedisLive:
    """The live store in Redis: a hash per record (revision, bytes), a sorted set per presence."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        self._cas = self._redis.register_script(_CAS)

    async def read(self, key: str) -> tuple[int, bytes] | None:
        revision, value = await self._redis.hmget(PREFIX + key, ["r", "v"])  # type: ignore[misc]
        if revision is None or value is None:
            return None
        return int(revision), bytes(value)

    async def write(self, key: str, revision: int, value: bytes) -> int:
        return int(await self._cas(keys=[PREFIX + key], args=[revision, value, RECORD_TTL_MS]))

    async def forget(self, key: str) -> None:
        await self._redis.delete(PREFIX + key, PREFIX + "presence:" + key)

    async def present(self, key: str, entries: dict[str, int]) -> None:
        if entries:
            name = PREFIX + "presence:" + key
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(name, entries)  # type: ignore[arg-type]
                pipe.pexpire(name, RECORD_TTL_MS)
                await pipe.execute()

    async def absent(self, key: str, entry: str) -> None:
        await self._redis.zrem(PREFIX + "presence:" + key, entry)

    async def presence(self, key: str) -> dict[str, int]:
        entries = await self._redis.zrange(PREFIX + "presence:" + key, 0, -1, withscores=True)
        return {member.decode(): int(score) for member, score in entries}

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()


def open_live_store(redis_url: str | None) -> LiveStore:
    """Redis when the production shape has one, this process's memory otherwise."""
    return RedisLive(redis_url) if redis_url else MemoryLive()
