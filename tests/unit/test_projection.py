"""The projector: events in their wire form become read-model updates, and a redelivery changes nothing."""

from __future__ import annotations

import gc
from datetime import timedelta

import pytest

from app.adapters.inmemory.read_models import InMemoryBalanceView, InMemoryHistoryIndex
from app.application.projection import OutboxRelay, Projector, rebuild_read_models
from app.domain.events import RecordedEvent, Source
from app.ports.read_models import EntryFilter, ProjectionGapError
from tests.ledger import Ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)


async def some_history(ledger: Ledger) -> None:
    u1, u2 = Driver(ledger, "u1"), Driver(ledger, "u2")
    order = await u1.grant(300, Source.ORDER, order_id="o-1", pending_for=2 * DAY)
    await u1.grant(200, Source.MANUAL, expires_in=5 * DAY)
    await u2.grant(50)
    await u1.activate(order.grant_id)
    used = await u1.use(250)
    await u1.cancel_use(used.use_id, 100)
    await u1.clawback("o-1", 20)
    ledger.advance(days=6)
    await u1.expire()
    await u1.cancel_use(used.use_id)
    await u2.use(10)


async def picture(balances: InMemoryBalanceView, history: InMemoryHistoryIndex) -> object:
    users = ("u1", "u2")
    return (
        [sorted(await balances.lots(u), key=lambda lot: lot.grant_id) for u in users],
        [await balances.version(u) for u in users],
        (await history.search(EntryFilter(), 100, None)).entries,
    )


async def test_delivering_every_message_twice_changes_nothing(ledger: Ledger) -> None:
    await some_history(ledger)
    messages = await ledger.store.fetch(1_000)
    once = (InMemoryBalanceView(), InMemoryHistoryIndex())
    twice = (InMemoryBalanceView(), InMemoryHistoryIndex())
    for message in messages:
        await Projector(*once).project(message.event)
        await Projector(*twice).project(message.event)
        await Projector(*twice).project(message.event)
    assert await picture(*twice) == await picture(*once)


async def test_a_late_redelivery_of_an_old_message_changes_nothing(ledger: Ledger) -> None:
    await some_history(ledger)
    messages = await ledger.store.fetch(1_000)
    await ledger.project()
    before = await picture(ledger.balances, ledger.history)
    projector = ledger.container.projector()
    for message in messages[:5]:
        await projector.project(message.event)
    assert await picture(ledger.balances, ledger.history) == before


async def test_a_message_that_skips_a_version_is_refused(ledger: Ledger) -> None:
    u1 = Driver(ledger)
    await u1.grant(10)
    await u1.grant(10)
    first, second = await ledger.store.fetch(10)
    projector = ledger.container.projector()
    with pytest.raises(ProjectionGapError):
        await projector.project(second.event)
    await projector.project(first.event)
    await projector.project(second.event)
    assert (await ledger.services.balance.execute("u1")).available == 20


async def test_the_balance_view_agrees_with_the_write_model_after_projection(ledger: Ledger) -> None:
    await some_history(ledger)
    await ledger.project()
    for user_id in ("u1", "u2"):
        detail = await ledger.services.account.execute(user_id)
        balance = await ledger.services.balance.execute(user_id)
        assert (balance.available, balance.pending, balance.version) == (
            detail.available,
            detail.pending,
            detail.version,
        )
        view = {lot.grant_id: lot.remaining for lot in await ledger.balances.lots(user_id)}
        assert view == {lot.grant_id: lot.remaining for lot in detail.lots}


async def test_read_models_rebuilt_from_the_store_equal_the_projected_ones(ledger: Ledger) -> None:
    await some_history(ledger)
    await ledger.project()
    rebuilt = (InMemoryBalanceView(), InMemoryHistoryIndex())
    await rebuild_read_models(ledger.store, Projector(*rebuilt))
    assert await picture(*rebuilt) == await picture(ledger.balances, ledger.history)


async def test_the_in_memory_views_keep_nothing_that_the_garbage_collector_has_to_walk(ledger: Ledger) -> None:
    await some_history(ledger)
    await ledger.project()
    for _ in range(2):  # a tuple is untracked in the first collection that finds all it holds untracked
        gc.collect()
    rows = [*ledger.history._entries.values(), *(r for lots in ledger.balances._lots.values() for r in lots.values())]
    assert len(rows) > 10
    assert not any(gc.is_tracked(row) for row in rows)


class FailingOnce(Projector):
    """Fails on the message of one version, the first time only."""

    def __init__(self, inner: Projector, user_id: str, version: int) -> None:
        self.inner = inner
        self.fail_at: tuple[str, int] | None = (user_id, version)
        self.seen: list[tuple[str, int]] = []

    async def project(self, recorded: RecordedEvent) -> None:
        if (recorded.user_id, recorded.version) == self.fail_at:
            self.fail_at = None
            raise RuntimeError("broken once")
        self.seen.append((recorded.user_id, recorded.version))
        await self.inner.project(recorded)


async def test_the_relay_acks_what_it_handled_before_a_failure_and_reads_the_rest_again(ledger: Ledger) -> None:
    u1 = Driver(ledger, "u1")
    for amount in (10, 20, 30, 40):
        await u1.grant(amount)
    views = InMemoryBalanceView(), InMemoryHistoryIndex()
    projector = FailingOnce(Projector(*views), "u1", 3)
    relay = OutboxRelay(ledger.store, projector)

    with pytest.raises(RuntimeError, match="broken once"):
        await relay.drain()
    assert [m.event.version for m in await ledger.store.fetch(100)] == [3, 4]  # 1 and 2 were acknowledged

    assert await relay.drain() == 2
    assert projector.seen == [("u1", 1), ("u1", 2), ("u1", 3), ("u1", 4)]
    assert await ledger.store.fetch(100) == []
    assert await views[0].version("u1") == 4
