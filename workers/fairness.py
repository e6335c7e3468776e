"""Round-robin across users for arq, which runs jobs in score order and knows no users.

arq keeps a queue as a Redis sorted set scored by the millisecond a job becomes due and runs
the lowest scores first once they are due. A transcode job is scored instead by its owner's
round: a user's n-th waiting job is in round n, counted from the round of the job a worker
started last (virtual time, as in fair queuing), so one job of each user with work waiting
runs before anyone's next. Rounds are milliseconds since 1970 in arq's eyes: every job is due
at once, and no worker waits on a score. Jobs of a round run in the order they came.

A retried job (arq's Retry) is rescored by arq to a real due time, after every virtual score:
it goes to the back, which is fair to the others, and is left out of the virtual clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: a round spans this many scores: the jobs of one round keep their arrival order
PER_ROUND = 1000
#: scores below this are rounds (about 31 years of milliseconds); above it, real due times
VIRTUAL_LIMIT = 10**12
#: a user's last round is forgotten after a week without uploads
USER_TTL_S = 7 * 24 * 3600

_ASSIGN = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local round = math.max(now, last) + 1
redis.call('SET', KEYS[2], round, 'EX', ARGV[1])
local seq = redis.call('INCR', KEYS[3]) % tonumber(ARGV[2])
return round * tonumber(ARGV[2]) + seq
"""
_ADVANCE = """
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
local round = tonumber(ARGV[1])
if round > now then redis.call('SET', KEYS[1], round) end
return math.max(now, round)
"""


def _keys(queue_name: str, owner_id: str = "") -> tuple[str, str, str]:
    return f"{queue_name}:fair:now", f"{queue_name}:fair:user:{owner_id}", f"{queue_name}:fair:seq"


async def assign(redis: Redis, *, queue_name: str, owner_id: str) -> datetime:
    """The `_defer_until` that places the owner's next job in its round."""
    score = int(
        await redis.eval(  # type: ignore[misc]
            _ASSIGN, 3, *_keys(queue_name, owner_id), str(USER_TTL_S), str(PER_ROUND)
        )
    )
    return datetime.fromtimestamp(score / 1000, UTC)


async def advance(redis: Redis, *, queue_name: str, score: int) -> None:
    """A worker started the job scored `score`: the virtual clock moves up to its round."""
    if score >= VIRTUAL_LIMIT:
        return
    now_key, _, _ = _keys(queue_name)
    await redis.eval(_ADVANCE, 1, now_key, str(score // PER_ROUND))  # type: ignore[misc]
