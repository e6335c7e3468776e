"""The floor for bench/feed.py: a bare Starlette app answering the same requests with the same
JSON as Cowatch, straight from asyncpg (PostgreSQL) or sqlite3 (SQLite), nothing else.

    python bench/feed_floor.py DATABASE_URL PORT PUBLIC_URL

What it knows that Cowatch must work out: the number of transcoded videos (counted once at
start-up, as a per-category count cache would), the documents' shapes (no parsing, no
validation, no execution), and the columns each answer needs (two SELECTs at most).
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

PAGE = """SELECT v.id, v.title, v.thumbnail_key, v.category, v.view_count, v.duration, v.created_at,
       u.id, u.username
FROM videos v JOIN users u ON u.id = v.owner_id
WHERE v.status = 'TRANSCODED' ORDER BY v.created_at DESC, v.id DESC LIMIT {limit} OFFSET {offset}"""
NESTED = """SELECT v.id, v.title, v.description, v.category, v.status, v.view_count, v.created_at,
       v.duration, v.thumbnail_key, v.playback_timestamp, u.id, u.username,
       c.id, c.slug, c.name, c.subscriber_count
FROM videos v JOIN users u ON u.id = v.owner_id LEFT JOIN channels c ON c.owner_id = v.owner_id
WHERE {where}"""
FEED_WHERE = (
    "v.status = 'TRANSCODED' ORDER BY v.created_at DESC, v.id DESC LIMIT {limit} OFFSET {offset}"
)
RENDITIONS = """SELECT video_id, quality, width, height, storage_key FROM renditions
WHERE video_id IN ({ids}) ORDER BY height"""


def _utc(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Queries:
    """Runs a statement with positional parameters on either database."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        self.pool: Any = None
        self.conn: sqlite3.Connection | None = None

    async def open(self) -> None:
        if self.sqlite:
            self.conn = sqlite3.connect(self.url.split("///", 1)[1], check_same_thread=False)
            return
        import asyncpg

        self.pool = await asyncpg.create_pool(
            self.url.replace("+asyncpg", ""), min_size=10, max_size=16
        )

    def mark(self, n: int) -> str:
        return "?" if self.sqlite else f"${n}"

    async def rows(self, sql: str, *args: Any) -> list[Any]:
        if self.conn is not None:
            return self.conn.execute(sql, args).fetchall()
        return list(await self.pool.fetch(sql, *args))

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()


def build(url: str, public_url: str) -> Starlette:
    db = Queries(url)
    total = 0

    def media(key: str | None) -> str | None:
        return f"{public_url}/media/{key}" if key else None

    async def rest_feed(request: Request) -> Response:
        page = int(request.query_params.get("page", 1))
        limit = int(request.query_params.get("limit", 20))
        sql = PAGE.format(limit=db.mark(1), offset=db.mark(2))
        rows = await db.rows(sql, limit, (page - 1) * limit)
        videos = [
            {
                "id": r[0],
                "title": r[1],
                "thumbnail_url": media(r[2]),
                "category": r[3],
                "creator": {"id": r[7], "username": r[8]},
                "view_count": r[4],
                "duration": r[5],
                "created_at": _utc(r[6]).isoformat().replace("+00:00", "Z"),
            }
            for r in rows
        ]
        pages = math.ceil(total / limit)
        return JSONResponse({"videos": videos, "total_pages": pages, "current_page": page})

    async def nested(where: str, *args: Any) -> list[dict[str, Any]]:
        rows = await db.rows(NESTED.format(where=where), *args)
        ids = [r[0] for r in rows]
        renditions: dict[str, list[dict[str, Any]]] = {key: [] for key in ids}
        if ids:
            marks = ", ".join(db.mark(i + 1) for i in range(len(ids)))
            for r in await db.rows(RENDITIONS.format(ids=marks), *ids):
                renditions[r[0]].append(
                    {"quality": r[1], "width": r[2], "height": r[3], "url": media(r[4])}
                )
        return [
            {
                "id": r[0],
                "title": r[1],
                "description": r[2],
                "category": r[3],
                "status": r[4],
                "viewCount": r[5],
                "createdAt": _utc(r[6]).isoformat(),
                "duration": r[7],
                "thumbnailUrl": media(r[8]),
                "currentTimestamp": round(max(r[9] if r[7] is None else min(r[9], r[7]), 0.0), 3),
                "creator": {"id": r[10], "username": r[11]},
                "channel": (
                    {"id": r[12], "slug": r[13], "name": r[14], "subscriberCount": r[15]}
                    if r[12]
                    else None
                ),
                "renditions": renditions[r[0]],
            }
            for r in rows
        ]

    async def graphql(request: Request) -> Response:
        variables = json.loads(await request.body())["variables"]
        if "id" in variables:
            found = await nested("v.id = " + db.mark(1), variables["id"])
            return JSONResponse({"data": {"video": found[0] if found else None}})
        page, limit = variables["page"], variables["limit"]
        where = FEED_WHERE.format(limit=db.mark(1), offset=db.mark(2))
        videos = await nested(where, limit, (page - 1) * limit)
        feed = {"totalPages": math.ceil(total / limit), "currentPage": page, "videos": videos}
        return JSONResponse({"data": {"feed": feed}})

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal total
        await db.open()
        (row,) = await db.rows("SELECT count(*) FROM videos WHERE status = 'TRANSCODED'")
        total = row[0]
        try:
            yield
        finally:
            await db.close()

    routes = [
        Route("/api/videos/feed", rest_feed, methods=["GET"]),
        Route("/graphql", graphql, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


if __name__ == "__main__":
    database_url, port, public = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    uvicorn.run(build(database_url, public), port=port, log_level="warning", access_log=False)
