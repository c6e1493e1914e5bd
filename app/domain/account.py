"""The account aggregate: one user's lots and uses, rebuilt from its events, and the only place rules are decided.

Every command method checks its rule against the state as of ``now`` (passed in: the domain never reads a clock),
then records one event; applying that event is the only way state changes, so a rebuilt account is identical to
the one that decided.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from app.domain.errors import (
    BalanceLimitExceededError,
    CancelExceedsUseError,
    DuplicateOrderError,
    ExpiryOutOfRangeError,
    GrantNotCancellableError,
    GrantNotPendingError,
    InsufficientPointsError,
    InvalidAmountError,
    InvalidInputError,
    NotFoundError,
)
from app.domain.events import (
    Allocation,
    DomainEvent,
    GrantActivated,
    GrantCancelled,
    PointsClawedBack,
    PointsExpired,
    PointsGranted,
    PointsUsed,
    Reissue,
    Source,
    UseCancelled,
)
from app.domain.policy import ClawbackPolicy, PointPolicy


class LotStatus(StrEnum):
    PENDING = "PENDING"
    ACTIVE = "ACTIVE"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


def status_as_of(status: LotStatus, expires_at: datetime, pending_until: datetime | None, now: datetime) -> LotStatus:
    """A lot's status as of ``now``: a lapsed lot is expired whether or not the batch has run (rule 1), and a
    pending lot activates by itself at ``pending_until``."""
    if status in (LotStatus.CANCELLED, LotStatus.EXPIRED):
        return status
    if expires_at <= now:
        return LotStatus.EXPIRED
    if status is LotStatus.PENDING and pending_until is not None and pending_until > now:
        return LotStatus.PENDING
    return LotStatus.ACTIVE


@dataclass(slots=True)
class Lot:
    """One grant: its original amount, what is left of it, its expiry and where it came from."""

    grant_id: str
    source: Source
    amount: int
    remaining: int
    granted_at: datetime
    expires_at: datetime
    validity_seconds: int
    manual: bool
    seq: int
    status: LotStatus
    pending_until: datetime | None = None
    order_id: str | None = None
    reissued_from: str | None = None
    reason: str | None = None
    clawed_back: int = 0
    expired_amount: int = 0

    def status_at(self, now: datetime) -> LotStatus:
        return status_as_of(self.status, self.expires_at, self.pending_until, now)

    def spend_key(self) -> tuple[int, datetime, datetime, int]:
        """Rule 3: manual lots first, then the soonest expiry, then the oldest grant."""
        return (0 if self.manual else 1, self.expires_at, self.granted_at, self.seq)


@dataclass(slots=True)
class Use:
    use_id: str
    amount: int
    used_at: datetime
    allocations: tuple[Allocation, ...]
    given_back: list[int]
    order_id: str | None = None

    @property
    def cancelled(self) -> int:
        return sum(self.given_back)


class UseBook:
    """An account's uses by id. The uses of a snapshot stay encoded until one of them is asked for, so commands
    that never look at an old use (grants, uses, expiry) do not pay for decoding every use the account ever had."""

    __slots__ = ("_decode", "_encoded", "_uses")

    def __init__(
        self,
        uses: dict[str, Use] | None = None,
        *,
        encoded: bytes | None = None,
        decode: Callable[[bytes], dict[str, Use]] | None = None,
    ) -> None:
        self._uses = dict(uses or {})
        self._encoded = encoded
        self._decode = decode

    def _all(self) -> dict[str, Use]:
        if self._encoded is not None and self._decode is not None:
            decoded = self._decode(self._encoded)
            decoded.update(self._uses)
            self._uses, self._encoded = decoded, None
        return self._uses

    def get(self, use_id: str) -> Use | None:
        use = self._uses.get(use_id)
        return use if use is not None or self._encoded is None else self._all().get(use_id)

    def __getitem__(self, use_id: str) -> Use:
        use = self.get(use_id)
        if use is None:
            raise KeyError(use_id)
        return use

    def __setitem__(self, use_id: str, use: Use) -> None:
        self._uses[use_id] = use

    def values(self) -> Iterable[Use]:
        return self._all().values()

    def split(self) -> tuple[bytes | None, dict[str, Use]]:
        """The still-encoded uses (if any) and the decoded ones, for a snapshot encoder that keeps the former."""
        return self._encoded, self._uses

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UseBook) and self._all() == other._all()

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dict


@dataclass(slots=True)
class AccountState:
    """Everything an account knows; what a snapshot stores."""

    user_id: str
    version: int = 0
    next_seq: int = 0
    lots: dict[str, Lot] = field(default_factory=dict)
    uses: UseBook = field(default_factory=UseBook)
    order_grants: dict[str, str] = field(default_factory=dict)


class Account:
    __slots__ = ("_new", "_s")

    def __init__(self, state: AccountState) -> None:
        self._s = state
        self._new: list[DomainEvent] = []

    # -- building --------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, user_id: str) -> Account:
        return cls(AccountState(user_id=user_id))

    @classmethod
    def rebuild(cls, user_id: str, events: Iterable[DomainEvent], snapshot: AccountState | None = None) -> Account:
        account = cls(snapshot if snapshot is not None else AccountState(user_id=user_id))
        for event in events:
            account._apply(event)
        return account

    @property
    def user_id(self) -> str:
        return self._s.user_id

    @property
    def version(self) -> int:
        """The version after every event, new ones included."""
        return self._s.version

    @property
    def committed_version(self) -> int:
        return self._s.version - len(self._new)

    @property
    def state(self) -> AccountState:
        return self._s

    @property
    def lots(self) -> Sequence[Lot]:
        return sorted(self._s.lots.values(), key=lambda lot: lot.seq)

    @property
    def uses(self) -> Sequence[Use]:
        return list(self._s.uses.values())

    def lot(self, grant_id: str) -> Lot:
        try:
            return self._s.lots[grant_id]
        except KeyError:
            raise NotFoundError("grant", grant_id) from None

    def catch_up(self, events: Iterable[DomainEvent]) -> None:
        """Apply events that others committed after this account's version."""
        if self._new:
            raise RuntimeError("an account with uncommitted events cannot catch up")
        for event in events:
            self._apply(event)

    def new_events(self) -> list[DomainEvent]:
        return list(self._new)

    def mark_committed(self) -> None:
        self._new.clear()

    # -- reading ---------------------------------------------------------------------------------------------

    def available(self, now: datetime) -> int:
        """Rule 1: Σ remaining of lots active as of ``now``."""
        return sum(lot.remaining for lot in self._s.lots.values() if lot.status_at(now) is LotStatus.ACTIVE)

    def pending(self, now: datetime) -> int:
        return sum(lot.remaining for lot in self._s.lots.values() if lot.status_at(now) is LotStatus.PENDING)

    def _spendable(self, now: datetime) -> list[Lot]:
        live = [lot for lot in self._s.lots.values() if lot.remaining > 0 and lot.status_at(now) is LotStatus.ACTIVE]
        return sorted(live, key=Lot.spend_key)

    # -- commands --------------------------------------------------------------------------------------------

    def grant(
        self,
        *,
        grant_id: str,
        amount: int,
        source: Source,
        now: datetime,
        policy: PointPolicy,
        expires_at: datetime | None = None,
        pending_until: datetime | None = None,
        order_id: str | None = None,
        reason: str | None = None,
    ) -> PointsGranted:
        """Rules 7, 8, 9 (one order earns once), 12 (expiry counts from activation)."""
        if source is Source.REISSUE:
            raise InvalidInputError("source", "REISSUE lots are made by cancels, not granted")
        if not policy.min_grant <= amount <= policy.max_grant:
            raise InvalidAmountError(amount, policy.min_grant, policy.max_grant)
        if source is Source.ORDER:
            if not order_id:
                raise InvalidInputError("orderId", "an ORDER grant needs the order it was earned on")
            if order_id in self._s.order_grants:
                raise DuplicateOrderError(order_id, self._s.order_grants[order_id])
        if pending_until is not None and pending_until <= now:
            pending_until = None
        starts = pending_until or now
        validity = policy.default_expiry if expires_at is None else expires_at - starts
        if not policy.min_expiry <= validity < policy.max_expiry_exclusive:
            raise ExpiryOutOfRangeError(policy.min_expiry.days, policy.max_expiry_exclusive.days)
        held = self.available(now) + self.pending(now)
        if held + amount > policy.max_balance:
            raise BalanceLimitExceededError(policy.max_balance, held, amount)
        event = PointsGranted(
            occurred_at=now,
            grant_id=grant_id,
            amount=amount,
            source=source,
            expires_at=starts + validity,
            validity_seconds=int(validity.total_seconds()),
            pending_until=pending_until,
            order_id=order_id,
            reason=reason,
        )
        self._record(event)
        return event

    def activate(self, *, grant_id: str, now: datetime) -> GrantActivated:
        """A pending grant becomes spendable; its expiry counts from now (rule 12)."""
        lot = self.lot(grant_id)
        status = lot.status_at(now)
        if status is not LotStatus.PENDING:
            raise GrantNotPendingError(grant_id, status.value)
        event = GrantActivated(
            occurred_at=now,
            grant_id=grant_id,
            expires_at=now + timedelta(seconds=lot.validity_seconds),
            amount=lot.remaining,
            source=lot.source,
        )
        self._record(event)
        return event

    def use(
        self, *, use_id: str, amount: int, now: datetime, order_id: str | None = None, reason: str | None = None
    ) -> PointsUsed:
        """Rules 2 and 3: take from active lots in spend order and record every allocation."""
        if amount < 1:
            raise InvalidAmountError(amount, 1, None)
        lots = self._spendable(now)
        available = sum(lot.remaining for lot in lots)
        if amount > available:
            raise InsufficientPointsError(amount, available)
        event = PointsUsed(
            occurred_at=now,
            use_id=use_id,
            amount=amount,
            allocations=_take(lots, amount),
            order_id=order_id,
            reason=reason,
        )
        self._record(event)
        return event

    def cancel_use(
        self,
        *,
        cancel_id: str,
        use_id: str,
        now: datetime,
        policy: PointPolicy,
        new_grant_id: Callable[[], str],
        amount: int | None = None,
        reason: str | None = None,
    ) -> UseCancelled:
        """Rules 5, 6, 7: give back to lots in the order taken; points of an expired lot come back as REISSUE."""
        use = self._s.uses.get(use_id)
        if use is None:
            raise NotFoundError("use", use_id)
        cancellable = use.amount - use.cancelled
        requested = cancellable if amount is None else amount
        if amount is not None and amount < 1:
            raise InvalidAmountError(amount, 1, cancellable)
        if requested > cancellable or requested == 0:
            raise CancelExceedsUseError(use_id, requested if amount is not None else use.amount, cancellable)
        restored: list[Allocation] = []
        reissued: list[Reissue] = []
        for allocation, back in _give_back(use, requested):
            lot = self._s.lots[allocation.grant_id]
            if lot.status_at(now) is LotStatus.ACTIVE:
                restored.append(Allocation(lot.grant_id, back))
            else:
                reissued.append(
                    Reissue(
                        grant_id=new_grant_id(),
                        from_grant_id=lot.grant_id,
                        amount=back,
                        expires_at=now + policy.default_expiry,
                        manual=lot.manual,
                    )
                )
        event = UseCancelled(
            occurred_at=now,
            cancel_id=cancel_id,
            use_id=use_id,
            amount=requested,
            restored=tuple(restored),
            reissued=tuple(reissued),
            reason=reason,
        )
        self._record(event)
        return event

    def cancel_grant(self, *, grant_id: str, now: datetime, reason: str | None = None) -> GrantCancelled:
        """Rule 4: only a fully unused grant that is still live (active or pending) can be taken back."""
        lot = self.lot(grant_id)
        status = lot.status_at(now)
        if status is LotStatus.CANCELLED:
            raise GrantNotCancellableError(grant_id, "it is already cancelled")
        if status is LotStatus.EXPIRED:
            raise GrantNotCancellableError(grant_id, "it has expired")
        if lot.source is Source.REISSUE:
            raise GrantNotCancellableError(grant_id, "a reissued lot belongs to the cancel that made it")
        if lot.remaining != lot.amount:
            raise GrantNotCancellableError(grant_id, f"{lot.amount - lot.remaining} of it is used")
        event = GrantCancelled(
            occurred_at=now, grant_id=grant_id, amount=lot.remaining, reason=reason, source=lot.source
        )
        self._record(event)
        return event

    def expire_due(self, *, now: datetime) -> list[PointsExpired]:
        """Rule 11's unit of work: every lot of this account whose expiry has come, each with what was left."""
        due = sorted(
            (
                lot
                for lot in self._s.lots.values()
                if lot.status in (LotStatus.ACTIVE, LotStatus.PENDING) and lot.expires_at <= now
            ),
            key=lambda lot: (lot.expires_at, lot.seq),
        )
        events = [
            PointsExpired(
                occurred_at=now,
                grant_id=lot.grant_id,
                amount=lot.remaining,
                expired_at=lot.expires_at,
                source=lot.source,
            )
            for lot in due
        ]
        for event in events:
            self._record(event)
        return events

    def clawback(
        self,
        *,
        clawback_id: str,
        order_id: str,
        amount: int,
        now: datetime,
        policy: PointPolicy,
        reason: str | None = None,
    ) -> PointsClawedBack:
        """Rule 13: a refund takes back its order's points under the configured :class:`ClawbackPolicy`."""
        grant_id = self._s.order_grants.get(order_id)
        if grant_id is None:
            raise NotFoundError("order grant", order_id)
        lot = self._s.lots[grant_id]
        if lot.status is LotStatus.CANCELLED:
            raise InvalidInputError("orderId", f"the grant of order {order_id} was cancelled already")
        left = lot.amount - lot.clawed_back
        if not 1 <= amount <= left:
            raise InvalidAmountError(
                amount, 1, left, f"amount {amount} is outside 1..{left}, what order {order_id} can still lose"
            )
        sources: list[Lot] = []
        if lot.remaining > 0 and lot.status_at(now) in (LotStatus.ACTIVE, LotStatus.PENDING):
            sources.append(lot)
        if policy.clawback is ClawbackPolicy.ORDER_GRANT_THEN_BALANCE:
            sources += [other for other in self._spendable(now) if other is not lot]
        taken = _take(sources, min(amount, sum(s.remaining for s in sources)))
        event = PointsClawedBack(
            occurred_at=now,
            clawback_id=clawback_id,
            order_id=order_id,
            requested=amount,
            taken=taken,
            shortfall=amount - sum(a.amount for a in taken),
            reason=reason,
        )
        self._record(event)
        return event

    # -- applying --------------------------------------------------------------------------------------------

    def _record(self, event: DomainEvent) -> None:
        self._apply(event)
        self._new.append(event)

    def _apply(self, event: DomainEvent) -> None:
        s = self._s
        match event:
            case PointsGranted():
                self._add_lot(
                    Lot(
                        grant_id=event.grant_id,
                        source=event.source,
                        amount=event.amount,
                        remaining=event.amount,
                        granted_at=event.occurred_at,
                        expires_at=event.expires_at,
                        validity_seconds=event.validity_seconds,
                        manual=event.source is Source.MANUAL,
                        seq=0,
                        status=LotStatus.PENDING if event.pending_until else LotStatus.ACTIVE,
                        pending_until=event.pending_until,
                        order_id=event.order_id,
                        reason=event.reason,
                    )
                )
                if event.source is Source.ORDER and event.order_id:
                    s.order_grants[event.order_id] = event.grant_id
            case GrantActivated():
                lot = s.lots[event.grant_id]
                lot.status = LotStatus.ACTIVE
                lot.expires_at = event.expires_at
            case PointsUsed():
                for allocation in event.allocations:
                    s.lots[allocation.grant_id].remaining -= allocation.amount
                s.uses[event.use_id] = Use(
                    use_id=event.use_id,
                    amount=event.amount,
                    used_at=event.occurred_at,
                    allocations=event.allocations,
                    given_back=[0] * len(event.allocations),
                    order_id=event.order_id,
                )
            case UseCancelled():
                use = s.uses[event.use_id]
                for index, back in _give_back_indexed(use, event.amount):
                    use.given_back[index] += back
                for allocation in event.restored:
                    s.lots[allocation.grant_id].remaining += allocation.amount
                for reissue in event.reissued:
                    self._add_lot(
                        Lot(
                            grant_id=reissue.grant_id,
                            source=Source.REISSUE,
                            amount=reissue.amount,
                            remaining=reissue.amount,
                            granted_at=event.occurred_at,
                            expires_at=reissue.expires_at,
                            validity_seconds=int((reissue.expires_at - event.occurred_at).total_seconds()),
                            manual=reissue.manual,
                            seq=0,
                            status=LotStatus.ACTIVE,
                            reissued_from=reissue.from_grant_id,
                            reason=f"cancel {event.cancel_id}",
                        )
                    )
            case GrantCancelled():
                lot = s.lots[event.grant_id]
                lot.status = LotStatus.CANCELLED
                lot.remaining = 0
            case PointsExpired():
                lot = s.lots[event.grant_id]
                lot.status = LotStatus.EXPIRED
                lot.expired_amount = event.amount
                lot.remaining = 0
            case PointsClawedBack():
                for allocation in event.taken:
                    s.lots[allocation.grant_id].remaining -= allocation.amount
                s.lots[s.order_grants[event.order_id]].clawed_back += event.requested
        s.version += 1

    def _add_lot(self, lot: Lot) -> None:
        lot.seq = self._s.next_seq
        self._s.next_seq += 1
        self._s.lots[lot.grant_id] = lot


def _take(lots: Sequence[Lot], amount: int) -> tuple[Allocation, ...]:
    """Allocate ``amount`` over ``lots`` in the order given; the caller has checked there is enough."""
    allocations: list[Allocation] = []
    left = amount
    for lot in lots:
        if left == 0:
            break
        part = min(left, lot.remaining)
        if part > 0:
            allocations.append(Allocation(lot.grant_id, part))
            left -= part
    return tuple(allocations)


def _give_back_indexed(use: Use, amount: int) -> list[tuple[int, int]]:
    """Rule 5: a cancel gives back to the use's allocations in the order they were taken."""
    parts: list[tuple[int, int]] = []
    left = amount
    for index, allocation in enumerate(use.allocations):
        if left == 0:
            break
        part = min(left, allocation.amount - use.given_back[index])
        if part > 0:
            parts.append((index, part))
            left -= part
    return parts


def _give_back(use: Use, amount: int) -> list[tuple[Allocation, int]]:
    return [(use.allocations[index], part) for index, part in _give_back_indexed(use, amount)]


def lot_expiry_changes(events: Iterable[DomainEvent]) -> list[tuple[str, datetime | None]]:
    """How events move the write model's expiry schedule: (grant id, new expiry) or (grant id, None) to drop it.

    Stores keep this schedule in the same transaction as the events, so the expiry batch reads due lots from the
    write model (rule 11).
    """
    changes: list[tuple[str, datetime | None]] = []
    for event in events:
        match event:
            case PointsGranted() | GrantActivated():
                changes.append((event.grant_id, event.expires_at))
            case UseCancelled():
                changes.extend((r.grant_id, r.expires_at) for r in event.reissued)
            case GrantCancelled() | PointsExpired():
                changes.append((event.grant_id, None))
            case _:
                pass
    return changes
