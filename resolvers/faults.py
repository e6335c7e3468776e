"""Telling "a dependency is down right now" (503, retry) from "a bug" (500)."""

from __future__ import annotations

import sqlite3

import asyncpg
import sqlalchemy.exc

#: driver errors that mean the server went away or is starting up / shutting down
_DISCONNECTS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
)


def is_unavailable(exc: BaseException | None) -> bool:
    """True for a database that cannot be reached (refused, reset, restarting, pool exhausted)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlalchemy.exc.DBAPIError):
            if exc.connection_invalidated:
                return True
            if isinstance(exc.orig, BaseException) and is_unavailable(exc.orig):
                return True
        if isinstance(exc, (sqlalchemy.exc.TimeoutError, *_DISCONNECTS)):
            return True
        if isinstance(exc, sqlite3.OperationalError) and "database is locked" in str(exc):
            return True  # SQLite's busy timeout ran out: contention, worth a retry
        exc = exc.__cause__ or exc.__context__
    return False
