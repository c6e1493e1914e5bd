"""The BalanceView contract, written once and run against the in-memory adapter (the embedded default) and the Redis
one (the stack's; ``scripts/test.sh`` starts Redis, and the Redis cases fail when it is not there, at
``POINTS_REDIS_URL``, default redis://127.0.0.1:6379/0). Each Redis case writes under a key prefix of its own and
deletes its keys afterwards. ``lots`` of a whole account come in no order the port promises, so they are compared by
grant id. The last tests are the Redis adapter's own: its keys, its scripts lost by Redis, and a server that is not
there."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import redis.asyncio as redis
from redis.crc import key_slot

from app.adapters.inmemory.event_store import InMemoryEventStore
from app.adapters.inmemory.read_models import InMemoryBalanceView
from app.adapters.redis import balance_view
from app.adapters.redis.balance_view import RedisBalanceView
from app.application.projection import BalanceProjection
from app.domain.account import LotStatus
from app.domain.events import Allocation, PointsGranted, RecordedEvent, Source
from app.ports.errors import ReadModelUnavailableError
from app.ports.read_models import AccountView, BalanceView, EntryKind, HistoryEntry, LotView, ProjectionGapError
from tests.servers import REDIS_URL, redis_client

KEEP = 5
T0 = datetime(2026, 1, 1, 9, 30, 15, 123456, tzinfo=UTC)
DAY = timedelta(days=1)
SPECIAL_IDS = ["{alice}", "a:b:{c}", "}{", "{", "%7B", "a%b", "user:42", "포인트-사용자", "ü🙂{}", ""]


async def delete_namespace(client: redis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)


@contextlib.asynccontextmanager
async def redis_namespace() -> AsyncIterator[RedisBalanceView]:
    """A Redis view under a key prefix of its own, whose keys are deleted afterwards."""
    client = await redis_client()
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    try:
        yield RedisBalanceView(client, prefix, keep_recent=KEEP, poll_seconds=0.005)
    finally:
        await delete_namespace(client, prefix)
        await client.aclose()


@pytest.fixture
async def redis_view() -> AsyncIterator[RedisBalanceView]:
    async with redis_namespace() as view:
        yield view


@pytest.fixture(params=["memory", "redis"])
async def view(request: pytest.FixtureRequest) -> AsyncIterator[BalanceView]:
    if request.param == "memory":
        yield InMemoryBalanceView(keep_recent=KEEP)
        return
    async with redis_namespace() as view:
        yield view


def user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def lot(grant_id: str, remaining: int = 1000, **changes: Any) -> LotView:
    base = LotView(
        grant_id=grant_id,
        source="MALL",
        amount=1000,
        remaining=remaining,
        granted_at=T0,
        expires_at=T0 + 365 * DAY,
        status=LotStatus.ACTIVE,
        manual=False,
    )
    return replace(base, **changes)


def entry(user_id: str, version: int, kind: EntryKind = EntryKind.GRANTED, **changes: Any) -> HistoryEntry:
    base = HistoryEntry(
        entry_id=f"event-{user_id}-{version}",
        user_id=user_id,
        version=version,
        kind=kind,
        amount=100 * version,
        delta=100 * version,
        occurred_at=T0 + version * timedelta(seconds=1),
        source="MALL",
    )
    return replace(base, **changes)


def by_grant(lots: list[LotView]) -> dict[str, LotView]:
    return {lot.grant_id: lot for lot in lots}


async def test_events_apply_in_version_order_and_a_later_lot_replaces_the_earlier(view: BalanceView) -> None:
    who = user()
    assert await view.version(who) == 0
    assert await view.lots(who) == []
    assert await view.apply(who, 1, [lot("g1")], entry(who, 1))
    assert await view.apply(who, 2, [lot("g2", 500)], entry(who, 2))
    assert await view.apply(who, 3, [lot("g1", 300)], entry(who, 3, EntryKind.USED, delta=-700))
    assert await view.version(who) == 3
    assert by_grant(await view.lots(who)) == {"g1": lot("g1", 300), "g2": lot("g2", 500)}


async def test_a_redelivered_event_returns_false_and_changes_nothing(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [lot("g1")], entry(who, 1))
    await view.apply(who, 2, [lot("g1", 400)], entry(who, 2))
    before = (await view.lots(who), await view.recent(who))
    assert not await view.apply(who, 2, [lot("g1", 1)], entry(who, 2, amount=1))
    assert not await view.apply(who, 1, [lot("g1", 2), lot("g9")], entry(who, 1))
    assert (await view.lots(who), await view.recent(who)) == before
    assert await view.version(who) == 2


async def test_an_event_past_a_missing_version_raises_a_gap_and_changes_nothing(view: BalanceView) -> None:
    who = user()
    with pytest.raises(ProjectionGapError, match="version 2 while at 0"):
        await view.apply(who, 2, [lot("g1")], entry(who, 2))
    assert (await view.version(who), await view.lots(who), (await view.recent(who)).entries) == (0, [], [])
    await view.apply(who, 1, [lot("g1")], entry(who, 1))
    before = (await view.lots(who), await view.recent(who))
    with pytest.raises(ProjectionGapError, match="version 3 while at 1"):
        await view.apply(who, 3, [lot("g1", 1), lot("g2")], entry(who, 3))
    assert (await view.lots(who), await view.recent(who)) == before
    assert await view.version(who) == 1


async def test_lots_read_back_exactly_as_written(view: BalanceView) -> None:
    who = user()
    seoul = timezone(timedelta(hours=9))
    written = [
        lot("g-active"),
        lot(
            "g-pending",
            status=LotStatus.PENDING,
            pending_until=T0 + 7 * DAY,
            order_id="order-1",
            source="PURCHASE",
        ),
        lot("g-manual", manual=True, source="ADMIN", granted_at=datetime(2026, 3, 1, 8, tzinfo=seoul)),
        lot(
            "g-reissued", reissued_from="g-expired", order_id="order-2", expires_at=T0 + DAY + timedelta(microseconds=1)
        ),
        lot("g-cancelled", 0, status=LotStatus.CANCELLED),
        lot("g-expired", 0, status=LotStatus.EXPIRED, pending_until=T0),
        lot("포인트:{지급}", 7, source="이벤트", order_id="주문-1"),
        lot("g-zero-amount", 0, amount=0, reissued_from=""),
    ]
    assert await view.apply(who, 1, written, None)
    read = by_grant(await view.lots(who))
    assert read == by_grant(written)
    for grant_id, held in read.items():
        original = by_grant(written)[grant_id]
        assert held.granted_at.utcoffset() == original.granted_at.utcoffset()
        assert type(held.status) is LotStatus and type(held.manual) is bool


async def test_lots_by_grant_ids_come_in_the_order_asked_without_the_missing(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [lot("g1"), lot("g2", 2), lot("g3", 3)], None)
    assert await view.lots(who, ["g3", "missing", "g1"]) == [lot("g3", 3), lot("g1")]
    assert await view.lots(who, []) == []
    assert await view.lots(who, ["missing"]) == []
    assert await view.lots(user(), ["g1"]) == []


async def test_an_event_with_many_lots_writes_them_all(view: BalanceView) -> None:
    who = user()
    many = [lot(f"g{i}", i) for i in range(1500)]
    assert await view.apply(who, 1, many, entry(who, 1))
    assert by_grant(await view.lots(who)) == by_grant(many)


async def test_recent_keeps_the_newest_entries_first_and_is_complete_until_more_were_made(view: BalanceView) -> None:
    who = user()
    assert view.keep_recent == KEEP
    empty = await view.recent(who)
    assert (empty.version, empty.entries, empty.complete) == (0, [], True)
    written = [
        entry(who, 1),
        entry(
            who, 2, EntryKind.USED, delta=-200, order_id="order-1", lots=(Allocation("g1", 150), Allocation("g2", 50))
        ),
        entry(who, 3, EntryKind.USE_CANCELLED, use_id="use-1", reason="고객 요청 {취소}", source=None),
        entry(
            who, 4, EntryKind.EXPIRED, amount=0, delta=0, grant_id="g1", occurred_at=T0.astimezone(timezone(-DAY / 4))
        ),
        replace(entry(who, 5, EntryKind.CLAWED_BACK), user_id="someone-else"),
    ]
    for e in written:
        await view.apply(who, e.version, [], e)
    full = await view.recent(who)
    assert (full.version, full.entries, full.complete) == (5, written[::-1], True)
    assert full.entries[1].occurred_at.utcoffset() == -DAY / 4
    await view.apply(who, 6, [], entry(who, 6))
    await view.apply(who, 7, [], entry(who, 7))
    past = await view.recent(who)
    assert past.version == 7
    assert [e.version for e in past.entries] == [7, 6, 5, 4, 3]
    assert past.entries[2:] == written[:1:-1]
    assert not past.complete


async def test_an_event_without_an_entry_advances_the_version_and_adds_no_entry(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [lot("g1")], entry(who, 1))
    assert await view.apply(who, 2, [lot("g1", 0, status=LotStatus.EXPIRED)], None)
    assert await view.apply(who, 3, [], None)
    recent = await view.recent(who)
    assert (recent.version, [e.version for e in recent.entries], recent.complete) == (3, [1], True)
    for version in range(4, 4 + KEEP):  # only entries count towards keep_recent
        await view.apply(who, version, [], None)
    assert (await view.recent(who)).complete


async def test_wait_for_version_answers_at_once_when_the_version_is_held(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [], None)
    await view.apply(who, 2, [], None)
    started = time.monotonic()
    assert await view.wait_for_version(who, 1, 5.0) == 2
    assert await view.wait_for_version(who, 2, 5.0) == 2
    assert await view.wait_for_version(user(), 0, 5.0) == 0
    assert time.monotonic() - started < 0.5


async def test_wait_for_version_returns_once_another_task_applies_it(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [], None)

    async def later() -> None:
        await asyncio.sleep(0.05)
        await view.apply(who, 2, [], None)
        await asyncio.sleep(0.05)
        await view.apply(who, 3, [lot("g1")], None)

    started = time.monotonic()
    waited, _ = await asyncio.gather(view.wait_for_version(who, 3, 5.0), later())
    assert waited == 3
    assert time.monotonic() - started < 2.0


async def test_wait_for_version_gives_the_lower_version_after_its_timeout(view: BalanceView) -> None:
    who = user()
    await view.apply(who, 1, [], None)
    started = time.monotonic()
    assert await view.wait_for_version(who, 2, 0.1) == 1
    assert 0.09 <= time.monotonic() - started < 1.0
    assert await view.wait_for_version(who, 2, 0.0) == 1
    assert await view.wait_for_version(user(), 1, 0.02) == 0


async def test_accounts_whose_ids_hold_braces_colons_or_any_script_are_kept_apart(view: BalanceView) -> None:
    suffix = uuid.uuid4().hex[:6]
    ids = [who + suffix if who else who for who in SPECIAL_IDS]  # the empty id as it is: each view is the test's own
    for i, who in enumerate(ids):
        for version in range(1, i + 2):
            await view.apply(who, version, [lot(f"g-{who}", version)], entry(who, version))
    for i, who in enumerate(ids):
        assert await view.version(who) == i + 1
        assert await view.lots(who) == [lot(f"g-{who}", i + 1)]
        recent = await view.recent(who)
        assert recent.version == i + 1
        assert recent.entries[0] == entry(who, i + 1)


async def test_of_two_concurrent_applies_of_one_version_exactly_one_wins(view: BalanceView) -> None:
    accounts = [user() for _ in range(20)]
    for who in accounts:
        await view.apply(who, 1, [lot("g0")], entry(who, 1))
    outcomes = await asyncio.gather(
        *(
            view.apply(who, 2, [lot("g0", side), lot(f"g-{side}")], entry(who, 2, amount=side))
            for who in accounts
            for side in (1, 2)
        )
    )
    for i, who in enumerate(accounts):
        first, second = outcomes[2 * i], outcomes[2 * i + 1]
        assert first != second
        winner = 1 if first else 2
        assert by_grant(await view.lots(who)) == by_grant([lot("g0", winner), lot(f"g-{winner}")])
        recent = await view.recent(who)
        assert (recent.version, [e.amount for e in recent.entries]) == (2, [winner, 100])


async def test_apply_many_applies_each_event_on_its_own_and_a_gap_fails_only_its_own(view: BalanceView) -> None:
    first, second, gapped = user(), user(), user()
    await view.apply(first, 1, [lot("g1")], entry(first, 1))
    outcomes = await view.apply_many(
        [
            (first, 1, [lot("g1", 5)], entry(first, 1)),  # a redelivery
            (first, 2, [lot("g1", 900)], entry(first, 2)),
            (second, 1, [lot("g2")], None),
            (gapped, 2, [lot("g3")], entry(gapped, 2)),  # a gap: fails alone
            (first, 3, [lot("g1", 800), lot("g4")], entry(first, 3)),
            (second, 2, [], entry(second, 2)),
        ]
    )
    assert outcomes[:3] == [False, True, True]
    assert isinstance(outcomes[3], ProjectionGapError) and "version 2 while at 0" in str(outcomes[3])
    assert outcomes[4:] == [True, True]
    assert by_grant(await view.lots(first)) == by_grant([lot("g1", 800), lot("g4")])
    assert [e.version for e in (await view.recent(first)).entries] == [3, 2, 1]
    assert (await view.version(second), await view.version(gapped)) == (2, 0)
    assert await view.apply_many([]) == []


async def test_replace_many_writes_accounts_whole_unless_the_view_is_ahead(view: BalanceView) -> None:
    replaced, fresh, ahead, level = user(), user(), user(), user()
    for who in (replaced, ahead, level):
        for version in (1, 2, 3):
            await view.apply(who, version, [lot(f"g{version}")], entry(who, version))
    newest = [entry(replaced, 9), entry(replaced, 7, EntryKind.USED, lots=(Allocation("g8", 5),))]
    written = await view.replace_many(
        [
            AccountView(replaced, 9, [lot("g8", 5), lot("g9", status=LotStatus.PENDING, pending_until=T0)], newest, 12),
            AccountView(fresh, 4, [lot("g1")], [entry(fresh, 4)], 1),
            AccountView(ahead, 2, [lot("stale")], [], 0),
            AccountView(level, 3, [lot("g1", 1)], [entry(level, 3)], 3),
            AccountView(user(), 1, [], [], 0),
        ]
    )
    assert written == 4
    assert by_grant(await view.lots(replaced)) == by_grant(
        [lot("g8", 5), lot("g9", status=LotStatus.PENDING, pending_until=T0)]
    )
    recent = await view.recent(replaced)
    assert (recent.version, recent.entries, recent.complete) == (9, newest, False)
    recent = await view.recent(fresh)
    assert (recent.version, recent.entries, recent.complete) == (4, [entry(fresh, 4)], True)
    assert by_grant(await view.lots(ahead)) == by_grant([lot("g1"), lot("g2"), lot("g3")])
    assert (await view.version(ahead), [e.version for e in (await view.recent(ahead)).entries]) == (3, [3, 2, 1])
    assert await view.lots(level) == [lot("g1", 1)]
    assert await view.replace_many([]) == 0
    assert not await view.apply(replaced, 9, [lot("g8", 0)], entry(replaced, 9))
    assert await view.apply(replaced, 10, [lot("g8", 0)], entry(replaced, 10))
    assert [e.version for e in (await view.recent(replaced)).entries] == [10, 9, 7]
    assert await view.wait_for_version(fresh, 4, 0.0) == 4


# The Redis adapter's own.


async def test_an_accounts_redis_keys_share_one_hash_tag_of_that_account_alone(redis_view: RedisBalanceView) -> None:
    tags = set()
    for who in SPECIAL_IDS:
        keys = redis_view.keys(who)
        assert len({key_slot(key.encode()) for key in keys}) == 1
        tag = keys[0].split("{", 1)[1].split("}", 1)[0]
        assert tag and all(key.startswith(f"{keys[0][: -len('meta')]}") for key in keys)
        tags.add(tag)
    assert len(tags) == len(SPECIAL_IDS)
    assert redis_view.keys("alice")[1].endswith(":{alice}:lots")
    with pytest.raises(ValueError, match="braces"):
        RedisBalanceView(redis_view._client, "points{x}")


async def test_redis_keeps_only_the_newest_entries_and_the_keys_are_namespaced(redis_view: RedisBalanceView) -> None:
    who = user()
    for version in range(1, 3 * KEEP):
        await redis_view.apply(who, version, [lot("g1", version)], entry(who, version))
    client = redis_view._client
    meta, lots, recent = redis_view.keys(who)
    assert await client.llen(recent) == KEEP
    assert await client.hgetall(meta) == {b"v": str(3 * KEEP - 1).encode(), b"n": str(3 * KEEP - 1).encode()}
    assert await client.hkeys(lots) == [b"g1"]
    await redis_view.delete_account(who)
    assert await client.exists(meta, lots, recent) == 0
    assert await redis_view.version(who) == 0


async def test_apply_many_and_replace_many_load_their_scripts_again_when_redis_lost_them(
    redis_view: RedisBalanceView, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(balance_view, "BATCH", 4)  # several round trips
    who = user()
    redis_view._apply.sha = "0" * 40  # as if Redis had restarted: NOSCRIPT
    items = [(who, v, [lot("g1", v)], entry(who, v)) for v in range(1, 11)]
    assert await redis_view.apply_many(items) == [True] * 10
    assert await redis_view.version(who) == 10
    assert await redis_view.apply_many(items[-2:]) == [False, False]
    redis_view._replace.sha = "0" * 40
    accounts = [AccountView(who, 11, [], [], 0), *(AccountView(user(), 1, [], [], 0) for _ in range(5))]
    assert await redis_view.replace_many(accounts) == 6


async def test_a_redis_that_is_not_there_is_unavailable_within_seconds() -> None:
    view = RedisBalanceView.open("redis://127.0.0.1:1/0")
    try:
        started = time.monotonic()
        for call in (
            view.version("a"),
            view.lots("a"),
            view.lots("a", ["g1"]),
            view.recent("a"),
            view.apply("a", 1, [lot("g1")], None),
            view.apply_many([("a", 1, [lot("g1")], None)]),
            view.wait_for_version("a", 1, 0.1),
            view.delete_account("a"),
        ):
            with pytest.raises(ReadModelUnavailableError, match="balance view"):
                await call
        assert time.monotonic() - started < 10
    finally:
        await view.aclose()


async def test_a_redis_that_does_not_answer_is_unavailable_after_the_socket_timeout() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await done.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    view = RedisBalanceView.open(f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0")
    try:
        started = time.monotonic()
        with pytest.raises(ReadModelUnavailableError, match="Timeout"):
            await view.apply("a", 1, [lot("g1")], None)
        assert balance_view.SOCKET_TIMEOUT <= time.monotonic() - started < 2 * balance_view.SOCKET_TIMEOUT
    finally:
        done.set()
        await view.aclose()
        server.close()
        await server.wait_closed()


async def test_a_connection_that_redis_dropped_is_replaced_without_an_error() -> None:
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    view = RedisBalanceView.open(REDIS_URL, prefix=prefix)
    admin = await redis_client()
    try:
        who = user()
        assert await view.apply(who, 1, [lot("g1")], None)
        mine = await view._client.client_id()  # the pool's one connection, as the calls come one at a time
        assert await admin.client_kill_filter(_id=mine) == 1
        assert await view.apply(who, 2, [lot("g1", 5)], None)
        assert (await view.version(who), await view.lots(who)) == (2, [lot("g1", 5)])
    finally:
        await delete_namespace(admin, prefix)
        await admin.aclose()
        await view.aclose()


async def test_many_accounts_read_together_give_each_its_version_and_asked_lots(view: BalanceView) -> None:
    users = [user() for _ in range(300)]  # past the Redis pool's 100 connections, were they read one call each
    await view.apply_many([(u, 1, [lot(f"{u}-a"), lot(f"{u}-b", 5)], None) for u in users[:250]])

    found = await view.read_many([(u, [f"{u}-b", f"{u}-missing"]) for u in users] + [(users[0], [])])

    assert [version for version, _ in found] == [1] * 250 + [0] * 50 + [1]
    assert all(lots == [lot(f"{u}-b", 5)] for u, (_, lots) in zip(users[:250], found, strict=False))
    assert all(lots == [] for _, lots in found[250:])


async def test_a_projected_batch_of_many_accounts_goes_through_in_one_read(view: BalanceView) -> None:
    users = [user() for _ in range(400)]
    batch = [
        RecordedEvent(
            f"{u}-e1",
            u,
            1,
            PointsGranted(T0, f"{u}-g", 10, Source.PROMOTION, T0 + 30 * DAY, 30 * 86_400),
        )
        for u in users
    ]

    assert await BalanceProjection(view).project_batch(batch, InMemoryEventStore()) == 400
    assert await BalanceProjection(view).project_batch(batch, InMemoryEventStore()) == 0, "a redelivery"
    assert [await view.version(u) for u in users[:3]] == [1, 1, 1]


async def test_more_concurrent_readers_than_connections_wait_for_one_instead_of_failing() -> None:
    view = RedisBalanceView.open(REDIS_URL, prefix=f"t{uuid.uuid4().hex[:8]}")
    try:
        found = await asyncio.gather(*(view.lots(f"u{n}") for n in range(250)))
        assert found == [[] for _ in range(250)]
    finally:
        await view.aclose()
