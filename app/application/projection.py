"""The projector: turns each event, in its wire form, into read-model updates.

Whoever delivers the events (the embedded outbox relay, or a Kafka consumer fed by Debezium) decodes them and calls
:meth:`Projector.project`. Delivery may repeat a message: the balance view skips a version it has applied, and a
history entry's id is its event's id, so a repeat changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from functools import partial

from app.domain.account import LotStatus
from app.domain.events import (
    Allocation,
    DomainEvent,
    GrantActivated,
    GrantCancelled,
    PointsClawedBack,
    PointsExpired,
    PointsGranted,
    PointsUsed,
    RecordedEvent,
    Source,
    UseCancelled,
)
from app.ports.event_store import EventStore, Outbox
from app.ports.read_models import (
    BalanceView,
    EntryKind,
    HistoryEntry,
    HistoryIndex,
    LotView,
    ProjectionGapError,
)

log = logging.getLogger(__name__)


def touched_lots(event: DomainEvent) -> list[str]:
    match event:
        case PointsGranted() | GrantActivated() | GrantCancelled() | PointsExpired():
            return [event.grant_id]
        case PointsUsed():
            return [a.grant_id for a in event.allocations]
        case UseCancelled():
            return [a.grant_id for a in event.restored]
        case PointsClawedBack():
            return [a.grant_id for a in event.taken]


def _adjust(lots: dict[str, LotView], allocations: Sequence[Allocation], sign: int) -> list[LotView]:
    return [replace(lots[a.grant_id], remaining=lots[a.grant_id].remaining + sign * a.amount) for a in allocations]


def lot_updates(event: DomainEvent, lots: dict[str, LotView]) -> list[LotView]:
    """The new values of the lots ``event`` changes, given their current values."""
    match event:
        case PointsGranted():
            return [
                LotView(
                    grant_id=event.grant_id,
                    source=event.source.value,
                    amount=event.amount,
                    remaining=event.amount,
                    granted_at=event.occurred_at,
                    expires_at=event.expires_at,
                    status=LotStatus.PENDING if event.pending_until else LotStatus.ACTIVE,
                    manual=event.source is Source.MANUAL,
                    pending_until=event.pending_until,
                    order_id=event.order_id,
                )
            ]
        case GrantActivated():
            return [replace(lots[event.grant_id], status=LotStatus.ACTIVE, expires_at=event.expires_at)]
        case PointsUsed():
            return _adjust(lots, event.allocations, -1)
        case UseCancelled():
            return _adjust(lots, event.restored, +1) + [
                LotView(
                    grant_id=r.grant_id,
                    source=Source.REISSUE.value,
                    amount=r.amount,
                    remaining=r.amount,
                    granted_at=event.occurred_at,
                    expires_at=r.expires_at,
                    status=LotStatus.ACTIVE,
                    manual=r.manual,
                    reissued_from=r.from_grant_id,
                )
                for r in event.reissued
            ]
        case GrantCancelled():
            return [replace(lots[event.grant_id], status=LotStatus.CANCELLED, remaining=0)]
        case PointsExpired():
            return [replace(lots[event.grant_id], status=LotStatus.EXPIRED, remaining=0)]
        case PointsClawedBack():
            return _adjust(lots, event.taken, -1)


def history_entry(recorded: RecordedEvent) -> HistoryEntry | None:
    """The history entry of an event, from the event alone (so that the history projection reads no other model);
    None for an expiry of a lot that had nothing left (no change)."""
    event = recorded.event
    entry = partial(
        HistoryEntry,
        entry_id=recorded.event_id,
        user_id=recorded.user_id,
        version=recorded.version,
        occurred_at=event.occurred_at,
    )

    def source_of(source: Source | None) -> str | None:
        return source.value if source is not None else None

    match event:
        case PointsGranted():
            return entry(
                kind=EntryKind.GRANTED,
                amount=event.amount,
                delta=event.amount,
                source=event.source.value,
                order_id=event.order_id,
                grant_id=event.grant_id,
                reason=event.reason,
            )
        case GrantActivated():
            return entry(
                kind=EntryKind.ACTIVATED,
                amount=event.amount,
                delta=0,
                source=source_of(event.source),
                grant_id=event.grant_id,
            )
        case PointsUsed():
            return entry(
                kind=EntryKind.USED,
                amount=event.amount,
                delta=-event.amount,
                order_id=event.order_id,
                use_id=event.use_id,
                reason=event.reason,
                lots=event.allocations,
            )
        case UseCancelled():
            return entry(
                kind=EntryKind.USE_CANCELLED,
                amount=event.amount,
                delta=event.amount,
                use_id=event.use_id,
                reason=event.reason,
                lots=event.restored + tuple(Allocation(r.grant_id, r.amount) for r in event.reissued),
            )
        case GrantCancelled():
            return entry(
                kind=EntryKind.GRANT_CANCELLED,
                amount=event.amount,
                delta=-event.amount,
                source=source_of(event.source),
                grant_id=event.grant_id,
                reason=event.reason,
            )
        case PointsExpired():
            if event.amount == 0:
                return None
            return entry(
                occurred_at=event.expired_at,  # when the points lapsed, not when the batch noticed (rule 15)
                kind=EntryKind.EXPIRED,
                amount=event.amount,
                delta=-event.amount,
                source=source_of(event.source),
                grant_id=event.grant_id,
            )
        case PointsClawedBack():
            taken = sum(a.amount for a in event.taken)
            return entry(
                kind=EntryKind.CLAWED_BACK,
                amount=taken,
                delta=-taken,
                order_id=event.order_id,
                reason=event.reason,
                lots=event.taken,
            )


class BalanceProjection:
    """Keeps the balance view: each account's lots and newest entries, guarded by the view's version of the
    account. An event at or below that version is a redelivery and changes nothing; one past the next raises
    :class:`ProjectionGapError`."""

    def __init__(self, balances: BalanceView) -> None:
        self._balances = balances

    async def applied_version(self, user_id: str) -> int:
        return await self._balances.version(user_id)

    async def project(self, recorded: RecordedEvent) -> None:
        event = recorded.event
        applied = await self._balances.version(recorded.user_id)
        if applied >= recorded.version:
            return
        if applied != recorded.version - 1:
            raise ProjectionGapError(f"{recorded.user_id}: got version {recorded.version} while at {applied}")
        current = {lot.grant_id: lot for lot in await self._balances.lots(recorded.user_id, touched_lots(event))}
        await self._balances.apply(
            recorded.user_id, recorded.version, lot_updates(event, current), history_entry(recorded)
        )

    async def project_batch(self, batch: Sequence[RecordedEvent], store: EventStore) -> int:
        """Apply a batch (in delivery order: each account's events in version order) with one read of the touched
        lots per account and one guarded write per event, sent together. A gap before an event is healed with the
        missing events from ``store``. Returns how many events were applied (redeliveries are skipped)."""
        by_user: dict[str, list[RecordedEvent]] = {}
        for recorded in batch:
            by_user.setdefault(recorded.user_id, []).append(recorded)
        users = list(by_user)
        touched = [sorted({g for r in by_user[u] for g in touched_lots(r.event)}) for u in users]
        held = await self._balances.read_many(list(zip(users, touched, strict=True)))
        items: list[tuple[str, int, list[LotView], HistoryEntry | None]] = []
        for user, (applied, lots_held) in zip(users, held, strict=True):
            lots = {lot.grant_id: lot for lot in lots_held}
            for recorded in by_user[user]:
                if recorded.version <= applied:
                    continue
                chain = [recorded]
                if recorded.version != applied + 1:
                    missing = await store.events_after(user, applied)
                    chain = [m for m in missing if m.version <= recorded.version]
                    log.warning("%s: gap before version %d healed from the store", user, recorded.version)
                for event in chain:
                    if event.version != applied + 1:  # the store lacks it too: not ours to invent
                        raise ProjectionGapError(f"{user}: version {event.version} follows {applied}")
                    unread = [g for g in touched_lots(event.event) if g not in lots]
                    if unread and event is not recorded:  # a healed event: its lots were not read with the batch
                        lots.update((lot.grant_id, lot) for lot in await self._balances.lots(user, unread))
                    current = {g: lots[g] for g in touched_lots(event.event) if g in lots}
                    updates = lot_updates(event.event, current)
                    lots.update((lot.grant_id, lot) for lot in updates)
                    items.append((user, event.version, updates, history_entry(event)))
                    applied = event.version
        for outcome in await self._balances.apply_many(items):
            if isinstance(outcome, Exception):
                raise outcome
        return len(items)


class HistoryProjection:
    """Keeps the history index. An entry's id is its event's id, so indexing again changes nothing and events
    may come in any order: no guard is needed beyond the index's own idempotence."""

    def __init__(self, history: HistoryIndex) -> None:
        self._history = history

    async def project_many(self, recorded: Sequence[RecordedEvent]) -> int:
        entries = [entry for r in recorded if (entry := history_entry(r)) is not None]
        if entries:
            await self._history.index(entries)
        return len(entries)


class Projector:
    """Both projections, one event at a time, as the embedded relay and each stack API process drive them: the
    history entry first, then the balance view, so that a delivery cut short between the two is redone whole."""

    def __init__(self, balances: BalanceView, history: HistoryIndex) -> None:
        self.balance = BalanceProjection(balances)
        self.history = HistoryProjection(history)

    async def applied_version(self, user_id: str) -> int:
        return await self.balance.applied_version(user_id)

    async def project(self, recorded: RecordedEvent) -> None:
        await self.history.project_many([recorded])
        await self.balance.project(recorded)


class OutboxRelay:
    """The embedded delivery: reads the outbox in order, hands each message to the projector, then deletes it.

    The same projector code is fed by Kafka in the full stack; here no broker sits between them. The relay reads
    on from the last position it handled, so a message whose ack the store has not yet written is not read again.
    """

    def __init__(self, outbox: Outbox, projector: Projector, batch: int = 500) -> None:
        self._outbox = outbox
        self._projector = projector
        self._batch = batch
        self._after = 0

    async def drain(self) -> int:
        """Project everything in the outbox now; returns how many messages were handled."""
        handled = 0
        while True:
            messages = await self._outbox.fetch(self._batch, self._after)
            done: list[int] = []
            try:
                for message in messages:
                    await self._projector.project(message.event)
                    done.append(message.position)
            finally:  # what was handled before a failure is acknowledged; the rest is read again
                if done:
                    self._after = done[-1]
                    await self._outbox.ack(done)
                    handled += len(done)
            if len(messages) < self._batch:
                return handled

    async def run(self, stop: asyncio.Event, poll_seconds: float = 0.5, gather_seconds: float = 0.005) -> None:
        """Drains the outbox whenever the store says it wrote, or every ``poll_seconds``. After a wake it lets
        ``gather_seconds`` pass first, so that the commits of those milliseconds are read and acknowledged in one
        go: at a steady 1,000 commands/s nearly every commit holds one command, and a read of the outbox per
        commit cost the event loop more than projecting the events themselves."""
        while not stop.is_set():
            try:
                if await self.drain() == 0:
                    await self._outbox.wait(poll_seconds)
                    await asyncio.sleep(gather_seconds)
            except Exception:  # a broken message must not stop the relay for everyone; it is retried
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(poll_seconds)


async def project_healing(projector: Projector, store: EventStore, recorded: RecordedEvent) -> int:
    """Project ``recorded``; when events of its account are missing before it (a delivery that lost or skipped
    them), read them from the event store and project them first. Returns how many events were read to heal."""
    try:
        await projector.project(recorded)
        return 0
    except ProjectionGapError:
        pass
    healed = 0
    for missing in await store.events_after(recorded.user_id, await projector.applied_version(recorded.user_id)):
        if missing.version > recorded.version:
            break
        await projector.project(missing)
        healed += 1
    log.warning(
        "%s: a gap before version %d, healed with %d events from the store", recorded.user_id, recorded.version, healed
    )
    return healed


class EmbeddedDelivery:
    """The embedded profile's way from the write model to the read models: rebuild them in memory from the store at
    start, then follow the outbox with the relay."""

    def __init__(self, store: EventStore, projector: Projector, relay: OutboxRelay) -> None:
        self._store = store
        self._projector = projector
        self._relay = relay

    async def prepare(self) -> None:
        rebuilt = await rebuild_read_models(self._store, self._projector)
        log.info("read models rebuilt from %d stored events", rebuilt)

    async def run(self, stop: asyncio.Event) -> None:
        await self._relay.run(stop)


async def rebuild_read_models(store: EventStore, projector: Projector, batch: int = 1000) -> int:
    """Feed every stored event to the projector, in commit order: how the embedded read models start."""
    position = count = 0
    while rows := await store.read_all(position, batch):
        for position, recorded in rows:  # noqa: B007 - position carries over to the next read
            await projector.project(recorded)
            count += 1
    return count
