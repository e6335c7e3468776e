"""Domain errors, defined once; each face maps them once (REST status, GraphQL extensions.code)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class BadInput(DomainError):
    code = "BAD_USER_INPUT"


class Unauthenticated(DomainError):
    """No credentials were presented (the seed's 403)."""

    code = "UNAUTHENTICATED"


class InvalidToken(DomainError):
    """Credentials were presented but are invalid, expired or revoked (401)."""

    code = "UNAUTHENTICATED"


class InvalidCredentials(DomainError):
    code = "INVALID_CREDENTIALS"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class AlreadyHasChannel(DomainError):
    code = "ALREADY_HAS_CHANNEL"


class PayloadTooLarge(DomainError):
    code = "PAYLOAD_TOO_LARGE"


class QuotaExceeded(DomainError):
    code = "QUOTA_EXCEEDED"


class RateLimited(DomainError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class AccountLocked(DomainError):
    code = "ACCOUNT_LOCKED"

    def __init__(self, message: str, *, retry_after: int, **details: Any) -> None:
        super().__init__(message, retry_after=retry_after, **details)
        self.retry_after = retry_after


class Unavailable(DomainError):
    code = "SERVICE_UNAVAILABLE"

    def __init__(self, message: str, *, retry_after: int | None = None, **details: Any) -> None:
        if retry_after is not None:
            details["retry_after"] = retry_after
        super().__init__(message, **details)
        self.retry_after = retry_after
