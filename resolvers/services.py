"""The resources built once in the lifespan and handed to resolvers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resolvers.counts import CountCache

if TYPE_CHECKING:
    from config import Settings
    from models.db import Database
    from realtime.bus import Bus
    from realtime.connection import Hub
    from resolvers.hashing import PasswordHashing
    from resolvers.party_runtime import PartyRuntime
    from resolvers.processing import SubscriptionCap
    from resolvers.ratelimit import RateLimiter
    from storage.base import Storage
    from workers.queue import JobQueue


@dataclass
class Services:
    settings: Settings
    db: Database
    storage: Storage
    jwt_secret: str
    #: publish here (resolvers take it as their `Publisher`); sockets subscribe through `hub`
    bus: Bus
    hub: Hub
    rate_limiter: RateLimiter
    queue: JobQueue
    hashing: PasswordHashing
    #: watch parties: their live state, events, presence and timers
    parties: PartyRuntime
    #: open `videoProcessing` subscriptions per user in this process
    processing_subscriptions: SubscriptionCap
    #: counts shown on every page (the feed's total), cached for a few seconds
    counts: CountCache = field(default_factory=lambda: CountCache(ttl_s=5.0))
