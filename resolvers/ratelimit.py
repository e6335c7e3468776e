"""Rate limits: moving windows per (class, caller), in memory or shared through Redis."""

from __future__ import annotations

import enum
import itertools
import logging
import math
import re
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

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
    #: epoch seconds when the next request will be accepted again (the oldest hit leaves the window)
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
    async def hit(self, key: str, rule: Rule) -> Decision: ...

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


class MemoryWindows:
    """One process's moving windows: the hit times per key, oldest first."""

    SWEEP_EVERY = 1024

    def __init__(self) -> None:
        self._hits: dict[str, deque[float]] = {}
        self._period: dict[str, int] = {}
        self._calls = 0
        self._attempts: dict[str, tuple[int, float]] = {}

    async def hit(self, key: str, rule: Rule) -> Decision:
        now = time.time()
        self._calls += 1
        if self._calls % self.SWEEP_EVERY == 0:
            self._sweep(now)
        hits = self._hits.setdefault(key, deque())
        self._period[key] = rule.period_s
        while hits and hits[0] <= now - rule.period_s:
            hits.popleft()
        allowed = len(hits) < rule.amount
        if allowed:
            hits.append(now)
        reset_at = (hits[0] if hits else now) + rule.period_s
        return Decision(allowed, rule.amount, rule.amount - len(hits), reset_at)

    def _sweep(self, now: float) -> None:
        for key in [k for k, hits in self._hits.items() if hits[-1] <= now - self._period[k]]:
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


#: WindowStore.hit in one Redis call, a moving window as a sorted set of hit times:
#: KEYS[1]; ARGV now (ms), period (ms), amount, a unique name for this hit.
HIT_LUA = """
local now = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], period)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {allowed, count, oldest[2] or ARGV[1]}
"""


class RedisWindows:
    """Moving windows in Redis, shared by every process: one atomic script call per hit."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self._prefix = prefix
        self._redis = redis_client(redis_url)
        self._hit = self._redis.register_script(HIT_LUA)
        self._attempt = self._redis.register_script(ATTEMPT_LUA)
        self._hits = itertools.count()

    async def hit(self, key: str, rule: Rule) -> Decision:
        now_ms = int(time.time() * 1000)
        name = f"{now_ms}:{next(self._hits)}:{secrets.token_hex(4)}"
        args: list[int | str] = [now_ms, rule.period_s * 1000, rule.amount, name]
        allowed, count, oldest = await self._hit(keys=[f"{self._prefix}:w:{key}"], args=args)
        reset_at = float(oldest) / 1000 + rule.period_s
        return Decision(bool(allowed), rule.amount, max(0, rule.amount - int(count)), reset_at)

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

    def __init__(self, store: WindowStore, rules: dict[RateClass, Rule], enabled: bool) -> None:
        self.store = store
        self.rules = rules
        self.enabled = enabled
        self._last_error_log = 0.0

    async def hit(self, rate_class: RateClass, key: str) -> Decision | None:
        """Count one request; None when limits are off or cannot be checked right now."""
        if not self.enabled:
            return None
        rule = self.rules[rate_class]
        try:
            return await self.store.hit(f"{rate_class.value}:{key}", rule)
        except Exception as exc:
            now = time.monotonic()
            if now - self._last_error_log > 10:
                self._last_error_log = now
                log.warning("rate limit store unavailable, allowing requests: %r", exc)
            return None

    async def check(self, rate_class: RateClass, key: str) -> Decision | None:
        """Count one request and raise RateLimited when it is over the limit."""
        decision = await self.hit(rate_class, key)
        if decision is not None:
            decision.raise_if_refused()
        return decision

    async def close(self) -> None:
        await self.store.close()


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
    """Redis-backed when COWATCH_REDIS_URL is set, in-process otherwise."""
    store: WindowStore
    if settings.redis_url:
        store = RedisWindows(settings.redis_url, settings.rate_limit_prefix)
    else:
        store = MemoryWindows()
    return RateLimiter(store, rules_from(settings), settings.rate_limit_enabled)
