"""DOMAIN.md's worked example (rules 3, 5, 6), played through the API with the test clock and the expiry batch."""

from __future__ import annotations

from tests.e2e.client import ADMIN, SERVICE, Api, amounts, day, eventually, key, kinds


async def test_a_cancelled_use_gives_points_back_in_order_and_reissues_what_had_expired(api: Api) -> None:
    await api.set_clock(day(0))
    a = await api.grant("alice", 1000, "MANUAL", ADMIN, expiresAt=day(30))
    b = await api.grant("alice", 500, "ORDER", SERVICE, orderId="order-b", expiresAt=day(10))
    assert (a["balance"], b["balance"]) == (1000, 1500)

    used = await api.use("alice", 1200)
    assert amounts(used["allocations"]) == [(a["grantId"], 1000), (b["grantId"], 200)], "manual first"
    assert used["balance"] == 300

    await api.set_clock(day(20))
    balance = await eventually(lambda: api.balance("alice"), lambda r: r["version"] == 3)
    assert balance["available"] == 0, "B lapsed on day 10, whether or not the batch ran (rule 1)"

    run = await api.ok("expirePoints", ADMIN)
    assert (run["lots"], run["points"]) == (1, 300)

    cancel = await api.ok(
        "cancelUse", SERVICE, input={"userId": "alice", "idempotencyKey": key(), "useId": used["useId"], "amount": 1100}
    )
    assert amounts(cancel["restored"]) == [(a["grantId"], 1000)]
    [c] = cancel["reissued"]
    assert (c["fromGrantId"], c["amount"], c["manual"]) == (b["grantId"], 100, False)
    assert c["expiresAt"].startswith("2031-01-21"), "a reissued lot gets the default expiry (365 days) from now"
    assert cancel["balance"] == 1100

    balance = await eventually(lambda: api.balance("alice"), lambda r: r["version"] == cancel["version"])
    assert balance["available"] == 1100

    account = await api.ok("account", ADMIN, userId="alice")
    lots = {lot["grantId"]: lot for lot in account["lots"]}
    assert (lots[a["grantId"]]["remaining"], lots[a["grantId"]]["status"]) == (1000, "ACTIVE")
    assert (lots[b["grantId"]]["status"], lots[b["grantId"]]["expiredAmount"]) == ("EXPIRED", 300)
    assert (lots[c["grantId"]]["source"], lots[c["grantId"]]["remaining"]) == ("REISSUE", 100)
    assert lots[c["grantId"]]["reissuedFrom"] == b["grantId"]
    [use] = account["uses"]
    assert (use["amount"], use["cancelled"]) == (1200, 1100)
    assert amounts(use["allocations"]) == amounts(used["allocations"])

    expiring = await api.ok("expiringPoints", ADMIN, userId="alice", withinDays=400)
    assert expiring["total"] == 1100
    assert [(d["date"], d["amount"]) for d in expiring["dates"]] == [("2030-01-31", 1000), ("2031-01-21", 100)]

    history = await eventually(lambda: api.history("alice"), lambda h: len(h["edges"]) == 5)
    assert kinds(history) == ["USE_CANCELLED", "EXPIRED", "USED", "GRANTED", "GRANTED"]
