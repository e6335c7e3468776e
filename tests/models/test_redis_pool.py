"""The shared Redis client: commands go out at once, and a connection is checked before use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis

from models.redis_pool import FastConnection, FastPool, redis_client
from tests.conftest import REDIS_URL


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    made = redis_client(REDIS_URL)
    try:
        yield made
    finally:
        await made.aclose()


@pytest.fixture
def key() -> str:
    return f"test:{uuid.uuid4().hex}"


async def test_commands_side_by_side_each_get_their_own_answer(
    client: aioredis.Redis, key: str
) -> None:
    assert isinstance(client.connection_pool, FastPool)
    answers = await asyncio.gather(*(client.incr(key) for _ in range(200)))
    assert sorted(answers) == list(range(1, 201))
    await client.delete(key)


async def test_a_command_goes_out_in_the_callers_turn_of_the_event_loop(
    client: aioredis.Redis,
) -> None:
    """redis-py 5.3 waits a turn to check a connection and another to send through a task."""
    await client.ping()  # a connected connection in the pool
    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        for step in (pool.ensure_connection(connection), connection.send_command("PING")):
            with pytest.raises(StopIteration):
                step.send(None)  # finished without suspending once
        assert await connection.read_response() == b"PONG"
    finally:
        await pool.release(connection)


async def test_a_connection_with_unread_data_is_replaced_before_use(
    client: aioredis.Redis, key: str
) -> None:
    await client.set(key, "value")
    pool = client.connection_pool
    connection = await pool.get_connection()
    assert isinstance(connection, FastConnection)
    await connection.send_command("PING")  # an answer nobody reads
    await asyncio.sleep(0.05)
    await pool.release(connection)

    assert await client.get(key) == b"value"  # not the stale PONG
    await client.delete(key)


async def test_a_connection_redis_closed_is_replaced_before_use(
    client: aioredis.Redis, key: str
) -> None:
    await client.set(key, "value")
    connection_id = await client.client_id()
    other = redis_client(REDIS_URL)
    try:
        await other.client_kill_filter(_id=connection_id)
    finally:
        await other.aclose()
    await asyncio.sleep(0.05)  # the end of the stream reaches the idle connection

    assert await client.get(key) == b"value"
    await client.delete(key)
