"""Factories: make users, tokens and videos quickly through the same resolvers or rows."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from models import User, Video, VideoStatus
from resolvers import auth, parties
from resolvers.auth import Caller
from resolvers.party_runtime import PartyRuntime
from resolvers.services import Services

PASSWORD = "correct horse battery"


@dataclass
class Account:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def make_user(services: Services, name: str | None = None) -> Account:
    name = name or f"user_{uuid.uuid4().hex[:8]}"
    user = await auth.signup(
        db=services.db,
        hashing=services.hashing,
        email=f"{name}@example.com",
        password=PASSWORD,
        username=name,
    )
    token = auth.issue_token(secret=services.jwt_secret, user_id=user.id, ttl_s=3600)
    return Account(user=user, token=token)


async def make_videos(services: Services, owner: User, count: int, **fields: Any) -> list[Video]:
    """Insert transcoded video rows directly (the transcoder is exercised elsewhere)."""
    base = datetime.now(UTC) - timedelta(hours=1)
    rows = [
        Video(
            owner_id=owner.id,
            title=f"video {i}",
            status=fields.get("status", VideoStatus.TRANSCODED),
            category=fields.get("category"),
            duration=fields.get("duration", 60.0),
            created_at=base + timedelta(seconds=i),
            width=1280,
            height=720,
        )
        for i in range(count)
    ]
    async with services.db.session() as session:
        session.add_all(rows)
        await session.commit()
    return rows


async def join_guest(services: Services, runtime: PartyRuntime, code: str, name: str) -> str:
    """A guest joins the party with `code` through `runtime`; its member id."""
    joined = await parties.join_party(
        runtime=runtime,
        hashing=services.hashing,
        limiter=services.rate_limiter,
        settings=services.settings,
        secret=services.jwt_secret,
        caller=Caller(),
        address="127.0.0.1",
        code=code,
        display_name=name,
    )
    return joined.member.id


async def gql(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def error_code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    code: str = body["errors"][0]["extensions"]["code"]
    return code
