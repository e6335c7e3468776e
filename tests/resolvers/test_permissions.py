"""The rules both faces ask: sign-in required, owner only."""

from __future__ import annotations

import pytest

from models import User
from resolvers.errors import Forbidden, Unauthenticated
from resolvers.permissions import is_owner, require_owner, require_user

ALICE = User(
    id="a" * 36, email="a@example.com", username="alice", username_key="alice", password_hash="x"
)


def test_require_user_is_the_seeds_403_without_a_user() -> None:
    assert require_user(ALICE) is ALICE
    with pytest.raises(Unauthenticated):
        require_user(None)


def test_only_the_owner_passes() -> None:
    assert is_owner(ALICE.id, ALICE.id)
    assert not is_owner(None, ALICE.id)
    assert not is_owner("b" * 36, ALICE.id)
    require_owner(ALICE, ALICE.id, what="video")
    with pytest.raises(Forbidden, match="only the video's owner"):
        require_owner(ALICE, "b" * 36, what="video")
