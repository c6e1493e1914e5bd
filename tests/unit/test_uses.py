"""Using points: allocations recorded (rule 2), deterministic spend order (rule 3), balance as of now (rule 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.errors import InsufficientPointsError, InvalidAmountError
from app.domain.events import Allocation, Source
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def test_a_use_records_which_lots_gave_how_much(u1: Driver) -> None:
    a = await u1.grant(100, expires_in=10 * DAY)
    b = await u1.grant(100, expires_in=20 * DAY)
    used = await u1.use(150, order_id="o-9")

    assert used.allocations == (Allocation(a.grant_id, 100), Allocation(b.grant_id, 50))
    assert used.account.balance == 50
    (use,) = (await u1.detail()).uses
    assert (use.use_id, use.amount, use.order_id, use.allocations) == (
        used.use_id,
        150,
        "o-9",
        used.allocations,
    )
    remaining = {lot.grant_id: lot.remaining for lot in (await u1.detail()).lots}
    assert remaining == {a.grant_id: 0, b.grant_id: 50}


async def test_manual_lots_are_spent_first_even_when_others_expire_sooner(u1: Driver) -> None:
    order = await u1.grant(100, Source.ORDER, expires_in=2 * DAY)
    manual = await u1.grant(100, Source.MANUAL, expires_in=300 * DAY)
    promo = await u1.grant(100, Source.PROMOTION, expires_in=1 * DAY)
    used = await u1.use(250)
    assert used.allocations == (
        Allocation(manual.grant_id, 100),
        Allocation(promo.grant_id, 100),
        Allocation(order.grant_id, 50),
    )


async def test_among_manual_lots_the_soonest_expiry_is_spent_first(u1: Driver) -> None:
    late = await u1.grant(100, Source.MANUAL, expires_in=30 * DAY)
    soon = await u1.grant(100, Source.MANUAL, expires_in=3 * DAY)
    used = await u1.use(150)
    assert used.allocations == (Allocation(soon.grant_id, 100), Allocation(late.grant_id, 50))


async def test_lots_expiring_together_are_spent_oldest_grant_first(u1: Driver) -> None:
    expiry = u1.now() + 40 * DAY
    first = await u1.grant(100, expires_at=expiry)
    u1.ledger.advance(hours=1)
    second = await u1.grant(100, expires_at=expiry)
    u1.ledger.advance(hours=1)
    third = await u1.grant(100, expires_at=expiry)
    used = await u1.use(250)
    assert used.allocations == (
        Allocation(first.grant_id, 100),
        Allocation(second.grant_id, 100),
        Allocation(third.grant_id, 50),
    )


async def test_lots_granted_at_the_same_moment_and_expiring_together_are_spent_in_grant_order(
    u1: Driver,
) -> None:
    grants = [await u1.grant(10, expires_in=40 * DAY) for _ in range(5)]
    used = await u1.use(50)
    assert [a.grant_id for a in used.allocations] == [g.grant_id for g in grants]


async def test_a_use_beyond_the_balance_is_refused_with_the_available_amount(u1: Driver) -> None:
    await u1.grant(100)
    await u1.grant(50, pending_for=3 * DAY)
    with pytest.raises(InsufficientPointsError) as refused:
        await u1.use(101)
    assert (refused.value.requested, refused.value.available) == (101, 100)
    assert await u1.available() == 100


@pytest.mark.parametrize("amount", [0, -1])
async def test_a_use_of_less_than_one_point_is_refused(u1: Driver, amount: int) -> None:
    await u1.grant(100)
    with pytest.raises(InvalidAmountError):
        await u1.use(amount)
    assert (await u1.detail()).uses == []


async def test_a_use_on_an_account_without_points_is_refused(u1: Driver) -> None:
    with pytest.raises(InsufficientPointsError) as refused:
        await u1.use(1)
    assert refused.value.available == 0


async def test_the_balance_is_computed_as_of_now_without_the_expiry_batch(u1: Driver) -> None:
    await u1.grant(100, expires_in=10 * DAY)
    await u1.grant(30, expires_in=20 * DAY)
    u1.ledger.advance(days=10)  # the first lot lapses exactly now; no batch runs

    assert await u1.available() == 30
    assert (await u1.balance()).available == 30
    with pytest.raises(InsufficientPointsError) as refused:
        await u1.use(31)
    assert refused.value.available == 30
    used = await u1.use(30)
    assert used.account.balance == 0


async def test_a_lot_is_spendable_until_the_instant_it_expires(u1: Driver) -> None:
    granted = await u1.grant(100, expires_in=10 * DAY)
    u1.ledger.advance(days=10, microseconds=-1)
    used = await u1.use(100)
    assert used.allocations == (Allocation(granted.grant_id, 100),)
