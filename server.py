"""How Cowatch runs under uvicorn: the options `cowatch serve` and the tests share."""

from __future__ import annotations

import gc
from typing import Any

from config import Settings
from realtime import uvicorn_writer

#: The largest message a client may send (subscriptions and seeks are small).
WS_MAX_SIZE = 1 << 20
#: Allocations between young-generation collections (CPython's default is 700).
GC_YOUNG_THRESHOLD = 50_000


def tune_gc() -> None:
    """Garbage collection for a long-running server with thousands of sockets.

    With CPython's defaults a collection of the young generation runs every 700 allocations,
    every few milliseconds under load, so request-scoped objects survive into the old
    generations and set off full collections of the whole heap: 250-360 ms pauses, ten of
    them in a soak of 2,000 subscribers, the slowest deliveries of all. A larger young
    generation lets those objects die young (the soak: no full collection while seeking,
    delivery p99 750 ms -> 300 ms); what is alive once the app is built (modules, classes,
    the schema) is frozen out of collections altogether.
    """
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Options for `uvicorn.run` / `uvicorn.Config`, the same for the CLI and the tests."""
    return {
        "log_level": settings.log_level,
        "proxy_headers": True,
        "ws": uvicorn_writer.protocol_class(settings.ws_follow_up),
        "ws_max_size": WS_MAX_SIZE,
    }
