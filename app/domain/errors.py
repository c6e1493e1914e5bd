"""Errors the point rules raise. Each carries what a caller needs to explain the refusal."""

from __future__ import annotations


class DomainError(Exception):
    """A command broke a point rule; nothing was changed."""

    code = "DOMAIN_ERROR"


class InvalidAmountError(DomainError):
    code = "INVALID_AMOUNT"

    def __init__(self, amount: int, minimum: int, maximum: int | None, message: str | None = None) -> None:
        self.amount = amount
        self.minimum = minimum
        self.maximum = maximum
        bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
        super().__init__(message or f"amount {amount} is outside {bound}")


class InsufficientPointsError(DomainError):
    code = "INSUFFICIENT_POINTS"

    def __init__(self, requested: int, available: int) -> None:
        self.requested = requested
        self.available = available
        super().__init__(f"requested {requested} points but only {available} are available")


class ExpiryOutOfRangeError(DomainError):
    code = "EXPIRY_OUT_OF_RANGE"

    def __init__(self, min_days: int, max_days_exclusive: int) -> None:
        self.min_days = min_days
        self.max_days_exclusive = max_days_exclusive
        super().__init__(f"expiry must be at least {min_days} day(s) and less than {max_days_exclusive} days away")


class BalanceLimitExceededError(DomainError):
    code = "BALANCE_LIMIT_EXCEEDED"

    def __init__(self, limit: int, balance: int, requested: int) -> None:
        self.limit = limit
        self.balance = balance
        self.requested = requested
        super().__init__(f"granting {requested} would take the balance {balance} past the limit {limit}")


class DuplicateOrderError(DomainError):
    code = "DUPLICATE_ORDER"

    def __init__(self, order_id: str, grant_id: str) -> None:
        self.order_id = order_id
        self.grant_id = grant_id
        super().__init__(f"order {order_id} already earned points (grant {grant_id})")


class GrantNotCancellableError(DomainError):
    code = "GRANT_NOT_CANCELLABLE"

    def __init__(self, grant_id: str, reason: str) -> None:
        self.grant_id = grant_id
        self.reason = reason
        super().__init__(f"grant {grant_id} cannot be cancelled: {reason}")


class GrantNotPendingError(DomainError):
    code = "GRANT_NOT_PENDING"

    def __init__(self, grant_id: str, status: str) -> None:
        self.grant_id = grant_id
        self.status = status
        super().__init__(f"grant {grant_id} is {status}, not pending")


class CancelExceedsUseError(DomainError):
    code = "CANCEL_EXCEEDS_USE"

    def __init__(self, use_id: str, requested: int, cancellable: int) -> None:
        self.use_id = use_id
        self.requested = requested
        self.cancellable = cancellable
        super().__init__(f"cancelling {requested} of use {use_id} but only {cancellable} can be cancelled")


class NotFoundError(DomainError):
    code = "NOT_FOUND"

    def __init__(self, kind: str, ident: str) -> None:
        self.kind = kind
        self.ident = ident
        super().__init__(f"{kind} {ident} not found")


class InvalidInputError(DomainError):
    code = "INVALID_INPUT"

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)
