"""Soak: N subscribers watch one video while it is seeked S times a second, plus feed traffic.

    python bench/soak.py [--subscribers 2000] [--seeks-per-s 50] [--seconds 60]
    # the production shape: PostgreSQL, Redis, two cowatch serve processes sharing the audience
    python bench/soak.py --postgres postgresql://postgres@127.0.0.1:5432/postgres \
        --redis redis://127.0.0.1:6379/0 --servers 2

`cowatch serve` in its own process (embedded: SQLite and the in-memory bus; or several on
PostgreSQL + Redis); subscribers on the seed's `/ws` and on graphql-transport-ws
`videoTimestamp`, spread over client processes on uvloop (a minimal RFC 6455 client, so the
client side costs little) and over the servers. A seeker PUTs /api/videos/{id}/time on a fixed
schedule (at most 16 in flight, round-robin over the servers); feed readers GET
/api/videos/feed and POST a GraphQL feed query meanwhile.

Reported: versions every subscriber received in order, versions lost (never received) and
out of order (both must be 0); whether every subscriber ended on the final version; delivery
latency (receive time minus the state's server_time) p50/p99/max; each server's RSS before
the subscribers, when seeking starts and at the end. Exit status 0 only if nothing was lost
or reordered, every request succeeded and no server logged an error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    SOCKET_CAPS_OFF,
    create_database,
    drop_database,
    error_lines,
    free_port,
    raise_open_files,
    rss_mb,
    start_cowatch,
    viewer_with_videos,
)

VERSION_RE = re.compile(rb'"version":(\d+)')
SERVER_TIME_RE = re.compile(rb'"server_?[tT]ime":([\d.]+)')
BATCH = 200


class Subscriber(asyncio.Protocol):
    """Just enough RFC 6455 to subscribe and read text frames."""

    def __init__(self, host: str, path: str, protocol: str | None, setup: list[str]) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            + (f"Sec-WebSocket-Protocol: {protocol}\r\n" if protocol else "")
            + "\r\n"
        ).encode()
        self.setup = list(setup)
        self.buffer = bytearray()
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.last_version = -1
        self.received = 0
        self.lost = 0
        self.out_of_order = 0
        self.latencies: list[float] = []
        self.watch_for = -1
        self.reached: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not asyncio's class
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before subscribing"))

    def send(self, text: str | bytes, opcode: int = 1) -> None:
        payload = text.encode() if isinstance(text, str) else text
        length = len(payload)
        header = bytes([0x80 | opcode])
        header += (
            bytes([0x80 | length])
            if length < 126
            else bytes([0x80 | 126]) + length.to_bytes(2, "big")
        )
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.transport is not None
        self.transport.write(header + mask + masked)

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            head, sep, rest = bytes(buffer).partition(b"\r\n\r\n")
            if not sep:
                return
            assert head.startswith(b"HTTP/1.1 101"), head
            self.upgraded = True
            buffer[:] = rest
            self.send(self.setup.pop(0))
        at, end = 0, len(buffer)
        while end - at >= 2:
            opcode, length, offset = buffer[at] & 0x0F, buffer[at + 1] & 0x7F, 2
            if length == 126:
                length, offset = int.from_bytes(buffer[at + 2 : at + 4], "big"), 4
            elif length == 127:
                length, offset = int.from_bytes(buffer[at + 2 : at + 10], "big"), 10
            if end - at < offset + length:
                break
            if opcode == 1:
                self.on_text(bytes(buffer[at + offset : at + offset + length]))
            elif opcode == 9:  # uvicorn pings every 20 s and closes sockets that do not answer
                self.send(bytes(buffer[at + offset : at + offset + length]), opcode=10)
            at += offset + length
        del buffer[:at]

    def on_text(self, payload: bytes) -> None:
        now_ms = time.time_ns() / 1_000_000
        if self.setup:  # connection_ack: send the subscription
            self.send(self.setup.pop(0))
            return
        match = VERSION_RE.search(payload)
        if match is None:
            return
        version = int(match.group(1))
        if not self.ready.done():  # the current state, sent right after subscribing
            self.last_version = version
            self.ready.set_result(None)
            return
        self.received += 1
        if version <= self.last_version:
            self.out_of_order += 1
        else:
            self.lost += version - self.last_version - 1
            self.last_version = version
        sent = SERVER_TIME_RE.search(payload)
        if sent is not None:
            self.latencies.append(now_ms - float(sent.group(1)))
        if self.reached is not None and version >= self.watch_for and not self.reached.done():
            self.reached.set_result(None)


async def connect_all(
    port: int, token: str, video_id: str, indexes: range, graphql_count: int
) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    ws_setup = [json.dumps({"type": "video:subscribe", "video_id": video_id})]
    gql_setup = [
        json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}),
        json.dumps(
            {
                "id": "1",
                "type": "subscribe",
                "payload": {
                    "query": "subscription($id: ID!) { videoTimestamp(videoId: $id) "
                    "{ videoId timestamp userId playing rate serverTime version } }",
                    "variables": {"id": video_id},
                },
            }
        ),
    ]

    async def one(index: int) -> Subscriber:
        on_graphql = index < graphql_count
        path, protocol, setup = (
            ("/graphql", "graphql-transport-ws", gql_setup)
            if on_graphql
            else (f"/ws?token={token}", None, ws_setup)
        )
        _, sub = await loop.create_connection(
            lambda: Subscriber(f"127.0.0.1:{port}", path, protocol, setup), "127.0.0.1", port
        )
        await asyncio.wait_for(sub.ready, 60)
        return sub

    subscribers: list[Subscriber] = []
    for start in range(indexes.start, indexes.stop, BATCH):
        batch = range(start, min(start + BATCH, indexes.stop))
        subscribers += await asyncio.gather(*(one(i) for i in batch))
    return subscribers


@dataclass
class Tally:
    received: int = 0
    lost: int = 0
    out_of_order: int = 0
    converged: int = 0
    closed: int = 0
    behind: int = 0
    latencies: bytes = b""


async def audience(
    pipe: Connection, port: int, token: str, video_id: str, indexes: range, graphql_count: int
) -> None:
    """One client process: connect its share, report ready, then wait for the final version."""
    subscribers = await connect_all(port, token, video_id, indexes, graphql_count)
    loop = asyncio.get_running_loop()
    pipe.send("ready")
    final: int = await loop.run_in_executor(None, pipe.recv)
    reached = []
    for sub in subscribers:
        sub.watch_for, sub.reached = final, loop.create_future()
        if sub.last_version >= final:
            sub.reached.set_result(None)
        reached.append(sub.reached)
    _done, pending = await asyncio.wait(reached, timeout=60)
    tally = Tally(
        received=sum(s.received for s in subscribers),
        lost=sum(s.lost for s in subscribers),
        out_of_order=sum(s.out_of_order for s in subscribers),
        converged=sum(1 for s in subscribers if s.last_version == final),
        closed=sum(1 for s in subscribers if s.closed),
        behind=len(pending),
        latencies=array("d", (x for s in subscribers for x in s.latencies)).tobytes(),
    )
    pipe.send(tally)
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()


def audience_process(pipe: Connection, *args: Any) -> None:
    import uvloop

    uvloop.run(audience(pipe, *args))


async def seek_loop(
    https: list[httpx.AsyncClient], video_id: str, token: str, rate: float, seconds: float
) -> tuple[list[int], Counter[int], list[float], float]:
    versions: list[int] = []
    statuses: Counter[int] = Counter()
    lag: list[float] = []
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    total = int(rate * seconds)

    in_flight = asyncio.Semaphore(16)  # a slow server slows the seeker instead of queueing

    async def one(i: int) -> None:
        try:
            response = await https[i % len(https)].put(
                f"/api/videos/{video_id}/time",
                json={"timestamp": float(i % 3000), "playing": i % 2 == 0},
                headers=headers,
            )
        except httpx.TransportError:
            statuses[0] += 1  # 0 = the connection failed
            return
        finally:
            in_flight.release()
        statuses[response.status_code] += 1
        if response.status_code == 201:
            versions.append(response.json()["version"])

    tasks = []
    for i in range(total):
        due = started + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await in_flight.acquire()
        lag.append(max(0.0, time.perf_counter() - due))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)
    return versions, statuses, lag, time.perf_counter() - started


async def feed_loop(
    https: list[httpx.AsyncClient], stop: asyncio.Event, rate: float
) -> Counter[int]:
    statuses: Counter[int] = Counter()
    query = {"query": "{ feed(limit: 20) { total videos { id title creator { username } } } }"}
    turn = 0
    while not stop.is_set():
        http, turn = https[turn % len(https)], turn + 1
        try:
            rest, gql = await asyncio.gather(
                http.get("/api/videos/feed?limit=20"), http.post("/graphql", json=query)
            )
        except httpx.TransportError:
            statuses[0] += 1
            continue
        statuses[rest.status_code] += 1
        statuses[gql.status_code if "errors" not in gql.json() else 599] += 1
        await asyncio.sleep(1 / rate)
    return statuses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(
    args: argparse.Namespace, ports: list[int], pids: list[int], token: str, video_id: str
) -> int:
    rss_before = [rss_mb(pid) for pid in pids]
    graphql_count = round(args.subscribers * args.graphql_share)
    context = multiprocessing.get_context("spawn")
    procs_count = max(args.client_procs, len(ports))
    share = -(-args.subscribers // procs_count)
    pipes, procs = [], []
    for index, start in enumerate(range(0, args.subscribers, share)):
        ours, theirs = context.Pipe()
        indexes = range(start, min(start + share, args.subscribers))
        port = ports[index % len(ports)]
        proc = context.Process(
            target=audience_process, args=(theirs, port, token, video_id, indexes, graphql_count)
        )
        proc.start()
        pipes.append(ours)
        procs.append(proc)
    loop = asyncio.get_running_loop()
    for pipe in pipes:
        assert await loop.run_in_executor(None, pipe.recv) == "ready"
    print(
        f"{args.subscribers} subscribers connected in {len(procs)} processes "
        f"to {len(ports)} server(s)",
        flush=True,
    )
    await asyncio.sleep(2)  # let the servers settle after the connection storm
    rss_start = [rss_mb(pid) for pid in pids]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    https = [
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120, limits=limits)
        for port in ports
    ]
    try:
        stop = asyncio.Event()
        feed = asyncio.create_task(feed_loop(https, stop, args.feed_per_s))
        versions, seek_statuses, lag, took = await seek_loop(
            https, video_id, token, args.seeks_per_s, args.seconds
        )
        final = max(versions)
        print(f"seeking done: {len(versions)} seeks, final version {final}", flush=True)
        drained_at = time.perf_counter()
        for pipe in pipes:
            pipe.send(final)
        tallies: list[Tally] = [await loop.run_in_executor(None, pipe.recv) for pipe in pipes]
        drain_s = time.perf_counter() - drained_at
        stop.set()
        feed_statuses = await feed
    finally:
        for http in https:
            await http.aclose()
    for proc in procs:
        proc.join(30)
    await asyncio.sleep(2)
    rss_end = [rss_mb(pid) for pid in pids]

    latencies: list[float] = []
    for tally in tallies:
        latencies.extend(array("d", tally.latencies))
    received = sum(t.received for t in tallies)
    lost = sum(t.lost for t in tallies)
    out_of_order = sum(t.out_of_order for t in tallies)
    converged = sum(t.converged for t in tallies)
    closed = sum(t.closed for t in tallies)
    behind = sum(t.behind for t in tallies)
    expected = (final - min(versions) + 1) * args.subscribers
    print(f"soak, {os.cpu_count()} cores, Python {sys.version.split()[0]}, load {os.getloadavg()}")
    print(
        f"subscribers: {args.subscribers} ({args.subscribers - graphql_count} /ws, "
        f"{graphql_count} graphql-transport-ws) in {len(procs)} client processes, "
        f"{len(ports)} server(s)"
    )
    print(
        f"seeks: {sum(seek_statuses.values())} in {took:.1f} s "
        f"({args.seeks_per_s:g}/s scheduled over {args.seconds:.0f} s, "
        f"{len(versions) / took:.1f}/s achieved; statuses {dict(seek_statuses)}; "
        f"scheduler lag p99 {percentile(lag, 0.99) * 1000:.0f} ms); "
        f"versions {min(versions)}..{final}"
    )
    print(f"feed traffic statuses (599 = GraphQL errors): {dict(feed_statuses)}")
    print(
        f"events received: {received:,} of {expected:,} (versions x subscribers); "
        f"lost: {lost:,}; out of order: {out_of_order}; sockets closed: {closed}"
    )
    print(
        f"converged on the final version: {converged}/{args.subscribers} "
        f"({behind} still behind after 60 s; drain {drain_s:.2f} s)"
    )
    print(
        f"delivery latency: p50 {percentile(latencies, 0.5):.1f} ms, "
        f"p99 {percentile(latencies, 0.99):.1f} ms, max {max(latencies):.1f} ms "
        f"(mean {statistics.fmean(latencies):.1f})"
    )
    for index in range(len(pids)):
        print(
            f"server {index} RSS: {rss_before[index]:.1f} MB before subscribers, "
            f"{rss_start[index]:.1f} MB start, {rss_end[index]:.1f} MB end "
            f"({(rss_end[index] / rss_start[index] - 1) * 100:+.1f}%)"
        )
    ok = lost == 0 and out_of_order == 0 and received == expected
    ok = ok and converged == args.subscribers and not closed
    ok = ok and set(seek_statuses) == {201} and set(feed_statuses) == {200}
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--seeks-per-s", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--feed-per-s", type=float, default=10)
    parser.add_argument("--graphql-share", type=float, default=0.25)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--postgres", metavar="ADMIN_URL", help="run on a throw-away database")
    parser.add_argument("--redis", metavar="URL", help="the bus (and limits) through this Redis")
    parser.add_argument("--servers", type=int, default=1, help="cowatch serve processes")
    args = parser.parse_args()
    if args.servers > 1 and not args.redis:
        parser.error("--servers > 1 needs --redis (the in-memory bus is per process)")
    raise_open_files(args.subscribers + 2000)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        database_url = f"sqlite+aiosqlite:///{data_dir / 'cowatch.db'}"
        if args.postgres:
            database_url = asyncio.run(create_database(args.postgres))
        env = {
            "COWATCH_DATA_DIR": str(data_dir),
            "COWATCH_DATABASE_URL": database_url if args.postgres else "",
            "COWATCH_REDIS_URL": args.redis or "",
            "COWATCH_STORAGE_URL": "",
            "COWATCH_JWT_SECRET": "soak-" + uuid.uuid4().hex * 2,
            "COWATCH_RATE_LIMIT_PREFIX": f"soak-{uuid.uuid4().hex[:8]}",
            "COWATCH_TRANSCODE_QUEUE": f"soak-{uuid.uuid4().hex[:8]}",
            "COWATCH_LOG_LEVEL": "warning",
            **SOCKET_CAPS_OFF,
            # Limits stay on, sized for one seeker and one feed reader.
            "COWATCH_RATE_LIMIT_API": "100000/minute",
            "COWATCH_RATE_LIMIT_TIMESTAMP": "100000/minute",
        }
        ports = [free_port() for _ in range(args.servers)]
        logs = [Path(tmp) / f"cowatch-{port}.log" for port in ports]
        servers = []
        try:
            # One after the other: the first one creates and migrates the database.
            for port, log in zip(ports, logs, strict=True):
                servers.append(start_cowatch(port, env, log))
            token, (video_id,) = asyncio.run(
                viewer_with_videos(f"http://127.0.0.1:{ports[0]}", database_url, ["soak"])
            )
            result = asyncio.run(run(args, ports, [s.pid for s in servers], token, video_id))
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=30)
            if args.postgres:
                asyncio.run(drop_database(args.postgres, database_url))
        errors = [line for log in logs for line in error_lines(log)]
        warnings = Counter(
            line.split(":", 2)[-1].strip()[:120]
            for log in logs
            for line in log.read_text(errors="replace").splitlines()
            if "WARNING" in line
        )
        print(f"server log ERROR lines: {len(errors)}; WARNING lines: {sum(warnings.values())}")
        for message, count in warnings.most_common(5):
            print(f"  {count} x {message}")
        for log in logs:
            lines = log.read_text(errors="replace").splitlines()
            first = next((i for i, line in enumerate(lines) if "ERROR" in line), None)
            if first is not None:
                print("\n".join(lines[first : first + 40]))
        return result if not errors else 1


if __name__ == "__main__":
    sys.exit(main())
