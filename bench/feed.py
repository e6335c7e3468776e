"""The read path: Cowatch's feed and video reads against a floor that returns the same JSON.

    python bench/feed.py [--backends postgres sqlite] [--videos 10000] [--clients 16]
                         [--rounds 5] [--seconds 4] [--profile DIR]

Per backend: a throw-away database (PostgreSQL on --postgres ADMIN_URL, or a SQLite file) with
--videos transcoded videos (3 renditions and a thumbnail each) by 100 creators with channels;
`cowatch serve` on it, and bench/feed_floor.py (bare Starlette + asyncpg / sqlite3) on the same
data. Before measuring, every leg's answer from both servers is compared (same JSON). Rounds
interleave floor and Cowatch leg by leg, alternating which goes first; each run keeps --clients
keep-alive connections busy (closed loop) for a warm-up second and --seconds measured.
Reported per leg: req/s (median over rounds), the Cowatch ÷ floor ratio (median of the rounds'
ratios), p50/p99 latency over all measured requests, and the server process's CPU per request.
--profile DIR samples Cowatch with py-spy during each leg afterwards and summarises it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import (
    ROOT,
    cpu_seconds,
    create_database,
    drop_database,
    free_port,
    start,
    start_cowatch,
    wait_healthy,
)
from bench.load import Run, fetch, load, request

PUBLIC_URL = "http://bench.example"
CREATORS = 100
CATEGORIES = ["music", "sports", "gaming", "news", "travel", "cooking", "science", "art"]
QUALITIES = [("240p", 426, 240), ("480p", 854, 480), ("720p", 1280, 720)]
VIDEO_FIELDS = """id title description category status viewCount createdAt duration thumbnailUrl
      currentTimestamp
      creator { id username }
      channel { id slug name subscriberCount }
      renditions { quality width height url }"""
FEED_DOC = f"""query Feed($page: Int!, $limit: Int!) {{
  feed(page: $page, limit: $limit) {{
    totalPages currentPage
    videos {{
      {VIDEO_FIELDS}
    }}
  }}
}}"""
VIDEO_DOC = f"""query Video($id: ID!) {{
  video(id: $id) {{
    {VIDEO_FIELDS}
  }}
}}"""


def graphql(document: str, variables: dict[str, object]) -> bytes:
    body = json.dumps({"query": document, "variables": variables}).encode()
    return request("POST", "/graphql", body, "application/json")


async def seed(url: str, count: int) -> list[str]:
    """Migrate and fill the database; the ids of the videos (newest first)."""
    from sqlalchemy import insert, text
    from sqlalchemy.ext.asyncio import create_async_engine

    from models import Channel, Rendition, User, Video, VideoStatus
    from models.migrate import migrate

    engine = create_async_engine(url)
    await migrate(engine)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    users = [
        User(
            email=f"creator{i}@example.com",
            username=f"creator{i}",
            username_key=f"creator{i}",
            password_hash="-",
        )
        for i in range(CREATORS)
    ]
    channels = [
        Channel(owner_id=user.id, slug=f"channel-{i}", name=f"Channel {i}", description="about")
        for i, user in enumerate(users)
    ]
    videos = [
        Video(
            owner_id=users[i % CREATORS].id,
            title=f"Video {i}",
            description=f"The description of video {i}.",
            category=CATEGORIES[i % len(CATEGORIES)],
            status=VideoStatus.TRANSCODED,
            progress=100,
            duration=60.0 + i % 600,
            width=1280,
            height=720,
            view_count=i * 7 % 1000,
            created_at=base + timedelta(seconds=i),
        )
        for i in range(count)
    ]
    for video in videos:
        video.thumbnail_key = f"videos/{video.id}/thumbnail.jpg"
    renditions = [
        Rendition(
            video_id=video.id,
            quality=quality,
            width=width,
            height=height,
            storage_key=f"videos/{video.id}/{quality}.mp4",
        )
        for video in videos
        for quality, width, height in QUALITIES
    ]
    async with engine.begin() as conn:
        for model, rows in ((User, users), (Channel, channels), (Video, videos)):
            await conn.execute(insert(model), [row.model_dump() for row in rows])  # type: ignore[arg-type]
        await conn.execute(insert(Rendition), [row.model_dump() for row in renditions])  # type: ignore[arg-type]
        await conn.execute(text("ANALYZE"))
    await engine.dispose()
    return [video.id for video in reversed(videos)]


@dataclass
class Leg:
    name: str
    payloads: list[bytes]


@dataclass
class Sample:
    rates: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    cpu_s: float = 0.0
    requests: int = 0
    failures: int = 0


async def measure(port: int, pid: int, leg: Leg, args: argparse.Namespace, into: Sample) -> float:
    cpu: list[float] = []
    mark: Callable[[], None] = lambda: cpu.append(cpu_seconds(pid))  # noqa: E731
    run: Run = await load(
        port,
        leg.payloads,
        clients=args.clients,
        warmup_s=1.0,
        seconds=args.seconds,
        marks=(mark, mark),
    )
    if run.failures:
        print(f"    {leg.name}: {run.failures} failures, e.g. {run.first_failure!r}")
    rate = len(run.latencies) / args.seconds
    into.rates.append(rate)
    into.latencies += run.latencies
    into.cpu_s += cpu[1] - cpu[0]
    into.requests += len(run.latencies)
    into.failures += run.failures
    return rate


async def same_answers(legs: list[Leg], floor_port: int, cowatch_port: int) -> bool:
    same = True
    for leg in legs:
        for payload in leg.payloads[:3]:
            (fs, fb), (cs, cb) = (
                await fetch(floor_port, payload),
                await fetch(cowatch_port, payload),
            )
            if fs != 200 or cs != 200 or json.loads(fb) != json.loads(cb):
                print(
                    f"  {leg.name}: answers differ\n    floor   {fs} {fb[:400]!r}\n"
                    f"    cowatch {cs} {cb[:400]!r}"
                )
                same = False
    return same


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(backend: str, legs: list[Leg], results: dict[tuple[str, str], Sample]) -> None:
    print(f"\n{backend}: req/s median of rounds; ratio = median of per-round Cowatch/floor")
    print(
        "| leg | floor req/s | Cowatch req/s | ratio | floor p50/p99 ms | Cowatch p50/p99 ms "
        "| floor CPU/req ms | Cowatch CPU/req ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for leg in legs:
        floor, cowatch = results[(leg.name, "floor")], results[(leg.name, "cowatch")]
        ratios = [c / f for f, c in zip(floor.rates, cowatch.rates, strict=True) if f]

        def lat(s: Sample) -> str:
            p50, p99 = percentile(s.latencies, 0.5), percentile(s.latencies, 0.99)
            return f"{p50 * 1e3:.1f} / {p99 * 1e3:.1f}"

        def cpu(s: Sample) -> str:
            return f"{s.cpu_s / s.requests * 1e3:.2f}" if s.requests else "-"

        print(
            f"| {leg.name} | {statistics.median(floor.rates):,.0f} "
            f"| {statistics.median(cowatch.rates):,.0f} | **{statistics.median(ratios):.2f}x** "
            f"| {lat(floor)} | {lat(cowatch)} | {cpu(floor)} | {cpu(cowatch)} |"
        )


async def bench_backend(
    backend: str, database_url: str, args: argparse.Namespace, tmp: Path
) -> None:
    ids = await seed(database_url, args.videos)
    legs = [
        Leg("REST feed page 1", [request("GET", "/api/videos/feed?page=1&limit=20")]),
        Leg("REST feed page 400", [request("GET", "/api/videos/feed?page=400&limit=20")]),
        Leg("GraphQL feed (nested)", [graphql(FEED_DOC, {"page": 1, "limit": 20})]),
        Leg("GraphQL video(id)", [graphql(VIDEO_DOC, {"id": key}) for key in ids[:200]]),
    ]
    floor_port, cowatch_port = free_port(), free_port()
    floor = start(
        [
            sys.executable,
            str(ROOT / "bench" / "feed_floor.py"),
            database_url,
            str(floor_port),
            PUBLIC_URL,
        ],
        {},
        tmp / f"floor-{backend}.log",
    )
    env = {
        "COWATCH_DATABASE_URL": database_url,
        "COWATCH_DATA_DIR": str(tmp / f"data-{backend}"),
        "COWATCH_JWT_SECRET": uuid.uuid4().hex * 2,
        "COWATCH_PUBLIC_URL": PUBLIC_URL,
        "COWATCH_LOG_LEVEL": "warning",
        # one address sends everything: keep the per-request check, never refuse
        "COWATCH_RATE_LIMIT_API": "1000000000/minute",
    }
    cowatch = start_cowatch(cowatch_port, env, tmp / f"cowatch-{backend}.log")
    try:
        wait_healthy(f"http://127.0.0.1:{floor_port}/healthz")
        if not await same_answers(legs, floor_port, cowatch_port) and not args.no_check:
            raise SystemExit("the floor and Cowatch disagree; fix that first")
        servers = {"floor": (floor_port, floor.pid), "cowatch": (cowatch_port, cowatch.pid)}
        results = {(leg.name, side): Sample() for leg in legs for side in servers}
        for round_no in range(args.rounds):
            order = ["floor", "cowatch"] if round_no % 2 == 0 else ["cowatch", "floor"]
            line = []
            for leg in legs:
                for side in order:
                    port, pid = servers[side]
                    rate = await measure(port, pid, leg, args, results[(leg.name, side)])
                    line.append(f"{side[0]}:{rate:,.0f}")
            print(f"  round {round_no + 1}: {' '.join(line)}", flush=True)
        if args.rounds:
            report(backend, legs, results)
        if args.profile:
            await profile(legs, cowatch_port, cowatch.pid, args, Path(args.profile) / backend)
    finally:
        for process in (floor, cowatch):
            process.terminate()
            process.wait(timeout=30)


async def profile(
    legs: list[Leg], port: int, pid: int, args: argparse.Namespace, out: Path
) -> None:
    from bench.profile import record, summarize

    for leg in legs:
        path = out / (leg.name.replace(" ", "_").replace("(", "").replace(")", "") + ".txt")
        recorder = asyncio.create_task(asyncio.to_thread(record, pid, args.profile_seconds, path))
        await load(
            port,
            leg.payloads,
            clients=args.clients,
            warmup_s=0.5,
            seconds=args.profile_seconds + 1.0,
        )
        await recorder
        print(f"\nprofile, {leg.name} ({path}):\n{summarize(path)}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="cowatch-feed-") as name:
        tmp = Path(name)
        for backend in args.backends:
            if backend == "postgres":
                url = await create_database(args.postgres)
                try:
                    await bench_backend(backend, url, args, tmp)
                finally:
                    await drop_database(args.postgres, url)
            else:
                await bench_backend(backend, f"sqlite+aiosqlite:///{tmp / 'feed.db'}", args, tmp)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


if __name__ == "__main__":
    import uvloop

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["postgres", "sqlite"])
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--videos", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--profile", help="a directory for py-spy samples (one file per leg)")
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--no-check", action="store_true", help="measure even if answers differ")
    arguments = parser.parse_args()
    print(f"load before: {uptime()}")
    uvloop.run(main(arguments))
    print(f"load after: {uptime()}")
