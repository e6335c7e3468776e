"""Channel type, query and mutation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from models import Channel as ChannelModel
from resolvers import channels
from schema.context import Context

if TYPE_CHECKING:
    from schema.users import User
    from schema.videos import Video


@strawberry.type
class Channel:
    id: strawberry.ID
    slug: str
    name: str
    description: str
    subscriber_count: int
    _model: strawberry.Private[ChannelModel]

    @classmethod
    def from_model(cls, model: ChannelModel) -> Channel:
        return cls(
            id=strawberry.ID(model.id),
            slug=model.slug,
            name=model.name,
            description=model.description,
            subscriber_count=model.subscriber_count,
            _model=model,
        )

    @strawberry.field(description="The channel's newest transcoded videos.")
    async def videos(
        self, info: strawberry.Info[Context]
    ) -> list[Annotated[Video, strawberry.lazy("schema.videos")]]:
        from schema.videos import Video

        models = await info.context.loaders.videos_by_owner.load(self._model.owner_id)
        return [Video.from_model(model) for model in models]

    @strawberry.field
    async def owner(
        self, info: strawberry.Info[Context]
    ) -> Annotated[User, strawberry.lazy("schema.users")]:
        from schema.users import User

        model = await info.context.loaders.users.load(self._model.owner_id)
        assert model is not None  # owner_id is a foreign key
        return User.from_model(model)


@strawberry.type
class ChannelQuery:
    @strawberry.field
    async def channel(self, info: strawberry.Info[Context], slug: str) -> Channel | None:
        model = await channels.find_channel(db=info.context.services.db, slug=slug)
        return Channel.from_model(model) if model else None


@strawberry.type
class ChannelMutation:
    @strawberry.mutation
    async def create_channel(
        self, info: strawberry.Info[Context], name: str, slug: str, description: str | None = None
    ) -> Channel:
        viewer = await info.context.require_viewer()
        model = await channels.create_channel(
            db=info.context.services.db,
            owner=viewer,
            name=name,
            slug=slug,
            description=description,
        )
        return Channel.from_model(model)
