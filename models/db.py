"""The engine and session factory, built once in the app's lifespan."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.sql import ClauseElement
from sqlmodel.ext.asyncio.session import AsyncSession

from models.raw import RawReads

#: a pooled connection idle longer than this is pinged before use (see `_ping_if_idle`)
PING_AFTER_IDLE_S = 10.0


def _ping_if_idle(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling for idle connections only.

    SQLAlchemy's `pool_pre_ping` pings on every checkout, and for asyncpg a ping is three round
    trips (BEGIN, `;`, ROLLBACK): more than the read it guards. A connection returned less than
    PING_AFTER_IDLE_S ago was just working; an older one is pinged, and one that fails is
    replaced before anyone uses it. A server restart is still noticed at once: the first
    disconnect error invalidates every connection opened before it.
    """
    sync_engine = engine.sync_engine

    def checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return
        try:
            sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError() from error

    event.listen(sync_engine, "checkin", checkin)
    event.listen(sync_engine, "checkout", checkout)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_roll_back_dropped(dbapi_connection: Any, _record: Any, _error: Any) -> None:
    """Roll back a connection SQLAlchemy drops (a task cancelled while a statement was awaited
    counts as a disconnect) before it is closed: Python 3.11's sqlite3 closes a connection whose
    cursor still holds a statement (after an executemany) without ending its transaction, so its
    write lock would stay until that cursor is garbage collected and every writer would wait for
    it. The rollback runs on the connection's thread after the statement it interrupted."""
    with suppress(Exception):  # a connection that is really broken is closed anyway
        dbapi_connection.rollback()


class Database:
    """An async engine plus a session factory; resolvers open one short session per call."""

    def __init__(
        self, url: str, *, echo: bool = False, pool_size: int = 20, max_overflow: int = 20
    ) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=max_overflow,
                pool_recycle=1800,
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        # Reads run one statement each: on PostgreSQL, without a transaction around it there is
        # no BEGIN and no ROLLBACK, one round trip instead of three (same pool, same connections).
        # SQLite's driver opens no transaction for a SELECT anyway.
        self._reads: AsyncEngine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        #: PostgreSQL reads on hot paths skip SQLAlchemy's execution layer (models/raw.py)
        self._raw: RawReads | None = None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            event.listen(self.engine.sync_engine, "invalidate", _sqlite_roll_back_dropped)
        else:
            _ping_if_idle(self.engine)
            self._raw = RawReads(self.engine, max_size=pool_size)
        self._sessions = async_sessionmaker(
            self.engine, class_=AsyncSession, expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for single-statement reads (SQLAlchemy Core), outside any transaction."""
        async with self._reads.connect() as conn:
            yield conn

    async def fetch(
        self, statement: ClauseElement, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of one read statement (a module-level Core SELECT), outside any transaction.

        PostgreSQL runs it through asyncpg directly (models/raw.py); SQLite through Core. Either
        way the engine's `before_cursor_execute` listeners see the statement.
        """
        if self._raw is not None:
            return await self._raw.fetch(statement, params)
        async with self._reads.connect() as conn:
            return (await conn.execute(statement, params)).all()  # type: ignore[call-overload]

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        if self._raw is not None:
            await self._raw.close()
        await self.engine.dispose()
