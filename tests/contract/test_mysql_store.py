"""What only the MariaDB store has to get right: a server that is down, and a connection lost around a COMMIT."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import make_url

from app.adapters.mysql.event_store import MySqlEventStore
from app.adapters.sql.rows import CommitRows
from app.ports.errors import StoreUnavailableError
from tests.contract.test_event_store import Writer
from tests.servers import MYSQL_URL, free_port, fresh_mysql


class LosesTheConnection(MySqlEventStore):
    """Its connection breaks around the COMMIT: after it (the answer is lost) or before it (nothing committed)."""

    after_commit = True

    async def _write(self, driver: Any, rows: CommitRows) -> None:
        if self.after_commit:
            await super()._write(driver, rows)
        else:
            driver.close()  # the server rolls back what the connection had begun
        raise pymysql.err.OperationalError(2013, "Lost connection to server during query")


@pytest.fixture
async def lossy() -> AsyncIterator[LosesTheConnection]:
    await fresh_mysql()
    store = LosesTheConnection(MySqlEventStore.open(MYSQL_URL)._engine)
    try:
        yield store
    finally:
        await store.close()


async def test_an_append_whose_answer_was_lost_after_its_commit_counts_as_written(lossy: LosesTheConnection) -> None:
    writer = Writer(lossy, "u1")  # type: ignore[arg-type]
    appended = await writer.grant(100)

    stream = await lossy.load("u1")
    assert [r.event.grant_id for r in stream.events] == [appended]  # type: ignore[attr-defined]


async def test_an_append_whose_connection_broke_before_its_commit_is_unavailable_and_wrote_nothing(
    lossy: LosesTheConnection,
) -> None:
    lossy.after_commit = False
    writer = Writer(lossy, "u1")  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError):
        await writer.grant(100)

    assert (await lossy.load("u1")).events == []


async def test_a_server_that_does_not_answer_gives_store_unavailable_within_seconds() -> None:
    url = make_url(MYSQL_URL).set(port=free_port())  # nothing listens there
    store = MySqlEventStore.open(url.render_as_string(hide_password=False))
    try:
        began = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await store.load("u1")
        with pytest.raises(StoreUnavailableError):
            await Writer(store, "u1").grant(100)  # type: ignore[arg-type]
        assert time.monotonic() - began < 15
    finally:
        await store.close()
