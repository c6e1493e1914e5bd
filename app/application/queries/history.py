from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.application.projection import history_entry
from app.application.queries.consistency import ReadSource, caught_up
from app.application.queries.pages import page_size
from app.domain.errors import InvalidInputError
from app.domain.events import RecordedEvent
from app.ports.event_store import EventStore
from app.ports.read_models import BalanceView, EntryFilter, HistoryEntry, HistoryIndex, HistoryPage, Interval, Stats


@dataclass(frozen=True)
class AccountHistory:
    """A page of an account's history, and which model of which version of the account it comes from."""

    entries: list[tuple[str, HistoryEntry]]
    """Each entry with its cursor."""
    has_next: bool
    version: int
    source: ReadSource = ReadSource.READ_MODEL


class GetHistory:
    """An account's history, newest first, cursor-paginated: its first pages from the newest entries the balance view
    keeps (Redis in the stack), older ones from the history index (OpenSearch in the stack), with the same cursors.
    Given ``at_least_version``, from a model that holds that version of the account (waiting up to ``read_wait``
    seconds for it), else made from the write model's events the way the projector makes them."""

    def __init__(self, index: HistoryIndex, balances: BalanceView, store: EventStore, read_wait: float = 0.3) -> None:
        self._index = index
        self._balances = balances
        self._store = store
        self._read_wait = read_wait

    async def execute(
        self, user_id: str, first: int = 20, after: str | None = None, at_least_version: int | None = None
    ) -> AccountHistory:
        size = page_size(first)
        try:
            if await caught_up(self._balances, user_id, at_least_version, self._read_wait) is not None:
                recent = await self._balances.recent(user_id)
                page = self._index.page(recent.entries, size, after)
                if recent.complete or len(page.entries) == size:  # older entries than these exist when incomplete
                    has_next = page.has_next or not recent.complete
                    return AccountHistory(page.entries, has_next, recent.version, ReadSource.READ_MODEL)
                version = await caught_up(self._index, user_id, at_least_version, self._read_wait)
            else:
                version = None
            if version is None:
                events = await self._store.events_after(user_id, 0)
                page = self._index.page(replayed_entries(events), size, after)
                version, source = (events[-1].version if events else 0), ReadSource.WRITE_MODEL
            else:
                page, source = await self._index.history(user_id, size, after), ReadSource.READ_MODEL
        except ValueError:
            raise InvalidInputError("after", "the cursor is not one this service gave out") from None
        return AccountHistory(page.entries, page.has_next, version, source)


def replayed_entries(events: Sequence[RecordedEvent]) -> list[HistoryEntry]:
    """An account's history entries made from its whole event stream, as the projector makes them."""
    return [entry for recorded in events if (entry := history_entry(recorded)) is not None]


class SearchEntries:
    """Admin search over every account's entries: by user, kind, source, order id, time and amount range."""

    def __init__(self, index: HistoryIndex) -> None:
        self._index = index

    async def execute(self, where: EntryFilter, first: int = 20, after: str | None = None) -> HistoryPage:
        if where.min_amount is not None and where.max_amount is not None and where.min_amount > where.max_amount:
            raise InvalidInputError("minAmount", "minAmount is larger than maxAmount")
        try:
            return await self._index.search(where, page_size(first), after)
        except ValueError:
            raise InvalidInputError("after", "the cursor is not one this service gave out") from None


MAX_BUCKETS = 400


@dataclass(frozen=True)
class StatsRequest:
    start: datetime
    end: datetime
    interval: Interval


class GetStats:
    """Per day or month: granted, used, cancelled, expired (breakage) and clawed-back points, and the outstanding
    liability at the end of each bucket (rule 15)."""

    def __init__(self, index: HistoryIndex) -> None:
        self._index = index

    async def execute(self, request: StatsRequest) -> Stats:
        if request.end <= request.start:
            raise InvalidInputError("to", "to must be after from")
        days = (request.end - request.start) / timedelta(days=1)
        buckets = days if request.interval is Interval.DAY else days / 28
        if buckets > MAX_BUCKETS:
            raise InvalidInputError("to", f"at most {MAX_BUCKETS} buckets per request")
        return await self._index.stats(request.start, request.end, request.interval)
