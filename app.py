"""Assemble the ASGI app: resources in the lifespan, both faces mounted."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

import anyio
from pydantic import Field
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute

from config import Settings
from edge.errors import RequestIdMiddleware
from models.db import Database
from models.live import open_live_store
from models.migrate import migrate
from realtime.bus import Bus
from realtime.connection import Hub, Limits
from resolvers import uploads
from resolvers.counts import CountCache
from resolvers.hashing import PasswordHashing
from resolvers.party_log import PartyTopics
from resolvers.party_runtime import PartyRuntime
from resolvers.playback import Playheads
from resolvers.processing import ProcessingStates, SubscriptionCap
from resolvers.ratelimit import open_rate_limiter
from resolvers.services import Services
from rest_compat import routes as rest_routes
from rest_compat.bodylimit import BodySizeLimit
from rest_compat.csrf import CrossSiteGuard
from rest_compat.errors import handlers
from rest_compat.headers import SecurityHeadersMiddleware
from rest_compat.media import routes as media_routes
from rest_compat.operations import JSON, Shape, operation
from rest_compat.ratelimit import RateLimitMiddleware
from schema.app import CowatchGraphQL
from schema.limits import security_extensions
from schema.root import build_schema
from schema.sockets import Sockets
from storage import open_storage
from storage.local import LocalStorage
from web import routes as web_routes
from workers.queue import open_queue

log = logging.getLogger("cowatch")


class Health(Shape):
    status: Literal["ok"]


class Ready(Shape):
    ready: bool
    checks: dict[str, str] = Field(description='Per dependency: "ok" or "error: <kind>".')


@operation("the process is up", ok=(200, Health))
async def healthz(_request: Request) -> Response:
    return JSON(Health(status="ok"))


@operation(
    "database, storage, broadcast and queue answer",
    ok=(200, Ready),
    also={503: ("not ready: a dependency failed its check", Ready)},
)
async def readyz(request: Request) -> Response:
    services: Services = request.app.state.services
    checks: dict[str, str] = {}
    for name, ping in (
        ("database", services.db.ping),
        ("storage", services.storage.ping),
        ("broadcast", services.bus.ping),
        ("queue", services.queue.ping),
    ):
        try:
            await ping()
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSON(Ready(ready=ready, checks=checks), status_code=200 if ready else 503)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    storage = open_storage(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        db = Database(
            settings.effective_database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
        )
        await migrate(db.engine)
        # Staging files left by a killed server; those of live servers sharing the dir stay.
        swept = await anyio.to_thread.run_sync(uploads.sweep_staging, settings.data_dir / "uploads")
        if swept:
            log.info("removed %d upload staging files left by stopped servers", swept)
        rate_limiter = open_rate_limiter(settings)
        bus = Bus(
            settings.redis_url or "memory://",
            sources={"video": Playheads(db), "processing": ProcessingStates(db)},
        )
        parties = PartyRuntime(
            db=db, live=open_live_store(settings.redis_url), publisher=bus, settings=settings
        )
        bus.sources["party"] = PartyTopics(parties)
        await bus.start()
        hub = Hub(bus, Limits.from_settings(settings))
        queue = await open_queue(settings, db=db, storage=storage, publisher=bus)
        app.state.services = Services(
            settings=settings,
            db=db,
            storage=storage,
            jwt_secret=settings.resolved_jwt_secret(),
            bus=bus,
            hub=hub,
            rate_limiter=rate_limiter,
            queue=queue,
            hashing=PasswordHashing.from_settings(settings),
            parties=parties,
            processing_subscriptions=SubscriptionCap(
                settings.max_processing_subscriptions_per_user
            ),
            counts=CountCache(ttl_s=settings.feed_count_ttl_s),
        )
        await parties.start()
        try:
            yield
        finally:
            await parties.close()
            await queue.close()
            await bus.close()
            await rate_limiter.close()
            await storage.close()
            await db.dispose()

    schema = build_schema(
        extensions=security_extensions(settings),
        document_cache_bytes=settings.graphql_document_cache_bytes,
        compiled_plans=settings.graphql_compiled_plans,
    )
    graphql = CowatchGraphQL(
        schema, graphql_ide="graphiql", multipart_uploads_enabled=True, settings=settings
    )
    routes: list[BaseRoute] = [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", Sockets(schema).endpoint),
        *rest_routes,
        *web_routes,
    ]
    if isinstance(storage, LocalStorage):
        routes.extend(media_routes)
    middleware = [
        Middleware(RequestIdMiddleware),
        Middleware(SecurityHeadersMiddleware, settings=settings),
    ]
    if settings.cors_origin_list:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origin_list,
                # '*' means any site with a bearer token, never with the cookie (CSRF)
                allow_credentials=not settings.cors_any_origin,
                allow_methods=["GET", "POST", "PUT", "OPTIONS"],
                allow_headers=["authorization", "content-type", "x-request-id"],
            )
        )
    middleware.append(Middleware(CrossSiteGuard, settings=settings))
    middleware.append(Middleware(RateLimitMiddleware))
    middleware.append(Middleware(BodySizeLimit, settings=settings))
    application = Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
    application.state.schema = schema
    application.state.graphql = graphql
    return application
