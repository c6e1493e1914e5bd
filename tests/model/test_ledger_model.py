"""The ledger against a plain reference model of the rules of DOMAIN.md, driven by random command sequences.

The model below is written from the rules, not from ``app.domain.account``: lots and uses are plain records and
every rule is a few lines of list handling. Each step sends one command (or moves the clock) through the use cases
of an in-memory ledger and asserts that the outcome agrees with the model: success or which error, allocations,
restored and reissued amounts, clawed-back amounts, balances. After every step the invariants hold: the balance
(the aggregate's, and the balance view's after projecting) is the sum of the remaining amounts of the model's active
lots, every used point is traced to a lot, nothing is ever negative, and the write model's lots and uses are the
model's.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from app.application.commands.expiry import ExpirePoints
from app.application.commands.grants import ActivateGrant, CancelGrant, GrantPoints
from app.application.commands.uses import CancelUse, ClawbackPoints, UsePoints
from app.application.errors import IdempotencyConflictError
from app.domain.errors import (
    BalanceLimitExceededError,
    CancelExceedsUseError,
    DomainError,
    DuplicateOrderError,
    ExpiryOutOfRangeError,
    GrantNotCancellableError,
    GrantNotPendingError,
    InsufficientPointsError,
    InvalidAmountError,
    InvalidInputError,
    NotFoundError,
)
from app.domain.events import PointsClawedBack, PointsUsed, Source, UseCancelled
from app.domain.policy import ClawbackPolicy, PointPolicy
from tests.ledger import Ledger, make_ledger

USERS = ("alice", "bob")
DAY = timedelta(days=1)
MAX_GRANT = 1_000
MAX_BALANCE = 2_000
DEFAULT_EXPIRY = timedelta(days=365)
MIN_EXPIRY = DAY
MAX_EXPIRY_EXCLUSIVE = timedelta(days=5 * 365)

EXAMPLES = 200
STEPS_PER_EXAMPLE = 60
REQUIRED_STEPS = 2_000


# -- the reference model ---------------------------------------------------------------------------------------

ACTIVE, PENDING, CANCELLED, EXPIRED = "ACTIVE", "PENDING", "CANCELLED", "EXPIRED"


@dataclass
class Lot:
    grant_id: str
    source: Source
    amount: int
    remaining: int
    seq: int
    expires_at: datetime
    validity: timedelta
    pending_until: datetime | None
    settled: str
    """What has been recorded: ACTIVE or PENDING until a cancel or the expiry batch settles it."""
    order_id: str | None = None
    reissued_from: str | None = None
    manual_flag: bool | None = None
    clawback_requested: int = 0
    """For an order's lot: how much refunds have asked of it, shortfall included."""
    # where the amount went, for the trace invariant
    used: int = 0
    clawed: int = 0
    expired: int = 0
    cancelled: int = 0
    reissued_out: int = 0

    @property
    def manual(self) -> bool:
        return self.manual_flag if self.manual_flag is not None else self.source is Source.MANUAL

    def status(self, now: datetime) -> str:
        """Rules 1 and 12: a lot lapses at its expiry whether or not the batch ran; pending ends at pending_until."""
        if self.settled in (CANCELLED, EXPIRED):
            return self.settled
        if self.expires_at <= now:
            return EXPIRED
        if self.settled == PENDING and self.pending_until is not None and now < self.pending_until:
            return PENDING
        return ACTIVE


@dataclass
class Use:
    use_id: str
    amount: int
    parts: list[list[Any]]
    """[grant id, amount taken, amount given back] in the order taken."""

    @property
    def cancelled(self) -> int:
        return sum(back for _, _, back in self.parts)


@dataclass
class Account:
    lots: list[Lot] = field(default_factory=list)
    uses: dict[str, Use] = field(default_factory=dict)
    orders: dict[str, str] = field(default_factory=dict)

    def lot(self, grant_id: str) -> Lot | None:
        return next((lot for lot in self.lots if lot.grant_id == grant_id), None)

    def total(self, now: datetime, *statuses: str) -> int:
        return sum(lot.remaining for lot in self.lots if lot.status(now) in statuses)

    def spendable(self, now: datetime) -> list[Lot]:
        """Rule 3: manual first, then the soonest expiry, then the oldest grant."""
        live = [lot for lot in self.lots if lot.remaining > 0 and lot.status(now) == ACTIVE]
        return sorted(live, key=lambda lot: (not lot.manual, lot.expires_at, lot.seq))


def take(lots: list[Lot], amount: int) -> list[tuple[Lot, int]]:
    taken = []
    for lot in lots:
        part = min(amount, lot.remaining)
        if part > 0:
            taken.append((lot, part))
            amount -= part
    return taken


# -- the machine -----------------------------------------------------------------------------------------------

STEPS = {"run": 0}
"""Steps executed (rules, the opening one included), each followed by the invariant check that counts it."""
OUTCOMES: Counter[str] = Counter()
"""How often each command met each outcome, printed with ``-s`` to show what the runs exercised."""

amounts = st.integers(1, 400)
edge_amounts = st.sampled_from([-1, 0, 1, MAX_GRANT, MAX_GRANT + 1])
expiry_offsets = st.one_of(st.none(), st.sampled_from([DAY, 2 * DAY, 10 * DAY, 45 * DAY, 200 * DAY]))
edge_expiry_offsets = st.sampled_from(
    [
        -DAY,
        timedelta(0),
        DAY - timedelta(seconds=1),
        DAY,
        MAX_EXPIRY_EXCLUSIVE - timedelta(seconds=1),
        MAX_EXPIRY_EXCLUSIVE,
    ]
)
pending_offsets = st.one_of(
    st.none(), st.none(), st.sampled_from([timedelta(minutes=1), timedelta(hours=3), 2 * DAY, 10 * DAY, 60 * DAY])
)
clock_moves = st.one_of(
    st.integers(1, 600).map(lambda n: timedelta(minutes=n)),
    st.integers(1, 72).map(lambda n: timedelta(hours=n)),
    st.integers(1, 30).map(lambda n: timedelta(days=n)),
    st.integers(1, 30).map(lambda n: timedelta(days=n)),
    st.integers(100, 400).map(lambda n: timedelta(days=n)),
)
users = st.sampled_from([USERS[0], USERS[0], USERS[1]])
picks = st.integers(0, 10_000)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.model = {user: Account() for user in USERS}
        self.seq = 0
        self.keys = 0
        self.done: list[tuple[str, Any, Any, Any]] = []
        """Every command that succeeded: (user, use case, request, first result), for retries."""

    def teardown(self) -> None:
        self.loop.close()

    def run(self, awaitable: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(awaitable)

    @property
    def now(self) -> datetime:
        return self.ledger.clock.now()

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def send(self, user: str, use_case: Any, request: Any, expected: type[DomainError] | None) -> Any:
        """Run one command and check that it fails with ``expected``, or succeeds when that is None."""
        OUTCOMES[f"{type(request).__name__}: {expected.__name__ if expected else 'done'}"] += 1
        try:
            result = self.run(use_case.execute(request))
        except DomainError as error:
            assert type(error) is expected, f"{request} raised {error!r}, the model expected {expected}"
            return None
        assert expected is None, f"{request} succeeded with {result}, the model expected {expected.__name__}"
        self.done.append((user, use_case, request, result))
        return result

    def new_lot(self, user: str, **fields: Any) -> Lot:
        lot = Lot(seq=self.seq, **fields)
        self.seq += 1
        self.model[user].lots.append(lot)
        return lot

    def pick_lot(self, user: str, pick: int, which: str) -> str:
        account = self.model[user]
        pending = [lot for lot in account.lots if lot.status(self.now) == PENDING]
        lots = pending if which == "pending" and pending else account.lots
        if which == "unknown" or not lots:
            other = [lot for u, a in self.model.items() if u != user for lot in a.lots]
            return other[pick % len(other)].grant_id if other and pick % 2 else f"no-grant-{pick}"
        return lots[pick % len(lots)].grant_id

    # -- setup -------------------------------------------------------------------------------------------------

    @initialize(
        policy=st.sampled_from(list(ClawbackPolicy)),
        first_grants=st.lists(
            st.tuples(users, st.sampled_from([Source.ORDER, Source.MANUAL, Source.PROMOTION]), amounts, expiry_offsets),
            min_size=1,
            max_size=6,
        ),
    )
    def open_ledger(self, policy: ClawbackPolicy, first_grants: list[tuple[str, Source, int, timedelta]]) -> None:
        self.policy = policy
        self.ledger: Ledger = make_ledger(
            PointPolicy(
                max_grant=MAX_GRANT,
                max_balance=MAX_BALANCE,
                default_expiry=DEFAULT_EXPIRY,
                min_expiry=MIN_EXPIRY,
                max_expiry_exclusive=MAX_EXPIRY_EXCLUSIVE,
                clawback=policy,
            ),
            snapshot_every=7,
        )
        for user, source, amount, expires_in in first_grants:
            self.send_grant(user, source, amount, expires_in, None, False, 0)

    # -- commands ----------------------------------------------------------------------------------------------

    sources = st.sampled_from([Source.ORDER, Source.MANUAL, Source.PROMOTION])

    @rule(
        user=users,
        source=sources,
        amount=amounts,
        expires_in=expiry_offsets,
        pending_for=pending_offsets,
        reuse_order=st.sampled_from([False, False, False, True]),
        pick=picks,
    )
    def grant(
        self,
        user: str,
        source: Source,
        amount: int,
        expires_in: timedelta | None,
        pending_for: timedelta | None,
        reuse_order: bool,
        pick: int,
    ) -> None:
        self.send_grant(user, source, amount, expires_in, pending_for, reuse_order, pick)

    @rule(
        user=users,
        source=sources,
        amount=st.one_of(amounts, edge_amounts),
        expires_in=st.one_of(expiry_offsets, edge_expiry_offsets),
        pending_for=pending_offsets,
        reuse_order=st.booleans(),
        pick=picks,
    )
    def grant_at_the_edges(
        self,
        user: str,
        source: Source,
        amount: int,
        expires_in: timedelta | None,
        pending_for: timedelta | None,
        reuse_order: bool,
        pick: int,
    ) -> None:
        """Rule 8's limits and rule 9's one grant per order, at and just past their edges."""
        self.send_grant(user, source, amount, expires_in, pending_for, reuse_order, pick)

    @rule(user=users, over=st.sampled_from([0, 1]), pending_for=pending_offsets)
    def grant_up_to_the_cap(self, user: str, over: int, pending_for: timedelta | None) -> None:
        """Rule 7's holding cap, exactly at and one point past it, pending points counted."""
        held = self.model[user].total(self.now, ACTIVE, PENDING)
        amount = min(max(MAX_BALANCE - held + over, 1), MAX_GRANT)
        self.send_grant(user, Source.PROMOTION, amount, None, pending_for, False, 0)

    def send_grant(
        self,
        user: str,
        source: Source,
        amount: int,
        expires_in: timedelta | None,
        pending_for: timedelta | None,
        reuse_order: bool,
        pick: int,
    ) -> None:
        account, now = self.model[user], self.now
        order_id = None
        if source is Source.ORDER:
            known = sorted(account.orders)
            order_id = known[pick % len(known)] if reuse_order and known else f"order-{self.key()}"
        pending_until = now + pending_for if pending_for is not None else None
        starts = pending_until or now
        expires_at = starts + expires_in if expires_in is not None else None
        validity = expires_in if expires_in is not None else DEFAULT_EXPIRY

        expected: type[DomainError] | None = None
        if not 1 <= amount <= MAX_GRANT:
            expected = InvalidAmountError
        elif order_id in account.orders:
            expected = DuplicateOrderError
        elif not MIN_EXPIRY <= validity < MAX_EXPIRY_EXCLUSIVE:
            expected = ExpiryOutOfRangeError
        elif account.total(now, ACTIVE, PENDING) + amount > MAX_BALANCE:
            expected = BalanceLimitExceededError
        request = GrantPoints(
            user, self.key(), amount, source, order_id=order_id, expires_at=expires_at, pending_until=pending_until
        )
        result = self.send(user, self.ledger.services.grant, request, expected)
        if result is None:
            return
        assert (result.amount, result.expires_at, result.pending_until) == (amount, starts + validity, pending_until)
        assert result.status == (PENDING if pending_until else ACTIVE)
        self.new_lot(
            user,
            grant_id=result.grant_id,
            source=source,
            amount=amount,
            remaining=amount,
            expires_at=starts + validity,
            validity=validity,
            pending_until=pending_until,
            settled=PENDING if pending_until else ACTIVE,
            order_id=order_id,
        )
        if order_id is not None:
            account.orders[order_id] = result.grant_id
        self.check_account_after(user, result)

    @rule(user=users, which=st.sampled_from(["pending", "pending", "any", "unknown"]), pick=picks)
    def activate(self, user: str, which: str, pick: int) -> None:
        grant_id = self.pick_lot(user, pick, which)
        lot = self.model[user].lot(grant_id)
        expected: type[DomainError] | None = None
        if lot is None:
            expected = NotFoundError
        elif lot.status(self.now) != PENDING:
            expected = GrantNotPendingError
        result = self.send(user, self.ledger.services.activate, ActivateGrant(user, self.key(), grant_id), expected)
        if result is None or lot is None:
            return
        lot.settled, lot.expires_at = ACTIVE, self.now + lot.validity  # rule 12: expiry counts from activation
        assert result.expires_at == lot.expires_at
        self.check_account_after(user, result)

    def holders(self) -> list[str]:
        return [user for user, account in self.model.items() if account.total(self.now, ACTIVE) > 0]

    @precondition(lambda self: bool(self.holders()))
    @rule(pick=picks, size=st.integers(1, 400))
    def spend_part_of_a_balance(self, pick: int, size: int) -> None:
        holders = self.holders()
        self.use(holders[pick % len(holders)], "some", size)

    @rule(
        user=users,
        how=st.sampled_from(["some", "small", "all", "over", "zero", "any"]),
        size=st.integers(1, 400),
    )
    def use(self, user: str, how: str, size: int) -> None:
        account, now = self.model[user], self.now
        available = account.total(now, ACTIVE)
        amount = {
            "some": size % max(available, 1) + 1,
            "small": size % 20 + 1,
            "all": available,
            "over": available + 1,
            "zero": 0,
            "any": size,
        }[how]
        expected: type[DomainError] | None = None
        if amount < 1:
            expected = InvalidAmountError
        elif amount > available:
            expected = InsufficientPointsError
        result = self.send(user, self.ledger.services.use, UsePoints(user, self.key(), amount), expected)
        if result is None:
            return
        taken = take(account.spendable(now), amount)
        assert [(a.grant_id, a.amount) for a in result.allocations] == [(lot.grant_id, n) for lot, n in taken]
        OUTCOMES["  a use took from a lot that activated by itself"] += any(lot.settled == PENDING for lot, _ in taken)
        OUTCOMES["  a use took from several lots"] += len(taken) > 1
        for lot, n in taken:
            lot.remaining -= n
            lot.used += n
        account.uses[result.use_id] = Use(result.use_id, amount, [[lot.grant_id, n, 0] for lot, n in taken])
        self.check_account_after(user, result)

    @precondition(lambda self: any(account.uses for account in self.model.values()))
    @rule(how=st.sampled_from(["all", "some", "some"]), pick=picks)
    def give_back_some_of_a_use(self, how: str, pick: int) -> None:
        spenders = [user for user, account in self.model.items() if account.uses]
        self.cancel_use(spenders[pick % len(spenders)], "known", how, pick)

    @rule(
        user=users,
        which=st.sampled_from(["known", "known", "known", "unknown"]),
        how=st.sampled_from(["all", "some", "rest", "over", "zero"]),
        pick=picks,
    )
    def cancel_use(self, user: str, which: str, how: str, pick: int) -> None:
        account, now = self.model[user], self.now
        known = list(account.uses.values())
        use = known[pick % len(known)] if which == "known" and known else None
        use_id = use.use_id if use else f"no-use-{pick}"
        cancellable = use.amount - use.cancelled if use else 0
        amount = {
            "all": None,
            "some": pick % max(cancellable, 1) + 1,
            "rest": cancellable,
            "over": cancellable + 1,
            "zero": 0,
        }[how]
        requested = cancellable if amount is None else amount
        expected: type[DomainError] | None = None
        if use is None:
            expected = NotFoundError
        elif amount is not None and amount < 1:
            expected = InvalidAmountError
        elif requested > cancellable or requested == 0:
            expected = CancelExceedsUseError
        result = self.send(
            user, self.ledger.services.cancel_use, CancelUse(user, self.key(), use_id, amount=amount), expected
        )
        if result is None or use is None:
            return
        # rule 5: back to the lots in the order they were taken; rule 6: an expired lot's points are reissued
        restored, reissued, left = [], [], requested
        for part in use.parts:
            back = min(left, part[1] - part[2])
            if back == 0:
                continue
            part[2] += back
            left -= back
            lot = account.lot(part[0])
            assert lot is not None
            lot.used -= back
            if lot.status(now) == ACTIVE:
                lot.remaining += back
                restored.append((lot.grant_id, back))
            else:
                lot.reissued_out += back
                reissued.append((lot, back))
        OUTCOMES["  a cancel restored points to a live lot"] += bool(restored)
        OUTCOMES["  a cancel reissued points of an expired lot"] += bool(reissued)
        assert result.amount == requested
        assert [(a.grant_id, a.amount) for a in result.restored] == restored
        assert [(r.from_grant_id, r.amount, r.manual, r.expires_at) for r in result.reissued] == [
            (lot.grant_id, back, lot.manual, now + DEFAULT_EXPIRY) for lot, back in reissued
        ]
        for made, (lot, back) in zip(result.reissued, reissued, strict=True):
            self.new_lot(
                user,
                grant_id=made.grant_id,
                source=Source.REISSUE,
                amount=back,
                remaining=back,
                expires_at=now + DEFAULT_EXPIRY,
                validity=DEFAULT_EXPIRY,
                pending_until=None,
                settled=ACTIVE,
                reissued_from=lot.grant_id,
                manual_flag=lot.manual,
            )
        self.check_account_after(user, result)

    @rule(user=users, which=st.sampled_from(["any", "any", "pending", "unknown"]), pick=picks)
    def cancel_grant(self, user: str, which: str, pick: int) -> None:
        grant_id = self.pick_lot(user, pick, which)
        lot = self.model[user].lot(grant_id)
        status = lot.status(self.now) if lot else None
        expected: type[DomainError] | None = None
        if lot is None:
            expected = NotFoundError
        elif status in (CANCELLED, EXPIRED) or lot.source is Source.REISSUE or lot.remaining != lot.amount:
            expected = GrantNotCancellableError  # rule 4: only while fully unused and still live
        result = self.send(user, self.ledger.services.cancel_grant, CancelGrant(user, self.key(), grant_id), expected)
        if result is None or lot is None:
            return
        assert result.amount == lot.remaining
        lot.cancelled, lot.remaining, lot.settled = lot.remaining, 0, CANCELLED
        self.check_account_after(user, result)

    @precondition(lambda self: any(account.orders for account in self.model.values()))
    @rule(how=st.sampled_from(["some", "all"]), pick=picks)
    def refund_an_order(self, how: str, pick: int) -> None:
        buyers = [user for user, account in self.model.items() if account.orders]
        self.clawback(buyers[pick % len(buyers)], "known", how, pick)

    @rule(
        user=users,
        which=st.sampled_from(["known", "known", "known", "unknown"]),
        how=st.sampled_from(["some", "all", "over", "zero"]),
        pick=picks,
    )
    def clawback(self, user: str, which: str, how: str, pick: int) -> None:
        account, now = self.model[user], self.now
        orders = sorted(account.orders)
        order_id = orders[pick % len(orders)] if which == "known" and orders else f"no-order-{pick}"
        lot = account.lot(account.orders[order_id]) if order_id in account.orders else None
        left = lot.amount - lot.clawback_requested if lot else 0
        amount = {"some": pick % max(left, 1) + 1, "all": left, "over": left + 1, "zero": 0}[how]
        expected: type[DomainError] | None = None
        if lot is None:
            expected = NotFoundError
        elif lot.settled == CANCELLED:
            expected = InvalidInputError
        elif not 1 <= amount <= left:
            expected = InvalidAmountError  # an order never loses more than it earned
        request = ClawbackPoints(user, self.key(), order_id, amount)
        result = self.send(user, self.ledger.services.clawback, request, expected)
        if result is None or lot is None:
            return
        # rule 13: the order's own grant first; then, if the policy says so, other active lots in spend order
        sources = [lot] if lot.remaining > 0 and lot.status(now) in (ACTIVE, PENDING) else []
        if self.policy is ClawbackPolicy.ORDER_GRANT_THEN_BALANCE:
            sources += [other for other in account.spendable(now) if other is not lot]
        taken = take(sources, amount)
        assert [(a.grant_id, a.amount) for a in result.taken] == [(t.grant_id, n) for t, n in taken]
        assert (result.requested, result.shortfall) == (amount, amount - sum(n for _, n in taken))
        OUTCOMES["  a clawback fell short"] += result.shortfall > 0
        OUTCOMES["  a clawback took from other lots"] += any(t is not lot for t, _ in taken)
        for source, n in taken:
            source.remaining -= n
            source.clawed += n
        lot.clawback_requested += amount
        self.check_account_after(user, result)

    @rule(chunk_size=st.sampled_from([1, 2, 500]))
    def expire(self, chunk_size: int) -> None:
        now = self.now
        due = {
            user: [lot for lot in account.lots if lot.settled in (ACTIVE, PENDING) and lot.expires_at <= now]
            for user, account in self.model.items()
        }
        report = self.send("", self.ledger.services.expire, ExpirePoints(chunk_size=chunk_size), None)
        assert (report.accounts, report.lots, report.points) == (
            sum(1 for lots in due.values() if lots),
            sum(len(lots) for lots in due.values()),
            sum(lot.remaining for lots in due.values() for lot in lots),
        )
        OUTCOMES["  the batch expired points"] += report.points > 0
        for lots in due.values():
            for lot in lots:
                lot.expired, lot.remaining, lot.settled = lot.remaining, 0, EXPIRED

    @rule(by=clock_moves)
    def advance(self, by: timedelta) -> None:
        self.ledger.clock.set(self.now + by)

    def boundaries(self) -> list[datetime]:
        now = self.now
        moments = {
            moment
            for account in self.model.values()
            for lot in account.lots
            for moment in (lot.expires_at, lot.pending_until)
            if moment is not None and moment > now
        }
        return sorted(moments)

    @precondition(lambda self: bool(self.boundaries()))
    @rule(pick=picks, nudge=st.sampled_from([timedelta(0), timedelta(0), -timedelta(microseconds=1)]))
    def advance_to_a_lots_expiry_or_activation(self, pick: int, nudge: timedelta) -> None:
        """Rules 1, 11 and 12 at their edges: the clock lands exactly on (or just before) a lot's moment."""
        boundaries = self.boundaries()
        moment = boundaries[pick % min(len(boundaries), 3)] + nudge
        if moment > self.now:
            self.ledger.clock.set(moment)

    @rule(pick=picks)
    def retry(self, pick: int) -> None:
        """Rule 9: the same key and command again returns the first result and changes nothing."""
        if not self.done:
            return
        user, use_case, request, first = self.done[pick % len(self.done)]
        if type(request) is ExpirePoints:
            return
        version = self.version(user)
        assert self.run(use_case.execute(request)) == first
        assert self.version(user) == version

    @rule(pick=picks)
    def reuse_a_key_for_another_command(self, pick: int) -> None:
        """Rule 9: the same key with a different command is refused and changes nothing."""
        keyed = [(user, request) for user, _, request, _ in self.done if type(request) is not ExpirePoints]
        if not keyed:
            return
        user, request = keyed[pick % len(keyed)]
        version = self.version(user)
        other = UsePoints(user, request.idempotency_key, 1, reason="another command")
        try:
            self.run(self.ledger.services.use.execute(other))
        except IdempotencyConflictError:
            pass
        else:
            raise AssertionError(f"key {request.idempotency_key} was accepted for another command")
        assert self.version(user) == version

    # -- checks ------------------------------------------------------------------------------------------------

    def version(self, user: str) -> int:
        version: int = self.run(self.ledger.services.account.execute(user)).version
        return version

    def check_account_after(self, user: str, result: Any) -> None:
        """What a command reports of the account it left agrees with the model, as of now."""
        account = self.model[user]
        assert (result.account.balance, result.account.pending, result.account.version) == (
            account.total(self.now, ACTIVE),
            account.total(self.now, PENDING),
            self.version(user),
        )

    @invariant()
    def the_ledger_agrees_with_the_model(self) -> None:
        if not hasattr(self, "ledger"):
            return
        STEPS["run"] += 1
        now = self.now
        self.run(self.ledger.project())
        events = [recorded for _, recorded in self.run(self.ledger.store.read_all(0, 100_000))]
        for user, account in self.model.items():
            balance = account.total(now, ACTIVE)
            pending = account.total(now, PENDING)

            # the model keeps its own books: every point of every lot is accounted for, nothing is negative
            for lot in account.lots:
                assert lot.remaining >= 0
                assert lot.amount == (
                    lot.remaining + lot.used + lot.clawed + lot.expired + lot.cancelled + lot.reissued_out
                ), lot
            assert sum(u.amount - u.cancelled for u in account.uses.values()) == sum(lot.used for lot in account.lots)

            # the write model: the aggregate's lots, uses and balance are the model's
            detail = self.run(self.ledger.services.account.execute(user))
            assert (detail.available, detail.pending) == (balance, pending)
            lots = {lot.grant_id: lot for lot in detail.lots}
            assert len(lots) == len(account.lots)
            for lot in account.lots:
                real = lots[lot.grant_id]
                assert (
                    real.source,
                    real.amount,
                    real.remaining,
                    real.status,
                    real.expires_at,
                    real.manual,
                    real.reissued_from,
                    real.clawed_back,
                ) == (
                    lot.source.value,
                    lot.amount,
                    lot.remaining,
                    lot.status(now),
                    lot.expires_at,
                    lot.manual,
                    lot.reissued_from,
                    lot.clawback_requested,
                ), lot.grant_id
                if lot.settled == EXPIRED:
                    assert real.expired_amount == lot.expired
            uses = {use.use_id: use for use in detail.uses}
            assert uses.keys() == account.uses.keys()
            for use in account.uses.values():
                real_use = uses[use.use_id]
                assert (real_use.amount, real_use.cancelled) == (use.amount, use.cancelled)
                assert [(a.grant_id, a.amount) for a in real_use.allocations] == [(g, n) for g, n, _ in use.parts]

            # the write model keeps its own books: what left each lot (not remaining, expired, cancelled or clawed
            # back) is what uses took from it and did not give back to it; a point given back to a lapsed lot left
            # it for a new REISSUE lot. So every used point is traced to a lot.
            taken: Counter[str] = Counter()
            clawed: Counter[str] = Counter()
            reissued = 0
            for recorded in events:
                match recorded.event if recorded.user_id == user else None:
                    case PointsUsed(allocations=allocations):
                        for a in allocations:
                            taken[a.grant_id] += a.amount
                    case UseCancelled(restored=restored, reissued=reissues):
                        for a in restored:
                            taken[a.grant_id] -= a.amount
                        reissued += sum(r.amount for r in reissues)
                    case PointsClawedBack(taken=allocations):
                        for a in allocations:
                            clawed[a.grant_id] += a.amount
            for real in detail.lots:
                assert real.remaining >= 0
                cancelled = real.amount if real.status == CANCELLED else 0
                out = real.amount - real.remaining - real.expired_amount - cancelled - clawed[real.grant_id]
                assert out == taken[real.grant_id], real
            assert sum(u.amount - u.cancelled for u in detail.uses) + reissued == sum(taken.values())

            # the read model, projected: the same balance as of now, at the same version
            view = self.run(self.ledger.services.balance.execute(user))
            assert (view.available, view.pending, view.version) == (balance, pending, detail.version)


def test_the_ledger_follows_the_reference_model_of_the_rules() -> None:
    STEPS["run"] = 0
    OUTCOMES.clear()
    started = time.perf_counter()
    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    elapsed = time.perf_counter() - started
    print(f"model test: {STEPS['run']} steps in {elapsed:.1f} s")
    for outcome, count in sorted(OUTCOMES.items()):
        print(f"  {count:5d}  {outcome}")
    assert STEPS["run"] >= REQUIRED_STEPS, f"only {STEPS['run']} steps ran; the rules need {REQUIRED_STEPS}"
