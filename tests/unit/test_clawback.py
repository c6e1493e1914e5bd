"""Refund clawback (rule 13) under both policies: the order's grant first, never below zero, shortfall reported,
an order never loses more than it earned."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.errors import InvalidAmountError, InvalidInputError, NotFoundError
from app.domain.events import Allocation, Source
from app.domain.policy import ClawbackPolicy, PointPolicy
from tests.ledger import make_ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)


def user(policy: ClawbackPolicy) -> Driver:
    return Driver(make_ledger(PointPolicy(clawback=policy)))


@pytest.mark.parametrize("policy", list(ClawbackPolicy))
async def test_a_clawback_takes_the_orders_own_unspent_grant_first(policy: ClawbackPolicy) -> None:
    u1 = user(policy)
    other = await u1.grant(500, Source.MANUAL)
    order = await u1.grant(300, Source.ORDER, order_id="o-1", expires_in=300 * DAY)
    clawed = await u1.clawback("o-1", 200)
    assert (clawed.requested, clawed.taken, clawed.shortfall) == (200, (Allocation(order.grant_id, 200),), 0)
    assert clawed.account.balance == 600
    lots = {lot.grant_id: lot for lot in (await u1.detail()).lots}
    assert (lots[order.grant_id].remaining, lots[order.grant_id].clawed_back) == (100, 200)
    assert lots[other.grant_id].remaining == 500


async def test_with_order_grant_then_balance_the_spent_part_comes_from_other_lots_in_spend_order() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    order = await u1.grant(300, Source.ORDER, order_id="o-1", expires_in=10 * DAY)
    await u1.use(250)  # takes 250 of the order's grant, the only lot so far
    late = await u1.grant(100, Source.PROMOTION, expires_in=90 * DAY)
    soon = await u1.grant(100, Source.PROMOTION, expires_in=30 * DAY)
    manual = await u1.grant(100, Source.MANUAL, expires_in=200 * DAY)
    clawed = await u1.clawback("o-1", 300)
    assert clawed.taken == (
        Allocation(order.grant_id, 50),
        Allocation(manual.grant_id, 100),
        Allocation(soon.grant_id, 100),
        Allocation(late.grant_id, 50),
    )
    assert (clawed.shortfall, clawed.account.balance) == (0, 50)


async def test_with_order_grant_then_balance_the_account_never_goes_below_zero() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    order = await u1.grant(300, Source.ORDER, order_id="o-1")
    await u1.use(280)
    other = await u1.grant(50, Source.PROMOTION)
    clawed = await u1.clawback("o-1", 300)
    assert clawed.taken == (Allocation(order.grant_id, 20), Allocation(other.grant_id, 50))
    assert (clawed.shortfall, clawed.account.balance) == (230, 0)
    assert await u1.available() == 0


async def test_with_order_grant_only_the_spent_part_is_forgiven_as_shortfall() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_ONLY)
    order = await u1.grant(300, Source.ORDER, order_id="o-1")
    await u1.use(280)
    other = await u1.grant(500, Source.MANUAL)
    clawed = await u1.clawback("o-1", 300)
    assert clawed.taken == (Allocation(order.grant_id, 20),)
    assert (clawed.shortfall, clawed.account.balance) == (280, 500)
    assert (await u1.lot(other.grant_id)).remaining == 500


@pytest.mark.parametrize("policy", list(ClawbackPolicy))
async def test_an_order_cannot_lose_more_than_it_earned(policy: ClawbackPolicy) -> None:
    u1 = user(policy)
    await u1.grant(300, Source.ORDER, order_id="o-1")
    await u1.grant(1_000, Source.PROMOTION)
    with pytest.raises(InvalidAmountError) as refused:
        await u1.clawback("o-1", 301)
    assert refused.value.maximum == 300
    await u1.clawback("o-1", 200)
    with pytest.raises(InvalidAmountError) as refused:
        await u1.clawback("o-1", 101)
    assert refused.value.maximum == 100
    await u1.clawback("o-1", 100)
    with pytest.raises(InvalidAmountError):
        await u1.clawback("o-1", 1)
    assert await u1.available() == 1_000


async def test_a_shortfall_still_counts_towards_what_the_order_can_lose() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_ONLY)
    await u1.grant(300, Source.ORDER, order_id="o-1")
    await u1.use(300)
    assert (await u1.clawback("o-1", 300)).shortfall == 300
    with pytest.raises(InvalidAmountError):
        await u1.clawback("o-1", 1)


async def test_a_pending_order_grant_is_clawed_back_before_it_activates() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    order = await u1.grant(300, Source.ORDER, order_id="o-1", pending_for=7 * DAY)
    await u1.grant(100, Source.PROMOTION)
    clawed = await u1.clawback("o-1", 300)
    assert (clawed.taken, clawed.shortfall) == ((Allocation(order.grant_id, 300),), 0)
    assert (clawed.account.balance, clawed.account.pending) == (100, 0)


@pytest.mark.parametrize("amount", [0, -1])
async def test_a_clawback_of_less_than_one_point_is_refused(amount: int) -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    await u1.grant(300, Source.ORDER, order_id="o-1")
    with pytest.raises(InvalidAmountError):
        await u1.clawback("o-1", amount)


async def test_a_clawback_of_an_order_that_earned_nothing_is_not_found() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    await u1.grant(300, Source.ORDER, order_id="o-1")
    with pytest.raises(NotFoundError) as refused:
        await u1.clawback("o-2", 10)
    assert refused.value.ident == "o-2"


async def test_a_cancelled_order_grant_cannot_be_clawed_back() -> None:
    u1 = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    order = await u1.grant(300, Source.ORDER, order_id="o-1")
    await u1.grant(300, Source.PROMOTION)
    await u1.cancel_grant(order.grant_id)
    with pytest.raises(InvalidInputError):
        await u1.clawback("o-1", 10)
    assert await u1.available() == 300


async def test_an_expired_order_grant_gives_nothing_and_the_policy_decides_the_rest() -> None:
    strict = user(ClawbackPolicy.ORDER_GRANT_ONLY)
    lenient = user(ClawbackPolicy.ORDER_GRANT_THEN_BALANCE)
    for u1 in (strict, lenient):
        await u1.grant(300, Source.ORDER, order_id="o-1", expires_in=5 * DAY)
        await u1.grant(100, Source.PROMOTION, expires_in=50 * DAY)
        u1.ledger.advance(days=6)
    assert (await strict.clawback("o-1", 300)).shortfall == 300
    taken = await lenient.clawback("o-1", 300)
    assert (sum(a.amount for a in taken.taken), taken.shortfall, taken.account.balance) == (100, 200, 0)
