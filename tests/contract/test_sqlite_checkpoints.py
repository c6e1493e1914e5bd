"""The SQLite store checkpoints its WAL itself, off the commit path."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from prometheus_client import REGISTRY
from pytest import MonkeyPatch

from app.adapters.sqlite import event_store
from app.adapters.sqlite.event_store import SqlEventStore
from tests.contract.test_event_store import Writer


def events_in_the_database_file(path: Path) -> int:
    """What the main file holds, the WAL left aside (``immutable``: SQLite reads the file as it is)."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as connection:
        return int(connection.execute("SELECT count(*) FROM point_events").fetchone()[0])


def writer_checkpoints() -> float:
    return REGISTRY.get_sample_value("points_store_checkpoint_seconds_count", {"thread": "writer"}) or 0.0


def file_size(path: Path) -> int:
    return path.stat().st_size


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


async def test_the_wal_starts_over_while_appends_keep_coming(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """The writer is never idle here, so a checkpoint always ends while a batch is being written. The WAL must
    still start over from its first frame, rather than grow by every commit for as long as the load lasts."""
    monkeypatch.setattr(event_store, "CHECKPOINT_EVERY", 0.02)
    finished_before = writer_checkpoints()
    path = tmp_path / "points.db"
    store = await SqlEventStore.open(str(path))
    try:
        writers = [Writer(store, f"u{n}") for n in range(16)]

        async def keep_granting(writer: Writer) -> None:
            for _ in range(300):
                await writer.grant(1)

        await asyncio.gather(*(keep_granting(w) for w in writers))
        wal, database = file_size(Path(f"{path}-wal")), file_size(path)
        # about a third of the database file here; without starting over, some ten times the database file
        assert wal < database, f"the WAL grew to {wal:,} bytes beside a database file of {database:,}"
        assert writer_checkpoints() > finished_before  # counted in /metrics
    finally:
        await store.close()
