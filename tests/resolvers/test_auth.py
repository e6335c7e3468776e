"""New passwords are neither blank nor common; emails have one spelling (NFKC, lower case)."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import error_code, gql

SIGNUP = (
    "mutation($e: String!, $p: String!, $u: String!) "
    "{ signup(email: $e, password: $p, username: $u) { id } }"
)
#: fullwidth letters NFKC folds to ASCII (written as escapes: they look like ASCII)
FULLWIDTH_ADA = "\uff21\uff24\uff21"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("12345678", "password: too common"),
        ("Password1", "password: too common"),  # case does not help
        ("iloveyou", "password: too common"),
        ("        ", "password: must not be only spaces"),
        ("\t\t\t\t\t\t\t\t", "password: must not be only spaces"),
    ],
)
async def test_weak_passwords_are_refused_on_both_faces(
    client: httpx.AsyncClient, password: str, message: str
) -> None:
    body = {"email": "weak@example.com", "password": password, "username": "weakling"}
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(message)
    answer = await gql(client, SIGNUP, {"e": "weak@example.com", "p": password, "u": "weakling"})
    assert error_code(answer) == "BAD_USER_INPUT"
    assert answer["errors"][0]["message"].startswith(message)


async def test_look_alike_emails_are_one_account(client: httpx.AsyncClient) -> None:
    first = {"email": "ada@example.com", "password": "analytical engine", "username": "ada"}
    assert (await client.post("/api/auth/signup", json=first)).status_code == 201
    for twin in (f"{FULLWIDTH_ADA}@example.com", "Ada@EXAMPLE.com", "\uff41da@example.com"):
        again = {"email": twin, "password": "analytical engine", "username": "ada_twin"}
        response = await client.post("/api/auth/signup", json=again)
        assert response.status_code == 409, (twin, response.text)
        assert response.json()["error"]["details"]["field"] == "email"
        login = {"email": twin, "password": "analytical engine"}
        assert (await client.post("/api/auth/login", json=login)).status_code == 200, twin
