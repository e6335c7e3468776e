"""GET /openapi.json: an OpenAPI 3.1 description of the REST-compat face.

Request bodies come from the pydantic models the routes validate with; only operations whose
route is mounted in the running app are listed, so the document never promises a route that
is not there.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from resolvers import auth, channels, videos
from rest_compat.auth import LoginBody, SignupBody
from rest_compat.channels import ChannelBody

Schema = dict[str, Any]

NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_NUMBER: Schema = {"type": ["number", "null"]}


def _obj(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


COMPONENTS: dict[str, Schema] = {
    "Error": _obj(
        ["error"],
        error=_obj(
            ["code", "message", "request_id"],
            code={"type": "string"},
            message={"type": "string"},
            request_id={"type": "string"},
            details={"type": "object"},
        ),
    ),
    "User": _obj(
        ["id", "username", "email"],
        id={"type": "string"},
        username={"type": "string"},
        email={"type": "string"},
    ),
    "Creator": _obj(["id", "username"], id={"type": "string"}, username={"type": "string"}),
    "AuthResult": _obj(
        ["access_token", "user"], access_token={"type": "string"}, user=_ref("User")
    ),
    "Channel": _obj(
        ["id", "name", "slug", "description", "subscriber_count"],
        id={"type": "string"},
        name={"type": "string"},
        slug={"type": "string"},
        description=NULLABLE_STRING,
        subscriber_count={"type": "integer"},
    ),
    "VideoSummary": _obj(
        ["id", "title", "thumbnail_url"],
        id={"type": "string"},
        title={"type": "string"},
        thumbnail_url=NULLABLE_STRING,
    ),
    "FeedItem": _obj(
        ["id", "title", "thumbnail_url", "creator", "view_count", "created_at"],
        id={"type": "string"},
        title={"type": "string"},
        thumbnail_url=NULLABLE_STRING,
        category=NULLABLE_STRING,
        creator=_ref("Creator"),
        view_count={"type": "integer"},
        duration=NULLABLE_NUMBER,
        created_at={"type": "string", "format": "date-time"},
    ),
    "Feed": _obj(
        ["videos", "total_pages", "current_page"],
        videos={"type": "array", "items": _ref("FeedItem")},
        total_pages={"type": "integer"},
        current_page={"type": "integer"},
    ),
    "Video": _obj(
        ["id", "title", "description", "creator", "status"],
        id={"type": "string"},
        title={"type": "string"},
        description=NULLABLE_STRING,
        category=NULLABLE_STRING,
        creator=_ref("Creator"),
        status={"type": "string", "enum": ["PROCESSING", "TRANSCODED", "FAILED"]},
        created_at={"type": "string", "format": "date-time"},
        progress={"type": "integer"},
        failure_reason=NULLABLE_STRING,
        video_urls={"type": "object", "additionalProperties": {"type": "string"}},
        thumbnail_url=NULLABLE_STRING,
        duration=NULLABLE_NUMBER,
        current_timestamp={"type": "number"},
        view_count={"type": "integer"},
    ),
    "UploadAccepted": _obj(
        ["id", "title", "processing_status", "qualities"],
        id={"type": "string"},
        title={"type": "string"},
        processing_status={"type": "string"},
        qualities={"type": "array", "items": {"type": "string"}},
    ),
    "UploadForm": _obj(
        ["file", "title"],
        file={"type": "string", "format": "binary", "contentMediaType": "video/*"},
        title={"type": "string"},
        description={"type": "string"},
        category={"type": "string"},
    ),
    "TimestampBody": _obj(
        ["timestamp"],
        video_id={"type": "string"},
        timestamp={"type": "number", "minimum": 0},
        playing={"type": "boolean"},
        rate={"type": "number"},
    ),
    "PlaybackState": _obj(
        ["video_id", "timestamp", "user_id", "playing", "rate", "server_time", "version"],
        video_id={"type": "string"},
        timestamp={"type": "number"},
        user_id=NULLABLE_STRING,
        playing={"type": "boolean"},
        rate={"type": "number"},
        server_time={"type": "integer"},
        version={"type": "integer"},
    ),
    "ServerTime": _obj(
        ["received_at", "sent_at"], received_at={"type": "number"}, sent_at={"type": "number"}
    ),
    "Health": _obj(["status"], status={"type": "string"}),
    "Ready": _obj(
        ["ready", "checks"],
        ready={"type": "boolean"},
        checks={"type": "object", "additionalProperties": {"type": "string"}},
    ),
}

RATE_HEADERS: dict[str, Schema] = {
    name: {"required": True, "schema": {"type": "integer"}, "description": text}
    for name, text in (
        ("X-RateLimit-Limit", "requests allowed in the window"),
        ("X-RateLimit-Remaining", "requests left in the window"),
        ("X-RateLimit-Reset", "epoch seconds when the next request is accepted again"),
    )
}
ERRORS = {
    400: "validation error",
    401: "invalid, expired or revoked token / wrong credentials",
    403: "no token (the seed's rule) or not allowed",
    404: "not found",
    409: "already taken",
    411: "the user already has a channel",
    413: "too large or over quota",
    429: "rate limited or account locked",
    503: "a dependency is unavailable",
}


def _model(model: type[BaseModel], **constraints: Schema) -> Schema:
    """The pydantic model's JSON schema plus the checks its resolver makes (so fuzzers know)."""
    schema = model.model_json_schema()
    for name, extra in constraints.items():
        schema["properties"][name] = {**schema["properties"][name], **extra}
    return {"content": {"application/json": {"schema": schema}}, "required": True}


def _json(status_text: str, schema: Schema | None, limited: bool = True) -> Schema:
    answer: Schema = {"description": status_text}
    if schema is not None:
        answer["content"] = {"application/json": {"schema": schema}}
    if limited:
        answer["headers"] = dict(RATE_HEADERS)
    return answer


def _op(
    summary: str,
    ok: tuple[int, Schema | None],
    errors: list[int],
    *,
    auth: bool = False,
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
    limited: bool = True,
) -> Schema:
    status, schema = ok
    responses = {str(status): _json(summary, schema, limited)}
    for code in sorted({*errors, 429} if limited else errors):
        responses[str(code)] = _json(ERRORS[code], _ref("Error"), limited)
    if limited:
        responses["429"]["headers"] = {
            **RATE_HEADERS,
            "Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}},
        }
    operation: Schema = {"summary": summary, "responses": responses}
    if auth:
        operation["security"] = [{"bearer": []}]
    if body is not None:
        operation["requestBody"] = body
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_param(name: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query_int(name: str, default: int, maximum: int) -> Schema:
    """An integer query parameter; empty (`?page=`) means the default, as HTML forms send it."""
    number: Schema = {"type": "integer", "minimum": 1, "maximum": maximum}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"anyOf": [number, {"type": "string", "enum": [""]}], "default": default},
    }


OPERATIONS: dict[tuple[str, str], Schema] = {
    ("/api/auth/signup", "post"): _op(
        "create an account",
        (201, _ref("User")),
        [400, 409],
        body=_model(
            SignupBody,
            email={"format": "email", "maxLength": 254},
            password={"minLength": auth.MIN_PASSWORD, "maxLength": auth.MAX_PASSWORD},
            username={"pattern": "^[A-Za-z0-9_]{3,30}$"},
        ),
    ),
    ("/api/auth/login", "post"): _op(
        "sign in: a JWT, also set as the Authentication cookie",
        (200, _ref("AuthResult")),
        [400, 401],
        body=_model(LoginBody, email={"minLength": 1}, password={"minLength": 1}),
    ),
    ("/api/auth/logout", "post"): _op(
        "revoke the token this request carries", (204, None), [401, 403], auth=True
    ),
    ("/api/videos/feed", "get"): _op(
        "newest transcoded videos",
        (200, _ref("Feed")),
        [400],
        parameters=[
            _query_int("page", 1, maximum=videos.MAX_PAGE),
            _query_int("limit", 20, maximum=videos.MAX_LIMIT),
            {
                "name": "category",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "maxLength": videos.MAX_CATEGORY},
            },
        ],
    ),
    ("/api/channels", "post"): _op(
        "create the caller's channel",
        (201, _ref("Channel")),
        [400, 401, 403, 409, 411],
        auth=True,
        body=_model(
            ChannelBody,
            name={"pattern": r"\S", "maxLength": channels.MAX_NAME},
            slug={"pattern": "^[a-z0-9_-]{3,50}$"},
            description={"maxLength": channels.MAX_DESCRIPTION},
        ),
    ),
    ("/api/channels/{slug}", "get"): _op(
        "a channel and its videos",
        (
            200,
            {
                "allOf": [
                    _ref("Channel"),
                    _obj(["videos"], videos={"type": "array", "items": _ref("VideoSummary")}),
                ]
            },
        ),
        [401, 403, 404],
        auth=True,
        parameters=[_path_param("slug")],
    ),
    ("/api/videos/upload", "post"): _op(
        "upload a video; transcoding runs in the background",
        (202, _ref("UploadAccepted")),
        [400, 401, 403, 413, 503],
        auth=True,
        body={"required": True, "content": {"multipart/form-data": {"schema": _ref("UploadForm")}}},
    ),
    ("/api/videos/{video_id}", "get"): _op(
        "a video: PROCESSING, or TRANSCODED with its URLs and the shared playhead",
        (200, _ref("Video")),
        [404],
        parameters=[_path_param("video_id")],
    ),
    ("/api/videos/{video_id}/time", "put"): _op(
        "move the shared playhead; every subscriber is told",
        (201, _ref("PlaybackState")),
        [400, 401, 403, 404],
        auth=True,
        body={
            "required": True,
            "content": {"application/json": {"schema": _ref("TimestampBody")}},
        },
        parameters=[_path_param("video_id")],
    ),
    ("/api/time", "get"): _op("the server clock, for sync", (200, _ref("ServerTime")), []),
    ("/healthz", "get"): _op("the process is up", (200, _ref("Health")), [], limited=False),
    ("/readyz", "get"): {
        **_op("database, broker and storage answer", (200, _ref("Ready")), [], limited=False),
        "responses": {
            "200": _json("ready", _ref("Ready"), limited=False),
            "503": _json("not ready", _ref("Ready"), limited=False),
        },
    },
}


def _mounted(routes: list[BaseRoute]) -> set[tuple[str, str]]:
    mounted = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                mounted.add((route.path, method.lower()))
    return mounted


def document(routes: list[BaseRoute], *, title: str = "Cowatch REST") -> Schema:
    """The OpenAPI document for the operations that `routes` serve."""
    mounted = _mounted(routes)
    paths: dict[str, Schema] = {}
    for (path, method), operation in OPERATIONS.items():
        if (path, method) in mounted:
            paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": "1.0",
            "description": "Seed 000's REST API; GraphQL at /graphql is the primary face.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(document(request.app.routes))


routes = [Route("/openapi.json", openapi, methods=["GET"])]
