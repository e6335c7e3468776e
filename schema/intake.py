"""How a GraphQL request over HTTP is taken in, before Strawberry executes it.

- A multipart upload (the GraphQL multipart request spec) is admitted first: the caller must
  be signed in and within the upload rate limit before one byte of the body is read. The body
  is then streamed by the REST reader (`edge/multipart.py`): `operations` and `map`
  come first, the map may name at most one file, and that file goes straight to the staging
  area with the upload cap; Strawberry gets the operations with the `StagedUpload` in place.
- The document (`query`) is refused over `COWATCH_GRAPHQL_MAX_BYTES` bytes before parsing,
  whatever the transport (GET, JSON, multipart).
- JSON nested too deeply for the decoder is a 400, subscriptions are for sockets only, and
  every refusal before execution is a GraphQL-shaped body with the status REST would use.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.types import Receive, Scope, Send
from strawberry.asgi import GraphQL
from strawberry.exceptions import MissingQueryError
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http.async_base_view import AsyncBaseHTTPView
from strawberry.schema.exceptions import (
    CannotGetOperationTypeError,
    InvalidOperationTypeError,
)
from strawberry.types.graphql import OperationType

from edge.errors import HTTP_CODES
from edge.multipart import read_form
from edge.refusal import graphql_error_response, refusal
from resolvers import auth
from resolvers.errors import BadInput, DomainError, PayloadTooLarge, RateLimited, Unauthenticated
from resolvers.ratelimit import RateClass, caller_key
from resolvers.services import Services
from resolvers.uploads import StagedUpload, staging
from schema import fastpath
from schema.context import Context

if TYPE_CHECKING:
    from config import Settings

#: Hooks of Strawberry's HTTP view overridden here (checked at import: pinned in pyproject).
_OVERRIDDEN = ("parse_http_body", "parse_multipart", "execute_single", "decode_json")
for _name in _OVERRIDDEN:
    if not callable(getattr(AsyncBaseHTTPView, _name, None)):
        raise RuntimeError(f"strawberry's HTTP view has no {_name}(): check the pinned version")

#: rate classes already counted for this request by the intake (schema/limits.py skips them)
PRECOUNTED = "cowatch.precounted"
_prepared: ContextVar[dict[str, Any] | None] = ContextVar("cowatch_multipart", default=None)


def check_document_size(query: object, settings: Settings) -> None:
    """Refuse a GraphQL document over the byte cap, before anything parses it (HTTP and sockets)."""
    limit = settings.graphql_max_bytes
    if isinstance(query, str) and len(query) > limit // 4 and len(query.encode()) > limit:
        raise PayloadTooLarge(
            f"the GraphQL document is larger than the {limit} byte limit", limit=limit
        )


def _is_multipart(scope: Scope, request: Request) -> bool:
    content_type = request.headers.get("content-type", "").lower()
    return scope["method"] == "POST" and content_type.startswith("multipart/form-data")


async def _admit_upload(request: Request, services: Services) -> None:
    """A multipart body is only read for a signed-in caller within the upload limit."""
    token = auth.token_from(headers=request.headers, cookies=request.cookies)
    if token is None:
        raise Unauthenticated("authentication required to upload: send Authorization: Bearer")
    await auth.authenticate(db=services.db, secret=services.jwt_secret, token=token)
    key = caller_key(
        secret=services.jwt_secret,
        token=token,
        ip=request.client.host if request.client else None,
    )
    decision = await services.rate_limiter.hit(RateClass.UPLOAD, key)
    if decision is not None:
        if not decision.allowed:
            retry = decision.retry_after()
            raise RateLimited(
                f"too many uploads: retry in {retry} s", retry_after=retry, limit=decision.limit
            )
        request.scope[PRECOUNTED] = (RateClass.UPLOAD,)


class _UploadForm:
    """The GraphQL multipart spec's order: `operations`, then `map`, then the file it names."""

    def __init__(self) -> None:
        self.file_key: str | None = None
        self.saw_file = False

    def on_field(self, name: str, value: str) -> None:
        if name == "map":
            files_map = decode_json(value, "map")
            if not isinstance(files_map, dict) or len(files_map) > 1:
                raise BadInput("map: at most one file per operation", field="map")
            for key, paths in files_map.items():
                if not (isinstance(paths, list) and len(paths) == 1 and isinstance(paths[0], str)):
                    raise BadInput("map: a file goes to exactly one variable", field="map")
                self.file_key = key

    def file_field(self, fields: dict[str, str]) -> str:
        if "operations" not in fields or "map" not in fields:
            raise BadInput("operations and map must come before the file", field="map")
        if self.file_key is None:
            raise BadInput("map: names no file, but a file was sent", field="map")
        self.saw_file = True
        return self.file_key


async def read_operations(request: Request, staged: StagedUpload) -> Any:
    """Stream a GraphQL multipart body; the operations with the staged file in its place."""
    form = _UploadForm()
    fields = await read_form(
        request, staged, file_field=form.file_field, on_field=form.on_field, require_file=False
    )
    if "operations" not in fields or "map" not in fields:
        raise BadInput("a GraphQL multipart request needs operations and map parts")
    operations = decode_json(fields["operations"], "operations")
    files_map = decode_json(fields["map"], "map")
    if form.file_key is not None and not form.saw_file:
        raise BadInput(f"{form.file_key}: the mapped file was not sent", field="map")
    files = {form.file_key: staged} if form.file_key is not None else {}
    try:
        return replace_placeholders_with_files(operations, files_map, files)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise BadInput("map: a path does not lead to a variable of operations") from exc


def decode_json(data: str | bytes, what: str = "request body") -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"{what}: not valid JSON") from exc
    except RecursionError as exc:
        raise BadInput(f"{what}: nested too deeply") from exc


class GraphQLIntake(GraphQL[Context, None]):
    """Strawberry's ASGI view with our intake; `schema/app.py` adds the context and sockets."""

    def __init__(self, *args: Any, settings: Settings, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        #: requests answered by schema/fastpath.py (the rest went through Strawberry)
        self.fast_answers = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            if _is_multipart(scope, request):
                services: Services = request.app.state.services
                async with staging(settings=self.settings) as staged:
                    await _admit_upload(request, services)
                    prepared = _prepared.set(await read_operations(request, staged))
                    try:
                        response = await self.run(request)
                    finally:
                        _prepared.reset(prepared)
            else:
                fast = await fastpath.answer(self, request, self.settings)  # type: ignore[arg-type]
                if fast is None:
                    response = await self.run(request)
                else:
                    response = fast
                    self.fast_answers += 1
        except HTTPException as exc:
            code = HTTP_CODES.get(exc.status_code, "BAD_REQUEST")
            response = graphql_error_response(exc.status_code, code, exc.reason)
        except DomainError as exc:
            response = refusal(scope, exc)
        await response(scope, receive, send)

    async def parse_multipart(self, request: Any) -> dict[str, str]:
        prepared = _prepared.get()
        if prepared is None:
            raise HTTPException(400, "the multipart body was not read")
        return prepared

    async def parse_http_body(self, request: Any) -> Any:
        data = await super().parse_http_body(request)
        for item in data if isinstance(data, list) else [data]:
            check_document_size(item.query, self.settings)
        return data

    def decode_json(self, data: str | bytes) -> object:
        try:
            return json.loads(data)
        except RecursionError as exc:
            raise json.JSONDecodeError("nested too deeply", "", 0) from exc

    async def execute_single(  # type: ignore[override]
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: Any,
    ) -> Any:
        """Strawberry's, minus subscriptions: they run over the sockets only."""
        allowed = OperationType.from_http(request_adapter.method) - {OperationType.SUBSCRIPTION}
        if not self.allow_queries_via_get and request_adapter.method == "GET":
            allowed = allowed - {OperationType.QUERY}
        try:
            return await self.schema.execute(
                request_data.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type == OperationType.SUBSCRIPTION:
                raise HTTPException(
                    400, "subscriptions run over the websocket at /graphql, not over HTTP"
                ) from exc
            raise HTTPException(400, exc.as_http_error_reason(request_adapter.method)) from exc
