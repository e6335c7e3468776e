"""Rate limits: sliding windows per (class, caller), in memory or shared through Redis."""

from __future__ import annotations

import enum
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from models.redis_pool import redis_client
from resolvers.errors import InvalidToken, RateLimited

if TYPE_CHECKING:
    from config import Settings

log = logging.getLogger("cowatch.ratelimit")

_RULE_RE = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(\d+)?\s*(second|minute|hour|day)s?\s*$", re.I)
_UNIT_S = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


class RateClass(enum.StrEnum):
    """What a request costs against: the general API budget or a stricter one."""

    #: every REST route and GraphQL operation
    API = "api"
    #: POST /api/auth/login, the `login` mutation (per IP)
    LOGIN = "login"
    #: POST /api/auth/signup, the `signup` mutation (per IP)
    SIGNUP = "signup"
    #: POST /api/videos/upload, the `uploadVideo` mutation
    UPLOAD = "upload"
    #: PUT /api/videos/{id}/time, the `updateVideoTimestamp` mutation
    TIMESTAMP = "timestamp"
    #: joining a party (per address: it guards against guessing invite codes)
    PARTY_JOIN = "party_join"
    #: a member's player reports (per member)
    PLAYER_STATE = "player_state"
    #: chat messages in a party (per member)
    CHAT = "chat"
    #: reactions in a party (per member)
    REACTION = "reaction"


#: Classes counted per IP even with a token: they guard the anonymous entry points.
PER_IP = frozenset({RateClass.LOGIN, RateClass.SIGNUP})
#: Classes counted in the process that receives the request, even with a shared store: a
#: member's player reports arrive on its own sockets, and the ready barrier sends one per member
#: per change, so a round trip to Redis for each was a fifth of a party round's Redis commands.
#: A member with sockets on k processes may send k times the amount.
PER_PROCESS = frozenset({RateClass.PLAYER_STATE})


@dataclass(frozen=True)
class Rule:
    amount: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> Rule:
        """`"100/minute"`, `"5 per 15 minutes"`, `"30/10 seconds"`."""
        match = _RULE_RE.match(text)
        if not match:
            raise ValueError(f"rate limit {text!r}: expected e.g. '100/minute' or '5/15 minutes'")
        amount, multiple, unit = match.groups()
        period = int(multiple or 1) * _UNIT_S[unit.lower()]
        if int(amount) < 1 or period < 1:
            raise ValueError(f"rate limit {text!r}: amount and period must be positive")
        return cls(amount=int(amount), period_s=period)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    #: epoch seconds when the next request will be accepted again (the store's window)
    reset_at: float

    def retry_after(self, now: float | None = None) -> int:
        return max(1, math.ceil(self.reset_at - (time.time() if now is None else now)))

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }

    def raise_if_refused(self) -> None:
        if not self.allowed:
            retry = self.retry_after()
            raise RateLimited(
                f"too many requests: retry in {retry} s", retry_after=retry, limit=self.limit
            )


class WindowStore(Protocol):
    async def hit(self, key: str, rule: Rule) -> bool:
        """Count one request if its window has room: True if counted, False (not counted) if not."""
        ...

    async def window(self, key: str, rule: Rule) -> tuple[float, int]:
        """The window as it stands: (epoch seconds when a request is accepted again, remaining)."""
        ...

    async def attempt(
        self, key: str, *, limit: int, window_s: int, lock_s: int
    ) -> tuple[int, float]:
        """Count an attempt (the login lockout's rule, resolvers/lockout.py), atomically.

        The count starts a `window_s` window; the attempt that reaches `limit` turns the window
        into a `lock_s` lock; while it lasts nothing is counted. Returns the attempt's number
        (`limit + 1` when refused) and the seconds until the window or lock ends.
        """
        ...

    async def close(self) -> None: ...


class SlidingWindows:
    """The `limits` library's sliding window counter over one of its async storages.

    A rule's period is cut into windows of `period_s`; a request is counted while the current
    window's count plus the previous window's, weighted by the share of the previous window
    still inside the last `period_s`, stays within the amount. Exact within one window; across
    a window's end it assumes the previous window's hits were spread evenly, so any `period_s`
    can hold up to twice the amount (two windows' worth) when hits bunch at the end of one.
    O(1) per key: two counters, whatever the amount.
    """

    def __init__(self, storage: Storage) -> None:
        self._limiter = SlidingWindowCounterRateLimiter(storage)
        self._items: dict[Rule, RateLimitItem] = {}

    def _item(self, rule: Rule) -> RateLimitItem:
        item = self._items.get(rule)
        if item is None:
            item = self._items[rule] = RateLimitItemPerSecond(rule.amount, rule.period_s)
        return item

    async def hit(self, key: str, rule: Rule) -> bool:
        return await self._limiter.hit(self._item(rule), key)

    async def window(self, key: str, rule: Rule) -> tuple[float, int]:
        reset_at, remaining = await self._limiter.get_window_stats(self._item(rule), key)
        return reset_at, remaining


class MemoryWindows:
    """One process's moving windows (the embedded mode): the hit times per key, oldest first.

    Exact, and O(1) per hit but for the hits that left the window. Not limits' memory storage:
    that one walks every live counter on each event-loop turn that saw a hit, which cost a server
    with 1,000 party members reporting once a second 8-18 points of a core (`bench/parties.py
    --parties 200 --only Cowatch`, 2026-12-02: 51-52 % before, 59-70 % with it).
    """

    SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._period: dict[str, int] = {}
        self._calls = 0
        self._attempts: dict[str, tuple[int, float]] = {}

    def _live(self, key: str, rule: Rule, now: float) -> deque[float]:
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        self._period[key] = rule.period_s
        while hits and hits[0] <= now - rule.period_s:
            hits.popleft()
        return hits

    async def hit(self, key: str, rule: Rule) -> bool:
        now = time.time()
        hits = self._live(key, rule, now)
        if len(hits) >= rule.amount:
            return False
        hits.append(now)
        return True

    async def window(self, key: str, rule: Rule) -> tuple[float, int]:
        now = time.time()
        hits = self._live(key, rule, now)
        # when the oldest hit leaves the window
        return (hits[0] if hits else now) + rule.period_s, rule.amount - len(hits)

    def _sweep(self, now: float) -> None:
        for key in [
            k for k, hits in self._hits.items() if not hits or hits[-1] <= now - self._period[k]
        ]:
            del self._hits[key], self._period[key]
        for key in [k for k, (_, ends) in self._attempts.items() if ends <= now]:
            del self._attempts[key]

    async def attempt(
        self, key: str, *, limit: int, window_s: int, lock_s: int
    ) -> tuple[int, float]:
        now = time.time()
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        count, ends = self._attempts.get(key, (0, now))
        if ends <= now:
            count, ends = 0, now + window_s
        if count >= limit:
            return limit + 1, ends - now
        count += 1
        if count >= limit:
            ends = now + lock_s
        self._attempts[key] = (count, ends)
        return count, ends - now

    async def close(self) -> None:
        self._hits.clear()
        self._period.clear()
        self._attempts.clear()


#: WindowStore.attempt in one Redis call: KEYS[1]; ARGV limit, window ms, lock ms.
ATTEMPT_LUA = """
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit = tonumber(ARGV[1])
if count >= limit then
  return {limit + 1, redis.call('PTTL', KEYS[1])}
end
count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count >= limit then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
return {count, redis.call('PTTL', KEYS[1])}
"""


class RedisWindows(SlidingWindows):
    """Windows in Redis, shared by every process (limits' Lua scripts: one call per hit, O(1)).

    A key's windows start at its first hit. The lockout's attempts are our own script: limits
    has no rule that turns a full window into a lock.
    """

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._prefix = prefix
        self._redis = redis_client(redis_url)
        # limits takes our pool (models/redis_pool.py: commands do not queue behind each other)
        pool: Any = self._redis.connection_pool
        storage = RedisStorage(
            "async+" + redis_url, implementation="redispy", key_prefix=prefix, connection_pool=pool
        )
        super().__init__(storage)
        self._attempt = self._redis.register_script(ATTEMPT_LUA)

    async def attempt(
        self, key: str, *, limit: int, window_s: int, lock_s: int
    ) -> tuple[int, float]:
        keys = [f"{self._prefix}:{key}"]
        count, ttl_ms = await self._attempt(keys=keys, args=[limit, window_s * 1000, lock_s * 1000])
        return int(count), max(0, int(ttl_ms)) / 1000

    async def close(self) -> None:
        await self._redis.aclose()


class RateLimiter:
    """The limits every face applies; fails open (and logs) when the shared store is down."""

    def __init__(
        self,
        store: WindowStore,
        rules: dict[RateClass, Rule],
        enabled: bool,
        local: WindowStore | None = None,
    ) -> None:
        self.store = store
        #: where the PER_PROCESS classes are counted (`store` itself in the embedded mode)
        self.local = store if local is None else local
        self.rules = rules
        self.enabled = enabled
        self._last_error_log = 0.0

    def _store(self, rate_class: RateClass) -> WindowStore:
        return self.local if rate_class in PER_PROCESS else self.store

    async def hit(self, rate_class: RateClass, key: str) -> Decision | None:
        """Count one request and read its window for the X-RateLimit-* headers (two store calls).

        None when limits are off or cannot be checked right now.
        """
        if not self.enabled:
            return None
        rule = self.rules[rate_class]
        name = f"{rate_class.value}:{key}"
        store = self._store(rate_class)
        try:
            allowed = await store.hit(name, rule)
            reset_at, remaining = await store.window(name, rule)
        except Exception as exc:
            self._unavailable(exc)
            return None
        return Decision(allowed, rule.amount, remaining, reset_at)

    async def check(self, rate_class: RateClass, key: str) -> None:
        """Count one request (one store call); RateLimited, with its window read, when over."""
        if not self.enabled:
            return
        rule = self.rules[rate_class]
        name = f"{rate_class.value}:{key}"
        store = self._store(rate_class)
        try:
            if await store.hit(name, rule):
                return
            reset_at, remaining = await store.window(name, rule)
        except Exception as exc:
            self._unavailable(exc)
            return
        Decision(False, rule.amount, remaining, reset_at).raise_if_refused()

    def _unavailable(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log > 10:
            self._last_error_log = now
            log.warning("rate limit store unavailable, allowing requests: %r", exc)

    async def close(self) -> None:
        await self.store.close()
        if self.local is not self.store:
            await self.local.close()


def caller_key(*, secret: str, token: str | None, ip: str | None, per_ip: bool = False) -> str:
    """Whom a request is counted against: `u:<user id>` for a validly signed token, else the IP.

    Only the signature is checked (no database): revocation does not matter for counting.
    """
    from resolvers import auth  # auth -> lockout -> ratelimit: import at call time

    if token is not None and not per_ip:
        try:
            return "u:" + auth.decode_token(secret=secret, token=token).user_id
        except InvalidToken:
            pass
    return "ip:" + (ip or "unknown")


def rules_from(settings: Settings) -> dict[RateClass, Rule]:
    return {
        RateClass.API: Rule.parse(settings.rate_limit_api),
        RateClass.LOGIN: Rule.parse(settings.rate_limit_login),
        RateClass.SIGNUP: Rule.parse(settings.rate_limit_signup),
        RateClass.UPLOAD: Rule.parse(settings.rate_limit_upload),
        RateClass.TIMESTAMP: Rule.parse(settings.rate_limit_timestamp),
        RateClass.PARTY_JOIN: Rule.parse(settings.rate_limit_party_join),
        RateClass.PLAYER_STATE: Rule.parse(settings.rate_limit_player_state),
        RateClass.CHAT: Rule.parse(settings.rate_limit_chat),
        RateClass.REACTION: Rule.parse(settings.rate_limit_reaction),
    }


def open_rate_limiter(settings: Settings) -> RateLimiter:
    """Shared through Redis with COWATCH_REDIS_URL (but PER_PROCESS), in this process without."""
    rules, enabled = rules_from(settings), settings.rate_limit_enabled
    if settings.redis_url:
        shared = RedisWindows(settings.redis_url, settings.rate_limit_prefix)
        return RateLimiter(shared, rules, enabled, local=MemoryWindows())
    return RateLimiter(MemoryWindows(), rules, enabled)
