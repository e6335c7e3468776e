"""Fan-out latency: one seek, time until the last of N subscribers has it.

    python bench/fanout.py [--sizes 1000 5000] [--rounds 7]

Three servers, each its own process on loopback, measured in the same run:
- floor: a bare Starlette websocket endpoint that sends one pre-encoded frame to every socket;
- /ws: `cowatch serve` (embedded SQLite, in-memory bus), subscribers on the seed's `/ws`;
- /graphql: the same server, `videoTimestamp` over graphql-transport-ws.
A round starts when the seek request is sent and ends when the last socket has the frame.
The clients are a minimal asyncio websocket protocol, so the client side costs little.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    SOCKET_CAPS_OFF,
    create_database,
    drop_database,
    free_port,
    raise_open_files,
    start,
    viewer_with_videos,
    wait_healthy,
)

BATCH = 200


def floor_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    sockets: set[WebSocket] = set()

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def fire(request: Request) -> Response:
        version = int(request.query_params["version"])
        frame = json.dumps(
            {
                "type": "video:timestamp_updated",
                "video_id": "v",
                "timestamp": 1.0,
                "user_id": "u",
                "playing": False,
                "rate": 1.0,
                "server_time": 0,
                "version": version,
            },
            separators=(",", ":"),
        )
        for websocket in list(sockets):
            await websocket.send_text(frame)
        return Response(status_code=201)

    return Starlette(
        routes=[WebSocketRoute("/ws", endpoint), Route("/fire", fire, methods=["PUT"])]
    )


class Client(asyncio.Protocol):
    """Just enough RFC 6455: handshake, masked text out, unmasked frames in, pong."""

    def __init__(self, host: str, path: str, protocol: str | None, bench: Bench) -> None:
        self.bench = bench
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else "")
            + "\r\n"
        ).encode()
        self.buffer = b""
        self.upgraded = False
        self.texts: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def send(self, text: str | bytes, opcode: int = 1) -> None:
        payload = text.encode() if isinstance(text, str) else text
        length = len(payload)
        header = bytes([0x80 | opcode])
        if length < 126:
            header += bytes([0x80 | length])
        else:
            header += bytes([0x80 | 126]) + length.to_bytes(2, "big")
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            head, sep, rest = self.buffer.partition(b"\r\n\r\n")
            if not sep:
                return
            assert head.startswith(b"HTTP/1.1 101"), head
            self.upgraded, self.buffer = True, rest
            self.opened.set_result(None)
        while len(self.buffer) >= 2:
            opcode, length, offset = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            payload = self.buffer[offset : offset + length]
            self.buffer = self.buffer[offset + length :]
            if opcode == 1:
                self.bench.on_text(self, payload)
            elif opcode == 9:
                self.send(payload, opcode=10)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Bench:
    def __init__(self) -> None:
        self.expect = b""
        self.pending = 0
        self.last = 0.0
        self.done: asyncio.Future[None] | None = None

    def on_text(self, client: Client, payload: bytes) -> None:
        if self.expect and self.expect in payload:
            self.last = time.perf_counter()
            self.pending -= 1
            if self.pending == 0 and self.done is not None:
                self.done.set_result(None)
        else:
            client.texts.put_nowait(payload)

    async def connect(
        self, port: int, path: str, protocol: str | None, setup: list[str], count: int
    ) -> list[Client]:
        loop = asyncio.get_running_loop()
        clients: list[Client] = []

        async def one() -> Client:
            _, client = await loop.create_connection(
                lambda: Client(f"127.0.0.1:{port}", path, protocol, self), "127.0.0.1", port
            )
            await asyncio.wait_for(client.opened, 60)
            for message in setup:
                client.send(message)
                await asyncio.wait_for(client.texts.get(), 60)
            return client

        for first in range(0, count, BATCH):
            clients += await asyncio.gather(*(one() for _ in range(min(BATCH, count - first))))
        return clients

    async def round(self, clients: list[Client], version: int, trigger: object) -> float:
        self.expect = b'"version":%d' % version
        self.pending = len(clients)
        self.done = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        await trigger()  # type: ignore[operator]
        await asyncio.wait_for(self.done, 120)
        self.expect = b""
        return self.last - started


async def prepare_cowatch(url: str, database_url: str) -> tuple[str, dict[str, str]]:
    """A user, and one video per cowatch audience so each seek reaches one audience only."""
    token, ids = await viewer_with_videos(url, database_url, ["/ws", "/graphql"])
    return token, dict(zip(["/ws", "/graphql"], ids, strict=True))


async def measure(
    sizes: list[int],
    rounds: int,
    floor_port: int,
    cowatch_ports: dict[str, int],
    token: str,
    video_ids: dict[str, str],
) -> dict[tuple[str, int], float]:
    bench = Bench()
    http = httpx.AsyncClient(timeout=60)
    versions = {"floor": 0, "/ws": 0, "/graphql": 0}
    results: dict[tuple[str, int], float] = {}
    gql_sub = json.dumps(
        {
            "id": "1",
            "type": "subscribe",
            "payload": {
                "query": "subscription($id: ID!) { videoTimestamp(videoId: $id) "
                "{ videoId timestamp userId playing rate serverTime version } }",
                "variables": {"id": video_ids["/graphql"]},
            },
        }
    )
    targets = {
        "floor": (floor_port, "/ws", None, []),
        "/ws": (
            cowatch_ports["/ws"],
            f"/ws?token={token}",
            None,
            [json.dumps({"type": "video:subscribe", "video_id": video_ids["/ws"]})],
        ),
        "/graphql": (
            cowatch_ports["/graphql"],
            "/graphql",
            "graphql-transport-ws",
            [
                json.dumps(
                    {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
                ),
                gql_sub,
            ],
        ),
    }

    async def seek(name: str, version: int) -> None:
        response = await http.put(
            f"http://127.0.0.1:{cowatch_ports[name]}/api/videos/{video_ids[name]}/time",
            json={"timestamp": float(version % 3600)},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.json()["version"] == version, response.text

    async def fire(_name: str, version: int) -> None:
        await http.put(f"http://127.0.0.1:{floor_port}/fire?version={version}")

    for size in sizes:
        # All three audiences stay connected and rounds alternate between them, so a burst of
        # load from elsewhere on the machine hits every target alike.
        audiences = {
            name: await bench.connect(port, path, protocol, setup, size)
            for name, (port, path, protocol, setup) in targets.items()
        }
        samples: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(rounds + 1):
            for name, clients in audiences.items():
                versions[name] += 1
                version = versions[name]
                trigger = partial(fire if name == "floor" else seek, name)
                samples[name].append(
                    await bench.round(clients, version, lambda t=trigger, v=version: t(v))
                )
        for name, clients in audiences.items():
            results[(name, size)] = statistics.median(samples[name][1:])  # [0] warms up
            print(
                f"  {name:9} N={size:5}: median {results[(name, size)] * 1000:7.1f} ms "
                f"over {rounds} rounds ({', '.join(f'{x * 1000:.0f}' for x in samples[name])})",
                flush=True,
            )
            for client in clients:
                client.close()
        await asyncio.sleep(2)  # let the servers tear the sockets down
    await http.aclose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--postgres",
        metavar="ADMIN_URL",
        help="run Cowatch on a throw-away database on this PostgreSQL server "
        "(e.g. postgresql://postgres@127.0.0.1:5432/postgres) instead of the embedded SQLite",
    )
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        import uvicorn

        uvicorn.run(
            floor_app(),
            host="127.0.0.1",
            port=args.floor_server,  # type: ignore[arg-type]
            log_level="warning",
            ws_max_size=1 << 20,
        )
        return 0

    raise_open_files(2 * max(args.sizes) + 1000)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        database_url = f"sqlite+aiosqlite:///{data_dir / 'cowatch.db'}"
        if args.postgres:
            database_url = asyncio.run(create_database(args.postgres))
        # Each audience has a server process of its own, as the floor does, so every server
        # holds exactly N sockets (keep-alive pings and memory included). The two share the
        # embedded SQLite file.
        floor_port = free_port()
        cowatch_ports = {"/ws": free_port(), "/graphql": free_port()}
        env = {
            "COWATCH_DATA_DIR": str(data_dir),
            "COWATCH_DATABASE_URL": database_url if args.postgres else "",
            "COWATCH_REDIS_URL": "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_JWT_SECRET": "bench-" + uuid.uuid4().hex * 2,
            "COWATCH_RATE_LIMIT_ENABLED": "false",
            "COWATCH_WS_MESSAGE_BURST": "1000",
            "COWATCH_LOG_LEVEL": "warning",
            **SOCKET_CAPS_OFF,
        }
        processes = [
            start(
                [sys.executable, __file__, "--floor-server", str(floor_port)],
                {},
                Path(tmp) / "floor.log",
            )
        ]
        try:
            # One after the other: the first one creates and migrates the SQLite file.
            for port in cowatch_ports.values():
                processes.append(
                    start(
                        [sys.executable, "-m", "cli", "serve", "--port", str(port)],
                        env,
                        Path(tmp) / f"cowatch-{port}.log",
                    )
                )
                wait_healthy(f"http://127.0.0.1:{port}/healthz")
            wait_healthy(f"http://127.0.0.1:{floor_port}/fire")
            token, video_ids = asyncio.run(
                prepare_cowatch(f"http://127.0.0.1:{cowatch_ports['/ws']}", database_url)
            )
            print(f"fan-out, {os.cpu_count()} cores, Python {sys.version.split()[0]}", flush=True)
            results = asyncio.run(
                measure(args.sizes, args.rounds, floor_port, cowatch_ports, token, video_ids)
            )
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
            if args.postgres:
                asyncio.run(drop_database(args.postgres, database_url))
    database = "PostgreSQL" if args.postgres else "embedded SQLite"
    print(f"\nCowatch on {database}, in-memory bus; median of {args.rounds} rounds")
    print("\n| N | floor | /ws | /ws ÷ floor | /graphql | /graphql ÷ floor |")
    print("|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        base = results[("floor", size)]
        ws, gql = results[("/ws", size)], results[("/graphql", size)]
        print(
            f"| {size:,} | {base * 1000:.1f} ms | {ws * 1000:.1f} ms | {ws / base:.2f}x "
            f"| {gql * 1000:.1f} ms | {gql / base:.2f}x |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
