"""User and auth types, queries and mutations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import strawberry

from models import User as UserModel
from models.values import UserValue
from resolvers import auth
from resolvers.lockout import Lockout
from schema.context import Context, soon
from schema.permissions import only_self, signed_in

if TYPE_CHECKING:
    from schema.channels import Channel


@strawberry.type(description="An account. Public fields; `email` only to the user themself.")
class User:
    id: strawberry.ID = strawberry.field(description="The user's UUID.")
    username: str = strawberry.field(description="3 to 30 letters, digits or underscores.")
    _model: strawberry.Private[UserModel | UserValue]

    @classmethod
    def from_model(cls, model: UserModel | UserValue) -> User:
        return cls(id=strawberry.ID(model.id), username=model.username, _model=model)

    @classmethod
    def of(cls, model: UserModel | UserValue | None) -> User:
        assert model is not None  # every owner_id is a foreign key to users
        return cls.from_model(model)

    @strawberry.field(
        description="The sign-in email: only to the user themself, else null.",
        extensions=only_self(),
    )
    async def email(self, info: strawberry.Info[Context]) -> str | None:
        if isinstance(self._model, UserModel):
            return self._model.email
        viewer = await info.context.viewer()  # a public UserValue: the viewer is this user
        return viewer.email if viewer is not None and viewer.id == self._model.id else None

    @strawberry.field(description="The user's one channel; null if they have not made it.")
    def channel(
        self, info: strawberry.Info[Context]
    ) -> Annotated[Channel, strawberry.lazy("schema.channels")] | None:
        from schema.channels import Channel

        return soon(info.context.loaders.channel_by_owner.load(self._model.id), Channel.of)


@strawberry.type(description="What a successful login returns.")
class AuthPayload:
    access_token: str = strawberry.field(
        description="A JWT: send it as `Authorization: Bearer <token>`; valid for "
        "COWATCH_JWT_TTL_S seconds (default 24 h) or until logout."
    )
    user: User = strawberry.field(description="The user who signed in.")


@strawberry.type
class UserQuery:
    @strawberry.field(description="The signed-in user, or null without a token.")
    async def me(self, info: strawberry.Info[Context]) -> User | None:
        viewer = await info.context.viewer()
        return User.from_model(viewer) if viewer else None

    @strawberry.field(description="A user by id (public fields), e.g. who moved a playhead.")
    async def user(
        self,
        info: strawberry.Info[Context],
        id: Annotated[strawberry.ID, strawberry.argument(description="The user's UUID.")],
    ) -> User | None:
        model = await info.context.loaders.users.load(str(id))
        return User.from_model(model) if model else None


@strawberry.type
class UserMutation:
    @strawberry.mutation(
        description="Create an account (anyone). CONFLICT when the email or username is taken."
    )
    async def signup(
        self,
        info: strawberry.Info[Context],
        email: Annotated[
            str,
            strawberry.argument(
                description="A valid address; stored NFKC-normalised, lower-cased."
            ),
        ],
        password: Annotated[
            str,
            strawberry.argument(
                description="8 to 1,024 characters; not blank, not a commonly used password."
            ),
        ],
        username: Annotated[
            str,
            strawberry.argument(
                description="3 to 30 letters, digits or underscores; unique ignoring case."
            ),
        ],
    ) -> User:
        user = await auth.signup(
            db=info.context.services.db,
            hashing=info.context.services.hashing,
            email=email,
            password=password,
            username=username,
        )
        return User.from_model(user)

    @strawberry.mutation(
        description="Returns a JWT and sets the Authentication cookie (anyone). Repeated "
        "failures lock the account for a while (ACCOUNT_LOCKED)."
    )
    async def login(
        self,
        info: strawberry.Info[Context],
        email: Annotated[str, strawberry.argument(description="The account's email.")],
        password: Annotated[str, strawberry.argument(description="The account's password.")],
    ) -> AuthPayload:
        services = info.context.services
        result = await auth.login(
            db=services.db,
            hashing=services.hashing,
            secret=services.jwt_secret,
            ttl_s=services.settings.jwt_ttl_s,
            email=email,
            password=password,
            policy=Lockout.from_settings(services.settings),
            limiter=services.rate_limiter,
        )
        info.context.signed_in(result.user)
        if info.context.response is not None:
            info.context.response.headers.append(
                "set-cookie",
                info.context.session_cookie(result.access_token, ttl_s=services.settings.jwt_ttl_s),
            )
        return AuthPayload(access_token=result.access_token, user=User.from_model(result.user))

    @strawberry.mutation(
        description="Revokes the token this request was made with (signed-in users).",
        extensions=signed_in(),
    )
    async def logout(self, info: strawberry.Info[Context]) -> bool:
        services = info.context.services
        await auth.logout(
            db=services.db,
            publisher=services.bus,
            secret=services.jwt_secret,
            token=info.context.token,
        )
        if info.context.response is not None:
            info.context.response.headers.append(
                "set-cookie", info.context.session_cookie("", ttl_s=0)
            )
        return True
