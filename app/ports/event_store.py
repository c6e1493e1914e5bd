from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from app.domain.account import AccountState
from app.domain.events import RecordedEvent


class ConcurrencyError(Exception):
    """Another writer appended to the account first (or took the idempotency key): reload and retry."""


@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    key: str
    fingerprint: str
    """What the command was, so that the same key with another command can be refused (rule 9)."""
    result: bytes
    """The first result as JSON, returned again to every retry."""


@dataclass(frozen=True, slots=True)
class Commit:
    """Everything one command writes, in one transaction."""

    user_id: str
    expected_version: int
    events: Sequence[RecordedEvent]
    idempotency: IdempotencyRecord | None = None
    snapshot: AccountState | None = None
    """The account's state after ``events``, stored now and then so that loading stays cheap."""


@dataclass(frozen=True, slots=True)
class Stream:
    snapshot: AccountState | None
    events: Sequence[RecordedEvent]
    """Only the events after the snapshot."""


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    position: int
    """The row's place in the outbox, in commit order."""
    event: RecordedEvent


class EventStore(Protocol):
    """The write model: each account's event stream, the source of truth.

    ``append`` is transactional: the events, one outbox row per event, the idempotency record, the snapshot and
    the expiry schedule are written together or not at all. It raises :class:`ConcurrencyError` when the account's
    version is no longer ``expected_version`` or the idempotency key was taken meanwhile. Reads are consistent
    with every acknowledged append.
    """

    async def load(self, user_id: str) -> Stream: ...

    async def events_after(self, user_id: str, version: int) -> list[RecordedEvent]:
        """The account's events after ``version``, in order: how a cached account catches up."""
        ...

    async def append(self, commit: Commit) -> None: ...

    async def idempotency_record(self, user_id: str, key: str) -> IdempotencyRecord | None: ...

    async def due_accounts(self, now: datetime, limit: int) -> list[str]:
        """Accounts holding a lot whose expiry is at or before ``now`` and that has not been settled."""
        ...

    async def read_all(self, after: int, limit: int) -> list[tuple[int, RecordedEvent]]:
        """Every event after the global position ``after``, by position; for rebuilding read models.

        A reader that pages on from the last position it got never misses an event, whatever the writers do
        meanwhile: a position is never handed out behind one already returned. (Where several writers commit in
        another order than they took their positions, as on InnoDB, the store must wait for or leave out the
        transactions still in flight below the positions it returns.)"""
        ...


class Outbox(Protocol):
    """The outbox rows that the store writes with the events, for an in-process relay that delivers them in order.

    Only a store with one writer offers it (the embedded one); on MariaDB, Debezium reads the outbox from the binlog
    instead, which is in commit order. Delivery is at least once: a message is deleted only by ``ack``, after it was
    handled.
    """

    async def fetch(self, limit: int, after: int = 0) -> list[OutboxMessage]:
        """The first ``limit`` messages not yet acknowledged whose position is past ``after``, in commit order: a
        relay passes the last position it handled, so that it never reads a message twice while its ack is on
        the way. Positions grow in commit order (the store has one writer), so none can appear behind ``after``."""
        ...

    async def ack(self, positions: Sequence[int]) -> None:
        """Delete these messages. A fetch no longer returns them once this returns; the store may delete them
        from its tables with its next write rather than at once, so after a crash they may be delivered again."""
        ...

    async def wait(self, timeout: float) -> None:
        """Return when new rows may have been written, or after ``timeout`` seconds."""
        ...
