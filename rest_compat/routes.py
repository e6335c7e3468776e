"""Every REST route, in one list."""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest_compat import auth, channels, chat, docs, openapi, parties, playback, videos, ws

routes: list[BaseRoute] = [
    *auth.routes,
    *channels.routes,
    *videos.routes,
    *playback.routes,
    *parties.routes,
    *chat.routes,
    *ws.routes,
    *openapi.routes,
    *docs.routes,
]
