"""An account's history: its first pages from the newest entries the balance view keeps, older pages from the
history index, the same cursors throughout."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from app.adapters.inmemory.read_models import InMemoryHistoryIndex
from app.application.queries.consistency import ReadSource
from app.application.queries.history import GetHistory
from app.domain.events import Source
from app.ports.errors import ReadModelUnavailableError
from app.ports.read_models import HistoryEntry, HistoryPage
from tests.ledger import Ledger
from tests.unit.support import Driver


class CountingIndex(InMemoryHistoryIndex):
    """The in-memory index, counting the pages it was asked for; it can be made to be down."""

    def __init__(self, inner: InMemoryHistoryIndex) -> None:
        super().__init__()
        self.inner = inner
        self.asked = 0
        self.down = False

    def page(self, entries: Sequence[HistoryEntry], first: int, after: str | None) -> HistoryPage:
        return self.inner.page(entries, first, after)

    async def version(self, user_id: str) -> int:
        return await self.inner.version(user_id)

    async def history(self, user_id: str, first: int, after: str | None) -> HistoryPage:
        self.asked += 1
        if self.down:
            raise ReadModelUnavailableError("the history index")
        return await self.inner.history(user_id, first, after)


async def long_account(ledger: Ledger, u1: Driver, grants: int) -> None:
    for _ in range(grants):
        await u1.grant(1, Source.PROMOTION)
        ledger.advance(seconds=1)
    await ledger.project()


async def test_paging_through_a_long_history_gives_every_entry_once_the_first_pages_without_the_index(
    ledger: Ledger, u1: Driver
) -> None:
    keep = ledger.balances.keep_recent
    await long_account(ledger, u1, keep + 30)
    index = CountingIndex(ledger.history)
    history = GetHistory(index, ledger.balances, ledger.store)

    seen: list[str] = []
    after: str | None = None
    while True:
        page = await history.execute("u1", 20, after)
        seen += [entry.entry_id for _, entry in page.entries]
        if not page.has_next:
            break
        after = page.entries[-1][0]

    expected = await ledger.history.history("u1", 200, None)
    assert seen == [entry.entry_id for _, entry in expected.entries]
    assert len(seen) == keep + 30
    assert index.asked == 2, "the pages past the newest 100 entries: 100-119 and 120-129"


async def test_the_first_pages_answer_while_the_index_is_down_and_older_ones_say_it_is_unavailable(
    ledger: Ledger, u1: Driver
) -> None:
    await long_account(ledger, u1, ledger.balances.keep_recent + 5)
    index = CountingIndex(ledger.history)
    index.down = True
    history = GetHistory(index, ledger.balances, ledger.store)

    first = await history.execute("u1", 50)
    assert (len(first.entries), first.has_next, first.source) == (50, True, ReadSource.READ_MODEL)
    second = await history.execute("u1", 50, first.entries[-1][0])
    assert len(second.entries) == 50 and second.has_next
    with pytest.raises(ReadModelUnavailableError):
        await history.execute("u1", 50, second.entries[-1][0])


async def test_a_short_account_is_answered_whole_by_the_balance_view(ledger: Ledger, u1: Driver) -> None:
    await long_account(ledger, u1, 7)
    index = CountingIndex(ledger.history)
    page = await GetHistory(index, ledger.balances, ledger.store).execute("u1", 20)
    assert (len(page.entries), page.has_next, page.version, index.asked) == (7, False, 7, 0)
