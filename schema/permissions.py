"""Who may call what on the GraphQL face, declared on the field; the rules are resolvers/'.

`SignedIn` is the GraphQL twin of REST's `@requires_user` (no token and a bad token are both
UNAUTHENTICATED), `SignedInOrMember` of `@requires_member` (party calls also take a party member
token); `Self` hides a user's private fields from everyone but that user.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.extensions.field_extension import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension

from resolvers import permissions
from resolvers.errors import Unauthenticated
from schema.context import Context


class SignedIn(BasePermission):
    message = permissions.SIGN_IN_REQUIRED

    async def has_permission(
        self, source: Any, info: strawberry.Info[Context], **kwargs: Any
    ) -> bool:
        return await info.context.viewer() is not None  # a bad token raises InvalidToken

    def on_unauthorized(self) -> None:
        raise Unauthenticated(self.message)


class SignedInOrMember(BasePermission):
    """Party operations: an account token or a party member token (a guest's). Which party the
    member token is good for, and what the caller may do there, the resolvers decide."""

    message = permissions.SIGN_IN_REQUIRED

    async def has_permission(
        self, source: Any, info: strawberry.Info[Context], **kwargs: Any
    ) -> bool:
        caller = await info.context.caller()  # a bad token raises InvalidToken
        return caller.user is not None or caller.member is not None

    def on_unauthorized(self) -> None:
        raise Unauthenticated(self.message)


class Self(BasePermission):
    """Only the user themself (the source object is a `User` type)."""

    message = "only visible to the user themself"

    async def has_permission(
        self, source: Any, info: strawberry.Info[Context], **kwargs: Any
    ) -> bool:
        return permissions.is_owner(await info.context.viewer_id_or_none(), str(source.id))


def signed_in() -> list[FieldExtension]:
    """`extensions=signed_in()` on a field: refuse anyone not signed in."""
    return [PermissionExtension(permissions=[SignedIn()])]


def signed_in_or_member() -> list[FieldExtension]:
    """`extensions=signed_in_or_member()` on a party field: an account or a member token."""
    return [PermissionExtension(permissions=[SignedInOrMember()])]


def only_self() -> list[FieldExtension]:
    """`extensions=only_self()` on a nullable `User` field: null for everyone else."""
    return [PermissionExtension(permissions=[Self()], fail_silently=True)]
