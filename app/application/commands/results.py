from __future__ import annotations

import unicodedata
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
    """Ids and idempotency keys are 1 to 128 visible characters in Unicode's NFC form: letters, digits, marks,
    punctuation and symbols of any script, but no spaces or other separators, no control characters (NUL, newlines,
    tabs) and no format characters (right-to-left marks, zero-width spaces), so that two ids that print the same are
    the same id. Refused before anything is read."""
    if not value:
        raise InvalidInputError(field, f"{field} is required")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInputError(field, f"{field} is longer than {MAX_ID_LENGTH} characters")
    if not (value.isascii() and value.isprintable() and " " not in value) and not _visible(value):
        raise InvalidInputError(
            field, f"{field} may hold only visible characters (no spaces, control or format characters), in NFC"
        )
    return value


def _visible(value: str) -> bool:
    return unicodedata.is_normalized("NFC", value) and all(unicodedata.category(c)[0] not in "CZ" for c in value)


def optional_text(field: str, value: str | None, max_length: int) -> str | None:
    """Free text (a reason) is at most ``max_length`` characters (the policy's) and holds no control characters
    other than tabs and line breaks."""
    if value is None:
        return None
    if len(value) > max_length:
        raise InvalidInputError(field, f"{field} is longer than {max_length} characters")
    if not value.isprintable() and any(unicodedata.category(c) in ("Cc", "Cs") and c not in "\t\n\r" for c in value):
        raise InvalidInputError(field, f"{field} may not hold control characters other than tabs and line breaks")
    return value


def optional_id(field: str, value: str | None) -> str | None:
    return None if value is None else require_id(field, value)
