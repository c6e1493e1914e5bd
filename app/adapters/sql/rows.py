"""The rows one append writes, as statement parameters, the same for every SQL store."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.adapters.sql.tables import AGGREGATE_TYPE
from app.adapters.wire import encode_message
from app.domain import codec
from app.domain.account import lot_expiry_changes
from app.domain.snapshot import encode_state
from app.ports.event_store import Commit


@dataclass(frozen=True)
class CommitRows:
    """What one append writes, as statement parameters (prepared on the caller's side, not the writer's)."""

    user_id: str
    expected_version: int
    events: list[dict[str, Any]]
    outbox: list[dict[str, Any]]
    idempotency: dict[str, Any] | None
    snapshot: dict[str, Any] | None
    expiries: list[dict[str, Any]]
    unscheduled: list[dict[str, Any]]


def commit_rows(commit: Commit, time: Callable[[datetime], Any]) -> CommitRows:
    """The rows of ``commit``; ``time`` turns a datetime into the dialect's parameter (text for SQLite)."""
    events: list[dict[str, Any]] = []
    outbox: list[dict[str, Any]] = []
    for recorded in commit.events:
        occurred_at = time(recorded.event.occurred_at)
        data = codec.dumps(recorded.event)
        events.append(
            {
                "event_id": recorded.event_id,
                "user_id": recorded.user_id,
                "version": recorded.version,
                "type": recorded.type,
                "occurred_at": occurred_at,
                "payload": data.decode(),
            }
        )
        outbox.append(
            {
                "id": recorded.event_id,
                "aggregatetype": AGGREGATE_TYPE,
                "aggregateid": recorded.user_id,
                "type": recorded.type,
                "version": recorded.version,
                "occurred_at": occurred_at,
                "payload": encode_message(recorded, data).decode(),
            }
        )
    expiries: list[dict[str, Any]] = []
    unscheduled: list[dict[str, Any]] = []
    for grant_id, expires_at in lot_expiry_changes(r.event for r in commit.events):
        if expires_at is None:
            unscheduled.append({"grant_id": grant_id})
        else:
            expiries.append({"grant_id": grant_id, "user_id": commit.user_id, "expires_at": time(expires_at)})
    key = commit.idempotency
    snapshot = commit.snapshot
    return CommitRows(
        user_id=commit.user_id,
        expected_version=commit.expected_version,
        events=events,
        outbox=outbox,
        idempotency=(
            None
            if key is None
            else {
                "user_id": commit.user_id,
                "key": key.key,
                "fingerprint": key.fingerprint,
                "result": key.result.decode(),
            }
        ),
        snapshot=(
            None
            if snapshot is None
            else {"user_id": commit.user_id, "version": snapshot.version, "state": encode_state(snapshot).decode()}
        ),
        expiries=expiries,
        unscheduled=unscheduled,
    )
