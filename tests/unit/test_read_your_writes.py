"""Read-your-writes: a query given the version a command returned answers from a read model holding it, waiting a
bounded time for it, or else from the write model, and says which."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.application.queries.balances import GetBalance, GetExpiringPoints
from app.application.queries.consistency import ReadSource
from app.application.queries.history import GetHistory
from app.domain.errors import InvalidInputError
from app.domain.events import Source
from tests.ledger import Ledger
from tests.unit.support import Driver

WAIT = 0.05


def queries(ledger: Ledger, wait: float = WAIT) -> tuple[GetBalance, GetExpiringPoints, GetHistory]:
    return (
        GetBalance(ledger.balances, ledger.clock, ledger.store, wait),
        GetExpiringPoints(ledger.balances, ledger.clock, ledger.store, wait),
        GetHistory(ledger.history, ledger.balances, ledger.store, wait),
    )


async def test_a_read_model_behind_the_version_asked_for_is_answered_by_the_write_model(
    ledger: Ledger, u1: Driver
) -> None:
    balance, expiring, history = queries(ledger)
    granted = await u1.grant(100, Source.PROMOTION)
    used = await u1.use(30)
    assert used.account.version == 2
    # nothing projected yet: the read models know nothing of u1
    stale = await balance.execute("u1")
    assert (stale.available, stale.version, stale.source) == (0, 0, ReadSource.READ_MODEL)

    fresh = await balance.execute("u1", at_least_version=2)
    assert (fresh.available, fresh.pending, fresh.version, fresh.source) == (70, 0, 2, ReadSource.WRITE_MODEL)
    soon = await expiring.execute("u1", 400, at_least_version=2)
    assert (soon.total, soon.version, soon.source) == (70, 2, ReadSource.WRITE_MODEL)
    page = await history.execute("u1", 10, at_least_version=2)
    assert [e.version for _, e in page.entries] == [2, 1]
    assert (page.version, page.source) == (2, ReadSource.WRITE_MODEL)
    assert page.entries[-1][1].grant_id == granted.grant_id


async def test_a_read_model_that_has_the_version_answers_itself(ledger: Ledger, u1: Driver) -> None:
    balance, expiring, history = queries(ledger)
    await u1.grant(100)
    await ledger.project()
    read = await balance.execute("u1", at_least_version=1)
    assert (read.available, read.version, read.source) == (100, 1, ReadSource.READ_MODEL)
    assert (await expiring.execute("u1", 400, at_least_version=1)).source is ReadSource.READ_MODEL
    assert (await history.execute("u1", 10, at_least_version=1)).source is ReadSource.READ_MODEL


async def test_the_query_waits_for_a_read_model_that_catches_up_within_the_bound(ledger: Ledger, u1: Driver) -> None:
    balance, _, _ = queries(ledger, wait=5.0)
    await u1.grant(100)

    async def project_soon() -> None:
        await asyncio.sleep(0.02)
        await ledger.project()

    started = time.monotonic()
    read, _ = await asyncio.gather(balance.execute("u1", at_least_version=1), project_soon())
    assert (read.available, read.source) == (100, ReadSource.READ_MODEL)
    assert time.monotonic() - started < 1.0, "woken by the projection, not by the bound"


async def test_the_wait_is_bounded(ledger: Ledger, u1: Driver) -> None:
    balance, _, _ = queries(ledger, wait=0.1)
    await u1.grant(100)
    started = time.monotonic()
    read = await balance.execute("u1", at_least_version=1)
    assert 0.09 <= time.monotonic() - started < 1.0
    assert read.source is ReadSource.WRITE_MODEL


async def test_a_write_model_history_page_is_the_page_the_read_model_gives_later(ledger: Ledger, u1: Driver) -> None:
    _, _, history = queries(ledger, wait=0)
    grant = await u1.grant(100, Source.ORDER)
    use = await u1.use(40)
    await u1.cancel_use(use.use_id, 10)
    await u1.cancel_grant((await u1.grant(5)).grant_id)
    from_write_model = await history.execute("u1", 2, at_least_version=5)
    assert from_write_model.source is ReadSource.WRITE_MODEL
    await ledger.project()
    from_read_model = await history.execute("u1", 2, at_least_version=5)
    assert from_read_model.source is ReadSource.READ_MODEL
    assert from_write_model.entries == from_read_model.entries
    assert from_write_model.has_next and from_read_model.has_next
    cursor = from_write_model.entries[-1][0]
    rest = await history.execute("u1", 10, cursor)
    assert [e.version for _, e in rest.entries] == [3, 2, 1], "the write model's cursor pages on in the read model"
    assert rest.entries[-1][1].grant_id == grant.grant_id


async def test_a_negative_version_is_refused(ledger: Ledger) -> None:
    balance, _, _ = queries(ledger)
    with pytest.raises(InvalidInputError) as refused:
        await balance.execute("u1", at_least_version=-1)
    assert refused.value.field == "atLeastVersion"


async def test_a_version_the_account_never_reached_is_answered_by_the_write_model_with_its_version(
    ledger: Ledger, u1: Driver
) -> None:
    balance, _, _ = queries(ledger)
    await u1.grant(100)
    await ledger.project()
    read = await balance.execute("u1", at_least_version=9)
    assert (read.available, read.version, read.source) == (100, 1, ReadSource.WRITE_MODEL)
