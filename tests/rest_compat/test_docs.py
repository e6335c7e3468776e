"""/docs lists every operation of /openapi.json, under a policy that allows only its stylesheet."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # no data involved


async def test_docs_page_lists_every_operation_and_shape(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for path, item in document["paths"].items():
        for op in item.values():
            assert f'id="{op["operationId"]}"' in page.text, path
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page.text
    assert "<script" not in page.text
    csp = page.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
