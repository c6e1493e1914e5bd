"""The expiry batch (rule 11): due lots from the write model, in chunks, one transaction per account, re-runnable."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.application.commands.expiry import ExpirePoints
from app.domain.errors import InvalidInputError
from app.domain.events import Source
from tests.ledger import Ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def test_the_batch_expires_what_is_left_of_every_due_lot(u1: Driver) -> None:
    short = await u1.grant(100, expires_in=5 * DAY)
    long = await u1.grant(100, expires_in=50 * DAY)
    await u1.use(30)
    u1.ledger.advance(days=6)
    report = await u1.expire()
    assert (report.accounts, report.lots, report.points) == (1, 1, 70)
    lots = {lot.grant_id: lot for lot in (await u1.detail()).lots}
    assert (lots[short.grant_id].status, lots[short.grant_id].remaining, lots[short.grant_id].expired_amount) == (
        "EXPIRED",
        0,
        70,
    )
    assert (lots[long.grant_id].status, lots[long.grant_id].remaining) == ("ACTIVE", 100)
    assert await u1.available() == 100


async def test_a_lot_is_due_at_its_expiry_instant_and_not_before(u1: Driver) -> None:
    await u1.grant(100, expires_in=5 * DAY)
    u1.ledger.advance(days=5, microseconds=-1)
    assert (await u1.expire()).lots == 0
    u1.ledger.advance(microseconds=1)
    assert (await u1.expire()).points == 100


async def test_a_spent_lot_is_settled_with_nothing_to_expire(u1: Driver) -> None:
    granted = await u1.grant(100, expires_in=5 * DAY)
    await u1.use(100)
    u1.ledger.advance(days=6)
    report = await u1.expire()
    assert (report.lots, report.points) == (1, 0)
    lot = await u1.lot(granted.grant_id)
    assert (lot.status, lot.expired_amount) == ("EXPIRED", 0)


async def test_running_the_batch_again_expires_nothing_more(u1: Driver) -> None:
    await u1.grant(100, expires_in=5 * DAY)
    u1.ledger.advance(days=6)
    assert (await u1.expire()).points == 100
    version = (await u1.detail()).version
    again = await u1.expire()
    assert (again.accounts, again.lots, again.points) == (0, 0, 0)
    assert (await u1.detail()).version == version


async def test_the_batch_works_through_many_accounts_one_per_chunk(ledger: Ledger) -> None:
    users = [Driver(ledger, f"user-{n}") for n in range(7)]
    for n, user in enumerate(users):
        await user.grant(10 * (n + 1), expires_in=(n + 1) * DAY)
        await user.grant(5, expires_in=(n + 1) * DAY)
        await user.grant(1_000, expires_in=100 * DAY)
    ledger.advance(days=30)
    report = await users[0].expire(chunk_size=1)
    assert (report.accounts, report.lots, report.points) == (7, 14, sum(10 * (n + 1) + 5 for n in range(7)))
    for user in users:
        assert await user.available() == 1_000
    assert (await users[0].expire(chunk_size=1)).accounts == 0


async def test_the_batch_expires_due_lots_of_every_account_in_chunks_of_any_size(ledger: Ledger) -> None:
    users = [Driver(ledger, f"user-{n}") for n in range(5)]
    for user in users:
        await user.grant(10, expires_in=2 * DAY)
    ledger.advance(days=3)
    assert (await users[0].expire(chunk_size=2)).accounts == 5


async def test_the_batch_reads_due_lots_from_the_write_model_when_read_models_were_never_projected(
    ledger: Ledger,
) -> None:
    u1, u2 = Driver(ledger, "u1"), Driver(ledger, "u2")
    await u1.grant(100, expires_in=2 * DAY)
    await u2.grant(40, expires_in=3 * DAY)
    ledger.advance(days=4)
    assert await ledger.balances.version("u1") == 0  # nothing was ever projected
    report = await u1.expire(chunk_size=1)
    assert (report.accounts, report.points) == (2, 140)
    await ledger.project()
    assert (await ledger.services.balance.execute("u1")).available == 0
    assert (await ledger.services.balance.execute("u2")).available == 0


async def test_a_lot_activated_late_is_due_at_its_new_expiry(u1: Driver) -> None:
    granted = await u1.grant(100, Source.ORDER, pending_for=10 * DAY, expires_in=10 * DAY + 5 * DAY)
    u1.ledger.advance(days=2)
    await u1.activate(granted.grant_id)  # now expires on day 7, not day 15
    u1.ledger.advance(days=5)
    assert (await u1.expire()).points == 100


async def test_a_pending_lot_that_activated_by_itself_and_lapsed_is_expired(u1: Driver) -> None:
    await u1.grant(100, Source.ORDER, pending_for=2 * DAY, expires_in=2 * DAY + DAY)
    u1.ledger.advance(days=4)
    report = await u1.expire()
    assert (report.lots, report.points) == (1, 100)


async def test_a_cancelled_lot_is_never_expired(u1: Driver) -> None:
    granted = await u1.grant(100, expires_in=2 * DAY)
    await u1.cancel_grant(granted.grant_id)
    u1.ledger.advance(days=3)
    assert (await u1.expire()).lots == 0


async def test_a_reissued_lot_expires_with_the_default_expiry(u1: Driver) -> None:
    await u1.grant(100, expires_in=2 * DAY)
    used = await u1.use(100)
    u1.ledger.advance(days=3)
    await u1.expire()
    await u1.cancel_use(used.use_id)
    u1.ledger.advance(days=365)
    report = await u1.expire()
    assert (report.lots, report.points) == (1, 100)


@pytest.mark.parametrize("chunk_size", [0, 10_001])
async def test_a_chunk_size_out_of_range_is_refused(ledger: Ledger, chunk_size: int) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.expire.execute(ExpirePoints(chunk_size=chunk_size))
