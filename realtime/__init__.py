"""Realtime delivery: events by topic, from any process to every subscribed socket.

Nothing here knows the domain (videos, parties, users): `resolvers/` publishes `Event`s through
the `Publisher` protocol, the faces (`rest_compat/ws.py`, `schema/sockets.py`) render them.
"""
