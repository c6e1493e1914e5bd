"""Writes to one account are serialised (rule 10): in one process by the account's lock, across processes by the
optimistic version check on the event stream, retried."""

from __future__ import annotations

import asyncio

from app.adapters.clock import FixedClock, UuidIds
from app.adapters.inmemory.event_store import InMemoryEventStore
from app.application.commands.grants import GrantPoints, GrantPointsUseCase
from app.application.commands.runner import AccountCommands, KeyedLocks
from app.application.commands.uses import UsePoints, UsePointsUseCase
from app.domain.errors import InsufficientPointsError
from app.domain.events import RecordedEvent, Source
from app.domain.policy import PointPolicy
from app.ports.event_store import Commit, IdempotencyRecord, Stream
from tests.ledger import START, Ledger
from tests.unit.support import Driver


async def use_one_point_200_times(uses: list[UsePointsUseCase]) -> list[object]:
    return await asyncio.gather(
        *(uses[n % len(uses)].execute(UsePoints("u1", f"use-{n}", 1)) for n in range(200)),
        return_exceptions=True,
    )


async def test_200_concurrent_uses_of_one_point_on_an_account_of_100_leave_exactly_100_succeeded(
    ledger: Ledger,
) -> None:
    await Driver(ledger).grant(100)
    outcomes = await use_one_point_200_times([ledger.services.use])

    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 100
    assert all(isinstance(o, InsufficientPointsError) for o in outcomes if isinstance(o, BaseException))
    detail = await ledger.services.account.execute("u1")
    assert (detail.available, len(detail.uses), detail.version) == (0, 100, 101)
    await ledger.project()
    assert (await ledger.services.balance.execute("u1")).available == 0


class SlowEventStore(InMemoryEventStore):
    """Yields to other tasks between reading and writing, as a database round trip does, so that writers from
    different processes meet in the version check."""

    def __init__(self) -> None:
        super().__init__()
        self.conflicts = 0

    async def load(self, user_id: str) -> Stream:
        stream = await super().load(user_id)
        await asyncio.sleep(0)
        return stream

    async def append(self, commit: Commit) -> None:
        await asyncio.sleep(0)
        try:
            await super().append(commit)
        except Exception:
            self.conflicts += 1
            raise


def processes(store: InMemoryEventStore, count: int) -> list[UsePointsUseCase]:
    """Use cases as ``count`` separate processes would have them: each its own runner (and locks)."""
    clock = FixedClock(START)
    return [UsePointsUseCase(AccountCommands(store, clock, UuidIds(), PointPolicy())) for _ in range(count)]


async def test_writers_in_separate_processes_are_serialised_by_the_version_check() -> None:
    store = SlowEventStore()
    grant = GrantPointsUseCase(AccountCommands(store, FixedClock(START), UuidIds(), PointPolicy()))
    await grant.execute(GrantPoints("u1", "grant", 100, Source.PROMOTION))

    outcomes = await use_one_point_200_times(processes(store, 4))

    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 100
    assert all(isinstance(o, InsufficientPointsError) for o in outcomes if isinstance(o, BaseException))
    assert store.conflicts > 0  # the writers did meet, and the check turned them away
    stream = await store.load("u1")
    assert [r.version for r in stream.events] == list(range(1, 102))


async def test_one_key_sent_to_separate_processes_at_once_has_one_effect() -> None:
    store = SlowEventStore()
    clock = FixedClock(START)
    grants = [GrantPointsUseCase(AccountCommands(store, clock, UuidIds(), PointPolicy())) for _ in range(5)]
    request = GrantPoints("u1", "once", 100, Source.PROMOTION)
    answers = await asyncio.gather(*(grants[n % 5].execute(request) for n in range(10)))
    assert len(set(answers)) == 1
    assert len((await store.load("u1")).events) == 1


class CountingEventStore(InMemoryEventStore):
    """Counts the reads a command makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def load(self, user_id: str) -> Stream:
        self.reads += 1
        return await super().load(user_id)

    async def events_after(self, user_id: str, version: int) -> list[RecordedEvent]:
        self.reads += 1
        return await super().events_after(user_id, version)

    async def idempotency_record(self, user_id: str, key: str) -> IdempotencyRecord | None:
        self.reads += 1
        return await super().idempotency_record(user_id, key)


async def test_a_command_on_an_account_the_process_holds_reads_nothing_before_it_appends() -> None:
    store = CountingEventStore()
    runner = AccountCommands(store, FixedClock(START), UuidIds(), PointPolicy())
    grant, use = GrantPointsUseCase(runner), UsePointsUseCase(runner)
    await grant.execute(GrantPoints("u1", "grant", 100, Source.PROMOTION))
    assert store.reads == 1  # the first load

    await use.execute(UsePoints("u1", "use", 10))
    await use.execute(UsePoints("u1", "use", 10))  # a retry: the append turns the key away, the first answer stands

    assert store.reads == 2  # the retry's look-up of its key
    assert [r.version for r in (await store.load("u1")).events] == [1, 2]


async def test_a_refusal_is_given_only_after_the_account_has_caught_up_with_other_processes() -> None:
    store = InMemoryEventStore()
    first, second = (AccountCommands(store, FixedClock(START), UuidIds(), PointPolicy()) for _ in range(2))
    await GrantPointsUseCase(first).execute(GrantPoints("u1", "small", 10, Source.PROMOTION))
    await GrantPointsUseCase(second).execute(GrantPoints("u1", "large", 100, Source.PROMOTION))

    used = await UsePointsUseCase(first).execute(UsePoints("u1", "use", 50))  # first holds the account at 10

    assert used.account.balance == 60


async def test_an_account_lock_admits_one_at_a_time_and_is_gone_when_nobody_holds_or_awaits_it() -> None:
    locks = KeyedLocks()
    steps: list[tuple[str, int]] = []

    async def work(n: int) -> None:
        async with locks.hold("u1"):
            steps.append(("in", n))
            await asyncio.sleep(0)
            steps.append(("out", n))

    await asyncio.gather(*(work(n) for n in range(3)))

    assert steps == [("in", 0), ("out", 0), ("in", 1), ("out", 1), ("in", 2), ("out", 2)]
    assert locks._locks == {}
