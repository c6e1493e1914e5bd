"""The SQLite store's one-statement group commit (``point_batch``) writes what the plain statements write, in the
appends' order, and refuses a batch whole when one of its appends is stale."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, cast

import pytest

from app.adapters.sql.rows import CommitRows, commit_rows
from app.adapters.sql.statements import SQLITE, Statements, sqlite_time
from app.adapters.sqlite.batch import MOVED_ON, BatchWriter
from app.adapters.sqlite.event_store import create_schema, sqlite_connect, write_commit
from tests.contract.test_event_store import DAY, T0, Writer

TABLES = ["point_events", "point_event_outbox", "point_idempotency", "point_snapshots", "point_lot_expiries"]


def writer(user_id: str) -> Writer:
    return Writer(cast(Any, None), user_id)  # only deciding and pending_commit: no store needed


def decided(who: Writer, key: str | None = None, snapshot: bool = False) -> CommitRows:
    rows = commit_rows(who.pending_commit(key, snapshot), sqlite_time)
    who.account.mark_committed()
    return rows


def database(path: Path) -> sqlite3.Connection:
    create_schema(str(path))
    return sqlite_connect(str(path))


def contents(connection: sqlite3.Connection) -> dict[str, list[Any]]:
    return {table: connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES}


def one_by_one(connection: sqlite3.Connection, commits: list[CommitRows], acks: list[int]) -> None:
    sql = Statements.for_dialect(SQLITE)
    connection.execute("BEGIN IMMEDIATE")
    for rows in commits:
        assert write_commit(connection, sql, rows) is None
    for position in acks:
        connection.execute("DELETE FROM point_event_outbox WHERE position = ?", (position,))
    connection.execute("COMMIT")


def two_batches() -> tuple[list[CommitRows], list[CommitRows]]:
    u1, u2, u3 = writer("u1"), writer("u2"), writer("u3")
    u1.decide_grant(100, expires_at=T0 + 30 * DAY)
    first = [decided(u1, key="k1")]
    u2.decide_grant(50)
    first.append(decided(u2))

    second: list[CommitRows] = []
    u2.account.use(use_id="use-1", amount=20, now=T0)
    second.append(decided(u2, key="k2", snapshot=True))
    cancelled = u1.decide_grant(10, expires_at=T0 + 5 * DAY)  # u1-grant-3 (ids count events too)
    second.append(decided(u1))  # schedules the lot's expiry...
    u1.account.cancel_grant(grant_id=cancelled, now=T0)
    second.append(decided(u1))  # ...and the next append of the same batch drops it
    second.append(decided(u3, key="k-refused"))  # no events: only the key, at version 0
    u3.decide_grant(5)
    u3.account.use(use_id="use-2", amount=5, now=T0)
    second.append(decided(u3))
    return first, second


def test_a_batch_writes_what_the_plain_statements_write(tmp_path: Path) -> None:
    first, second = two_batches()
    batched, plain = database(tmp_path / "batched.db"), database(tmp_path / "plain.db")
    writer = BatchWriter(batched)

    writer.write(first, [])
    one_by_one(plain, first, [])
    writer.write(second, [1, 2])
    one_by_one(plain, second, [1, 2])

    assert contents(batched) == contents(plain)
    assert [row[0] for row in contents(batched)["point_lot_expiries"]] == ["u1-grant-1", "u2-grant-1", "u3-grant-1"]
    assert len(contents(batched)["point_events"]) == 7
    assert [row[0] for row in contents(batched)["point_event_outbox"]] == list(range(3, 8))


def test_a_stale_append_refuses_the_whole_batch(tmp_path: Path) -> None:
    first, second = two_batches()
    connection = database(tmp_path / "points.db")
    writer = BatchWriter(connection)
    writer.write(first, [])
    stale = second[0]  # u2's use, decided at version 1
    writer.write([stale], [])
    before = contents(connection)

    with pytest.raises(sqlite3.IntegrityError, match=MOVED_ON):
        writer.write([*second[1:3], stale], [1])  # the same use again: u2 is at version 2 now
    assert contents(connection) == before
    with pytest.raises(sqlite3.IntegrityError, match=MOVED_ON):
        writer.write([CommitRows("u1", 0, [], [], None, None, [], [])], [])  # no events, but u1 is at 1
    assert contents(connection) == before
    assert not connection.in_transaction


def test_a_batch_longer_than_one_statement_is_still_one_transaction(tmp_path: Path) -> None:
    first, second = two_batches()
    connection = database(tmp_path / "points.db")
    writer = BatchWriter(connection)
    writer._rows_per_statement = 2  # every append of the test takes one or two rows
    writer.write(first, [])
    before = contents(connection)

    with pytest.raises(sqlite3.IntegrityError, match=MOVED_ON):
        writer.write([*second, second[-1]], [])  # the last one again: stale
    assert contents(connection) == before
    assert not connection.in_transaction

    writer.write(second, [1])
    assert len(contents(connection)["point_events"]) == 7
