"""The shared Redis client: commands go out at once, and a connection is checked before use."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from models.redis_pool import FastConnection, FastPool, InOrder, redis_client
from tests.conftest import REDIS_URL


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    made = redis_client(REDIS_URL)
    try:
        yield made
    finally:
        await made.aclose()


async def until_readable(connection: aioredis.Connection) -> None:
    """Until something (data, or the end of the stream) reaches the connection, unread."""
    reader = connection._reader
    assert isinstance(reader, asyncio.StreamReader)
    if not reader._buffer and not reader.at_eof():  # type: ignore[attr-defined]
        await asyncio.wait_for(reader._wait_for_data("until_readable"), 5)  # type: ignore[attr-defined]


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
    await until_readable(connection)
    await pool.release(connection)

    assert await client.get(key) == b"value"  # not the stale PONG
    await client.delete(key)


async def test_a_connection_redis_closed_is_replaced_before_use(
    client: aioredis.Redis, key: str
) -> None:
    await client.set(key, "value")
    connection_id = await client.client_id()
    pool = client.connection_pool
    connection = await pool.get_connection()  # the one that ran CLIENT ID, idle in the pool
    await pool.release(connection)
    other = redis_client(REDIS_URL)
    try:
        await other.client_kill_filter(_id=connection_id)
    finally:
        await other.aclose()
    await until_readable(connection)  # the end of the stream has reached it
    assert connection._reader.at_eof()

    assert await client.get(key) == b"value"
    await client.delete(key)


@pytest.fixture
async def in_order(client: aioredis.Redis) -> AsyncIterator[InOrder]:
    made = InOrder(client)
    try:
        yield made
    finally:
        await made.close()


async def test_commands_in_order_run_in_the_order_called_without_waiting_for_answers(
    client: aioredis.Redis, in_order: InOrder, key: str
) -> None:
    await in_order.execute("PING")  # connected
    pending = [await in_order.send("RPUSH", key, str(n)) for n in range(200)]
    assert not any(answer.done() for answer in pending)  # all sent, none waited for an answer
    answers = await asyncio.gather(*pending)

    assert answers == list(range(1, 201))  # each its own answer
    stored: list[bytes] = await client.lrange(key, 0, -1)  # type: ignore[misc]
    assert stored == [str(n).encode() for n in range(200)]
    await client.delete(key)


async def test_a_command_refused_by_redis_fails_alone(
    client: aioredis.Redis, in_order: InOrder, key: str
) -> None:
    await client.set(key, "text")
    answers: list[object] = await asyncio.gather(
        in_order.execute("INCR", key), in_order.execute("GET", key), return_exceptions=True
    )
    refused, after = answers
    assert isinstance(refused, ResponseError)
    assert after == b"text"
    await client.delete(key)


async def test_a_lost_connection_fails_what_waits_and_the_next_command_connects_again(
    client: aioredis.Redis, in_order: InOrder, key: str
) -> None:
    ours = await in_order.execute("CLIENT", "ID")
    await client.client_kill_filter(_id=ours)

    with pytest.raises(RedisConnectionError):
        await in_order.execute("INCR", key)
    assert await in_order.execute("INCR", key) == 1
    assert await in_order.execute("CLIENT", "ID") != ours
    await client.delete(key)
