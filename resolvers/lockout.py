"""Login lockout: an email gets `max_failures` attempts per window, then is locked for a while.

An attempt is reserved (counted) in one atomic step *before* its password is verified, and a
reservation is refused while the email is locked, so at most `max_failures` guesses per window
are ever verified, however many arrive at once. The attempt that takes the last slot starts the
lock (`lock_s`); a right password clears the count and the lock; once a lock ends the next
attempt starts a fresh window.

Known accounts count in their row (one `UPDATE … RETURNING`, SQLite and PostgreSQL alike);
unknown emails count in the rate-limit store (`WindowStore.attempt`, the same rule), so both
answer alike, `Retry-After` included, and the lockout does not tell which emails have accounts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, and_, case, not_, or_, select, update

from models import User
from models.base import as_utc, utcnow
from resolvers.errors import AccountLocked, InvalidCredentials

if TYPE_CHECKING:
    from config import Settings
    from models.db import Database
    from resolvers.ratelimit import RateLimiter


@dataclass(frozen=True)
class Lockout:
    max_failures: int = 5
    window_s: int = 15 * 60
    lock_s: int = 15 * 60

    @classmethod
    def from_settings(cls, settings: Settings) -> Lockout:
        return cls(
            max_failures=settings.login_max_failures,
            window_s=settings.login_failure_window_s,
            lock_s=settings.login_lock_s,
        )


def locked(seconds: float) -> AccountLocked:
    retry = max(1, math.ceil(seconds))
    return AccountLocked(f"too many failed logins: try again in {retry} s", retry_after=retry)


def wrong(remaining: int) -> InvalidCredentials:
    return InvalidCredentials(
        f"email or password is wrong ({remaining} attempts left)", attempts_remaining=remaining
    )


USERS = cast(Table, User.__table__)  # type: ignore[attr-defined]  # SQLModel sets it


async def reserve(*, db: Database, user_id: str, policy: Lockout) -> int:
    """Count an attempt on an account before verifying it: its number in the window.

    AccountLocked (nothing counted) while the account is locked.
    """
    now = utcnow()
    c = USERS.c
    locked_now = and_(c.locked_until.is_not(None), c.locked_until > now)
    fresh = or_(
        c.first_failed_at.is_(None),
        c.first_failed_at < now - timedelta(seconds=policy.window_s),
        c.locked_until.is_not(None),  # a lock that has ended: a new window
    )
    count = case((fresh, 1), else_=c.failed_logins + 1)
    statement = (
        update(USERS)
        .where(c.id == user_id, not_(locked_now))
        .values(
            failed_logins=count,
            first_failed_at=case((fresh, now), else_=c.first_failed_at),
            locked_until=case(
                (count >= policy.max_failures, now + timedelta(seconds=policy.lock_s)),
                else_=None,
            ),
        )
        .returning(c.failed_logins)
    )
    async with db.engine.begin() as conn:
        reserved = (await conn.execute(statement)).scalar_one_or_none()
        if reserved is None:
            until = (
                await conn.execute(select(c.locked_until).where(c.id == user_id))
            ).scalar_one_or_none()
    if reserved is None:
        left = (as_utc(until) - now).total_seconds() if until is not None else policy.lock_s
        raise locked(left)
    return int(reserved)


async def record_success(*, db: Database, user_id: str) -> None:
    """A right password: the count and any lock are cleared."""
    statement = (
        update(USERS)
        .where(USERS.c.id == user_id)
        .values(failed_logins=0, first_failed_at=None, locked_until=None)
    )
    async with db.engine.begin() as conn:
        await conn.execute(statement)


async def reserve_unknown(
    *, limiter: RateLimiter | None, email: str, policy: Lockout
) -> int | None:
    """Count an attempt on an email without an account, by the same rule; None if uncountable."""
    if limiter is None:
        return None
    key = "login-attempts:" + hashlib.sha256(email.encode()).hexdigest()
    try:
        number, seconds_left = await limiter.store.attempt(
            key, limit=policy.max_failures, window_s=policy.window_s, lock_s=policy.lock_s
        )
    except Exception:
        return None  # the store is down: fail open, like the rate limits
    if number > policy.max_failures:
        raise locked(seconds_left)
    return number


def failure(attempt: int | None, policy: Lockout) -> Exception:
    """The answer to a wrong password (or an unknown email) on the given attempt."""
    if attempt is None:
        return wrong(policy.max_failures - 1)
    if attempt >= policy.max_failures:
        return locked(policy.lock_s)
    return wrong(policy.max_failures - attempt)
