"""What one rate-limit hit costs, per store (resolvers/ratelimit.py).

    redis-server --port 6391 --save '' --appendonly no --daemonize yes   # a Redis of its own
    python bench/ratelimit.py --redis redis://127.0.0.1:6391/0 [--hits 20000] [--keys 500]

Redis: `--hits` hits over `--keys` callers at PLAYER_STATE's default (`30/10 seconds`), awaited
one after another, twice: as `RateLimiter.check` pays them (the hit alone) and as a face that
sends X-RateLimit-* pays them (the hit and the window read). For each: this process's CPU and
wall time per hit, and Redis's own `INFO commandstats` for EVALSHA (the Redis is reset with
`CONFIG RESETSTAT` first, so use one nobody else does). Then the Redis memory of one caller who
spent `600/minute`. Memory: CPU per hit with 100 and with 5,000 callers, the event loop turned
every 10 hits as a server's would.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from resolvers.ratelimit import MemoryWindows, RedisWindows, Rule

RULE = Rule(30, 10)


async def _evalsha(redis: Any) -> str:
    stats = await redis.info("commandstats")
    row = stats.get("cmdstat_evalsha", {})
    calls, usec = row.get("calls", 0), row.get("usec_per_call", 0)
    return f"evalsha {calls} calls, {usec} us per call in Redis"


async def redis_hits(url: str, hits: int, keys: int, headers: bool) -> None:
    store = RedisWindows(url, "bench-rl-" + uuid.uuid4().hex)
    redis = store._redis
    await store.hit("warm", RULE)
    await redis.config_resetstat()
    cpu, wall = time.process_time(), time.perf_counter()
    # Before limits (3d8c8c8 and earlier) `hit` returned the whole Decision in one call.
    window = getattr(store, "window", None) if headers else None
    for i in range(hits):
        key = f"player_state:member:{i % keys}"
        await store.hit(key, RULE)
        if window is not None:
            await window(key, RULE)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    shape = "hit + window (headers)" if headers else "hit (check)"
    print(
        f"redis, {shape}: {hits} hits over {keys} keys, {cpu / hits * 1e6:.0f} us CPU and "
        f"{wall / hits * 1e6:.0f} us wall per hit here; {await _evalsha(redis)}"
    )
    await redis.delete(*await redis.keys(store._prefix + ":*"))
    await store.close()


async def redis_memory(url: str) -> None:
    store = RedisWindows(url, "bench-rl-" + uuid.uuid4().hex)
    redis = store._redis
    for _ in range(600):
        await store.hit("api:u:someone", Rule(600, 60))
    keys = await redis.keys(store._prefix + ":*")
    size = sum([await redis.memory_usage(key) or 0 for key in keys])
    print(f"redis memory of one caller who spent 600/minute: {size} bytes in {len(keys)} key(s)")
    await redis.delete(*keys)
    await store.close()


async def memory_hits(hits: int) -> None:
    for keys in (100, 5000):
        store = MemoryWindows()
        cpu = time.process_time()
        for i in range(hits):
            await store.hit(f"player_state:member:{i % keys}", RULE)
            if i % 10 == 0:
                await asyncio.sleep(0)
        per_hit = (time.process_time() - cpu) / hits * 1e6
        print(f"memory: {hits} hits over {keys} keys, {per_hit:.1f} us CPU per hit")
        await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, help="a Redis no one else uses (stats reset)")
    parser.add_argument("--hits", type=int, default=20000)
    parser.add_argument("--keys", type=int, default=500)
    args = parser.parse_args()
    for headers in (False, True):
        await redis_hits(args.redis, args.hits, args.keys, headers)
    await redis_memory(args.redis)
    await memory_hits(50000)


if __name__ == "__main__":
    asyncio.run(main())
