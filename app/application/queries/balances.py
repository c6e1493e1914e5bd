from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.domain.account import Account, LotStatus
from app.domain.errors import InvalidInputError
from app.domain.events import Allocation
from app.ports.clock import Clock
from app.ports.event_store import EventStore
from app.ports.read_models import BalanceView, LotView


@dataclass(frozen=True)
class Balance:
    user_id: str
    available: int
    pending: int
    version: int


class GetBalance:
    """Balance from the balance view (Redis in the stack): Σ remaining of lots active as of now (rule 1), so it
    never waits for the expiry batch."""

    def __init__(self, balances: BalanceView, clock: Clock) -> None:
        self._balances = balances
        self._clock = clock

    async def execute(self, user_id: str) -> Balance:
        now = self._clock.now()
        lots = await self._balances.lots(user_id)
        return Balance(
            user_id=user_id,
            available=_sum(lots, now, LotStatus.ACTIVE),
            pending=_sum(lots, now, LotStatus.PENDING),
            version=await self._balances.version(user_id),
        )


def _sum(lots: list[LotView], now: datetime, status: LotStatus) -> int:
    return sum(lot.remaining for lot in lots if lot.status_at(now) is status)


@dataclass(frozen=True)
class ExpiringAmount:
    date: date
    amount: int


@dataclass(frozen=True)
class ExpiringPoints:
    user_id: str
    within_days: int
    total: int
    dates: list[ExpiringAmount]


MAX_EXPIRING_WINDOW_DAYS = 5 * 366


class GetExpiringPoints:
    """Rule 14: every upcoming expiry date (UTC) within the window, with the amount that lapses on it."""

    def __init__(self, balances: BalanceView, clock: Clock) -> None:
        self._balances = balances
        self._clock = clock

    async def execute(self, user_id: str, within_days: int) -> ExpiringPoints:
        if not 1 <= within_days <= MAX_EXPIRING_WINDOW_DAYS:
            raise InvalidInputError("withinDays", f"withinDays must be within 1..{MAX_EXPIRING_WINDOW_DAYS}")
        now = self._clock.now()
        horizon = now + timedelta(days=within_days)
        by_date: dict[date, int] = defaultdict(int)
        for lot in await self._balances.lots(user_id):
            if lot.remaining > 0 and lot.status_at(now) is LotStatus.ACTIVE and lot.expires_at <= horizon:
                by_date[lot.expires_at.date()] += lot.remaining
        dates = [ExpiringAmount(day, amount) for day, amount in sorted(by_date.items())]
        return ExpiringPoints(user_id, within_days, sum(d.amount for d in dates), dates)


@dataclass(frozen=True)
class LotDetail:
    grant_id: str
    source: str
    amount: int
    remaining: int
    status: str
    granted_at: datetime
    expires_at: datetime
    manual: bool
    pending_until: datetime | None
    order_id: str | None
    reissued_from: str | None
    clawed_back: int
    expired_amount: int


@dataclass(frozen=True)
class UseDetail:
    use_id: str
    amount: int
    cancelled: int
    used_at: datetime
    order_id: str | None
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True)
class AccountDetail:
    user_id: str
    version: int
    available: int
    pending: int
    lots: list[LotDetail]
    uses: list[UseDetail]


class GetAccount:
    """Admin detail: every lot with its remaining amount and every use with its allocations, from the write
    model, because an admin deciding on a dispute needs the authoritative state rather than a lagging view."""

    def __init__(self, store: EventStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def execute(self, user_id: str) -> AccountDetail:
        stream = await self._store.load(user_id)
        account = Account.rebuild(user_id, (r.event for r in stream.events), stream.snapshot)
        now = self._clock.now()
        return AccountDetail(
            user_id=user_id,
            version=account.version,
            available=account.available(now),
            pending=account.pending(now),
            lots=[
                LotDetail(
                    grant_id=lot.grant_id,
                    source=lot.source.value,
                    amount=lot.amount,
                    remaining=lot.remaining,
                    status=lot.status_at(now).value,
                    granted_at=lot.granted_at,
                    expires_at=lot.expires_at,
                    manual=lot.manual,
                    pending_until=lot.pending_until,
                    order_id=lot.order_id,
                    reissued_from=lot.reissued_from,
                    clawed_back=lot.clawed_back,
                    expired_amount=lot.expired_amount,
                )
                for lot in account.lots
            ],
            uses=[
                UseDetail(u.use_id, u.amount, u.cancelled, u.used_at, u.order_id, u.allocations) for u in account.uses
            ],
        )
