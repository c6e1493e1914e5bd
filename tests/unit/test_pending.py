"""Pending points (rule 12): not spendable; their expiry counts from activation, explicit or at pending_until."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.domain.errors import (
    ExpiryOutOfRangeError,
    GrantNotPendingError,
    InsufficientPointsError,
    NotFoundError,
)
from app.domain.events import Allocation, Source
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def test_pending_points_are_not_spendable(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=7 * DAY)
    assert (granted.status, granted.account.balance, granted.account.pending) == ("PENDING", 0, 100)
    balance = await u1.balance()
    assert (balance.available, balance.pending) == (0, 100)
    with pytest.raises(InsufficientPointsError) as refused:
        await u1.use(1)
    assert refused.value.available == 0


async def test_pending_points_are_skipped_by_a_use_that_active_points_cover(u1: Driver) -> None:
    await u1.grant(100, Source.MANUAL, pending_for=7 * DAY)
    active = await u1.grant(50)
    used = await u1.use(50)
    assert used.allocations == (Allocation(active.grant_id, 50),)
    with pytest.raises(InsufficientPointsError):
        await u1.use(1)


async def test_an_activated_grant_is_spendable_and_expires_a_validity_after_activation(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=14 * DAY, expires_in=14 * DAY + 30 * DAY)
    assert granted.expires_at == u1.now() + 44 * DAY
    u1.ledger.advance(days=3)
    activated = await u1.activate(granted.grant_id)
    assert activated.expires_at == u1.now() + 30 * DAY
    assert (activated.account.balance, activated.account.pending) == (100, 0)
    assert (await u1.balance()).available == 100
    u1.ledger.advance(days=30)
    assert await u1.available() == 0
    assert (await u1.balance()).available == 0


async def test_a_pending_grant_with_the_default_expiry_gets_365_days_from_activation(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=10 * DAY)
    assert granted.expires_at == u1.now() + 10 * DAY + 365 * DAY
    u1.ledger.advance(days=2)
    activated = await u1.activate(granted.grant_id)
    assert activated.expires_at == u1.now() + 365 * DAY


async def test_a_pending_grant_activates_by_itself_at_pending_until(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=7 * DAY, expires_in=7 * DAY + 20 * DAY)
    u1.ledger.advance(days=7, microseconds=-1)
    assert (await u1.balance()).available == 0
    u1.ledger.advance(microseconds=1)
    balance = await u1.balance()
    assert (balance.available, balance.pending) == (100, 0)
    used = await u1.use(100)
    assert used.allocations == (Allocation(granted.grant_id, 100),)


async def test_a_self_activated_grant_expires_a_validity_after_pending_until(u1: Driver) -> None:
    await u1.grant(100, Source.ORDER, pending_for=7 * DAY, expires_in=7 * DAY + 20 * DAY)
    u1.ledger.advance(days=7 + 20, microseconds=-1)
    assert await u1.available() == 100
    u1.ledger.advance(microseconds=1)
    assert await u1.available() == 0
    assert (await u1.balance()).available == 0


async def test_the_expiry_range_of_a_pending_grant_counts_from_pending_until(u1: Driver) -> None:
    with pytest.raises(ExpiryOutOfRangeError):
        await u1.grant(100, pending_for=10 * DAY, expires_in=10 * DAY + timedelta(hours=23))
    with pytest.raises(ExpiryOutOfRangeError):
        await u1.grant(100, pending_for=10 * DAY, expires_in=10 * DAY + timedelta(days=5 * 365))
    granted = await u1.grant(100, pending_for=10 * DAY, expires_in=10 * DAY + timedelta(days=5 * 365 - 1))
    assert granted.status == "PENDING"


async def test_a_grant_whose_pending_until_has_passed_is_active_at_once(u1: Driver) -> None:
    granted = await u1.grant(100, pending_for=-DAY)
    assert (granted.status, granted.pending_until, granted.account.balance) == ("ACTIVE", None, 100)


async def test_activating_an_active_grant_is_refused(u1: Driver) -> None:
    granted = await u1.grant(100)
    with pytest.raises(GrantNotPendingError) as refused:
        await u1.activate(granted.grant_id)
    assert (refused.value.grant_id, refused.value.status) == (granted.grant_id, "ACTIVE")


async def test_activating_a_grant_twice_is_refused(u1: Driver) -> None:
    granted = await u1.grant(100, pending_for=3 * DAY)
    await u1.activate(granted.grant_id)
    with pytest.raises(GrantNotPendingError):
        await u1.activate(granted.grant_id)


async def test_activating_a_grant_after_its_pending_until_is_refused(u1: Driver) -> None:
    granted = await u1.grant(100, pending_for=3 * DAY)
    u1.ledger.advance(days=3)
    with pytest.raises(GrantNotPendingError):
        await u1.activate(granted.grant_id)


async def test_activating_a_cancelled_grant_is_refused(u1: Driver) -> None:
    granted = await u1.grant(100, pending_for=3 * DAY)
    await u1.cancel_grant(granted.grant_id)
    with pytest.raises(GrantNotPendingError) as refused:
        await u1.activate(granted.grant_id)
    assert refused.value.status == "CANCELLED"


async def test_activating_an_unknown_grant_is_not_found(u1: Driver) -> None:
    with pytest.raises(NotFoundError):
        await u1.activate("no-such-grant")
