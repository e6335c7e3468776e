"""Parsed GraphQL documents, kept once per text: a byte-bounded LRU keyed by sha256.

Every GraphQL path (HTTP queries, subscriptions, persisted queries) asks this cache for a
document before parsing it. A `Document` carries what is known about its text for as long as it
stays cached: the AST, the schema's validation verdict (the security rules' depth, alias and
introspection verdicts included) and per-document plans that callers attach with `plan()`
(rate-limit classes per operation, the list-limit arguments, a subscription's fan-out plan).
Anything that depends on variables, the caller or time (rate limits, list caps given by
variables) is checked per request from those plans, never cached as a verdict.

The budget counts document text (UTF-8 bytes): a document larger than the whole budget is
parsed but not kept. Automatic persisted queries (Apollo's protocol) share the cache: a hash
alone is served while its document is cached, and answered `PersistedQueryNotFound` once it has
been evicted, so the client sends the text again.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from graphql import DocumentNode, GraphQLError, parse

T = TypeVar("T")
PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"


def digest(text: str) -> str:
    """The document's key: the sha256 of its UTF-8 text, hex (what APQ clients send)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(eq=False, slots=True)
class Document:
    sha256: str
    text: str
    ast: DocumentNode
    size: int
    #: the schema's validation errors for this document ([] = valid); None until validated
    validation: list[GraphQLError] | None = None
    plans: dict[Hashable, Any] = field(default_factory=dict)

    def plan(self, key: Hashable, build: Callable[[Document], T]) -> T:
        """What `build` derives from this document, computed once per cached document."""
        try:
            found: T = self.plans[key]
        except KeyError:
            found = self.plans[key] = build(self)
        return found

    def validation_errors(self) -> list[GraphQLError] | None:
        """Fresh copies of the cached verdict's errors (callers may rewrite theirs)."""
        return None if self.validation is None else copy_errors(self.validation)


def copy_errors(errors: Iterable[GraphQLError]) -> list[GraphQLError]:
    return [
        GraphQLError(
            e.message,
            nodes=e.nodes,
            source=e.source,
            positions=e.positions,
            path=e.path,
            original_error=e.original_error,
            extensions=dict(e.extensions) if e.extensions else None,
        )
        for e in errors
    ]


class DocumentCache:
    """Documents by sha256, least recently used evicted first, within `max_bytes` of text."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._documents: OrderedDict[str, Document] = OrderedDict()

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, sha256: str) -> Document | None:
        found = self._documents.get(sha256)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._documents.move_to_end(sha256)
        return found

    def lookup(self, text: str) -> Document | None:
        return self.get(digest(text))

    def add(self, text: str, ast: DocumentNode, *, sha256: str | None = None) -> Document:
        """Keep `ast` as the parse of `text` (if it fits) and return its Document."""
        key = sha256 or digest(text)
        existing = self._documents.get(key)
        if existing is not None:
            return existing
        size = len(text.encode())
        document = Document(sha256=key, text=text, ast=ast, size=size)
        if size > self.max_bytes:
            return document
        self._documents[key] = document
        self.bytes += size
        while self.bytes > self.max_bytes:
            _key, evicted = self._documents.popitem(last=False)
            self.bytes -= evicted.size
        return document

    def get_or_parse(self, text: str, **parse_options: Any) -> Document:
        """The cached document for `text`, parsing it on a miss (GraphQLError if it cannot be)."""
        key = digest(text)
        found = self.get(key)
        if found is not None:
            return found
        return self.add(text, parse(text, **parse_options), sha256=key)

    def clear(self) -> None:
        self._documents.clear()
        self.bytes = 0


class PersistedQueryError(GraphQLError):
    """An automatic persisted query that cannot be served; the code tells the client what to do."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message, extensions={"code": code})


def persisted_query_text(
    cache: DocumentCache, query: str | None, extensions: Mapping[str, Any] | None
) -> str | None:
    """The text to run for a request, following Apollo's automatic persisted queries.

    Without `extensions.persistedQuery` the request's own query (possibly None) is returned. A
    hash alone is looked up (PersistedQueryNotFound when unknown); a hash with text must be the
    text's sha256, and the text is then run (and so cached) like any other.
    """
    persisted = extensions.get("persistedQuery") if extensions else None
    if persisted is None:
        return query
    if not isinstance(persisted, Mapping) or persisted.get("version") != 1:
        raise PersistedQueryError("unsupported persisted query version", "BAD_USER_INPUT")
    sha256 = persisted.get("sha256Hash")
    if not isinstance(sha256, str):
        raise PersistedQueryError("persistedQuery.sha256Hash must be a string", "BAD_USER_INPUT")
    if query is not None:
        if digest(query) != sha256.lower():
            raise PersistedQueryError("provided sha does not match query", "BAD_USER_INPUT")
        return query
    found = cache.get(sha256.lower())
    if found is None:
        raise PersistedQueryError("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
    return found.text
