"""The SQLite store checkpoints its WAL itself, off the commit path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from app.adapters.sql import event_store
from app.adapters.sql.event_store import SqlEventStore
from tests.contract.test_event_store import Writer


def events_in_the_database_file(path: Path) -> int:
    """What the main file holds, the WAL left aside (``immutable``: SQLite reads the file as it is)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM point_events").fetchone()[0])


async def test_appended_events_reach_the_database_file_without_waiting_for_the_wal_to_fill(tmp_path: Path) -> None:
    path = tmp_path / "points.db"
    store = await SqlEventStore.open(str(path))
    try:
        writers = [Writer(store, f"u{n}") for n in range(20)]
        await asyncio.gather(*(w.grant(10) for w in writers))
        assert events_in_the_database_file(path) == 0  # in the WAL only: far from SQLite's own 1,000 pages

        for _ in range(int(event_store.CHECKPOINT_EVERY * 10 * 4)):
            await asyncio.sleep(0.1)
            if events_in_the_database_file(path) == 20:
                break
        assert events_in_the_database_file(path) == 20
    finally:
        await store.close()
