"""One process per embedded database file: a second store on the same file is refused with a clear message."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from app.adapters.sqlite.event_store import DatabaseInUseError, SqlEventStore

ROOT = Path(__file__).resolve().parents[2]


async def test_a_second_store_on_the_same_file_is_refused_until_the_first_closes(tmp_path: Path) -> None:
    path = str(tmp_path / "points.db")
    first = await SqlEventStore.open(path)
    try:
        with pytest.raises(DatabaseInUseError, match="another process"):
            await SqlEventStore.open(path)
    finally:
        await first.close()
    again = await SqlEventStore.open(path)
    await again.close()


async def test_another_process_cannot_open_a_file_that_is_served(tmp_path: Path) -> None:
    path = str(tmp_path / "points.db")
    store = await SqlEventStore.open(path)
    try:
        opener = (
            "import asyncio, sys\n"
            "from app.adapters.sqlite.event_store import SqlEventStore\n"
            "asyncio.run(SqlEventStore.open(sys.argv[1]))\n"
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", opener, path, cwd=ROOT, stderr=asyncio.subprocess.PIPE
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await store.close()
    assert process.returncode != 0
    assert "already served by another process" in stderr.decode()
