"""The read side through the API: history pages, admin search, statistics, expiring points, the test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.e2e.client import ADMIN, SERVICE, Api, day, eventually, key, kinds


async def test_history_pages_run_newest_first_without_gaps_or_repeats(api: Api) -> None:
    for amount in range(1, 26):
        await api.grant("u1", amount, "PROMOTION", SERVICE)
    await eventually(
        lambda: api.history("u1", first=1), lambda h: bool(h["edges"]) and h["edges"][0]["node"]["version"] == 25
    )

    seen: list[int] = []
    after = None
    pages = []
    while True:
        page = await api.history("u1", first=10, after=after)
        pages.append(len(page["edges"]))
        seen += [edge["node"]["version"] for edge in page["edges"]]
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert pages == [10, 10, 5]
    assert seen == list(range(25, 0, -1))
    nodes = (await api.history("u1", first=1))["edges"]
    assert nodes[0]["node"]["amount"] == 25 and nodes[0]["node"]["kind"] == "GRANTED"


async def test_an_empty_history_is_an_empty_page(api: Api) -> None:
    page = await api.history("nobody-yet")
    assert page == {
        "__typename": "EntryConnection",
        "edges": [],
        "pageInfo": {"hasNextPage": False, "endCursor": None, "startCursor": None},
    }


async def seed_for_search(api: Api) -> dict[str, str]:
    await api.set_clock(day(0, hours=1))
    manual = await api.grant("u1", 1000, "MANUAL", reason="goodwill")
    await api.set_clock(day(0, hours=2))
    await api.grant("u1", 200, "ORDER", SERVICE, orderId="o-1")
    await api.set_clock(day(0, hours=3))
    await api.grant("u2", 300, "PROMOTION", SERVICE)
    await api.set_clock(day(1, hours=1))
    use = await api.use("u1", 150, orderId="o-2")
    await api.set_clock(day(1, hours=2))
    await api.use("u2", 50)
    await api.set_clock(day(2, hours=1))
    await api.ok(
        "clawbackPoints", SERVICE, input={"userId": "u1", "idempotencyKey": key(), "orderId": "o-1", "amount": 20}
    )
    await eventually(search(api), lambda page: len(page["edges"]) == 6)
    return {"manual": manual["grantId"], "use": use["useId"]}


def search(api: Api, first: int = 100, after: str | None = None, **where: Any) -> Any:
    """A reader of one search; ``from`` (a keyword in Python) is spelt ``from_``."""
    if "from_" in where:
        where["from"] = where.pop("from_")
    return lambda: api.ok("searchEntries", ADMIN, filter=where, first=first, after=after)


def described(page: dict[str, Any]) -> list[tuple[str, str, int]]:
    return [(e["node"]["userId"], e["node"]["kind"], e["node"]["amount"]) for e in page["edges"]]


async def test_admin_search_narrows_entries_by_every_filter(api: Api) -> None:
    ids = await seed_for_search(api)
    assert described(await search(api)()) == [
        ("u1", "CLAWED_BACK", 20),
        ("u2", "USED", 50),
        ("u1", "USED", 150),
        ("u2", "GRANTED", 300),
        ("u1", "GRANTED", 200),
        ("u1", "GRANTED", 1000),
    ]
    assert described(await search(api, userId="u2")()) == [("u2", "USED", 50), ("u2", "GRANTED", 300)]
    assert described(await search(api, kinds=["USED"])()) == [("u2", "USED", 50), ("u1", "USED", 150)]
    assert described(await search(api, kinds=["USED", "CLAWED_BACK"], userId="u1")()) == [
        ("u1", "CLAWED_BACK", 20),
        ("u1", "USED", 150),
    ]
    [manual] = (await search(api, sources=["MANUAL"])())["edges"]
    assert (manual["node"]["grantId"], manual["node"]["reason"]) == (ids["manual"], "goodwill")
    assert described(await search(api, orderId="o-1")()) == [("u1", "CLAWED_BACK", 20), ("u1", "GRANTED", 200)]
    [use] = (await search(api, orderId="o-2")())["edges"]
    assert use["node"]["useId"] == ids["use"]
    assert described(await search(api, from_=day(1), to=day(2))()) == [
        ("u2", "USED", 50),
        ("u1", "USED", 150),
    ]
    assert described(await search(api, minAmount=200, maxAmount=300)()) == [
        ("u2", "GRANTED", 300),
        ("u1", "GRANTED", 200),
    ]
    assert described(await search(api, kinds=["GRANTED"], sources=["PROMOTION", "MANUAL"], minAmount=250)()) == [
        ("u2", "GRANTED", 300),
        ("u1", "GRANTED", 1000),
    ]
    assert (await search(api, userId="nobody")())["edges"] == []


async def test_admin_search_pages_through_every_match_once(api: Api) -> None:
    await seed_for_search(api)
    first = await search(api, first=4)()
    assert first["pageInfo"]["hasNextPage"] is True
    rest = await search(api, first=4, after=first["pageInfo"]["endCursor"])()
    assert rest["pageInfo"]["hasNextPage"] is False
    assert described(first) + described(rest) == described(await search(api)())


def bucket(start: str, end: str, **moved: int) -> dict[str, Any]:
    counts = dict.fromkeys(("granted", "used", "useCancelled", "grantCancelled", "expired", "clawedBack"), 0)
    counts.update(moved)
    counts["cancelled"] = counts["useCancelled"] + counts["grantCancelled"]
    counts["breakage"] = counts["expired"]
    return {"start": start, "end": end, **counts, "outstandingLiability": moved.get("outstandingLiability", 0)}


async def test_statistics_report_points_moved_breakage_and_liability_per_day_and_month(api: Api) -> None:
    def grant(amount: int, source: str, **more: Any) -> Any:
        return api.grant("u1", amount, source, SERVICE, **more)

    await api.set_clock(day(1, hours=10))
    x = await grant(1000, "ORDER", orderId="o-1", expiresAt=day(5))
    await grant(500, "PROMOTION")
    z = await grant(200, "PROMOTION")
    await api.ok("cancelGrant", SERVICE, input={"userId": "u1", "idempotencyKey": key(), "grantId": z["grantId"]})
    await api.set_clock(day(2, hours=10))
    used = await api.use("u1", 300)
    assert used["allocations"] == [{"grantId": x["grantId"], "amount": 300}]
    await api.ok(
        "cancelUse", SERVICE, input={"userId": "u1", "idempotencyKey": key(), "useId": used["useId"], "amount": 100}
    )
    await api.set_clock(day(3, hours=10))
    clawed = await api.ok(
        "clawbackPoints", SERVICE, input={"userId": "u1", "idempotencyKey": key(), "orderId": "o-1", "amount": 50}
    )
    assert (clawed["taken"], clawed["shortfall"]) == (50, 0)
    await api.set_clock(day(6, hours=10))
    run = await api.ok("expirePoints", ADMIN)
    assert (run["accounts"], run["lots"], run["points"]) == (1, 1, 750)
    await eventually(lambda: api.history("u1"), lambda h: len(h["edges"]) == 8)

    def stats(interval: str) -> Any:  # the history index may follow the balance view by a moment (the stack)
        return lambda: api.ok("pointStats", ADMIN, **{"from": day(1), "to": day(7), "interval": interval})

    await eventually(stats("DAY"), lambda daily: daily["buckets"][-2]["expired"] == 750)
    daily = await stats("DAY")()
    assert daily["interval"] == "DAY"
    assert daily["buckets"] == [
        bucket(day(1), day(2), granted=1700, grantCancelled=200, outstandingLiability=1500),
        bucket(day(2), day(3), used=300, useCancelled=100, outstandingLiability=1300),
        bucket(day(3), day(4), clawedBack=50, outstandingLiability=1250),
        bucket(day(4), day(5), outstandingLiability=1250),
        bucket(day(5), day(6), expired=750, outstandingLiability=500),
        bucket(day(6), day(7), outstandingLiability=500),
    ], "expired points count on the day they lapsed, not the day the batch ran"

    monthly = await api.ok("pointStats", ADMIN, **{"from": day(0), "to": day(59), "interval": "MONTH"})
    assert monthly["buckets"] == [
        bucket(
            day(0),
            day(31),
            granted=1700,
            used=300,
            useCancelled=100,
            grantCancelled=200,
            expired=750,
            clawedBack=50,
            outstandingLiability=500,
        ),
        bucket(day(31), day(59), outstandingLiability=500),
    ]


async def test_expiring_points_list_every_date_in_the_window_with_its_amount(api: Api) -> None:
    await api.set_clock(day(0))
    await api.grant("u1", 100, expiresAt=day(10))
    await api.grant("u1", 50, expiresAt=day(10, hours=5))
    last = await api.grant("u1", 70, expiresAt=day(20))
    await api.grant("u1", 30, expiresAt=day(90))
    pending = await api.grant("u1", 999, pendingUntil=day(5), expiresAt=day(15))
    await eventually(lambda: api.balance("u1"), lambda b: b["version"] == last["version"] + 2)

    def expiring(within: int) -> Any:
        return api.ok("expiringPoints", ADMIN, userId="u1", withinDays=within)

    soon = await expiring(15)
    assert (soon["total"], soon["dates"]) == (150, [{"date": "2030-01-11", "amount": 150}]), "pending lots wait"
    month = await expiring(30)
    assert month["total"] == 220
    assert month["dates"] == [{"date": "2030-01-11", "amount": 150}, {"date": "2030-01-21", "amount": 70}]

    await api.set_clock(day(12))
    later = await expiring(30)
    assert later["dates"] == [
        {"date": pending["expiresAt"][:10], "amount": 999},
        {"date": "2030-01-21", "amount": 70},
    ], "lapsed lots are gone; the pending lot activated by itself on day 5"


async def test_the_test_clock_is_refused_when_the_service_runs_without_it(api_without_test_clock: Api) -> None:
    api = api_without_test_clock
    refused = await api.call("setTestClock", ADMIN, at=day(400))
    assert refused["__typename"] == "TestClockDisabledError"
    assert refused["code"] == "TEST_CLOCK_DISABLED"

    granted = await api.grant("u1", 10)
    expires = datetime.fromisoformat(granted["expiresAt"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=365))) < timedelta(minutes=1), "the real clock"


async def test_the_test_clock_moves_the_service_clock_and_keeps_running(api: Api) -> None:
    moved = await api.set_clock(day(100))
    now = datetime.fromisoformat(moved["now"])
    assert timedelta(0) <= now - datetime.fromisoformat(day(100)) < timedelta(seconds=5)
    granted = await api.grant("u1", 10)
    assert granted["expiresAt"].startswith("2031-04-11"), "day 100 + 365 days"
    assert kinds(await eventually(lambda: api.history("u1"), lambda h: len(h["edges"]) == 1)) == ["GRANTED"]
