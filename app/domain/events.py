"""What happened to an account. Frozen, past tense, and the only thing the account is rebuilt from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Source(StrEnum):
    ORDER = "ORDER"
    MANUAL = "MANUAL"
    PROMOTION = "PROMOTION"
    REISSUE = "REISSUE"


@dataclass(frozen=True, slots=True)
class Allocation:
    """So many points of one lot, taken by a use or a clawback, or given back to it by a cancel."""

    grant_id: str
    amount: int


@dataclass(frozen=True, slots=True)
class Reissue:
    """Points given back to a lot that had expired, granted again as a new REISSUE lot (rule 6)."""

    grant_id: str
    from_grant_id: str
    amount: int
    expires_at: datetime
    manual: bool


@dataclass(frozen=True, slots=True)
class PointsGranted:
    occurred_at: datetime
    grant_id: str
    amount: int
    source: Source
    expires_at: datetime
    """For a pending grant: the expiry it gets if it activates by itself at ``pending_until``."""
    validity_seconds: int
    """How long the lot lives once active; expiry counts from activation (rule 12)."""
    pending_until: datetime | None = None
    order_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GrantActivated:
    occurred_at: datetime
    grant_id: str
    expires_at: datetime
    amount: int = 0
    """What the lot held when it became spendable (0 in events recorded before it was kept)."""
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class PointsUsed:
    occurred_at: datetime
    use_id: str
    amount: int
    allocations: tuple[Allocation, ...]
    order_id: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UseCancelled:
    occurred_at: datetime
    cancel_id: str
    use_id: str
    amount: int
    restored: tuple[Allocation, ...]
    """Points given back to lots that were still live, in the order the use took them."""
    reissued: tuple[Reissue, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GrantCancelled:
    occurred_at: datetime
    grant_id: str
    amount: int
    reason: str | None = None
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class PointsExpired:
    occurred_at: datetime
    grant_id: str
    amount: int
    """What was left of the lot when it lapsed; 0 for a lot that was spent before its expiry."""
    expired_at: datetime
    source: Source | None = None


@dataclass(frozen=True, slots=True)
class PointsClawedBack:
    occurred_at: datetime
    clawback_id: str
    order_id: str
    requested: int
    taken: tuple[Allocation, ...]
    shortfall: int
    reason: str | None = None


DomainEvent = (
    PointsGranted | GrantActivated | PointsUsed | UseCancelled | GrantCancelled | PointsExpired | PointsClawedBack
)

EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.__name__: cls
    for cls in (
        PointsGranted,
        GrantActivated,
        PointsUsed,
        UseCancelled,
        GrantCancelled,
        PointsExpired,
        PointsClawedBack,
    )
}


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored and as it travels: with its id, its account and its place in the account's stream."""

    event_id: str
    user_id: str
    version: int
    event: DomainEvent

    @property
    def type(self) -> str:
        return type(self.event).__name__
