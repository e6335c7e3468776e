"""Rooms shared by several `cowatch serve` processes through Redis, and surviving its outage."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path

import httpx

from tests.conftest import REDIS_URL
from tests.live import graphql_client, put_time, start_servers, wait_for, ws_client
from tests.servers import (
    broadcast_ready,
    free_port,
    production_env,
    sign_up,
    transcoded_video_row,
)


def server_env(pg_url: str, redis_url: str, data_dir: Path) -> dict[str, str]:
    return production_env(pg_url, data_dir, redis_url, COWATCH_RATE_LIMIT_ENABLED="false")


async def test_two_processes_share_a_room_through_redis(pg_url: str, tmp_path: Path) -> None:
    env = server_env(pg_url, REDIS_URL, tmp_path / "data")
    with ExitStack() as stack:
        a, b = start_servers(stack, 2, env, tmp_path)
        for server in (a, b):
            wait_for(partial(broadcast_ready, server), f"{server.url} broadcast ready")
        user_id, token = await sign_up(a)
        video_id = await transcoded_video_row(pg_url, user_id, "shared room")
        async with (
            ws_client(a.ws_url, token) as plain,
            graphql_client(a.ws_url, token) as gql,
            httpx.AsyncClient(base_url=b.url) as http_b,
        ):
            await plain.subscribe(video_id)
            await gql.subscribe("1", video_id)
            put = await put_time(http_b, video_id, token, 42.0)
            assert await plain.next() == {"type": "video:timestamp_updated", **put}
            assert (await gql.next_event("1"))["version"] == put["version"]


@contextmanager
def redis_server(port: int, log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Our own throw-away redis-server (no persistence) on the given port."""
    log = (log_dir / f"redis-{port}.log").open("ab")
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: _redis_answers(port), f"redis-server on {port}")
        yield process
    finally:
        process.kill()
        process.wait()
        log.close()


def _redis_answers(port: int) -> bool:
    result = subprocess.run(
        ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() == "PONG"


async def test_redis_outage_heals_without_dropping_subscribers(pg_url: str, tmp_path: Path) -> None:
    port = free_port()
    env = server_env(pg_url, f"redis://127.0.0.1:{port}/0", tmp_path / "data")
    with ExitStack() as stack:
        redis = stack.enter_context(redis_server(port, tmp_path))
        a, b = start_servers(stack, 2, env, tmp_path)
        for server in (a, b):
            wait_for(partial(broadcast_ready, server), f"{server.url} broadcast ready")
        user_id, token = await sign_up(a)
        video_id = await transcoded_video_row(pg_url, user_id, "shared room")
        async with (
            ws_client(a.ws_url, token) as plain,
            graphql_client(a.ws_url, token) as gql,
            httpx.AsyncClient(base_url=a.url) as http_a,
            httpx.AsyncClient(base_url=b.url) as http_b,
        ):
            await plain.subscribe(video_id)
            await gql.subscribe("1", video_id)
            before = await put_time(http_b, video_id, token, 1)
            assert (await plain.next())["version"] == before["version"]
            await gql.next_event("1")

            redis.kill()
            redis.wait()
            # The API keeps answering, and a seek on A still reaches A's own subscribers.
            for http in (http_a, http_b):
                assert (await http.get(f"/api/videos/{video_id}")).status_code == 200
                query = await http.post("/graphql", json={"query": "{ serverClock { sentAt } }"})
                assert query.status_code == 200 and "errors" not in query.json()
            local = await put_time(http_a, video_id, token, 2)
            assert (await plain.next())["version"] == local["version"]
            assert (await gql.next_event("1"))["version"] == local["version"]
            # A seek on B is stored; Redis cannot carry it to A right now.
            lost = await put_time(http_b, video_id, token, 3)

            stack.enter_context(redis_server(port, tmp_path))
            for server in (a, b):
                wait_for(partial(broadcast_ready, server), f"{server.url} broadcast ready")
            # A resends the stored state after reconnecting: the seek made during the outage.
            healed = await plain.next()
            assert (healed["version"], healed["timestamp"]) == (lost["version"], 3.0)
            assert (await gql.next_event("1"))["version"] == lost["version"]
            # And Redis carries seeks between the processes again.
            after = await put_time(http_b, video_id, token, 4)
            assert (await plain.next())["version"] == after["version"]
            assert (await gql.next_event("1"))["timestamp"] == 4.0
