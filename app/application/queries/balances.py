from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Protocol

from app.application.queries.consistency import ReadSource, caught_up, write_model_account
from app.domain.account import LotStatus
from app.domain.errors import InvalidInputError
from app.domain.events import Allocation
from app.ports.clock import Clock
from app.ports.event_store import EventStore
from app.ports.read_models import BalanceView


@dataclass(frozen=True)
class Balance:
    user_id: str
    available: int
    pending: int
    version: int
    """The account version the answer reflects."""
    source: ReadSource = ReadSource.READ_MODEL


class _Lot(Protocol):
    """What a balance is computed from: a lot of the balance view or of the account itself."""

    @property
    def remaining(self) -> int: ...

    @property
    def expires_at(self) -> datetime: ...

    def status_at(self, now: datetime) -> LotStatus: ...


class GetBalance:
    """Balance from the balance view (Redis in the stack): Σ remaining of lots active as of now (rule 1), so it
    never waits for the expiry batch. Given ``at_least_version``, from a view that holds that version of the account
    (waiting up to ``read_wait`` seconds for it), else from the write model."""

    def __init__(self, balances: BalanceView, clock: Clock, store: EventStore, read_wait: float = 0.3) -> None:
        self._balances = balances
        self._clock = clock
        self._store = store
        self._read_wait = read_wait

    async def execute(self, user_id: str, at_least_version: int | None = None) -> Balance:
        version = await caught_up(self._balances, user_id, at_least_version, self._read_wait)
        if version is None:
            account = await write_model_account(self._store, user_id)
            return _balance(user_id, account.lots, self._clock.now(), account.version, ReadSource.WRITE_MODEL)
        lots = await self._balances.lots(user_id)
        return _balance(user_id, lots, self._clock.now(), version, ReadSource.READ_MODEL)


def _balance(user_id: str, lots: Sequence[_Lot], now: datetime, version: int, source: ReadSource) -> Balance:
    return Balance(
        user_id=user_id,
        available=_sum(lots, now, LotStatus.ACTIVE),
        pending=_sum(lots, now, LotStatus.PENDING),
        version=version,
        source=source,
    )


def _sum(lots: Sequence[_Lot], now: datetime, status: LotStatus) -> int:
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
    version: int = 0
    """The account version the answer reflects."""
    source: ReadSource = ReadSource.READ_MODEL


MAX_EXPIRING_WINDOW_DAYS = 5 * 366


class GetExpiringPoints:
    """Rule 14: every upcoming expiry date (UTC) within the window, with the amount that lapses on it. Given
    ``at_least_version``, as GetBalance."""

    def __init__(self, balances: BalanceView, clock: Clock, store: EventStore, read_wait: float = 0.3) -> None:
        self._balances = balances
        self._clock = clock
        self._store = store
        self._read_wait = read_wait

    async def execute(self, user_id: str, within_days: int, at_least_version: int | None = None) -> ExpiringPoints:
        if not 1 <= within_days <= MAX_EXPIRING_WINDOW_DAYS:
            raise InvalidInputError("withinDays", f"withinDays must be within 1..{MAX_EXPIRING_WINDOW_DAYS}")
        version = await caught_up(self._balances, user_id, at_least_version, self._read_wait)
        source = ReadSource.READ_MODEL
        lots: Sequence[_Lot]
        if version is None:
            account = await write_model_account(self._store, user_id)
            lots, version, source = account.lots, account.version, ReadSource.WRITE_MODEL
        else:
            lots = await self._balances.lots(user_id)
        now = self._clock.now()
        horizon = now + timedelta(days=within_days)
        by_date: dict[date, int] = defaultdict(int)
        for lot in lots:
            if lot.remaining > 0 and lot.status_at(now) is LotStatus.ACTIVE and lot.expires_at <= horizon:
                by_date[lot.expires_at.date()] += lot.remaining
        dates = [ExpiringAmount(day, amount) for day, amount in sorted(by_date.items())]
        return ExpiringPoints(user_id, within_days, sum(d.amount for d in dates), dates, version, source)


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
        account = await write_model_account(self._store, user_id)
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
