"""The EventStore and Outbox contract, written once and run against every adapter: in memory, SQLite and MariaDB
(the stack's server, which ``scripts/test.sh`` starts; the MariaDB cases fail when it is not there). The Outbox is
the embedded stores' alone: on MariaDB, Debezium reads the outbox from the binlog.

The first part drives the ports directly; the second drives the use cases on a container built for each store, as
the service runs them.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest
from dependency_injector import providers

from app.adapters.clock import FixedClock
from app.adapters.inmemory.event_store import InMemoryEventStore
from app.adapters.mysql.event_store import MySqlEventStore
from app.adapters.sqlite.event_store import SqlEventStore
from app.application.commands.expiry import ExpirePoints
from app.application.commands.grants import GrantPoints
from app.application.commands.uses import CancelUse, UsePoints
from app.application.projection import rebuild_read_models
from app.application.services import PointServices
from app.containers import Container, build_container
from app.domain.account import Account
from app.domain.errors import InsufficientPointsError
from app.domain.events import DomainEvent, RecordedEvent, Source
from app.domain.policy import PointPolicy
from app.entrypoints.runtime import running
from app.ports.event_store import Commit, ConcurrencyError, EventStore, IdempotencyRecord, Outbox
from app.settings import Settings
from tests.servers import MYSQL_URL, fresh_mysql, mysql_outbox_rows

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)
POLICY = PointPolicy()

STORES = ["memory", "sqlite", "mysql"]
OUTBOX_STORES = ["memory", "sqlite"]


class Store(EventStore, Outbox, Protocol):
    """Both ports, as every adapter implements them."""


async def open_store(kind: str, tmp_path: Path) -> AsyncIterator[Store]:
    if kind == "memory":
        yield InMemoryEventStore()
        return
    if kind == "mysql":
        await fresh_mysql()
        mysql = MySqlEventStore.open(MYSQL_URL)
        try:
            yield mysql  # type: ignore[misc]  # an EventStore without the Outbox
        finally:
            await mysql.close()
        return
    sql = await SqlEventStore.open(str(tmp_path / "points.db"))
    try:
        yield sql
    finally:
        await sql.close()


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in open_store(request.param, tmp_path):
        yield opened


@pytest.fixture(params=OUTBOX_STORES)
async def outbox_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    async for opened in open_store(request.param, tmp_path):
        yield opened


async def outbox_rows(store: Store) -> list[Any]:
    """What the outbox holds: the messages of an embedded store; on MariaDB the table, which every append leaves
    empty (its rows live on in the binlog only)."""
    if isinstance(store, MySqlEventStore):
        return await mysql_outbox_rows()
    return list(await store.fetch(1_000))


class Writer:
    """Decides on one account with the domain and appends what it recorded, like the command runner does."""

    def __init__(self, store: Store, user_id: str) -> None:
        self.store = store
        self.account = Account.open(user_id)
        self.ids = 0

    def new_id(self, kind: str) -> str:
        self.ids += 1
        return f"{self.account.user_id}-{kind}-{self.ids}"

    def pending_commit(self, key: str | None = None, snapshot: bool = False) -> Commit:
        account = self.account
        base = account.committed_version
        return Commit(
            user_id=account.user_id,
            expected_version=base,
            events=[
                RecordedEvent(self.new_id("event"), account.user_id, base + i + 1, event)
                for i, event in enumerate(account.new_events())
            ],
            idempotency=IdempotencyRecord(key, f"print-{key}", b'{"ok": true}') if key else None,
            snapshot=account.state if snapshot else None,
        )

    async def commit(self, key: str | None = None, snapshot: bool = False) -> list[RecordedEvent]:
        commit = self.pending_commit(key, snapshot)
        await self.store.append(commit)
        self.account.mark_committed()
        return list(commit.events)

    def decide_grant(
        self,
        amount: int = 100,
        source: Source = Source.PROMOTION,
        *,
        expires_at: datetime | None = None,
        pending_until: datetime | None = None,
        order_id: str | None = None,
    ) -> str:
        grant_id = self.new_id("grant")
        self.account.grant(
            grant_id=grant_id,
            amount=amount,
            source=source,
            now=T0,
            policy=POLICY,
            expires_at=expires_at,
            pending_until=pending_until,
            order_id=order_id,
        )
        return grant_id

    async def grant(
        self, amount: int = 100, *, expires_at: datetime | None = None, pending_until: datetime | None = None
    ) -> str:
        grant_id = self.decide_grant(amount, expires_at=expires_at, pending_until=pending_until)
        await self.commit()
        return grant_id


def events_of(recorded: list[RecordedEvent]) -> list[DomainEvent]:
    return [r.event for r in recorded]


# -- the ports -----------------------------------------------------------------------------------------------


async def test_appended_events_load_back_in_version_order(store: Store) -> None:
    writer = Writer(store, "u1")
    await writer.grant(100)
    writer.account.use(use_id="use-1", amount=30, now=T0)
    writer.account.use(use_id="use-2", amount=20, now=T0)
    await writer.commit()

    stream = await store.load("u1")
    assert stream.snapshot is None
    assert [r.version for r in stream.events] == [1, 2, 3]
    assert [r.type for r in stream.events] == ["PointsGranted", "PointsUsed", "PointsUsed"]
    assert Account.rebuild("u1", events_of(list(stream.events))).state == writer.account.state
    assert (await store.load("nobody")).events == []


async def test_an_append_at_a_version_that_was_taken_raises_a_concurrency_error(store: Store) -> None:
    first, second = Writer(store, "u1"), Writer(store, "u1")
    kept = await first.grant(100)
    second.decide_grant(5)

    with pytest.raises(ConcurrencyError):
        await second.commit()

    stream = await store.load("u1")
    assert [r.version for r in stream.events] == [1]
    assert [lot.grant_id for lot in Account.rebuild("u1", events_of(list(stream.events))).lots] == [kept]


async def test_an_append_that_skips_versions_raises_a_concurrency_error(store: Store) -> None:
    writer = Writer(store, "u1")
    writer.decide_grant(5)
    event = writer.pending_commit().events[0].event
    ahead = Commit("u1", 3, [RecordedEvent("e-4", "u1", 4, event)])

    with pytest.raises(ConcurrencyError):
        await store.append(ahead)
    assert (await store.load("u1")).events == []


async def test_reusing_an_idempotency_key_raises_a_concurrency_error_and_keeps_the_first_record(
    store: Store,
) -> None:
    writer = Writer(store, "u1")
    writer.decide_grant(10)
    await writer.commit(key="k-1")
    first = await store.idempotency_record("u1", "k-1")
    writer.decide_grant(10)

    with pytest.raises(ConcurrencyError):
        await writer.commit(key="k-1")

    assert first == IdempotencyRecord("k-1", "print-k-1", b'{"ok": true}')
    assert await store.idempotency_record("u1", "k-1") == first
    assert [r.version for r in (await store.load("u1")).events] == [1]
    assert await store.idempotency_record("u2", "k-1") is None


async def test_a_refused_append_leaves_no_event_outbox_row_key_snapshot_or_schedule_behind(store: Store) -> None:
    writer = Writer(store, "u1")
    await writer.grant(100, expires_at=T0 + 10 * DAY)
    if not isinstance(store, MySqlEventStore):
        await store.ack([message.position for message in await store.fetch(100)])
    stale = Writer(store, "u1")
    stale.decide_grant(5, expires_at=T0 + 2 * DAY)

    with pytest.raises(ConcurrencyError):
        await stale.commit(key="k-stale", snapshot=True)

    stream = await store.load("u1")
    assert (len(stream.events), stream.snapshot) == (1, None)
    assert await outbox_rows(store) == []
    assert await store.idempotency_record("u1", "k-stale") is None
    assert await store.due_accounts(T0 + 5 * DAY, 10) == []


async def test_one_conflict_among_concurrent_appends_fails_only_its_own_append(store: Store) -> None:
    writers = [Writer(store, f"u{n}") for n in range(40)]
    await writers[7].grant(10)
    for writer in writers:
        writer.decide_grant(1, Source.ORDER, order_id="o-1")
    stale = Writer(store, "u7")
    stale.decide_grant(1)

    outcomes = await asyncio.gather(*(w.commit(key="k") for w in [*writers, stale]), return_exceptions=True)

    refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)]
    assert refused == [len(writers)]
    assert isinstance(outcomes[-1], ConcurrencyError)
    lengths = [len((await store.load(w.account.user_id)).events) for w in writers]
    assert lengths == [2 if n == 7 else 1 for n in range(40)]
    assert len(await outbox_rows(store)) == (0 if isinstance(store, MySqlEventStore) else 41)


async def test_a_taken_key_among_concurrent_appends_fails_only_its_own_append(store: Store) -> None:
    writers = [Writer(store, f"u{n}") for n in range(40)]
    writers[7].decide_grant(5)
    await writers[7].commit(key="taken")
    for writer in writers:
        writer.decide_grant(1)
    keys = ["taken" if n == 7 else "k" for n in range(40)]

    outcomes = await asyncio.gather(
        *(w.commit(key=k) for w, k in zip(writers, keys, strict=True)), return_exceptions=True
    )

    assert [i for i, outcome in enumerate(outcomes) if isinstance(outcome, BaseException)] == [7]
    assert isinstance(outcomes[7], ConcurrencyError)
    lengths = [len((await store.load(w.account.user_id)).events) for w in writers]
    assert lengths == [1] * 40  # u7: only the grant that took the key


async def test_an_account_loads_from_its_snapshot_and_the_events_after_it(store: Store) -> None:
    writer = Writer(store, "u1")
    await writer.grant(100)
    writer.account.use(use_id="use-1", amount=30, now=T0)
    await writer.commit(snapshot=True)
    snapshot_state = copy.deepcopy(writer.account.state)
    writer.account.use(use_id="use-2", amount=20, now=T0)
    await writer.commit()
    await writer.grant(5)

    stream = await store.load("u1")

    assert stream.snapshot == snapshot_state
    assert stream.snapshot is not None and stream.snapshot.version == 2
    assert [r.version for r in stream.events] == [3, 4]
    rebuilt = Account.rebuild("u1", events_of(list(stream.events)), stream.snapshot)
    assert rebuilt.state == writer.account.state
    assert rebuilt.available(T0) == 55


async def test_outbox_messages_come_in_commit_order_and_decode_to_the_recorded_events(outbox_store: Store) -> None:
    store = outbox_store
    u1, u2 = Writer(store, "u1"), Writer(store, "u2")
    appended: list[RecordedEvent] = []
    u1.decide_grant(10)
    u1.decide_grant(20, Source.MANUAL)
    appended += await u1.commit()
    u2.decide_grant(30)
    appended += await u2.commit()
    u1.account.use(use_id="use", amount=15, now=T0)
    appended += await u1.commit()

    messages = await store.fetch(100)

    assert [m.event for m in messages] == appended
    positions = [m.position for m in messages]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert await store.fetch(2) == messages[:2]


async def test_acknowledged_messages_are_not_fetched_again(outbox_store: Store) -> None:
    store = outbox_store
    writer = Writer(store, "u1")
    for _ in range(5):
        await writer.grant(1)
    messages = await store.fetch(100)

    await store.ack([messages[0].position, messages[1].position])
    assert await store.fetch(100) == messages[2:]
    await store.ack([messages[1].position, messages[3].position])  # acking twice changes nothing
    assert await store.fetch(100) == [messages[2], messages[4]]
    await store.ack([])
    assert len((await store.load("u1")).events) == 5  # the events themselves stay


async def test_a_fetch_after_a_position_reads_on_from_there(outbox_store: Store) -> None:
    store = outbox_store
    writer = Writer(store, "u1")
    for _ in range(5):
        await writer.grant(1)
    messages = await store.fetch(100)

    assert await store.fetch(100, after=messages[1].position) == messages[2:]
    assert await store.fetch(2, after=messages[0].position) == messages[1:3]
    assert await store.fetch(100, after=messages[-1].position) == []
    await store.ack([messages[3].position])
    assert await store.fetch(100, after=messages[1].position) == [messages[2], messages[4]]


async def test_waiting_for_the_outbox_wakes_promptly_after_an_append(outbox_store: Store) -> None:
    store = outbox_store
    writer = Writer(store, "u1")
    await store.wait(0)  # forget earlier writes
    started = time.monotonic()
    await store.wait(0.1)
    assert time.monotonic() - started >= 0.09  # nothing written: it waits out its timeout

    waiting = asyncio.create_task(store.wait(10))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    started = time.monotonic()
    await writer.grant(1)
    await asyncio.wait_for(waiting, 1)
    assert time.monotonic() - started < 1


async def test_due_accounts_follow_the_lots_schedule(store: Store) -> None:
    granted = Writer(store, "granted")
    await granted.grant(100, expires_at=T0 + 10 * DAY)

    activated = Writer(store, "activated")
    pending = await activated.grant(100, pending_until=T0 + 5 * DAY, expires_at=T0 + 15 * DAY)  # lives 10 days

    reissued = Writer(store, "reissued")
    short = await reissued.grant(50, expires_at=T0 + 3 * DAY)
    reissued.account.use(use_id="use", amount=50, now=T0 + DAY)
    await reissued.commit()

    cancelled = Writer(store, "cancelled")
    cancel_me = await cancelled.grant(100, expires_at=T0 + 2 * DAY)

    assert await store.due_accounts(T0 + DAY, 10) == []
    assert await store.due_accounts(T0 + 12 * DAY, 10) == ["cancelled", "reissued", "granted"]
    assert await store.due_accounts(T0 + 12 * DAY, 2) == ["cancelled", "reissued"]

    cancelled.account.cancel_grant(grant_id=cancel_me, now=T0 + DAY)
    await cancelled.commit()
    activated.account.activate(grant_id=pending, now=T0 + DAY)  # now it expires on day 11, not day 15
    await activated.commit()
    assert await store.due_accounts(T0 + 12 * DAY, 10) == ["reissued", "granted", "activated"]

    cancel = reissued.account.cancel_use(
        cancel_id="cancel", use_id="use", now=T0 + 5 * DAY, policy=POLICY, new_grant_id=lambda: "reissue"
    )
    assert [r.from_grant_id for r in cancel.reissued] == [short]
    reissued.account.expire_due(now=T0 + 5 * DAY)
    await reissued.commit()
    assert await store.due_accounts(T0 + 12 * DAY, 10) == ["granted", "activated"]
    reissue_due = T0 + 5 * DAY + POLICY.default_expiry
    assert await store.due_accounts(reissue_due - timedelta(seconds=1), 10) == ["granted", "activated"]
    assert await store.due_accounts(reissue_due, 10) == ["granted", "activated", "reissued"]

    granted.account.expire_due(now=T0 + 10 * DAY)
    await granted.commit()
    assert await store.due_accounts(T0 + 400 * DAY, 10) == ["activated", "reissued"]


async def test_read_all_gives_every_event_in_commit_order_from_a_position(store: Store) -> None:
    u1, u2 = Writer(store, "u1"), Writer(store, "u2")
    appended: list[RecordedEvent] = []
    for writer in (u1, u2, u1, u2, u2):
        writer.decide_grant(1)
        appended += await writer.commit()

    everything = await store.read_all(0, 100)
    assert [r for _, r in everything] == appended
    positions = [p for p, _ in everything]
    assert positions == sorted(positions) and len(set(positions)) == 5

    first = await store.read_all(0, 2)
    rest = await store.read_all(first[-1][0], 100)
    assert first + rest == everything
    assert await store.read_all(positions[-1], 100) == []


async def test_a_reader_paging_on_from_its_last_position_misses_no_event_of_concurrent_writers(store: Store) -> None:
    """On InnoDB positions are taken at insert and transactions commit in another order: a reader that went past a
    position whose transaction had not committed yet would never come back for it."""
    writers = [Writer(store, f"w{n}") for n in range(24)]
    appended: list[RecordedEvent] = []
    seen: list[tuple[int, RecordedEvent]] = []
    writing = True

    async def write(writer: Writer) -> None:
        for _ in range(12):
            writer.decide_grant(1)
            appended.extend(await writer.commit())

    async def read() -> None:
        after = 0
        while True:
            page = await store.read_all(after, 7)
            seen.extend(page)
            if page:
                after = page[-1][0]
            elif not writing:
                return
            await asyncio.sleep(0)

    reader = asyncio.create_task(read())
    await asyncio.gather(*(write(writer) for writer in writers))
    writing = False
    await reader

    positions = [position for position, _ in seen]
    assert positions == sorted(set(positions))
    assert sorted(r.event_id for _, r in seen) == sorted(r.event_id for r in appended)


# -- the use cases on each store -----------------------------------------------------------------------------


async def settled(result: Awaitable[object] | None) -> None:
    """``init_resources()`` returns None, not an awaitable, on a container without async resources."""
    if result is not None:
        await result


@dataclass
class World:
    """Containers of the service on one store; the second, when asked for, shares the store but not the first
    one's per-account locks, as a second process would."""

    kind: str
    clock: FixedClock
    path: Path
    containers: list[Container]

    @property
    def services(self) -> PointServices:
        return self.containers[0].services()

    async def open(self) -> Container:
        """A container on the world's store: on MariaDB with a pool and an account cache of its own, as another
        process would have; the embedded stores admit one process, so a second container shares the first's."""
        if self.kind == "mysql":
            if not self.containers:
                await fresh_mysql()
            container = build_container(Settings(profile="stack", database_url=MYSQL_URL))
        elif self.containers:  # the memory profile's container, on the first one's store
            container = build_container(Settings(profile="memory"))
            container.event_store.override(providers.Object(self.containers[0].event_store()))
        else:
            profile = "memory" if self.kind == "memory" else "embedded"
            container = build_container(Settings(profile=profile, database_url=f"sqlite:///{self.path}"))
        container.clock.override(self.clock)
        await settled(container.init_resources())
        self.containers.append(container)
        return container

    async def project(self) -> None:
        """Bring the first container's read models up to date: its relay, or on the stack a rebuild from the store
        (in the service the events topic feeds them)."""
        container = self.containers[0]
        if self.kind == "mysql":
            await rebuild_read_models(container.event_store(), container.projector())
        else:
            await container.relay().drain()

    async def close(self) -> None:
        for container in reversed(self.containers):
            await settled(container.shutdown_resources())
        self.containers.clear()


@pytest.fixture(params=STORES)
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    world = World(request.param, FixedClock(T0), tmp_path / "var" / "points.db", [])
    await world.open()
    try:
        yield world
    finally:
        await world.close()


async def test_two_hundred_concurrent_uses_of_one_point_take_exactly_the_hundred_points_held(world: World) -> None:
    first = world.services
    second = (await world.open()).services()
    await first.grant.execute(GrantPoints("u1", "grant", 100, Source.PROMOTION))
    uses = [(first if n % 2 else second).use.execute(UsePoints("u1", f"use-{n}", 1)) for n in range(200)]

    outcomes = await asyncio.gather(*uses, return_exceptions=True)

    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(outcomes) - len(refused) == 100
    assert all(isinstance(o, InsufficientPointsError) for o in refused)
    account = await world.containers[0].commands().load("u1")
    assert (account.available(T0), account.version) == (0, 101)
    await world.project()
    assert (await first.balance.execute("u1")).available == 0


async def test_ten_concurrent_sends_of_one_grant_make_one_lot_and_ten_identical_results(world: World) -> None:
    first = world.services
    second = (await world.open()).services()
    request = GrantPoints("u1", "once", 500, Source.ORDER, order_id="order-1")

    results = await asyncio.gather(*((first if n % 2 else second).grant.execute(request) for n in range(10)))

    assert all(result == results[0] for result in results)
    account = await world.containers[0].commands().load("u1")
    assert [lot.grant_id for lot in account.lots] == [results[0].grant_id]
    assert (account.version, account.available(T0)) == (1, 500)


async def test_the_ledger_survives_a_restart_with_its_read_models_rebuilt(tmp_path: Path) -> None:
    world = World("sqlite", FixedClock(T0), tmp_path / "var" / "points.db", [])
    container = await world.open()
    s = container.services()
    await s.grant.execute(GrantPoints("u1", "g-1", 1_000, Source.MANUAL, expires_at=T0 + 30 * DAY))
    await s.grant.execute(GrantPoints("u1", "g-2", 500, Source.ORDER, order_id="o-1", expires_at=T0 + 10 * DAY))
    await s.grant.execute(GrantPoints("u2", "g-3", 70, Source.PROMOTION))
    used = await s.use.execute(UsePoints("u1", "use-1", 1_200))
    world.clock.set(T0 + 20 * DAY)
    await s.cancel_use.execute(CancelUse("u1", "cancel-1", used.use_id, amount=1_100))
    await s.expire.execute(ExpirePoints())
    await container.relay().drain()
    before = [(await s.balance.execute(u), await s.history.execute(u, 50, None)) for u in ("u1", "u2")]
    assert before[0][0].available == 1_100
    await world.close()

    restarted = build_container(Settings(profile="embedded", database_url=f"sqlite:///{world.path}"))
    restarted.clock.override(world.clock)
    async with running(restarted):
        again = restarted.services()
        after = [(await again.balance.execute(u), await again.history.execute(u, 50, None)) for u in ("u1", "u2")]
        assert after == before
        retried = await again.use.execute(UsePoints("u1", "use-1", 1_200))
        assert retried == used
        assert (await restarted.commands().load("u1")).version == (before[0][0].version)
