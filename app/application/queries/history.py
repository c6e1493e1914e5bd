from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app.application.queries.pages import page_size
from app.domain.errors import InvalidInputError
from app.ports.read_models import EntryFilter, HistoryIndex, HistoryPage, Interval, Stats


class GetHistory:
    """An account's history from the history index (OpenSearch in the stack), newest first, cursor-paginated."""

    def __init__(self, index: HistoryIndex) -> None:
        self._index = index

    async def execute(self, user_id: str, first: int = 20, after: str | None = None) -> HistoryPage:
        try:
            return await self._index.history(user_id, page_size(first), after)
        except ValueError:
            raise InvalidInputError("after", "the cursor is not one this service gave out") from None


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
