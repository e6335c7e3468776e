"""/openapi.json is generated from the mounted routes, describes all of them, and is valid."""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate
from starlette.routing import Route

from app import create_app
from config import Settings
from rest_compat.openapi import document
from tests.openapi import checker_for
from web import routes as web_routes

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no data involved

#: what the REST document does not describe: the GraphQL face and the web pages
OTHER_FACES = {"/graphql", *(route.path for route in web_routes if isinstance(route, Route))}


def _mounted(settings: Settings) -> set[tuple[str, str]]:
    app = create_app(settings)
    return {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path not in OTHER_FACES
        for method in (route.methods or set()) - {"HEAD"}
    }


async def test_every_mounted_rest_route_is_described(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    served = (await client.get("/openapi.json")).json()
    listed = {(path, method) for path, item in served["paths"].items() for method in item}
    assert listed == _mounted(settings)
    assert ("/api/videos/feed", "get") in listed
    assert served == document(create_app(settings).routes)


async def test_the_document_is_valid_openapi_3_1(client: httpx.AsyncClient) -> None:
    served = (await client.get("/openapi.json")).json()
    assert served["openapi"] == "3.1.0"
    validate(served)


async def test_bodies_security_and_limits_come_from_the_declarations(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    signup = paths["/api/auth/signup"]["post"]
    body = signup["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/SignupBody"}
    assert "security" not in signup
    upload = paths["/api/videos/upload"]["post"]
    assert "multipart/form-data" in upload["requestBody"]["content"]
    assert upload["security"] == [{"bearer": []}, {"cookie": []}]
    assert {"401", "403", "413", "429"} <= set(upload["responses"])
    assert (
        "Retry-After" in paths["/api/videos/{video_id}/time"]["put"]["responses"]["429"]["headers"]
    )
    assert "429" not in paths["/healthz"]["get"]["responses"]  # probes are not rate limited
    assert set(paths["/readyz"]["get"]["responses"]) == {"200", "503"}


async def test_the_checker_refuses_answers_the_document_does_not_allow(
    settings: Settings,
) -> None:
    """Guard the guard: the suite-wide check would catch a renamed key or a stray status."""
    checker = checker_for(create_app(settings).routes)
    json = {"content-type": "application/json"}
    good = b'{"status":"ok"}'
    assert checker.problems("GET", "/healthz", 200, json, good) == []
    assert checker.problems("GET", "/healthz", 200, json, b'{"status":"ok","extra":1}')
    assert checker.problems("GET", "/healthz", 200, json, b'{"state":"ok"}')
    assert checker.problems("GET", "/healthz", 500, json, good)
    feed_item = (
        b'{"videos":[{"id":"a","title":"t","thumbnail_url":null,"category":null,'
        b'"creator":{"id":"c","username":"u"},"view_count":0,"duration":1.5,'
        b'"created_at":"not a time"}],"total_pages":1,"current_page":1}'
    )
    assert checker.problems("GET", "/api/videos/feed", 200, json, feed_item)
    assert checker.problems("GET", "/graphql", 500, json, b"{}") == []  # not the REST face


async def test_signed_in_routes_are_the_seeds(client: httpx.AsyncClient) -> None:
    """`@requires_user` / `@requires_member` are the check and the description: the seed's
    protected routes and the party routes (all but joining, which guests do), no more."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    secured = {
        (method.upper(), path)
        for path, item in paths.items()
        for method, op in item.items()
        if "security" in op
    }
    assert secured == {
        ("POST", "/api/auth/logout"),
        ("POST", "/api/channels"),
        ("GET", "/api/channels/{slug}"),
        ("POST", "/api/videos/upload"),
        ("PUT", "/api/videos/{video_id}/time"),
        ("POST", "/api/parties"),
        ("GET", "/api/parties/{party_id}"),
        ("PATCH", "/api/parties/{party_id}"),
        ("POST", "/api/parties/{party_id}/leave"),
        ("POST", "/api/parties/{party_id}/end"),
        ("PUT", "/api/parties/{party_id}/time"),
        ("POST", "/api/parties/{party_id}/schedule"),
        ("POST", "/api/parties/{party_id}/ready"),
        ("PUT", "/api/parties/{party_id}/members/{member_id}/role"),
        ("DELETE", "/api/parties/{party_id}/members/{member_id}"),
        ("GET", "/api/parties/{party_id}/messages"),
        ("POST", "/api/parties/{party_id}/messages"),
    }
