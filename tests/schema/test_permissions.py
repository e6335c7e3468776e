"""Sign-in and self-only are declared on the fields; a new mutation must choose on purpose."""

from __future__ import annotations

from typing import Any

import httpx
from strawberry.permission import PermissionExtension

from resolvers.services import Services
from schema.permissions import SignedIn, SignedInOrMember
from schema.root import Mutation, Subscription, build_schema
from tests.factories import error_code, gql, make_user

#: the only operations anyone may call without signing in
PUBLIC_MUTATIONS = {"signup", "login"}


def _declares(field: object, kind: type[object] = SignedIn) -> bool:
    return any(
        isinstance(extension, PermissionExtension)
        and any(isinstance(permission, kind) for permission in extension.permissions)
        for extension in getattr(field, "extensions", ())
    )


def test_every_mutation_but_signup_and_login_declares_sign_in() -> None:
    build_schema()  # resolves the types' fields
    owners: list[Any] = [Mutation, Subscription]
    fields = {
        field.python_name: field
        for owner in owners
        for field in owner.__strawberry_definition__.fields
    }
    declared = {name for name, field in fields.items() if _declares(field)}
    # Party calls take an account or a party member token (a guest's).
    party = {name for name, field in fields.items() if _declares(field, SignedInOrMember)}
    # A video's public room may be followed signed out (read-only: moving it needs sign-in);
    # anyone with the code may join a party (guests get their member token from it).
    public = {"video_processing", "video_timestamp", "join_party", *PUBLIC_MUTATIONS}
    assert not declared & party
    assert declared | party == set(fields) - public
    assert "create_party" in declared and {"leave_party", "party_events"} <= party


async def test_signed_in_fields_refuse_missing_and_bad_tokens_alike(
    client: httpx.AsyncClient, services: Services
) -> None:
    query = 'mutation { createChannel(name: "N", slug: "perm-slug") { slug } }'
    assert error_code(await gql(client, query)) == "UNAUTHENTICATED"
    assert error_code(await gql(client, query, token="not-a-jwt")) == "UNAUTHENTICATED"
    account = await make_user(services)
    created = await gql(client, query, token=account.token)
    assert created["data"]["createChannel"] == {"slug": "perm-slug"}


async def test_email_is_null_for_everyone_but_its_user(
    client: httpx.AsyncClient, services: Services
) -> None:
    owner = await make_user(services, "selfish")
    other = await make_user(services)
    query = "query($id: ID!) { user(id: $id) { username email } }"
    variables = {"id": owner.user.id}
    mine = await gql(client, query, variables, token=owner.token)
    assert mine["data"]["user"] == {"username": "selfish", "email": "selfish@example.com"}
    for token in (other.token, None, "not-a-jwt"):
        theirs = await gql(client, query, variables, token=token)
        assert theirs["data"]["user"] == {"username": "selfish", "email": None}
        assert "errors" not in theirs
