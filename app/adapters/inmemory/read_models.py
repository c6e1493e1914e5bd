from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime

from app.adapters.cursors import decode_cursor, encode_cursor
from app.adapters.inmemory.versions import VersionWaits
from app.adapters.periods import bucket_bounds
from app.domain.account import LotStatus
from app.domain.events import Allocation
from app.ports.read_models import (
    AccountSummary,
    AccountView,
    EntryFilter,
    EntryKind,
    HistoryEntry,
    HistoryIndex,
    HistoryPage,
    Interval,
    LotView,
    ProjectionGapError,
    RecentEntries,
    Stats,
    StatsBucket,
)

# The views keep their records as plain tuples of strings, numbers and times, which the garbage collector stops
# walking after it has seen them once; as objects, a view of some ten thousand accounts made every full collection
# a pause of 100 ms and more. The records become LotView and HistoryEntry again when they are read.

LotRow = tuple[str, str, int, int, datetime, datetime, str, bool, datetime | None, str | None, str | None]
EntryRow = tuple[
    str, str, int, str, int, int, datetime, str | None, str | None, str | None, str | None, str | None,
    tuple[str | int, ...],
]  # fmt: skip


def lot_row(lot: LotView) -> LotRow:
    return (
        lot.grant_id, lot.source, lot.amount, lot.remaining, lot.granted_at, lot.expires_at, lot.status.value,
        lot.manual, lot.pending_until, lot.order_id, lot.reissued_from,
    )  # fmt: skip


def lot_view(row: LotRow) -> LotView:
    grant_id, source, amount, remaining, granted_at, expires_at, status, manual, pending, order_id, reissued = row
    return LotView(
        grant_id, source, amount, remaining, granted_at, expires_at, LotStatus(status), manual, pending, order_id,
        reissued,
    )  # fmt: skip


def entry_row(entry: HistoryEntry) -> EntryRow:
    return (
        entry.entry_id, entry.user_id, entry.version, entry.kind.value, entry.amount, entry.delta,
        entry.occurred_at, entry.source, entry.order_id, entry.grant_id, entry.use_id, entry.reason,
        tuple(part for a in entry.lots for part in (a.grant_id, a.amount)),  # flat: untracked in one pass
    )  # fmt: skip


def history_entry(row: EntryRow) -> HistoryEntry:
    (entry_id, user_id, version, kind, amount, delta, occurred_at, source, order_id, grant_id, use_id, reason,
     lots) = row  # fmt: skip
    return HistoryEntry(
        entry_id, user_id, version, EntryKind(kind), amount, delta, occurred_at, source, order_id, grant_id, use_id,
        reason, tuple(Allocation(str(g), int(a)) for g, a in zip(lots[::2], lots[1::2], strict=True)),
    )  # fmt: skip


class InMemoryBalanceView:
    def __init__(self, keep_recent: int = 100) -> None:
        self.keep_recent = keep_recent
        self._lots: dict[str, dict[str, LotRow]] = defaultdict(dict)
        self._versions: dict[str, int] = defaultdict(int)
        self._recent: dict[str, deque[EntryRow]] = {}
        self._made: dict[str, int] = defaultdict(int)  # entries ever recorded per account
        self._waits = VersionWaits()

    async def version(self, user_id: str) -> int:
        return self._versions.get(user_id, 0)

    async def wait_for_version(self, user_id: str, version: int, timeout: float) -> int:
        return await self._waits.wait(user_id, version, lambda: self._versions.get(user_id, 0), timeout)

    async def lots(self, user_id: str, grant_ids: Sequence[str] | None = None) -> list[LotView]:
        held = self._lots.get(user_id, {})
        if grant_ids is None:
            return [lot_view(row) for row in held.values()]
        return [lot_view(held[g]) for g in grant_ids if g in held]

    async def apply(
        self, user_id: str, version: int, lots: Sequence[LotView], entry: HistoryEntry | None = None
    ) -> bool:
        stored = self._versions.get(user_id, 0)
        if stored >= version:
            return False
        if stored != version - 1:
            raise ProjectionGapError(f"{user_id}: got version {version} while at {stored}")
        held = self._lots[user_id]
        for lot in lots:
            held[lot.grant_id] = lot_row(lot)
        if entry is not None:
            recent = self._recent.get(user_id)
            if recent is None:
                recent = self._recent[user_id] = deque(maxlen=self.keep_recent)
            recent.appendleft(entry_row(entry))
            self._made[user_id] += 1
        self._versions[user_id] = version
        self._waits.reached(user_id, version)
        return True

    async def read_many(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[int, list[LotView]]]:
        return [(await self.version(user_id), await self.lots(user_id, grant_ids)) for user_id, grant_ids in wanted]

    async def apply_many(
        self, items: Sequence[tuple[str, int, Sequence[LotView], HistoryEntry | None]]
    ) -> list[bool | Exception]:
        outcomes: list[bool | Exception] = []
        for user_id, version, lots, entry in items:
            try:
                outcomes.append(await self.apply(user_id, version, lots, entry))
            except ProjectionGapError as gap:
                outcomes.append(gap)
        return outcomes

    async def replace_many(self, accounts: Sequence[AccountView]) -> int:
        written = 0
        for account in accounts:
            if self._versions.get(account.user_id, 0) > account.version:
                continue
            self._lots[account.user_id] = {lot.grant_id: lot_row(lot) for lot in account.lots}
            self._recent[account.user_id] = deque((entry_row(e) for e in account.recent), maxlen=self.keep_recent)
            self._made[account.user_id] = account.made
            self._versions[account.user_id] = account.version
            self._waits.reached(account.user_id, account.version)
            written += 1
        return written

    async def recent(self, user_id: str) -> RecentEntries:
        rows = self._recent.get(user_id, ())
        return RecentEntries(
            self._versions.get(user_id, 0),
            [history_entry(row) for row in rows],
            self._made.get(user_id, 0) <= self.keep_recent,
        )


def matches(entry: HistoryEntry, where: EntryFilter) -> bool:
    return (
        (where.user_id is None or entry.user_id == where.user_id)
        and (not where.kinds or entry.kind in where.kinds)
        and (not where.sources or entry.source in where.sources)
        and (where.order_id is None or entry.order_id == where.order_id)
        and (where.occurred_from is None or entry.occurred_at >= where.occurred_from)
        and (where.occurred_to is None or entry.occurred_at < where.occurred_to)
        and (where.min_amount is None or entry.amount >= where.min_amount)
        and (where.max_amount is None or entry.amount <= where.max_amount)
    )


def _sort_key(entry: HistoryEntry) -> tuple[int, str, int]:
    return (int(entry.occurred_at.timestamp() * 1_000_000), entry.user_id, entry.version)


def _account_page(
    versions: Iterable[int], entry: Callable[[int], HistoryEntry], first: int, after: str | None
) -> HistoryPage:
    """An account's entries newest first, by version; a cursor is the version of its entry."""
    below = decode_cursor(after)[0] if after else None
    if below is not None and not isinstance(below, int):
        raise ValueError("malformed cursor")
    ordered = sorted((v for v in versions if below is None or v < below), reverse=True)
    return HistoryPage([(encode_cursor([v]), entry(v)) for v in ordered[:first]], has_next=len(ordered) > first)


class InMemoryHistoryIndex:
    """History entries in a dict; pages sorted newest first by (time, user, version)."""

    def __init__(self) -> None:
        self._entries: dict[str, EntryRow] = {}
        self._by_user: dict[str, dict[int, EntryRow]] = defaultdict(dict)
        self._versions: dict[str, int] = {}
        self._waits = VersionWaits()

    async def index(self, entries: Sequence[HistoryEntry]) -> None:
        for entry in entries:
            row = entry_row(entry)
            self._entries[entry.entry_id] = row
            self._by_user[entry.user_id][entry.version] = row
            if entry.version > self._versions.get(entry.user_id, 0):
                self._versions[entry.user_id] = entry.version
                self._waits.reached(entry.user_id, entry.version)

    async def version(self, user_id: str) -> int:
        return self._versions.get(user_id, 0)

    async def wait_for_version(self, user_id: str, version: int, timeout: float) -> int:
        return await self._waits.wait(user_id, version, lambda: self._versions.get(user_id, 0), timeout)

    async def rebuild_target(self) -> InMemoryHistoryIndex:
        return InMemoryHistoryIndex()

    async def publish(self, rebuilt: HistoryIndex) -> None:
        assert isinstance(rebuilt, InMemoryHistoryIndex)
        self._entries, self._by_user, self._versions = rebuilt._entries, rebuilt._by_user, rebuilt._versions

    async def summaries(self, after: str | None, limit: int) -> list[AccountSummary]:
        users = sorted(u for u, held in self._by_user.items() if held and (after is None or u > after))[:limit]
        summaries = []
        for user in users:
            rows = self._by_user[user].values()
            summaries.append(AccountSummary(user, len(rows), max(r[2] for r in rows), sum(r[5] for r in rows)))
        return summaries

    def _all(self) -> list[HistoryEntry]:
        return [history_entry(row) for row in self._entries.values()]

    async def history(self, user_id: str, first: int, after: str | None) -> HistoryPage:
        held = self._by_user.get(user_id, {})
        return _account_page(held.keys(), lambda v: history_entry(held[v]), first, after)

    def page(self, entries: Sequence[HistoryEntry], first: int, after: str | None) -> HistoryPage:
        by_version = {entry.version: entry for entry in entries}
        return _account_page(by_version.keys(), by_version.__getitem__, first, after)

    async def search(self, where: EntryFilter, first: int, after: str | None) -> HistoryPage:
        entries = sorted((e for e in self._all() if matches(e, where)), key=_sort_key, reverse=True)
        if after:
            mark = tuple(decode_cursor(after))
            if [type(part) for part in mark] != [int, str, int]:
                raise ValueError("malformed cursor")
            entries = [e for e in entries if _sort_key(e) < mark]
        return HistoryPage(
            [(encode_cursor(list(_sort_key(e))), e) for e in entries[:first]], has_next=len(entries) > first
        )

    async def stats(self, start: datetime, end: datetime, interval: Interval) -> Stats:
        """One pass over the entries in time order for all the buckets (a bucket at a time over every entry held
        the event loop for a second with a few thousand entries and 400 buckets)."""
        entries = sorted(self._all(), key=lambda e: e.occurred_at)
        result: list[StatsBucket] = []
        outstanding, at = 0, 0
        for lo, hi in bucket_bounds(start, end, interval):
            totals = dict.fromkeys(EntryKind, 0)
            while at < len(entries) and entries[at].occurred_at < hi:
                entry = entries[at]
                outstanding += entry.delta
                if entry.occurred_at >= lo:
                    totals[entry.kind] += entry.amount
                at += 1
            result.append(
                StatsBucket(
                    lo,
                    hi,
                    granted=totals[EntryKind.GRANTED],
                    used=totals[EntryKind.USED],
                    use_cancelled=totals[EntryKind.USE_CANCELLED],
                    grant_cancelled=totals[EntryKind.GRANT_CANCELLED],
                    expired=totals[EntryKind.EXPIRED],
                    clawed_back=totals[EntryKind.CLAWED_BACK],
                    outstanding=outstanding,
                )
            )
        return Stats(result)
