"""Internal failures never leak: masked in GraphQL, a JSON 500 with a request id in REST."""

from __future__ import annotations

import httpx
import pytest

from resolvers.services import Services
from tests.factories import gql, make_user, make_videos


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # it breaks its own database
async def test_internal_errors_are_masked(
    client: httpx.AsyncClient, app_services: tuple[object, Services]
) -> None:
    services = app_services[1]
    creator = await make_user(services)
    await make_videos(services, creator.user, 1)
    async with services.db.engine.begin() as conn:
        await conn.exec_driver_sql("DROP TABLE renditions")

    body = await gql(client, "{ feed { videos { title renditions { url } } } }")
    (error,) = body["errors"]
    assert error["message"] == "Unexpected error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert "no such table" not in str(body).lower()

    (video,) = await make_videos(services, creator.user, 1)
    # Starlette re-raises after answering (for servers to log); this client must not.
    transport = httpx.ASGITransport(app=app_services[0], raise_app_exceptions=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get(f"/api/videos/{video.id}", headers={"x-request-id": "trace-me"})
    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "INTERNAL_SERVER_ERROR",
            "message": "internal error",
            "request_id": "trace-me",
        }
    }
