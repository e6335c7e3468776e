"""Signup and login answer seed 000's keys, through the declared models."""

from __future__ import annotations

import httpx

ACCOUNT = {"email": "keys@example.com", "password": "correct horse battery", "username": "keys"}


async def test_signup_and_login_keys_are_the_seeds(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/auth/signup", json=ACCOUNT)
    assert created.status_code == 201
    assert created.json() == {
        "id": created.json()["id"],
        "username": "keys",
        "email": ACCOUNT["email"],
    }
    login = await client.post("/api/auth/login", json=ACCOUNT)
    assert set(login.json()) == {"access_token", "user"}
    assert login.json()["user"] == created.json()
    assert login.headers["set-cookie"].startswith("Authentication=")
