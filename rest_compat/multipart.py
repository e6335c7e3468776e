"""A streaming multipart/form-data reader: one file part goes straight to a staging file.

Starlette's `request.form()` spools every file and applies no size cap to it; here the cap is
checked as each chunk arrives, so an oversized upload is refused without being read to the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from resolvers.errors import BadInput, PayloadTooLarge
from resolvers.uploads import StagedUpload
from rest_compat.errors import error_response

if TYPE_CHECKING:
    from config import Settings

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 20
#: room for the multipart framing and the text fields around the file
ENVELOPE_BYTES = 1024 * 1024


class _Reader:
    def __init__(self, file_field: str) -> None:
        self.file_field = file_field
        self.fields: dict[str, str] = {}
        self.pending: list[bytes] = []
        self.saw_file = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()

    def on_part_begin(self) -> None:
        self._disposition, self._name, self._is_file = b"", "", False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if self._name != self.file_field or self.saw_file:
                raise BadInput(f"exactly one file is expected, in the '{self.file_field}' field")
            self.saw_file = True
        elif len(self.fields) >= MAX_FIELDS:
            raise BadInput("too many form fields")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.pending.append(data[start:end])
            return
        self._data += data[start:end]
        if len(self._data) > MAX_FIELD_BYTES:
            raise BadInput(f"{self._name}: too long", field=self._name)

    def on_part_end(self) -> None:
        if not self._is_file:
            self.fields[self._name] = self._data.decode("utf-8", "replace")


async def read_form(request: Request, staged: StagedUpload, *, file_field: str) -> dict[str, str]:
    """Stream the body: the file part into `staged`, the text fields into the returned dict."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise BadInput("the request must be multipart/form-data")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > staged.limit + ENVELOPE_BYTES:
        raise PayloadTooLarge(
            f"file: larger than the {staged.limit} byte limit", field="file", limit=staged.limit
        )
    reader = _Reader(file_field)
    parser = MultipartParser(
        params[b"boundary"],
        {
            "on_part_begin": reader.on_part_begin,
            "on_part_data": reader.on_part_data,
            "on_part_end": reader.on_part_end,
            "on_header_field": reader.on_header_field,
            "on_header_value": reader.on_header_value,
            "on_header_end": reader.on_header_end,
            "on_headers_finished": reader.on_headers_finished,
        },
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            for piece in reader.pending:
                await staged.write(piece)
            reader.pending.clear()
        parser.finalize()
    except FormParserError as exc:
        raise BadInput("the multipart body is malformed") from exc
    if not reader.saw_file:
        raise BadInput(f"{file_field}: required", field=file_field)
    await staged.finish()
    return reader.fields


class UploadSizeLimit:
    """Refuse a multipart body whose declared length is over the cap before reading any of it.

    The REST route checks again as bytes arrive; this also covers GraphQL uploads, whose body
    Strawberry reads whole before our resolver runs.
    """

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            headers = Headers(scope=scope)
            declared = headers.get("content-length", "")
            limit = self.settings.max_upload_bytes
            if (
                headers.get("content-type", "").startswith("multipart/form-data")
                and declared.isdigit()
                and int(declared) > limit + ENVELOPE_BYTES
            ):
                message = f"file: larger than the {limit} byte limit"
                response = error_response(413, PayloadTooLarge.code, message, {"limit": limit})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
