"""Every REST route, in one list."""

from __future__ import annotations

from starlette.routing import BaseRoute

from rest_compat import auth, channels, videos

routes: list[BaseRoute] = [*auth.routes, *channels.routes, *videos.routes]
