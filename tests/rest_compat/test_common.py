"""JSON bodies (`rest_compat.common.json_body`): numbers as /openapi.json's JSON Schema counts
them, strictly typed otherwise."""

from __future__ import annotations

import pytest
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import Message

from resolvers.errors import BadInput
from rest_compat.common import json_body


class Shape(BaseModel):
    count: int
    seconds: float


def _request(body: bytes) -> Request:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    scope = {"type": "http", "method": "POST", "headers": [], "path": "/", "query_string": b""}
    return Request(scope, receive)


@pytest.mark.parametrize(
    ("raw", "count", "seconds"),
    [
        (b'{"count": 126.0, "seconds": 1.5}', 126, 1.5),  # 126.0 is an integer to JSON Schema
        (b'{"count": 1e2, "seconds": 2}', 100, 2.0),
        (b'{"count": 3, "seconds": 4.0}', 3, 4.0),
    ],
)
async def test_integral_numbers_are_integers(raw: bytes, count: int, seconds: float) -> None:
    shape = await json_body(_request(raw), Shape)
    assert (shape.count, shape.seconds) == (count, seconds)
    assert type(shape.count) is int and type(shape.seconds) is float


@pytest.mark.parametrize(
    "raw",
    [
        b'{"count": 1.5, "seconds": 1}',
        b'{"count": "3", "seconds": 1}',
        b'{"count": true, "seconds": 1}',
    ],
)
async def test_other_shapes_stay_refused(raw: bytes) -> None:
    with pytest.raises(BadInput):
        await json_body(_request(raw), Shape)
