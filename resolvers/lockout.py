"""Login lockout: too many wrong passwords for one email lock it for a while.

Known accounts count in their row with single atomic UPDATEs (SQLite and PostgreSQL alike);
unknown emails count in the rate-limit store, so both answer the same way and the lockout
does not tell an attacker which emails have accounts.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, case, or_, update

from models import User
from models.base import as_utc, utcnow
from resolvers.errors import AccountLocked, InvalidCredentials
from resolvers.ratelimit import Decision, Rule

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


def refuse_if_locked(user: User) -> None:
    if user.locked_until is not None:
        left = (as_utc(user.locked_until) - utcnow()).total_seconds()
        if left > 0:
            raise locked(left)


USERS = cast(Table, User.__table__)  # type: ignore[attr-defined]  # SQLModel sets it


async def record_failure(*, db: Database, user_id: str, policy: Lockout) -> Exception:
    """Count a wrong password in one statement; the error to answer with."""
    now = utcnow()
    c = USERS.c
    stale = or_(
        c.first_failed_at.is_(None), c.first_failed_at < now - timedelta(seconds=policy.window_s)
    )
    count = case((stale, 1), else_=c.failed_logins + 1)
    statement = (
        update(USERS)
        .where(c.id == user_id)
        .values(
            failed_logins=count,
            first_failed_at=case((stale, now), else_=c.first_failed_at),
            locked_until=case(
                (count >= policy.max_failures, now + timedelta(seconds=policy.lock_s)),
                else_=None,
            ),
        )
        .returning(c.failed_logins)
    )
    async with db.engine.begin() as conn:
        failures = int((await conn.execute(statement)).scalar_one())
    if failures >= policy.max_failures:
        return locked(policy.lock_s)
    return wrong(policy.max_failures - failures)


async def record_success(*, db: Database, user: User) -> None:
    if user.failed_logins or user.locked_until is not None:
        statement = (
            update(USERS)
            .where(USERS.c.id == user.id)
            .values(failed_logins=0, first_failed_at=None, locked_until=None)
        )
        async with db.engine.begin() as conn:
            await conn.execute(statement)


async def count_unknown_email(
    *, limiter: RateLimiter | None, email: str, policy: Lockout
) -> Decision | None:
    """Count an attempt on an email without an account; raise AccountLocked like a known one."""
    if limiter is None:
        return None
    key = "login-miss:" + hashlib.sha256(email.encode()).hexdigest()
    try:
        decision = await limiter.store.hit(key, Rule(policy.max_failures, policy.window_s))
    except Exception:
        return None
    if not decision.allowed:
        raise locked(decision.retry_after())
    return decision


def unknown_email_failure(decision: Decision | None, policy: Lockout) -> Exception:
    """The answer to an unknown email, shaped like a wrong password's."""
    if decision is None:
        return wrong(policy.max_failures - 1)
    return locked(policy.lock_s) if decision.remaining == 0 else wrong(decision.remaining)
