"""Rebuilding the read models from the event store, and reconciling them with it (on the in-memory adapters; the
stack's suite runs the same on Redis and OpenSearch)."""

from __future__ import annotations

from dataclasses import replace

from app.adapters.inmemory.read_models import InMemoryBalanceView, InMemoryHistoryIndex
from app.application.rebuild import rebuild_balances, rebuild_history, reconcile
from app.domain.events import Source
from app.ports.read_models import AccountView, EntryFilter
from tests.ledger import Ledger
from tests.unit.support import Driver
from tests.unit.test_projection import some_history


async def test_read_models_kept_by_the_projector_reconcile_with_no_difference(ledger: Ledger) -> None:
    await some_history(ledger)
    await ledger.project()

    assert await reconcile(ledger.store, ledger.balances, ledger.history) == []


async def test_reconcile_names_each_account_whose_views_differ_from_the_store(ledger: Ledger) -> None:
    await some_history(ledger)
    u9 = Driver(ledger, "u9")
    await u9.grant(70, Source.PROMOTION)
    await ledger.project()
    lots = await ledger.balances.lots("u9")
    recent = await ledger.balances.recent("u9")
    wrong = [replace(lots[0], remaining=69)]
    await ledger.balances.replace_many([AccountView("u9", recent.version, wrong, recent.entries, 1)])
    rebuilt_elsewhere = InMemoryHistoryIndex()
    await ledger.history.publish(rebuilt_elsewhere)  # every entry gone

    differences = await reconcile(ledger.store, ledger.balances, ledger.history)

    assert {(d.user_id, d.model) for d in differences if d.model == "balance"} == {("u9", "balance")}
    assert {d.user_id for d in differences if d.model == "history"} == {"u1", "u2", "u9"}


async def test_rebuilt_views_answer_as_the_projected_ones_did(ledger: Ledger) -> None:
    await some_history(ledger)
    await ledger.project()
    balances, history = InMemoryBalanceView(), InMemoryHistoryIndex()

    accounts, written = await rebuild_balances(ledger.store, balances)
    entries = await rebuild_history(ledger.store, history)

    assert (accounts, written) == (2, 2)
    assert entries == len((await ledger.history.search(EntryFilter(), 1000, None)).entries)
    assert await reconcile(ledger.store, balances, history) == []
    for user in ("u1", "u2"):
        assert await balances.recent(user) == await ledger.balances.recent(user)
        assert await history.history(user, 100, None) == await ledger.history.history(user, 100, None)


async def test_a_rebuild_never_takes_an_account_back_from_a_later_version(ledger: Ledger, u1: Driver) -> None:
    await u1.grant(10, Source.PROMOTION)
    await ledger.project()
    stale = await ledger.balances.recent("u1")
    await u1.grant(20, Source.PROMOTION)
    await ledger.project()

    written = await ledger.balances.replace_many([AccountView("u1", stale.version, [], stale.entries, 1)])

    assert written == 0
    assert (await ledger.balances.recent("u1")).version == 2
