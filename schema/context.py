"""The typed per-request context and the DataLoaders built for each operation."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.dataloader import DataLoader

from models import User
from models.values import ChannelValue, RenditionValue, UserValue, VideoValue
from resolvers import auth, urls, videos
from resolvers.services import Services

V = TypeVar("V")
T = TypeVar("T")


def soon(loaded: Awaitable[V], convert: Callable[[V], T]) -> T:
    """`convert` of a loader's value: now if it is already loaded, else an awaitable of it.

    A field resolver that is a plain function may return either: graphql-core awaits what it
    is given. So a field whose data is already loaded (a primed loader, a second use of a key)
    costs no coroutine and no task, and the rest wait for one batched query as before.
    """
    if isinstance(loaded, asyncio.Future) and loaded.done():
        return convert(loaded.result())

    async def later() -> T:
        return convert(await loaded)

    return cast(T, later())


class Loaders:
    """Batching loaders, one set per operation (never per connection: they cache)."""

    def __init__(self, services: Services) -> None:
        db = services.db
        self.users: DataLoader[str, UserValue | None] = DataLoader(
            lambda ids: videos.users_by_ids(db=db, ids=ids)
        )
        self.channel_by_owner: DataLoader[str, ChannelValue | None] = DataLoader(
            lambda ids: videos.channels_by_owner_ids(db=db, ids=ids)
        )
        self.videos_by_owner: DataLoader[str, list[VideoValue]] = DataLoader(
            lambda ids: videos.videos_by_owner_ids(db=db, ids=ids)
        )
        self.renditions: DataLoader[str, list[RenditionValue]] = DataLoader(
            lambda ids: videos.renditions_by_video_ids(db=db, ids=ids)
        )


@dataclass
class Context:
    services: Services
    request: Request | WebSocket
    response: Response | None
    token: str | None
    loaders: Loaders
    connection_params: dict[str, Any] | None = None
    _viewer: User | None = field(default=None, repr=False)
    _viewer_loaded: bool = field(default=False, repr=False)
    _caller: auth.Caller | None = field(default=None, repr=False)

    async def viewer(self) -> User | None:
        """The signed-in user, None when no token was sent; InvalidToken when a bad one was."""
        if not self._viewer_loaded:
            if self.token is not None:
                self._viewer = await auth.authenticate(
                    db=self.services.db, secret=self.services.jwt_secret, token=self.token
                )
            self._viewer_loaded = True
        return self._viewer

    async def caller(self) -> auth.Caller:
        """Who calls a party operation: an account, a party member token, or nobody."""
        if self._caller is None:
            self._caller = await auth.identify(
                db=self.services.db, secret=self.services.jwt_secret, token=self.token
            )
        return self._caller

    @property
    def address(self) -> str | None:
        """The client's address (after a trusted proxy's rewrite), for per-address limits."""
        client = self.request.client
        return client.host if client else None

    def signed_in(self, user: User) -> None:
        """After login, the rest of the operation sees the new user as the viewer."""
        self._viewer, self._viewer_loaded = user, True

    @property
    def user(self) -> User:
        """The signed-in user, in fields declared `extensions=signed_in()` (it loaded them)."""
        if self._viewer is None:
            raise RuntimeError("this field needs extensions=schema.permissions.signed_in()")
        return self._viewer

    @functools.cached_property
    def public_base(self) -> str:
        """The origin this client reaches us at (`COWATCH_PUBLIC_URL`, else the request's own);
        worked out once per operation (every media URL of a page needs it)."""
        return urls.public_base(
            configured=self.services.settings.public_url, scope=self.request.scope
        )

    async def media_url(self, key: str) -> str:
        """An absolute address of published media for this client."""
        return urls.absolute(self.public_base, await self.services.storage.url(key))

    def media_url_now(self, key: str) -> str | None:
        """The same address when the storage makes it without I/O (local disk); else None."""
        path = self.services.storage.url_now(key)
        return urls.absolute(self.public_base, path) if path is not None else None

    def session_cookie(self, token: str, *, ttl_s: int) -> str:
        """The Set-Cookie value for this request: `Secure` wherever the browser keeps it."""
        configured = self.services.settings.public_url
        secure = urls.secure_cookie(configured=configured, scope=self.request.scope)
        return auth.session_cookie(token, ttl_s=ttl_s, secure=secure)

    async def viewer_id_or_none(self) -> str | None:
        """For public fields that only vary by viewer: a bad token just means anonymous."""
        try:
            viewer = await self.viewer()
        except Exception:
            return None
        return viewer.id if viewer else None
