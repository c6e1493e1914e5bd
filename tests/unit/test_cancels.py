"""Cancelling uses (rules 5, 6, 7) and grants (rule 4)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.errors import (
    CancelExceedsUseError,
    GrantNotCancellableError,
    InvalidAmountError,
    NotFoundError,
)
from app.domain.events import Allocation, Source
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def test_a_full_cancel_gives_every_point_back_to_the_lots_it_came_from(u1: Driver) -> None:
    a = await u1.grant(100, expires_in=10 * DAY)
    b = await u1.grant(100, expires_in=20 * DAY)
    used = await u1.use(150)
    cancel = await u1.cancel_use(used.use_id)
    assert (cancel.amount, cancel.restored, cancel.reissued) == (
        150,
        (Allocation(a.grant_id, 100), Allocation(b.grant_id, 50)),
        (),
    )
    assert cancel.account.balance == 200
    remaining = {lot.grant_id: lot.remaining for lot in (await u1.detail()).lots}
    assert remaining == {a.grant_id: 100, b.grant_id: 100}


async def test_partial_cancels_give_points_back_in_the_order_they_were_taken(u1: Driver) -> None:
    a = await u1.grant(100, Source.MANUAL)
    b = await u1.grant(100, expires_in=5 * DAY)
    c = await u1.grant(100, expires_in=9 * DAY)
    used = await u1.use(250)
    assert used.allocations == (
        Allocation(a.grant_id, 100),
        Allocation(b.grant_id, 100),
        Allocation(c.grant_id, 50),
    )
    first = await u1.cancel_use(used.use_id, 80)
    second = await u1.cancel_use(used.use_id, 80)
    third = await u1.cancel_use(used.use_id, 90)
    assert first.restored == (Allocation(a.grant_id, 80),)
    assert second.restored == (Allocation(a.grant_id, 20), Allocation(b.grant_id, 60))
    assert third.restored == (Allocation(b.grant_id, 40), Allocation(c.grant_id, 50))
    assert third.account.balance == 300
    (use,) = (await u1.detail()).uses
    assert (use.amount, use.cancelled) == (250, 250)


async def test_cancels_in_total_never_exceed_what_was_used(u1: Driver) -> None:
    await u1.grant(100)
    used = await u1.use(100)
    await u1.cancel_use(used.use_id, 60)
    with pytest.raises(CancelExceedsUseError) as refused:
        await u1.cancel_use(used.use_id, 41)
    assert (refused.value.requested, refused.value.cancellable) == (41, 40)
    await u1.cancel_use(used.use_id, 40)
    with pytest.raises(CancelExceedsUseError):
        await u1.cancel_use(used.use_id, 1)
    with pytest.raises(CancelExceedsUseError):
        await u1.cancel_use(used.use_id)
    assert await u1.available() == 100


async def test_a_full_cancel_after_a_partial_one_cancels_only_the_rest(u1: Driver) -> None:
    await u1.grant(100)
    used = await u1.use(100)
    await u1.cancel_use(used.use_id, 30)
    rest = await u1.cancel_use(used.use_id)
    assert rest.amount == 70
    assert rest.account.balance == 100


async def test_a_cancel_of_more_than_the_use_is_refused(u1: Driver) -> None:
    await u1.grant(100)
    used = await u1.use(50)
    with pytest.raises(CancelExceedsUseError):
        await u1.cancel_use(used.use_id, 51)
    assert await u1.available() == 50


@pytest.mark.parametrize("amount", [0, -3])
async def test_a_cancel_of_less_than_one_point_is_refused(u1: Driver, amount: int) -> None:
    await u1.grant(100)
    used = await u1.use(50)
    with pytest.raises(InvalidAmountError):
        await u1.cancel_use(used.use_id, amount)


async def test_cancelling_an_unknown_use_is_not_found(u1: Driver) -> None:
    await u1.grant(100)
    with pytest.raises(NotFoundError) as refused:
        await u1.cancel_use("no-such-use")
    assert (refused.value.kind, refused.value.ident) == ("use", "no-such-use")


async def test_a_use_of_another_user_cannot_be_cancelled(u1: Driver) -> None:
    u2 = Driver(u1.ledger, "u2")
    await u1.grant(100)
    used = await u1.use(100)
    with pytest.raises(NotFoundError):
        await u2.cancel_use(used.use_id)


async def test_points_of_an_expired_lot_come_back_as_a_new_grant(u1: Driver) -> None:
    lot = await u1.grant(100, Source.PROMOTION, expires_in=10 * DAY)
    used = await u1.use(100)
    u1.ledger.advance(days=15)
    cancel = await u1.cancel_use(used.use_id, 40)

    assert cancel.restored == ()
    (reissue,) = cancel.reissued
    assert (reissue.from_grant_id, reissue.amount, reissue.manual) == (lot.grant_id, 40, False)
    assert reissue.expires_at == u1.now() + timedelta(days=365)
    assert cancel.account.balance == 40
    new = await u1.lot(reissue.grant_id)
    assert (new.source, new.amount, new.remaining, new.status, new.reissued_from) == (
        "REISSUE",
        40,
        40,
        "ACTIVE",
        lot.grant_id,
    )
    assert (await u1.lot(lot.grant_id)).remaining == 0


async def test_a_reissued_lot_keeps_the_manual_flag_and_is_spent_first(u1: Driver) -> None:
    manual = await u1.grant(100, Source.MANUAL, expires_in=5 * DAY)
    used = await u1.use(100)
    u1.ledger.advance(days=6)
    await u1.grant(100, Source.PROMOTION, expires_in=3 * DAY)
    cancel = await u1.cancel_use(used.use_id)
    (reissue,) = cancel.reissued
    assert (reissue.from_grant_id, reissue.manual) == (manual.grant_id, True)
    assert (await u1.lot(reissue.grant_id)).manual is True
    again = await u1.use(50)
    assert again.allocations == (Allocation(reissue.grant_id, 50),)


async def test_a_cancel_over_live_and_expired_lots_restores_some_and_reissues_the_rest(u1: Driver) -> None:
    short = await u1.grant(100, expires_in=5 * DAY)
    long = await u1.grant(100, expires_in=50 * DAY)
    used = await u1.use(200)
    u1.ledger.advance(days=10)
    await u1.expire()  # whether or not the batch has settled the lot makes no difference
    cancel = await u1.cancel_use(used.use_id)
    assert cancel.restored == (Allocation(long.grant_id, 100),)
    assert [(r.from_grant_id, r.amount) for r in cancel.reissued] == [(short.grant_id, 100)]
    assert cancel.account.balance == 200


async def test_a_cancel_reissues_when_the_lot_lapsed_even_before_the_batch_ran(u1: Driver) -> None:
    short = await u1.grant(100, expires_in=5 * DAY)
    used = await u1.use(60)
    u1.ledger.advance(days=5)
    cancel = await u1.cancel_use(used.use_id)
    assert [(r.from_grant_id, r.amount) for r in cancel.reissued] == [(short.grant_id, 60)]
    assert cancel.account.balance == 60
    report = await u1.expire()
    assert report.points == 40
    assert await u1.available() == 60


async def test_an_unused_grant_can_be_cancelled(u1: Driver) -> None:
    granted = await u1.grant(100)
    await u1.grant(20)
    cancel = await u1.cancel_grant(granted.grant_id)
    assert (cancel.grant_id, cancel.amount, cancel.account.balance) == (granted.grant_id, 100, 20)
    lot = await u1.lot(granted.grant_id)
    assert (lot.status, lot.remaining) == ("CANCELLED", 0)


async def test_a_pending_grant_can_be_cancelled_before_it_activates(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=7 * DAY)
    cancel = await u1.cancel_grant(granted.grant_id)
    assert (cancel.amount, cancel.account.balance, cancel.account.pending) == (100, 0, 0)
    u1.ledger.advance(days=8)
    assert await u1.available() == 0


async def test_a_grant_used_and_then_fully_given_back_can_be_cancelled(u1: Driver) -> None:
    granted = await u1.grant(100)
    used = await u1.use(40)
    await u1.cancel_use(used.use_id)
    assert (await u1.cancel_grant(granted.grant_id)).amount == 100


async def test_a_partly_used_grant_cannot_be_cancelled(u1: Driver) -> None:
    granted = await u1.grant(100)
    await u1.use(1)
    with pytest.raises(GrantNotCancellableError) as refused:
        await u1.cancel_grant(granted.grant_id)
    assert refused.value.grant_id == granted.grant_id
    assert await u1.available() == 99


async def test_an_expired_grant_cannot_be_cancelled(u1: Driver) -> None:
    granted = await u1.grant(100, expires_in=2 * DAY)
    u1.ledger.advance(days=2)
    with pytest.raises(GrantNotCancellableError):
        await u1.cancel_grant(granted.grant_id)
    await u1.expire()
    with pytest.raises(GrantNotCancellableError):
        await u1.cancel_grant(granted.grant_id)


async def test_a_cancelled_grant_cannot_be_cancelled_again(u1: Driver) -> None:
    granted = await u1.grant(100)
    await u1.cancel_grant(granted.grant_id)
    with pytest.raises(GrantNotCancellableError):
        await u1.cancel_grant(granted.grant_id)


async def test_a_clawed_back_grant_cannot_be_cancelled(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, order_id="o-1")
    await u1.clawback("o-1", 10)
    with pytest.raises(GrantNotCancellableError):
        await u1.cancel_grant(granted.grant_id)


async def test_a_reissued_lot_cannot_be_cancelled_as_a_grant(u1: Driver) -> None:
    await u1.grant(100, expires_in=2 * DAY)
    used = await u1.use(100)
    u1.ledger.advance(days=3)
    (reissue,) = (await u1.cancel_use(used.use_id)).reissued
    with pytest.raises(GrantNotCancellableError):
        await u1.cancel_grant(reissue.grant_id)


async def test_cancelling_an_unknown_grant_is_not_found(u1: Driver) -> None:
    with pytest.raises(NotFoundError) as refused:
        await u1.cancel_grant("no-such-grant")
    assert (refused.value.kind, refused.value.ident) == ("grant", "no-such-grant")


async def test_a_reissued_lot_is_linked_to_the_cancel_that_made_it(u1: Driver) -> None:
    expired = await u1.grant(100, expires_in=2 * DAY)
    used = await u1.use(100)
    u1.ledger.advance(days=3)
    cancel = await u1.cancel_use(used.use_id, 70)
    (reissue,) = cancel.reissued
    await u1.ledger.project()
    (newest, *_) = (await u1.s.history.execute("u1")).entries
    entry = newest[1]
    assert (entry.kind, entry.use_id, entry.amount) == ("USE_CANCELLED", used.use_id, 70)
    assert entry.lots == (Allocation(reissue.grant_id, 70),)
    assert (await u1.lot(reissue.grant_id)).reissued_from == expired.grant_id
