"""The GraphQL face: the schema object and the ASGI view that serves it."""

from schema.root import build_schema

__all__ = ["build_schema"]
