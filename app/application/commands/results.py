from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.domain.account import Account
from app.domain.errors import InvalidInputError
from app.domain.events import Allocation, Reissue


@dataclass(frozen=True, slots=True)
class AccountAfter:
    """The account as the command left it."""

    balance: int
    pending: int
    version: int

    @classmethod
    def of(cls, account: Account, now: datetime) -> AccountAfter:
        return cls(balance=account.available(now), pending=account.pending(now), version=account.version)


@dataclass(frozen=True, slots=True)
class Granted:
    grant_id: str
    amount: int
    status: str
    expires_at: datetime
    pending_until: datetime | None
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class Activated:
    grant_id: str
    expires_at: datetime
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class Used:
    use_id: str
    amount: int
    allocations: tuple[Allocation, ...]
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class UseCancelResult:
    cancel_id: str
    use_id: str
    amount: int
    restored: tuple[Allocation, ...]
    reissued: tuple[Reissue, ...]
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class GrantCancelResult:
    grant_id: str
    amount: int
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class ClawedBack:
    clawback_id: str
    order_id: str
    requested: int
    taken: tuple[Allocation, ...]
    shortfall: int
    account: AccountAfter


@dataclass(frozen=True, slots=True)
class ExpiryReport:
    accounts: int
    lots: int
    points: int


MAX_ID_LENGTH = 128


def require_id(field: str, value: str | None) -> str:
    """Ids and idempotency keys are non-empty and short; refused before anything is read."""
    if not value or not value.strip():
        raise InvalidInputError(field, f"{field} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(field, f"{field} is longer than {MAX_ID_LENGTH} characters")
    return value


def optional_id(field: str, value: str | None) -> str | None:
    return None if value is None else require_id(field, value)
