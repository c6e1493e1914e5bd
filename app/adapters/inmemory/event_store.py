from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from app.adapters.signals import WriteSignal
from app.domain.account import lot_expiry_changes
from app.domain.events import RecordedEvent
from app.domain.snapshot import decode_state, encode_state
from app.ports.event_store import Commit, ConcurrencyError, IdempotencyRecord, OutboxMessage, Stream


class InMemoryEventStore:
    """EventStore and Outbox in one process's memory; each append is atomic because it never awaits midway."""

    def __init__(self) -> None:
        self._streams: dict[str, list[RecordedEvent]] = {}
        self._snapshots: dict[str, bytes] = {}
        self._keys: dict[tuple[str, str], IdempotencyRecord] = {}
        self._schedule: dict[str, tuple[str, datetime]] = {}
        self._log: list[RecordedEvent] = []
        self._outbox: dict[int, OutboxMessage] = {}
        self._written = WriteSignal()

    async def load(self, user_id: str) -> Stream:
        events = self._streams.get(user_id, [])
        raw = self._snapshots.get(user_id)
        if raw is None:
            return Stream(None, list(events))
        snapshot = decode_state(raw)
        return Stream(snapshot, events[snapshot.version :])

    async def events_after(self, user_id: str, version: int) -> list[RecordedEvent]:
        return self._streams.get(user_id, [])[version:]

    async def append(self, commit: Commit) -> None:
        stream = self._streams.setdefault(commit.user_id, [])
        if len(stream) != commit.expected_version:
            raise ConcurrencyError(f"{commit.user_id} is at {len(stream)}, not {commit.expected_version}")
        key = commit.idempotency.key if commit.idempotency else None
        if key is not None and (commit.user_id, key) in self._keys:
            raise ConcurrencyError(f"idempotency key {key} was taken meanwhile")
        for recorded in commit.events:
            stream.append(recorded)
            self._log.append(recorded)
            position = len(self._log)
            self._outbox[position] = OutboxMessage(position, recorded)
        if commit.idempotency is not None:
            self._keys[(commit.user_id, commit.idempotency.key)] = commit.idempotency
        if commit.snapshot is not None:
            self._snapshots[commit.user_id] = encode_state(commit.snapshot)
        for grant_id, expires_at in lot_expiry_changes(r.event for r in commit.events):
            if expires_at is None:
                self._schedule.pop(grant_id, None)
            else:
                self._schedule[grant_id] = (commit.user_id, expires_at)
        self._written.set()

    async def idempotency_record(self, user_id: str, key: str) -> IdempotencyRecord | None:
        return self._keys.get((user_id, key))

    async def due_accounts(self, now: datetime, limit: int) -> list[str]:
        due = sorted((at, user) for user, at in self._schedule.values() if at <= now)
        users: list[str] = []
        for _at, user in due:
            if user not in users:
                users.append(user)
            if len(users) == limit:
                break
        return users

    async def read_all(self, after: int, limit: int) -> list[tuple[int, RecordedEvent]]:
        return [(after + i + 1, r) for i, r in enumerate(self._log[after : after + limit])]

    async def fetch(self, limit: int, after: int = 0) -> list[OutboxMessage]:
        return [self._outbox[p] for p in sorted(self._outbox) if p > after][:limit]

    async def ack(self, positions: Sequence[int]) -> None:
        for position in positions:
            self._outbox.pop(position, None)

    async def wait(self, timeout: float) -> None:
        await self._written.wait(timeout)
