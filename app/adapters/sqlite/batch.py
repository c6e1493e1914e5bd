"""A whole group commit in one SQLite statement, on the writer's connection only.

The writer runs with the GIL held between its driver calls, and the sqlite3 driver lets go of the GIL for every
statement (and every row it steps). Each time it wants the GIL back it waits for the event loop to let go, up to
the 5 ms switch interval when the loop is busy. With a statement per table, a batch took about ten such waits:
at 1,000 commands/s a batch of 1.3 commands spent about 0.4 ms of its 1.2 ms waiting for the GIL, and its thread
0.4 ms of CPU, most of it handing the GIL back and forth.

So the writer inserts the batch's rows into a TEMP view, ``point_batch``, whose INSTEAD OF triggers write each row
into its table: an event with its outbox message, a key, a snapshot, an expiry set or dropped, an outbox row
deleted (an ack). The rows go in the order of the appends, so that an expiry set by one append and dropped by the
next ends dropped. The trigger of an event refuses it unless its version follows the account's last one, and a
row for an append without events checks the version it was decided at: an append whose account has moved on
aborts the statement (SQLite undoes the statement whole), as a key already taken does, and the store then writes
the batch again one append at a time to tell which one failed. In autocommit mode one INSERT is one transaction:
its COMMIT (and fsync) happens inside the same driver call.

The view and triggers are TEMP objects: they live on the writer's connection only and never reach the database
file, whose tables stay those of :mod:`app.adapters.sql.tables`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from app.adapters.sql.tables import AGGREGATE_TYPE

if TYPE_CHECKING:
    from app.adapters.sql.rows import CommitRows

EVENT, AT_VERSION, KEY, SNAPSHOT, EXPIRY, UNSCHEDULE, ACK = range(1, 8)

WIDTH = 8
"""Columns of ``point_batch``: the kind of row, then seven values whose meaning depends on it."""

MOVED_ON = "point_batch: the account has moved on"

_SCHEMA = f"""
CREATE TEMP VIEW point_batch (kind, id, user_id, version, type, at, data, message)
    AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;

CREATE TEMP TRIGGER point_batch_event INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {EVENT} BEGIN
    SELECT RAISE(ABORT, '{MOVED_ON}')
        WHERE NEW.version != 1 + coalesce((SELECT max(version) FROM point_events WHERE user_id = NEW.user_id), 0);
    INSERT INTO point_events (event_id, user_id, version, type, occurred_at, payload)
        VALUES (NEW.id, NEW.user_id, NEW.version, NEW.type, NEW.at, NEW.data);
    INSERT INTO point_event_outbox (id, aggregatetype, aggregateid, type, version, occurred_at, payload)
        VALUES (NEW.id, '{AGGREGATE_TYPE}', NEW.user_id, NEW.type, NEW.version, NEW.at, NEW.message);
END;

CREATE TEMP TRIGGER point_batch_at_version INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {AT_VERSION} BEGIN
    SELECT RAISE(ABORT, '{MOVED_ON}')
        WHERE NEW.version != coalesce((SELECT max(version) FROM point_events WHERE user_id = NEW.user_id), 0);
END;

CREATE TEMP TRIGGER point_batch_key INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {KEY} BEGIN
    INSERT INTO point_idempotency (user_id, key, fingerprint, result)
        VALUES (NEW.user_id, NEW.id, NEW.type, NEW.data);
END;

CREATE TEMP TRIGGER point_batch_snapshot INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {SNAPSHOT} BEGIN
    INSERT INTO point_snapshots (user_id, version, state) VALUES (NEW.user_id, NEW.version, NEW.data)
        ON CONFLICT (user_id) DO UPDATE SET version = excluded.version, state = excluded.state;
END;

CREATE TEMP TRIGGER point_batch_expiry INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {EXPIRY} BEGIN
    INSERT INTO point_lot_expiries (grant_id, user_id, expires_at) VALUES (NEW.id, NEW.user_id, NEW.at)
        ON CONFLICT (grant_id) DO UPDATE SET user_id = excluded.user_id, expires_at = excluded.expires_at;
END;

CREATE TEMP TRIGGER point_batch_unschedule INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {UNSCHEDULE} BEGIN
    DELETE FROM point_lot_expiries WHERE grant_id = NEW.id;
END;

CREATE TEMP TRIGGER point_batch_ack INSTEAD OF INSERT ON point_batch WHEN NEW.kind = {ACK} BEGIN
    DELETE FROM point_event_outbox WHERE position = NEW.version;
END;
"""


def batch_params(commits: Sequence[CommitRows], acks: Sequence[int]) -> list[Any]:
    """The ``point_batch`` rows of these appends and acks, flat: :data:`WIDTH` parameters a row."""
    params: list[Any] = []
    add = params.extend
    for rows in commits:
        if not rows.events:
            add((AT_VERSION, None, rows.user_id, rows.expected_version, None, None, None, None))
        for event, message in zip(rows.events, rows.outbox, strict=True):
            add(
                (
                    EVENT,
                    event["event_id"],
                    event["user_id"],
                    event["version"],
                    event["type"],
                    event["occurred_at"],
                    event["payload"],
                    message["payload"],
                )
            )
        if (key := rows.idempotency) is not None:
            add((KEY, key["key"], key["user_id"], None, key["fingerprint"], None, key["result"], None))
        if (snapshot := rows.snapshot) is not None:
            add((SNAPSHOT, None, snapshot["user_id"], snapshot["version"], None, None, snapshot["state"], None))
        for expiry in rows.expiries:
            add((EXPIRY, expiry["grant_id"], expiry["user_id"], None, None, expiry["expires_at"], None, None))
        for dropped in rows.unscheduled:
            add((UNSCHEDULE, dropped["grant_id"], None, None, None, None, None, None))
    for position in acks:
        add((ACK, None, None, position, None, None, None, None))
    return params


class BatchWriter:
    """Writes group commits through ``point_batch`` on ``connection`` (autocommit mode, as the store opens it)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        connection.executescript(_SCHEMA)
        self._connection = connection
        self._rows_per_statement = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // WIDTH
        self._texts: dict[int, str] = {}

    def write(self, commits: Sequence[CommitRows], acks: Sequence[int]) -> None:
        """All of it in one transaction, or nothing: raises :class:`sqlite3.IntegrityError` when an append's
        account has moved on (:data:`MOVED_ON`) or a row breaks a constraint, and any other
        :class:`sqlite3.Error` as it comes."""
        params = batch_params(commits, acks)
        if len(params) <= self._rows_per_statement * WIDTH:
            if params:
                self._connection.execute(self._text(len(params) // WIDTH), params)  # a transaction, COMMIT included
            return
        self._connection.execute("BEGIN IMMEDIATE")
        try:
            self._insert(params)
            self._connection.execute("COMMIT")
        except BaseException:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
            raise

    def add(self, commits: Sequence[CommitRows], acks: Sequence[int]) -> None:
        """The same rows, inside the transaction the caller has begun."""
        self._insert(batch_params(commits, acks))

    def _insert(self, params: list[Any]) -> None:
        step = self._rows_per_statement * WIDTH
        for start in range(0, len(params), step):
            chunk = params[start : start + step]
            self._connection.execute(self._text(len(chunk) // WIDTH), chunk)

    def _text(self, count: int) -> str:
        text = self._texts.get(count)
        if text is None:
            rows = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * count)
            text = self._texts[count] = f"INSERT INTO point_batch VALUES {rows}"
        return text
