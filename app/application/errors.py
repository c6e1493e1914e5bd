from __future__ import annotations

from app.domain.errors import DomainError


class IdempotencyConflictError(DomainError):
    code = "IDEMPOTENCY_CONFLICT"

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"idempotency key {key!r} was already used for a different command")


class ForbiddenError(DomainError):
    code = "FORBIDDEN"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class BusyError(DomainError):
    """The account was written by others at every attempt; nothing was changed. Safe to retry."""

    code = "BUSY"

    def __init__(self, user_id: str, attempts: int) -> None:
        self.user_id = user_id
        super().__init__(f"account {user_id} stayed busy for {attempts} attempts; nothing was changed")
