"""Typed errors: each refusal of the ledger as a GraphQL type that results (unions) can carry."""

from __future__ import annotations

from typing import Any

import strawberry

from app.application import errors as app_errors
from app.domain import errors as domain_errors


@strawberry.interface(description="Why a command or query was refused. Nothing was changed.")
class Error:
    message: str
    code: str = strawberry.field(description="A stable machine-readable code, e.g. INSUFFICIENT_POINTS.")


@strawberry.type(description="The account holds fewer available points than requested.")
class InsufficientPointsError(Error):
    requested: int
    available: int


@strawberry.type(description="The amount is outside the allowed bounds (maximum null: no upper bound).")
class InvalidAmountError(Error):
    amount: int
    minimum: int
    maximum: int | None


@strawberry.type(description="The expiry is too soon or too far away (from minDays up to maxDaysExclusive).")
class ExpiryOutOfRangeError(Error):
    min_days: int
    max_days_exclusive: int


@strawberry.type(description="The grant would take the balance past the holding cap.")
class BalanceLimitExceededError(Error):
    limit: int
    balance: int
    requested: int


@strawberry.type(description="The order already earned points; one order earns only once.")
class DuplicateOrderError(Error):
    order_id: str
    grant_id: str


@strawberry.type(description="The idempotency key was already used for a different command.")
class IdempotencyConflictError(Error):
    idempotency_key: str


@strawberry.type(
    description="Only a fully unused grant that is pending or active (not expired, not cancelled, not a lot that a "
    "cancel reissued) can be cancelled."
)
class GrantNotCancellableError(Error):
    grant_id: str
    reason: str


@strawberry.type(description="Only a pending grant can be activated.")
class GrantNotPendingError(Error):
    grant_id: str
    status: str


@strawberry.type(description="The cancel asks for more than what is left to cancel of the use.")
class CancelExceedsUseError(Error):
    use_id: str
    requested: int
    cancellable: int


@strawberry.type(description="No such grant, use or order grant in this account.")
class NotFoundError(Error):
    kind: str
    id: str


@strawberry.type(description="The caller may not do this (or sent no valid token).")
class ForbiddenError(Error):
    pass


@strawberry.type(description="An argument is malformed; `field` names it.")
class InvalidInputError(Error):
    field: str


@strawberry.type(description="The account was written by others at every attempt. Safe to retry.")
class BusyError(Error):
    user_id: str


@strawberry.type(description="The test clock is off in this deployment (POINTS_TEST_CLOCK).")
class TestClockDisabledError(Error):
    pass


@strawberry.type(
    description="A server behind the service (its store or a read model) is down or slow. Nothing was changed, or "
    "the change is resolved by its idempotency key: retry later with the same key."
)
class ServiceUnavailableError(Error):
    retryable: bool


@strawberry.type(
    description="The caller sent more requests than its role may in the current window (HTTP 429 with Retry-After). "
    "Nothing was done; retry after retryAfterSeconds."
)
class RateLimitedError(Error):
    retryable: bool
    retry_after_seconds: float


def service_unavailable(message: str) -> ServiceUnavailableError:
    return ServiceUnavailableError(message=message, code="SERVICE_UNAVAILABLE", retryable=True)


def rate_limited(retry_after: float) -> RateLimitedError:
    return RateLimitedError(
        message=f"too many requests; retry in {retry_after:.1f} s",
        code="RATE_LIMITED",
        retryable=True,
        retry_after_seconds=round(retry_after, 3),
    )


def _convert(error: domain_errors.DomainError) -> Error:
    message, code = str(error), error.code
    match error:
        case domain_errors.InsufficientPointsError():
            return InsufficientPointsError(
                message=message, code=code, requested=error.requested, available=error.available
            )
        case domain_errors.InvalidAmountError():
            return InvalidAmountError(
                message=message, code=code, amount=error.amount, minimum=error.minimum, maximum=error.maximum
            )
        case domain_errors.ExpiryOutOfRangeError():
            return ExpiryOutOfRangeError(
                message=message,
                code=code,
                min_days=error.min_days,
                max_days_exclusive=error.max_days_exclusive,
            )
        case domain_errors.BalanceLimitExceededError():
            return BalanceLimitExceededError(
                message=message, code=code, limit=error.limit, balance=error.balance, requested=error.requested
            )
        case domain_errors.DuplicateOrderError():
            return DuplicateOrderError(message=message, code=code, order_id=error.order_id, grant_id=error.grant_id)
        case app_errors.IdempotencyConflictError():
            return IdempotencyConflictError(message=message, code=code, idempotency_key=error.key)
        case domain_errors.GrantNotCancellableError():
            return GrantNotCancellableError(message=message, code=code, grant_id=error.grant_id, reason=error.reason)
        case domain_errors.GrantNotPendingError():
            return GrantNotPendingError(message=message, code=code, grant_id=error.grant_id, status=error.status)
        case domain_errors.CancelExceedsUseError():
            return CancelExceedsUseError(
                message=message,
                code=code,
                use_id=error.use_id,
                requested=error.requested,
                cancellable=error.cancellable,
            )
        case domain_errors.NotFoundError():
            return NotFoundError(message=message, code=code, kind=error.kind, id=error.ident)
        case app_errors.ForbiddenError():
            return ForbiddenError(message=message, code=code)
        case domain_errors.InvalidInputError():
            return InvalidInputError(message=message, code=code, field=error.field)
        case app_errors.BusyError():
            return BusyError(message=message, code=code, user_id=error.user_id)
    raise error


def error_result(error: domain_errors.DomainError, allowed: tuple[type, ...]) -> Any:
    """The typed error for ``error`` when the result union can carry it; otherwise the exception goes on and
    becomes a (masked) GraphQL error, which would mean a union is missing a member. Typed ``Any`` because each
    caller's result union is the real type."""
    converted = _convert(error)
    if not isinstance(converted, allowed):
        raise error
    return converted
