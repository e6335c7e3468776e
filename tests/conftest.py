"""Fixtures: every test runs on both backends, each against a clean real database."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from app import create_app
from config import Settings
from models.live import LiveStore, MemoryLive, RedisLive
from models.migrate import migrate
from resolvers.party_state import live_key
from resolvers.services import Services
from tests.openapi import checker_for

PG_ADMIN_URL = os.environ.get(
    "COWATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
TABLES = (
    "chat_messages",
    "party_events",
    "party_members",
    "parties",
    "transcode_runs",
    "renditions",
    "videos",
    "channels",
    "revoked_tokens",
    "users",
)
T = TypeVar("T")
TEST_SECRET = "test-secret-" + "x" * 40
#: The Redis every Redis-backed test talks to (the one running on this machine).
REDIS_URL = os.environ.get("COWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: per test using `client`: how many REST answers were checked against /openapi.json
CHECKED_ANSWERS: list[int] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CHECKED_ANSWERS:
        terminalreporter.write_line(
            f"openapi: {sum(CHECKED_ANSWERS)} REST answers from {len(CHECKED_ANSWERS)} tests "
            "matched /openapi.json"
        )


def run_blocking(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh loop in a thread (safe inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _asyncpg_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _create_pg_database(name: str) -> str:
    try:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL at {PG_ADMIN_URL} cannot be reached ({exc}); "
            "start it as DEVELOPERS.md says"
        ) from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _asyncpg_url(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
    engine = create_async_engine(url)
    await migrate(engine)
    await engine.dispose()
    return url


async def forget_live_parties(conn: asyncpg.Connection) -> None:
    """Drop the Redis live records of the parties in `conn`'s database: tests whose servers made
    them (two processes over Redis) would leave them for the records' 7-day TTL, and once the
    rows are gone nothing says which records were ours."""
    party_ids = [str(row["id"]) for row in await conn.fetch("SELECT id FROM parties")]
    if not party_ids:
        return
    live = RedisLive(REDIS_URL)
    try:
        for party_id in party_ids:
            await live.forget(live_key(party_id))
    finally:
        await live.close()


async def empty_pg_database(url: str) -> None:
    """Every table of the session's database emptied, its parties' live records first."""
    conn = await asyncpg.connect(url.replace("+asyncpg", ""))
    try:
        await forget_live_parties(conn)
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    finally:
        await conn.close()


async def _drop_pg_database(name: str) -> None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}", timeout=10)
        try:
            await forget_live_parties(conn)
        finally:
            await conn.close()
    finally:
        admin = await asyncpg.connect(PG_ADMIN_URL, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A database of our own on the real server, migrated once, dropped at the end."""
    name = f"cowatch_test_{uuid.uuid4().hex[:12]}"
    url = run_blocking(_create_pg_database(name))
    yield url
    run_blocking(_drop_pg_database(name))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file copied for every test (migrating each time costs more)."""
    path = tmp_path_factory.mktemp("template") / "cowatch.db"

    async def build() -> None:
        engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
        await migrate(engine)
        await engine.dispose()

    run_blocking(build())
    return path


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[str]:
    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "cowatch.db"
        shutil.copy(template, target)
        yield f"sqlite+aiosqlite:///{target}"
        return
    url: str = request.getfixturevalue("pg_url")
    await empty_pg_database(url)
    yield url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        jwt_secret=TEST_SECRET,
        public_url="http://testserver",
    )


@pytest.fixture
async def app_services(settings: Settings) -> AsyncIterator[tuple[object, Services]]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app, app.state.services


@pytest.fixture
def services(app_services: tuple[object, Services]) -> Services:
    return app_services[1]


@pytest.fixture
async def client(app_services: tuple[object, Services]) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client; every REST answer it gets is checked against /openapi.json."""
    app: Any = app_services[0]
    transport = httpx.ASGITransport(app=app)
    checker = checker_for(app.routes)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", event_hooks={"response": [checker]}
    ) as http:
        yield http
    CHECKED_ANSWERS.append(checker.checked)


@pytest.fixture(params=["memory", "redis"])
async def live_store(request: pytest.FixtureRequest) -> AsyncIterator[LiveStore]:
    """A live store, as every process of a deployment shares it: memory, then Redis."""
    live: LiveStore = MemoryLive() if request.param == "memory" else RedisLive(REDIS_URL)
    try:
        yield live
    finally:
        await live.close()
