"""Check real REST answers against the app's own /openapi.json.

The `client` fixture runs every answer it gets through `ResponseChecker`: an answer on a
documented path and method must have a documented status, and its JSON body must validate
against the schema documented for that status (models forbid extra keys, so a key the document
does not name fails too). Paths the document does not describe (GraphQL, pages, media) pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import BaseRoute

from rest_compat.openapi import described_routes, document

BASE = "urn:cowatch:openapi"


def _pointer(*parts: str) -> str:
    return "/".join(quote(part.replace("~", "~0").replace("/", "~1"), safe="") for part in parts)


@dataclass
class ResponseChecker:
    doc: dict[str, Any]
    checked: int = 0
    _routes: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(BASE, resource)
        for path in self.doc["paths"]:
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path))
            self._routes.append((re.compile(f"^{pattern}$"), path))

    def template(self, path: str) -> str | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                return template
        return None

    def problems(self, method: str, path: str, status: int, headers: Any, body: bytes) -> list[str]:
        """What is wrong with this answer according to the document (nothing: [])."""
        template = self.template(path)
        operation = self.doc["paths"].get(template, {}).get(method.lower()) if template else None
        if operation is None:
            return []
        self.checked += 1
        where = f"{method} {path} → {status}"
        answer = operation["responses"].get(str(status))
        if answer is None:
            return [f"{where}: status not documented ({sorted(operation['responses'])})"]
        content = answer.get("content")
        if content is None:
            return [] if not body else [f"{where}: documented without a body, got {body[:80]!r}"]
        sent = headers.get("content-type", "").split(";")[0].strip()
        if sent not in content:
            return [f"{where}: content-type {sent!r}, documented {sorted(content)}"]
        if sent != "application/json":
            return []
        pointer = _pointer(
            "paths", template or "", method.lower(), "responses", str(status), "content"
        )
        schema = {"$ref": f"{BASE}#/{pointer}/application~1json/schema"}
        validator = Draft202012Validator(
            schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER
        )
        return [
            f"{where}: {error.message} at {list(error.absolute_path)}"
            for error in validator.iter_errors(json.loads(body))
        ]

    async def __call__(self, response: httpx.Response) -> None:
        """An httpx response hook."""
        request = response.request
        body = await response.aread()
        problems = self.problems(
            request.method, request.url.path, response.status_code, response.headers, body
        )
        assert not problems, "answer does not match /openapi.json:\n" + "\n".join(problems)


_documents: dict[tuple[tuple[str, frozenset[str], int], ...], dict[str, Any]] = {}


def checker_for(routes: Iterable[BaseRoute]) -> ResponseChecker:
    """A checker for an app's routes; the document is built once per distinct set of routes."""
    routes = list(routes)
    key = tuple(
        (route.path, frozenset(route.methods or ()), id(op))
        for route, op in described_routes(routes)
    )
    if key not in _documents:
        _documents[key] = document(routes)
    return ResponseChecker(_documents[key])
