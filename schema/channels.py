"""Channel type, query and mutation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from models import Channel as ChannelModel
from models.values import ChannelValue
from resolvers import channels
from schema.context import Context, soon
from schema.permissions import signed_in

if TYPE_CHECKING:
    from schema.users import User
    from schema.videos import Video


@strawberry.type(description="A user's channel (one per user), addressed by its slug.")
class Channel:
    id: strawberry.ID = strawberry.field(description="The channel's UUID.")
    slug: str = strawberry.field(
        description="3 to 50 of lowercase letters, digits, '-' and '_'; unique."
    )
    name: str = strawberry.field(description="1 to 100 characters.")
    description: str = strawberry.field(description="Up to 5,000 characters; may be empty.")
    subscriber_count: int = strawberry.field(description="Users subscribed to the channel.")
    _model: strawberry.Private[ChannelModel | ChannelValue]

    @classmethod
    def from_model(cls, model: ChannelModel | ChannelValue) -> Channel:
        return cls(
            id=strawberry.ID(model.id),
            slug=model.slug,
            name=model.name,
            description=model.description,
            subscriber_count=model.subscriber_count,
            _model=model,
        )

    @classmethod
    def of(cls, model: ChannelModel | ChannelValue | None) -> Channel | None:
        return cls.from_model(model) if model is not None else None

    @strawberry.field(description="The owner's newest transcoded videos (at most 100).")
    def videos(
        self, info: strawberry.Info[Context]
    ) -> list[Annotated[Video, strawberry.lazy("schema.videos")]]:
        from schema.videos import Video

        loaded = info.context.loaders.videos_by_owner.load(self._model.owner_id)
        return soon(loaded, lambda found: [Video.from_model(video) for video in found])

    @strawberry.field(description="The user whose channel it is.")
    def owner(
        self, info: strawberry.Info[Context]
    ) -> Annotated[User, strawberry.lazy("schema.users")]:
        from schema.users import User

        return soon(info.context.loaders.users.load(self._model.owner_id), User.of)


@strawberry.type
class ChannelQuery:
    @strawberry.field(description="A channel by slug (anyone); null if there is none.")
    async def channel(
        self,
        info: strawberry.Info[Context],
        slug: Annotated[str, strawberry.argument(description="The channel's slug.")],
    ) -> Channel | None:
        return Channel.of(await channels.read_channel(db=info.context.services.db, slug=slug))


@strawberry.type
class ChannelMutation:
    @strawberry.mutation(
        description="Create the caller's channel (signed-in users; one each: "
        "ALREADY_HAS_CHANNEL). CONFLICT when the slug is taken.",
        extensions=signed_in(),
    )
    async def create_channel(
        self,
        info: strawberry.Info[Context],
        name: Annotated[str, strawberry.argument(description="1 to 100 characters.")],
        slug: Annotated[
            str,
            strawberry.argument(
                description="3 to 50 of lowercase letters, digits, '-' and '_'; unique."
            ),
        ],
        description: Annotated[
            str | None, strawberry.argument(description="Up to 5,000 characters.")
        ] = None,
    ) -> Channel:
        model = await channels.create_channel(
            db=info.context.services.db,
            owner=info.context.user,
            name=name,
            slug=slug,
            description=description,
        )
        return Channel.from_model(model)
