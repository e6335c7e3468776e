"""The per-user daily transcode-seconds budget: each run's cost, and when a user may go on."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlmodel import col, select, update

from models import TranscodeRun
from models.base import as_utc, utcnow
from models.db import Database

WINDOW = timedelta(hours=24)


async def start_run(*, db: Database, owner_id: str, video_id: str) -> str:
    """Record that a run began (its seconds are filled in by `end_run`); the run's id."""
    run = TranscodeRun(owner_id=owner_id, video_id=video_id)
    async with db.session() as session:
        session.add(run)
        await session.commit()
    return run.id


async def end_run(*, db: Database, run_id: str, seconds: float) -> None:
    async with db.session() as session:
        await session.exec(
            update(TranscodeRun).where(col(TranscodeRun.id) == run_id).values(seconds=seconds)
        )
        await session.commit()


async def spent(
    *, db: Database, owner_id: str, budget_s: float, now: datetime | None = None
) -> tuple[float, int]:
    """Seconds the owner's runs used in the last 24 h, and how many seconds until that is
    under `budget_s` again (0 when it already is)."""
    now = now or utcnow()
    async with db.session() as session:
        rows = (
            await session.exec(
                select(TranscodeRun.started_at, TranscodeRun.seconds)
                .where(
                    col(TranscodeRun.owner_id) == owner_id,
                    col(TranscodeRun.started_at) > now - WINDOW,
                )
                .order_by(col(TranscodeRun.started_at))
            )
        ).all()
    used = sum(seconds for _, seconds in rows)
    remaining = used
    for started_at, seconds in rows:
        if remaining < budget_s:
            break
        remaining -= seconds  # the oldest run leaves the window first
        wait = (as_utc(started_at) + WINDOW - now).total_seconds()
        if remaining < budget_s:
            return used, max(1, math.ceil(wait))
    return used, 0
