"""Password hashing with a bound on memory: argon2 takes 64 MiB per hash, so at most
`COWATCH_HASH_CONCURRENCY` hashes run at once and at most `COWATCH_HASH_QUEUE` wait; a
sign-in beyond that is refused at once (503 SERVICE_UNAVAILABLE, `Retry-After`) instead of
queueing memory without limit (40 concurrent logins used to take 1.8 GB).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeVar

import anyio
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from resolvers.errors import Unavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from config import Settings

T = TypeVar("T")
_hasher = PasswordHasher()
#: Verified against when the email is unknown, so that a miss costs as much as a wrong password.
DUMMY_HASH = _hasher.hash("cowatch-timing-equaliser")
#: what a refused caller is told to wait (a hash takes tens of milliseconds)
RETRY_AFTER_S = 1


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class PasswordHashing:
    """argon2 in worker threads, `concurrency` at a time, `queue` more waiting, the rest refused."""

    def __init__(self, *, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self._slots = asyncio.Semaphore(concurrency)
        self._admitted = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordHashing:
        return cls(concurrency=settings.hash_concurrency, queue=settings.hash_queue)

    async def run(self, work: Callable[..., T], *args: str) -> T:
        if self._admitted >= self.concurrency + self.queue:
            raise Unavailable(
                "too many sign-ins at once: try again in a second", retry_after=RETRY_AFTER_S
            )
        self._admitted += 1
        try:
            async with self._slots:
                # Not abandoned on cancellation: the slot is held until the thread is done.
                return await anyio.to_thread.run_sync(work, *args)
        finally:
            self._admitted -= 1

    async def hash(self, password: str) -> str:
        return await self.run(_hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self.run(_verify, password_hash, password)
