"""The stack's write model: MariaDB (MySQL-compatible) through SQLAlchemy 2's async engine and aiomysql.

The tables are those of :mod:`app.adapters.sql.tables` (created by the Alembic migrations in
:mod:`app.adapters.mysql.migrations`). One append is one InnoDB transaction: the events, their outbox rows (deleted
again before the commit: Debezium reads them from the binlog, so the table never grows), the idempotency record, the
snapshot and the expiry schedule. ``UNIQUE (user_id, version)`` is the optimistic check: two processes that decided
on the same version cannot both commit, so each process may keep its own cache of accounts.

SQLAlchemy's engine owns the pool (connections made, checked, dropped when broken); the statements are compiled once
for the MySQL dialect (:mod:`app.adapters.sql.statements`) and run on the pooled aiomysql connection itself, which
saves SQLAlchemy's execution layer per statement, as the SQLite store does. Connections are in autocommit mode: a
read is one statement and holds no snapshot open; an append checks the account's version, then sends its whole
transaction, BEGIN to COMMIT, as one multi-statement query (two round trips instead of eight: on two cores every
round trip's send, wake-up and parse cost the event loop about as much as the statement cost the server).

Failures become the ports' errors: a duplicate key, a deadlock or a lock wait timeout is a
:class:`~app.ports.event_store.ConcurrencyError` (the command runner reloads and decides again); a server that is
down or a connection that is lost is a :class:`~app.ports.errors.StoreUnavailableError`. Reads and the taking of a
connection are retried with backoff first (tenacity), which is safe. An append whose connection broke while its
COMMIT was on the way has an unknown outcome: the store asks the database whether the append's first event is there
and answers accordingly; when it cannot tell, it raises ``StoreUnavailableError`` and the client's retry with the
same idempotency key finds the first result, so the command is never applied twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import pymysql
import sqlalchemy.exc
from pymysql.constants import CLIENT
from sqlalchemy.dialects.mysql import pymysql as mysql_pymysql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tenacity import AsyncRetrying, retry_if_exception, retry_if_exception_type, stop_after_delay, wait_exponential

from app.adapters.sql.metrics import BATCH_APPENDS, COMMIT_SECONDS
from app.adapters.sql.rows import CommitRows, commit_rows
from app.adapters.sql.statements import Statement, Statements
from app.adapters.sql.tables import AGGREGATE_TYPE
from app.domain import codec
from app.domain.events import RecordedEvent
from app.domain.snapshot import decode_state
from app.ports.errors import StoreUnavailableError
from app.ports.event_store import Commit, ConcurrencyError, IdempotencyRecord, Stream

log = logging.getLogger(__name__)

T = TypeVar("T")

MYSQL = mysql_pymysql.dialect(paramstyle="pyformat")
"""aiomysql takes pymysql's ``%(name)s`` parameters."""

RETRY_SECONDS = 3.0
"""How long a read (or the taking of a connection) is retried while the server does not answer, before the caller
gets ``StoreUnavailableError``."""

DUPLICATE_KEY = 1062
CONFLICTS = {1205, 1213}  # lock wait timeout, deadlock: the transaction was rolled back; decide again
GAP_RECHECK_SECONDS = 0.005
DELETE_OUTBOX = "DELETE FROM point_event_outbox WHERE id IN ({})"
CONNECT_ARGS: dict[str, Any] = {
    "autocommit": True,
    "charset": "utf8mb4",
    "client_flag": CLIENT.MULTI_STATEMENTS | CLIENT.FOUND_ROWS,
}
"""aiomysql's connection options: autocommit (a read holds no snapshot open; an append begins its own transaction),
and several statements in one query, which an append's writes are (see ``_write``); FOUND_ROWS is the flag the
dialect sets by itself."""


def mysql_time(at: datetime) -> datetime:
    """``DATETIME(6)`` holds naive UTC."""
    return at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC)


class _Lost(Exception):
    """The connection failed or could not be made; ``cause`` is the driver's error."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause
        super().__init__(str(cause))


def _retries(retry: Any) -> AsyncRetrying:
    """tenacity's loop, with backoff, for up to :data:`RETRY_SECONDS`. The first attempt of a read or an append
    runs before and without it: its machinery (checks of the callables, the attempt's state) cost about 0.3 ms of
    CPU per command, a quarter of what the use case costs in all (measured)."""
    return AsyncRetrying(
        retry=retry, stop=stop_after_delay(RETRY_SECONDS), wait=wait_exponential(multiplier=0.05, max=0.5), reraise=True
    )


def _is_conflict(error: BaseException) -> bool:
    if isinstance(error, pymysql.err.IntegrityError):
        return bool(error.args and error.args[0] == DUPLICATE_KEY)
    return isinstance(error, pymysql.err.OperationalError) and bool(error.args and error.args[0] in CONFLICTS)


def _is_lost(error: BaseException) -> bool:
    """The server is gone or the connection broke (as opposed to a statement the server refused)."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return error.connection_invalidated or (error.orig is not None and _is_lost(error.orig))
    if isinstance(error, pymysql.err.OperationalError):
        return not (error.args and error.args[0] in CONFLICTS)
    return isinstance(error, pymysql.err.InterfaceError | ConnectionError | OSError | asyncio.TimeoutError)


def _decode(type_name: str, payload: str) -> Any:
    return codec.event_from_data(type_name, codec.loads(payload))


class MySqlEventStore:
    """EventStore on MariaDB/MySQL. No Outbox: Debezium reads the outbox rows from the binlog."""

    def __init__(self, engine: AsyncEngine, aggregate_type: str = AGGREGATE_TYPE) -> None:
        self._engine = engine
        self._aggregate_type = aggregate_type
        self._sql = Statements.for_dialect(MYSQL)
        self._read_all_locked = self._sql.select_all.sql + " LOCK IN SHARE MODE"

    @classmethod
    def open(
        cls, url: str, pool_size: int = 32, connect_timeout: float = 2.0, aggregate_type: str = AGGREGATE_TYPE
    ) -> MySqlEventStore:
        """A store on ``url`` (``mysql+aiomysql://user:password@host:port/database``); connections are made when
        first needed."""
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=RETRY_SECONDS,
            pool_recycle=3600,
            pool_reset_on_return=None,  # every use ends its own transaction (autocommit, or COMMIT/ROLLBACK)
            connect_args={**CONNECT_ARGS, "connect_timeout": connect_timeout},
        )
        return cls(engine, aggregate_type)

    async def close(self) -> None:
        await self._engine.dispose()

    # -- connections -----------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _driver(self) -> AsyncIterator[Any]:
        """A pooled aiomysql connection. A connection that broke is invalidated (the pool makes a new one), and
        the failure comes out as :class:`_Lost`."""
        try:
            connection: AsyncConnection = await self._engine.connect()
        except Exception as error:
            if _is_lost(error) or isinstance(error, sqlalchemy.exc.TimeoutError):
                raise _Lost(error) from error
            raise
        try:
            raw = await connection.get_raw_connection()
            yield raw.driver_connection
        except Exception as error:
            if _is_lost(error):
                await connection.invalidate()
                raise _Lost(error) from error
            raise
        finally:
            await connection.close()

    async def _retrying(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read`` again while the connection fails, for up to :data:`RETRY_SECONDS` after the first failure."""
        try:
            with contextlib.suppress(_Lost):
                return await read()
            async for attempt in _retries(retry_if_exception_type(_Lost)):
                with attempt:
                    return await read()
        except _Lost as lost:
            raise StoreUnavailableError(str(lost.cause)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _all(self, statement: Statement, **values: Any) -> list[Any]:
        async def read() -> list[Any]:
            async with self._driver() as driver, driver.cursor() as cursor:
                await cursor.execute(statement.sql, statement.params(**values))
                return list(await cursor.fetchall())

        return await self._retrying(read)

    # -- EventStore ------------------------------------------------------------------------------------------

    async def load(self, user_id: str) -> Stream:
        rows = await self._all(self._sql.select_snapshot, user_id=user_id)
        snapshot = decode_state(rows[0][1]) if rows else None
        return Stream(snapshot, await self.events_after(user_id, snapshot.version if snapshot else 0))

    async def events_after(self, user_id: str, version: int) -> list[RecordedEvent]:
        return [
            RecordedEvent(event_id, user_id, v, _decode(type_name, payload))
            for event_id, v, type_name, payload in await self._all(
                self._sql.select_stream, user_id=user_id, after=version
            )
        ]

    async def idempotency_record(self, user_id: str, key: str) -> IdempotencyRecord | None:
        rows = await self._all(self._sql.select_idempotency, user_id=user_id, key=key)
        return IdempotencyRecord(key, rows[0][0], rows[0][1].encode()) if rows else None

    async def due_accounts(self, now: datetime, limit: int) -> list[str]:
        return [row[0] for row in await self._all(self._sql.select_due, now=mysql_time(now), limit=limit)]

    async def read_all(self, after: int, limit: int) -> list[tuple[int, RecordedEvent]]:
        """Positions are handed out at insert and transactions commit in another order, so a plain read past
        ``after`` could return position 12 while 11 is still to commit, and a reader paging on from 12 would never
        see 11. The read is a locking one (``LOCK IN SHARE MODE``, at READ COMMITTED so that it takes no gap locks):
        it waits for every uncommitted row it meets to commit or roll back. A position missing from the page is
        looked up once more a moment later, for a row whose position was taken but not yet inserted when the scan
        passed."""

        async def read() -> list[Any]:
            async with self._driver() as driver, driver.cursor() as cursor:
                await cursor.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                await driver.begin()
                try:
                    await cursor.execute(self._read_all_locked, {"after": after, "limit": limit})
                    rows = list(await cursor.fetchall())
                    gaps = _gaps(after, [row[0] for row in rows])
                    if gaps and len(gaps) < 1000:
                        await asyncio.sleep(GAP_RECHECK_SECONDS)
                        listed = ", ".join(str(int(position)) for position in gaps)
                        await cursor.execute(
                            self._sql.select_all.sql.replace(
                                "WHERE point_events.position > %(after)s", f"WHERE point_events.position IN ({listed})"
                            ),
                            {"limit": limit},
                        )
                        rows = sorted(rows + list(await cursor.fetchall()))
                    await driver.commit()
                except BaseException:
                    await driver.rollback()
                    raise
                return rows

        return [
            (position, RecordedEvent(event_id, user_id, version, _decode(type_name, payload)))
            for position, event_id, user_id, version, type_name, payload in await self._retrying(read)
        ]

    async def append(self, commit: Commit) -> None:
        rows = commit_rows(commit, mysql_time)
        if self._aggregate_type != AGGREGATE_TYPE:
            for row in rows.outbox:
                row["aggregatetype"] = self._aggregate_type
        started = False

        async def write() -> None:
            nonlocal started
            async with self._driver() as driver:
                started = True
                await self._write(driver, rows)

        try:
            try:
                await write()
            except _Lost:
                if started:
                    raise
                # again only while nothing of it reached the server: a connection that could not be made
                unsent = retry_if_exception(lambda error: isinstance(error, _Lost) and not started)
                async for attempt in _retries(unsent):
                    with attempt:
                        await write()
        except _Lost as lost:
            if not started or not rows.events:  # nothing was sent, or nothing that could have committed
                raise StoreUnavailableError(str(lost.cause)) from None
            await self._settle_unknown(rows, lost)

    async def _write(self, driver: Any, rows: CommitRows) -> None:
        """The version check (a plain read: a version once written stays, so what it finds holds at the commit
        too), then the whole transaction in one round trip: BEGIN, the writes and COMMIT as one multi-statement
        query. The server runs them in order and stops at the first that fails, leaving the transaction open for
        the ROLLBACK here. A round trip costs the event loop a send, a wake-up and a parse, each statement of its
        own about as much as the statement itself."""
        async with driver.cursor() as cursor:
            if rows.expected_version > 0:
                await cursor.execute(
                    self._sql.version_exists.sql, {"user_id": rows.user_id, "version": rows.expected_version}
                )
                if not await cursor.fetchall():
                    raise ConcurrencyError(f"{rows.user_id} is not at version {rows.expected_version}")
            try:
                transaction = append_transaction(cursor, self._sql, rows)
                with COMMIT_SECONDS.time():
                    await cursor.execute(transaction)
                    while await cursor.nextset():  # each statement's result, the first refusal raised
                        pass
                BATCH_APPENDS.observe(1)
            except BaseException as error:
                if not _is_lost(error):
                    await driver.rollback()  # the connection goes back to the pool with no transaction open
                if _is_conflict(error):
                    raise ConcurrencyError(f"{rows.user_id}: {error}") from None
                raise

    async def _settle_unknown(self, rows: CommitRows, lost: _Lost) -> None:
        """The connection broke during the append: did it commit? Its first event answers."""
        log.warning("connection lost during an append for %s; asking the database whether it committed", rows.user_id)
        first = rows.events[0]
        found = await self._all(self._sql.version_exists, user_id=rows.user_id, version=first["version"])
        if found:
            stored = await self._all(self._sql.select_stream, user_id=rows.user_id, after=first["version"] - 1)
            if stored and stored[0][0] == first["event_id"]:
                return  # it did commit
            raise ConcurrencyError(f"{rows.user_id}: version {first['version']} was taken by another append")
        raise StoreUnavailableError(f"the append was not written ({lost.cause})")


def append_transaction(cursor: Any, sql: Statements, rows: CommitRows) -> str:
    """An append's writes as one multi-statement query, from BEGIN to COMMIT, each statement with its values in it
    (``mogrify``: the driver's own escaping, as for any query; it has no server-side parameters). The outbox rows
    are deleted as soon as they are inserted: the binlog keeps them for Debezium."""
    statements = ["BEGIN"]
    statements += [cursor.mogrify(sql.insert_event.sql, row) for row in rows.events]
    statements += [cursor.mogrify(sql.insert_outbox.sql, row) for row in rows.outbox]
    if rows.outbox:
        ids = [row["id"] for row in rows.outbox]
        statements.append(cursor.mogrify(DELETE_OUTBOX.format(", ".join(["%s"] * len(ids))), ids))
    if rows.idempotency is not None:
        statements.append(cursor.mogrify(sql.insert_idempotency.sql, rows.idempotency))
    if rows.snapshot is not None:
        statements.append(cursor.mogrify(sql.upsert_snapshot.sql, rows.snapshot))
    statements += [cursor.mogrify(sql.upsert_expiry.sql, row) for row in rows.expiries]
    statements += [cursor.mogrify(sql.delete_expiry.sql, row) for row in rows.unscheduled]
    statements.append("COMMIT")
    return ";\n".join(statements)


def _gaps(after: int, positions: list[int]) -> list[int]:
    """The positions missing between ``after`` and the last of ``positions`` (sorted)."""
    missing: list[int] = []
    expected = after + 1
    for position in positions:
        missing.extend(range(expected, position))
        expected = position + 1
    return missing
