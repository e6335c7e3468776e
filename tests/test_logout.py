"""Logout revokes the token's jti everywhere until it expires."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlmodel import select

from models import RevokedToken
from models.base import utcnow
from resolvers import auth
from resolvers.services import Services
from tests.factories import error_code, gql, make_user


async def test_rest_logout_revokes_only_that_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    account = await make_user(services)
    other = auth.issue_token(secret=services.jwt_secret, user_id=account.user.id, ttl_s=600)

    response = await client.post("/api/auth/logout", headers=account.headers)
    assert response.status_code == 204
    assert response.headers["set-cookie"].startswith("Authentication=;")

    refused = await client.post(
        "/api/channels", json={"name": "n", "slug": "slug-1"}, headers=account.headers
    )
    assert refused.status_code == 401
    assert refused.json()["error"]["message"] == "token has been revoked"
    assert error_code(await gql(client, "{ me { id } }", token=account.token)) == "UNAUTHENTICATED"
    again = await client.post("/api/auth/logout", headers=account.headers)
    assert again.status_code == 401

    me = await gql(client, "{ me { id } }", token=other)
    assert me["data"]["me"]["id"] == account.user.id
    assert (await client.post("/api/auth/logout")).status_code == 403


async def test_graphql_logout_and_pruning(client: httpx.AsyncClient, services: Services) -> None:
    account = await make_user(services)
    async with services.db.session() as session:
        session.add(RevokedToken(jti="long-gone", expires_at=utcnow() - timedelta(hours=1)))
        await session.commit()

    body = await gql(client, "mutation { logout }", token=account.token)
    assert body == {"data": {"logout": True}}
    assert error_code(await gql(client, "{ me { id } }", token=account.token)) == "UNAUTHENTICATED"
    assert error_code(await gql(client, "mutation { logout }")) == "UNAUTHENTICATED"

    async with services.db.session() as session:
        jtis = (await session.exec(select(RevokedToken.jti))).all()
    claims = auth.decode_token(secret=services.jwt_secret, token=account.token)
    assert jtis == [claims.jti]
