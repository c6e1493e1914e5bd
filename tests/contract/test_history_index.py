"""The HistoryIndex contract, written once and run against the in-memory adapter (the embedded default) and the
OpenSearch one (the stack's; ``scripts/test.sh`` starts OpenSearch, and the OpenSearch cases fail when it is not
there, at ``POINTS_OPENSEARCH_URL``, default http://127.0.0.1:9200). Each OpenSearch case works behind an alias of
its own, whose indices and template are deleted afterwards.

A property test at the end checks that both adapters give the same answers for random entries; the last tests are
the OpenSearch adapter's own (its mapping, a rebuild's alias swap, a server that is not there)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.adapters.cursors import encode_cursor
from app.adapters.inmemory.read_models import InMemoryHistoryIndex
from app.adapters.opensearch.history_index import OpenSearchHistoryIndex, document
from app.application.projection import history_entry
from app.application.rebuild import RebuildableIndex
from app.domain.events import Allocation, Source
from app.ports.errors import ReadModelUnavailableError
from app.ports.read_models import (
    AccountSummary,
    EntryFilter,
    EntryKind,
    HistoryEntry,
    HistoryPage,
    Interval,
)
from tests.ledger import make_ledger
from tests.unit.support import Driver

OPENSEARCH_URL = os.environ.get("POINTS_OPENSEARCH_URL", "") or "http://127.0.0.1:9200"
T0 = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SIGN = {
    EntryKind.GRANTED: 1,
    EntryKind.ACTIVATED: 0,
    EntryKind.USED: -1,
    EntryKind.USE_CANCELLED: 1,
    EntryKind.GRANT_CANCELLED: -1,
    EntryKind.EXPIRED: -1,
    EntryKind.CLAWED_BACK: -1,
}


@contextlib.asynccontextmanager
async def opensearch_index() -> AsyncIterator[OpenSearchHistoryIndex]:
    """An OpenSearch history index behind an alias of its own, deleted afterwards."""
    index = OpenSearchHistoryIndex.open(OPENSEARCH_URL, alias=f"ptest-{uuid.uuid4().hex[:12]}-history")
    try:
        try:
            await index.ensure()
        except ReadModelUnavailableError as error:  # a missing server fails the test: scripts/test.sh starts one
            pytest.fail(f"OpenSearch is not reachable at {OPENSEARCH_URL} ({error}); scripts/test.sh starts it")
        yield index
    finally:
        with contextlib.suppress(ReadModelUnavailableError):
            await index.drop()
        await index.close()


class Index(RebuildableIndex, Protocol):
    """The history index port and the rebuild's, as every adapter implements them."""


@dataclass
class Subject:
    """An index under test, and how to make what was indexed visible to its searches (OpenSearch: a refresh)."""

    index: Index
    settle: Callable[[], Awaitable[None]]

    async def load(self, entries: Sequence[HistoryEntry]) -> None:
        await self.index.index(entries)
        await self.settle()


async def _nothing() -> None:
    return None


@pytest.fixture(params=["memory", "opensearch"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[Subject]:
    if request.param == "memory":
        yield Subject(InMemoryHistoryIndex(), _nothing)
        return
    async with opensearch_index() as index:
        yield Subject(index, index.refresh)


@pytest.fixture
async def opensearch() -> AsyncIterator[OpenSearchHistoryIndex]:
    async with opensearch_index() as index:
        yield index


def made(user_id: str, version: int, kind: EntryKind, amount: int, at: datetime, **more: object) -> HistoryEntry:
    return HistoryEntry(
        entry_id=f"{user_id}-{version}",
        user_id=user_id,
        version=version,
        kind=kind,
        amount=amount,
        delta=SIGN[kind] * amount,
        occurred_at=at,
        **more,  # type: ignore[arg-type]
    )


def ids(page: HistoryPage) -> list[str]:
    return [e.entry_id for _, e in page.entries]


async def every_page(read: Callable[[str | None], Awaitable[HistoryPage]]) -> list[tuple[str, HistoryEntry]]:
    """All entries, following the cursors from the first page to the last."""
    seen: list[tuple[str, HistoryEntry]] = []
    after = None
    for _ in range(1_000):
        page = await read(after)
        seen += page.entries
        if not page.has_next:
            return seen
        after = page.entries[-1][0]
    raise AssertionError("the pages never ended")


def newest_first(entries: Sequence[HistoryEntry]) -> list[str]:
    return [e.entry_id for e in sorted(entries, key=lambda e: (e.occurred_at, e.user_id, e.version), reverse=True)]


# A small shop: two users, every kind, several sources, orders, reasons and lots.
SHOP = [
    made("alice", 1, EntryKind.GRANTED, 1_000, T0, source="ORDER", order_id="o-1", grant_id="g1"),
    made("alice", 2, EntryKind.GRANTED, 500, T0 + HOUR, source="PROMOTION", grant_id="g2", reason="welcome"),
    made("alice", 3, EntryKind.USED, 700, T0 + 2 * HOUR, order_id="o-2", use_id="u1",
         lots=(Allocation("g1", 700),)),
    made("bob", 1, EntryKind.GRANTED, 300, T0 + 2 * HOUR, source="MANUAL", grant_id="g3", reason="sorry"),
    made("alice", 4, EntryKind.USE_CANCELLED, 200, T0 + DAY, use_id="u1", lots=(Allocation("g1", 200),)),
    made("bob", 2, EntryKind.GRANT_CANCELLED, 300, T0 + DAY + HOUR, source="MANUAL", grant_id="g3"),
    made("alice", 5, EntryKind.CLAWED_BACK, 100, T0 + 2 * DAY, order_id="o-1", lots=(Allocation("g1", 100),)),
    made("alice", 6, EntryKind.EXPIRED, 400, T0 + 40 * DAY, source="ORDER", grant_id="g1"),
    made("bob", 3, EntryKind.GRANTED, 50, T0 + 40 * DAY, source="ORDER", order_id="o-3", grant_id="g4"),
    made("bob", 4, EntryKind.ACTIVATED, 50, T0 + 41 * DAY, source="ORDER", grant_id="g4"),
]  # fmt: skip


# -- indexing and history ------------------------------------------------------------------------------------------


async def test_indexing_the_same_entries_again_adds_nothing(subject: Subject) -> None:
    await subject.load(SHOP)
    await subject.load(SHOP[:4])
    await subject.load([*SHOP[4:], *SHOP[4:]])
    history = await every_page(lambda after: subject.index.history("alice", 100, after))
    assert [e for _, e in history] == sorted((e for e in SHOP if e.user_id == "alice"), key=lambda e: -e.version)
    found = await subject.index.search(EntryFilter(), 100, None)
    assert ids(found) == newest_first(SHOP)
    assert not found.has_next


async def test_a_batch_larger_than_one_bulk_request_is_indexed_whole(subject: Subject) -> None:
    batch = [
        made(f"bulk-{n % 3}", n // 3 + 1, EntryKind.GRANTED, 1, T0 + n * timedelta(seconds=1)) for n in range(12_000)
    ]
    await subject.load(batch)
    assert [await subject.index.version(f"bulk-{n}") for n in range(3)] == [4_000, 4_000, 4_000]
    oldest = await subject.index.search(EntryFilter(occurred_to=T0 + timedelta(seconds=2)), 5, None)
    assert ids(oldest) == ["bulk-1-1", "bulk-0-1"]


async def test_an_entry_reads_back_as_it_was_indexed(subject: Subject) -> None:
    await subject.load(SHOP)
    page = await subject.index.history("alice", 100, None)
    assert {e for _, e in page.entries} == {e for e in SHOP if e.user_id == "alice"}
    use = next(e for _, e in page.entries if e.kind is EntryKind.USED)
    assert use.lots == (Allocation("g1", 700),) and use.occurred_at == T0 + 2 * HOUR


async def test_history_is_newest_first_and_its_cursors_visit_every_entry_once(subject: Subject) -> None:
    entries = [made("carol", v, EntryKind.GRANTED, v, T0 + v * HOUR) for v in range(1, 24)]
    await subject.load([*entries, *SHOP])
    for size in (1, 4, 23, 100):
        seen = await every_page(lambda after, size=size: subject.index.history("carol", size, after))
        assert [e.version for _, e in seen] == list(range(23, 0, -1))
        assert len({cursor for cursor, _ in seen}) == 23
    first = await subject.index.history("carol", 5, None)
    assert first.has_next and len(first.entries) == 5
    last = await subject.index.history("carol", 5, first.entries[-1][0])
    assert [e.version for _, e in last.entries] == [18, 17, 16, 15, 14]


async def test_history_of_an_account_without_entries_is_empty(subject: Subject) -> None:
    await subject.load(SHOP)
    assert await subject.index.history("nobody", 10, None) == HistoryPage([], has_next=False)


async def test_a_page_made_from_entries_is_the_history_page_and_pages_on_in_the_index(subject: Subject) -> None:
    entries = [made("dave", v, EntryKind.GRANTED, v, T0 + v * DAY) for v in range(1, 12)]
    await subject.load([*entries, *SHOP])
    after: str | None = None
    while True:
        made_here = subject.index.page(list(reversed(entries)), 3, after)
        assert made_here == await subject.index.history("dave", 3, after)
        if not made_here.has_next:
            break
        after = made_here.entries[-1][0]
    newest = subject.index.page(entries[-4:], 4, None)  # what the balance view keeps: the newest four
    older = await subject.index.history("dave", 10, newest.entries[-1][0])
    assert [e.version for _, e in older.entries] == list(range(7, 0, -1))


# -- search --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (EntryFilter(), [e.entry_id for e in SHOP]),
        (EntryFilter(user_id="bob"), ["bob-1", "bob-2", "bob-3", "bob-4"]),
        (EntryFilter(kinds=(EntryKind.GRANTED,)), ["alice-1", "alice-2", "bob-1", "bob-3"]),
        (EntryFilter(kinds=(EntryKind.USED, EntryKind.EXPIRED)), ["alice-3", "alice-6"]),
        (EntryFilter(sources=("ORDER",)), ["alice-1", "alice-6", "bob-3", "bob-4"]),
        (EntryFilter(sources=("MANUAL", "PROMOTION")), ["alice-2", "bob-1", "bob-2"]),
        (EntryFilter(order_id="o-1"), ["alice-1", "alice-5"]),
        (EntryFilter(occurred_from=T0 + 2 * HOUR, occurred_to=T0 + DAY + HOUR), ["alice-3", "bob-1", "alice-4"]),
        (EntryFilter(occurred_from=T0 + 2 * HOUR + timedelta(microseconds=1)), ["alice-4", "bob-2", "alice-5",
                                                                              "alice-6", "bob-3", "bob-4"]),
        (EntryFilter(occurred_to=T0 + HOUR + timedelta(microseconds=1)), ["alice-1", "alice-2"]),
        (EntryFilter(occurred_to=T0 + HOUR), ["alice-1"]),
        (EntryFilter(min_amount=300, max_amount=500), ["alice-2", "bob-1", "bob-2", "alice-6"]),
        (EntryFilter(min_amount=701), ["alice-1"]),
        (EntryFilter(max_amount=50), ["bob-3", "bob-4"]),
        (EntryFilter(user_id="alice", kinds=(EntryKind.GRANTED, EntryKind.CLAWED_BACK), min_amount=100,
                     occurred_to=T0 + 40 * DAY), ["alice-1", "alice-2", "alice-5"]),
        (EntryFilter(user_id="bob", sources=("ORDER",), order_id="o-3"), ["bob-3"]),
        (EntryFilter(user_id="alice", sources=("MANUAL",)), []),
    ],
)  # fmt: skip
async def test_search_finds_what_the_filter_says_newest_first(
    subject: Subject, where: EntryFilter, expected: list[str]
) -> None:
    await subject.load(SHOP)
    found = await subject.index.search(where, 100, None)
    assert ids(found) == newest_first([e for e in SHOP if e.entry_id in expected])
    assert sorted(ids(found)) == sorted(expected)


async def test_search_pages_through_every_match_once_in_order(subject: Subject) -> None:
    crowd = [
        made(f"user-{n % 7}", n // 7 + 1, EntryKind.GRANTED if n % 3 else EntryKind.USED, n, T0 + (n % 11) * HOUR)
        for n in range(60)
    ]  # eleven distinct times: many entries share one, ordered by user and version
    await subject.load(crowd)
    for where in (EntryFilter(), EntryFilter(kinds=(EntryKind.GRANTED,)), EntryFilter(min_amount=10)):
        for size in (1, 7, 100):
            seen = await every_page(lambda after, w=where, s=size: subject.index.search(w, s, after))
            wanted = [
                e for e in crowd if (not where.kinds or e.kind in where.kinds) and e.amount >= (where.min_amount or 0)
            ]
            assert [e.entry_id for _, e in seen] == newest_first(wanted)


async def test_entries_of_one_microsecond_are_ordered_by_user_then_version(subject: Subject) -> None:
    at = T0 + timedelta(microseconds=7)
    same = [made(u, v, EntryKind.GRANTED, 1, at) for u in ("b", "a", "ü🙂", "B", "포인트") for v in (2, 1)]
    close = [made("a", 3, EntryKind.USED, 1, at + timedelta(microseconds=1))]
    await subject.load([*same, *close])
    seen = await every_page(lambda after: subject.index.search(EntryFilter(), 3, after))
    assert [(e.user_id, e.version) for _, e in seen] == [("a", 3)] + [
        (u, v) for u in ("포인트", "ü🙂", "b", "a", "B") for v in (2, 1)
    ]


@pytest.mark.parametrize(
    "cursor",
    ["not a cursor", "!!!!", "W10=", "eyJhIjogMX0=", "e30=", encode_cursor(["7"]), encode_cursor([1.5])],
)
async def test_a_malformed_cursor_is_a_value_error(subject: Subject, cursor: str) -> None:
    await subject.load(SHOP)
    with pytest.raises(ValueError):
        await subject.index.history("alice", 5, cursor)
    with pytest.raises(ValueError):
        subject.index.page(SHOP[:3], 5, cursor)
    with pytest.raises(ValueError):
        await subject.index.search(EntryFilter(), 5, cursor)


async def test_a_cursor_of_the_other_kind_of_page_is_a_value_error_in_search(subject: Subject) -> None:
    await subject.load(SHOP)
    history = await subject.index.history("alice", 2, None)
    with pytest.raises(ValueError):
        await subject.index.search(EntryFilter(), 5, history.entries[-1][0])
    with pytest.raises(ValueError):
        await subject.index.search(EntryFilter(), 5, encode_cursor([1, "alice", True]))


# -- stats ---------------------------------------------------------------------------------------------------------


async def test_stats_count_each_kind_in_its_bucket_and_the_liability_at_each_end(subject: Subject) -> None:
    await subject.load(SHOP)
    start = T0 + HOUR  # 10:30:15.123456: the first bucket is clipped, and alice-1 is before it
    stats = await subject.index.stats(start, T0 + 3 * DAY, Interval.DAY)
    rows = [
        (b.start, b.end, b.granted, b.used, b.use_cancelled, b.grant_cancelled, b.clawed_back, b.outstanding)
        for b in stats.buckets
    ]
    midnight = datetime(2026, 1, 2, tzinfo=UTC)
    assert rows == [
        (start, midnight, 800, 700, 0, 0, 0, 1_000 + 500 - 700 + 300),
        (midnight, midnight + DAY, 0, 0, 200, 300, 0, 1_100 + 200 - 300),
        (midnight + DAY, midnight + 2 * DAY, 0, 0, 0, 0, 100, 1_000 - 100),
        (midnight + 2 * DAY, T0 + 3 * DAY, 0, 0, 0, 0, 0, 900),
    ]
    months = await subject.index.stats(
        datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC), Interval.MONTH
    )
    assert [(b.start.month, b.granted, b.expired, b.outstanding) for b in months.buckets] == [
        (12, 0, 0, 0),
        (1, 1_800, 0, 900),
        (2, 50, 400, 550),
    ]


async def test_stats_of_a_generated_history_are_the_in_memory_index_s(subject: Subject) -> None:
    entries = await generated_history()
    kinds = {e.kind for e in entries}
    assert kinds == set(EntryKind), f"the generated history lacks {set(EntryKind) - kinds}"
    await subject.load(entries)
    reference = InMemoryHistoryIndex()
    await reference.index(entries)
    for start, end, interval in [
        (T0 - 3 * DAY, T0 + 80 * DAY, Interval.DAY),
        (T0 + 10 * DAY + 5 * HOUR, T0 + 50 * DAY + 7 * HOUR, Interval.DAY),
        (datetime(2025, 11, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC), Interval.MONTH),
        (T0 + 20 * DAY, T0 + 75 * DAY, Interval.MONTH),
    ]:
        assert await subject.index.stats(start, end, interval) == await reference.stats(start, end, interval)


async def generated_history() -> list[HistoryEntry]:
    """Entries made by the domain: a few accounts over some weeks with every kind of change."""
    ledger = make_ledger()
    users = [Driver(ledger, f"shopper-{n}") for n in range(4)]
    for day in range(60):
        for n, user in enumerate(users):
            if (day + n) % 3 == 0:
                granted = await user.grant(100 + day * 10 + n, Source.ORDER, expires_in=timedelta(days=20 + n))
                if day % 9 == 0:
                    await user.cancel_grant(granted.grant_id)
            if (day + n) % 4 == 1:
                promo = await user.grant(50, Source.PROMOTION, pending_for=timedelta(days=2), expires_in=30 * DAY)
                ledger.advance(hours=1)
                if day % 8 == 1:
                    await user.cancel_grant(promo.grant_id)
                elif day % 2 == 0:
                    await user.activate(promo.grant_id)
            if (day + n) % 5 == 2 and (await user.available()) >= 40:
                used = await user.use(40, order_id=f"order-{day}-{n}")
                if day % 2 == 0:
                    await user.cancel_use(used.use_id, amount=15)
            if day % 11 == 5 and n == 1:
                await user.grant(300, Source.ORDER, order_id=f"refund-{day}")
                await user.use(100)
                await user.clawback(f"refund-{day}", 250)
        ledger.advance(hours=21, minutes=17)
        await users[0].expire()
    events = await ledger.store.read_all(0, 1_000_000)
    return [entry for _, recorded in events if (entry := history_entry(recorded)) is not None]


# -- versions ------------------------------------------------------------------------------------------------------


async def test_the_version_is_that_of_the_newest_entry_indexed_for_the_account(subject: Subject) -> None:
    assert await subject.index.version("alice") == 0
    await subject.load([SHOP[0], SHOP[2]])  # versions 1 and 3, not 2
    assert await subject.index.version("alice") == 3
    assert await subject.index.version("bob") == 0
    await subject.load([SHOP[1]])
    assert await subject.index.version("alice") == 3


async def test_waiting_for_a_version_returns_as_soon_as_it_is_indexed(subject: Subject) -> None:
    waiter = asyncio.create_task(subject.index.wait_for_version("alice", 3, 5.0))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    began = time.monotonic()
    await subject.index.index(SHOP[:3])  # no refresh: waiting must see it all the same
    assert await waiter == 3
    assert time.monotonic() - began < 1.0
    assert await subject.index.wait_for_version("alice", 2, 0.0) == 3


async def test_waiting_for_a_version_never_indexed_answers_the_held_one_after_the_timeout(subject: Subject) -> None:
    await subject.load(SHOP[:2])
    began = time.monotonic()
    assert await subject.index.wait_for_version("alice", 9, 0.3) == 2
    assert 0.25 <= time.monotonic() - began < 1.5
    assert await subject.index.wait_for_version("nobody", 1, 0.0) == 0


# -- rebuild and reconcile ----------------------------------------------------------------------------------------


async def test_a_rebuilt_index_is_read_once_it_is_published_and_not_before(subject: Subject) -> None:
    await subject.load(SHOP)
    target = await subject.index.rebuild_target()
    await target.index(SHOP[:3])
    assert ids(await subject.index.search(EntryFilter(), 100, None)) == newest_first(SHOP)
    await subject.index.publish(target)
    assert ids(await subject.index.search(EntryFilter(), 100, None)) == newest_first(SHOP[:3])
    assert await subject.index.version("bob") == 0
    await subject.load(SHOP[3:])
    assert ids(await subject.index.search(EntryFilter(), 100, None)) == newest_first(SHOP)
    assert await subject.index.version("bob") == 4


async def test_summaries_give_each_account_s_entries_newest_version_and_deltas_by_user_id(subject: Subject) -> None:
    others = [made(u, 1, EntryKind.GRANTED, 10, T0) for u in ("포인트", "B", "ü🙂", "user:42", "alicf")]
    await subject.load([*SHOP, *others])
    alice = AccountSummary("alice", 6, 6, 1_000 + 500 - 700 + 200 - 100 - 400)
    bob = AccountSummary("bob", 4, 4, 300 - 300 + 50)
    assert await subject.index.summaries(None, 2) == [AccountSummary("B", 1, 1, 10), alice]
    assert await subject.index.summaries("alice", 2) == [AccountSummary("alicf", 1, 1, 10), bob]
    assert [s.user_id for s in await subject.index.summaries("bob", 10)] == ["user:42", "ü🙂", "포인트"]
    assert await subject.index.summaries("포인트", 10) == []


# -- both adapters answer alike -------------------------------------------------------------------------------------

USERS = ["a", "b", "B", "ü🙂", "포인트", "user:42"]
SPAN_MS = 70 * 86_400_000
KINDS = list(EntryKind)


@st.composite
def random_entries(draw: st.DrawFn) -> list[HistoryEntry]:
    versions = dict.fromkeys(USERS, 0)
    entries = []
    for n in range(draw(st.integers(0, 40))):
        user = draw(st.sampled_from(USERS))
        versions[user] += 1
        # times in whole milliseconds, often the same one: the in-memory index rounds microseconds through a float
        ms = draw(st.one_of(st.integers(0, 3), st.integers(0, SPAN_MS)))
        entries.append(
            made(
                user,
                versions[user],
                draw(st.sampled_from(KINDS)),
                draw(st.integers(0, 10_000)),
                T0 + timedelta(milliseconds=ms),
                source=draw(st.sampled_from([None, "ORDER", "MANUAL", "PROMOTION", "REISSUE"])),
                order_id=draw(st.sampled_from([None, "o-1", "o-2"])),
            )
        )
        entries[-1] = replace(entries[-1], entry_id=f"e{n}")  # ids unique across users
    return entries


moments = st.integers(-DAY.days * 86_400_000, SPAN_MS + 86_400_000).map(lambda ms: T0 + timedelta(milliseconds=ms))
filters = st.builds(
    EntryFilter,
    user_id=st.one_of(st.none(), st.sampled_from(USERS)),
    kinds=st.lists(st.sampled_from(KINDS), max_size=3).map(tuple),
    sources=st.lists(st.sampled_from(["ORDER", "MANUAL", "PROMOTION", "REISSUE"]), max_size=2).map(tuple),
    order_id=st.one_of(st.none(), st.just("o-1")),
    occurred_from=st.one_of(st.none(), moments),
    occurred_to=st.one_of(st.none(), moments),
    min_amount=st.one_of(st.none(), st.integers(0, 10_000)),
    max_amount=st.one_of(st.none(), st.integers(0, 10_000)),
)


async def same_answers(
    entries: list[HistoryEntry], where: EntryFilter, size: int, start: datetime, days: int, interval: Interval
) -> None:
    memory = InMemoryHistoryIndex()
    await memory.index(entries)
    async with opensearch_index() as index:
        await index.index(entries)
        await index.refresh()
        for user in USERS:
            assert await every_page(lambda a, u=user: index.history(u, size, a)) == await every_page(
                lambda a, u=user: memory.history(u, size, a)
            )
            assert await index.version(user) == await memory.version(user)
        assert await index.summaries(None, 100) == await memory.summaries(None, 100)
        found = await every_page(lambda a: index.search(where, size, a))
        expected = await every_page(lambda a: memory.search(where, size, a))
        assert [e for _, e in found] == [e for _, e in expected]
        end = start + timedelta(days=days)
        assert await index.stats(start, end, interval) == await memory.stats(start, end, interval)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=random_entries(),
    where=filters,
    size=st.integers(1, 7),
    start=moments,
    days=st.integers(1, 80),
    interval=st.sampled_from(list(Interval)),
)
def test_opensearch_answers_as_the_in_memory_index_for_random_entries(
    entries: list[HistoryEntry], where: EntryFilter, size: int, start: datetime, days: int, interval: Interval
) -> None:
    asyncio.run(same_answers(entries, where, size, start, days, interval))


# -- the OpenSearch adapter's own ----------------------------------------------------------------------------------


async def test_ensure_is_idempotent_and_makes_one_index_behind_the_alias(opensearch: OpenSearchHistoryIndex) -> None:
    await asyncio.gather(opensearch.ensure(), opensearch.ensure(), opensearch.ensure())
    assert await opensearch.indices() == [f"{opensearch.alias}-v1"]


async def test_a_rebuilt_index_takes_the_alias_and_the_old_one_is_deleted(opensearch: OpenSearchHistoryIndex) -> None:
    await opensearch.index(SHOP)
    await opensearch.refresh()
    new = await opensearch.new_index()
    assert new != f"{opensearch.alias}-v1" and new.startswith(f"{opensearch.alias}-v")
    await opensearch.index(SHOP[:3], into=new)
    assert len(ids(await opensearch.search(EntryFilter(), 100, None))) == len(SHOP)  # the alias is untouched
    assert await opensearch.swap_alias(new) == [f"{opensearch.alias}-v1"]
    assert await opensearch.indices() == [new]
    assert ids(await opensearch.search(EntryFilter(), 100, None)) == newest_first(SHOP[:3])
    await opensearch.index(SHOP[3:])  # through the alias, into the new index
    await opensearch.refresh()
    assert ids(await opensearch.search(EntryFilter(), 100, None)) == newest_first(SHOP)


async def test_a_document_with_a_field_outside_the_mapping_is_refused(opensearch: OpenSearchHistoryIndex) -> None:
    mapping = await opensearch._call(opensearch._client.indices.get_mapping, index=opensearch.alias)
    (properties,) = [m["mappings"]["properties"] for m in mapping.values()]
    assert {name: spec.get("type") for name, spec in properties.items()} == {
        "entry_id": "keyword", "user_id": "keyword", "version": "long", "kind": "keyword", "amount": "long",
        "delta": "long", "occurred_at": "date", "occurred_us": "long", "source": "keyword", "order_id": "keyword",
        "grant_id": "keyword", "use_id": "keyword", "reason": "keyword", "lots": "object",
    }  # fmt: skip
    with pytest.raises(Exception, match="strict_dynamic_mapping"):
        await opensearch._call(
            opensearch._client.index, index=opensearch.alias, body={**document(SHOP[0]), "colour": "red"}
        )


async def test_a_server_that_is_not_there_is_unavailable_within_the_timeout() -> None:
    index = OpenSearchHistoryIndex.open("http://127.0.0.1:9", alias="ptest-nowhere", timeout=1.0)
    try:
        began = time.monotonic()
        for call in (
            index.index(SHOP),
            index.history("alice", 5, None),
            index.search(EntryFilter(), 5, None),
            index.stats(T0, T0 + DAY, Interval.DAY),
            index.wait_for_version("alice", 1, 0.2),
        ):
            with pytest.raises(ReadModelUnavailableError):
                await call
        assert time.monotonic() - began < 5
    finally:
        await index.close()


async def test_a_server_that_never_answers_is_unavailable_after_the_timeout() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # reads the request and never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    index = OpenSearchHistoryIndex.open(f"http://127.0.0.1:{port}", alias="ptest-silent", timeout=0.5)
    try:
        began = time.monotonic()
        with pytest.raises(ReadModelUnavailableError):
            await index.search(EntryFilter(user_id="alice"), 5, None)
        with pytest.raises(ReadModelUnavailableError):
            await index.index(SHOP)
        assert time.monotonic() - began < 3
    finally:
        await index.close()
        server.close()


async def test_a_write_without_the_alias_is_refused_and_makes_no_index(opensearch: OpenSearchHistoryIndex) -> None:
    lost = OpenSearchHistoryIndex.open(OPENSEARCH_URL, alias=f"{opensearch.alias}-missing")
    try:
        with pytest.raises(ReadModelUnavailableError):
            await lost.index(SHOP)
        with pytest.raises(ReadModelUnavailableError):
            await lost.history("alice", 5, None)
        assert await lost.indices() == []
    finally:
        await lost.close()
