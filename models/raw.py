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
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy.exc
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

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
    assert isinstance(compiled, SQLCompiler)  # a statement's compiler: it names its binds
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
    columns = compiled._result_columns
    assert columns is not None  # a SELECT's compiler lists its result columns
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
        self.pool = ReadPool(dict(kwargs), max_size=max_size)
        self._compiled: dict[int, tuple[ClauseElement, Compiled]] = {}

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
        pool = self.pool
        try:
            records = await self._run(pool, compiled, statement, arguments)
        except TimeoutError as error:  # no connection in time (a subclass of OSError)
            raise _wrapped(compiled, arguments, error) from error
        except DISCONNECTS:
            # The server went away since this connection was opened (a restart): every
            # connection older than now goes, and the read runs once more on a new one.
            pool.expire()
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
        self, pool: ReadPool, compiled: Compiled, statement: ClauseElement, arguments: list[Any]
    ) -> list[Any]:
        conn = await pool.acquire()
        done = False
        try:
            if compiled.results is None:
                prepared = await conn.prepare(compiled.sql)
                compiled.results = _result_processors(
                    statement, self.dialect, prepared.get_attributes()
                )
            records: list[Any] = await conn.fetch(compiled.sql, *arguments)
            done = True
            return records
        finally:
            pool.release(conn, reuse=done)

    async def close(self) -> None:
        await self.pool.close()


class ReadPool:
    """Connections for one-statement reads: taken and given back without a task, a timer or a
    reset round trip (asyncpg's own pool spends a task on each release and a query on each
    reset). A connection whose read did not finish normally (an error, a cancelled request)
    is closed, never reused; `expire()` retires every connection opened before it."""

    def __init__(self, connect_kwargs: dict[str, Any], *, max_size: int) -> None:
        self._kwargs = connect_kwargs
        self._max_size = max_size
        self._idle: list[asyncpg.Connection] = []
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._generation = 0
        self._born: dict[int, int] = {}  # id(connection) -> the generation it was opened in

    async def acquire(self) -> asyncpg.Connection:
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.is_closed() or self._born.get(id(conn)) != self._generation:
                    self._discard(conn)
                    continue
                return conn
            if self._open < self._max_size:
                self._open += 1
                generation = self._generation
                try:
                    conn = await asyncpg.connect(**self._kwargs)
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
                self._born[id(conn)] = generation
                return conn
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
                    await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                elif waiter.done() and not waiter.cancelled():
                    self._wake()  # pass on the turn this waiter was given
                raise

    def release(self, conn: asyncpg.Connection, *, reuse: bool) -> None:
        if reuse and not conn.is_closed() and self._born.get(id(conn)) == self._generation:
            self._idle.append(conn)
        else:
            self._discard(conn)
        self._wake()

    def expire(self) -> None:
        """Every connection opened so far is retired (idle ones now, busy ones when released)."""
        self._generation += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            self._discard(conn)

    def _discard(self, conn: asyncpg.Connection) -> None:
        if self._born.pop(id(conn), None) is not None:
            self._open -= 1
        if not conn.is_closed():
            conn.terminate()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            self._born.pop(id(conn), None)
            self._open -= 1
            await conn.close()


def _wrapped(compiled: Compiled, arguments: list[Any], error: Exception) -> Exception:
    if isinstance(error, TimeoutError):
        return sqlalchemy.exc.TimeoutError("no read connection in time")
    return sqlalchemy.exc.DBAPIError(
        compiled.sql,
        tuple(arguments),
        error,
        connection_invalidated=isinstance(error, DISCONNECTS),
    )
