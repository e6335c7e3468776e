"""Reads on PostgreSQL straight through asyncpg: the same Core statements, without SQLAlchemy's
execution layer (connection events, compiled-cache lookups, parameter and result objects).

A read statement is compiled once by SQLAlchemy for the asyncpg dialect: its SQL text, the
order of its parameters (an expanding `IN` becomes `= ANY($n)` with one array parameter, so the
text is the same whatever the number of keys) and the dialect's own bind and result processors
(the result processors chosen from the column types PostgreSQL reports, as SQLAlchemy does).
asyncpg then prepares the text once per connection (its statement cache) and every call only
binds values. Rows come back as tuples in the statement's column order, as `Result.all()` gives.

Connections come from a pool of their own, outside any transaction (one statement each, no
session state to reset when they go back). A connection found dead is a server restart: every
connection opened before it is replaced and the read is tried once more on a new one; what
still fails is raised as SQLAlchemy's `DBAPIError` (connection_invalidated for a disconnect),
so both faces map it as they map the ORM's errors (503 for an unavailable database).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement

#: driver errors after which a connection is gone (a server restart or a network failure)
DISCONNECTS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InterfaceError,
    # a connection the server closed while it sat idle can fail its next query this way
    asyncpg.exceptions.InternalClientError,
)
#: connect arguments SQLAlchemy's asyncpg adapter takes for itself, not asyncpg.connect's
_ADAPTER_ONLY = ("prepared_statement_cache_size", "prepared_statement_name_func", "async_fallback")
#: how long a read waits for a pooled connection (SQLAlchemy's pool_timeout default)
ACQUIRE_TIMEOUT_S = 30.0

Processor = Callable[[Any], Any]


@dataclass(slots=True)
class Compiled:
    sql: str
    #: per positional parameter: its name, its compiled value (constants), whether it is a
    #: list (expanding IN), and the dialect's bind processor (None: the value as it is)
    parameters: tuple[tuple[str, Any, bool, Processor | None], ...]
    #: per result column: the dialect's result processor; None until the first execution
    #: told us the column types (an empty tuple: none needed)
    results: tuple[tuple[int, Processor], ...] | None = None


class Unsupported(Exception):
    """The statement uses something `compile_read` does not translate (callers use Core)."""


def compile_read(statement: ClauseElement, dialect: Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    names = list(compiled.positiontup or ())
    plain = [name for name in names if not binds[name].expanding]
    lists = [name for name in names if binds[name].expanding]
    sql = compiled.string
    for offset, name in enumerate(lists, start=len(plain) + 1):
        sql, found = re.subn(
            rf"IN \(__\[POSTCOMPILE_{re.escape(name)}\]\)", f"= ANY(${offset})", sql
        )
        if found != 1:
            raise Unsupported(f"expanding parameter {name}: used {found} times")
    if "__[POSTCOMPILE" in sql:
        raise Unsupported("an expanding parameter outside IN (...)")
    parameters = tuple(
        (
            name,
            binds[name].effective_value,
            binds[name].expanding,
            binds[name].type._cached_bind_processor(dialect),
        )
        for name in (*plain, *lists)
    )
    return Compiled(sql=sql, parameters=parameters)


def _result_processors(
    statement: ClauseElement, dialect: Dialect, attributes: Sequence[Any]
) -> tuple[tuple[int, Processor], ...]:
    compiled = statement.compile(dialect=dialect)
    columns = compiled._result_columns  # type: ignore[attr-defined]
    found = []
    for index, (column, attribute) in enumerate(zip(columns, attributes, strict=True)):
        processor = column[3]._cached_result_processor(dialect, attribute.type.oid)
        if processor is not None:
            found.append((index, processor))
    return tuple(found)


class RawReads:
    """One pool of asyncpg connections for single-statement reads (see the module's doc)."""

    def __init__(self, engine: AsyncEngine, *, max_size: int) -> None:
        self.dialect = engine.dialect
        self.sync_engine = engine.sync_engine
        _args, kwargs = self.dialect.create_connect_args(make_url(engine.url))
        for key in _ADAPTER_ONLY:
            kwargs.pop(key, None)
        self._connect_kwargs = kwargs
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None
        self._compiled: dict[int, tuple[ClauseElement, Compiled]] = {}

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    min_size=0,
                    max_size=self._max_size,
                    reset=_nothing_to_reset,
                    **self._connect_kwargs,
                )
        return self._pool

    def compiled(self, statement: ClauseElement) -> Compiled:
        # Keyed by identity: read statements are module-level constants; the statement is
        # kept beside its compilation so an id is never reused for another one.
        entry = self._compiled.get(id(statement))
        if entry is None or entry[0] is not statement:
            entry = self._compiled[id(statement)] = (
                statement,
                compile_read(statement, self.dialect),
            )
        return entry[1]

    def _arguments(self, compiled: Compiled, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, default, expanding, process in compiled.parameters:
            value = params.get(name, default)
            if process is not None:
                value = [process(v) for v in value] if expanding else process(value)
            elif expanding:
                value = list(value)
            values.append(value)
        return values

    async def fetch(
        self, statement: ClauseElement, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        compiled = self.compiled(statement)
        arguments = self._arguments(compiled, params)
        dispatch = self.sync_engine.dispatch.before_cursor_execute
        if dispatch:  # statement counters and loggers listening on the engine see the read too
            dispatch(None, None, compiled.sql, tuple(arguments), None, False)
        pool = await self._get_pool()
        try:
            records = await self._run(pool, compiled, statement, arguments)
        except TimeoutError as error:  # no connection in time (a subclass of OSError)
            raise _wrapped(compiled, arguments, error) from error
        except DISCONNECTS:
            # The server went away since this connection was opened (a restart): every
            # connection older than now goes, and the read runs once more on a new one.
            await pool.expire_connections()
            try:
                records = await self._run(pool, compiled, statement, arguments)
            except Exception as error:
                raise _wrapped(compiled, arguments, error) from error
        except Exception as error:
            raise _wrapped(compiled, arguments, error) from error
        results = compiled.results
        if not results:
            return [tuple(record) for record in records]
        rows = []
        for record in records:
            row = list(record)
            for index, process in results:
                row[index] = process(row[index])
            rows.append(tuple(row))
        return rows

    async def _run(
        self, pool: asyncpg.Pool, compiled: Compiled, statement: ClauseElement, arguments: list[Any]
    ) -> list[Any]:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            if compiled.results is None:
                prepared = await conn.prepare(compiled.sql)
                compiled.results = _result_processors(
                    statement, self.dialect, prepared.get_attributes()
                )
            return await conn.fetch(compiled.sql, *arguments)  # type: ignore[no-any-return]

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def _nothing_to_reset(_connection: asyncpg.Connection) -> None:
    """Read connections run one SELECT at a time outside transactions: no state to reset
    (asyncpg's default reset is one more round trip per release)."""


def _wrapped(compiled: Compiled, arguments: list[Any], error: Exception) -> Exception:
    if isinstance(error, TimeoutError):
        return sqlalchemy.exc.TimeoutError("no read connection in time")
    return sqlalchemy.exc.DBAPIError(
        compiled.sql,
        tuple(arguments),
        error,
        connection_invalidated=isinstance(error, DISCONNECTS),
    )
