"""Only an unreachable dependency counts as unavailable; other errors are bugs, not outages."""

from __future__ import annotations

import sqlite3

import sqlalchemy.exc

from resolvers.faults import is_unavailable


def test_only_unreachable_dependencies_count_as_unavailable() -> None:
    refused = ConnectionRefusedError(111, "Connection refused")
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, refused)
    lost = sqlalchemy.exc.DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    bug = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("no such table: videos"))
    try:
        raise RuntimeError("while reading") from refused
    except RuntimeError as chained:
        assert is_unavailable(chained)
    assert is_unavailable(refused)
    assert is_unavailable(lost)
    assert not is_unavailable(bug)
    assert not is_unavailable(ValueError("bad"))
    assert not is_unavailable(None)
    assert is_unavailable(wrapped)
    locked = sqlite3.OperationalError("database is locked")
    assert is_unavailable(sqlalchemy.exc.OperationalError("UPDATE", {}, locked))
