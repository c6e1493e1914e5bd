"""Queries over the read models: expiring soon (rule 14), history newest first, admin search, statistics (rule 15)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from app.application.queries.balances import ExpiringAmount
from app.application.queries.history import StatsRequest
from app.domain.errors import InvalidInputError
from app.domain.events import Source
from app.ports.read_models import EntryFilter, EntryKind, HistoryEntry, Interval
from tests.ledger import START, Ledger
from tests.unit.support import Driver

DAY = timedelta(days=1)


# -- expiring soon ---------------------------------------------------------------------------------------------


async def test_expiring_soon_lists_every_upcoming_date_with_its_amount(u1: Driver) -> None:
    await u1.grant(100, expires_in=3 * DAY)
    await u1.grant(50, expires_in=3 * DAY + timedelta(hours=5))
    await u1.grant(70, Source.MANUAL, expires_in=10 * DAY)
    await u1.grant(30, expires_in=20 * DAY)
    await u1.grant(999, expires_in=40 * DAY)
    await u1.use(80)  # all from the manual lot: 70, then 10 of the first lot to expire
    await u1.ledger.project()

    expiring = await u1.s.expiring.execute("u1", 30)
    assert expiring.dates == [
        ExpiringAmount(date(2026, 1, 4), 140),
        ExpiringAmount(date(2026, 1, 21), 30),
    ]
    assert expiring.total == 170


async def test_expiring_soon_leaves_out_lapsed_cancelled_and_pending_points(u1: Driver) -> None:
    await u1.grant(100, expires_in=2 * DAY)
    cancelled = await u1.grant(100, expires_in=10 * DAY)
    await u1.cancel_grant(cancelled.grant_id)
    await u1.grant(100, pending_for=5 * DAY, expires_in=5 * DAY + 5 * DAY)
    await u1.grant(40, expires_in=9 * DAY)
    u1.ledger.advance(days=3)
    await u1.ledger.project()
    expiring = await u1.s.expiring.execute("u1", 30)
    assert expiring.dates == [ExpiringAmount(date(2026, 1, 10), 40)]


async def test_pending_points_show_up_as_expiring_once_they_activate(u1: Driver) -> None:
    await u1.grant(100, pending_for=5 * DAY, expires_in=5 * DAY + 5 * DAY)
    u1.ledger.advance(days=5)
    await u1.ledger.project()
    assert (await u1.s.expiring.execute("u1", 30)).dates == [ExpiringAmount(date(2026, 1, 11), 100)]


async def test_expiring_soon_gives_dates_in_utc_whatever_offset_the_expiry_was_given_in(u1: Driver) -> None:
    seoul = timezone(timedelta(hours=9))
    await u1.grant(100, expires_at=datetime(2026, 1, 10, 8, 0, tzinfo=seoul))  # 2026-01-09 23:00 UTC
    await u1.grant(50, expires_at=datetime(2026, 1, 9, 12, 0, tzinfo=UTC))
    await u1.ledger.project()
    assert (await u1.s.expiring.execute("u1", 30)).dates == [ExpiringAmount(date(2026, 1, 9), 150)]


@pytest.mark.parametrize("days", [0, 5 * 366 + 1])
async def test_an_expiring_window_out_of_range_is_refused(ledger: Ledger, days: int) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.expiring.execute("u1", days)


# -- history ---------------------------------------------------------------------------------------------------


async def test_history_lists_every_change_newest_first(u1: Driver) -> None:
    grant = await u1.grant(100, Source.ORDER, order_id="o-1", expires_in=5 * DAY)
    used = await u1.use(60, order_id="o-2")
    await u1.cancel_use(used.use_id, 10)
    await u1.clawback("o-1", 20)
    u1.ledger.advance(days=6)
    await u1.expire()
    await u1.ledger.project()

    page = await u1.s.history.execute("u1", first=10)
    entries = [entry for _, entry in page.entries]
    assert [(e.kind, e.amount, e.delta) for e in entries] == [
        (EntryKind.EXPIRED, 30, -30),
        (EntryKind.CLAWED_BACK, 20, -20),
        (EntryKind.USE_CANCELLED, 10, 10),
        (EntryKind.USED, 60, -60),
        (EntryKind.GRANTED, 100, 100),
    ]
    assert [e.version for e in entries] == [5, 4, 3, 2, 1]
    assert (entries[-1].grant_id, entries[-1].source, entries[-1].order_id) == (grant.grant_id, "ORDER", "o-1")
    assert (entries[3].use_id, entries[3].order_id) == (used.use_id, "o-2")
    assert page.has_next is False


async def test_history_pages_follow_their_cursors_without_gaps_or_repeats(u1: Driver) -> None:
    for n in range(7):
        await u1.grant(10 + n)
        u1.ledger.advance(minutes=1)
    await u1.ledger.project()

    seen: list[HistoryEntry] = []
    after = None
    pages = []
    while True:
        page = await u1.s.history.execute("u1", first=3, after=after)
        seen += [entry for _, entry in page.entries]
        pages.append((len(page.entries), page.has_next))
        if not page.has_next:
            break
        after = page.entries[-1][0]
    assert pages == [(3, True), (3, True), (1, False)]
    assert [e.amount for e in seen] == [16, 15, 14, 13, 12, 11, 10]


async def test_history_shows_only_the_users_own_changes(ledger: Ledger) -> None:
    await Driver(ledger, "u1").grant(10)
    await Driver(ledger, "u2").grant(20)
    await ledger.project()
    page = await ledger.services.history.execute("u2")
    assert [(e.user_id, e.amount) for _, e in page.entries] == [("u2", 20)]


@pytest.mark.parametrize("first,after", [(0, None), (101, None), (10, "not-a-cursor!")])
async def test_a_history_page_out_of_range_or_with_a_foreign_cursor_is_refused(
    ledger: Ledger, first: int, after: str | None
) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.history.execute("u1", first=first, after=after)


# -- admin search ----------------------------------------------------------------------------------------------


async def searchable(ledger: Ledger) -> None:
    u1, u2 = Driver(ledger, "u1"), Driver(ledger, "u2")
    await u1.grant(100, Source.ORDER, order_id="o-1")  # day 0
    await u1.grant(500, Source.MANUAL)
    ledger.advance(days=1)
    await u2.grant(300, Source.PROMOTION)  # day 1
    await u2.grant(40, Source.ORDER, order_id="o-2")
    ledger.advance(days=1)
    await u1.use(250, order_id="o-3")  # day 2
    await u2.use(30, order_id="o-4")
    await ledger.project()


async def found(ledger: Ledger, where: EntryFilter) -> list[tuple[str, EntryKind, int]]:
    page = await ledger.services.search.execute(where, first=100)
    return [(e.user_id, e.kind, e.amount) for _, e in page.entries]


async def test_admin_search_filters_by_user_kind_source_and_order(ledger: Ledger) -> None:
    await searchable(ledger)
    g, u = EntryKind.GRANTED, EntryKind.USED
    assert await found(ledger, EntryFilter(user_id="u1")) == [("u1", u, 250), ("u1", g, 500), ("u1", g, 100)]
    assert await found(ledger, EntryFilter(kinds=(u,))) == [("u2", u, 30), ("u1", u, 250)]
    assert await found(ledger, EntryFilter(sources=("ORDER",))) == [("u2", g, 40), ("u1", g, 100)]
    assert await found(ledger, EntryFilter(sources=("MANUAL", "PROMOTION"))) == [("u2", g, 300), ("u1", g, 500)]
    assert await found(ledger, EntryFilter(order_id="o-3")) == [("u1", u, 250)]
    assert await found(ledger, EntryFilter(user_id="u2", kinds=(g,), sources=("ORDER",))) == [("u2", g, 40)]


async def test_admin_search_filters_by_time_and_amount_range(ledger: Ledger) -> None:
    await searchable(ledger)
    g, u = EntryKind.GRANTED, EntryKind.USED
    day1 = EntryFilter(occurred_from=START + DAY, occurred_to=START + 2 * DAY)
    assert await found(ledger, day1) == [("u2", g, 40), ("u2", g, 300)]
    assert await found(ledger, EntryFilter(occurred_from=START + 2 * DAY)) == [("u2", u, 30), ("u1", u, 250)]
    assert await found(ledger, EntryFilter(min_amount=100, max_amount=300)) == [
        ("u1", u, 250),
        ("u2", g, 300),
        ("u1", g, 100),
    ]
    assert await found(ledger, EntryFilter(max_amount=39)) == [("u2", u, 30)]


async def test_admin_search_pages_through_every_account_newest_first(ledger: Ledger) -> None:
    await searchable(ledger)
    amounts: list[int] = []
    after = None
    while True:
        page = await ledger.services.search.execute(EntryFilter(), first=4, after=after)
        amounts += [e.amount for _, e in page.entries]
        if not page.has_next:
            break
        after = page.entries[-1][0]
    assert sorted(amounts) == sorted([100, 500, 300, 40, 250, 30])
    assert len(amounts) == 6


async def test_an_inverted_amount_range_is_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.search.execute(EntryFilter(min_amount=10, max_amount=5))


# -- statistics ------------------------------------------------------------------------------------------------


async def test_stats_per_day_give_each_movement_and_the_liability_at_the_end_of_the_day(ledger: Ledger) -> None:
    u1 = Driver(ledger)
    cancelled = await u1.grant(50)  # day 0
    await u1.grant(100, expires_in=2 * DAY)
    await u1.grant(200, Source.ORDER, order_id="o-1", expires_in=10 * DAY)
    await u1.cancel_grant(cancelled.grant_id)
    ledger.advance(days=1)
    used = await u1.use(150)  # day 1: 100 of the short lot, 50 of the order's
    await u1.cancel_use(used.use_id, 120)  # gives 100 back to the short lot, 20 to the order's
    await u1.clawback("o-1", 30)
    ledger.advance(days=1, hours=12)
    await u1.expire()  # day 2: the short lot lapsed at midnight with 100 left
    await ledger.project()

    stats = await ledger.services.stats.execute(StatsRequest(START, START + 4 * DAY, Interval.DAY))
    rows = [
        (b.granted, b.grant_cancelled, b.used, b.use_cancelled, b.clawed_back, b.expired, b.outstanding)
        for b in stats.buckets
    ]
    assert rows == [
        (350, 50, 0, 0, 0, 0, 300),
        (0, 0, 150, 120, 30, 0, 240),
        (0, 0, 0, 0, 0, 100, 140),
        (0, 0, 0, 0, 0, 0, 140),
    ]
    assert [b.start for b in stats.buckets] == [START + n * DAY for n in range(4)]


async def test_stats_put_expired_points_in_the_period_they_lapsed_even_when_the_batch_ran_later(
    ledger: Ledger,
) -> None:
    u1 = Driver(ledger)
    await u1.grant(100, expires_in=2 * DAY + timedelta(hours=6))  # lapses on day 2 at 06:00
    await u1.grant(10)
    ledger.advance(days=5)
    await u1.expire()  # the batch runs on day 5
    await ledger.project()

    stats = await ledger.services.stats.execute(StatsRequest(START, START + 6 * DAY, Interval.DAY))
    assert [b.expired for b in stats.buckets] == [0, 0, 100, 0, 0, 0]
    assert [b.outstanding for b in stats.buckets] == [110, 110, 10, 10, 10, 10]


async def test_stats_per_month_follow_calendar_months(ledger: Ledger) -> None:
    u1 = Driver(ledger)
    await u1.grant(100)  # January
    ledger.advance(days=40)
    await u1.grant(50)  # February
    await u1.use(30)
    ledger.advance(days=30)
    await u1.use(20)  # March
    await ledger.project()

    start = datetime(2026, 1, 1, tzinfo=UTC)
    stats = await ledger.services.stats.execute(StatsRequest(start, datetime(2026, 4, 1, tzinfo=UTC), Interval.MONTH))
    assert [(b.start.month, b.end.month) for b in stats.buckets] == [(1, 2), (2, 3), (3, 4)]
    assert [(b.granted, b.used, b.outstanding) for b in stats.buckets] == [(100, 0, 100), (50, 30, 120), (0, 20, 100)]


async def test_stats_for_an_empty_or_inverted_range_are_refused(ledger: Ledger) -> None:
    with pytest.raises(InvalidInputError):
        await ledger.services.stats.execute(StatsRequest(START, START, Interval.DAY))
    with pytest.raises(InvalidInputError):
        await ledger.services.stats.execute(StatsRequest(START, START + 500 * DAY, Interval.DAY))
