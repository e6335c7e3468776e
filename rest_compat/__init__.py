"""The REST + WebSocket face of seed 000, mapped onto the same resolvers as GraphQL."""

from rest_compat.routes import routes

__all__ = ["routes"]
