"""The live store: small records that change many times a second, shared by every process.

Two things, each behind the same tiny interface in memory (one process, the embedded mode) and in
Redis (the production shape):

- records with a revision: `read` returns (revision, bytes), `swap` replaces the bytes only if
  the revision is still the one the writer started from (compare-and-set), so concurrent writers
  on any number of processes never lose each other's changes. A refused swap answers with what
  is there now, so the loser retries without reading again (one round trip per attempt). A
  swap may carry messages to publish once the value is written, in the same atomic step (Redis:
  inside the script), so the other processes hear of a change one round trip after it is made
  and in the order the writes happened; a store that cannot (memory) says it did not. A
  record created anew (after the store lost it) starts at a revision no earlier one used, so a
  writer holding a copy from before the loss can never overwrite the new record. A swap may
  name itself (`token`) and the swap it follows (`after`): then it is written only if the
  record is what that swap wrote, so a writer can send a change while the one before it is on
  its way (swaps are carried in the order they are called) and a refused swap refuses every
  swap sent after it (`resolvers/party_runtime.py`);
- presence: per key, entries that are alive until their expiry (epoch ms); a process refreshes
  the entries of its own sockets and drops them when they close, so entries of a process that
  died expire by themselves;
- homes: per key, the one process that holds its lease (`claim`: the first to ask gets it, and
  keeps it while it renews it; `take`: a process takes it over), and an inbox per process
  (`post`, `listen`), so that the other processes can hand a key's changes to its home
  (`resolvers/party_home.py`). In memory the
  one process is every key's home.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from models.redis_pool import InOrder, redis_client

PREFIX = "cowatch:live:"
#: A process's inbox channel (its id follows).
INBOX = PREFIX + "inbox:"
#: How long an inbox's read waits before it reads again (seconds; below the socket timeout).
INBOX_POLL_S = 1.0
#: A record nobody wrote for this long is dropped (it is rebuilt from the database if needed).
RECORD_TTL_MS = 7 * 24 * 3600 * 1000

#: KEYS[1]; ARGV: the revision expected (0: absent), the value, its TTL (ms), a fresh revision,
#: this write's token, the token the record must carry ('' for any), then (channel, message)
#: pairs published once the value is written.
_SWAP = """
local found = redis.call('HMGET', KEYS[1], 'r', 'v', 'w')
local rev = tonumber(found[1] or '0')
if rev ~= tonumber(ARGV[1]) or (ARGV[6] ~= '' and found[3] ~= ARGV[6]) then
  return {0, rev, found[2]}
end
local new = rev + 1
if rev == 0 then new = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], 'r', new, 'v', ARGV[2], 'w', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
for i = 7, #ARGV, 2 do redis.call('PUBLISH', ARGV[i], ARGV[i + 1]) end
return {1, new}
"""

#: A home key's home after `process` asks for it with a lease (ms): `process` if the key had
#: none (claimed) or had it (renewed), else the one that holds it.
_CLAIM_FUNCTION = """
local function claim(key, process, lease)
  local home = redis.call('GET', key)
  if not home then
    redis.call('SET', key, process, 'PX', lease)
    return process
  end
  if home == process then redis.call('PEXPIRE', key, lease) end
  return home
end
"""

#: KEYS[1] a home key; ARGV: this process, the lease (ms).
_CLAIM = _CLAIM_FUNCTION + "return claim(KEYS[1], ARGV[1], ARGV[2])"

#: A presence pass for several records in one call: KEYS, per record, its presence set, the
#: record and its home key; ARGV: this process, the home lease (ms), the presence set's TTL
#: (ms), then per record the number of this process's entries and (entry, expiry) pairs. Per
#: record: the presence set after the refresh (flat: entry, expiry, ...), [revision, value] and
#: the home (claimed or renewed as `claim` does).
_REFRESH = (
    _CLAIM_FUNCTION
    + """
local process, lease, ttl = ARGV[1], ARGV[2], ARGV[3]
local out = {}
local at = 4
for i = 1, #KEYS, 3 do
  local count = tonumber(ARGV[at])
  at = at + 1
  if count > 0 then
    local pairs = {}
    for j = at, at + 2 * count - 1, 2 do
      pairs[#pairs + 1] = ARGV[j + 1]
      pairs[#pairs + 1] = ARGV[j]
    end
    redis.call('ZADD', KEYS[i], unpack(pairs))
    redis.call('PEXPIRE', KEYS[i], ttl)
    at = at + 2 * count
  end
  out[#out + 1] = redis.call('ZRANGE', KEYS[i], 0, -1, 'WITHSCORES')
  out[#out + 1] = redis.call('HMGET', KEYS[i + 1], 'r', 'v')
  out[#out + 1] = claim(KEYS[i + 2], process, lease)
end
return out
"""
)


class Swap(NamedTuple):
    """A compare-and-set's answer: written at `revision`, or refused with what is there now."""

    written: bool
    revision: int
    #: when refused: the record's bytes now (None if it is absent, revision 0)
    value: bytes | None = None
    #: whether the messages given to the swap were published with the write
    published: bool = False


class Tended(NamedTuple):
    """A key after a presence refresh: every presence entry, the record (if any), its home."""

    presence: dict[str, int]
    record: tuple[int, bytes] | None
    #: the process whose lease on the key is current (claimed or renewed by the refresh)
    home: str


def fresh_revision() -> int:
    """A new record's first revision: microseconds since the epoch, above any it replaces."""
    return time.time_ns() // 1000


class LiveStore(Protocol):
    #: the Redis it keeps its records in (None: this process's memory)
    url: str | None

    async def read(self, key: str) -> tuple[int, bytes] | None: ...

    async def swap(
        self,
        key: str,
        revision: int,
        value: bytes,
        publish: Sequence[tuple[str, str]] = (),
        *,
        token: str = "",
        after: str = "",
    ) -> Swap:
        """Store `value` if `key` is still at `revision` (0: absent) and, if `after` is given,
        was last written by the swap whose `token` it is; if written, publish the (channel,
        message) pairs in the same step where the store can (`Swap.published`). Swaps are
        carried out in the order they are called."""
        ...

    async def forget(self, key: str) -> None: ...

    async def present(self, key: str, entries: dict[str, int]) -> None:
        """Set (or refresh) presence entries with their expiry, epoch ms."""
        ...

    async def absent(self, key: str, entry: str) -> None: ...

    async def presence(self, key: str) -> dict[str, int]:
        """Every presence entry of `key` with its expiry (expired ones included)."""
        ...

    async def refresh(
        self, entries: dict[str, dict[str, int]], process: str, lease_ms: int
    ) -> dict[str, Tended]:
        """`present` and `claim` for several keys at once, then each key's presence and record."""
        ...

    async def claim(self, key: str, process: str, lease_ms: int) -> str:
        """The key's home: `process` if the key had none or had it (its lease runs `lease_ms`
        from now), else the process that holds it."""
        ...

    async def take(self, key: str, process: str, lease_ms: int) -> None:
        """Make `process` the key's home, whoever held it (its lease runs `lease_ms`)."""
        ...

    async def post(self, process: str, message: bytes) -> bool:
        """Hand `message` to `process`'s inbox; False if no process listens there."""
        ...

    async def listen(
        self, process: str, handle: Callable[[bytes], None], ready: asyncio.Event
    ) -> None:
        """Hand every message posted to `process` to `handle`, setting `ready` once listening,
        until cancelled; raises if the store's connection fails (the caller listens again)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class MemoryLive:
    """One process's live store (the embedded mode)."""

    url: str | None = None

    def __init__(self) -> None:
        self._records: dict[str, tuple[int, bytes]] = {}
        self._tokens: dict[str, str] = {}
        self._presence: dict[str, dict[str, int]] = {}

    async def read(self, key: str) -> tuple[int, bytes] | None:
        return self._records.get(key)

    async def swap(
        self,
        key: str,
        revision: int,
        value: bytes,
        publish: Sequence[tuple[str, str]] = (),
        *,
        token: str = "",
        after: str = "",
    ) -> Swap:
        found = self._records.get(key)
        if found is None and revision != 0:
            return Swap(False, 0)
        if found is not None and found[0] != revision:
            return Swap(False, *found)
        if found is not None and after and self._tokens[key] != after:
            return Swap(False, *found)
        new = revision + 1 if revision else fresh_revision()
        self._records[key] = (new, value)
        self._tokens[key] = token
        return Swap(True, new)

    async def forget(self, key: str) -> None:
        self._records.pop(key, None)
        self._tokens.pop(key, None)
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

    async def refresh(
        self, entries: dict[str, dict[str, int]], process: str, lease_ms: int
    ) -> dict[str, Tended]:
        for key, mine in entries.items():
            await self.present(key, mine)
        return {
            key: Tended(await self.presence(key), await self.read(key), process) for key in entries
        }

    async def claim(self, key: str, process: str, lease_ms: int) -> str:
        return process  # one process: it is every key's home

    async def take(self, key: str, process: str, lease_ms: int) -> None:
        pass

    async def post(self, process: str, message: bytes) -> bool:
        return False  # no other process to hand anything to

    async def listen(
        self, process: str, handle: Callable[[bytes], None], ready: asyncio.Event
    ) -> None:
        ready.set()
        await asyncio.Event().wait()  # nothing is ever posted here

    async def ping(self) -> None:
        pass

    async def close(self) -> None:
        self._records.clear()
        self._presence.clear()


class RedisLive:
    """The live store in Redis: a hash per record (revision, bytes), a sorted set per presence."""

    def __init__(self, url: str) -> None:
        self.url: str | None = url
        self._redis = redis_client(url)
        #: swaps go out on their own connection, in the order they are called
        self._swaps = InOrder(self._redis)
        self._claim = self._redis.register_script(_CLAIM)
        self._refresh = self._redis.register_script(_REFRESH)

    async def read(self, key: str) -> tuple[int, bytes] | None:
        revision, value = await self._redis.hmget(PREFIX + key, ["r", "v"])  # type: ignore[misc]
        if revision is None or value is None:
            return None
        return int(revision), bytes(value)

    async def swap(
        self,
        key: str,
        revision: int,
        value: bytes,
        publish: Sequence[tuple[str, str]] = (),
        *,
        token: str = "",
        after: str = "",
    ) -> Swap:
        # EVAL, not EVALSHA: a script missing from Redis's cache would fail every swap sent
        # behind it, and Redis caches the compiled script by its body anyway.
        args: list[int | bytes | str] = [_SWAP, 1, PREFIX + key, revision, value]
        args += (RECORD_TTL_MS, fresh_revision(), token, after)
        for channel, message in publish:
            args += (channel, message)
        answer = await self._swaps.execute("EVAL", *args)
        if answer[0]:
            return Swap(True, int(answer[1]), published=bool(publish))
        found = answer[2] if len(answer) > 2 else None
        return Swap(False, int(answer[1]), None if found is None else bytes(found))

    async def forget(self, key: str) -> None:
        await self._redis.delete(PREFIX + key, PREFIX + "presence:" + key, PREFIX + "home:" + key)

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

    async def refresh(
        self, entries: dict[str, dict[str, int]], process: str, lease_ms: int
    ) -> dict[str, Tended]:
        """However many keys (a process's presence pass) in one script: one round trip, and
        one command for the client to pack and parse. As a pipeline of the same commands (five
        per key, and a SCRIPT EXISTS round trip first) the client's own work for 20 keys held
        the event loop for 4-9 ms, several times a second (docs/PERFORMANCE.md)."""
        keys: list[str] = []
        args: list[int | str] = [process, lease_ms, RECORD_TTL_MS]
        for key, mine in entries.items():
            keys += (PREFIX + "presence:" + key, PREFIX + key, PREFIX + "home:" + key)
            args.append(len(mine))
            for entry, until in mine.items():
                args += (entry, until)
        answers = iter(await self._refresh(keys=keys, args=args))
        found = {}
        for key in entries:
            flat, (revision, value), home = next(answers), next(answers), next(answers)
            presence = {flat[i].decode(): int(float(flat[i + 1])) for i in range(0, len(flat), 2)}
            record = None if revision is None or value is None else (int(revision), bytes(value))
            found[key] = Tended(presence, record, home.decode())
        return found

    async def claim(self, key: str, process: str, lease_ms: int) -> str:
        home = await self._claim(keys=[PREFIX + "home:" + key], args=[process, lease_ms])
        return bytes(home).decode()

    async def take(self, key: str, process: str, lease_ms: int) -> None:
        await self._redis.set(PREFIX + "home:" + key, process, px=lease_ms)

    async def post(self, process: str, message: bytes) -> bool:
        return bool(await self._redis.publish(INBOX + process, message))

    async def listen(
        self, process: str, handle: Callable[[bytes], None], ready: asyncio.Event
    ) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(INBOX + process)
            ready.set()
            while True:
                # A read with its own timeout: `listen()` waits under the client's socket
                # timeout, so an inbox quiet for that long failed and was down for RELISTEN_S.
                message = await pubsub.get_message(timeout=INBOX_POLL_S)
                if message is not None and message["type"] == "message":
                    handle(bytes(message["data"]))
        finally:
            ready.clear()
            await pubsub.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._swaps.close()
        await self._redis.aclose()


def open_live_store(redis_url: str | None) -> LiveStore:
    """Redis when the production shape has one, this process's memory otherwise."""
    return RedisLive(redis_url) if redis_url else MemoryLive()
