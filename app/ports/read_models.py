from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from app.domain.account import LotStatus, status_as_of
from app.domain.events import Allocation


class ProjectionGapError(Exception):
    """An event arrived before the one that precedes it in its account's stream."""


@dataclass(frozen=True, slots=True)
class LotView:
    """One lot as the balance view keeps it (Redis: one hash field per lot)."""

    grant_id: str
    source: str
    amount: int
    remaining: int
    granted_at: datetime
    expires_at: datetime
    status: LotStatus
    manual: bool
    pending_until: datetime | None = None
    order_id: str | None = None
    reissued_from: str | None = None

    def status_at(self, now: datetime) -> LotStatus:
        return status_as_of(self.status, self.expires_at, self.pending_until, now)


class AccountVersions(Protocol):
    """Which version of each account a read model holds, for reads that must see a given write (read-your-writes).

    A read model applies an account's events in version order, so holding version N means every change up to N
    is in it. ``version`` is 0 for an account it has never seen."""

    async def version(self, user_id: str) -> int: ...

    async def wait_for_version(self, user_id: str, version: int, timeout: float) -> int:
        """The version held, as soon as it is at least ``version`` (at once when it is already), or else, after
        ``timeout`` seconds, the version held then, which is lower. A timeout is not an error; nothing is raised for
        it. A read model that cannot be told of its updates polls within the bound."""
        ...


@dataclass(frozen=True, slots=True)
class AccountView:
    """All that the balance view holds of one account, as a rebuild writes it whole."""

    user_id: str
    version: int
    lots: list[LotView]
    recent: list[HistoryEntry]
    """Newest first, at most the view's ``keep_recent``."""
    made: int
    """How many history entries the account has made in all."""


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """What the history index holds of one account, in sums, for reconciling it with the event store."""

    user_id: str
    entries: int
    max_version: int
    delta: int
    """The sum of the entries' deltas: the points the account holds, pending included."""


class BalanceView(AccountVersions, Protocol):
    """Per-account lots and newest history entries, kept by the balance projection; balances are computed from the
    lots as of the asking moment.

    ``apply`` is atomic and guarded by the account's version: it writes only when the stored version is
    ``version - 1``, returns False when ``version`` was applied already (a redelivery), and raises
    :class:`ProjectionGapError` when an earlier version is missing. ``version`` is the last version applied. With
    the lots it records the event's history ``entry`` (if it makes one) among the account's newest entries, of which
    it keeps :attr:`keep_recent`, so that the first pages of an account's history need no search index.
    """

    keep_recent: int

    async def lots(self, user_id: str, grant_ids: Sequence[str] | None = None) -> list[LotView]: ...

    async def apply(
        self, user_id: str, version: int, lots: Sequence[LotView], entry: HistoryEntry | None = None
    ) -> bool: ...

    async def read_many(self, wanted: Sequence[tuple[str, Sequence[str]]]) -> list[tuple[int, list[LotView]]]:
        """For each ``(user_id, grant_ids)``, the account's version and those of its lots that it holds, read
        together for many accounts (one round trip in Redis): how a projector reads a batch's accounts."""
        ...

    async def apply_many(
        self, items: Sequence[tuple[str, int, Sequence[LotView], HistoryEntry | None]]
    ) -> list[bool | Exception]:
        """``apply`` for each ``(user_id, version, lots, entry)`` in order, each atomic on its own and sent together;
        an item's :class:`ProjectionGapError` is returned in its place and does not stop the others."""
        ...

    async def recent(self, user_id: str) -> RecentEntries:
        """The account's newest entries, newest first, read together with its version."""
        ...

    async def replace_many(self, accounts: Sequence[AccountView]) -> int:
        """Write each account whole (its lots, newest entries and version), atomically per account, unless the view
        holds a later version of it already (the live projection moved on meanwhile): how a rebuild writes without
        a moment of empty balances. Returns how many accounts were written."""
        ...


class EntryKind(StrEnum):
    GRANTED = "GRANTED"
    ACTIVATED = "ACTIVATED"
    USED = "USED"
    USE_CANCELLED = "USE_CANCELLED"
    GRANT_CANCELLED = "GRANT_CANCELLED"
    EXPIRED = "EXPIRED"
    CLAWED_BACK = "CLAWED_BACK"


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One change to an account (OpenSearch: one document, its id the event id)."""

    entry_id: str
    user_id: str
    version: int
    kind: EntryKind
    amount: int
    """The size of the change, always >= 0."""
    delta: int
    """Its effect on the points the account holds (pending included): + for grants and cancels of uses."""
    occurred_at: datetime
    source: str | None = None
    order_id: str | None = None
    grant_id: str | None = None
    use_id: str | None = None
    reason: str | None = None
    lots: tuple[Allocation, ...] = ()
    """Which lots gave (use, clawback) or got (cancel: restored and reissued lots) how much."""


@dataclass(frozen=True, slots=True)
class RecentEntries:
    version: int
    """The account's version in the view when these were read."""
    entries: list[HistoryEntry]
    """Newest first (by version), at most the view's ``keep_recent``."""
    complete: bool
    """True when these are all of the account's entries (it never made more than the view keeps)."""


@dataclass(frozen=True, slots=True)
class HistoryPage:
    entries: list[tuple[str, HistoryEntry]]
    """Each entry with its cursor."""
    has_next: bool


@dataclass(frozen=True, slots=True)
class EntryFilter:
    user_id: str | None = None
    kinds: tuple[EntryKind, ...] = ()
    sources: tuple[str, ...] = ()
    order_id: str | None = None
    occurred_from: datetime | None = None
    occurred_to: datetime | None = None
    """Exclusive."""
    min_amount: int | None = None
    max_amount: int | None = None


class Interval(StrEnum):
    DAY = "DAY"
    MONTH = "MONTH"


@dataclass(frozen=True, slots=True)
class StatsBucket:
    start: datetime
    end: datetime
    granted: int = 0
    used: int = 0
    use_cancelled: int = 0
    grant_cancelled: int = 0
    expired: int = 0
    clawed_back: int = 0
    outstanding: int = 0
    """Liability at the bucket's end: points granted and not yet used, cancelled, clawed back or expired."""


@dataclass(frozen=True, slots=True)
class Stats:
    buckets: list[StatsBucket] = field(default_factory=list)


class HistoryIndex(AccountVersions, Protocol):
    """Every history entry, searchable. ``index`` is idempotent (an entry's id is its event's id).

    Pages are newest first; cursors are opaque strings that only the same index understands, and a malformed one
    raises ValueError. An account's ``version`` here is that of the newest entry indexed for it (an event that
    makes no entry, such as the expiry of a lot with nothing left, does not advance it).
    """

    def page(self, entries: Sequence[HistoryEntry], first: int, after: str | None) -> HistoryPage:
        """A history page of one account made from ``entries`` (all of that account's entries, in any order),
        exactly as ``history`` would answer if the index held just these: the same order and the same cursors, so
        that a client can page on in the index from a page made here (from the write model). No I/O."""
        ...

    async def index(self, entries: Sequence[HistoryEntry]) -> None: ...

    async def history(self, user_id: str, first: int, after: str | None) -> HistoryPage: ...

    async def search(self, where: EntryFilter, first: int, after: str | None) -> HistoryPage: ...

    async def stats(self, start: datetime, end: datetime, interval: Interval) -> Stats: ...

    async def summaries(self, after: str | None, limit: int) -> list[AccountSummary]:
        """Per account, by user id, the accounts after ``after``: how many entries, their newest version and the sum
        of their deltas."""
        ...
