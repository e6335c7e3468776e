"""The resources built once in the lifespan and handed to resolvers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings
    from models.db import Database
    from resolvers.bus import PlaybackBus
    from resolvers.hashing import PasswordHashing
    from resolvers.ratelimit import RateLimiter
    from storage.base import Storage
    from workers.queue import JobQueue


@dataclass
class Services:
    settings: Settings
    db: Database
    storage: Storage
    jwt_secret: str
    bus: PlaybackBus
    rate_limiter: RateLimiter
    queue: JobQueue
    hashing: PasswordHashing
