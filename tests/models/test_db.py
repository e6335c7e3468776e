"""The engine (models/db.py): a SQLite transaction a cancelled task leaves behind holds no lock."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from models.db import Database

ROWS = sa.table("rows", sa.column("x", sa.Integer))


async def test_a_write_cancelled_mid_statement_leaves_sqlite_writable(tmp_path: Path) -> None:
    path = tmp_path / "cowatch.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    try:
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE rows (x INTEGER)")

        async def write() -> None:
            async with db.engine.begin() as conn:
                # An executemany, like the party log writer's: its cursor keeps its statement.
                await conn.execute(sa.insert(ROWS), [{"x": 1}, {"x": 2}])

        task = asyncio.create_task(write())

        def cancel_at_insert(*args: Any) -> None:
            if str(args[2]).startswith("INSERT"):
                task.cancel()  # delivered while the statement is awaited

        event.listen(db.engine.sync_engine, "before_cursor_execute", cancel_at_insert)
        with pytest.raises(asyncio.CancelledError):
            await task
        other = sqlite3.connect(path, timeout=0)  # refused at once if the lock were still held
        try:
            other.execute("INSERT INTO rows VALUES (3)")
            other.commit()
            assert other.execute("SELECT x FROM rows").fetchall() == [(3,)]
        finally:
            other.close()
    finally:
        await db.dispose()
