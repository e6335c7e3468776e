"""Per-connection flood control for sockets: throttle a noisy client, then close it."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    """`rate` tokens a second up to `burst`; `take()` spends one if there is one."""

    rate: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    tokens: float = field(init=False)
    _at: float = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = self.burst
        self._at = self.clock()

    def take(self, cost: float = 1.0) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._at) * self.rate)
        self._at = now
        if self.tokens >= cost:
            self.tokens -= cost
            return True
        return False


class Verdict(enum.StrEnum):
    #: handle the message
    ACCEPT = "accept"
    #: drop it (answer with a RATE_LIMITED error if the protocol has one)
    THROTTLE = "throttle"
    #: the client keeps flooding: close the connection (1008, `realtime.connection`)
    CLOSE = "close"


class FloodGuard:
    """One per connection: messages spend one bucket, refused messages spend a smaller one.

    A client over `rate` is throttled; one that keeps sending while throttled runs out of
    strikes and is closed. Nothing here is shared, so a flooder never slows other viewers.
    """

    def __init__(
        self,
        *,
        rate: float,
        burst: float,
        strikes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.messages = TokenBucket(rate=rate, burst=burst, clock=clock)
        # Strikes come back ten times slower than messages, so a sustained flood ends in a close.
        self.strikes = TokenBucket(rate=max(rate / 10, 0.1), burst=strikes, clock=clock)

    def admit(self) -> Verdict:
        if self.messages.take():
            return Verdict.ACCEPT
        return Verdict.THROTTLE if self.strikes.take() else Verdict.CLOSE
