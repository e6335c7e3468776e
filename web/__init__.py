"""The web face: server-rendered pages and the static ES modules behind them."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from web import pages

STATIC_DIR = Path(__file__).resolve().parent / "static"

routes: list[BaseRoute] = [
    Route("/", pages.feed, methods=["GET"], name="feed"),
    Route("/login", pages.login, methods=["GET"], name="login"),
    Route("/signup", pages.signup, methods=["GET"], name="signup"),
    Route("/logout", pages.logout, methods=["POST"], name="logout"),
    Route("/upload", pages.upload, methods=["GET"], name="upload"),
    Route("/watch/{video_id}", pages.watch, methods=["GET"], name="watch"),
    Route("/p/{code}", pages.party_invite, methods=["GET"], name="party_invite"),
    Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
]

__all__ = ["routes"]
