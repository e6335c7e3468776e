"""Counts that every page shows but nobody needs exact to the row: cached for a few seconds.

`total_pages` of the feed needs the number of matching videos; counting them on every page is
a scan of the index per request. A `CountCache` keeps each count (per key, e.g. per category)
for `ttl_s` seconds, so a change (a worker finishing a transcode, in any process) shows in the
count within `ttl_s`; concurrent misses share one query; `forget` drops a key at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable


class CountCache:
    def __init__(self, *, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._counts: dict[Hashable, tuple[float, int]] = {}
        self._pending: dict[Hashable, asyncio.Future[int]] = {}

    async def get(self, key: Hashable, count: Callable[[], Awaitable[int]]) -> int:
        """The cached count for `key`, or `count()` run once for all who ask meanwhile."""
        now = time.monotonic()
        cached = self._counts.get(key)
        if cached is not None and now - cached[0] < self.ttl_s:
            return cached[1]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await count()
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: a miss nobody shared must not warn
            raise
        finally:
            self._pending.pop(key, None)
        future.set_result(value)
        if self.ttl_s > 0:
            self._counts[key] = (now, value)
        return value

    def forget(self, key: Hashable | None = None) -> None:
        """Drop one key (or all): the next read counts again."""
        if key is None:
            self._counts.clear()
        else:
            self._counts.pop(key, None)
