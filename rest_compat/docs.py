"""GET /docs: the REST face for people, rendered here from the same document as /openapi.json.

No script and no CDN: plain HTML with one inline stylesheet, allowed by its hash alone, so the
page works offline and under a CSP that permits nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from rest_compat.openapi import cached_document
from rest_compat.operations import operation

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLE = (TEMPLATES / "docs.css").read_text()
STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP = (
    f"default-src 'none'; style-src 'sha256-{STYLE_HASH}'; img-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
CONSTRAINTS = (
    ("minimum", "≥ {}"),
    ("maximum", "≤ {}"),
    ("minLength", "at least {} characters"),
    ("maxLength", "at most {} characters"),
    ("pattern", "matches {}"),
    ("format", "format {}"),
    ("default", "default {}"),
)
environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    notes: str


def _name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A short, readable type: `string | null`, `array of Creator`, `map of string`."""
    if "$ref" in schema:
        return _name(schema["$ref"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " | ".join(type_of(option) for option in schema[key])
    if "const" in schema:
        return f'"{schema["const"]}"'
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {type_of(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {type_of(schema['additionalProperties'])}"
    return " | ".join(kind) if isinstance(kind, list) else str(kind)


def notes_of(schema: dict[str, Any]) -> str:
    parts = [schema["description"]] if schema.get("description") else []
    parts += [text.format(schema[key]) for key, text in CONSTRAINTS if key in schema]
    for option in schema.get("anyOf", ()):
        parts += [text.format(option[key]) for key, text in CONSTRAINTS if key in option]
    return "; ".join(str(part) for part in parts)


def fields_of(schema: dict[str, Any]) -> list[Field]:
    required = set(schema.get("required", ()))
    return [
        Field(name, type_of(prop), name in required, notes_of(prop))
        for name, prop in schema.get("properties", {}).items()
    ]


def render(doc: dict[str, Any]) -> str:
    operations = [
        (path, method.upper(), op)
        for path, item in doc["paths"].items()
        for method, op in item.items()
    ]
    components = {
        name: (schema, fields_of(schema)) for name, schema in doc["components"]["schemas"].items()
    }
    return environment.get_template("docs.html").render(
        doc=doc, operations=operations, components=components, type_of=type_of, style=STYLE
    )


@operation(
    "this page: the REST API for people (HTML, works offline)",
    ok=(200, str),
    media_types=("text/html",),
)
async def docs(request: Request) -> Response:
    state = request.app.state
    if getattr(state, "docs_html", None) is None:
        state.docs_html = render(cached_document(request))
    return HTMLResponse(state.docs_html, headers={"Content-Security-Policy": CSP})


routes = [Route("/docs", docs, methods=["GET"])]
