"""Reads straight through asyncpg (models/raw.py) give what SQLAlchemy Core gives, and heal."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy import event

from config import Settings
from models import VideoStatus
from models.db import Database
from models.raw import compile_read
from resolvers import videos
from resolvers.services import Services
from tests.factories import make_user, make_videos

STATEMENTS = [
    (videos._FEEDS[(True, False)], {"offset": 0, "limit": 7}),
    (videos._FEEDS[(False, True)], {"offset": 2, "limit": 3, "category": None}),
    (videos._COUNT, {}),
    (videos._OWNERS_VIDEOS, {"ids": []}),
    (videos._RENDITIONS, {"ids": ["not-a-video"]}),
]


async def _core(db: Database, statement: sa.Select[object], params: dict[str, object]) -> list:
    async with db.read() as conn:
        return [tuple(row) for row in (await conn.execute(statement, params)).all()]


async def test_fetch_answers_as_core_does(services: Services) -> None:
    creator = await make_user(services, "maker")
    made = await make_videos(services, creator.user, 9)
    owner_ids = [creator.user.id, "nobody"]
    checks: list[tuple[Any, Any]] = [
        *STATEMENTS,
        (videos._OWNERS_VIDEOS, {"ids": owner_ids}),
        (videos._USERS, {"ids": owner_ids}),
        (videos._VIDEO, {"id": made[3].id}),
        (videos._RENDITIONS, {"ids": [video.id for video in made]}),
    ]
    for statement, params in checks:
        fetched = [tuple(row) for row in await services.db.fetch(statement, params)]
        assert fetched == await _core(services.db, statement, params), statement
    (row,) = await services.db.fetch(videos._VIDEO, {"id": made[0].id})
    assert row[5] is VideoStatus.TRANSCODED  # the Enum column's result processor ran
    assert row[13].tzinfo is not None or services.db.is_sqlite


async def test_engine_listeners_see_every_read(services: Services) -> None:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(services.db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await services.db.fetch(videos._USERS, {"ids": ["a", "b"]})
    finally:
        event.remove(services.db.engine.sync_engine, "before_cursor_execute", record)
    assert len(seen) == 1 and "users" in seen[0]


def test_expanding_in_becomes_one_array_parameter() -> None:
    dialect = Database("postgresql+asyncpg://postgres@127.0.0.1/none").engine.dialect
    compiled = compile_read(videos._OWNERS_VIDEOS, dialect)
    assert "= ANY($3)" in compiled.sql and "POSTCOMPILE" not in compiled.sql
    assert [name for name, *_ in compiled.parameters][-1] == "ids"


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # its own read pool
async def test_a_dropped_connection_is_replaced_and_the_read_retried(
    services: Services, backend: str
) -> None:
    creator = await make_user(services)
    await make_videos(services, creator.user, 2)
    assert len(await services.db.fetch(videos._FEEDS[(False, False)], {"offset": 0, "limit": 5}))
    # every read connection is closed by the server, as a restart would
    admin = await asyncpg.connect(services.settings.effective_database_url.replace("+asyncpg", ""))
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    rows = await services.db.fetch(videos._FEEDS[(False, False)], {"offset": 0, "limit": 5})
    assert len(rows) == 2


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # its own read pool
async def test_reads_wait_for_a_connection_and_a_cancelled_one_is_not_reused(
    settings: Settings, backend: str
) -> None:
    db = Database(settings.effective_database_url, pool_size=1)
    try:
        one = sa.select(sa.literal(1))
        answers = await asyncio.gather(*(db.fetch(one, {}) for _ in range(5)))
        assert [list(rows) for rows in answers] == [[(1,)]] * 5  # one connection, taken in turn
        slow = asyncio.create_task(db.fetch(sa.select(sa.func.pg_sleep(30)), {}))
        await asyncio.sleep(0)  # one turn: the slow read takes the idle connection, no I/O
        waiting = asyncio.create_task(db.fetch(one, {}))
        await asyncio.sleep(0)  # and the next read waits for it
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert list(await waiting) == [(1,)]  # on a new connection, the cancelled one closed
        assert list(await db.fetch(one, {})) == [(1,)]
    finally:
        await db.dispose()
