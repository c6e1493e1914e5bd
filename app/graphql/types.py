"""The GraphQL types: enums, inputs and results, each made from the application's plain data."""

from __future__ import annotations

import enum
from datetime import date, datetime

import strawberry

from app.application.commands import results
from app.application.queries import balances, history
from app.domain import events
from app.ports import read_models


@strawberry.enum(description="Where granted points come from. REISSUE lots are made by cancels, never granted.")
class GrantSource(enum.Enum):
    ORDER = "ORDER"
    MANUAL = "MANUAL"
    PROMOTION = "PROMOTION"


@strawberry.enum(description="Where a lot's points came from.")
class PointSource(enum.Enum):
    ORDER = "ORDER"
    MANUAL = "MANUAL"
    PROMOTION = "PROMOTION"
    REISSUE = "REISSUE"


@strawberry.enum
class LotStatus(enum.Enum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


@strawberry.enum(description="What a history entry records.")
class EntryKind(enum.Enum):
    GRANTED = "GRANTED"
    ACTIVATED = "ACTIVATED"
    USED = "USED"
    USE_CANCELLED = "USE_CANCELLED"
    GRANT_CANCELLED = "GRANT_CANCELLED"
    EXPIRED = "EXPIRED"
    CLAWED_BACK = "CLAWED_BACK"


@strawberry.enum(description="Which model answered a query.")
class ReadSource(enum.Enum):
    READ_MODEL = strawberry.enum_value("READ_MODEL", description="The read model (kept by the projector).")
    WRITE_MODEL = strawberry.enum_value(
        "WRITE_MODEL",
        description="The write model (the event store), because the read model had not yet reached atLeastVersion "
        "within the wait.",
    )


@strawberry.enum(description="Calendar buckets of statistics, in UTC.")
class Interval(enum.Enum):
    DAY = "DAY"
    MONTH = "MONTH"


# ---------------------------------------------------------------------------------------------------- inputs


@strawberry.input
class GrantPointsInput:
    user_id: str
    idempotency_key: str
    amount: int
    source: GrantSource
    order_id: str | None = strawberry.field(default=None, description="Required for ORDER grants.")
    expires_at: datetime | None = strawberry.field(default=None, description="Default: the policy's expiry.")
    pending_until: datetime | None = strawberry.field(
        default=None, description="Not spendable until then (or until activateGrant); expiry counts from then."
    )
    reason: str | None = None


@strawberry.input
class ActivateGrantInput:
    user_id: str
    idempotency_key: str
    grant_id: str


@strawberry.input
class UsePointsInput:
    user_id: str
    idempotency_key: str
    amount: int
    order_id: str | None = None
    reason: str | None = None


@strawberry.input
class CancelUseInput:
    user_id: str
    idempotency_key: str
    use_id: str
    amount: int | None = strawberry.field(default=None, description="Omitted: everything not yet cancelled.")
    reason: str | None = None


@strawberry.input
class CancelGrantInput:
    user_id: str
    idempotency_key: str
    grant_id: str
    reason: str | None = None


@strawberry.input
class ClawbackPointsInput:
    user_id: str
    idempotency_key: str
    order_id: str
    amount: int
    reason: str | None = None


@strawberry.input(description="Every field given narrows the search; all are optional.")
class EntryFilter:
    user_id: str | None = None
    kinds: list[EntryKind] | None = None
    sources: list[PointSource] | None = None
    order_id: str | None = None
    from_: datetime | None = strawberry.field(default=None, name="from", description="Inclusive.")
    to: datetime | None = strawberry.field(default=None, description="Exclusive.")
    min_amount: int | None = None
    max_amount: int | None = None


# --------------------------------------------------------------------------------------------- command results


@strawberry.type(description="So many points of one lot.")
class Allocation:
    grant_id: str
    amount: int

    @classmethod
    def of(cls, allocation: events.Allocation) -> Allocation:
        return cls(grant_id=allocation.grant_id, amount=allocation.amount)


@strawberry.type(description="Points given back to a lot that had expired, granted again as a new REISSUE lot.")
class Reissue:
    grant_id: str
    from_grant_id: str
    amount: int
    expires_at: datetime
    manual: bool


@strawberry.interface(description="The account as the command left it.")
class AccountChange:
    balance: int = strawberry.field(description="Available points now.")
    pending: int = strawberry.field(description="Granted points not yet spendable.")
    version: int = strawberry.field(description="The account's event-stream version after the command.")


def _after(account: results.AccountAfter) -> dict[str, int]:
    return {"balance": account.balance, "pending": account.pending, "version": account.version}


@strawberry.type
class Granted(AccountChange):
    grant_id: str
    amount: int
    status: LotStatus
    expires_at: datetime
    pending_until: datetime | None

    @classmethod
    def of(cls, result: results.Granted) -> Granted:
        return cls(
            grant_id=result.grant_id,
            amount=result.amount,
            status=LotStatus(result.status),
            expires_at=result.expires_at,
            pending_until=result.pending_until,
            **_after(result.account),
        )


@strawberry.type
class GrantActivated(AccountChange):
    grant_id: str
    expires_at: datetime

    @classmethod
    def of(cls, result: results.Activated) -> GrantActivated:
        return cls(grant_id=result.grant_id, expires_at=result.expires_at, **_after(result.account))


@strawberry.type
class PointsUsed(AccountChange):
    use_id: str
    amount: int
    allocations: list[Allocation] = strawberry.field(description="The lots the points came from, in spend order.")

    @classmethod
    def of(cls, result: results.Used) -> PointsUsed:
        return cls(
            use_id=result.use_id,
            amount=result.amount,
            allocations=[Allocation.of(a) for a in result.allocations],
            **_after(result.account),
        )


@strawberry.type
class UseCancelled(AccountChange):
    cancel_id: str
    use_id: str
    amount: int
    restored: list[Allocation] = strawberry.field(description="Points given back to lots still live.")
    reissued: list[Reissue] = strawberry.field(description="Points of expired lots, granted again.")

    @classmethod
    def of(cls, result: results.UseCancelResult) -> UseCancelled:
        return cls(
            cancel_id=result.cancel_id,
            use_id=result.use_id,
            amount=result.amount,
            restored=[Allocation.of(a) for a in result.restored],
            reissued=[
                Reissue(
                    grant_id=r.grant_id,
                    from_grant_id=r.from_grant_id,
                    amount=r.amount,
                    expires_at=r.expires_at,
                    manual=r.manual,
                )
                for r in result.reissued
            ],
            **_after(result.account),
        )


@strawberry.type
class GrantCancelled(AccountChange):
    grant_id: str
    amount: int

    @classmethod
    def of(cls, result: results.GrantCancelResult) -> GrantCancelled:
        return cls(grant_id=result.grant_id, amount=result.amount, **_after(result.account))


@strawberry.type
class PointsClawedBack(AccountChange):
    clawback_id: str
    order_id: str
    requested: int
    taken: int = strawberry.field(description="Points actually taken back.")
    shortfall: int = strawberry.field(description="Requested points that could not be taken (already spent).")
    allocations: list[Allocation] = strawberry.field(description="The lots the points were taken from.")

    @classmethod
    def of(cls, result: results.ClawedBack) -> PointsClawedBack:
        return cls(
            clawback_id=result.clawback_id,
            order_id=result.order_id,
            requested=result.requested,
            taken=sum(a.amount for a in result.taken),
            shortfall=result.shortfall,
            allocations=[Allocation.of(a) for a in result.taken],
            **_after(result.account),
        )


@strawberry.type(description="What one run of the expiry batch did.")
class ExpiryRun:
    accounts: int
    lots: int
    points: int


@strawberry.type(description="The service's clock after setTestClock.")
class TestClock:
    now: datetime


# --------------------------------------------------------------------------------------------- query results


_VERSION = "The account version the answer reflects (at least atLeastVersion when that was asked and exists)."
_SOURCE = "Which model answered: the read model, or the write model when the read model lagged atLeastVersion."


@strawberry.type
class Balance:
    user_id: str
    available: int
    pending: int
    version: int = strawberry.field(description=_VERSION)
    source: ReadSource = strawberry.field(description=_SOURCE)

    @classmethod
    def of(cls, balance: balances.Balance) -> Balance:
        return cls(
            user_id=balance.user_id,
            available=balance.available,
            pending=balance.pending,
            version=balance.version,
            source=ReadSource(balance.source.value),
        )


@strawberry.type
class ExpiringAmount:
    date: date
    amount: int


@strawberry.type
class ExpiringPoints:
    user_id: str
    within_days: int
    total: int
    dates: list[ExpiringAmount] = strawberry.field(description="Every expiry date in the window, soonest first.")
    version: int = strawberry.field(description=_VERSION)
    source: ReadSource = strawberry.field(description=_SOURCE)

    @classmethod
    def of(cls, expiring: balances.ExpiringPoints) -> ExpiringPoints:
        return cls(
            user_id=expiring.user_id,
            within_days=expiring.within_days,
            total=expiring.total,
            dates=[ExpiringAmount(date=d.date, amount=d.amount) for d in expiring.dates],
            version=expiring.version,
            source=ReadSource(expiring.source.value),
        )


@strawberry.type(description="One change to an account.")
class HistoryEntry:
    id: strawberry.ID
    user_id: str
    version: int
    kind: EntryKind
    amount: int = strawberry.field(description="The size of the change, never negative.")
    delta: int = strawberry.field(description="Its effect on the points held (pending included).")
    occurred_at: datetime
    source: PointSource | None
    order_id: str | None
    grant_id: str | None
    use_id: str | None
    reason: str | None
    lots: list[Allocation] = strawberry.field(description="Which lots gave or got how much.")

    @classmethod
    def of(cls, entry: read_models.HistoryEntry) -> HistoryEntry:
        return cls(
            id=strawberry.ID(entry.entry_id),
            user_id=entry.user_id,
            version=entry.version,
            kind=EntryKind(entry.kind.value),
            amount=entry.amount,
            delta=entry.delta,
            occurred_at=entry.occurred_at,
            source=PointSource(entry.source) if entry.source else None,
            order_id=entry.order_id,
            grant_id=entry.grant_id,
            use_id=entry.use_id,
            reason=entry.reason,
            lots=[Allocation.of(a) for a in entry.lots],
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None
    start_cursor: str | None


@strawberry.type
class EntryEdge:
    cursor: str
    node: HistoryEntry


@strawberry.type(description="A page of history entries, newest first (Relay connection).")
class EntryConnection:
    edges: list[EntryEdge]
    page_info: PageInfo
    version: int | None = strawberry.field(description="history: " + _VERSION + " searchEntries: null.")
    source: ReadSource = strawberry.field(description=_SOURCE)

    @classmethod
    def of(cls, page: read_models.HistoryPage | history.AccountHistory) -> EntryConnection:
        edges = [EntryEdge(cursor=cursor, node=HistoryEntry.of(entry)) for cursor, entry in page.entries]
        if isinstance(page, history.AccountHistory):
            version, source = page.version, ReadSource(page.source.value)
        else:
            version, source = None, ReadSource.READ_MODEL
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next,
                end_cursor=edges[-1].cursor if edges else None,
                start_cursor=edges[0].cursor if edges else None,
            ),
            version=version,
            source=source,
        )


@strawberry.type(description="Points moved within [start, end), and the liability at its end.")
class StatsBucket:
    start: datetime
    end: datetime
    granted: int
    used: int
    use_cancelled: int
    grant_cancelled: int
    cancelled: int = strawberry.field(description="useCancelled + grantCancelled.")
    expired: int
    breakage: int = strawberry.field(description="Points that lapsed unused (= expired).")
    clawed_back: int
    outstanding_liability: int = strawberry.field(
        description="Points granted and not used, cancelled, clawed back or expired by the bucket's end."
    )

    @classmethod
    def of(cls, bucket: read_models.StatsBucket) -> StatsBucket:
        return cls(
            start=bucket.start,
            end=bucket.end,
            granted=bucket.granted,
            used=bucket.used,
            use_cancelled=bucket.use_cancelled,
            grant_cancelled=bucket.grant_cancelled,
            cancelled=bucket.use_cancelled + bucket.grant_cancelled,
            expired=bucket.expired,
            breakage=bucket.expired,
            clawed_back=bucket.clawed_back,
            outstanding_liability=bucket.outstanding,
        )


@strawberry.type
class PointStats:
    interval: Interval
    buckets: list[StatsBucket]


@strawberry.type(description="One lot: its original and remaining amounts, expiry, source and status.")
class Lot:
    grant_id: str
    source: PointSource
    status: LotStatus
    amount: int
    remaining: int
    granted_at: datetime
    expires_at: datetime
    manual: bool
    pending_until: datetime | None
    order_id: str | None
    reissued_from: str | None
    clawed_back: int
    expired_amount: int

    @classmethod
    def of(cls, lot: balances.LotDetail) -> Lot:
        return cls(
            grant_id=lot.grant_id,
            source=PointSource(lot.source),
            status=LotStatus(lot.status),
            amount=lot.amount,
            remaining=lot.remaining,
            granted_at=lot.granted_at,
            expires_at=lot.expires_at,
            manual=lot.manual,
            pending_until=lot.pending_until,
            order_id=lot.order_id,
            reissued_from=lot.reissued_from,
            clawed_back=lot.clawed_back,
            expired_amount=lot.expired_amount,
        )


@strawberry.type(description="One use with its allocations, in the order taken.")
class Use:
    use_id: str
    amount: int
    cancelled: int
    used_at: datetime
    order_id: str | None
    allocations: list[Allocation]


@strawberry.type(description="An account as the write model holds it (authoritative, never lagging).")
class Account:
    user_id: str
    version: int
    available: int
    pending: int
    lots: list[Lot]
    uses: list[Use]

    @classmethod
    def of(cls, detail: balances.AccountDetail) -> Account:
        return cls(
            user_id=detail.user_id,
            version=detail.version,
            available=detail.available,
            pending=detail.pending,
            lots=[Lot.of(lot) for lot in detail.lots],
            uses=[
                Use(
                    use_id=u.use_id,
                    amount=u.amount,
                    cancelled=u.cancelled,
                    used_at=u.used_at,
                    order_id=u.order_id,
                    allocations=[Allocation.of(a) for a in u.allocations],
                )
                for u in detail.uses
            ],
        )
