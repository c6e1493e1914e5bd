"""The SQLite store deletes acknowledged outbox rows with its next write, not in a transaction of their own."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pytest import MonkeyPatch

from app.adapters.sqlite import event_store
from app.adapters.sqlite.event_store import SqlEventStore
from app.ports.event_store import ConcurrencyError
from tests.contract.test_event_store import Writer


def outbox_rows(path: Path) -> list[int]:
    """The outbox positions committed to the file, read on a connection of their own."""
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT position FROM point_event_outbox ORDER BY position")]


def commits() -> float:
    return REGISTRY.get_sample_value("points_store_commit_seconds_count") or 0.0


async def test_acks_ride_with_the_next_append_and_cost_no_commit_of_their_own(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setattr(event_store, "ACK_DELAY", 30.0)  # only an append or closing may write them here
    path = tmp_path / "points.db"
    store = await SqlEventStore.open(str(path))
    try:
        writer = Writer(store, "u1")
        await writer.grant(1)
        await writer.grant(2)
        first, second = await store.fetch(10)

        before = commits()
        await store.ack([first.position])
        await asyncio.sleep(0.1)
        assert outbox_rows(path) == [first.position, second.position]  # not yet deleted from the file...
        assert await store.fetch(10) == [second]  # ...but no longer fetched

        await writer.grant(3)
        assert commits() == before + 1
        assert outbox_rows(path) == [second.position, second.position + 1]
        await store.ack([second.position])
    finally:
        await store.close()
    assert outbox_rows(path) == [second.position + 1]  # closing writes the acks still waiting


async def test_acks_without_appends_to_carry_them_are_written_alone(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(event_store, "ACK_DELAY", 0.05)
    path = tmp_path / "points.db"
    store = await SqlEventStore.open(str(path))
    try:
        writer = Writer(store, "u1")
        await writer.grant(1)
        await store.ack([message.position for message in await store.fetch(10)])

        for _ in range(50):
            await asyncio.sleep(0.02)
            if not outbox_rows(path):
                break
        assert outbox_rows(path) == []
    finally:
        await store.close()


async def test_acks_are_written_when_their_batch_falls_back_to_one_append_at_a_time(
    tmp_path: Path, monkeypatch: MonkeyPatch
) -> None:
    monkeypatch.setattr(event_store, "ACK_DELAY", 30.0)
    path = tmp_path / "points.db"
    store = await SqlEventStore.open(str(path))
    try:
        writer = Writer(store, "u1")
        writer.decide_grant(1)
        await writer.commit(key="taken")
        first = (await store.fetch(10))[0]
        await store.ack([first.position])

        writer.decide_grant(2)
        with pytest.raises(ConcurrencyError):
            await writer.commit(key="taken")  # refused in the batch, which then goes one append at a time

        assert outbox_rows(path) == []  # the ack rode with it all the same
    finally:
        await store.close()
