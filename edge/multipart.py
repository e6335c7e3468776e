"""A streaming multipart/form-data reader: one file part goes straight to a staging file.

Starlette's `request.form()` spools every file and applies no size cap to it; here the cap is
checked as each chunk arrives, so an oversized upload is refused without being read to the end.
The whole body is capped too, as it arrives (`rest_compat/bodylimit.py`). GraphQL uploads use
the same reader (`schema/intake.py`): there the file's field is the one the `map` part names.
"""

from __future__ import annotations

from collections.abc import Callable

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from resolvers.errors import BadInput
from resolvers.uploads import StagedUpload

MAX_FIELD_BYTES = 64 * 1024
MAX_FIELDS = 20
#: one part's headers (Content-Disposition, Content-Type): far more than a browser sends
MAX_HEADER_BYTES = 8 * 1024
#: which field carries the file: a name, or a function of the text fields read so far
FileField = str | Callable[[dict[str, str]], str]


class _Reader:
    def __init__(self, file_field: FileField, on_field: Callable[[str, str], None] | None) -> None:
        self.file_field = file_field
        self.on_field = on_field
        self.parts = 0
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
        self.parts += 1
        if self.parts > MAX_FIELDS + 1:
            raise BadInput("too many form fields")
        self._disposition, self._name, self._is_file = b"", "", False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._check_header()

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header_name) + len(self._header_value) > MAX_HEADER_BYTES:
            raise BadInput("a form part's headers are too long")

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name, self._header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in options
        if self._is_file:
            if self.saw_file:
                raise BadInput("exactly one file is expected")
            expected = (
                self.file_field
                if isinstance(self.file_field, str)
                else self.file_field(self.fields)
            )
            if self._name != expected:
                raise BadInput(f"exactly one file is expected, in the '{expected}' field")
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
            value = self._data.decode("utf-8", "replace")
            self.fields[self._name] = value
            if self.on_field is not None:
                self.on_field(self._name, value)


async def read_form(
    request: Request,
    staged: StagedUpload,
    *,
    file_field: FileField,
    on_field: Callable[[str, str], None] | None = None,
    require_file: bool = True,
) -> dict[str, str]:
    """Stream the body: the file part into `staged`, the text fields into the returned dict.

    `on_field` sees each text field as soon as it ends and may refuse the request (BadInput)
    before another byte is read.
    """
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in params:
        raise BadInput("the request must be multipart/form-data")
    reader = _Reader(file_field, on_field)
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
    if require_file and not reader.saw_file:
        name = file_field if isinstance(file_field, str) else "file"
        raise BadInput(f"{name}: required", field=name)
    await staged.finish()
    return reader.fields
