"""Granting: every grant is its own lot (rule 1), limits from the policy (rule 8), the holding cap (rule 7),
one order earns once (rule 9)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.application.commands.grants import GrantPoints
from app.domain.errors import (
    BalanceLimitExceededError,
    DuplicateOrderError,
    ExpiryOutOfRangeError,
    InvalidAmountError,
    InvalidInputError,
)
from app.domain.events import Source
from app.domain.policy import PointPolicy
from tests.ledger import Ledger, make_ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)
FIVE_YEARS = timedelta(days=5 * 365)


async def test_every_grant_is_its_own_lot_with_its_amount_expiry_and_source(u1: Driver) -> None:
    a = await u1.grant(100, Source.PROMOTION, expires_in=30 * DAY)
    b = await u1.grant(100, Source.PROMOTION, expires_in=30 * DAY)
    c = await u1.grant(50, Source.MANUAL)
    d = await u1.grant(70, Source.ORDER, order_id="o-1")

    lots = {lot.grant_id: lot for lot in (await u1.detail()).lots}
    assert len({a.grant_id, b.grant_id, c.grant_id, d.grant_id}) == 4
    assert [(lots[g.grant_id].amount, lots[g.grant_id].remaining) for g in (a, b, c, d)] == [
        (100, 100),
        (100, 100),
        (50, 50),
        (70, 70),
    ]
    assert (lots[c.grant_id].source, lots[c.grant_id].manual) == ("MANUAL", True)
    assert (lots[d.grant_id].source, lots[d.grant_id].order_id) == ("ORDER", "o-1")
    assert lots[a.grant_id].expires_at == u1.now() + 30 * DAY
    assert d.account.balance == 320


async def test_a_grant_without_an_expiry_gets_the_default_of_365_days(u1: Driver) -> None:
    granted = await u1.grant(10)
    assert granted.expires_at == u1.now() + timedelta(days=365)


async def test_a_grant_without_an_expiry_gets_the_policys_default() -> None:
    u1 = Driver(make_ledger(PointPolicy(default_expiry=timedelta(days=90))))
    granted = await u1.grant(10)
    assert granted.expires_at == u1.now() + timedelta(days=90)


@pytest.mark.parametrize("amount", [0, -5, 100_001])
async def test_a_grant_outside_the_default_bounds_is_refused(u1: Driver, amount: int) -> None:
    with pytest.raises(InvalidAmountError) as refused:
        await u1.grant(amount)
    assert (refused.value.minimum, refused.value.maximum) == (1, 100_000)
    assert (await u1.detail()).lots == []


@pytest.mark.parametrize("amount", [1, 100_000])
async def test_a_grant_at_the_default_bounds_is_accepted(u1: Driver, amount: int) -> None:
    assert (await u1.grant(amount)).account.balance == amount


async def test_the_grant_bounds_come_from_the_policy() -> None:
    u1 = Driver(make_ledger(PointPolicy(min_grant=10, max_grant=500, max_balance=10_000)))
    for refused in (9, 501):
        with pytest.raises(InvalidAmountError):
            await u1.grant(refused)
    assert (await u1.grant(10)).amount == 10
    assert (await u1.grant(500)).amount == 500


@pytest.mark.parametrize("validity", [DAY, FIVE_YEARS - timedelta(seconds=1), FIVE_YEARS - DAY])
async def test_an_expiry_from_one_day_to_just_under_five_years_is_accepted(u1: Driver, validity: timedelta) -> None:
    granted = await u1.grant(10, expires_in=validity)
    assert granted.expires_at == u1.now() + validity


@pytest.mark.parametrize("validity", [DAY - timedelta(seconds=1), timedelta(0), -DAY, FIVE_YEARS, FIVE_YEARS + DAY])
async def test_an_expiry_under_one_day_or_at_five_years_or_more_is_refused(u1: Driver, validity: timedelta) -> None:
    with pytest.raises(ExpiryOutOfRangeError) as refused:
        await u1.grant(10, expires_in=validity)
    assert (refused.value.min_days, refused.value.max_days_exclusive) == (1, 5 * 365)
    assert (await u1.detail()).lots == []


async def test_the_expiry_range_comes_from_the_policy() -> None:
    policy = PointPolicy(
        min_expiry=timedelta(days=7), default_expiry=timedelta(days=30), max_expiry_exclusive=timedelta(days=60)
    )
    u1 = Driver(make_ledger(policy))
    for refused in (6 * DAY, 60 * DAY):
        with pytest.raises(ExpiryOutOfRangeError):
            await u1.grant(10, expires_in=refused)
    await u1.grant(10, expires_in=7 * DAY)
    await u1.grant(10, expires_in=59 * DAY)


async def test_a_grant_past_the_holding_cap_is_refused() -> None:
    u1 = Driver(make_ledger(PointPolicy(max_grant=1_000, max_balance=1_500)))
    await u1.grant(1_000)
    await u1.grant(500)
    with pytest.raises(BalanceLimitExceededError) as refused:
        await u1.grant(1)
    assert (refused.value.limit, refused.value.balance, refused.value.requested) == (1_500, 1_500, 1)
    assert await u1.available() == 1_500


async def test_pending_points_count_towards_the_holding_cap() -> None:
    u1 = Driver(make_ledger(PointPolicy(max_grant=1_000, max_balance=1_500)))
    await u1.grant(1_000, pending_for=7 * DAY)
    with pytest.raises(BalanceLimitExceededError):
        await u1.grant(501)
    await u1.grant(500)


async def test_expired_used_and_cancelled_points_leave_room_under_the_cap() -> None:
    u1 = Driver(make_ledger(PointPolicy(max_grant=1_000, max_balance=1_000)))
    await u1.grant(400, expires_in=2 * DAY)
    await u1.grant(300)
    cancelled = await u1.grant(300)
    await u1.cancel_grant(cancelled.grant_id)
    await u1.use(300)  # from the lot of 400, which expires first: 100 of it is left
    u1.ledger.advance(days=3)  # those 100 lapse, although the expiry batch has not run
    with pytest.raises(BalanceLimitExceededError):
        await u1.grant(701)
    assert (await u1.grant(700)).account.balance == 1_000


async def test_cancels_give_back_and_reissue_points_past_the_holding_cap() -> None:
    u1 = Driver(make_ledger(PointPolicy(max_grant=1_000, max_balance=1_000)))
    await u1.grant(600, expires_in=5 * DAY)
    used = await u1.use(600)
    await u1.grant(1_000, expires_in=30 * DAY)
    restored = await u1.cancel_use(used.use_id, 300)
    assert restored.account.balance == 1_300
    u1.ledger.advance(days=10)
    reissued = await u1.cancel_use(used.use_id)
    assert [r.amount for r in reissued.reissued] == [300]
    assert reissued.account.balance == 1_300  # the 300 restored first lapsed with their lot on day 5
    with pytest.raises(BalanceLimitExceededError):
        await u1.grant(1)


async def test_an_order_earns_only_once(u1: Driver) -> None:
    first = await u1.grant(100, Source.ORDER, order_id="o-1")
    with pytest.raises(DuplicateOrderError) as refused:
        await u1.grant(100, Source.ORDER, order_id="o-1")
    assert (refused.value.order_id, refused.value.grant_id) == ("o-1", first.grant_id)
    assert await u1.available() == 100


async def test_an_order_whose_grant_was_cancelled_still_cannot_earn_again(u1: Driver) -> None:
    first = await u1.grant(100, Source.ORDER, order_id="o-1")
    await u1.cancel_grant(first.grant_id)
    with pytest.raises(DuplicateOrderError):
        await u1.grant(100, Source.ORDER, order_id="o-1")


async def test_an_order_grant_must_name_its_order(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.grant.execute(GrantPoints("u1", "k", 100, Source.ORDER))


async def test_reissue_lots_cannot_be_granted_directly(u1: Driver) -> None:
    with pytest.raises(InvalidInputError):
        await u1.grant(100, Source.REISSUE)


@pytest.mark.parametrize("user_id,key", [("", "k"), ("u1", ""), ("u1", " "), ("x" * 129, "k")])
async def test_a_command_without_a_user_or_an_idempotency_key_is_refused(
    ledger: Ledger, user_id: str, key: str
) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.grant.execute(GrantPoints(user_id, key, 100, Source.PROMOTION))
