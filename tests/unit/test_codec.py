"""The wire form of events, and the store's text form of times, whichever way they are made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from app.adapters import wire
from app.adapters.sql.statements import sqlite_time
from app.domain import codec
from tests.ledger import Ledger
from tests.unit.test_projection import some_history


async def test_a_message_made_from_the_events_json_is_the_message_made_from_the_event(ledger: Ledger) -> None:
    await some_history(ledger)
    recorded = [event for _, event in await ledger.store.read_all(0, 1_000)]
    assert len({r.type for r in recorded}) >= 6  # grants, activation, uses, cancels, clawback, expiry

    for r in recorded:
        made = wire.encode_message(r, codec.dumps(r.event))
        assert made == wire.encode_message(r)
        assert wire.decode_message(made) == r


def test_sqlite_time_is_naive_utc_text_whatever_the_zone() -> None:
    at = datetime(2026, 3, 1, 9, 30, 5, 123, tzinfo=UTC)
    seoul = at.astimezone(timezone(timedelta(hours=9)))

    assert sqlite_time(at) == "2026-03-01 09:30:05.000123"
    assert sqlite_time(seoul) == sqlite_time(at)
    assert sqlite_time(at.replace(tzinfo=None)) == sqlite_time(at)
    assert sqlite_time(datetime(2026, 3, 1, tzinfo=UTC)) == "2026-03-01 00:00:00.000000"
