"""What idle `videoProcessing` subscriptions cost PostgreSQL (issue 10, item 7).

    .venv/bin/python bench/processing_subscriptions.py [--subscriptions 600] [--window 10]
        [--rounds 2] [--root DIR]

Production shape: `cowatch serve` on a throw-away PostgreSQL database and the real Redis, its
transcode queue a fresh arq queue no worker reads, so an uploaded clip stays PROCESSING. Then,
in interleaved rounds, PostgreSQL's transactions per second on that database over `--window`
seconds (`pg_stat_database`: commits plus rollbacks, as a read-only session ends in a rollback):
  floor     the server with no subscription
  subscribed    with `--subscriptions` videoProcessing subscriptions of the uploader open
                (50 per graphql-transport-ws socket)
`--root` runs the server from another checkout (`git archive` of an older commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import create_database, drop_database, free_port, wait_healthy  # noqa: E402

ADMIN_URL = os.environ.get("COWATCH_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("COWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PER_SOCKET = 50
QUERY = "subscription($id: ID!) { videoProcessing(videoId: $id) { status progress } }"
PASSWORD = "a long and unusual passphrase 7"


async def commits(database_url: str) -> int:
    name = database_url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        value = await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = $1", name
        )
    finally:
        await conn.close()
    return int(value)


async def rate(database_url: str, window: float) -> float:
    before = await commits(database_url)
    await asyncio.sleep(window)  # a measurement window, not synchronisation
    return (await commits(database_url) - before) / window


async def open_socket(ws_url: str, token: str, video_id: str, first: int) -> ClientConnection:
    conn = await connect(
        f"{ws_url}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")], max_queue=None
    )
    await conn.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}})
    )
    assert json.loads(await conn.recv())["type"] == "connection_ack"
    for number in range(first, first + PER_SOCKET):
        payload = {"query": QUERY, "variables": {"id": video_id}}
        await conn.send(json.dumps({"id": str(number), "type": "subscribe", "payload": payload}))
    started = 0
    while started < PER_SOCKET:
        message = json.loads(await conn.recv())
        assert message["type"] == "next" and "errors" not in message["payload"], message
        started += 1
    return conn


async def run(args: argparse.Namespace, tmp: Path) -> None:
    from tests.media import make_clip

    clip = make_clip(tmp / "c.mp4", 320, 240).read_bytes()
    database_url = await create_database(ADMIN_URL)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "COWATCH_DATA_DIR": str(tmp / "data"),
        "COWATCH_DATABASE_URL": database_url,
        "COWATCH_REDIS_URL": REDIS_URL,
        "COWATCH_TRANSCODE_QUEUE": f"cowatch-bench:{uuid.uuid4().hex}",
        "COWATCH_JWT_SECRET": "bench-secret-" + "x" * 40,
        "COWATCH_PUBLIC_URL": url,
        "COWATCH_RATE_LIMIT_ENABLED": "false",
        "COWATCH_LOG_LEVEL": "warning",
        "COWATCH_MAX_SOCKETS_PER_USER": "1000",
        "COWATCH_WS_MAX_SUBSCRIPTIONS": str(PER_SOCKET),
        "COWATCH_MAX_PROCESSING_SUBSCRIPTIONS_PER_USER": str(args.subscriptions),
    }
    with (tmp / "serve.log").open("wb") as log:
        server = subprocess.Popen(  # noqa: ASYNC220 (started once, before any measurement)
            [sys.executable, "-m", "cli", "serve", "--port", str(port)],
            cwd=args.root, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        wait_healthy(f"{url}/healthz")
        account = {"email": "b@example.com", "password": PASSWORD, "username": "bencher"}
        async with httpx.AsyncClient(base_url=url, timeout=60) as http:
            (await http.post("/api/auth/signup", json=account)).raise_for_status()
            token = (await http.post("/api/auth/login", json=account)).json()["access_token"]
            upload = await http.post(
                "/api/videos/upload",
                data={"title": "stays processing"},
                files={"file": ("c.mp4", clip, "video/mp4")},
                headers={"Authorization": f"Bearer {token}"},
            )
            upload.raise_for_status()
            video_id = upload.json()["id"]
        for number in range(1, args.rounds + 1):
            floor = await rate(database_url, args.window)
            started = time.perf_counter()
            sockets = [
                await open_socket(url.replace("http", "ws", 1), token, video_id, first)
                for first in range(0, args.subscriptions, PER_SOCKET)
            ]
            opened = time.perf_counter() - started
            subscribed = await rate(database_url, args.window)
            for conn in sockets:
                await conn.close()
            print(
                f"round {number}: floor {floor:7.1f} tx/s   {args.subscriptions} subscriptions "
                f"{subscribed:7.1f} tx/s   (opened in {opened:.1f} s)"
            )
    except BaseException:
        print((tmp / "serve.log").read_text(errors="replace")[-4000:], file=sys.stderr)
        raise
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        await drop_database(ADMIN_URL, database_url)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscriptions", type=int, default=600)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cowatch-bench-processing-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
