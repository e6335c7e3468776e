"""GET /openapi.json: an OpenAPI 3.1 document generated from the mounted routes.

Every route whose handler carries an `@operation` (rest_compat/operations.py) is described from
it: the pydantic models it names become `components.schemas`, `@requires_user` becomes the
security requirement with 401 and 403, and the rate-limit class of the path (the same
`classify` the middleware uses) adds the X-RateLimit-* headers and 429. Nothing is listed that
is not mounted, and tests/rest_compat/test_openapi.py fails on a mounted route left undescribed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.convertors import FloatConvertor, IntegerConvertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rest_compat.operations import JSON, ErrorBody, Operation, described, operation
from rest_compat.ratelimit import classify

Schema = dict[str, Any]
REF = "#/components/schemas/{model}"
TITLE = "Cowatch REST"
DESCRIPTION = (
    "Seed 000's REST API. GraphQL at `/graphql` is the primary face; both call the same "
    "resolvers. Live playback updates arrive over the `/ws` websocket (not described here). "
    "Signed-in routes take `Authorization: Bearer <jwt>` from `POST /api/auth/login` (or its "
    "Authentication cookie): no token is 403, a bad, expired or revoked one is 401."
)

ERRORS = {
    400: "validation error",
    401: "invalid, expired or revoked token, or wrong credentials",
    403: "no token (the seed's rule) or not allowed; BAD_PASSWORD: a party's password is "
    "wrong or missing",
    404: "not found",
    409: "already taken; PARTY_FULL: the party has `max_members` members",
    410: "PARTY_ENDED: the party is over",
    411: "the user already has a channel",
    413: "too large or over quota",
    429: "rate limited, or the account is locked; see Retry-After",
    503: "a dependency is unavailable; retry after Retry-After seconds",
}
RATE_HEADERS: dict[str, Schema] = {
    name: {"schema": {"type": "integer"}, "description": f"{text} (when rate limits are on)"}
    for name, text in (
        ("X-RateLimit-Limit", "requests allowed in the window"),
        ("X-RateLimit-Remaining", "requests left in the window"),
        ("X-RateLimit-Reset", "epoch seconds when the next request is accepted again"),
    )
}
RETRY_AFTER: Schema = {"required": True, "schema": {"type": "integer", "minimum": 1}}
SECURITY_SCHEMES: Schema = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "Authentication"},
}


class Components:
    """JSON schemas of the models the operations name, each stored once under its name."""

    def __init__(self) -> None:
        self.schemas: dict[str, Schema] = {}

    def add(self, name: str, schema: Schema) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different models are both named {name}")

    def schema_of(self, annotation: Any, *, mode: str = "serialization") -> Schema:
        """A reference for a model, or the schema of a union of models, with its $defs stored."""
        schema = TypeAdapter(annotation).json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        for name, definition in schema.pop("$defs", {}).items():
            self.add(name, definition)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            self.add(annotation.__name__, schema)
            return {"$ref": REF.format(model=annotation.__name__)}
        return schema


def _answer(
    description: str,
    schema: Schema | None,
    limited: bool,
    media_types: tuple[str, ...] = ("application/json",),
) -> Schema:
    answer: Schema = {"description": description}
    if schema is not None:
        answer["content"] = {media_type: {"schema": schema} for media_type in media_types}
    if limited:
        answer["headers"] = dict(RATE_HEADERS)
    return answer


def _parameters(route: Route, query: type[BaseModel] | None) -> list[Schema]:
    parameters: list[Schema] = []
    for name, convertor in route.param_convertors.items():
        kind = "string"
        if isinstance(convertor, IntegerConvertor):
            kind = "integer"
        elif isinstance(convertor, FloatConvertor):
            kind = "number"
        parameters.append({"name": name, "in": "path", "required": True, "schema": {"type": kind}})
    if query is not None:
        schema = query.model_json_schema(ref_template=REF)
        required = set(schema.get("required", ()))
        for name, prop in schema["properties"].items():
            prop = dict(prop)
            prop.pop("title", None)
            if prop.get("default", 0) is None:
                del prop["default"]  # absent, not null: a query string has no null
            parameter = {"name": name, "in": "query", "required": name in required}
            if "description" in prop:
                parameter["description"] = prop.pop("description")
            parameters.append({**parameter, "schema": prop})
    return parameters


def _body(op: Operation, components: Components) -> Schema | None:
    if op.body is not None:
        schema = components.schema_of(op.body, mode="validation")
        return {"required": True, "content": {"application/json": {"schema": schema}}}
    if op.form is not None:
        schema = components.schema_of(op.form, mode="validation")
        return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    return None


def _operation(route: Route, method: str, op: Operation, components: Components) -> Schema:
    limited = classify(method, route.path) is not None
    ok = components.schema_of(op.response) if op.response is not None else None
    responses = {str(op.status): _answer(op.summary, ok, limited, op.media_types)}
    for status, (text, body, *media_types) in op.also.items():
        schema = components.schema_of(body) if body is not None else None
        kinds = media_types[0] if media_types else ("application/json",)
        responses[str(status)] = _answer(text, schema, limited, kinds)
    errors = (
        set(op.errors) | ({401, 403} if op.signed_in else set()) | ({429} if limited else set())
    )
    error = components.schema_of(ErrorBody)
    for status in sorted(errors):
        responses[str(status)] = _answer(ERRORS[status], error, limited)
    if limited:
        responses["429"]["headers"] = {**RATE_HEADERS, "Retry-After": RETRY_AFTER}
    described_op: Schema = {
        "operationId": f"{method.lower()}_{route.name}",
        "summary": op.summary,
        "responses": responses,
    }
    if op.signed_in:
        described_op["security"] = [{"bearer": []}, {"cookie": []}]
    if parameters := _parameters(route, op.query):
        described_op["parameters"] = parameters
    if (body := _body(op, components)) is not None:
        described_op["requestBody"] = body
    return described_op


def described_routes(routes: Iterable[BaseRoute]) -> list[tuple[Route, Operation]]:
    return [
        (route, op)
        for route in routes
        if isinstance(route, Route) and (op := described(route.endpoint)) is not None
    ]


def document(routes: Iterable[BaseRoute], *, title: str = TITLE) -> Schema:
    """The OpenAPI document for the described operations that `routes` serve."""
    components = Components()
    paths: dict[str, Schema] = {}
    for route, op in described_routes(routes):
        for method in sorted((route.methods or set()) - {"HEAD"}):
            paths.setdefault(route.path, {})[method.lower()] = _operation(
                route, method, op, components
            )
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1.0", "description": DESCRIPTION},
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.schemas.items())),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


def cached_document(request: Request) -> Schema:
    """Built once per app: the routes do not change while it runs."""
    state = request.app.state
    if getattr(state, "openapi_document", None) is None:
        state.openapi_document = document(request.app.routes)
    cached: Schema = state.openapi_document
    return cached


@operation("this document (OpenAPI 3.1)", ok=(200, dict[str, Any]))
async def openapi(request: Request) -> Response:
    return JSON(cached_document(request))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
