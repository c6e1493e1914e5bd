"""Rebuilding the read models from the event store, and reconciling them with it.

Both replay the store's events in position order (``EventStore.read_all``, safe against commits that land late)
through the projections' own functions (:func:`lot_updates`, :func:`history_entry`), keeping each account's state in
memory: its lots, newest entries, version and how many entries it made. A million events of some hundred thousand
accounts fit in a few hundred megabytes.

- The history index is rebuilt into a new index while the entries stream in, and published (the alias swapped) when
  it is complete, so that the service answers from the old one meanwhile.
- The balance view is rebuilt account by account, each written whole and atomically, and only where the view does
  not hold a later version already (the live projection moved on): no account is ever seen empty or going back.
- Reconciling compares each account's replayed state with the balance view (version, lots, newest entries) and the
  history index (entries, newest version, sum of deltas), and lists the differences per account.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from app.application.projection import history_entry, lot_updates, touched_lots
from app.domain.events import RecordedEvent
from app.ports.event_store import EventStore
from app.ports.read_models import AccountSummary, AccountView, BalanceView, HistoryEntry, HistoryIndex, LotView

Progress = Callable[[int], None]
"""Told how many more events were read."""


def _quiet(_: int) -> None:
    pass


class RebuildableIndex(HistoryIndex, Protocol):
    """A history index that can be rebuilt behind the name it is read by."""

    async def rebuild_target(self) -> HistoryIndex:
        """A new, empty index that nobody reads yet."""
        ...

    async def publish(self, rebuilt: HistoryIndex) -> None:
        """Make ``rebuilt`` the index that is read, at once, and drop the one read before."""
        ...


@dataclass
class Replayed:
    """One account as the projections would hold it after all its stored events."""

    user_id: str
    keep_recent: int
    version: int = 0
    lots: dict[str, LotView] = field(default_factory=dict)
    recent: deque[HistoryEntry] = field(default_factory=deque)
    made: int = 0
    delta: int = 0
    newest_entry: int = 0

    def apply(self, recorded: RecordedEvent) -> HistoryEntry | None:
        event = recorded.event
        current = {g: self.lots[g] for g in touched_lots(event) if g in self.lots}
        self.lots.update((lot.grant_id, lot) for lot in lot_updates(event, current))
        self.version = recorded.version
        entry = history_entry(recorded)
        if entry is not None:
            if self.keep_recent:
                if len(self.recent) == self.keep_recent:
                    self.recent.pop()
                self.recent.appendleft(entry)
            self.made += 1
            self.delta += entry.delta
            self.newest_entry = entry.version
        return entry

    def view(self) -> AccountView:
        return AccountView(self.user_id, self.version, list(self.lots.values()), list(self.recent), self.made)


async def replay(
    store: EventStore,
    keep_recent: int,
    entries: Callable[[list[HistoryEntry]], Awaitable[None]] | None = None,
    progress: Progress = _quiet,
    batch: int = 5_000,
) -> dict[str, Replayed]:
    """Every account's state after all stored events; ``entries`` gets the history entries as they are made, in
    batches."""
    accounts: dict[str, Replayed] = {}
    position = 0
    while rows := await store.read_all(position, batch):
        made: list[HistoryEntry] = []
        for position, recorded in rows:  # noqa: B007 - position carries over to the next read
            account = accounts.get(recorded.user_id)
            if account is None:
                account = accounts[recorded.user_id] = Replayed(recorded.user_id, keep_recent)
            if recorded.version != account.version + 1:
                raise ValueError(f"{recorded.user_id}: version {recorded.version} follows {account.version}")
            entry = account.apply(recorded)
            if entry is not None:
                made.append(entry)
        if entries is not None and made:
            await entries(made)
        progress(len(rows))
    return accounts


async def rebuild_history(
    store: EventStore, index: RebuildableIndex, progress: Progress = _quiet, batch: int = 5_000
) -> int:
    """A new history index from the store, published when complete; then the events stored meanwhile, which the
    live projection may have written to the index it replaced, go into the published one (indexing twice changes
    nothing). Returns how many entries were written."""
    target = await index.rebuild_target()
    count = position = 0

    async def copy(into: HistoryIndex) -> None:
        nonlocal count, position
        while rows := await store.read_all(position, batch):
            entries = [entry for _, recorded in rows if (entry := history_entry(recorded)) is not None]
            if entries:
                await into.index(entries)
            count += len(entries)
            position = rows[-1][0]
            progress(len(rows))

    await copy(target)
    await index.publish(target)
    await copy(index)
    return count


async def rebuild_balances(
    store: EventStore, view: BalanceView, progress: Progress = _quiet, chunk: int = 500
) -> tuple[int, int]:
    """Every account of the store written whole into the balance view, where the view is not ahead. Returns the
    accounts replayed and those written."""
    accounts = await replay(store, view.keep_recent, progress=progress)
    written = 0
    replayed = list(accounts.values())
    for start in range(0, len(replayed), chunk):
        written += await view.replace_many([account.view() for account in replayed[start : start + chunk]])
    return len(replayed), written


@dataclass(frozen=True)
class Difference:
    user_id: str
    model: str
    """``balance`` (the balance view) or ``history`` (the history index)."""
    what: str


async def reconcile(
    store: EventStore,
    view: BalanceView,
    index: HistoryIndex,
    progress: Progress = _quiet,
    concurrency: int = 64,
) -> list[Difference]:
    """Every difference between the read models and what the event store says they should hold."""
    accounts = await replay(store, view.keep_recent, progress=progress)
    differences: list[Difference] = []
    users = sorted(accounts)
    for start in range(0, len(users), concurrency):
        chunk = users[start : start + concurrency]
        found = await asyncio.gather(*(_balance_differences(view, accounts[u]) for u in chunk))
        differences.extend(d for listed in found for d in listed)
    differences.extend(await _history_differences(index, accounts))
    return differences


async def _balance_differences(view: BalanceView, expected: Replayed) -> list[Difference]:
    user = expected.user_id
    recent = await view.recent(user)
    lots = {lot.grant_id: lot for lot in await view.lots(user)}
    found: list[Difference] = []
    if recent.version != expected.version:
        found.append(Difference(user, "balance", f"version {recent.version}, the store has {expected.version}"))
    if lots != expected.lots:
        wrong = sorted(g for g in set(lots) | set(expected.lots) if lots.get(g) != expected.lots.get(g))
        found.append(Difference(user, "balance", f"{len(wrong)} lots differ: {', '.join(wrong[:5])}"))
    if [e.entry_id for e in recent.entries] != [e.entry_id for e in expected.recent]:
        found.append(
            Difference(user, "balance", f"newest entries: {len(recent.entries)} held, {len(expected.recent)} made")
        )
    return found


async def _history_differences(index: HistoryIndex, accounts: dict[str, Replayed]) -> list[Difference]:
    found: list[Difference] = []
    seen: set[str] = set()
    after: str | None = None
    while summaries := await index.summaries(after, 1_000):
        for summary in summaries:
            seen.add(summary.user_id)
            expected = accounts.get(summary.user_id)
            if expected is None:
                found.append(Difference(summary.user_id, "history", "entries of an account the store does not have"))
                continue
            want = AccountSummary(summary.user_id, expected.made, expected.newest_entry, expected.delta)
            if summary != want:
                found.append(Difference(summary.user_id, "history", _summary_mismatch(summary, want)))
        after = summaries[-1].user_id
    for user, expected in accounts.items():
        if expected.made and user not in seen:
            found.append(Difference(user, "history", f"no entries held, {expected.made} made"))
    return found


def _summary_mismatch(held: AccountSummary, want: AccountSummary) -> str:
    parts = [
        f"{name} {getattr(held, name)} (store: {getattr(want, name)})"
        for name in ("entries", "max_version", "delta")
        if getattr(held, name) != getattr(want, name)
    ]
    return ", ".join(parts)
