"""Who may do what, written once: both faces (and sockets) ask these, never their own copies."""

from __future__ import annotations

from models import User
from resolvers.errors import Forbidden, Unauthenticated

SIGN_IN_REQUIRED = "authentication required: send Authorization: Bearer <token>"


def require_user(user: User | None) -> User:
    """The one place a missing login becomes the seed's 403 (a bad token is InvalidToken, 401)."""
    if user is None:
        raise Unauthenticated(SIGN_IN_REQUIRED)
    return user


def is_owner(user_id: str | None, owner_id: str) -> bool:
    """True when the user `user_id` owns what `owner_id` owns (a user is their own owner)."""
    return user_id is not None and user_id == owner_id


def require_owner(user: User, owner_id: str, *, what: str) -> None:
    """Only the owner may act on it: a video's uploader, a channel's user, a party's host."""
    if not is_owner(user.id, owner_id):
        raise Forbidden(f"only the {what}'s owner may do this")
