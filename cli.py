"""The `cowatch` command: serve, migrate, schema, worker."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from config import Settings

EVERY_INTERFACE = ("0.0.0.0", "::")


def _banner(host: str, port: int, settings: Settings) -> str:
    """Where to point a browser: the public URL, else the listening address. Without a public
    URL links follow each request's Host, so friends on the LAN use this machine's address."""
    if settings.public_url:
        url = settings.public_url.rstrip("/")
    else:
        shown = "127.0.0.1" if host in EVERY_INTERFACE else host
        url = f"http://{f'[{shown}]' if ':' in shown else shown}:{port}"
    banner = f"Cowatch is up at {url}/  (GraphiQL: {url}/graphql)"
    if host in EVERY_INTERFACE and not settings.public_url:
        banner += f"\nOn every interface: others open http://<this machine's address>:{port}/"
    return banner


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from app import create_app
    from server import tune_gc, uvicorn_options

    app = create_app(settings)
    print(_banner(args.host, args.port, settings), flush=True)
    tune_gc()
    uvicorn.run(app, host=args.host, port=args.port, **uvicorn_options(settings))
    return 0


def _migrate(_args: argparse.Namespace, settings: Settings) -> int:
    from models.db import Database
    from models.migrate import migrate

    async def run() -> None:
        db = Database(settings.effective_database_url)
        try:
            await migrate(db.engine)
        finally:
            await db.dispose()
        if settings.effective_storage_url.startswith("s3://"):
            from storage.s3 import S3Storage

            storage = S3Storage.from_settings(settings)
            try:
                await storage.create_bucket()
            finally:
                await storage.close()

    asyncio.run(run())
    print("database is at the newest schema")
    if settings.effective_storage_url.startswith("s3://"):
        print(f"bucket {settings.effective_storage_url} is ready")
    return 0


def _schema(_args: argparse.Namespace, _settings: Settings) -> int:
    from schema.root import build_schema

    print(build_schema().as_str())
    return 0


def _worker(_args: argparse.Namespace, settings: Settings) -> int:
    if not settings.redis_url:
        print("cowatch worker needs COWATCH_REDIS_URL; without it the server transcodes itself")
        return 2
    from models.db import Database
    from models.migrate import migrate
    from workers.worker import run_worker

    async def prepare() -> None:
        db = Database(settings.effective_database_url)
        try:
            await migrate(db.engine)
        finally:
            await db.dispose()

    asyncio.run(prepare())
    run_worker(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cowatch", description="Watch video together.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API (default 127.0.0.1:8000)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_serve)
    commands.add_parser("migrate", help="apply database migrations").set_defaults(run=_migrate)
    commands.add_parser("schema", help="print the GraphQL SDL").set_defaults(run=_schema)
    commands.add_parser("worker", help="run an arq transcoding worker").set_defaults(run=_worker)
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    result: int = args.run(args, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
